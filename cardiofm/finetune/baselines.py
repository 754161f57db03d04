"""Classical baselines measured beside the model: hand-made per-lead ECG features + logistic regression for
diagnosis, and heart rate by R-peak (ECG) or pulse-peak (PPG) counting."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from ..data.preprocess import PreprocessConfig, filter_channels, resample
from ..data.beats import detect_pulse_peaks
from ..data.rpeaks import detect_rpeaks

BEAT_BEFORE_S, BEAT_AFTER_S = 0.25, 0.45   # median-beat window around the R peak: P wave .. end of T wave
BEAT_STEP_S = 0.02                         # template sampled every 20 ms -> 35 values per lead
FEATURE_FS = 100.0                         # features are computed at 100 Hz whatever the input rate


def _median_beat(x: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    """(leads, template samples) median beat over beats whose window fits; zeros without beats (mV)."""
    a, b = int(round(BEAT_BEFORE_S * fs)), int(round(BEAT_AFTER_S * fs))
    step = max(1, int(round(BEAT_STEP_S * fs)))
    good = peaks[(peaks - a >= 0) & (peaks + b < x.shape[1])]
    if len(good) == 0:
        return np.zeros((x.shape[0], len(range(0, a + b, step))), dtype=np.float64)
    beats = np.stack([x[:, p - a:p + b] for p in good])           # (beats, leads, samples)
    template = np.median(beats, axis=0)
    template -= template[:, :max(1, int(0.05 * fs))].mean(1, keepdims=True)  # PR-segment baseline
    return template[:, ::step]


def rhythm_features(peaks: np.ndarray, fs: float, duration_s: float) -> np.ndarray:
    """Heart rate (bpm), RR SD and RMSSD (s), RR range (s), beat count per minute, from R-peak indices."""
    if len(peaks) < 3:
        return np.array([0.0, 0.0, 0.0, 0.0, 60.0 * len(peaks) / duration_s])
    rr = np.diff(peaks) / fs
    return np.array([60.0 / rr.mean(), rr.std(), np.sqrt(np.mean(np.diff(rr) ** 2)), np.ptp(rr),
                     60.0 * len(peaks) / duration_s])


def ecg_features(signal: np.ndarray, fs: float, channels: Sequence[str], leads: Sequence[str]) -> np.ndarray:
    """Hand-made features of one ECG (channels, samples) in mV: per lead a median-beat template (35 values every
    20 ms), amplitude statistics (SD, range, skewness, kurtosis, QRS max/min), plus rhythm features."""
    cfg = PreprocessConfig(fs=FEATURE_FS, channels=list(leads))
    index = {c: i for i, c in enumerate(channels)}
    present = [c for c in leads if c in index]
    x = resample(np.asarray(signal, np.float32)[[index[c] for c in present]], fs, FEATURE_FS)
    x = filter_channels(x, present, FEATURE_FS, cfg).astype(np.float64)
    full = np.zeros((len(leads), x.shape[1]))
    for row, name in zip(x, present):
        full[list(leads).index(name)] = row
    peaks = detect_rpeaks(x, FEATURE_FS) if len(x) else np.zeros(0, np.int64)
    template = _median_beat(full, peaks, FEATURE_FS)
    qrs = template[:, int(BEAT_BEFORE_S / BEAT_STEP_S) - 3:int(BEAT_BEFORE_S / BEAT_STEP_S) + 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        amp = np.stack([full.std(1), np.ptp(full, 1), np.nan_to_num(stats.skew(full, 1)),
                        np.nan_to_num(stats.kurtosis(full, 1)), qrs.max(1), qrs.min(1)], 1)
    rhythm = rhythm_features(peaks, FEATURE_FS, full.shape[1] / FEATURE_FS)
    return np.concatenate([template.ravel(), amp.ravel(), rhythm])


class FeatureLogisticBaseline:
    """Standardised hand-made features -> one L2 logistic regression per label (multi-label, balanced classes)."""

    def __init__(self, c: float = 0.05, seed: int = 0):
        self.c, self.seed = c, seed
        self.models: list = []

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "FeatureLogisticBaseline":
        """features (N, F), labels (N, K) multi-hot; a label with one outcome gets a constant predictor."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.models = []
        for k in range(labels.shape[1]):
            y = labels[:, k].astype(int)
            if y.min() == y.max():
                self.models.append(float(y[0]))
                continue
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=self.c, class_weight="balanced",
                                                                     max_iter=2000, random_state=self.seed))
            self.models.append(clf.fit(features, y))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, K) probabilities."""
        cols = [np.full(len(features), m) if isinstance(m, float) else m.predict_proba(features)[:, 1]
                for m in self.models]
        return np.stack(cols, 1)


def ppg_peaks(ppg: np.ndarray, fs: float) -> np.ndarray:
    """Systolic pulse-peak indices of a PPG (samples,) at fs Hz (the data layer's detector, shared with the
    rate-aware vitals head)."""
    return detect_pulse_peaks(ppg, fs)


def hr_from_peaks(peaks: np.ndarray, fs: float) -> float:
    """Heart rate (bpm) = 60 / mean beat interval of the detected peaks; NaN with fewer than two peaks."""
    if len(peaks) < 2:
        return float("nan")
    return 60.0 * (len(peaks) - 1) / ((peaks[-1] - peaks[0]) / fs)


def hr_by_peak_counting(signal: np.ndarray, fs: float, kind: str) -> float:
    """HR (bpm) of one window: R peaks of an ECG (channels, samples) or pulse peaks of a PPG (samples,)."""
    if kind == "ecg":
        return hr_from_peaks(detect_rpeaks(signal, fs), fs)
    if kind == "ppg":
        return hr_from_peaks(ppg_peaks(np.asarray(signal).ravel(), fs), fs)
    raise ValueError(f"unknown signal kind {kind!r}; use 'ecg' or 'ppg'")


def window_features(windows: list[dict], fs: float, leads: Sequence[str]) -> np.ndarray:
    """(N, F) hand-made ECG features of preprocessed window samples (signal in the layout's channel order)."""
    return np.stack([ecg_features(w["signal"][w["channel_mask"]], fs,
                                  [c for c, m in zip(w["channels"], w["channel_mask"]) if m], leads)
                     for w in windows])


def diagnosis_baseline(train: list[dict], test: list[dict], label_names: Sequence[str], fs: float,
                       leads: Sequence[str], c: float = 0.005) -> np.ndarray:
    """(N_test, K) probabilities of the feature + logistic-regression baseline trained on `train` windows."""
    def multi_hot(ws):
        return np.array([[n in w["labels"] for n in label_names] for w in ws], dtype=int)
    model = FeatureLogisticBaseline(c).fit(window_features(train, fs, leads), multi_hot(train))
    return model.predict_proba(window_features(test, fs, leads))


def hr_baselines(windows: list[dict], fs: float) -> dict[str, np.ndarray]:
    """Per-window HR (bpm, NaN where undetectable) by R-peak counting on the ECG leads and pulse-peak counting on
    the PPG of preprocessed windows: {"ecg_peak_counting": ..., "ppg_peak_counting": ...} (absent channel: NaN)."""
    out = {"ecg_peak_counting": [], "ppg_peak_counting": []}
    for w in windows:
        names, present = w["channels"], w["channel_mask"]
        ecg = [i for i, c in enumerate(names) if present[i] and c != "PPG" and c in ECG_LIKE]
        ppg = [i for i, c in enumerate(names) if present[i] and c == "PPG"]
        out["ecg_peak_counting"].append(hr_by_peak_counting(w["signal"][ecg], fs, "ecg") if ecg else np.nan)
        out["ppg_peak_counting"].append(hr_by_peak_counting(w["signal"][ppg[0]], fs, "ppg") if ppg else np.nan)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


ECG_LIKE = frozenset(("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "ECG"))
