"""Baseline signal augmentations with one interface (STAR lives in star.py; configs and the pipeline in pipeline.py).

Every augmentation (STAR included) is built with keyword parameters including `p` and `seed`, is called as
`aug(signal, fs) -> array` on a (channels, samples) array (same shape and dtype), and as `aug.apply(sample, fs) ->
sample` on a sample dict (a new dict; the input is not modified). `reseed(seed)` restarts its random stream (call it
per DataLoader worker) and `stats` counts calls and applications.

Baselines for the comparative study: random crop/shift, global time stretch, Gaussian noise, baseline wander,
amplitude scaling, random lead masking (updates `channel_mask`) and `EqualSegmentResample`, the published STAR
reference behaviour re-implemented from its description: every R-R segment resampled to the same length (the mean
R-R), which removes R-R variability - kept only as a named baseline to compare against.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import resample as fft_resample

from ..beats import with_signal
from ..rpeaks import detect_rpeaks
from .star import _catmull_rom


class Augmentation:
    """Base class: subclasses implement `transform(x, fs, present) -> x` for one accepted call."""

    name = "identity"

    def __init__(self, p: float = 0.5, seed: int | None = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{self.name}: p must be in [0, 1], got {p}")
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.stats = {"calls": 0, "applied": 0}

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream."""
        self.rng = np.random.default_rng(seed)

    def transform(self, x: np.ndarray, fs: float, present: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _run(self, x: np.ndarray, fs: float, present: np.ndarray) -> np.ndarray | None:
        if x.ndim != 2:
            raise ValueError(f"{self.name} expects (channels, samples), got shape {x.shape}")
        self.stats["calls"] += 1
        if self.rng.random() >= self.p:
            return None
        self.stats["applied"] += 1
        return self.transform(x, fs, present).astype(x.dtype, copy=False)

    def __call__(self, signal: np.ndarray, fs: float) -> np.ndarray:
        """Augment a (channels, samples) array at fs Hz; returns a new array of the same shape and dtype."""
        x = np.asarray(signal)
        out = self._run(x, fs, np.ones(x.shape[0], dtype=bool))
        return x.copy() if out is None else out

    def apply(self, sample: dict, fs: float) -> dict:
        """Augment a sample dict (only present channels are touched); returns a new dict."""
        present = np.asarray(sample["channel_mask"], dtype=bool)
        out = self._run(np.asarray(sample["signal"]), fs, present)
        if out is None:
            return sample
        return with_signal(sample, out)


class RandomShift(Augmentation):
    """Shift the window by up to +-max_shift_s seconds (a random crop of a longer recording); vacated samples are 0."""

    name = "crop_shift"

    def __init__(self, p: float = 0.5, seed: int | None = 0, max_shift_s: float = 1.0):
        super().__init__(p, seed)
        self.max_shift_s = max_shift_s

    def transform(self, x, fs, present):
        s = int(self.rng.integers(-int(self.max_shift_s * fs), int(self.max_shift_s * fs) + 1))
        out = np.zeros_like(x)
        if s >= 0:
            out[:, s:] = x[:, :x.shape[1] - s]
        else:
            out[:, :s] = x[:, -s:]
        return out


class TimeStretch(Augmentation):
    """Global time stretch by a factor in `factor_range` about the window centre (R-R intervals all scale)."""

    name = "time_stretch"

    def __init__(self, p: float = 0.5, seed: int | None = 0, factor_range: tuple[float, float] = (0.9, 1.1)):
        super().__init__(p, seed)
        self.factor_range = tuple(factor_range)

    def transform(self, x, fs, present):
        factor = self.rng.uniform(*self.factor_range)
        n = x.shape[1]
        pos = (n - 1) / 2.0 + (np.arange(n) - (n - 1) / 2.0) / factor
        inside = (pos >= 0) & (pos <= n - 1)
        out = np.zeros_like(x)
        out[:, inside] = _catmull_rom(x, np.clip(pos[inside], 0, n - 1))
        return out


class GaussianNoise(Augmentation):
    """Additive white noise at a per-channel SNR drawn from `snr_db_range` (dB, relative to the channel's RMS)."""

    name = "gaussian_noise"

    def __init__(self, p: float = 0.5, seed: int | None = 0, snr_db_range: tuple[float, float] = (15.0, 30.0)):
        super().__init__(p, seed)
        self.snr_db_range = tuple(snr_db_range)

    def transform(self, x, fs, present):
        rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1, keepdims=True))
        sigma = rms * 10.0 ** (-self.rng.uniform(*self.snr_db_range, size=(x.shape[0], 1)) / 20.0)
        noise = self.rng.standard_normal(x.shape) * sigma * present[:, None]
        return x + noise


