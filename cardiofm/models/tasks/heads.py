"""Building blocks shared by the task models: pooled prediction head, losses, target normalisation and
raw-array inference through the checkpoint's own preprocessing."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..inference import evaluating



class PooledHead(nn.Module):
    """LayerNorm -> dropout -> Linear on the pooled (B, H) feature; a linear probe when the encoder is frozen."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, H) -> (B, num_outputs)."""
        return self.proj(self.dropout(self.norm(pooled)))


class ChannelPooledHead(nn.Module):
    """Per-channel mean over patches -> LayerNorm -> concatenated channel slots (missing channels zero) -> Linear.

    Keeps which lead a finding sits in (ST elevation in V2-V4 vs in II/III/aVF), which a single mean over all
    tokens blurs; input (B, C, P, H) signal features and (B, C) channel mask."""

    def __init__(self, hidden_size: int, num_channels: int, num_outputs: int, dropout: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size * num_channels, num_outputs)

    def forward(self, signal_hidden: torch.Tensor, channel_mask: torch.Tensor) -> torch.Tensor:
        """(B, C, P, H), (B, C) bool -> (B, num_outputs)."""
        per_channel = self.norm(signal_hidden.mean(2)) * channel_mask[..., None].to(signal_hidden.dtype)
        return self.proj(self.dropout(per_channel.flatten(1)))


class BeatTokenHead(nn.Module):
    """Median-beat token features kept by lead and by phase (P-PR, QRS-ST, T for 3 beat tokens) -> LayerNorm ->
    concatenated (missing slots zero) beside the normed pooled feature -> Linear.

    The learned analogue of median-beat template features: where a finding sits in the beat and in which lead;
    input pooled (B, H), beat features (B, C, Pb, H) and their mask (B, C, Pb)."""

    def __init__(self, hidden_size: int, num_slots: int, num_outputs: int, dropout: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.pool_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size * (num_slots + 1), num_outputs)

    def forward(self, pooled: torch.Tensor, beat_hidden: torch.Tensor, beat_mask: torch.Tensor) -> torch.Tensor:
        """(B, H), (B, C, Pb, H), (B, C, Pb) bool -> (B, num_outputs)."""
        slots = self.norm(beat_hidden) * beat_mask[..., None].to(beat_hidden.dtype)
        return self.proj(self.dropout(torch.cat([self.pool_norm(pooled), slots.flatten(1)], 1)))


def build_head(config, num_outputs: int) -> nn.Module:
    """The head named by config `head_pooling`: "mean" (PooledHead, default), "channel" (ChannelPooledHead) or
    "beat" (BeatTokenHead; needs a checkpoint with beat_tokens)."""
    dropout, kind = float(config.classifier_dropout), config.head_pooling
    if kind == "mean":
        return PooledHead(config.hidden_size, num_outputs, dropout, config.layer_norm_eps)
    if kind == "channel":
        return ChannelPooledHead(config.hidden_size, len(config.preprocess["channels"]), num_outputs, dropout,
                                 config.layer_norm_eps)
    if kind == "beat":
        if not config.beat_tokens:
            raise ValueError("head_pooling 'beat' needs a model with median-beat tokens (config.beat_tokens > 0)")
        slots = len(config.preprocess["channels"]) * config.beat_tokens
        return BeatTokenHead(config.hidden_size, slots, num_outputs, dropout, config.layer_norm_eps)
    raise ValueError(f"unknown head_pooling {kind!r}; use 'mean', 'channel' or 'beat'")


