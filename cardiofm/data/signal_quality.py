"""Measured per-lead signal-quality features of one ECG window: what PTB-XL's annotators called baseline drift,
static noise and burst noise, described physically (the logistic noise prior on them: finetune.qa.noise_prior).

The features are measured on the raw window (resampled to the model's rate, not band-passed): the model's input is
high-passed at 0.5 Hz, which removes most of the drift these features are meant to see. Per lead, after removing
each beat's QRS-T by the lead's median beat (R-aligned), the residual holds what is not cardiac:
- drift: the < 0.7 Hz envelope's range and power, absolute and relative to the lead's QRS amplitude;
- static noise: power above 30 Hz (muscle tremor / mains below the 100 Hz window's 50 Hz Nyquist) and residual power,
  both outside the QRS complexes, relative to the QRS amplitude; the median absolute second difference;
- burst noise: max over 0.5 s windows of the out-of-QRS residual power relative to its median, the residual's
  kurtosis;
- the QRS amplitude itself (a small QRS makes any noise relatively larger).
Values are logs (base e) of mV-based quantities, so a logistic regression on them is scale-free per unit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import signal as sps

from .channels import TWELVE_LEADS
from .preprocess import resample
from .rpeaks import detect_rpeaks

LEAD_FEATURES: tuple[str, ...] = (
    "log_qrs_amplitude", "log_drift_range", "log_drift_range_rel", "log_drift_power", "log_hf_power",
    "log_hf_power_rel", "log_d2_median", "log_residual_power_rel", "log_burst_ratio", "log_residual_kurtosis",
    "log_raw_range_rel")
DRIFT_HZ = 0.7          # baseline wander and respiration lie below ~0.7 Hz; the QRS has almost no energy there
HF_HZ = 30.0            # EMG/tremor/mains above 30 Hz survive the 100 Hz window's 50 Hz Nyquist
BEAT_BEFORE_S, BEAT_AFTER_S = 0.25, 0.45   # median-beat span around R: P wave to the end of T at normal rates
QRS_HALF_S = 0.06       # +-60 ms around R holds the QRS (its amplitude)
QRS_EXCLUDE_S = 0.10    # noise power is measured outside +-100 ms of each R: inside, the QRS's own high-frequency
                        # content and beat-to-beat template misfit dominate (held-out static-noise AUROC 0.48 -> 0.82)
BURST_WINDOW_S = 0.5    # a burst of noise lasts ~0.1-2 s
EPS_MV = 1e-3           # floor (mV / mV^2) so that the logs of flat leads stay finite
LIMB_LEADS = 6          # I, II, III, aVR, aVL, aVF: the first six of TWELVE_LEADS


def raw_window(signal: np.ndarray, fs: float, channels: Sequence[str], target_fs: float,
               window_s: float) -> np.ndarray:
    """(channels, samples) mV at fs Hz -> the first window_s seconds of the 12 leads at target_fs, (12, T) mV,
    not filtered; ValueError when a lead is missing, non-finite or the record is shorter than the window."""
    channels = list(channels)
    missing = [lead for lead in TWELVE_LEADS if lead not in channels]
    if missing:
        raise ValueError(f"signal-quality features need all 12 leads; missing {missing}")
    x = np.asarray(signal, np.float64)[[channels.index(lead) for lead in TWELVE_LEADS]]
    if not np.isfinite(x).all():
        raise ValueError("signal-quality features: NaN/inf samples")
    if fs != target_fs:
        x = resample(x, fs, target_fs)
    n = int(round(window_s * target_fs))
    if x.shape[1] < n:
        raise ValueError(f"signal-quality features: {x.shape[1] / target_fs:.2f} s is shorter than {window_s} s")
    return x[:, :n]


def _beat_residual(x: np.ndarray, fs: float, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (C, T) high-passed mV -> (residual (C, T) after subtracting the median beat at every R peak, QRS
    amplitude (C,) mV = peak-to-peak of the median beat within +-QRS_HALF_S)."""
    before, after = int(BEAT_BEFORE_S * fs), int(BEAT_AFTER_S * fs)
    t = x.shape[1]
    whole = peaks[(peaks >= before) & (peaks + after < t)]
    if len(whole) < 2:   # too few beats for a template: the residual is the signal itself
        return x.copy(), np.ptp(x, axis=1)
    idx = whole[:, None] + np.arange(-before, after)[None, :]          # (beats, L)
    template = np.median(x[:, idx], axis=1)                             # (C, L)
    residual = x.copy()
    for p in peaks:   # every beat, partial ones at the edges included, loses its template
        a, b = max(p - before, 0), min(p + after, t)
        residual[:, a:b] -= template[:, a - p + before:b - p + before]
    half = int(QRS_HALF_S * fs)
    qrs = np.ptp(template[:, before - half:before + half + 1], axis=1)
    return residual, qrs


