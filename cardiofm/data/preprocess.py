"""The one preprocessing path shared by training, evaluation and inference; its config is saved in checkpoints."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from .channels import TWELVE_LEADS, is_ecg
from .quality import (MAX_RECORD_SAMPLES, MIN_INPUT_S, SignalQualityError, SignalQualityWarning, assess,
                      input_array, input_channels, input_fs, input_millivolts)
from .record import VITALS, Record, RecordError

# gate outcomes that mean the numbers are not in mV at all: refused by the API whatever its strictness
_UNIT_ISSUES = frozenset({"amplitude_high", "amplitude_low", "jump"})


@dataclass
class PreprocessConfig:
    """Resampling, filtering, normalisation and windowing; every value is stored in a checkpoint's config."""

    fs: float = 100.0                      # target sampling rate, Hz
    window_s: float = 10.0                 # window length, seconds
    stride_s: float = 10.0                 # hop between windows, seconds
    channels: list[str] = field(default_factory=lambda: list(TWELVE_LEADS) + ["PPG"])  # layout, by name
    ecg_band_hz: tuple[float, float] = (0.5, 40.0)   # removes baseline wander and EMG/mains above 40 Hz
    ppg_band_hz: tuple[float, float] = (0.5, 8.0)    # pulse fundamental and harmonics
    other_band_hz: tuple[float, float] = (0.05, 8.0)  # ABP/RESP keep slow content
    filter_order: int = 2                  # Butterworth order per pass; zero-phase doubles it
    notch_hz: float | None = None          # 50 or 60 to remove mains hum (mostly redundant with a 40 Hz low-pass)
    ecg_norm: str = "none"                 # "none" keeps mV (amplitude is diagnostic); "zscore" per window
    other_norm: str = "zscore"             # PPG/ABP/RESP have arbitrary units: z-score per window
    clip: float = 20.0                     # clip normalised values (mV or z) to +-clip, guards against spikes
    min_channels: int = 1                  # windows with fewer present channels are dropped

    @property
    def window_samples(self) -> int:
        """Window length in samples at the target rate."""
        return int(round(self.window_s * self.fs))

    @property
    def stride_samples(self) -> int:
        """Hop in samples at the target rate."""
        return int(round(self.stride_s * self.fs))

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        """Inverse of to_dict; unknown keys raise."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise KeyError(f"unknown PreprocessConfig key(s): {sorted(unknown)}")
        d = dict(d)
        for k in ("ecg_band_hz", "ppg_band_hz", "other_band_hz"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        return cls(**d)


@lru_cache(maxsize=64)
def _polyphase_plan(up: int, down: int, n_in: int, dtype: str) -> tuple[np.ndarray, int, int]:
    """resample_poly's anti-aliasing FIR (Kaiser beta 5, 10 taps per phase), padded as resample_poly pads it for n_in
    input samples -> (filter, output samples to drop at the start, output length); designed once per rate pair."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = sps.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(dtype)  # resample_poly: x's dtype
    h *= up
    n_out = -(-n_in * up // down)
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_post_pad = 0
    # the same search resample_poly runs: pad the tail until the filtered output covers every kept sample
    while _upfirdn_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) < n_out + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate((np.zeros(n_pre_pad, dtype=h.dtype), h, np.zeros(n_post_pad, dtype=h.dtype)))
    h.setflags(write=False)
    return h, n_pre_remove, n_out


