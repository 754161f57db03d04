"""ECG-text contrastive alignment (CLIP-style) with features gathered across processes."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def is_distributed() -> bool:
    """True inside an initialised torch.distributed job with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate (n, d) features from every process along dim 0, keeping gradients; identity in one process."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def _local_offset(n: int, device: torch.device) -> int:
    """Index of this process's first row in the gathered batch (all ranks must send the same n)."""
    return dist.get_rank() * n if is_distributed() else 0


class ContrastiveHead(nn.Module):
    """Projects pooled signal and report features to a shared space; symmetric InfoNCE over the global batch."""

    def __init__(self, hidden_size: int, dim: int):
        super().__init__()
        self.signal_proj = nn.Linear(hidden_size, dim, bias=False)
        self.text_proj = nn.Linear(hidden_size, dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07)

    def forward(self, signal_feat: torch.Tensor, text_feat: torch.Tensor) -> torch.Tensor | None:
        """signal_feat, text_feat (n, hidden) paired rows -> scalar loss, or None with fewer than 2 pairs.

        Local rows are compared with the gathered rows of every process (more negatives); with distributed
        training, every rank must pass the same n (use the batch rows, padding is not supported).
        """
        if signal_feat.shape[0] < 2 and not is_distributed():
            return None
        s = F.normalize(self.signal_proj(signal_feat).float(), dim=-1)
        t = F.normalize(self.text_proj(text_feat).float(), dim=-1)
        all_s, all_t = gather_with_grad(s), gather_with_grad(t)
        scale = self.logit_scale.clamp(max=4.6052).exp()  # cap at 100, as in CLIP, to keep logits bf16/fp16-safe
        labels = torch.arange(s.shape[0], device=s.device) + _local_offset(s.shape[0], s.device)
        return 0.5 * (F.cross_entropy(scale * s @ all_t.T, labels) + F.cross_entropy(scale * t @ all_s.T, labels))