def apply_head(head: nn.Module, encoded, channel_mask: torch.Tensor | None) -> torch.Tensor:
    """Run a head built by build_head on a CardioFMModelOutput."""
    if isinstance(head, ChannelPooledHead):
        mask = encoded.token_mask[:, :encoded.signal_hidden_state.shape[1] * encoded.signal_hidden_state.shape[2]]
        present = mask.view(*encoded.signal_hidden_state.shape[:3]).any(-1)
        return head(encoded.signal_hidden_state, present)
    if isinstance(head, BeatTokenHead):
        return head(encoded.pooled_output, encoded.beat_hidden_state, encoded.beat_token_mask)
    return head(encoded.pooled_output)


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05) -> torch.Tensor:
    """Asymmetric loss for multi-label data with many easy negatives (Ridnik et al., ICCV 2021), mean over entries.

    Negatives are down-weighted by p^gamma_neg after shifting p down by `clip` (very easy negatives give no loss).
    """
    p = torch.sigmoid(logits.float())
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    loss_pos = targets * (1 - p) ** gamma_pos * torch.log(p.clamp(min=1e-8))
    loss_neg = (1 - targets) * p_neg ** gamma_neg * torch.log((1 - p_neg).clamp(min=1e-8))
    return -(loss_pos + loss_neg).mean()


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "bce",
                    pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE (optionally with per-class positive weights) or asymmetric loss for (B, K) logits and multi-hot targets."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pos_weight)
    if kind == "asymmetric":
        return asymmetric_loss(logits, targets.float())
    raise ValueError(f"unknown diagnosis loss {kind!r}; use 'bce' or 'asymmetric'")


def masked_regression_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 on normalised targets over present entries only; zero (with grad) when a batch has none."""
    mask = mask.bool()
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return F.smooth_l1_loss(pred.float()[mask], target.float()[mask])


def pos_weight_from_labels(labels: np.ndarray, max_weight: float = 20.0) -> list[float]:
    """Per-class BCE positive weights n_neg / n_pos from (N, K) multi-hot training labels, capped at max_weight."""
    labels = np.asarray(labels, dtype=np.float64)
    pos = labels.sum(0)
    neg = len(labels) - pos
    return [float(min(max_weight, n / p)) if p > 0 else 1.0 for n, p in zip(neg, pos)]


def target_stats(values: np.ndarray, mask: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-target mean and SD over present entries of (N, K) arrays (SD floor 1e-3, SD 1 for absent targets)."""
    values, mask = np.asarray(values, np.float64), np.asarray(mask, bool)
    mean, std = [], []
    for k in range(values.shape[1]):
        v = values[mask[:, k], k]
        mean.append(float(v.mean()) if len(v) else 0.0)
        std.append(float(max(v.std(), 1e-3)) if len(v) > 1 else 1.0)
    return mean, std


class TaskModelMixin:
    """What every task model adds to the encoder: loading from an encoder checkpoint with new head settings, and
    raw (channels, samples) arrays at any rate -> window batches through the checkpoint's processor."""

    @classmethod
    def from_encoder(cls, name_or_path: str, **config_values):
        """Load a pretraining (or any cardiofm) checkpoint into this task model, setting head config values
        (label names, target statistics, ...); asserts that only the head's keys are missing."""
        from ..factory import from_any

        return from_any(name_or_path, cls, **config_values)

    def config_tensor(self, name: str, device: torch.device, dtype=torch.float32) -> torch.Tensor | None:
        """A list-valued config field as a tensor (built per call: buffers made at init are not restored by
        meta-device loading, and the config is the single source of truth for head settings)."""
        value = getattr(self.config, name)
        return None if value is None else torch.tensor(value, dtype=dtype, device=device)

    def windows_batch(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                      **input_options) -> dict[str, torch.Tensor]:
        """The checkpoint's processor on one recording -> batch of its windows on the model's device
        (input_options: units, quality, pad of the input contract, see prepare_input)."""
        batch = self.processor.feature_extractor(signal, fs, channels, **input_options)
        device = next(self.parameters()).device
        return {k: batch[k].to(device) for k in ("signals", "channel_ids", "channel_mask")}

    def window_outputs(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str, batch_size: int = 64,
                       field: str = "logits", **input_options) -> torch.Tensor:
        """Output `field` (W, K) of every window of one recording (head logits by default), in eval mode (the
        training flag is restored); input_options as in windows_batch."""
        batch = self.windows_batch(signal, fs, channels, **input_options)
        with evaluating(self):
            outs = [getattr(self.forward(**{k: v[i:i + batch_size] for k, v in batch.items()}), field)
                    for i in range(0, len(batch["signals"]), batch_size)]
        out = torch.cat(outs).float()
        if not bool(torch.isfinite(out).all()):
            raise ValueError("model produced NaN/inf outputs for this input")
        return out