def _outside_qrs(t: int, peaks: np.ndarray, fs: float) -> np.ndarray:
    """(T,) bool: samples farther than QRS_EXCLUDE_S from every R peak."""
    keep = np.ones(t, bool)
    half = int(round(QRS_EXCLUDE_S * fs))
    for p in peaks:
        keep[max(p - half, 0):p + half + 1] = False
    return keep if keep.sum() >= fs else np.ones(t, bool)   # < 1 s left (very fast or spurious peaks): all


def _burst_ratio(residual: np.ndarray, keep: np.ndarray, fs: float) -> np.ndarray:
    """(C,) max over BURST_WINDOW_S windows of the out-of-QRS residual power, over its median window."""
    w = int(BURST_WINDOW_S * fs)
    n = residual.shape[1] // w
    e = (residual[:, :n * w] ** 2 * keep[:n * w]).reshape(len(residual), n, w).sum(2)
    count = keep[:n * w].reshape(n, w).sum(1)
    power = e[:, count > 0] / count[count > 0]
    return power.max(1) / np.maximum(np.median(power, 1), EPS_MV ** 2)


def lead_quality_features(window: np.ndarray, fs: float) -> np.ndarray:
    """Raw 12-lead window (12, T) mV at fs Hz -> LEAD_FEATURES (12, F) float32 (finite)."""
    x = np.asarray(window, np.float64)
    x = x - np.median(x, axis=1, keepdims=True)
    low = sps.sosfiltfilt(sps.butter(2, DRIFT_HZ / (fs / 2), "low", output="sos"), x, axis=1)
    high = x - low
    peaks = detect_rpeaks(high, fs)
    residual, qrs = _beat_residual(high, fs, peaks)
    qrs = np.maximum(qrs, EPS_MV)
    keep = _outside_qrs(x.shape[1], peaks, fs)
    hf = sps.sosfiltfilt(sps.butter(4, min(HF_HZ / (fs / 2), 0.9), "high", output="sos"), x, axis=1)
    hf_power = np.mean(hf[:, keep] ** 2, axis=1) + EPS_MV ** 2
    res_power = np.mean(residual[:, keep] ** 2, axis=1) + EPS_MV ** 2
    drift_range = np.ptp(low, axis=1) + EPS_MV
    centred = residual - residual.mean(1, keepdims=True)
    kurt = np.mean(centred ** 4, 1) / np.maximum(np.mean(centred ** 2, 1) ** 2, EPS_MV ** 4)
    d2 = np.median(np.abs(np.diff(high, 2, axis=1)), axis=1) + EPS_MV ** 2
    feats = [np.log(qrs), np.log(drift_range), np.log(drift_range / qrs), np.log(np.mean(low ** 2, 1) + EPS_MV ** 2),
             np.log(hf_power), np.log(hf_power / qrs ** 2), np.log(d2), np.log(res_power / qrs ** 2),
             np.log(_burst_ratio(residual, keep, fs) + 1.0), np.log(kurt), np.log((np.ptp(x, 1) + EPS_MV) / qrs)]
    out = np.stack(feats, axis=1).astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError("signal-quality features: non-finite value (constant lead?)")
    return out


def lead_design(features: np.ndarray) -> np.ndarray:
    """Per-lead features (N, 12, F) -> per-lead regression inputs (N, 12, 2F + 12): the lead's features, the
    median over the record's leads (annotators flag a noisy record's leads as a block, e.g. "I-AVR") and the lead's
    one-hot identity."""
    n, c, _ = features.shape
    context = np.broadcast_to(np.median(features, 1, keepdims=True), features.shape)
    return np.concatenate([features, context, np.broadcast_to(np.eye(c, dtype=features.dtype), (n, c, c))], axis=2)


def record_design(features: np.ndarray) -> np.ndarray:
    """Per-lead features (N, 12, F) -> per-record regression inputs (N, 3F): max and median over the 12 leads,
    median over the limb leads."""
    return np.concatenate([features.max(1), np.median(features, 1), np.median(features[:, :LIMB_LEADS], 1)], axis=1)
