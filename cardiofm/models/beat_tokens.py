"""Median-beat tokens: every channel's beats, aligned on the R peaks of the window's ECG leads, reduced to their
sample-wise median and cut into patches that the encoder reads beside the raw patches.

Why: diagnostic morphology (Q waves, ST level, T inversion) is a per-beat shape that a fixed patch grid cuts at a
different phase in every beat and every record; the median beat is phase-aligned and averages out noise, which is
what the classical median-beat features exploit. Computed inside the model from its own input, so training,
evaluation and raw-array inference share one path.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.channels import is_ecg
from ..data.rpeaks import detect_rpeaks

MIN_BEATS = 2   # a "median" of one beat is just that beat: fewer aligned beats -> no beat tokens for the window


def median_beats(signals: np.ndarray, ecg: np.ndarray, fs: float, before: int,
                 length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median beats of a batch.

    signals (B, C, T) samples, ecg (B, C) bool = present ECG leads used to find R peaks, `before` samples kept
    before each R peak, `length` samples per beat -> beats (B, C, length) float32 (zeros where not found),
    ok (B,) bool (>= MIN_BEATS whole beats found), start (B,) float64 seconds: start of the beat nearest the
    window centre (where the beat tokens are placed in time).
    """
    b, c, t = signals.shape
    beats = np.zeros((b, c, length), np.float32)
    ok = np.zeros(b, bool)
    start = np.zeros(b, np.float64)
    for i in range(b):
        if not ecg[i].any():
            continue
        peaks = detect_rpeaks(signals[i, ecg[i]], fs)
        onsets = peaks - before
        onsets = onsets[(onsets >= 0) & (onsets + length <= t)]
        if len(onsets) < MIN_BEATS:
            continue
        stack = np.stack([signals[i, :, o:o + length] for o in onsets])        # (beats, C, length)
        beats[i] = np.median(stack, axis=0)
        ok[i] = True
        start[i] = onsets[np.argmin(np.abs(onsets + before - t / 2))] / fs
    return beats, ok, start


def ecg_vocab_mask(channel_vocab, device=None) -> torch.Tensor:
    """(V,) bool: which channel-vocabulary entries are ECG leads."""
    return torch.tensor([is_ecg(name) for name in channel_vocab], dtype=torch.bool, device=device)


def beat_inputs(signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor, channel_vocab,
                fs: float, before: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch wrapper of median_beats: (B, C, T) -> beats (B, C, length) in the signal's dtype and device,
    ok (B,) bool, start (B,) float32 seconds."""
    ecg = ecg_vocab_mask(channel_vocab, channel_ids.device)[channel_ids] & channel_mask.bool()
    x = signals.detach().float().cpu().numpy()
    beats, ok, start = median_beats(x, ecg.cpu().numpy(), fs, before, length)
    dev = signals.device
    return (torch.from_numpy(beats).to(dev, signals.dtype), torch.from_numpy(ok).to(dev),
            torch.from_numpy(start).to(dev, torch.float32))
