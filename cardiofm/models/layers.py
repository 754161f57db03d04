"""Building blocks: signal/text token embeddings (by channel name and absolute time) and pre-norm SDPA blocks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import Mlp
from torch import nn

SIGNAL_MODALITY, TEXT_MODALITY = 0, 1


def sinusoidal_time_features(times_s: torch.Tensor, dim: int, min_period_s: float, max_period_s: float) -> torch.Tensor:
    """Times in seconds (...) -> (..., dim) sin/cos features with periods from min_period_s to max_period_s."""
    half = dim // 2
    # computed on the fly (no buffer): cheap, and safe when HF builds the model on the meta device
    log_periods = torch.linspace(math.log(min_period_s), math.log(max_period_s), half, device=times_s.device)
    angular = 2 * math.pi * torch.exp(-log_periods)
    phase = times_s.float().unsqueeze(-1) * angular
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


def patchify(signals: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, T) samples -> (B, C, ceil(T / patch_size), patch_size); a ragged tail is zero-padded."""
    pad = (-signals.shape[-1]) % patch_size
    if pad:
        signals = F.pad(signals, (0, pad))
    return rearrange(signals, "b c (n p) -> b c n p", p=patch_size)


class ChannelTimeEmbedding(nn.Module):
    """Where a signal token sits: channel (looked up by name id) + absolute time + segment (which ECG of a pair)."""

    def __init__(self, num_channels: int, num_segments: int, dim: int, time_dim: int,
                 min_period_s: float, max_period_s: float):
        super().__init__()
        self.channel_embed = nn.Embedding(num_channels, dim)
        self.segment_embed = nn.Embedding(num_segments, dim)
        self.time_proj = nn.Linear(time_dim, dim)
        self.time_proj.embedding_like = True  # initialised like an embedding table (see _init_weights)
        self.time_dim, self.min_period_s, self.max_period_s = time_dim, min_period_s, max_period_s

    def forward(self, channel_ids: torch.Tensor, times_s: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        """channel_ids, times_s (seconds), segment_ids: (B, ...) -> (B, ..., dim)."""
        feats = sinusoidal_time_features(times_s, self.time_dim, self.min_period_s, self.max_period_s)
        time = self.time_proj(feats.to(self.time_proj.weight.dtype))
        return self.channel_embed(channel_ids) + self.segment_embed(segment_ids) + time


class ChannelPatchEmbed(nn.Module):
    """Per-channel linear map of a patch (weights looked up by channel name id).

    ECG leads are projections of one cardiac dipole onto different lead vectors (III = II - I, aVR = -(I + II) / 2):
    a lead-specific map lets the encoder place every lead in a shared space where those identities are additive,
    which a shared projection plus an additive channel embedding can only learn through deep nonlinearities.
    """

    def __init__(self, num_channels: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_channels, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_channels, out_dim))

    def forward(self, x: torch.Tensor, channel_ids: torch.Tensor) -> torch.Tensor:
        """x (B, C, P, in_dim), channel_ids (B, C) -> (B, C, P, out_dim)."""
        w = self.weight[channel_ids]  # (B, C, in, out): one small matrix per input channel
        return torch.matmul(x.to(w.dtype), w) + self.bias[channel_ids].unsqueeze(2)


class ChannelPatchHead(nn.Module):
    """Per-channel readout of a query feature into a patch waveform: all channels at once, then the asked one."""

    def __init__(self, dim: int, num_channels: int, patch_size: int):
        super().__init__()
        self.num_channels, self.patch_size = num_channels, patch_size
        # one (dim x channels*patch) matmul beats gathering a (dim x patch) matrix per query: B*Q*dim*patch floats
        self.proj = nn.Linear(dim, num_channels * patch_size)

    def forward(self, x: torch.Tensor, channel_ids: torch.Tensor) -> torch.Tensor:
        """x (B, Q, dim), channel_ids (B, Q) -> (B, Q, patch_size)."""
        out = self.proj(x).view(*x.shape[:2], self.num_channels, self.patch_size)
        index = channel_ids[..., None, None].expand(-1, -1, 1, self.patch_size)
        return torch.gather(out, 2, index).squeeze(2)


