"""Per-window beat information computed in the data layer: median beats (R-peak aligned, for the encoder's
median-beat tokens) and beat timing (ECG R-peak and PPG pulse-peak rates, the measured input of rate-aware vital heads).

Why median beats: diagnostic morphology (Q waves, ST level, T inversion) is a per-beat shape that a fixed patch grid
cuts at a different phase in every beat and every record; the median beat is phase-aligned and averages out noise,
which is what the classical median-beat features exploit. The model computes them from its own input when a batch does
not carry them, so training, evaluation and raw-array inference share one path; collate functions precompute them in
DataLoader workers (`median_beat_batch`) to keep R-peak detection off the accelerator's host thread.

Why rates: a transformer over 0.25-0.5 s patches estimates timing only coarsely; heart rate is a timing measurement
that a detector makes to a fraction of a beat. Rate-aware heads therefore receive these numbers and learn the rest
(monitor averaging, which source to trust, artefacts) from the encoder's features.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import signal as sps

from .channels import is_ecg
from .rpeaks import detect_rpeaks

MIN_MEDIAN_BEATS = 2   # a "median" of one beat is just that beat: fewer aligned beats -> no beat tokens for the window
MIN_RATE_BEATS = 3     # fewer detected beats in a window: the rate is not measured (flag 0)


def median_beats(signals: np.ndarray, ecg: np.ndarray, fs: float, before: int, length: int,
                 rpeaks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median beats of a batch.

    signals (B, C, T) samples, ecg (B, C) bool = present ECG leads used to find R peaks, `before` samples kept
    before each R peak, `length` samples per beat -> beats (B, C, length) float32 (zeros where not found),
    ok (B,) bool (>= MIN_MEDIAN_BEATS whole beats found), start (B,) float64 seconds: start of the beat nearest the
    window centre (where the beat tokens are placed in time). rpeaks: each window's R peaks (samples) found once
    before (`with_beat_info`), so that detection is skipped here.
    """
    b, c, t = signals.shape
    beats = np.zeros((b, c, length), np.float32)
    ok = np.zeros(b, bool)
    start = np.zeros(b, np.float64)
    for i in range(b):
        if not ecg[i].any():
            continue
        peaks = detect_rpeaks(signals[i, ecg[i]], fs) if rpeaks is None else np.asarray(rpeaks[i], np.int64)
        onsets = peaks - before
        onsets = onsets[(onsets >= 0) & (onsets + length <= t)]
        if len(onsets) < MIN_MEDIAN_BEATS:
            continue
        stack = np.stack([signals[i, :, o:o + length] for o in onsets])        # (beats, C, length)
        beats[i] = np.median(stack, axis=0)
        ok[i] = True
        start[i] = onsets[np.argmin(np.abs(onsets + before - t / 2))] / fs
    return beats, ok, start


BEAT_KEYS = ("beat_signals", "beat_ok", "beat_start_s")   # batch keys of precomputed median beats


