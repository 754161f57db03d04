"""Embedded default data: realistic synthetic 12-lead ECG + PPG with reports, labels and vitals.

The ECG comes from a rotating-free cardiac dipole (a vectorcardiogram built from P, Q, R, S, T Gaussian waves) projected
onto lead vectors. Leads I and II are projections (plus electrode noise); III, aVR, aVL and aVF are derived from them,
so Einthoven's law (III = II - I) and Goldberger's identities hold exactly. PPG pulses follow each R-peak after a
pulse transit time. The same generator serves the offline `cardiofm pretrain` default and the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .channels import TWELVE_LEADS
from .record import Record

# rhythm code -> (report phrase, heart-rate range in bpm); codes follow PTB-XL SCP statements
RHYTHMS: dict[str, tuple[str, tuple[float, float]]] = {
    "SR": ("sinus rhythm", (60.0, 100.0)),
    "SBRAD": ("sinus bradycardia", (42.0, 58.0)),
    "STACH": ("sinus tachycardia", (102.0, 140.0)),
    "AFIB": ("atrial fibrillation with irregular ventricular response", (70.0, 130.0)),
    "1AVB": ("sinus rhythm with first degree av block", (55.0, 95.0)),
}
SYNTHETIC_LABELS: tuple[str, ...] = tuple(RHYTHMS)

# Dipole direction (x: left, y: inferior, z: anterior) and amplitude (mV) of each wave; offsets are seconds from R.
_WAVES = {  # name: (direction, amplitude mV, width s)
    "P": ((0.5, 0.8, 0.1), 0.15, 0.025),
    "Q": ((-0.3, 0.1, 0.9), 0.15, 0.008),
    "R": ((0.8, 0.6, -0.15), 1.2, 0.011),
    "S": ((-0.4, -0.5, -0.6), 0.45, 0.012),
    "T": ((0.6, 0.6, 0.3), 0.3, 0.055),
}
# Unit lead vectors for I, II (frontal plane, 0 and 60 degrees) and V1..V6 (horizontal plane, right to left).
_LEAD_VECTORS = np.array([
    (1.0, 0.0, 0.0), (0.5, 0.866, 0.0),
    (-0.5, 0.0, 0.85), (-0.2, 0.0, 1.0), (0.3, 0.05, 0.95), (0.6, 0.1, 0.8), (0.85, 0.1, 0.5), (1.0, 0.1, 0.1),
])
_CHEST_GAIN = 1.6  # precordial electrodes sit close to the heart: larger amplitudes than limb leads


@dataclass
class SyntheticSpec:
    """Drawn parameters of one synthetic recording (units: bpm, breaths/min, %, mmHg, seconds)."""

    rhythm: str
    hr: float
    resp_rate: float
    spo2: float
    sbp: float
    dbp: float
    ptt_s: float


def _draw_spec(rng: np.random.Generator, rhythm: str | None) -> SyntheticSpec:
    rhythm = rhythm or str(rng.choice(SYNTHETIC_LABELS, p=[0.45, 0.15, 0.15, 0.15, 0.10]))
    lo, hi = RHYTHMS[rhythm][1]
    sbp = float(rng.uniform(100, 160))
    # pulse transit time shortens as blood pressure rises (Moens-Korteweg): about 1 ms per mmHg here
    ptt = 0.30 - 0.001 * (sbp - 100) + float(rng.normal(0, 0.01))
    return SyntheticSpec(rhythm=rhythm, hr=float(rng.uniform(lo, hi)), resp_rate=float(rng.uniform(10, 22)),
                         spo2=float(rng.uniform(93, 100)), sbp=sbp, dbp=float(rng.uniform(0.55, 0.68) * sbp),
                         ptt_s=ptt)


def _beat_times(rng: np.random.Generator, spec: SyntheticSpec, duration_s: float) -> np.ndarray:
    """R-peak times (s) from -1.5 s to duration + 1.5 s, so edge beats are complete."""
    mean_rr = 60.0 / spec.hr
    t, times = -1.5 + rng.uniform(0, mean_rr), []
    while t < duration_s + 1.5:
        times.append(t)
        if spec.rhythm == "AFIB":  # irregularly irregular: independent gamma-distributed intervals, CV about 0.2
            rr = rng.gamma(25.0, mean_rr / 25.0)
        else:  # respiratory sinus arrhythmia (3 %) plus beat-to-beat jitter (1.5 %)
            rr = mean_rr * (1 + 0.03 * np.sin(2 * np.pi * spec.resp_rate / 60 * t) + 0.015 * rng.standard_normal())
        t += max(rr, 0.3)
    return np.asarray(times)


# A Gaussian wave is evaluated only within 8 SD of its centre: exp(-32) ~ 1e-14 of its peak, far below the float32
# resolution of the stored signal, and ~25x fewer exp() calls than every beat over the whole window.
_SUPPORT_SD = 8.0


def _gauss_train(n: int, fs: float, centers: np.ndarray, amps: np.ndarray, width: float) -> np.ndarray:
    """Sum over beats of amp * exp(-(t - center)^2 / (2 width^2)) on t = arange(n) / fs; centers (s), amps (K,)."""
    half = int(np.ceil(_SUPPORT_SD * width * fs))
    idx = np.floor(centers * fs).astype(np.int64)[:, None] + np.arange(-half, half + 2)   # (K, L) sample indices
    inside = (idx >= 0) & (idx < n)
    d = (idx / fs - centers[:, None]) / width   # idx / fs is exactly t[idx]
    values = amps[:, None] * np.exp(-0.5 * d * d)
    return np.bincount(idx[inside], weights=values[inside], minlength=n)


def _vcg(t, fs, beats, spec, rng, rotation) -> np.ndarray:
    """Cardiac dipole (3, T) in mV for the beat times (s) on the sample times t (s) at fs (Hz)."""
    k = len(beats)
    rr = np.diff(beats, append=beats[-1] + 60.0 / spec.hr)
    qt = 0.40 * np.sqrt(np.clip(rr, 0.3, 2.0))  # Bazett: QT scales with sqrt(RR)
    pr = 0.24 if spec.rhythm == "1AVB" else 0.16
    offsets = {"P": np.full(k, -pr), "Q": np.full(k, -0.025), "R": np.zeros(k), "S": np.full(k, 0.03),
               "T": qt - 0.08}
    out = np.zeros((3, len(t)))
    for name, (direction, amp, width) in _WAVES.items():
        if name == "P" and spec.rhythm == "AFIB":
            continue
        amps = amp * rng.uniform(0.9, 1.1, size=k)  # beat-to-beat amplitude variation
        out += np.outer(rotation @ np.asarray(direction), _gauss_train(len(t), fs, beats + offsets[name], amps, width))
    if spec.rhythm == "AFIB":  # fibrillatory f-waves, 4-8 Hz, along the atrial axis
        f = sum(0.03 * np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3))
        out += np.outer(rotation @ np.asarray(_WAVES["P"][0]), f)
    return out


def _random_rotation(rng: np.random.Generator, max_deg: float = 20.0) -> np.ndarray:
    """A small random rotation of the heart's electrical axis."""
    a, b, c = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ecg_leads(t, fs, beats, spec, rng, noise_mv) -> np.ndarray:
    """12 leads (12, T) in mV; limb leads derived from I and II so the identities hold exactly."""
    proj = _LEAD_VECTORS / np.linalg.norm(_LEAD_VECTORS, axis=1, keepdims=True)
    raw = proj @ _vcg(t, fs, beats, spec, rng, _random_rotation(rng)) * rng.uniform(0.7, 1.3)
    raw[2:] *= _CHEST_GAIN
    wander = 0.05 * np.sin(2 * np.pi * spec.resp_rate / 60 * t + rng.uniform(0, 2 * np.pi))
    raw += wander + noise_mv * rng.standard_normal(raw.shape)
    lead_i, lead_ii = raw[0], raw[1]
    limb = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2,
                     lead_ii - lead_i / 2])
    return np.concatenate([limb, raw[2:]])