def _upfirdn_len(len_h: int, n_in: int, up: int, down: int) -> int:
    """Output length of scipy.signal.upfirdn for these sizes."""
    return ((n_in - 1) * up + len_h - 1) // down + 1


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis from fs_in to fs_out Hz (float32 out).

    Equals scipy.signal.resample_poly(x, up, down, axis=-1) with its default Kaiser window and zero padding, but the
    FIR filter is designed once per (up, down, length) instead of on every call.
    """
    x = np.asarray(x)
    if x.dtype != np.float32 and x.dtype != np.float64:
        x = x.astype(np.float32)
    if abs(fs_in - fs_out) < 1e-9:
        return x.astype(np.float32, copy=False)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    if up == down:
        return x.astype(np.float32, copy=True)
    h, skip, n_out = _polyphase_plan(up, down, x.shape[-1], x.dtype.str)
    y = sps.upfirdn(h, x, up, down, axis=-1)
    return y[..., skip:skip + n_out].astype(np.float32, copy=False)


@lru_cache(maxsize=64)
def _bandpass_sos(low: float, high: float, fs: float, order: int) -> np.ndarray:
    nyq = fs / 2.0
    high = min(high, 0.95 * nyq)  # a 40 Hz corner is impossible at 50 Hz sampling: clamp below Nyquist
    return sps.butter(order, [low / nyq, high / nyq], btype="band", output="sos")


@lru_cache(maxsize=64)
def _bandpass_plan(low: float, high: float, fs: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """(sos, steady-state initial conditions per section) of one band; sosfilt_zi solves a system on every call."""
    sos = _bandpass_sos(low, high, fs, order)
    zi = sps.sosfilt_zi(sos)
    zi.setflags(write=False)
    return sos, zi


try:  # the compiled kernel behind scipy.signal.sosfilt (in-place, float64, no per-call validation)
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_inplace
except ImportError:  # pragma: no cover - other scipy layouts: the public function gives the same numbers
    _sosfilt_inplace = None


def _sosfilt_rows(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """Filter the rows of a C-contiguous float64 (n, T) array in place from per-row states zi (n, sections, 2)."""
    if _sosfilt_inplace is not None:
        _sosfilt_inplace(sos, x, zi)
        return x
    return sps.sosfilt(sos, x, axis=-1, zi=np.moveaxis(zi, 0, 1))[0]


def zero_phase(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """Forward-backward SOS filtering of the rows of x (n, T) with odd padding: scipy.signal.sosfiltfilt's numbers
    (float64) with the filter's initial conditions precomputed and one reversal copy instead of several."""
    if padlen > 0:  # odd extension, in x's dtype as scipy's odd_ext computes it
        left = 2 * x[:, :1] - x[:, padlen:0:-1]
        right = 2 * x[:, -1:] - x[:, -2:-padlen - 2:-1]
        ext = np.concatenate((left, x, right), axis=1).astype(np.float64)
    else:
        ext = np.array(x, dtype=np.float64, order="C")
    y = _sosfilt_rows(sos, ext, zi[None] * ext[:, :1, None])
    y = np.ascontiguousarray(y[:, ::-1])
    y = _sosfilt_rows(sos, y, zi[None] * y[:, :1, None])[:, ::-1]
    return y[:, padlen:y.shape[1] - padlen] if padlen > 0 else y


def _band_for(name: str, cfg: PreprocessConfig) -> tuple[float, float]:
    if is_ecg(name):
        return cfg.ecg_band_hz
    return cfg.ppg_band_hz if name == "PPG" else cfg.other_band_hz


def filter_channels(x: np.ndarray, channels: list[str], fs: float, cfg: PreprocessConfig) -> np.ndarray:
    """Zero-phase SOS band-pass per channel type (and optional notch); x is (channels, samples) at fs Hz."""
    if x.shape[1] <= 1:  # nothing to filter (sosfiltfilt needs at least two samples)
        return x.astype(np.float32, copy=True)
    groups: dict[tuple[float, float], list[int]] = {}
    for i, name in enumerate(channels):
        groups.setdefault(_band_for(name, cfg), []).append(i)
    out = np.empty(x.shape, dtype=np.float32)
    for band, idx in groups.items():
        sos, zi = _bandpass_plan(band[0], band[1], fs, cfg.filter_order)
        # sosfiltfilt pads by 3x the filter length; shorter inputs get the longest padding that fits
        padlen = min(3 * (2 * len(sos) + 1), x.shape[1] - 1)
        rows = x if len(idx) == x.shape[0] else x[idx]  # one band (12-lead ECG): no gather copy
        out[idx if len(idx) < x.shape[0] else slice(None)] = zero_phase(sos, zi, rows, padlen)
    if cfg.notch_hz and cfg.notch_hz < fs / 2:
        b, a = sps.iirnotch(cfg.notch_hz, Q=30.0, fs=fs)
        out = sps.filtfilt(b, a, out, axis=-1).astype(np.float32)
    return out


