"""Light cross-attention decoder: encoded context + (channel, time) queries -> patch waveforms."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from .configuration import CardioFMConfig
from .encoder import key_padding_mask
from .layers import ChannelPatchHead, ChannelTimeEmbedding, apply_rotary, mlp, rotary_for


class CrossAttentionBlock(nn.Module):
    """Pre-norm block where queries attend to a fixed context only (never to each other), then an MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm_q, self.norm_kv, self.norm2 = (nn.LayerNorm(dim, eps=eps) for _ in range(3))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q.fused_qkv_heads, self.kv.fused_qkv_heads = num_heads, num_heads  # rotary q/k anchoring at init
        self.q.anchor_blocks, self.kv.anchor_blocks = (0,), (0,)
        self.proj = nn.Linear(dim, dim)
        self.mlp = mlp(dim, mlp_dim)

    def forward(self, x, context, mask=None, rope_q=None, rope_k=None):
        """x (B, Q, dim) queries, context (B, M, dim), mask (B, 1, 1, M) -> (B, Q, dim)."""
        q = rearrange(self.q(self.norm_q(x)), "b n (h d) -> b h n d", h=self.num_heads)
        b, m, _ = context.shape
        # unbind of a view: the backward stacks k/v gradients in the kv layout without a contiguous copy
        k, v = self.kv(self.norm_kv(context)).view(b, m, 2, self.num_heads, -1).transpose(1, 3).unbind(2)
        if rope_q is not None:
            q, k = apply_rotary(q, rope_q), apply_rotary(k, rope_k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(rearrange(out, "b h n d -> b n (h d)"))
        return x + self.mlp(self.norm2(x))


class CardioFMDecoder(nn.Module):
    """Reconstructs signal patches at arbitrary (channel id, patch start time) queries from encoder features.

    Query token = learned mask token + the decoder's own channel/time/segment embedding; context = encoder outputs
    projected to the decoder width. Queries cross-attend to the context only (as in CrossMAE), so each prediction
    depends on the visible input alone, not on which other queries are asked: any (channel, time) set works.
    """

    def __init__(self, config: CardioFMConfig):
        super().__init__()
        d = config.decoder_hidden_size
        self.context_proj = nn.Linear(config.hidden_size, d)
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.query_position = ChannelTimeEmbedding(len(config.channel_vocab), config.num_segments, d,
                                                   config.time_embed_dim, config.patch_duration_s,
                                                   config.max_time_period_s)
        self.layers = nn.ModuleList([CrossAttentionBlock(d, config.decoder_num_heads, config.decoder_intermediate_size,
                                                         config.layer_norm_eps) for _ in range(config.decoder_num_layers)])
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.pred = ChannelPatchHead(d, len(config.channel_vocab), config.patch_size)
        self.model_config, self.num_heads = config, config.decoder_num_heads
        self.gradient_checkpointing = False

    def forward(self, context: torch.Tensor, context_valid: torch.Tensor, query_channel_ids: torch.Tensor,
                query_times_s: torch.Tensor, query_segment_ids: torch.Tensor | None = None,
                query_valid: torch.Tensor | None = None, context_times_s: torch.Tensor | None = None) -> torch.Tensor:
        """context (B, M, H) encoder features, context_valid (B, M) bool, query_channel_ids (B, Q) CHANNEL_VOCAB ids,
        query_times_s (B, Q) patch start times in seconds (same clock as the inputs' time_offsets),
        query_segment_ids (B, Q), query_valid (B, Q) bool (unused: queries are independent; kept for symmetry),
        context_times_s (B, M) the context tokens' patch times (EncodedContext.times; required with
        config.time_rope) -> (B, Q, patch_size) waveform in input units."""
        if query_segment_ids is None:
            query_segment_ids = torch.zeros_like(query_channel_ids)
        x = (self.mask_token + self.query_position(query_channel_ids, query_times_s, query_segment_ids)).to(context.dtype)
        ctx = self.context_proj(context)
        rope_q = rope_k = None
        if self.model_config.time_rope:
            if context_times_s is None:
                raise ValueError("this decoder attends over time: pass context_times_s=EncodedContext.times")
            hd = self.model_config.decoder_hidden_size // self.num_heads
            rope_q = rotary_for(self.model_config, query_times_s, query_times_s.shape[1], hd)
            rope_k = rotary_for(self.model_config, context_times_s, context_times_s.shape[1], hd)
        mask = key_padding_mask(context_valid.bool())
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, ctx, mask, rope_q, rope_k, use_reentrant=False)
            else:
                x = layer(x, ctx, mask, rope_q, rope_k)
        # the head works at the encoder's input scale; outputs return to input units (ECG mV)
        scale = self.model_config.channel_input_scales(x.device)[query_channel_ids]
        return self.pred(self.norm(x), query_channel_ids) / scale[..., None].to(x.dtype)
