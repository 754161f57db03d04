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
from .modeling import CardioFMModel, CardioFMPreTrainedModel, EncodedContext


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


@dataclass
class MaskedEncoding:
    """What the encoder pass of a pretraining step hands to the decoder and the losses.

    hidden (B, K + L, dim): visible signal tokens then text; patches (B, C, P, patch_size) targets; present (B, C*P)
    bool; times / vis_times (B, C*P) / (B, K) patch start times s; plan the MaskingPlan; text_mask (B, L) or None;
    text_targets (B, L) bool masked text positions or None; text_logits filled by forward_loss.
    """

    hidden: torch.Tensor
    patches: torch.Tensor
    present: torch.Tensor
    times: torch.Tensor
    vis_times: torch.Tensor
    plan: MaskingPlan
    text_mask: torch.Tensor | None
    text_targets: torch.Tensor | None
    has_text: bool
    text_logits: torch.Tensor | None = None


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

    # ---- pretraining step: forward_encoder -> forward_decoder -> forward_loss ------------------------------------
    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None, beat_signals: torch.Tensor | None = None,
                beat_ok: torch.Tensor | None = None, beat_start_s: torch.Tensor | None = None,
                vitals: torch.Tensor | None = None, vitals_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> CardioFMPretrainingOutput:
        """One pretraining step on a collate_samples batch (inputs as in CardioFMModel.forward) -> loss + details.

        The encoder sees only visible signal tokens (plus the partly masked report); the decoder predicts the hidden
        present patches; missing channels are never visible and never in the loss. beat_*: median beats precomputed
        by the collate (else computed here); vitals, vitals_mask, labels: carried by collated batches, not used by
        the pretraining objectives.
        """
        beats = None if beat_signals is None else {"beat_signals": beat_signals, "beat_ok": beat_ok,
                                                   "beat_start_s": beat_start_s}
        enc = self.forward_encoder(signals, channel_ids, channel_mask, time_offsets, input_ids, text_mask,
                                   segment_ids, generator, beats)
        pred, q_ids, q_valid = self.forward_decoder(enc, channel_ids, segment_ids)
        losses, mse = self.forward_loss(enc, pred, q_ids, q_valid, input_ids)
        weights = {"signal": self.config.signal_loss_weight, "text": self.config.text_loss_weight,
                   "contrastive": self.config.contrastive_loss_weight}
        loss = sum(weights[name] * value for name, value in losses.items())
        return self._output(enc, pred, q_ids, q_valid, loss, losses, mse)

    def forward_encoder(self, signals, channel_ids, channel_mask, time_offsets, input_ids, text_mask, segment_ids,
                        generator, beats) -> "MaskedEncoding":
        """Embed every patch, plan the masking, encode the visible signal tokens with the (partly masked) report."""
        cfg, cf = self.config, self.cardiofm
        tokens, patches, present, times = cf.embed_signals(signals, channel_ids, channel_mask, time_offsets,
                                                           segment_ids, beats)
        b, c, p, _ = patches.shape
        plan = plan_masking(present.view(b, c, p)[..., 0], p, cfg.mask_ratio, cfg.channel_mask_prob, generator,
                            present)
        text_tokens = text_targets = None
        if input_ids is not None:
            if text_mask is None:
                text_mask = input_ids != cfg.text_pad_id
            masked_ids, text_targets = mask_text(input_ids, text_mask, cfg.text_mask_ratio, cfg.text_mask_id,
                                                 (cfg.text_cls_id, cfg.text_sep_id, cfg.text_pad_id), generator)
            text_tokens = cf.embed_text(masked_ids)
        vis_times = torch.gather(times, 1, plan.visible_ids)
        hidden = cf.encode(gather_tokens(tokens, plan.visible_ids), plan.visible_valid, text_tokens, text_mask,
                           vis_times)
        return MaskedEncoding(hidden, patches, present, times, vis_times, plan, text_mask, text_targets,
                              has_text=text_tokens is not None)

    def forward_decoder(self, enc: "MaskedEncoding", channel_ids: torch.Tensor, segment_ids: torch.Tensor | None):
        """Predict each sample's hidden present patches, queried by (channel id, patch time, segment) ->
        (pred (B, Q, patch_size) float32, query token indices (B, Q), validity (B, Q))."""
        b, c, p, _ = enc.patches.shape
        k = enc.plan.visible_valid.shape[1]
        ctx_valid = enc.plan.visible_valid if not enc.has_text else \
            torch.cat([enc.plan.visible_valid, enc.text_mask.bool()], 1)
        q_ids, q_valid = _query_slots(enc.plan, enc.present.sum(1))
        tok_channel = channel_ids.unsqueeze(-1).expand(b, c, p).reshape(b, c * p)
        tok_segment = self.cardiofm.token_segments(segment_ids, channel_ids, p)
        pred = self.decoder(enc.hidden, ctx_valid, torch.gather(tok_channel, 1, q_ids),
                            torch.gather(enc.times, 1, q_ids), torch.gather(tok_segment, 1, q_ids), q_valid,
                            context_times_s=F.pad(enc.vis_times, (0, enc.hidden.shape[1] - k))).float()
        return pred, q_ids, q_valid

    def forward_loss(self, enc: "MaskedEncoding", pred, q_ids, q_valid, input_ids) -> tuple[dict, torch.Tensor]:
        """({"signal", "text", "contrastive"} losses of the objectives present, plain masked-patch MSE)."""
        b, c, p, _ = enc.patches.shape
        target = gather_tokens(enc.patches.reshape(b, c * p, -1).float(), q_ids)
        err = ((pred - target) ** 2).mean(-1)
        n_q = q_valid.sum().clamp_min(1)
        mse = (err * q_valid).sum() / n_q
        losses = {"signal": mse}
        if self.config.signal_loss_norm == "channel_var":
            # divide by the window variance of each channel (detached target statistic): ECG leads in mV of any
            # amplitude and z-scored PPG weigh alike, and 1.0 = no better than predicting the window's mean
            var = enc.patches.float().var(dim=(2, 3), unbiased=False).detach().clamp_min(1e-4).reshape(b, c)
            q_var = torch.gather(var.unsqueeze(-1).expand(b, c, p).reshape(b, c * p), 1, q_ids)
            losses["signal"] = (err / q_var * q_valid).sum() / n_q
        if enc.has_text:
            k = enc.plan.visible_valid.shape[1]
            enc.text_logits = self.text_head(enc.hidden[:, k:]).float()
            if bool(enc.text_targets.any()):
                losses["text"] = F.cross_entropy(enc.text_logits[enc.text_targets], input_ids[enc.text_targets])
            if self.contrastive is not None:
                contrast = self._contrastive_loss(enc, input_ids)
                if contrast is not None:
                    losses["contrastive"] = contrast
        return losses, mse

    def _contrastive_loss(self, enc: "MaskedEncoding", input_ids: torch.Tensor) -> torch.Tensor | None:
        """CLIP-style loss between the visible-signal mean feature and the unmasked report's first token."""
        cf, k = self.cardiofm, enc.plan.visible_valid.shape[1]
        sig_feat = (enc.hidden[:, :k] * enc.plan.visible_valid[..., None]).sum(1) / enc.plan.num_visible[:, None]
        # rows without a report are dropped locally; across processes all rows stay (gather needs equal sizes)
        has_text = enc.text_mask.bool().any(1) | torch.tensor(is_distributed(), device=enc.hidden.device)
        # text-only pass over the unmasked report: its features must not see the paired signal
        # a row without any real token would softmax over nothing (NaN): let it see its first slot
        safe = enc.text_mask.bool().clone()
        safe[:, 0] |= ~safe.any(1)
        text_hidden = cf.encoder(cf.embed_text(input_ids), key_padding_mask(safe),
                                 cf.rope(enc.times[:, :0], input_ids.shape[1]))
        return self.contrastive(sig_feat[has_text], text_hidden[has_text, 0])

    def _output(self, enc: "MaskedEncoding", pred, q_ids, q_valid, loss, losses, mse) -> CardioFMPretrainingOutput:
        """Per-patch views of the step (raw window only; median-beat patches are in the loss only)."""
        b, c, p, _ = enc.patches.shape
        full_pred = torch.zeros(b, c * p, pred.shape[-1], device=pred.device, dtype=pred.dtype)
        # padded query slots repeat an index; adding their zeroed predictions leaves real slots intact
        full_pred = full_pred.scatter_add(1, q_ids[..., None].expand_as(pred), pred.detach() * q_valid[..., None])
        plan = enc.plan
        visible_mask = (plan.ids_restore < plan.num_visible[:, None]) & enc.present
        raw = p - self.config.beat_tokens
        return CardioFMPretrainingOutput(
            loss=loss, losses=losses, reconstruction_mse=mse.detach(),
            predictions=full_pred.view(b, c, p, -1)[:, :, :raw].detach(), targets=enc.patches[:, :, :raw].detach(),
            loss_mask=plan.masked.view(b, c, p)[:, :, :raw], visible_mask=visible_mask.view(b, c, p)[:, :, :raw],
            dropped_channels=plan.dropped_channels, text_logits=enc.text_logits, text_targets=enc.text_targets)
