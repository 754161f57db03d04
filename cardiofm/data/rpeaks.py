"""Multi-lead R-peak detection at any sampling rate, vectorised over leads, plus peak-matching scores.

The rule-based detector (the default; `rpeaks_refine` adds an optional learned stage) works in four steps, every
width given in seconds so any `fs` works:
1. a 3-point (or ~4 ms) running median removes pacing spikes one or two samples wide;
2. a 20 ms boxcar low-pass followed by a +-10 ms central difference is a band-pass of about 8-30 Hz on the QRS
   slope; the difference has no DC response, so baseline wander vanishes without a separate high-pass;
3. each lead's slope is normalised by its typical QRS slope and leads are weighted by their peakiness (QRS slope /
   median slope), squared (polarity-free: inverted leads count the same) and summed, then integrated over 80 ms;
4. peaks of that envelope above a local adaptive threshold (a fraction of the running median of 1 s block maxima,
   robust to a single artefact and to large ectopic beats) are beats; long gaps are searched back at a lower
   threshold; each beat is then placed on the largest weighted deviation from a local linear baseline across leads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

# 0.25 s refractory period: R-R below it (> 240 bpm) is not expected in resting ECG; it rejects S-T lobes.
REFRACTORY_S = 0.25
THRESHOLD_FRACTION = 0.4       # of the local beat level (envelope is on an amplitude scale: sqrt of energy)
SEARCHBACK_FRACTION = 0.2     # lower threshold inside gaps longer than SEARCHBACK_RR x the median R-R
SEARCHBACK_RR = 1.5
T_WAVE_WINDOW_S = 0.36         # a candidate this soon after a beat and much weaker than it is that beat's T wave
T_WAVE_RATIO = 0.7
LEAD_WEIGHT_POWER = 4.0     # emphasises the cleanest leads; noisy leads still add a little
DETECTION_FS = 100.0           # envelope rate: signals are block-averaged down to 100-200 Hz
LOCATE_BASELINE_S = 0.1        # half-width of the moving mean subtracted before placing the peak
BLOCK_S = 1.0                  # block length for the running beat level
LEVEL_BLOCKS = 9               # running median over 9 blocks (~9 s) ignores one large artefact or missed beat


def _as_leads(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"detect_rpeaks expects (samples,) or (channels, samples), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("detect_rpeaks: signal contains NaN/inf samples")
    return x


def _despike(x: np.ndarray, fs: float) -> np.ndarray:
    """3-point running median at the decimated rate: a pacing spike (< 2 ms) already diluted by the block mean
    occupies one decimated sample and is removed; the QRS (>= 60 ms) keeps its slope."""
    if x.shape[1] >= 3:
        a, b, c = x[:, :-2], x[:, 1:-1], x[:, 2:]
        out = x.copy()
        out[:, 1:-1] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        return out
    return x


def _qrs_slope(x: np.ndarray, fs: float) -> np.ndarray:
    """Band-passed slope (~8-30 Hz): 20 ms boxcar, then a +-10 ms central difference, per lead."""
    lp = ndimage.uniform_filter1d(x, max(1, int(round(0.02 * fs))), axis=-1, mode="nearest")
    h = max(1, int(round(0.01 * fs)))
    d = np.zeros_like(lp)
    d[:, h:-h] = lp[:, 2 * h:] - lp[:, :-2 * h]
    return d


def _block_max(v: np.ndarray, block: int) -> np.ndarray:
    """Maximum of |v| over consecutive blocks along the last axis (the ragged tail forms its own block)."""
    n = v.shape[-1]
    nb = max(1, n // block)
    head = np.abs(v[..., :nb * block]).reshape(*v.shape[:-1], nb, block).max(axis=-1)
    if n > nb * block and n - nb * block > block // 2:
        tail = np.abs(v[..., nb * block:]).max(axis=-1, keepdims=True)
        head = np.concatenate([head, tail], axis=-1)
    return head


def _lead_weights(d: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead typical QRS slope (median of 1 s block maxima) and peakiness weight (0 for flat leads)."""
    bm = _block_max(d, max(1, int(round(BLOCK_S * fs))))
    level = np.median(bm, axis=-1)
    floor = np.abs(d).mean(axis=-1)
    peaky = level / np.maximum(floor, 1e-12)
    w = np.where(level > 1e-9, peaky ** LEAD_WEIGHT_POWER, 0.0)
    total = w.sum()
    return level, (w / total if total > 0 else w)


