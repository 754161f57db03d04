"""CardioFMForPretraining: masked signal modelling, masked report modelling, optional ECG-text contrastive."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .configuration import CardioFMConfig
from .contrastive import ContrastiveHead, is_distributed
from .decoder import CardioFMDecoder
from .encoder import gather_tokens, key_padding_mask
from .masking import MaskingPlan, mask_text, plan_masking
from .modeling import CardioFMModel, CardioFMPreTrainedModel, EncodedContext, batch_beats


@dataclass
class CardioFMPretrainingOutput(ModelOutput):
    """Pretraining step output.

    loss: scalar; losses: {"signal", "text", "contrastive"} scalars (present objectives only);
    reconstruction_mse: plain MSE over hidden patches in input units (mV for ECG), whatever the loss normalisation;
    predictions (B, C, P, patch_size) reconstructed patches (zeros where not predicted); targets (B, C, P, patch_size);
    loss_mask (B, C, P) bool, hidden and present patches (where the signal loss is taken);
    visible_mask (B, C, P) bool, patches the encoder saw; dropped_channels (B, C) bool, channels hidden entirely;
    text_logits (B, L, V) or None; text_targets (B, L) bool masked text positions or None.
    """

    loss: torch.Tensor | None = None
    losses: dict | None = None
    reconstruction_mse: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None
    visible_mask: torch.Tensor | None = None
    dropped_channels: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    text_targets: torch.Tensor | None = None


def _query_slots(plan: MaskingPlan, n_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Q) token indices of each sample's hidden present tokens, and their validity; Q = max hidden count."""
    n_hidden = n_present - plan.num_visible
    q = int(n_hidden.max())
    j = torch.arange(q, device=n_present.device)[None]
    pos = (plan.num_visible[:, None] + j).clamp_max(plan.ids_shuffle.shape[1] - 1)
    return torch.gather(plan.ids_shuffle, 1, pos), j < n_hidden[:, None]


