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


# ---- signal-quality-aware heart rate (ECG + PPG) ------------------------------------------------------------------
# Beat windows for the template correlation: QRS complex for the ECG, the systolic upstroke/peak for the PPG.
ECG_BEAT_S, PPG_BEAT_S = (0.15, 0.25), (0.30, 0.30)
AGREE_BPM = 3.0          # two sources closer than this agree
MIN_SQI = 0.5            # below this a source is not trusted when the other one is good
HR_RANGE_BPM = (30.0, 200.0)


def beat_sqi(x: np.ndarray, peaks: np.ndarray, fs: float, span_s: tuple[float, float]) -> float:
    """Signal quality in [0, 1] of one source from its detected beats: mean Pearson correlation of every beat with
    the median beat (template), times the fraction of beat intervals within 20 % of the median interval."""
    a, b = int(span_s[0] * fs), int(span_s[1] * fs)
    good = peaks[(peaks - a >= 0) & (peaks + b <= len(x))]
    if len(good) < 3:
        return 0.0
    beats = np.stack([x[p - a:p + b] for p in good])
    template = np.median(beats, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num([np.corrcoef(beat, template)[0, 1] for beat in beats])
    intervals = np.diff(peaks) / fs
    regular = float(np.mean(np.abs(intervals / np.median(intervals) - 1.0) < 0.2))
    return float(np.clip(np.mean(corr), 0.0, 1.0) * regular)


def _source_rate(peaks: np.ndarray, fs: float) -> float:
    """Rate (bpm) of a source: beats counted over the span of its detections, with a detection closer than 0.6
    median intervals to the previous one dropped (a spurious peak; an ectopic beat's compensatory pause keeps it)
    and an interval of k median intervals counted as k beats (missed detections); NaN with fewer than 3 beats or
    outside HR_RANGE_BPM. Counting keeps the ectopic short/long pairs that a median or trimmed mean would bias."""
    if len(peaks) < 3:
        return float("nan")
    median = float(np.median(np.diff(peaks)))
    kept = [peaks[0]]
    for p in peaks[1:]:
        if p - kept[-1] >= 0.6 * median:
            kept.append(p)
    intervals = np.diff(kept)
    beats = float(np.sum(np.maximum(1, np.round(intervals / median))))
    hr = 60.0 * beats / ((kept[-1] - kept[0]) / fs) if beats else float("nan")
    return hr if HR_RANGE_BPM[0] <= hr <= HR_RANGE_BPM[1] else float("nan")


def fused_heart_rate(ecg: np.ndarray | None, ppg: np.ndarray | None, fs: float) -> dict[str, float]:
    """Heart rate (bpm) of one window from ECG leads (leads, samples) and/or a PPG (samples,), weighting each
    source by its beat_sqi: agreeing sources -> the ECG (R peaks time a beat to a few ms, the pulse peak to tens of
    ms) unless its quality is below MIN_SQI; disagreeing ones -> the better one (if its quality >= MIN_SQI, else NaN:
    the window is flagged, not guessed). Returns hr, ecg_hr, ppg_hr, ecg_sqi, ppg_sqi."""
    out = {"ecg_hr": float("nan"), "ppg_hr": float("nan"), "ecg_sqi": 0.0, "ppg_sqi": 0.0}
    if ecg is not None and len(ecg):
        peaks = detect_rpeaks(ecg, fs)
        lead = ecg[int(np.argmax(np.ptp(ecg, 1)))]   # the largest lead shows the QRS shape best
        out["ecg_hr"], out["ecg_sqi"] = _source_rate(peaks, fs), beat_sqi(lead, peaks, fs, ECG_BEAT_S)
    if ppg is not None and len(ppg):
        peaks = ppg_peaks(ppg, fs)
        out["ppg_hr"], out["ppg_sqi"] = _source_rate(peaks, fs), beat_sqi(ppg, peaks, fs, PPG_BEAT_S)
    e, p = out["ecg_hr"], out["ppg_hr"]
    qe, qp = (out["ecg_sqi"] if np.isfinite(e) else 0.0), (out["ppg_sqi"] if np.isfinite(p) else 0.0)
    if qe > 0 and qp > 0 and abs(e - p) <= AGREE_BPM:
        hr = e if qe >= MIN_SQI or qe >= qp else p
    elif max(qe, qp) >= MIN_SQI or (qe > 0) != (qp > 0):
        hr = e if qe >= qp else p
    else:
        hr = float("nan")
    return {"hr": float(hr), **out}


# ---- respiratory rate and SpO2 ------------------------------------------------------------------------------------
RR_BAND_HZ = (0.1, 0.7)       # 6-42 breaths/min
RR_GRID_HZ = 4.0              # respiratory modulation series are resampled to 4 Hz before the spectrum
FUSION_SD = 4.0               # "smart fusion": modulations whose estimates spread more than this are not trusted


def spectral_rate(series: np.ndarray, fs: float) -> float:
    """Dominant frequency in RR_BAND_HZ of a (samples,) series at fs Hz, in breaths/min (NaN if too short)."""
    from scipy.signal import detrend, welch

    x = detrend(np.asarray(series, np.float64))
    if len(x) < int(8 * fs) or not np.isfinite(x).all() or np.ptp(x) == 0:
        return float("nan")
    f, pxx = welch(x, fs=fs, nperseg=len(x), nfft=max(1024, len(x)), window="hann")
    band = (f >= RR_BAND_HZ[0]) & (f <= RR_BAND_HZ[1])
    return 60.0 * float(f[band][np.argmax(pxx[band])])


def _beat_series(times: np.ndarray, values: np.ndarray, duration_s: float) -> np.ndarray:
    """Beat-by-beat values at `times` (s) interpolated onto an RR_GRID_HZ grid (NaN array if < 4 beats)."""
    grid = np.arange(0.0, duration_s, 1.0 / RR_GRID_HZ)
    if len(times) < 4:
        return np.full(len(grid), np.nan)
    return np.interp(grid, times, values)


def respiratory_rate_estimates(ecg: np.ndarray | None, ppg: np.ndarray | None, fs: float) -> dict[str, float]:
    """Breaths/min from the respiratory modulations of a window (>= 16 s): PPG baseline (RIIV), pulse amplitude
    (RIAV), pulse interval (RIFV); ECG R-peak amplitude (EDR) and R-R interval (RSA). NaN where not measurable.
    The PPG must be unfiltered (its < 0.5 Hz baseline is the RIIV signal); the ECG may be band-passed."""
    from scipy.signal import butter, sosfiltfilt

    out: dict[str, float] = {}
    duration = (len(ppg) if ppg is not None else ecg.shape[1]) / fs
    if ppg is not None:
        sos = butter(2, RR_BAND_HZ, btype="band", fs=fs, output="sos")
        out["ppg_riiv"] = spectral_rate(sosfiltfilt(sos, ppg)[::int(fs // RR_GRID_HZ)], fs / int(fs // RR_GRID_HZ))
        peaks = ppg_peaks(ppg, fs)
        t = peaks / fs
        out["ppg_riav"] = spectral_rate(_beat_series(t, ppg[peaks], duration), RR_GRID_HZ)
        out["ppg_rifv"] = spectral_rate(_beat_series(t[1:], np.diff(t), duration), RR_GRID_HZ)
    if ecg is not None and len(ecg):
        peaks = detect_rpeaks(ecg, fs)
        lead = ecg[int(np.argmax(np.ptp(ecg, 1)))]
        t = peaks / fs
        out["ecg_edr"] = spectral_rate(_beat_series(t, lead[peaks], duration), RR_GRID_HZ)
        out["ecg_rsa"] = spectral_rate(_beat_series(t[1:], np.diff(t), duration), RR_GRID_HZ)
    return out


def fused_respiratory_rate(estimates: dict[str, float]) -> float:
    """Majority fusion of modulation estimates (breaths/min): the mean of the estimates within FUSION_SD of their
    median when at least three agree, else NaN (the window is flagged as unmeasurable rather than averaged)."""
    vals = np.array([v for v in estimates.values() if np.isfinite(v)])
    if len(vals) < 3:
        return float("nan")
    agree = vals[np.abs(vals - np.median(vals)) <= FUSION_SD]
    return float(agree.mean()) if len(agree) >= 3 else float("nan")


def resp_channel_rate(resp: np.ndarray, fs: float) -> float:
    """Breaths/min from an impedance/respiration channel (samples,): spectral peak in RR_BAND_HZ."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, RR_BAND_HZ, btype="band", fs=fs, output="sos")
    step = max(1, int(fs // RR_GRID_HZ))
    return spectral_rate(sosfiltfilt(sos, np.asarray(resp, np.float64))[::step], fs / step)


def training_location(values: np.ndarray, kind: str) -> float:
    """Constant predictor fitted on training targets: 'mean' or 'median' (the MAE-optimal constant)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError("no finite training targets")
    return float(np.mean(values) if kind == "mean" else np.median(values))
