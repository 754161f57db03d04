"""Transformer encoder stack (pre-norm SDPA blocks, optional activation checkpointing) and attention-mask helpers."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layers import TransformerBlock


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) and index (B, K) long -> (B, K, ...) rows of x picked per sample."""
    shape = index.shape + x.shape[2:]
    flat = index.reshape(index.shape[0], index.shape[1], *([1] * (x.dim() - 2))).expand(shape)
    return torch.gather(x, 1, flat)


def key_padding_mask(valid: torch.Tensor) -> torch.Tensor | None:
    """(B, N) bool of real tokens -> SDPA mask (B, 1, 1, N), or None when every token is real (fastest kernels)."""
    if valid.is_meta or bool(valid.all()):
        return None
    return valid[:, None, None, :]


def joint_attention_mask(signal_valid: torch.Tensor, text_valid: torch.Tensor | None,
                         signal_attends_text: bool) -> torch.Tensor | None:
    """Mask for [signal tokens | text tokens]: padding is never attended; signals see text only if allowed.

    Text tokens always see every real signal token (masked report modelling is conditioned on the signals). With
    `signal_attends_text=False` the signal features are the same with or without a report, which keeps ECG-text
    contrastive alignment honest and lets one embedding serve signal-only and signal+text inputs.
    """
    if text_valid is None:
        return key_padding_mask(signal_valid)
    valid = torch.cat([signal_valid, text_valid], dim=1)
    if signal_attends_text:
        return key_padding_mask(valid)
    n_sig, n_all = signal_valid.shape[1], valid.shape[1]
    rows = torch.ones(n_all, n_all, dtype=torch.bool, device=valid.device)
    rows[:n_sig, n_sig:] = False
    return valid[:, None, None, :] & rows[None, None]


class TransformerEncoder(nn.Module):
    """A stack of pre-norm blocks followed by a final LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_dim: int, eps: float = 1e-6, qkv_bias: bool = True,
                 dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList([TransformerBlock(dim, num_heads, mlp_dim, eps, qkv_bias, dropout, attention_dropout)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.gradient_checkpointing = False  # toggled by PreTrainedModel.gradient_checkpointing_enable()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, rope=None) -> torch.Tensor:
        """x (B, N, dim), attn_mask bool (B, 1, 1|N, N) True = may attend, rope (cos, sin) -> (B, N, dim)."""
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # recompute activations in backward: memory O(depth) smaller at ~1.3x compute
                x = checkpoint(layer, x, attn_mask, rope, use_reentrant=False)
            else:
                x = layer(x, attn_mask, rope)
        return self.norm(x)
