"""STAR: Sinusoidal Time-Amplitude Resampling, a beat-wise ECG augmentation that keeps every R-peak in place.

Between consecutive R-peaks r_k < r_{k+1} (segment length L_k samples, phase u = (t - r_k) / L_k in [0, 1)):

    source position  w(t) = t + S_k sin^2(pi u)        (S_k samples, |S_k| <= max_shift_s * fs and < L_k / pi)
    gain             a(t) = g_k + (g_{k+1} - g_k) (1 - cos(pi u)) / 2
    output           y(t) = a(t) * x(w(t))             (cubic Catmull-Rom interpolation, all leads at once)

w is smooth, monotone (w' = 1 + pi S_k / L_k sin(2 pi u) > 0), fixed at both R-peaks and has slope 1 there, so the
QRS around each R-peak keeps its shape and every R-R interval (AF irregularity included) is preserved exactly; the
P wave, QRS offset and T wave move by at most |S_k| samples. The gain is continuous with zero slope at every R-peak
(no jumps), equals g_k on beat k and is 1 at the first and last R-peak so head and tail join without a step; head
(before the first R-peak) and tail (from the last R-peak) are copied bit for bit. Per-beat shifts S_k and gains g_k
follow sinusoids over the beat index k with random phase, frequency (cycles per beat) and depth.

Channels that are not ECG (PPG, ABP, RESP) are left unchanged by default: the R-peaks do not move, so the beat-to-beat
ECG/PPG timing (pulse arrival time, used for blood-pressure targets) is kept exactly, and warping the pulse wave with
the ECG's P/T timing would change that arrival time. `warp_non_ecg=True` applies the same warp and gain to them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..channels import is_ecg
from ...config import ConfigError
from ..beats import with_signal
from ..rpeaks import detect_rpeaks

log = logging.getLogger(__name__)


@dataclass
class StarConfig:
    """STAR parameters (YAML section `augment.star`); seconds for shifts, unitless gains, cycles per beat."""

    p: float = 0.5                                        # probability of augmenting one call
    max_shift_s: float = 0.04                             # bound on internal timing shift (P, T, QRS offset)
    amplitude_range: tuple[float, float] = (0.8, 1.3)     # per-beat gain range, as published
    warp_depth_range: tuple[float, float] = (0.3, 1.0)    # fraction of the shift bound used by one record
    amplitude_depth_range: tuple[float, float] = (0.3, 1.0)  # fraction of the gain half-range used
    cycles_per_beat: tuple[float, float] = (0.02, 0.3)   # frequency range of the per-beat sinusoids
    warp_non_ecg: bool = False                            # apply warp/gain to PPG/ABP/RESP too

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) on impossible values."""
        lo, hi = self.amplitude_range
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"star.p must be in [0, 1], got {self.p}")
        if self.max_shift_s < 0 or not 0 < lo <= hi:
            raise ConfigError(f"star: need max_shift_s >= 0 and 0 < amplitude_range[0] <= [1], got "
                             f"{self.max_shift_s}, {self.amplitude_range}")
        for name in ("warp_depth_range", "amplitude_depth_range", "cycles_per_beat"):
            a, b = getattr(self, name)
            if not 0 <= a <= b:
                raise ConfigError(f"star.{name} must satisfy 0 <= low <= high, got {(a, b)}")


def _per_beat_sinusoid(rng: np.random.Generator, n: int, depth_range, cycles_per_beat) -> np.ndarray:
    """depth * sin(2 pi f k + phase) for k = 0..n-1, with random depth, frequency (cycles/beat) and phase."""
    depth = rng.uniform(*depth_range)
    freq = rng.uniform(*cycles_per_beat)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    return depth * np.sin(2.0 * np.pi * freq * np.arange(n) + phase)


