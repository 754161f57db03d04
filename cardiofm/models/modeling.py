"""CardioFMPreTrainedModel (HF base with checked loading) and CardioFMModel (the shared multimodal encoder)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..data.beats import BEAT_KEYS, median_beat_batch
from .configuration import CardioFMConfig
from .encoder import TransformerEncoder, gather_tokens, joint_attention_mask
from .hub.loading import CheckpointMismatchError, HubMixin
from .inference import evaluating
from .layers import SIGNAL_MODALITY, TEXT_MODALITY, ChannelPatchEmbed, SignalEmbedding, TextEmbedding, rotary_for


@dataclass
class CardioFMModelOutput(ModelOutput):
    """Encoder output; N = C * P signal tokens (channel-major) followed by L text tokens.

    last_hidden_state: (B, N, H), zeros at missing channels / padding; token_mask: (B, N) bool, True = real token;
    pooled_output: (B, H) mean over real signal tokens (with median-beat tokens: the mean of the raw-token mean and
    the beat-token mean, so 3 beat tokens per lead are not outweighed by 40 raw ones); signal_hidden_state:
    (B, C, P, H) per channel and raw patch; beat_hidden_state: (B, C, config.beat_tokens, H) or None, with
    beat_token_mask (B, C, config.beat_tokens) bool (False: channel missing or no beats found);
    text_hidden_state: (B, L, H) or None.
    """

    last_hidden_state: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    signal_hidden_state: torch.Tensor | None = None
    beat_hidden_state: torch.Tensor | None = None
    beat_token_mask: torch.Tensor | None = None
    text_hidden_state: torch.Tensor | None = None


@dataclass
class EncodedContext(ModelOutput):
    """Compact encoder output of the present tokens: hidden (B, M, H), valid (B, M) bool, times (B, M) seconds
    (patch start times; 0 for text tokens), num_signal (int) signal tokens before the text tokens."""

    hidden: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    times: torch.Tensor | None = None
    num_signal: int | None = None


class CardioFMPreTrainedModel(HubMixin, PreTrainedModel):
    """Base of every cardiofm model: config class, weight init, checked loading of pretraining checkpoints; saving,
    loading and pushing with processor, tokenizer, card and loading report (hub.loading.HubMixin)."""

    config_class = CardioFMConfig
    base_model_prefix = "cardiofm"
    main_input_name = "signals"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock"]
    # Task models list the key prefixes of their new head, e.g. ("head.",): `from_pretrained_checked` asserts that
    # exactly these keys are missing when a pretraining checkpoint is loaded.
    head_key_prefixes: tuple[str, ...] = ()
    # Keys a checkpoint may carry that only pretraining uses (dropped without complaint by task models).
    pretraining_only_prefixes: tuple[str, ...] = ("decoder.", "text_head.", "contrastive.")

    def _init_weights(self, module: nn.Module) -> None:
        """Xavier linear weights, truncated-normal embeddings, zero biases, unit LayerNorms (skips loaded weights)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear) and getattr(module, "zero_init", False):
            # residual corrections (rate-aware vitals) start at zero: the untrained model returns its measured prior
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and getattr(module, "embedding_like", False):
            # the time projection is a position embedding: kept as small as the others (std 0.02), else its
            # sinusoids outweigh a 0.15 mV waveform after LayerNorm and a fresh model only ever predicts the mean
            init.trunc_normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)  # as in MAE
            if module.bias is not None:
                init.zeros_(module.bias)
            if getattr(module, "fused_qkv_heads", 0):
                self._anchor_time_attention(module)
        elif isinstance(module, nn.Embedding):
            init.trunc_normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ChannelPatchEmbed):
            fan_in, fan_out = module.weight.shape[1:]
            init.normal_(module.weight, std=(2.0 / (fan_in + fan_out)) ** 0.5)  # xavier-normal per channel
            init.zeros_(module.bias)
        # modules owning a bare parameter: the decoder's mask token, the contrastive temperature
        if isinstance(getattr(module, "mask_token", None), nn.Parameter):
            init.trunc_normal_(module.mask_token, std=std)
        if isinstance(getattr(module, "logit_scale", None), nn.Parameter):
            init.constant_(module.logit_scale, 2.659)  # log(1 / 0.07), the CLIP temperature

    def _anchor_time_attention(self, qkv: nn.Linear) -> None:
        """Start every head attending to tokens at the same time (any channel): a constant query/key bias in the
        rotary channels makes q.k ~ sum_f a^2 cos(w_f dt), peaked at dt = 0. Without it, a fresh model predicts the
        mean for hundreds of steps before discovering that a hidden lead is best read off the other leads at its
        time (III = II - I); the bias costs nothing at run time, unlike an N x N additive attention bias."""
        bias, heads = qkv.bias, qkv.fused_qkv_heads
        if bias is None or getattr(bias, "_is_hf_initialized", False):
            return
        dim = qkv.weight.shape[1]
        head_dim = dim // heads
        rot = self.config.rope_dim(head_dim)
        if not rot:
            return
        with torch.no_grad():
            for part in getattr(qkv, "anchor_blocks", (0, 1)):  # query and key blocks of the fused projection
                view = bias[part * dim:(part + 1) * dim].view(heads, head_dim)
                view[:, :rot] = self.config.rope_anchor

    @classmethod
    def from_pretrained_checked(cls, pretrained_model_name_or_path, **kwargs):
        """from_pretrained that asserts the exact set of missing keys: none, or exactly this class's head keys.

        Unexpected checkpoint keys must be pretraining-only (decoder, text head, contrastive projections); any
        missing encoder weight or shape mismatch raises instead of being silently re-initialised.
        """
        model, info = cls.from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        check_loading_info(model, info, str(pretrained_model_name_or_path))
        return model

    def embed(self, signal, fs: float, channels, batch_size: int = 64, **input_options) -> torch.Tensor:
        """Raw (channels, samples) array at `fs` Hz -> (W, H) pooled encoder features, one row per window, through
        this checkpoint's processor (input_options: units, quality, pad of the input contract)."""
        return self.embed_batch(self.processor.feature_extractor(signal, fs, channels, **input_options), batch_size)

    def embed_batch(self, batch, batch_size: int = 64) -> torch.Tensor:
        """Processor output (signals (W, C, T), channel_ids, channel_mask) -> (W, H) pooled encoder features, in
        eval mode (the training flag is restored)."""
        device = next(self.parameters()).device
        encoder = self.base_model
        with evaluating(self):
            outs = [encoder(**{k: batch[k][i:i + batch_size].to(device)
                               for k in ("signals", "channel_ids", "channel_mask")}).pooled_output
                    for i in range(0, len(batch["signals"]), batch_size)]
        return torch.cat(outs)