def median_beat_batch(signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor, channel_vocab,
                      fs: float, before: int, length: int,
                      rpeaks: Sequence[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Batch tensors (B, C, T) signals, (B, C) ids and mask -> {beat_signals (B, C, length) in the signals' dtype,
    beat_ok (B,) bool, beat_start_s (B,) float32 seconds} on the signals' device (see median_beats)."""
    vocab_ecg = torch.tensor([is_ecg(name) for name in channel_vocab], dtype=torch.bool)
    ecg = vocab_ecg[channel_ids.cpu()] & channel_mask.bool().cpu()
    beats, ok, start = median_beats(signals.detach().float().cpu().numpy(), ecg.numpy(), fs, before, length, rpeaks)
    dev = signals.device
    return {"beat_signals": torch.from_numpy(beats).to(dev, signals.dtype), "beat_ok": torch.from_numpy(ok).to(dev),
            "beat_start_s": torch.from_numpy(start).to(dev, torch.float32)}


# 0.3 s minimum pulse spacing: <= 200 bpm; a third of the robust pulse amplitude as prominence rejects the dicrotic
# notch and motion wiggles.
PULSE_MIN_INTERVAL_S = 0.3
PULSE_BAND_HZ = (0.5, 5.0)
# Feature order of `beat_rate_features` (bpm, flags, unitless).
RATE_FEATURES = ("ecg_hr_median", "ecg_hr_mean", "ecg_valid", "ppg_hr_median", "ppg_valid", "ecg_rr_cv")


def detect_pulse_peaks(ppg: np.ndarray, fs: float) -> np.ndarray:
    """Systolic pulse-peak sample indices of a PPG (samples,) at fs Hz, any units (0.5-5 Hz band-pass, then peaks
    >= 0.3 s apart with prominence above a third of the 5-95 % pulse amplitude)."""
    x = np.asarray(ppg, np.float64).ravel()
    if len(x) < int(2 * fs) or not np.isfinite(x).all():
        return np.zeros(0, np.int64)
    sos = sps.butter(2, [PULSE_BAND_HZ[0], min(PULSE_BAND_HZ[1], 0.45 * fs)], btype="band", fs=fs, output="sos")
    y = sps.sosfiltfilt(sos, x)
    amp = np.percentile(y, 95) - np.percentile(y, 5)
    if amp <= 0:
        return np.zeros(0, np.int64)
    peaks, _ = sps.find_peaks(y, distance=max(1, int(PULSE_MIN_INTERVAL_S * fs)), prominence=amp / 3)
    return peaks.astype(np.int64)


def _rates(peaks: np.ndarray, fs: float) -> tuple[float, float, float]:
    """(median-interval rate, mean-interval rate in bpm, interval coefficient of variation); NaN if too few."""
    if len(peaks) < MIN_RATE_BEATS:
        return float("nan"), float("nan"), float("nan")
    intervals = np.diff(peaks) / fs
    return 60.0 / float(np.median(intervals)), 60.0 / float(intervals.mean()), float(intervals.std() / intervals.mean())


def beat_rate_features(signal: np.ndarray, channels: Sequence[str], fs: float,
                       present: Sequence[bool] | None = None, rpeaks: np.ndarray | None = None) -> np.ndarray:
    """(6,) RATE_FEATURES of one window (channels, samples) at fs Hz: ECG rate by median and mean R-R (bpm), ECG
    flag, PPG rate by median pulse interval (bpm), PPG flag, R-R CV; rates of an absent/undetected source are 0.
    rpeaks: the window's R peaks (samples) when already found (`with_beat_info`)."""
    present = np.ones(len(channels), bool) if present is None else np.asarray(present, bool)
    ecg = [i for i, c in enumerate(channels) if present[i] and is_ecg(c)]
    ppg = [i for i, c in enumerate(channels) if present[i] and c == "PPG"]
    e_med = e_mean = cv = p_med = float("nan")
    if ecg:
        peaks = detect_rpeaks(np.asarray(signal)[ecg], fs) if rpeaks is None else np.asarray(rpeaks, np.int64)
        e_med, e_mean, cv = _rates(peaks, fs)
    if ppg:
        p_med, _, _ = _rates(detect_pulse_peaks(np.asarray(signal)[ppg[0]], fs), fs)
    e_ok, p_ok = np.isfinite(e_med), np.isfinite(p_med)
    return np.array([e_med if e_ok else 0.0, e_mean if e_ok else 0.0, float(e_ok), p_med if p_ok else 0.0,
                     float(p_ok), cv if e_ok else 0.0], dtype=np.float32)


def batch_rate_features(signals: np.ndarray, channel_names: Sequence[Sequence[str]], present: np.ndarray,
                        fs: float) -> np.ndarray:
    """(B, 6) beat_rate_features of a batch of windows (B, C, T) with per-sample channel names and masks."""
    return np.stack([beat_rate_features(x, names, fs, m) for x, names, m in zip(signals, channel_names, present)])


def measured_rate(features: np.ndarray) -> np.ndarray:
    """Heart rate (bpm) measured in each window from (..., 6) RATE_FEATURES: the ECG median-R-R rate, else the PPG
    pulse rate, else NaN (nothing detected)."""
    f = np.asarray(features, np.float64)
    return np.where(f[..., 2] > 0, f[..., 0], np.where(f[..., 4] > 0, f[..., 3], np.nan))


BEAT_INFO_KEYS = ("rpeaks", "rate_features")   # sample keys of per-window beat information


def window_rpeaks(sample: dict, fs: float) -> np.ndarray:
    """R peaks (samples, int64) of a window sample, found on its present ECG leads as median_beats does; empty
    when it has no ECG."""
    signal, present = np.asarray(sample["signal"]), np.asarray(sample["channel_mask"], bool)
    ecg = [i for i, c in enumerate(sample["channels"]) if present[i] and is_ecg(c)]
    return detect_rpeaks(signal[ecg], fs) if ecg else np.zeros(0, np.int64)


def with_beat_info(sample: dict, fs: float) -> dict:
    """The sample with its beat information computed once: 'rpeaks' (samples) and 'rate_features' (6,) as
    RATE_FEATURES; median beats and rate features of collated batches then skip R-peak detection."""
    if all(k in sample for k in BEAT_INFO_KEYS):
        return sample
    rpeaks = window_rpeaks(sample, fs)
    feats = beat_rate_features(sample["signal"], sample["channels"], fs, sample["channel_mask"], rpeaks)
    return {**sample, "rpeaks": rpeaks, "rate_features": feats}


def with_signal(sample: dict, signal: np.ndarray) -> dict:
    """A copy of the sample holding a new signal (an augmented one): its cached beat information described the old
    signal, so it is dropped and found again on the new one when needed."""
    out = {k: v for k, v in sample.items() if k not in BEAT_INFO_KEYS}
    out["signal"] = signal
    return out