def _ppg(t, fs, beats, spec, rng) -> tuple[np.ndarray, np.ndarray]:
    """PPG (T,) in arbitrary units with a systolic peak ptt after each R-peak, and the peak times (s)."""
    peaks = beats + spec.ptt_s
    amps = rng.uniform(0.9, 1.1, size=len(beats))
    n = len(t)
    # systolic wave plus the dicrotic wave 0.25 s later
    pulse = _gauss_train(n, fs, peaks, amps, 0.07) + _gauss_train(n, fs, peaks + 0.25, 0.35 * amps, 0.08)
    resp = 1 + 0.08 * np.sin(2 * np.pi * spec.resp_rate / 60 * t)  # respiratory amplitude modulation
    return pulse * resp + 0.01 * rng.standard_normal(len(t)), peaks


def _report(spec: SyntheticSpec) -> str:
    phrase = RHYTHMS[spec.rhythm][0]
    tail = "otherwise normal ecg." if spec.rhythm == "SR" else "abnormal ecg."
    return f"{phrase}, heart rate {spec.hr:.0f} bpm. {tail}"


def generate_record(seed: int, fs: float = 500.0, duration_s: float = 10.0, rhythm: str | None = None,
                    noise_mv: float = 0.01) -> Record:
    """One synthetic 12-lead ECG + PPG Record (ECG in mV) with report, rhythm label, vitals and true peak indices."""
    rng = np.random.default_rng(seed)
    spec = _draw_spec(rng, rhythm)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    beats = _beat_times(rng, spec, duration_s)
    ecg = _ecg_leads(t, fs, beats, spec, rng, noise_mv)
    ppg, ppg_times = _ppg(t, fs, beats, spec, rng)
    inside = (beats >= 0) & (beats < (n - 0.5) / fs)
    ppg_inside = (ppg_times >= 0) & (ppg_times < (n - 0.5) / fs)
    hr_measured = 60.0 / float(np.diff(beats[inside]).mean()) if inside.sum() > 1 else spec.hr
    return Record(
        signal=np.concatenate([ecg, ppg[None]]).astype(np.float32), channels=list(TWELVE_LEADS) + ["PPG"], fs=fs,
        text=_report(spec), labels=[spec.rhythm], label_names={k: v[0] for k, v in RHYTHMS.items()},
        vitals={"HR": hr_measured, "RR": spec.resp_rate, "SpO2": spec.spo2, "SBP": spec.sbp, "DBP": spec.dbp},
        subject_id=f"synth-{seed}", source="synthetic", record_id=f"synthetic_{seed:08d}",
        units=["mV"] * 12 + ["au"],
        meta={"rpeaks": np.round(beats[inside] * fs).astype(np.int64),
              "ppg_peaks": np.round(ppg_times[ppg_inside] * fs).astype(np.int64), "rhythm": spec.rhythm,
              "ptt_s": spec.ptt_s},
    )