class CardioFMForPretraining(CardioFMPreTrainedModel):
    """Encoder + light decoder + text head (+ contrastive projections); the model `create_model` returns."""

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        self.cardiofm = CardioFMModel(config)
        self.decoder = CardioFMDecoder(config)
        self.text_head = nn.Sequential(nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
                                       nn.Linear(config.hidden_size, config.text_vocab_size))
        self.contrastive = ContrastiveHead(config.hidden_size, config.contrastive_dim) \
            if config.contrastive_loss_weight > 0 else None
        self.post_init()

    # ---- decoder API (used by reconstruction) -------------------------------------------------------------------
    def encode_context(self, signals, channel_ids, channel_mask=None, time_offsets=None, input_ids=None,
                       text_mask=None, segment_ids=None) -> EncodedContext:
        """Encode the visible input channels (all present patches, no masking) -> context for `decode`."""
        ctx, *_ = self.cardiofm.encode_present(signals, channel_ids, channel_mask, time_offsets, input_ids, text_mask,
                                               segment_ids)
        return ctx

    def decode(self, context: EncodedContext, query_channel_ids: torch.Tensor, query_times_s: torch.Tensor,
               query_segment_ids: torch.Tensor | None = None, query_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Patch waveforms (B, Q, patch_size) at (channel id, patch start time s) queries (B, Q) given a context."""
        return self.decoder(context.hidden, context.valid, query_channel_ids, query_times_s, query_segment_ids,
                            query_valid, context_times_s=context.times)

    def reconstruct(self, signals, channel_ids, target_channel_ids, channel_mask=None, time_offsets=None,
                    num_samples: int | None = None, **text) -> torch.Tensor:
        """Reconstruct whole target channels (B, Ct) ids over the input window -> (B, Ct, T) samples.

        Inputs as in CardioFMModel.forward; e.g. give lead I (or the PPG) and ask for all 12 leads.
        """
        ctx = self.encode_context(signals, channel_ids, channel_mask, time_offsets, **text)
        t = num_samples or signals.shape[-1]
        p = -(-t // self.config.patch_size)
        b, ct = target_channel_ids.shape
        times = self.cardiofm.signal_embed.patch_times(p, torch.zeros(b, ct, device=signals.device))
        qc = target_channel_ids.unsqueeze(-1).expand(b, ct, p).reshape(b, ct * p)
        out = self.decode(ctx, qc, times.reshape(b, ct * p))
        return out.reshape(b, ct, p * self.config.patch_size)[..., :t]

    # ---- pretraining step -----------------------------------------------------------------------------------------
    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None, **unused) -> CardioFMPretrainingOutput:
        """One pretraining step on a collate_samples batch (inputs as in CardioFMModel.forward) -> loss + details.

        The encoder sees only visible signal tokens (plus the partly masked report); the decoder predicts the hidden
        present patches; missing channels are never visible and never in the loss.
        """
        cfg, cf = self.config, self.cardiofm
        tokens, patches, present, times = cf.embed_signals(signals, channel_ids, channel_mask, time_offsets,
                                                           segment_ids, batch_beats(unused))
        b, c, p, _ = patches.shape
        channel_mask = present.view(b, c, p)[..., 0]
        plan = plan_masking(channel_mask, p, cfg.mask_ratio, cfg.channel_mask_prob, generator, present)
        visible = gather_tokens(tokens, plan.visible_ids)

        text_tokens = text_targets = None
        if input_ids is not None:
            if text_mask is None:
                text_mask = input_ids != cfg.text_pad_id
            masked_ids, text_targets = mask_text(input_ids, text_mask, cfg.text_mask_ratio, cfg.text_mask_id,
                                                 (cfg.text_cls_id, cfg.text_sep_id, cfg.text_pad_id), generator)
            text_tokens = cf.embed_text(masked_ids)
        vis_times = torch.gather(times, 1, plan.visible_ids)
        hidden = cf.encode(visible, plan.visible_valid, text_tokens, text_mask, vis_times)
        k = plan.visible_valid.shape[1]
        ctx_valid = plan.visible_valid if text_tokens is None else torch.cat([plan.visible_valid, text_mask.bool()], 1)

        # decoder queries: each sample's hidden present tokens, addressed by (channel id, patch time, segment)
        q_ids, q_valid = _query_slots(plan, present.sum(1))
        tok_channel = channel_ids.unsqueeze(-1).expand(b, c, p).reshape(b, c * p)
        tok_segment = cf.token_segments(segment_ids, channel_ids, p)
        pred = self.decoder(hidden, ctx_valid, torch.gather(tok_channel, 1, q_ids), torch.gather(times, 1, q_ids),
                            torch.gather(tok_segment, 1, q_ids), q_valid,
                            context_times_s=F.pad(vis_times, (0, hidden.shape[1] - k))).float()
        target = gather_tokens(patches.reshape(b, c * p, -1).float(), q_ids)
        err = ((pred - target) ** 2).mean(-1)
        n_q = q_valid.sum().clamp_min(1)
        mse = (err * q_valid).sum() / n_q
        losses = {"signal": mse}
        if cfg.signal_loss_norm == "channel_var":
            # divide by the window variance of each channel (detached target statistic): ECG leads in mV of any
            # amplitude and z-scored PPG weigh alike, and 1.0 = no better than predicting the window's mean
            var = patches.float().var(dim=(2, 3), unbiased=False).detach().clamp_min(1e-4).reshape(b, c)
            q_var = torch.gather(var.unsqueeze(-1).expand(b, c, p).reshape(b, c * p), 1, q_ids)
            losses["signal"] = (err / q_var * q_valid).sum() / n_q

        text_logits = None
        if text_tokens is not None:
            text_logits = self.text_head(hidden[:, k:]).float()
            if bool(text_targets.any()):
                losses["text"] = F.cross_entropy(text_logits[text_targets], input_ids[text_targets])
        if self.contrastive is not None and input_ids is not None:
            sig_feat = (hidden[:, :k] * plan.visible_valid[..., None]).sum(1) / plan.num_visible[:, None]
            # rows without a report are dropped locally; across processes all rows stay (gather needs equal sizes)
            has_text = text_mask.bool().any(1) | torch.tensor(is_distributed(), device=signals.device)
            # text-only pass over the unmasked report: its features must not see the paired signal
            # a row without any real token would softmax over nothing (NaN): let it see its first slot
            safe = text_mask.bool().clone()
            safe[:, 0] |= ~safe.any(1)
            text_hidden = cf.encoder(cf.embed_text(input_ids), key_padding_mask(safe),
                                     cf.rope(times[:, :0], input_ids.shape[1]))
            contrast = self.contrastive(sig_feat[has_text], text_hidden[has_text, 0])
            if contrast is not None:
                losses["contrastive"] = contrast
        weights = {"signal": cfg.signal_loss_weight, "text": cfg.text_loss_weight,
                   "contrastive": cfg.contrastive_loss_weight}
        loss = sum(weights[name] * value for name, value in losses.items())

        full_pred = torch.zeros(b, c * p, pred.shape[-1], device=pred.device, dtype=pred.dtype)
        # padded query slots repeat an index; adding their zeroed predictions leaves real slots intact
        full_pred = full_pred.scatter_add(1, q_ids[..., None].expand_as(pred), pred.detach() * q_valid[..., None])
        visible_mask = (plan.ids_restore < plan.num_visible[:, None]) & present
        raw = p - cfg.beat_tokens  # per-patch outputs cover the raw window (median-beat patches are in the loss only)
        return CardioFMPretrainingOutput(
            loss=loss, losses=losses, reconstruction_mse=mse.detach(),
            predictions=full_pred.view(b, c, p, -1)[:, :, :raw].detach(), targets=patches[:, :, :raw].detach(),
            loss_mask=plan.masked.view(b, c, p)[:, :, :raw], visible_mask=visible_mask.view(b, c, p)[:, :, :raw],
            dropped_channels=plan.dropped_channels, text_logits=text_logits, text_targets=text_targets)