# Keys a collated batch may carry beside a forward's own arguments (median beats, per-window beat information,
# targets of other tasks, text, window bookkeeping): `model(**batch)` accepts them; any other name is a caller's typo.
COLLATED_KEYS = frozenset({*BEAT_KEYS, "rate_features", "rpeaks", "vitals", "vitals_mask", "labels", "targets",
                           "targets_mask", "input_ids", "text_mask", "time_offsets", "segment_ids", "start_s",
                           "valid_fraction"})


def check_collated(extras: dict, owner: str) -> None:
    """Raise TypeError naming the keyword arguments of `owner` (a forward) that no collate function makes."""
    unknown = sorted(set(extras) - COLLATED_KEYS)
    if unknown:
        raise TypeError(f"{owner}() got unexpected keyword argument(s) {unknown}")


def batch_beats(batch: dict, owner: str | None = None) -> dict | None:
    """The precomputed median beats carried by a batch (median_beat_batch keys), or None; with `owner` (the
    forward's name) the batch's other keys are checked first (check_collated)."""
    if owner is not None:
        check_collated(batch, owner)
    return {k: batch[k] for k in BEAT_KEYS} if all(k in batch for k in BEAT_KEYS) else None


def check_loading_info(model: CardioFMPreTrainedModel, info: dict, source: str) -> None:
    """Raise naming the keys if loading missed anything but the model's head or met unexpected non-pretraining keys."""
    head = {k for k in model.state_dict() if k.startswith(tuple(model.head_key_prefixes))} if model.head_key_prefixes \
        else set()
    missing = set(info.get("missing_keys", ()))
    problems = []
    if missing and missing != head:
        problems.append(f"missing keys other than the head {sorted(model.head_key_prefixes)}: "
                        f"{sorted(missing - head)[:20]}; head keys loaded only partly: {sorted(head - missing)[:20]}")
    unexpected = {k for k in info.get("unexpected_keys", ())
                  if not any(k.startswith(p) or k.startswith(f"{model.base_model_prefix}.{p}")
                             for p in model.pretraining_only_prefixes)}
    if unexpected:
        problems.append(f"unexpected keys: {sorted(unexpected)[:20]}")
    if info.get("mismatched_keys"):
        problems.append(f"shape mismatches: {sorted(info['mismatched_keys'])[:20]}")
    if info.get("error_msgs"):
        problems.append(f"errors: {info['error_msgs'][:5]}")
    if problems:
        raise ValueError(f"{source}: checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))


class CardioFMModel(CardioFMPreTrainedModel):
    """The shared encoder: any named channels (+ optional text) -> contextual token features.

    Missing channels (channel_mask False) are dropped before the encoder, so a lead-I-only input in a 13-channel
    layout costs 1/13 of the compute, and a channel's features never depend on its position in the input.
    """

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        h = config.hidden_size
        self.signal_embed = SignalEmbedding(config.patch_size, len(config.channel_vocab), config.num_segments, h,
                                            config.time_embed_dim, config.patch_duration_s, config.max_time_period_s)
        self.text_embed = TextEmbedding(config.text_vocab_size, config.max_text_len, h, config.text_pad_id)
        self.modality_embed = nn.Embedding(2, h)
        self.encoder = TransformerEncoder(h, config.num_hidden_layers, config.num_attention_heads,
                                          config.intermediate_size, config.layer_norm_eps, config.qkv_bias,
                                          config.hidden_dropout_prob, config.attention_dropout)
        self.post_init()

    def _defaults(self, signals, channel_ids, channel_mask, time_offsets, segment_ids):
        """Fill optional per-channel inputs: all channels present, zero offsets, segment 0; validates shapes."""
        if signals.dim() != 3 or channel_ids.shape != signals.shape[:2]:
            raise ValueError(f"signals must be (B, C, T) and channel_ids (B, C); got {tuple(signals.shape)} and "
                             f"{tuple(channel_ids.shape)}")
        if not channel_ids.is_meta and (int(channel_ids.max()) >= len(self.config.channel_vocab)
                                        or int(channel_ids.min()) < 0):
            raise ValueError(f"channel id outside the vocabulary of {len(self.config.channel_vocab)} channels")
        b, c = channel_ids.shape
        dev = signals.device
        channel_mask = torch.ones(b, c, dtype=torch.bool, device=dev) if channel_mask is None else channel_mask.bool()
        if not channel_mask.is_meta and not bool(channel_mask.any(dim=1).all()):
            raise ValueError("every sample needs at least one present channel (channel_mask all False)")
        time_offsets = torch.zeros(b, c, device=dev) if time_offsets is None else time_offsets
        segment_ids = torch.zeros(b, c, dtype=torch.long, device=dev) if segment_ids is None else segment_ids
        return channel_mask, time_offsets, segment_ids

    def embed_signals(self, signals, channel_ids, channel_mask=None, time_offsets=None, segment_ids=None,
                      beats: dict | None = None):
        """Signals (B, C, T) -> tokens (B, C*P', H), patches (B, C, P', patch_size), present mask (B, C*P') and
        patch start times (B, C*P') in seconds; P' = P raw patches + config.beat_tokens median-beat patches.

        beats: precomputed median_beat_batch output (from a collate function); computed here when None."""
        channel_mask, time_offsets, segment_ids = self._defaults(signals, channel_ids, channel_mask, time_offsets,
                                                                 segment_ids)
        modality = self.modality_embed.weight[SIGNAL_MODALITY]
        scale = self.config.channel_input_scales(signals.device)[channel_ids]
        tokens, patches, times = self.signal_embed(signals, channel_ids, time_offsets, segment_ids, modality, scale)
        b, c, p, h = tokens.shape
        present = channel_mask.unsqueeze(-1).expand(b, c, p)
        if self.config.beat_tokens:
            beat_tok, beat_patches, beat_times, beat_present = self._embed_beats(
                signals, channel_ids, channel_mask, time_offsets, segment_ids, modality, scale, beats)
            tokens, patches = torch.cat([tokens, beat_tok], 2), torch.cat([patches, beat_patches], 2)
            times, present = torch.cat([times, beat_times], 2), torch.cat([present, beat_present], 2)
        p = tokens.shape[2]
        return tokens.reshape(b, c * p, h), patches, present.reshape(b, c * p), times.reshape(b, c * p)

    def _embed_beats(self, signals, channel_ids, channel_mask, time_offsets, segment_ids, modality, scale, beats):
        """Median-beat tokens (B, C, Pb, H), patches, times (B, C, Pb) s and presence (B, C, Pb) bool."""
        cfg = self.config
        if beats is None:
            beats = median_beat_batch(signals, channel_ids, channel_mask, cfg.channel_vocab, *cfg.beat_window)
        # placed one patch before the R peak of the beat nearest the window centre, under their own segment id
        offsets = time_offsets + beats["beat_start_s"][:, None]
        tokens, patches, times = self.signal_embed(beats["beat_signals"].to(signals.dtype), channel_ids, offsets,
                                                   torch.full_like(segment_ids, cfg.beat_segment), modality, scale)
        present = (channel_mask & beats["beat_ok"].bool()[:, None]).unsqueeze(-1).expand_as(times)
        return tokens, patches, times, present

    def token_segments(self, segment_ids: torch.Tensor | None, channel_ids: torch.Tensor, tokens_per_channel: int):
        """(B, C) segment ids -> (B, C*P') per signal token, the median-beat patches under config.beat_segment."""
        seg = torch.zeros_like(channel_ids) if segment_ids is None else segment_ids
        b, c = channel_ids.shape
        per_token = seg.unsqueeze(-1).expand(b, c, tokens_per_channel).clone()
        if self.config.beat_tokens:
            per_token[..., tokens_per_channel - self.config.beat_tokens:] = self.config.beat_segment
        return per_token.reshape(b, c * tokens_per_channel)

    def embed_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) -> (B, L, H) text tokens."""
        return self.text_embed(input_ids, self.modality_embed.weight[TEXT_MODALITY])

    def encode(self, signal_tokens, signal_valid, text_tokens=None, text_valid=None, signal_times=None) -> torch.Tensor:
        """Run the encoder on [signal | text] tokens with padding masks -> (B, K + L, H).

        signal_times (B, K) patch start times in seconds drive the rotary time attention (text sits at time 0).
        """
        x = signal_tokens if text_tokens is None else torch.cat([signal_tokens, text_tokens], dim=1)
        mask = joint_attention_mask(signal_valid, None if text_tokens is None else text_valid.bool(),
                                    self.config.signal_attends_text)
        return self.encoder(x, mask, self.rope(signal_times, x.shape[1]))

    def rope(self, signal_times: torch.Tensor | None, length: int, decoder: bool = False):
        """Rotary (cos, sin) for [signal | text] tokens of total `length`, or None when time_rope is off."""
        cfg = self.config
        heads, dim = (cfg.decoder_num_heads, cfg.decoder_hidden_size) if decoder else (cfg.num_attention_heads,
                                                                                       cfg.hidden_size)
        return rotary_for(cfg, signal_times, length, dim // heads)

    def encode_present(self, signals, channel_ids, channel_mask=None, time_offsets=None, input_ids=None,
                       text_mask=None, segment_ids=None, beats: dict | None = None):
        """Encode only present tokens -> (EncodedContext, order (B, K) token indices, present (B, C*P), patches)."""
        tokens, patches, present, tok_times = self.embed_signals(signals, channel_ids, channel_mask, time_offsets,
                                                                 segment_ids, beats)
        counts = present.sum(1)
        k = int(counts.max())
        # stable sort puts present tokens first in their original order; padding rows are masked out of attention
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)[:, :k]
        valid = torch.arange(k, device=tokens.device)[None] < counts[:, None]
        text_tokens = None if input_ids is None else self.embed_text(input_ids)
        if input_ids is not None and text_mask is None:
            text_mask = input_ids != self.config.text_pad_id
        times = torch.gather(tok_times, 1, order)
        hidden = self.encode(gather_tokens(tokens, order), valid, text_tokens, text_mask, times)
        all_valid = valid if text_tokens is None else torch.cat([valid, text_mask.bool()], dim=1)
        all_times = F.pad(times, (0, hidden.shape[1] - k))
        return EncodedContext(hidden=hidden, valid=all_valid, times=all_times, num_signal=k), order, present, patches

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
                beats: dict | None = None, **batch_extras) -> CardioFMModelOutput:
        """signals (B, C, T) at config.sampling_rate Hz, channel_ids (B, C) CHANNEL_VOCAB ids, channel_mask (B, C),
        time_offsets (B, C) seconds, input_ids/text_mask (B, L), segment_ids (B, C) -> CardioFMModelOutput.

        beats: precomputed median beats (else the batch's beat_signals/beat_ok/beat_start_s, else computed here).
        Other collated keys (COLLATED_KEYS: vitals, labels, ...) are accepted and ignored so `model(**batch)` works;
        any other keyword is a TypeError.
        """
        extra_beats = batch_beats(batch_extras, "CardioFMModel.forward")
        beats = beats if beats is not None else extra_beats
        ctx, order, present, patches = self.encode_present(signals, channel_ids, channel_mask, time_offsets,
                                                           input_ids, text_mask, segment_ids, beats)
        b, c, pt, _ = patches.shape
        p = pt - self.config.beat_tokens
        k, h = ctx.num_signal, ctx.hidden.shape[-1]
        sig = ctx.hidden[:, :k] * ctx.valid[:, :k, None]
        full = torch.zeros(b, c * pt, h, dtype=sig.dtype, device=sig.device).scatter(
            1, order[..., None].expand(-1, -1, h), sig)
        full = (full * present[..., None]).view(b, c, pt, h)  # padding rows land on missing slots: keep those zero
        present = present.view(b, c, pt)
        raw, raw_present = full[:, :, :p], present[:, :, :p]
        pooled = raw.sum((1, 2)) / raw_present.sum((1, 2))[:, None].clamp_min(1)
        beat_hidden = beat_mask = None
        if self.config.beat_tokens:
            beat_hidden, beat_mask = full[:, :, p:], present[:, :, p:]
            n_beat = beat_mask.sum((1, 2))[:, None]
            beat_mean = beat_hidden.sum((1, 2)) / n_beat.clamp_min(1)
            pooled = torch.where(n_beat > 0, 0.5 * (pooled + beat_mean), pooled)
        raw_flat, raw_mask = raw.reshape(b, c * p, h), raw_present.reshape(b, c * p)
        text_hidden = ctx.hidden[:, k:] if input_ids is not None else None
        last = raw_flat if text_hidden is None else torch.cat([raw_flat, text_hidden], dim=1)
        token_mask = raw_mask if text_hidden is None else torch.cat([raw_mask, ctx.valid[:, k:]], dim=1)
        return CardioFMModelOutput(last_hidden_state=last, token_mask=token_mask, pooled_output=pooled,
                                   signal_hidden_state=raw, beat_hidden_state=beat_hidden, beat_token_mask=beat_mask,
                                   text_hidden_state=text_hidden)
