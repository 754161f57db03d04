"""Median beats for the encoder's median-beat tokens: every channel's beats, aligned on the R peaks of the window's
ECG leads, reduced to their sample-wise median; the encoder cuts them into patches read beside the raw patches.

Why: diagnostic morphology (Q waves, ST level, T inversion) is a per-beat shape that a fixed patch grid cuts at a
different phase in every beat and every record; the median beat is phase-aligned and averages out noise, which is
what the classical median-beat features exploit. The model computes them from its own input when a batch does not
carry them, so training, evaluation and raw-array inference share one path; collate functions may precompute them in
DataLoader workers (`median_beat_batch`) to keep R-peak detection off the accelerator's host thread.
"""
from __future__ import annotations

import numpy as np
import torch

from .channels import is_ecg
from .rpeaks import detect_rpeaks

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


BEAT_KEYS = ("beat_signals", "beat_ok", "beat_start_s")   # batch keys of precomputed median beats


def median_beat_batch(signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor, channel_vocab,
                      fs: float, before: int, length: int) -> dict[str, torch.Tensor]:
    """Batch tensors (B, C, T) signals, (B, C) ids and mask -> {beat_signals (B, C, length) in the signals' dtype,
    beat_ok (B,) bool, beat_start_s (B,) float32 seconds} on the signals' device (see median_beats)."""
    vocab_ecg = torch.tensor([is_ecg(name) for name in channel_vocab], dtype=torch.bool)
    ecg = vocab_ecg[channel_ids.cpu()] & channel_mask.bool().cpu()
    beats, ok, start = median_beats(signals.detach().float().cpu().numpy(), ecg.numpy(), fs, before, length)
    dev = signals.device
    return {"beat_signals": torch.from_numpy(beats).to(dev, signals.dtype), "beat_ok": torch.from_numpy(ok).to(dev),
            "beat_start_s": torch.from_numpy(start).to(dev, torch.float32)}