def _decimate(x: np.ndarray, fs: float) -> tuple[np.ndarray, int]:
    """Block-mean decimation to ~100-200 Hz (the QRS envelope needs no more); returns (signal, factor)."""
    q = max(1, int(fs // DETECTION_FS))
    if q == 1:
        return x.astype(np.float32, copy=False), 1
    n = x.shape[1] // q * q
    out = x[:, 0:n:q].astype(np.float32)
    for k in range(1, q):  # strided adds: several times faster than a reshape-mean over a short axis
        out += x[:, k:n:q]
    out *= 1.0 / q
    return out, q


@dataclass
class Envelope:
    """QRS envelope at the decimated rate fd Hz and what the second stage reads from it."""
    env: np.ndarray        # (samples,) combined envelope, ~1 at a typical beat
    weights: np.ndarray    # (leads,) peakiness weights, 0 for flat leads
    fd: float              # decimated rate, Hz
    slopes: np.ndarray     # (live leads, samples) band-passed slope per lead, in units of its typical QRS slope
    fast: np.ndarray       # (live leads, samples) +-1 sample difference of the decimated signal, per typical QRS


def _envelope(x: np.ndarray, fs: float) -> Envelope:
    """Combined QRS envelope (amplitude scale, ~1 at a typical beat) at the decimated rate, with lead weights."""
    xd, q = _decimate(x, fs)
    fd = fs / q
    xd = _despike(xd, fd)
    d = _qrs_slope(xd, fd)
    level, w = _lead_weights(d, fd)
    live = w > 0
    n = xd.shape[1]
    if not live.any():
        zero = np.zeros(n, dtype=np.float32)
        return Envelope(zero, w, fd, np.zeros((0, n), np.float32), np.zeros((0, n), np.float32))
    wl = w[live].astype(np.float32)
    scaled = (d[live] / level[live, None]).astype(np.float32)
    energy = np.einsum("c,ct,ct->t", wl, scaled, scaled)
    smooth = ndimage.uniform_filter1d(energy, max(1, int(round(0.08 * fd))), mode="nearest")
    fast = np.zeros_like(xd[live])
    fast[:, 1:-1] = xd[live, 2:] - xd[live, :-2]
    fast = (fast / np.maximum(level[live, None], 1e-12)).astype(np.float32)
    return Envelope(np.sqrt(np.maximum(smooth, 0.0)), w, fd, scaled, fast)


def _local_level(env: np.ndarray, fs: float) -> np.ndarray:
    """Running beat level per sample: median over ~9 s of 1 s block maxima, linearly interpolated."""
    block = max(1, int(round(BLOCK_S * fs)))
    bm = _block_max(env, block)
    med = ndimage.median_filter(bm, size=min(LEVEL_BLOCKS, len(bm)), mode="nearest")
    centres = (np.arange(len(bm)) + 0.5) * block
    return np.interp(np.arange(len(env)), centres, med)


def _search_back(peaks: np.ndarray, cands: np.ndarray, env: np.ndarray, level: np.ndarray,
                 fs: float) -> np.ndarray:
    """Add the largest candidate inside each R-R gap longer than SEARCHBACK_RR x the median R-R."""
    if len(peaks) < 3:
        return peaks
    rr = np.diff(peaks)
    limit = SEARCHBACK_RR * np.median(rr)
    gaps = np.flatnonzero(rr > limit)
    refractory = REFRACTORY_S * fs
    added = []
    for g in gaps:
        a, b = peaks[g], peaks[g + 1]
        # a beat cannot sit in the previous beat's T wave window nor in the next beat's refractory period
        inside = cands[(cands > a + T_WAVE_WINDOW_S * fs) & (cands < b - refractory)]
        if len(inside):
            best = inside[np.argmax(env[inside])]
            if env[best] > SEARCHBACK_FRACTION * level[best]:
                added.append(best)
    return np.sort(np.concatenate([peaks, np.asarray(added, dtype=peaks.dtype)])) if added else peaks


def _reject_t_waves(peaks: np.ndarray, env: np.ndarray, fs: float) -> np.ndarray:
    """Drop candidates within T_WAVE_WINDOW_S of the previous beat whose envelope is < T_WAVE_RATIO of its."""
    keep = np.ones(len(peaks), dtype=bool)
    last = -1
    for i, p in enumerate(peaks):  # sequential: a rejected T wave must not shadow the next beat
        if last >= 0 and p - peaks[last] < T_WAVE_WINDOW_S * fs and env[p] < T_WAVE_RATIO * env[peaks[last]]:
            keep[i] = False
            continue
        last = i
    return peaks[keep]


def _locate(x: np.ndarray, w: np.ndarray, beats: np.ndarray, fs: float) -> np.ndarray:
    """Place each beat on the largest lead-weighted |x - 0.2 s moving mean| within +-90 ms of its envelope peak."""
    half = max(1, int(round(0.09 * fs)))
    pad = max(1, int(round(LOCATE_BASELINE_S * fs)))
    n = x.shape[1]
    live = np.flatnonzero(w > 0)   # every live lead: a subset chosen by weight would flip under small gain changes
    idx = beats[:, None] + np.arange(-half - pad, half + pad + 1)       # (beats, wide window)
    wide = np.take(x, np.clip(idx, 0, n - 1), axis=1)                   # (leads, beats, wide window)
    if len(live) < x.shape[0]:
        wide = wide[live]
    csum = np.zeros(wide.shape[:-1] + (wide.shape[-1] + 1,), dtype=np.float64)
    np.cumsum(wide, axis=-1, out=csum[..., 1:])
    k = 2 * pad + 1
    base = (csum[..., k:] - csum[..., :-k]) / k                         # centred moving mean, LTI
    dev = np.abs(wide[..., pad:pad + base.shape[-1]] - base)           # (leads, beats, 2*half+1)
    # each lead is normalised per beat (invariant to beat-to-beat gain changes) and weighted by its peakiness
    peak = dev.max(axis=-1, keepdims=True)
    combined = np.einsum("c,cbt->bt", w[live] ** (1.0 / LEAD_WEIGHT_POWER), dev / np.maximum(peak, 1e-12))
    inside = (idx[:, pad:pad + base.shape[-1]] >= 0) & (idx[:, pad:pad + base.shape[-1]] < n)
    combined = np.where(inside, combined, -1.0)
    return beats - half + np.argmax(combined, axis=-1)


def first_stage(x: np.ndarray, fs: float) -> tuple[Envelope, np.ndarray, np.ndarray] | None:
    """Rule-based stage on (leads, samples): (envelope, running beat level, rule beats at the decimated rate)."""
    env = _envelope(x, fs)
    if not env.env.any():
        return None
    fd = env.fd
    level = _local_level(env.env, fd)
    cands, _ = find_peaks(env.env, distance=max(1, int(round(REFRACTORY_S * fd))))
    peaks = cands[env.env[cands] > THRESHOLD_FRACTION * level[cands]]
    peaks = _reject_t_waves(peaks, env.env, fd)
    return env, level, _search_back(peaks, cands, env.env, level, fd)


def to_full_rate(x: np.ndarray, env: Envelope, beats: np.ndarray, fs: float) -> np.ndarray:
    """Decimated beat indices -> R-peak samples at fs, each placed on the QRS by `_locate` (sorted, unique)."""
    return np.unique(locate_beats(x, env, beats, fs))


def locate_beats(x: np.ndarray, env: Envelope, beats: np.ndarray, fs: float) -> np.ndarray:
    """Decimated beat indices -> located R-peak samples at fs, one per beat (int64, same order)."""
    if len(beats) == 0:
        return np.zeros(0, dtype=np.int64)
    q = fs / env.fd
    centres = np.minimum((beats * q + q / 2).astype(np.int64), x.shape[1] - 1)
    return _locate(x, env.weights, centres, fs).astype(np.int64)


def checked_leads(signal: np.ndarray, fs: float) -> np.ndarray | None:
    """(leads, samples) after validation, or None when the input is too short to hold two beats."""
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"detect_rpeaks: invalid sampling rate {fs!r}")
    x = _as_leads(signal)
    return x if x.shape[1] >= int(2 * REFRACTORY_S * fs) + 3 else None


def detect_rpeaks(signal: np.ndarray, fs: float, method: str = "cardiofm") -> np.ndarray:
    """R-peak sample indices (int64, sorted) of an ECG (samples,) or (channels, samples) at fs Hz, any units.

    'cardiofm': the rule-based envelope detector; 'cardiofm:scored': its candidates re-scored by the packaged
    learned stage (rpeaks_refine; no better held out so far, 1.6x slower); 'neurokit2:<name>': neurokit2, lead 1."""
    if method.startswith("neurokit2:"):
        return detect_rpeaks_neurokit(signal, fs, method)
    if method not in ("cardiofm", "cardiofm:scored"):
        raise ValueError(f"unknown R-peak method {method!r}; use 'cardiofm', 'cardiofm:scored' or 'neurokit2:<name>'")
    from .rpeaks_refine import default_scorer, detect_scored   # the second stage imports this module

    return detect_scored(signal, fs, default_scorer() if method == "cardiofm:scored" else None)


def detect_rpeaks_neurokit(signal: np.ndarray, fs: float, method: str = "neurokit2:neurokit") -> np.ndarray:
    """R-peaks from a neurokit2 detector on the first lead ('neurokit2:<method>'); needs the optional neurokit2."""
    try:
        import neurokit2 as nk
    except ImportError as err:  # optional dependency (extras 'bench'/'dev')
        raise ImportError("method 'neurokit2:...' needs neurokit2: pip install 'cardiofm[bench]'") from err
    name = method.split(":", 1)[1]
    x = _as_leads(signal)[0]
    clean_method = name if name in ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010",
                                    "engzeemod2012", "biosppy") else "neurokit"
    clean = nk.ecg_clean(x, sampling_rate=fs, method=clean_method)
    info = nk.ecg_findpeaks(clean, sampling_rate=fs, method=name)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def match_rpeaks(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> tuple[int, int, int]:
    """One-to-one matching within +-tolerance samples -> (true positives, false negatives, false positives)."""
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    det = np.sort(np.asarray(detected, dtype=np.int64))
    used = np.zeros(len(det), dtype=bool)
    tp = 0
    j = 0
    for r in ref:  # both sorted: a two-pointer sweep, each detection used at most once
        while j < len(det) and (det[j] < r - tolerance or used[j]):
            j += 1
        k = j
        best = -1
        while k < len(det) and det[k] <= r + tolerance:
            if not used[k] and (best < 0 or abs(det[k] - r) < abs(det[best] - r)):
                best = k
            k += 1
        if best >= 0:
            used[best] = True
            tp += 1
    return tp, len(ref) - tp, len(det) - tp