def normalize_window(x: np.ndarray, channels: list[str], present: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Per-window normalisation: ECG kept in mV (or z-scored), other channels z-scored; then clipped."""
    out = x.astype(np.float32, copy=True)
    for i, name in enumerate(channels):
        if not present[i]:
            continue
        mode = cfg.ecg_norm if is_ecg(name) else cfg.other_norm
        if mode == "zscore":
            sd = out[i].std()
            out[i] = (out[i] - out[i].mean()) / sd if sd > 1e-6 else out[i] - out[i].mean()
        elif mode != "none":
            raise ValueError(f"unknown normalisation {mode!r}; use 'none' or 'zscore'")
    np.clip(out, -cfg.clip, cfg.clip, out=out)
    return out


def to_layout(signal: np.ndarray, fs: float, channels: list[str], cfg: PreprocessConfig,
              where: str = "<input>") -> tuple[np.ndarray, np.ndarray]:
    """Resample + filter a (channels, samples) array and place it in cfg.channels order -> (signal, present mask)."""
    if len(set(channels)) != len(channels):
        raise RecordError(where, f"duplicated channel name(s) in {channels}")
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(where, f"invalid sampling rate {fs!r}")
    keep = [i for i, c in enumerate(channels) if c in cfg.channels]
    if not keep:
        raise RecordError(where, f"none of the channels {channels} is in the model's layout {cfg.channels}")
    work = len(keep) * np.shape(signal)[-1] * max(1.0, cfg.fs / fs)  # samples after resampling to cfg.fs
    if work > MAX_RECORD_SAMPLES:
        raise RecordError(where, f"{len(keep)} channels x {np.shape(signal)[-1]} samples at {fs:g} Hz is "
                                 f"{work:.3g} samples at {cfg.fs:g} Hz; at most {MAX_RECORD_SAMPLES} (split it)")
    x = np.asarray(signal, dtype=np.float32)[keep]
    names = [channels[i] for i in keep]
    if not np.isfinite(x).all():
        raise RecordError(where, "NaN/inf samples")
    x = filter_channels(resample(x, fs, cfg.fs), names, cfg.fs, cfg)
    out = np.zeros((len(cfg.channels), x.shape[1]), dtype=np.float32)
    present = np.zeros(len(cfg.channels), dtype=bool)
    for row, name in zip(x, names):
        j = cfg.channels.index(name)
        out[j], present[j] = row, True
    return out, present


def _window_vitals(record: Record, start_s: float, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    values = np.zeros(len(VITALS), dtype=np.float32)
    mask = np.zeros(len(VITALS), dtype=bool)
    for k, name in enumerate(VITALS):
        series = record.vital_series.get(name)
        if series is not None and len(series):
            a = int(start_s * record.vital_fs)
            seg = np.asarray(series[a:a + max(1, int(cfg.window_s * record.vital_fs))], dtype=np.float64)
            seg = seg[np.isfinite(seg)]
            if len(seg):
                values[k], mask[k] = float(np.median(seg)), True  # median: monitor numerics carry dropouts
        elif name in record.vitals and np.isfinite(record.vitals[name]):
            values[k], mask[k] = record.vitals[name], True
    return values, mask


def check_quality(record: Record, cfg: PreprocessConfig) -> list:
    """The plausibility gate on the channels of `record` that the layout keeps -> issues (record.meta['quality']
    receives the gate's numbers either way)."""
    keep = [i for i, c in enumerate(record.channels) if c in cfg.channels]
    units = [record.units[i] for i in keep] if record.units else None
    rep = assess(record.signal[keep], [record.channels[i] for i in keep], record.fs, units)
    record.meta["quality"] = rep.flags
    return rep.issues


def _interpolated_channels(record: Record, start_s: float, window_s: float) -> set[str]:
    """Channels with samples interpolated over a short gap (meta['interpolated']) inside [start_s, +window_s)."""
    spans = record.meta.get("interpolated") or ()
    return {c for c, a, b in spans if a / record.fs < start_s + window_s and b / record.fs > start_s}


def preprocess_record(record: Record, cfg: PreprocessConfig, quality: str = "error") -> list[dict]:
    """Record -> list of window samples (the dict format of the whole pipeline; see `sample_keys`).

    quality 'error' runs the plausibility gate first (an issue raises SignalQualityError, a RecordError); 'off'
    skips it (prepare_input runs it itself, before padding). A channel with interpolated samples inside a window
    is masked in that window."""
    where = record.path or record.record_id
    if quality not in ("error", "off"):
        raise ValueError(f"quality must be 'error' or 'off', got {quality!r}")
    if quality == "error":
        issues = check_quality(record, cfg)
        if issues:
            raise SignalQualityError(where, issues)
    full, present = to_layout(record.signal, record.fs, record.channels, cfg, where)
    win, hop = cfg.window_samples, cfg.stride_samples
    if full.shape[1] < win:
        raise RecordError(where, f"shorter than one window ({full.shape[1] / cfg.fs:.2f} s < {cfg.window_s} s)")
    samples = []
    for start in range(0, full.shape[1] - win + 1, hop):
        seg = full[:, start:start + win]
        live = present & (np.ptp(seg, axis=1) > 1e-6)  # a flat channel inside this window is missing here
        filled = _interpolated_channels(record, start / cfg.fs, cfg.window_s)
        if filled:  # interpolated samples are not measurements: the channel is masked in this window
            live &= np.array([c not in filled for c in cfg.channels])
        if live.sum() < cfg.min_channels:
            continue
        seg = normalize_window(np.where(live[:, None], seg, 0.0), cfg.channels, live, cfg)
        vitals, vitals_mask = _window_vitals(record, start / cfg.fs, cfg)
        samples.append({
            "signal": seg, "channel_mask": live, "channels": list(cfg.channels),
            "text": record.text or "", "labels": list(record.labels),
            "vitals": vitals, "vitals_mask": vitals_mask,
            "subject_id": str(record.subject_id), "source": record.source, "record_id": record.record_id,
            "start_s": start / cfg.fs,
        })
    if not samples:
        if record.meta.get("interpolated"):
            raise RecordError(where, "shorter than one window of measured samples (every window has interpolated "
                                     "samples on all its channels)")
        raise RecordError(where, "every window is flat on all channels")
    return samples


def _gate_input(x: np.ndarray, names: list[str], fs: float, cfg: PreprocessConfig, quality: str) -> dict:
    """Plausibility gate of prepare_input: unit-type issues always raise, the others follow `quality`."""
    rec = Record(signal=x, channels=names, fs=fs, record_id="<input>")
    issues = check_quality(rec, cfg)
    hard = [i for i in issues if i.code in _UNIT_ISSUES or quality == "error"]
    if hard:
        raise SignalQualityError("<input>", hard)
    for issue in issues:
        warnings.warn(issue.reason(), SignalQualityWarning, stacklevel=4)
    return rec.meta["quality"]


def prepare_input(signal: np.ndarray, fs: float, channels, cfg: PreprocessConfig, *, units=None,
                  quality: str = "warn", pad: bool = False) -> dict:
    """Raw (channels, samples) array at fs Hz -> model-ready windows (the training path) under the input contract.

    Contract (README, "Input contract and loading rules"): real float or integer samples; channel names as a list
    or 'I,II'; fs finite in API_FS_RANGE_HZ; ECG in mV, or `units` given (microvolts without `units` are converted
    with a SignalQualityWarning; integers need `units`); at least MIN_INPUT_S seconds (pad=True zero-pads shorter
    input); inputs shorter than one window are zero-padded and `valid_fraction` (< 1) marks the windows whose
    answers rest on less signal. The gate's saturation/noise/polarity issues warn (`quality='warn'`) or raise
    (`quality='error'`); amplitudes that are not mV always raise.
    """
    if quality not in ("warn", "error"):
        raise ValueError(f"quality must be 'warn' or 'error', got {quality!r}")
    names = input_channels(channels, cfg.channels)
    fs = input_fs(fs)
    x = input_millivolts(input_array(signal, len(names)), names, units)
    n = x.shape[1]
    if n / fs < min(MIN_INPUT_S, cfg.window_s) and not pad:
        raise RecordError("<input>", f"input is {n / fs:.3g} s long; at least {min(MIN_INPUT_S, cfg.window_s):g} s "
                                     "are needed (pad=True zero-pads it, with valid_fraction marking the windows)")
    flags = _gate_input(x, names, fs, cfg, quality) if n > 1 else {}
    need = int(np.ceil(cfg.window_s * fs))
    if n < need:
        warnings.warn(f"input is {n / fs:.3g} s, shorter than the model's {cfg.window_s:g} s window: zero-padded, "
                      "its outputs rest on less signal (valid_fraction)", SignalQualityWarning, stacklevel=2)
        x = np.pad(x, ((0, 0), (0, need - n)))
    rec = Record(signal=x, channels=names, fs=fs, record_id="<input>")
    samples = preprocess_record(rec, cfg, quality="off")
    starts = np.array([s["start_s"] for s in samples])
    return {"signal": np.stack([s["signal"] for s in samples]), "channel_mask": np.stack([s["channel_mask"] for s in samples]),
            "channels": list(cfg.channels), "start_s": starts, "valid_samples": n,
            "valid_fraction": np.clip((n / fs - starts) / cfg.window_s, 0.0, 1.0), "quality": flags}


SAMPLE_KEYS = ("signal", "channel_mask", "channels", "text", "labels", "vitals", "vitals_mask",
               "subject_id", "source", "record_id", "start_s")
