"""A plain ViT-MAE built from timm blocks: the same-size reference the cardiofm steps are measured against.

Tokens are the window's per-channel patches laid out channel by channel (C x P tokens of `patch_size` samples), with a
learned position embedding per token; no channel/time embeddings, no missing channels, no text. Pretraining follows
MAE: random masking by argsort of noise, encoder on the visible tokens, a decoder over all tokens (mask tokens
re-inserted), mean-square error on the masked patches. Finetuning runs the encoder on all tokens, mean-pools and
applies a linear multi-label head with BCE.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import cardiofm  # noqa: F401  (torchvision guard before timm)
from timm.models.vision_transformer import Block


def _blocks(width: int, depth: int, heads: int, ffn: int) -> nn.Sequential:
    return nn.Sequential(*[Block(width, heads, ffn / width, qkv_bias=True) for _ in range(depth)])


class ViTMAEReference(nn.Module):
    """ViT-MAE over (B, C, T) signals cut into C x (T / patch_size) patch tokens; sizes from a CardioFMConfig."""

    def __init__(self, config, channels: int, num_labels: int = 5):
        super().__init__()
        c = config
        self.patch_size, self.mask_ratio = c.patch_size, c.mask_ratio
        self.tokens = channels * c.patches_per_window
        self.patch_embed = nn.Linear(c.patch_size, c.hidden_size)
        self.pos = nn.Parameter(torch.randn(1, self.tokens, c.hidden_size) * 0.02)
        self.encoder = _blocks(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size)
        self.norm = nn.LayerNorm(c.hidden_size)
        self.decoder_embed = nn.Linear(c.hidden_size, c.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_hidden_size))
        self.decoder_pos = nn.Parameter(torch.randn(1, self.tokens, c.decoder_hidden_size) * 0.02)
        self.decoder = _blocks(c.decoder_hidden_size, c.decoder_num_layers, c.decoder_num_heads,
                               c.decoder_intermediate_size)
        self.decoder_norm = nn.LayerNorm(c.decoder_hidden_size)
        self.decoder_pred = nn.Linear(c.decoder_hidden_size, c.patch_size)
        self.head = nn.Linear(c.hidden_size, num_labels)

    def patchify(self, signals: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C x P, patch_size) patches, channel-major."""
        b, ch, t = signals.shape
        return signals.reshape(b, ch * (t // self.patch_size), self.patch_size)

    def pretraining_loss(self, signals: torch.Tensor) -> torch.Tensor:
        """MAE loss: mean-square error on the masked patches of one batch."""
        patches = self.patchify(signals)
        b, n, _ = patches.shape
        keep = int(n * (1 - self.mask_ratio))
        order = torch.argsort(torch.rand(b, n, device=signals.device), dim=1)
        restore = torch.argsort(order, dim=1)
        x = self.patch_embed(patches) + self.pos
        x = torch.gather(x, 1, order[:, :keep, None].expand(-1, -1, x.shape[-1]))
        x = self.norm(self.encoder(x))
        y = self.decoder_embed(x)
        y = torch.cat([y, self.mask_token.expand(b, n - keep, -1)], 1)
        y = torch.gather(y, 1, restore[..., None].expand(-1, -1, y.shape[-1])) + self.decoder_pos
        pred = self.decoder_pred(self.decoder_norm(self.decoder(y)))
        masked = torch.ones(b, n, device=signals.device)
        masked[:, :keep] = 0
        masked = torch.gather(masked, 1, restore)
        err = (pred.float() - patches.float()).pow(2).mean(-1)
        return (err * masked).sum() / masked.sum()

    def finetuning_loss(self, signals: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Multi-label BCE of a mean-pooled encoder over all tokens."""
        x = self.patch_embed(self.patchify(signals)) + self.pos
        logits = self.head(self.norm(self.encoder(x)).mean(1))
        return F.binary_cross_entropy_with_logits(logits.float(), labels)