class SignalEmbedding(nn.Module):
    """Signal patches -> tokens: linear patch projection + channel/time/segment embedding + signal modality."""

    def __init__(self, patch_size: int, num_channels: int, num_segments: int, dim: int, time_dim: int,
                 patch_duration_s: float, max_period_s: float):
        super().__init__()
        self.patch_size, self.patch_duration_s = patch_size, patch_duration_s
        self.patch_proj = ChannelPatchEmbed(num_channels, patch_size, dim)
        # shortest period = one patch: finer time detail is carried by the waveform inside the patch
        self.position = ChannelTimeEmbedding(num_channels, num_segments, dim, time_dim, patch_duration_s, max_period_s)

    def patch_times(self, num_patches: int, time_offsets: torch.Tensor) -> torch.Tensor:
        """(B, C) channel start times in seconds -> (B, C, num_patches) absolute patch start times in seconds."""
        starts = torch.arange(num_patches, device=time_offsets.device, dtype=torch.float32) * self.patch_duration_s
        return time_offsets.float().unsqueeze(-1) + starts

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, time_offsets: torch.Tensor,
                segment_ids: torch.Tensor, modality: torch.Tensor,
                input_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """signals (B, C, T) -> tokens (B, C, P, dim), patches (B, C, P, patch_size) unscaled, patch times (B, C, P) s.

        input_scale (B, C) multiplies each channel's waveform before projection only."""
        patches = patchify(signals, self.patch_size)
        times = self.patch_times(patches.shape[2], time_offsets)
        num_patches = patches.shape[2]
        ch = channel_ids.unsqueeze(-1).expand(-1, -1, num_patches)
        seg = segment_ids.unsqueeze(-1).expand(-1, -1, num_patches)
        scaled = patches if input_scale is None else patches * input_scale[..., None, None].to(patches.dtype)
        tokens = self.patch_proj(scaled, channel_ids) + self.position(ch, times, seg) + modality
        return tokens, patches, times


class TextEmbedding(nn.Module):
    """Report / question token ids -> tokens: word + learned position + text modality."""

    def __init__(self, vocab_size: int, max_len: int, dim: int, pad_id: int):
        super().__init__()
        self.word_embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.pos_embed = nn.Embedding(max_len, dim)
        self.max_len = max_len

    def forward(self, input_ids: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """input_ids (B, L) -> (B, L, dim)."""
        if input_ids.shape[1] > self.max_len:
            raise ValueError(f"text length {input_ids.shape[1]} exceeds max_text_len {self.max_len}")
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.word_embed(input_ids) + self.pos_embed(pos) + modality


def time_rotary(times_s: torch.Tensor, rot_dim: int, min_period_s: float, max_period_s: float):
    """Token times (B, N) seconds -> (cos, sin) (B, 1, N, rot_dim // 2) for rotary attention over time."""
    angles = sinusoidal_time_features(times_s, rot_dim, min_period_s, max_period_s)  # [sin | cos] of the phases
    half = rot_dim // 2
    return angles[..., half:].unsqueeze(1), angles[..., :half].unsqueeze(1)


def apply_rotary(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the first 2 * half channels of each head of x (B, heads, N, head_dim) by the time angles."""
    cos, sin = rope
    half = cos.shape[-1]
    # split, not three slices: its backward is one cat, where each slice's backward zero-fills a full-size gradient
    x1, x2, rest = x.split((half, half, x.shape[-1] - 2 * half), dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


def rotary_for(cfg, signal_times: torch.Tensor | None, length: int, head_dim: int):
    """(cos, sin) of the model config `cfg` (a CardioFMConfig) for `length` tokens whose first signal_times.shape[1] are signal patches (the rest text at t=0)."""
    rot = cfg.rope_dim(head_dim)
    if not rot:
        return None
    if signal_times is None:
        raise ValueError("time_rope models need the tokens' patch times (signal_times / context_times_s)")
    times = F.pad(signal_times.float(), (0, length - signal_times.shape[1]))
    return time_rotary(times, rot, 2 * cfg.patch_duration_s, cfg.rope_max_period_s)


class Attention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention (flash/efficient kernels on GPU)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.qkv.fused_qkv_heads = num_heads  # lets the model's init anchor the rotary q/k channels
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, rope=None) -> torch.Tensor:
        """x (B, N, dim); attn_mask bool broadcastable to (B, heads, N, N), True = may attend; rope from time_rotary."""
        b, n, _ = x.shape
        # unbind the (b, n, 3, h, d) view: its backward stacks q/k/v gradients straight into the qkv layout, where
        # "three b h n d" first would need a contiguous copy of the whole qkv gradient per layer
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, -1).transpose(1, 3).unbind(2)  # each (b, h, n, d)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


def mlp(dim: int, hidden: int, dropout: float = 0.0) -> Mlp:
    """Two-layer GELU feed-forward (timm's Mlp: fc1 -> GELU -> fc2), dropout after fc2 only."""
    return Mlp(dim, hidden, act_layer=nn.GELU, drop=(0.0, dropout))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)); the residual stream stays un-normalised."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, eps: float = 1e-6, qkv_bias: bool = True,
                 dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attention_dropout)
        self.mlp = mlp(dim, mlp_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, rope=None) -> torch.Tensor:
        """x (B, N, dim) -> (B, N, dim)."""
        x = x + self.drop(self.attn(self.norm1(x), attn_mask, rope))
        return x + self.mlp(self.norm2(x))