def synthetic_samples(n: int, seed: int = 0, cfg=None, fs: float = 500.0) -> list[dict]:
    """`n` preprocessed window samples (first window of records seed, seed+1, ...) in the pipeline's dict format."""
    dataset = SyntheticDataset(size=n, seed=seed, cfg=cfg, fs=fs)
    return [dataset[i] for i in range(n)]


def _window(seed: int, fs: float, cfg, beat_info: bool = False) -> dict:
    """The first preprocessed window of synthetic record `seed` (generated at fs Hz), with its R peaks and rate
    features when beat_info."""
    from .preprocess import preprocess_record

    # the plausibility gate judges foreign recordings; this generator's own output is clean by construction, and
    # the gate's white-noise rule misreads a few low-amplitude derived leads (III = II - I) as noise
    sample = preprocess_record(generate_record(seed, fs=fs, duration_s=cfg.window_s), cfg, quality="off")[0]
    if beat_info:
        from .beats import with_beat_info

        sample = with_beat_info(sample, cfg.fs)
    return sample


def _windows(seeds: range, fs: float, cfg, beat_info: bool = False) -> list[dict]:
    """Windows of several records (one pool task: a chunk amortises the pickling of arguments)."""
    out = []
    for seed in seeds:
        try:
            out.append(_window(seed, fs, cfg, beat_info))
        except Exception as err:  # not every error type pickles back from a pool worker: name it in one that does
            raise RuntimeError(f"synthetic record {seed}: {type(err).__name__}: {err}") from None
    return out


def _copy_sample(sample: dict) -> dict:
    """A sample whose arrays and lists the caller may modify without touching the cached one."""
    return {k: v.copy() if isinstance(v, (np.ndarray, list)) else v for k, v in sample.items()}


class SyntheticDataset:
    """Map-style dataset of `size` synthetic window samples; item i is always the same (exact resume, any worker).

    A window costs ~3 ms to generate and preprocess, more than a tiny-preset training step spends on it, so every
    window is kept in memory after it is first made (when the whole set fits in `cache_mb`), and `prefill()` makes
    them all up front, in parallel processes: the training loop then never waits for synthetic data. beat_info:
    each window also carries its R peaks and rate features (`beats.with_beat_info`), found once with the window.
    """

    def __init__(self, size: int = 100_000, seed: int = 0, cfg=None, fs: float = 500.0, transform=None,
                 cache_mb: float = 2048.0, beat_info: bool = False):
        from .preprocess import PreprocessConfig

        self.size, self.seed, self.fs = size, seed, fs
        self.cfg = cfg or PreprocessConfig()
        self.transform = transform  # callable(sample, fs) -> sample, e.g. an augmentation
        self.beat_info = beat_info
        window_bytes = 4 * len(self.cfg.channels) * self.cfg.window_samples  # float32 signal of one window
        self.caches = size * window_bytes <= cache_mb * 2 ** 20
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        sample = self._cache.get(index)
        if sample is None:
            sample = _window(self.seed + index, self.fs, self.cfg, self.beat_info)
            if self.caches:
                self._cache[index] = sample
        if self.caches:
            sample = _copy_sample(sample)  # an in-place augmentation must not alter the cached window
        return self.transform(sample, self.cfg.fs) if self.transform else sample

    def prefill(self, processes: int = 1, chunk: int = 64) -> float:
        """Generate every window not yet cached, over `processes` worker processes -> seconds taken."""
        import time

        if not self.caches:
            raise ValueError(f"{self.size} synthetic windows do not fit in the cache: raise cache_mb or lower size")
        t0 = time.perf_counter()
        todo = [range(a, min(a + chunk, self.size)) for a in range(0, self.size, chunk)
                if any(i not in self._cache for i in range(a, min(a + chunk, self.size)))]
        seeds = [range(self.seed + r.start, self.seed + r.stop) for r in todo]
        if processes > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # fork: children inherit the imported modules, no re-import of the package per worker
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
                n = len(seeds)
                made = list(pool.map(_windows, seeds, [self.fs] * n, [self.cfg] * n, [self.beat_info] * n))
        else:
            made = [_windows(s, self.fs, self.cfg, self.beat_info) for s in seeds]
        for r, samples in zip(todo, made):
            self._cache.update(zip(r, samples))
        return time.perf_counter() - t0
