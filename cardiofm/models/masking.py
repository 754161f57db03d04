"""MAE-style masking of signal tokens: random patches plus whole channels; missing channels are never visible."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MaskingPlan:
    """Which tokens the encoder sees. N = C * P tokens per sample (channel-major), K = max visible count.

    ids_shuffle (B, N): token indices, visible first; ids_restore (B, N): inverse permutation (rank of each token);
    num_visible (B,); visible_valid (B, K) bool; masked (B, N) bool = hidden AND present (the loss positions);
    dropped_channels (B, C) bool = channels hidden entirely.
    """

    ids_shuffle: torch.Tensor
    ids_restore: torch.Tensor
    num_visible: torch.Tensor
    visible_valid: torch.Tensor
    masked: torch.Tensor
    dropped_channels: torch.Tensor

    @property
    def visible_ids(self) -> torch.Tensor:
        """(B, K) indices of the tokens fed to the encoder (padding entries past num_visible)."""
        return self.ids_shuffle[:, : self.visible_valid.shape[1]]


def plan_masking(channel_mask: torch.Tensor, patches_per_channel: int, mask_ratio: float, channel_mask_prob: float,
                 generator: torch.Generator | None = None, token_present: torch.Tensor | None = None) -> MaskingPlan:
    """channel_mask (B, C) bool -> MaskingPlan hiding exactly N_present - floor(N_present * (1 - mask_ratio)) tokens.

    token_present (B, C * P) bool narrows presence below the channel level (median-beat tokens of a window without
    detected beats); by default every token of a present channel is present.

    With probability channel_mask_prob a sample also hides k whole present channels, k uniform in
    [1, floor(mask_ratio * present channels)]; that bound keeps the dropped tokens inside the masked budget, so the
    ratio stays exact and at least one channel keeps visible patches. Dropping leads (or the PPG) and reconstructing
    them is what teaches reconstruction from fewer leads and PPG -> ECG.
    """
    b, c = channel_mask.shape
    p, dev = patches_per_channel, channel_mask.device
    present_ch = channel_mask.bool()
    n_ch = present_ch.sum(1)
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=generator.device if generator else dev).to(dev)

    # whole-channel masking: rank present channels by noise, drop the k lowest ranks
    max_k = torch.floor(mask_ratio * n_ch.float()).long()
    k = torch.floor(rand(b) * max_k.float()).long() + 1
    k = torch.where((rand(b) < channel_mask_prob) & (max_k >= 1), torch.minimum(k, max_k), torch.zeros_like(k))
    ch_noise = rand(b, c) + (~present_ch).float() * 2.0  # missing channels rank last and are never "dropped"
    ch_rank = torch.argsort(torch.argsort(ch_noise, dim=1), dim=1)
    dropped = (ch_rank < k[:, None]) & present_ch

    # token noise: visible candidates in [0, 1), dropped channels in [1, 2), missing channels in [2, 3)
    present = present_ch.unsqueeze(-1).expand(b, c, p).reshape(b, c * p)
    if token_present is not None:
        present = present & token_present.bool()
    drop_tok = dropped.unsqueeze(-1).expand(b, c, p).reshape(b, c * p)
    noise = rand(b, c * p) + drop_tok.float() + (~present).float() * 2.0
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    n_present = present.sum(1)
    num_visible = torch.floor(n_present.float() * (1.0 - mask_ratio)).long().clamp_min(1)
    k_max = int(num_visible.max())
    visible_valid = torch.arange(k_max, device=dev)[None] < num_visible[:, None]
    masked = (ids_restore >= num_visible[:, None]) & present
    return MaskingPlan(ids_shuffle, ids_restore, num_visible, visible_valid, masked, dropped)


def mask_text(input_ids: torch.Tensor, text_mask: torch.Tensor, mask_ratio: float, mask_id: int,
              special_ids: tuple[int, ...], generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a mask_ratio share of real, non-special text tokens (at least one per non-empty report).

    Returns (masked input ids (B, L), target mask (B, L) bool); hidden tokens become mask_id.
    """
    dev = input_ids.device
    candidate = text_mask.bool() & ~torch.isin(input_ids, torch.tensor(special_ids, device=dev))
    noise = torch.rand(input_ids.shape, generator=generator,
                       device=generator.device if generator else dev).to(dev)
    noise = torch.where(candidate, noise, torch.full_like(noise, 2.0))
    n_cand = candidate.sum(1)
    n_mask = torch.where(n_cand > 0, torch.ceil(n_cand.float() * mask_ratio).long().clamp_min(1), 0)
    rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    target = (rank < n_mask[:, None]) & candidate
    return torch.where(target, torch.full_like(input_ids, mask_id), input_ids), target