class BaselineWander(Augmentation):
    """Slow additive sinusoids (0.05-0.5 Hz, respiration/motion), amplitude a fraction of each channel's RMS."""

    name = "baseline_wander"

    def __init__(self, p: float = 0.5, seed: int | None = 0, freq_hz_range: tuple[float, float] = (0.05, 0.5),
                 amplitude_range: tuple[float, float] = (0.1, 0.5)):
        super().__init__(p, seed)
        self.freq_hz_range, self.amplitude_range = tuple(freq_hz_range), tuple(amplitude_range)

    def transform(self, x, fs, present):
        t = np.arange(x.shape[1]) / fs
        freq = self.rng.uniform(*self.freq_hz_range)
        phase = self.rng.uniform(0, 2 * np.pi)
        rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1, keepdims=True))
        # one wander shape (a shared physical cause), with a per-lead amplitude (leads see it differently)
        amp = rms * self.rng.uniform(*self.amplitude_range, size=(x.shape[0], 1)) * present[:, None]
        return x + amp * np.sin(2 * np.pi * freq * t + phase)


class AmplitudeScale(Augmentation):
    """Multiply the whole record by one factor from `scale_range` (inter-lead ratios kept)."""

    name = "amplitude_scale"

    def __init__(self, p: float = 0.5, seed: int | None = 0, scale_range: tuple[float, float] = (0.8, 1.2)):
        super().__init__(p, seed)
        self.scale_range = tuple(scale_range)

    def transform(self, x, fs, present):
        return x * self.rng.uniform(*self.scale_range)


class LeadMask(Augmentation):
    """Zero a random subset of present channels (at most `max_fraction`, never all); `apply` updates channel_mask."""

    name = "lead_mask"

    def __init__(self, p: float = 0.5, seed: int | None = 0, max_fraction: float = 0.5):
        super().__init__(p, seed)
        self.max_fraction = max_fraction
        self.last_mask: np.ndarray | None = None

    def transform(self, x, fs, present):
        idx = np.flatnonzero(present)
        k = int(self.rng.integers(0, int(self.max_fraction * len(idx)) + 1)) if len(idx) > 1 else 0
        k = min(k, len(idx) - 1)
        drop = self.rng.choice(idx, size=k, replace=False) if k else np.zeros(0, dtype=int)
        keep = present.copy()
        keep[drop] = False
        self.last_mask = keep
        return x * keep[:, None]

    def apply(self, sample: dict, fs: float) -> dict:
        out = super().apply(sample, fs)
        if out is not sample:
            out["channel_mask"] = self.last_mask.copy()
        return out


class EqualSegmentResample(Augmentation):
    """Reference STAR behaviour (baseline only): each R-R segment FFT-resampled to the mean R-R and scaled."""

    name = "equal_segment"

    def __init__(self, p: float = 0.5, seed: int | None = 0, amplitude_range: tuple[float, float] = (0.8, 1.3),
                 detector=None):
        super().__init__(p, seed)
        self.amplitude_range = tuple(amplitude_range)
        self.detector = detector or detect_rpeaks
        self.stats["too_few_rpeaks"] = 0

    def transform(self, x, fs, present):
        r = np.asarray(self.detector(x[present] if present.any() else x, fs), dtype=np.int64)  # at the signal's own fs
        if len(r) < 2:
            self.stats["too_few_rpeaks"] += 1
            return x.copy()
        target = int(round(np.mean(np.diff(r))))
        scales = self.rng.uniform(*self.amplitude_range, size=len(r) - 1)
        body = [fft_resample(x[:, a:b], target, axis=1) * g for a, b, g in zip(r[:-1], r[1:], scales)]
        out = np.concatenate([x[:, :r[0]], *body, x[:, r[-1]:]], axis=1)
        n = x.shape[1]
        # lengths need not add up; crop or edge-pad to the input length instead of returning a broken array
        return out[:, :n] if out.shape[1] >= n else np.pad(out, ((0, 0), (0, n - out.shape[1])), mode="edge")
