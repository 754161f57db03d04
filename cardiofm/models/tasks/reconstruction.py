"""CardioFMForReconstruction: any named input channels (lead I; II+V1+V5; PPG; ...) -> any target channels.

Output = subset-conditioned lagged linear path + the pretraining decoder's (channel, time) query reconstruction, then
physics: input leads pass through unchanged and the six limb leads are made to obey Einthoven/Goldberger exactly
(with two known limb leads they are *solved*, not predicted, so the model cannot be worse than the identities).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...data.channels import LIMB_LEADS, TWELVE_LEADS, channel_ids
from ...data.preprocess import resample
from ..configuration import CardioFMConfig
from ..decoder import CardioFMDecoder
from ..inference import evaluating
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, check_collated
from .heads import TaskModelMixin

# limb lead = a * I + b * II (Einthoven III = II - I; Goldberger aVR = -(I+II)/2, aVL = I - II/2, aVF = II - I/2)
_LIMB_BASIS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 1.0), (-0.5, -0.5), (1.0, -0.5), (-0.5, 1.0))
_KNOWN_WEIGHT = 1e6  # least-squares weight of a known limb lead vs the model's own (I, II): exact to ~1e-6 mV


@dataclass
class ReconstructionOutput(ModelOutput):
    """loss: MSE (mV^2) over present target samples not given as input; reconstruction: (B, Ct, T) in input units."""

    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None


class SubsetLagFilter(nn.Module):
    """Linear FIR path whose +-max_lag taps (input channel -> target channel) depend on which channels are present.

    A small MLP maps the presence pattern over the channel vocabulary to all filter taps, so one module holds a
    lagged linear regression for every input subset (the classical baseline is one point of its function space).
    """

    def __init__(self, num_channels: int, num_taps: int, hidden: int = 64):
        super().__init__()
        self.v, self.k = num_channels, num_taps
        self.hyper = nn.Sequential(nn.Linear(num_channels, hidden), nn.GELU(),
                                   nn.Linear(hidden, num_channels * num_channels * num_taps))
        self.hyper[-1]._zero_init = True  # starts silent: a loaded decoder keeps its pretrained behaviour

    def forward(self, x: torch.Tensor, in_ids: torch.Tensor, in_mask: torch.Tensor,
                out_ids: torch.Tensor) -> torch.Tensor:
        """x (B, C, T), in_ids/in_mask (B, C), out_ids (B, Ct) -> (B, Ct, T)."""
        b, c, t = x.shape
        present = torch.zeros(b, self.v, device=x.device).scatter(1, in_ids, in_mask.float())
        taps = self.hyper(present).view(b, self.v, self.v, self.k)                       # (B, out, in, K)
        taps = torch.gather(taps, 1, out_ids[:, :, None, None].expand(-1, -1, self.v, self.k))
        taps = torch.gather(taps, 2, in_ids[:, None, :, None].expand(-1, out_ids.shape[1], -1, self.k))
        xm = x * in_mask[..., None]
        frames = nn.functional.pad(xm, (self.k // 2, self.k // 2)).unfold(2, self.k, 1)  # (B, C, T, K)
        return torch.einsum("bctk,bock->bot", frames, taps.to(x.dtype))


def solve_limb_leads(z_hat: torch.Tensor, x: torch.Tensor, in_ids: torch.Tensor, in_mask: torch.Tensor,
                     limb_ids: Sequence[int]) -> torch.Tensor:
    """The six limb leads (B, 6, T) = A @ (I, II), with (I, II) fitted to the known input limb leads.

    z_hat (B, 2, T) is the model's own (I, II); x (B, C, T) the inputs. With no known limb lead z_hat is kept; with
    one, the smallest change that reproduces it; with two or more, the exact Einthoven/Goldberger solution.
    """
    basis = torch.tensor(_LIMB_BASIS, dtype=torch.float64, device=x.device)  # (6, 2)
    lid = torch.tensor(list(limb_ids), device=x.device)
    pos_in = (in_ids[:, None, :] == lid[None, :, None]) & in_mask[:, None, :]  # (B, 6, C)
    w = _KNOWN_WEIGHT * pos_in.any(-1).double()                                # (B, 6)
    y = torch.einsum("blc,bct->blt", pos_in.double(), x.double())              # known limb values (B, 6, T)
    m = torch.einsum("lc,bl,ld->bcd", basis, w, basis) + torch.eye(2, dtype=torch.float64, device=x.device)
    rhs = torch.einsum("lc,bl,blt->bct", basis, w, y) + z_hat.double()
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]   # explicit 2x2 inverse: batched LU is ~100x slower on CPU
    inv = torch.stack([torch.stack([m[:, 1, 1], -m[:, 0, 1]], -1), torch.stack([-m[:, 1, 0], m[:, 0, 0]], -1)], 1)
    z = torch.einsum("bcd,bdt->bct", inv / det[:, None, None], rhs)            # (B, 2, T)
    return torch.einsum("lc,bct->blt", basis, z).to(x.dtype)


class CardioFMForReconstruction(TaskModelMixin, CardioFMPreTrainedModel):
    """Encoder + pretraining decoder (channel/time queries) + subset-conditioned lag filter -> target waveforms.

    Config fields read here (declared in CardioFMConfig): `recon_targets` (None: the 12 leads), `recon_max_lag_s`
    (0.05 s), `recon_hyper_hidden` (64).
    """

    head_key_prefixes = ("lag_filter.", "decoder_gate")
    pretraining_only_prefixes = ("text_head.", "contrastive.")

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        self.cardiofm = CardioFMModel(config)
        self.decoder = CardioFMDecoder(config)
        taps = 2 * int(round(config.recon_max_lag_s * config.sampling_rate)) + 1
        self.lag_filter = SubsetLagFilter(len(config.channel_vocab), taps, config.recon_hyper_hidden)
        # ReZero-style gate on the decoder's residual: 0 at the start, so training begins from the linear path and a
        # loaded pretraining decoder (which predicts whole waveforms, not residuals) cannot double the output
        self.decoder_gate = nn.Parameter(torch.zeros(1))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # HF's init functions skip weights that were loaded from a checkpoint (plain nn.init would overwrite them)
        if module is self:
            init.zeros_(self.decoder_gate)
        if getattr(module, "_zero_init", False):
            init.zeros_(module.weight)
            init.zeros_(module.bias)

    @property
    def target_names(self) -> list[str]:
        """Default output channels, by name."""
        return list(self.config.recon_targets or TWELVE_LEADS)

    def _ids(self, names: Sequence[str]) -> list[int]:
        return channel_ids(list(names), tuple(self.config.channel_vocab))

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, target_ids: torch.Tensor | None = None,
                targets: torch.Tensor | None = None, target_mask: torch.Tensor | None = None,
                use_decoder: bool = True, **batch_extras) -> ReconstructionOutput:
        """signals (B, C, T) inputs with channel_ids/channel_mask (B, C) as in CardioFMModel; target_ids (B, Ct)
        vocabulary ids (default config targets); targets (B, Ct, T) real waveforms, target_mask (B, Ct) present;
        use_decoder=False runs the linear path alone (its warm-up stage). Other collated keys are ignored."""
        check_collated(batch_extras, "CardioFMForReconstruction.forward")  # median beats are not used here
        b, c, t = signals.shape
        dev = signals.device
        channel_mask = torch.ones(b, c, dtype=torch.bool, device=dev) if channel_mask is None else channel_mask.bool()
        if target_ids is None:
            target_ids = torch.tensor(self._ids(self.target_names), device=dev)[None].expand(b, -1)
        if not bool((target_ids == target_ids[:1]).all()):
            raise ValueError("target_ids must be the same for every row of a batch")
        limb_ids = self._ids(LIMB_LEADS)
        limb_pos = [limb_ids.index(int(i)) if int(i) in limb_ids else -1 for i in target_ids[0]]
        other = [j for j, k in enumerate(limb_pos) if k < 0]
        # only independent leads are decoded: I and II stand for all six limb leads (the other four follow from them)
        dec_ids = target_ids[:, other]
        if len(other) < len(limb_pos):
            dec_ids = torch.cat([torch.tensor(limb_ids[:2], device=dev)[None].expand(b, -1), dec_ids], 1)
        pred = self.lag_filter(signals, channel_ids, channel_mask, dec_ids)
        if use_decoder:
            pred = pred + self.decoder_gate * self._decode(signals, channel_ids, channel_mask, time_offsets, dec_ids)
        if len(other) < len(limb_pos):
            limbs = solve_limb_leads(pred[:, :2], signals, channel_ids, channel_mask, limb_ids)
            cols, rest = [], iter(range(2, pred.shape[1]))
            for k in limb_pos:
                cols.append(limbs[:, k] if k >= 0 else pred[:, next(rest)])
            pred = torch.stack(cols, 1)
        # a target that was given as input is known: copy it
        given = (target_ids[:, :, None] == channel_ids[:, None, :]) & channel_mask[:, None, :]  # (B, Ct, C)
        copied = torch.einsum("boc,bct->bot", given.to(signals.dtype), signals)
        pred = torch.where(given.any(-1, keepdim=True), copied, pred)
        loss = None
        if targets is not None:
            present = target_mask.bool() if target_mask is not None else torch.ones_like(given[..., 0])
            scored = present & ~given.any(-1)
            err = ((pred - targets) ** 2).mean(-1)
            loss = (err * scored).sum() / scored.sum().clamp_min(1)
        return ReconstructionOutput(loss=loss, reconstruction=pred)

    def _decode(self, signals, channel_ids, channel_mask, time_offsets, out_ids) -> torch.Tensor:
        """Decoder queries for every patch of every output channel -> (B, Ct, T) waveforms."""
        ctx, *_ = self.cardiofm.encode_present(signals, channel_ids, channel_mask, time_offsets)
        b, t = signals.shape[0], signals.shape[-1]
        ct, size = out_ids.shape[1], self.config.patch_size
        p = -(-t // size)
        times = self.cardiofm.signal_embed.patch_times(p, torch.zeros(b, ct, device=signals.device))
        queries = out_ids.unsqueeze(-1).expand(b, ct, p).reshape(b, ct * p)
        out = self.decoder(ctx.hidden, ctx.valid, queries, times.reshape(b, ct * p), context_times_s=ctx.times)
        return out.reshape(b, ct, p * size)[..., :t]

    def reconstruct(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                    targets: Sequence[str] | None = None, batch_size: int = 32, **input_options) -> np.ndarray:
        """Raw (channels, samples) array (ECG in mV) at `fs` Hz -> (len(targets), samples) at `fs` Hz.

        Runs the checkpoint's preprocessing (resampling, 0.5-40 Hz ECG band-pass, windowing); recordings longer than
        one window are covered by consecutive windows plus one window aligned to the end. ECG outputs are mV when
        the checkpoint keeps ECG in mV (ecg_norm "none"); PPG outputs are z-scores. input_options: units, quality,
        pad of the input contract (prepare_input), which also checks the array before anything else runs.
        """
        features = self.processor.feature_extractor
        cfg = features.preprocess_config
        targets = list(targets or self.target_names)
        parts = [features.windows(signal, fs, channels, **input_options)]  # validates signal, fs and channels
        signal = np.asarray(signal)
        signal = signal[None] if signal.ndim == 1 else signal
        n = signal.shape[1]
        win_in = int(np.ceil(cfg.window_s * fs))
        if n > win_in:  # the tail after the last full window gets its own window, aligned to the end
            parts.append(features.windows(signal[:, n - win_in:], fs, channels, **input_options))
            parts[-1]["start_s"] = parts[-1]["start_s"] + (n - win_in) / fs
        windows = np.concatenate([p["signal"] for p in parts])
        masks = np.concatenate([p["channel_mask"] for p in parts])
        starts = np.concatenate([p["start_s"] for p in parts])
        ids = torch.tensor(self._ids(parts[0]["channels"]))
        tid = torch.tensor(self._ids(targets))
        device = next(self.parameters()).device
        outs = []
        with evaluating(self):
            for i in range(0, len(windows), batch_size):
                x = torch.from_numpy(windows[i:i + batch_size]).to(device)
                m = torch.from_numpy(masks[i:i + batch_size]).to(device)
                bb = x.shape[0]
                outs.append(self(x, ids[None].expand(bb, -1).to(device), m,
                                 target_ids=tid[None].expand(bb, -1).to(device)).reconstruction.float().cpu())
        rec = torch.cat(outs).numpy()
        return self._stitch(rec, starts, cfg.fs, fs, n)

    @staticmethod
    def _stitch(windows: np.ndarray, starts_s: np.ndarray, fs_model: float, fs: float, n: int) -> np.ndarray:
        """Window outputs (W, Ct, Tw) at fs_model starting at starts_s -> (Ct, n) at fs (later windows overwrite)."""
        total = int(round(max(starts_s) * fs_model)) + windows.shape[-1]
        out = np.zeros((windows.shape[1], total), dtype=np.float32)
        for w, s in zip(windows, starts_s):
            a = int(round(s * fs_model))
            out[:, a:a + w.shape[-1]] = w
        out = resample(out, fs_model, fs)
        if out.shape[1] < n:
            out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
        if not np.isfinite(out).all():
            raise ValueError("reconstruction produced NaN/inf for this input")
        return out[:, :n]