def _catmull_rom(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Cubic Catmull-Rom interpolation of x (channels, samples) at fractional positions pos (exact on integers)."""
    i1 = np.floor(pos).astype(np.intp)
    t = (pos - i1).astype(x.dtype)
    t2 = t * t
    t3 = t2 * t
    weights = (-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2)
    xp = np.pad(x, ((0, 0), (1, 2)), mode="edge")   # one padded copy replaces index clipping at the edges
    out = np.take(xp, i1, axis=1)
    out *= weights[0]
    for k in (1, 2, 3):  # in-place accumulation: four gathers, no other full-size temporaries
        tap = np.take(xp, i1 + k, axis=1)
        tap *= weights[k]
        out += tap
    return out


class STAR:
    """Beat-wise time warp + amplitude envelope between R-peaks; `star(signal, fs, rpeaks=None)` -> same shape/dtype."""

    def __init__(self, p: float = 1.0, seed: int | None = 0, max_shift_s: float = 0.04,
                 amplitude_range: tuple[float, float] = (0.8, 1.3), warp_depth_range: tuple[float, float] = (0.3, 1.0),
                 amplitude_depth_range: tuple[float, float] = (0.3, 1.0),
                 cycles_per_beat: tuple[float, float] = (0.02, 0.3), warp_non_ecg: bool = False, detector=None):
        self.cfg = StarConfig(p=p, max_shift_s=max_shift_s, amplitude_range=tuple(amplitude_range),
                              warp_depth_range=tuple(warp_depth_range),
                              amplitude_depth_range=tuple(amplitude_depth_range),
                              cycles_per_beat=tuple(cycles_per_beat), warp_non_ecg=warp_non_ecg)
        self.cfg.validate()
        self.detector = detector or detect_rpeaks
        self.rng = np.random.default_rng(seed)
        self.stats = {"calls": 0, "applied": 0, "skipped_p": 0, "too_few_rpeaks": 0}

    @classmethod
    def from_config(cls, cfg: StarConfig, seed: int | None = 0) -> "STAR":
        """Build from a StarConfig section."""
        return cls(seed=seed, **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__})

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream (e.g. per DataLoader worker)."""
        self.rng = np.random.default_rng(seed)

    def plan(self, rpeaks: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
        """Draw per-segment shifts S_k (samples) and per-R-peak gains g_k (first and last fixed to 1)."""
        c = self.cfg
        lengths = np.diff(rpeaks).astype(np.float64)
        # bound: the configured shift, and 0.5 L / pi so the warp slope stays within [0.5, 1.5] (monotone)
        bound = np.minimum(c.max_shift_s * fs, 0.5 * lengths / np.pi)
        shifts = bound * _per_beat_sinusoid(self.rng, len(lengths), c.warp_depth_range, c.cycles_per_beat)
        lo, hi = c.amplitude_range
        gains = 0.5 * (lo + hi) + 0.5 * (hi - lo) * _per_beat_sinusoid(
            self.rng, len(rpeaks), c.amplitude_depth_range, c.cycles_per_beat)
        gains[0] = gains[-1] = 1.0
        return shifts, gains

    def warp(self, rpeaks: np.ndarray, shifts: np.ndarray, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source positions w(t) and gains a(t) for t in [rpeaks[0], rpeaks[-1]) (samples)."""
        lengths = np.diff(rpeaks)
        seg = np.repeat(np.arange(len(lengths)), lengths)
        offset = np.arange(rpeaks[-1] - rpeaks[0]) - np.repeat(rpeaks[:-1] - rpeaks[0], lengths)
        c = np.cos(np.pi * offset / lengths[seg])          # one cosine: sin^2(pi u) = 1 - c^2, ramp = (1 - c) / 2
        pos = (rpeaks[0] + np.arange(len(c))) + shifts[seg] * (1.0 - c * c)
        gain = gains[seg] + (gains[seg + 1] - gains[seg]) * (0.5 - 0.5 * c)
        return pos, gain

    def __call__(self, signal: np.ndarray, fs: float, rpeaks: np.ndarray | None = None,
                 ecg_channels: list[int] | None = None) -> np.ndarray:
        """Augment (channels, samples) at fs Hz; R-peaks are detected on `ecg_channels` (default all) if not given."""
        x = np.asarray(signal)
        if x.ndim != 2:
            raise ValueError(f"STAR expects (channels, samples), got shape {x.shape}")
        self.stats["calls"] += 1
        if self.rng.random() >= self.cfg.p:
            self.stats["skipped_p"] += 1
            return x.copy()
        ecg = list(range(x.shape[0])) if ecg_channels is None else list(ecg_channels)
        if rpeaks is None:
            rpeaks = self.detector(x[ecg], fs) if ecg else np.zeros(0, dtype=np.int64)
        r = self._checked(rpeaks, x.shape[1])
        if len(r) < 2:
            self.stats["too_few_rpeaks"] += 1
            log.debug("STAR: %d R-peak(s), record returned unchanged", len(r))
            return x.copy()
        shifts, gains = self.plan(r, fs)
        pos, gain = self.warp(r, shifts, gains)
        rows = ecg if not self.cfg.warp_non_ecg else list(range(x.shape[0]))
        out = x.copy()
        work = x[rows].astype(np.float32 if x.dtype != np.float64 else np.float64, copy=False)
        body = _catmull_rom(work, pos) * gain.astype(work.dtype)
        out[rows, r[0]:r[-1]] = body.astype(x.dtype, copy=False)
        self.stats["applied"] += 1
        return out

    @staticmethod
    def _checked(rpeaks: np.ndarray, n: int) -> np.ndarray:
        r = np.unique(np.asarray(rpeaks, dtype=np.int64))
        if len(r) and (r[0] < 0 or r[-1] >= n):
            raise ValueError(f"STAR: R-peak indices must lie in [0, {n}), got {r[0]}..{r[-1]}")
        return r

    def apply(self, sample: dict, fs: float) -> dict:
        """Sample-dict form: R-peaks from the present ECG channels; PPG/other channels per `warp_non_ecg`."""
        names, mask = sample["channels"], np.asarray(sample["channel_mask"], dtype=bool)
        ecg = [i for i, n in enumerate(names) if mask[i] and is_ecg(n)]
        if not ecg:
            self.stats["calls"] += 1
            self.stats["too_few_rpeaks"] += 1
            return sample
        return with_signal(sample, self(np.asarray(sample["signal"]), fs, ecg_channels=ecg))
