"""R-peak detector against expert annotations (MIT-BIH, CPSC 2019) and under injected artefacts."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat
from scipy.signal import resample_poly

from cardiofm.data import detect_rpeaks
from cardiofm.data.rpeaks import match_rpeaks
from conftest import shared_path

wfdb = pytest.importorskip("wfdb")

# MIT-BIH beat annotation symbols (rhythm, noise and other non-beat marks are excluded)
BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
TOLERANCE_S = 0.15


def load_mitdb(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    """(signal (2, samples) mV, fs Hz, annotated beat sample indices) of one MIT-BIH record."""
    path = shared_path("mitdb", f"{name}.hea").with_suffix("")
    rec = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    return rec.p_signal.T.astype(np.float32), float(rec.fs), beats


def scores(reference, detected, fs, tolerance_s: float = TOLERANCE_S) -> tuple[float, float]:
    """(sensitivity, positive predictive value) with +-tolerance_s one-to-one matching (150 ms: EC57)."""
    tp, fn, fp = match_rpeaks(reference, detected, int(tolerance_s * fs))
    return tp / max(tp + fn, 1), tp / max(tp + fp, 1)


@pytest.fixture(scope="module")
def mit119():
    return load_mitdb("119")


@pytest.mark.parametrize("name", ["100", "101", "106", "119"])
def test_mitdb_sensitivity_and_ppv(name):
    x, fs, ref = load_mitdb(name)
    se, ppv = scores(ref, detect_rpeaks(x, fs), fs)
    assert se >= 0.995 and ppv >= 0.995, (name, se, ppv)


def cpsc2019_scores(method: str = "cardiofm", tolerance_s: float = 0.075) -> tuple[float, float]:
    """(sensitivity, PPV) over the 50 CPSC 2019 clips at +-75 ms, first and last 0.5 s ignored (challenge scoring)."""
    root = shared_path("torch_ecg_sample", "cpsc2019")
    tp = fn = fp = 0
    fs = 500.0
    edge = int(0.5 * fs)
    for data in sorted((root / "data").glob("data_*.mat")):
        x = loadmat(data)["ecg"].ravel()
        ref = loadmat(root / "ref" / data.name.replace("data_", "R_"))["R_peak"].ravel().astype(int)
        det = detect_rpeaks(x, fs, method)
        keep = lambda p: p[(p >= edge) & (p <= len(x) - edge)]  # noqa: E731
        a, b, c = match_rpeaks(keep(ref), keep(det), int(tolerance_s * fs))
        tp, fn, fp = tp + a, fn + b, fp + c
    return tp / (tp + fn), tp / (tp + fp)


@pytest.mark.parametrize("method", ["cardiofm", "cardiofm:scored"])
def test_cpsc2019_no_regression(method):
    # measured at +-75 ms: default 93.49 / 91.93, scored 93.35 / 92.31 (held out, 5 folds: 93.35 / 92.31);
    # neurokit2's best here: neurokit 88.40 / 94.41, elgendi2010 69.87 / 71.59 (its peaks sit off the R wave)
    se, ppv = cpsc2019_scores(method)
    assert se >= 0.93 and ppv >= 0.915, (method, se, ppv)


@pytest.mark.xfail(strict=True, reason="acceptance target (97 % Se and PPV at +-75 ms) not reached: CPSC 2019 clips "
                   "hold beats smaller than the noise, T waves as tall as the QRS and noise bursts; a logistic "
                   "candidate scorer did not close the gap held out")
def test_cpsc2019_acceptance_target():
    se, ppv = cpsc2019_scores()
    assert se >= 0.97 and ppv >= 0.97, (se, ppv)


def test_scored_stage_on_ventricular_record():
    # record 106 (ventricular bigeminy, 520 PVCs) is where the rules' PPV is weakest (99.56 %); the packaged
    # learned stage must keep every beat and not add false positives
    x, fs, ref = load_mitdb("106")
    rules = scores(ref, detect_rpeaks(x, fs), fs, 0.075)
    scored = scores(ref, detect_rpeaks(x, fs, "cardiofm:scored"), fs, 0.075)
    assert scored[0] >= 0.999 and scored[1] >= rules[1] - 0.001 and scored[1] >= 0.995, (rules, scored)


def test_scorer_refuses_other_feature_lists():
    from cardiofm.data.rpeaks_refine import CandidateScorer, default_scorer

    blob = default_scorer().to_json()
    assert CandidateScorer.from_json(blob).score(np.zeros((2, len(blob["mean"])), np.float32)).shape == (2,)
    blob["features"] = blob["features"][:-1]
    with pytest.raises(ValueError, match="fitted on features"):
        CandidateScorer.from_json(blob, "rpeak_scorer.json")


def test_any_sampling_rate_and_single_lead(mit119):
    x, fs, ref = mit119
    seg = slice(0, int(300 * fs))  # 5 minutes
    ref5 = ref[ref < seg.stop]
    for new_fs, (up, down) in ((100.0, (5, 18)), (1000.0, (25, 9))):
        y = resample_poly(x[0, seg], up, down)
        det = detect_rpeaks(y, new_fs)
        se, ppv = scores(np.round(ref5 * new_fs / fs).astype(int), det, new_fs)
        assert se >= 0.995 and ppv >= 0.995, (new_fs, se, ppv)


def test_robust_to_wander_noise_inversion_and_pacing_spikes(mit119):
    x, fs, ref = mit119
    n = int(300 * fs)
    ref5 = ref[ref < n]
    rng = np.random.default_rng(0)
    t = np.arange(n) / fs
    y = x[:, :n].copy()
    y += 1.5 * np.sin(2 * np.pi * 0.3 * t) + 0.5 * np.sin(2 * np.pi * 0.05 * t + 1.0)   # 2 mV baseline wander
    y += rng.normal(0, 0.05, y.shape).astype(np.float32)                                 # 50 uV white noise
    y[1] *= -1.0                                                                         # inverted second lead
    spikes = np.arange(int(0.37 * fs), n, int(0.83 * fs))   # asynchronous 5 mV pacing spikes, 1 sample wide
    y[:, spikes] += 5.0
    se, ppv = scores(ref5, detect_rpeaks(y, fs), fs)
    assert se >= 0.995 and ppv >= 0.995, (se, ppv)


@pytest.mark.parametrize("method", ["cardiofm", "cardiofm:scored"])
def test_edge_cases(method):
    assert detect_rpeaks(np.zeros((3, 5000)), 500.0, method).size == 0          # flat: no beats, no NaN warnings
    assert detect_rpeaks(np.zeros(10), 500.0, method).size == 0                  # shorter than two refractory periods
    t = np.arange(5000) / 500.0
    one_flat = np.zeros((2, 5000))
    one_flat[0] = np.exp(-0.5 * ((t % 0.8 - 0.4) / 0.008) ** 2)                  # 8 ms QRS-like pulses at 75 bpm
    peaks = detect_rpeaks(one_flat, 500.0, method)                               # ... second lead flat
    assert np.array_equal(peaks, np.unique(peaks)), peaks
    assert np.abs(peaks - (np.arange(12) * 400 + 200)).max() <= 2, peaks
    with pytest.raises(ValueError, match="unknown R-peak method"):
        detect_rpeaks(np.zeros(5000), 500.0, "cardiofm:nope")
    with pytest.raises(ValueError, match="NaN"):
        detect_rpeaks(np.full(5000, np.nan), 500.0)
    with pytest.raises(ValueError, match="shape"):
        detect_rpeaks(np.zeros((2, 2, 100)), 500.0)
