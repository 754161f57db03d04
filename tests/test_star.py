"""STAR invariants on real 12-lead records: peaks and R-R kept, bounded warp, continuous gain, seeded, no NaN."""
from __future__ import annotations

import ast
import csv

import numpy as np
import pytest

from cardiofm.data import STAR, detect_rpeaks
from cardiofm.data.rpeaks import match_rpeaks
from conftest import shared_path

wfdb = pytest.importorskip("wfdb")
FS = 500.0


@pytest.fixture(scope="module")
def cinc_records() -> list[tuple[str, np.ndarray]]:
    """The 50 CinC 2021 sample records: 12 leads, 500 Hz, 10 s, mV."""
    root = shared_path("torch_ecg_sample", "cinc2021")
    return [(h.stem, wfdb.rdrecord(str(h.with_suffix(""))).p_signal.T.astype(np.float32))
            for h in sorted(root.glob("*.hea"))]


@pytest.fixture(scope="module")
def af_records() -> list[tuple[str, np.ndarray, float]]:
    """PTB-XL records labelled atrial fibrillation (SCP code AFIB), 100 Hz, 12 leads."""
    root = shared_path("ptbxl")
    out = []
    with open(root / "ptbxl_database.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if "AFIB" in ast.literal_eval(row["scp_codes"]) and (root / (row["filename_lr"] + ".hea")).exists():
                rec = wfdb.rdrecord(str(root / row["filename_lr"]))
                out.append((row["ecg_id"], rec.p_signal.T.astype(np.float32), float(rec.fs)))
    if not out:
        pytest.skip("no AFIB record in the PTB-XL sample")
    return out


def test_shape_dtype_head_tail_and_no_nan(cinc_records):
    star = STAR(p=1.0, seed=1)
    for name, x in cinc_records:
        for dtype in (np.float32, np.float64):
            xi = x.astype(dtype)
            r = detect_rpeaks(xi, FS)
            y = star(xi, FS, rpeaks=r)
            assert y.shape == xi.shape and y.dtype == xi.dtype and np.isfinite(y).all(), name
            assert np.array_equal(y[:, :r[0] + 1], xi[:, :r[0] + 1]), name       # head and first R-peak (gain 1)
            assert np.array_equal(y[:, r[-1]:], xi[:, r[-1]:]), name              # last R-peak and tail
            assert not np.array_equal(y, xi), name


def test_rpeaks_found_again_at_same_indices(cinc_records):
    star = STAR(p=1.0, seed=2)
    same = total = tp = fn = fp = 0
    for _, x in cinc_records:
        r = detect_rpeaks(x, FS)
        r2 = detect_rpeaks(star(x, FS, rpeaks=r), FS)
        same += len(np.intersect1d(r, r2))
        total += len(r)
        a, b, c = match_rpeaks(r, r2, int(0.15 * FS))
        tp, fn, fp = tp + a, fn + b, fp + c
    # exact sample index for nearly all beats; the rest are detector ties (flat apex, noise bursts), not moved peaks
    assert same / total >= 0.97, (same, total)
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.99, (tp, fn, fp)


def test_rr_intervals_unchanged_on_af(af_records):
    star = STAR(p=1.0, seed=3)
    for ecg_id, x, fs in af_records:
        r = detect_rpeaks(x, fs)
        assert len(r) >= 8, ecg_id
        y = star(x, fs, rpeaks=r)
        # the warp maps every R-peak onto itself: the values there are the input's times the beat gain
        gains = y[:, r] / np.where(x[:, r] == 0, 1, x[:, r])
        assert np.allclose(gains, gains[:1], atol=1e-4), ecg_id                  # one gain per beat, all leads
        r2 = detect_rpeaks(y, fs)
        tp, fn, fp = match_rpeaks(r, r2, 1)
        assert fn == 0 and fp == 0, (ecg_id, fn, fp)                            # R-R within one sample (10 ms)
        cv = np.std(np.diff(r)) / np.mean(np.diff(r))
        cv2 = np.std(np.diff(r2)) / np.mean(np.diff(r2))
        assert abs(cv2 - cv) < 0.01 and cv > 0.08, (ecg_id, cv, cv2)            # AF irregularity preserved


def _local_lag(x: np.ndarray, y: np.ndarray, lo: int, hi: int, max_lag: int) -> tuple[int, float]:
    """Lag (samples) that best aligns y[lo:hi] with x: the timing shift of the wave inside the window."""
    ref = y[lo:hi] - y[lo:hi].mean()
    best, best_lag = -np.inf, 0
    for lag in range(-max_lag, max_lag + 1):
        seg = x[lo - lag:hi - lag] - x[lo - lag:hi - lag].mean()
        c = float(seg @ ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12)
        if c > best:
            best, best_lag = c, lag
    return best_lag, best


def test_internal_timing_shift_within_bound(cinc_records):
    bound_s = 0.04
    bound = int(bound_s * FS)
    star = STAR(p=1.0, seed=4, max_shift_s=bound_s, amplitude_range=(1.0, 1.0), warp_depth_range=(1.0, 1.0))
    lags = []
    for _, x in cinc_records[:20]:
        r = detect_rpeaks(x, FS)
        y = star(x, FS, rpeaks=r)
        lead = int(np.argmax(np.ptp(x, axis=1)))
        for a, b in zip(r[:-1], r[1:]):
            lo, hi = a + int(0.15 * FS), a + int(0.5 * (b - a))      # T wave: after the QRS, before mid-cycle
            if hi - lo < 40 or lo - 3 * bound < 0 or np.ptp(x[lead, lo:hi]) < 0.1:
                continue
            lag, corr = _local_lag(x[lead], y[lead], lo, hi, 3 * bound)        # search 3x wider than allowed
            if corr > 0.95:        # a warped window still matches its source closely; else the estimate is noise
                lags.append(abs(lag))
    lags = np.array(lags)
    assert len(lags) > 100
    assert lags.max() <= bound + 1, lags.max()                 # never beyond the configured bound (+1 rounding)
    assert np.mean(lags >= bound // 4) > 0.3, lags              # and the warp really moves the T waves


def test_warp_monotone_and_gain_continuous():
    star = STAR(p=1.0, seed=5, max_shift_s=0.08)
    r = np.array([100, 300, 450, 800, 1000, 1200])            # includes short segments: the bound adapts
    shifts, gains = star.plan(r, FS)
    pos, gain = star.warp(r, shifts, gains)
    assert np.all(np.diff(pos) > 0)                             # monotone time warp
    assert np.all(np.abs(pos - np.arange(r[0], r[-1])) <= 0.08 * FS + 1e-9)
    assert np.array_equal(pos[r[:-1] - r[0]], r[:-1].astype(float))      # fixed endpoints
    assert np.allclose(gain[r[:-1] - r[0]], gains[:-1]) and gains[0] == gains[-1] == 1.0
    step = np.abs(np.diff(gain)).max()
    assert step < np.pi / 2 * np.abs(np.diff(gains)).max() / np.diff(r).min() + 1e-12   # no jump anywhere
    assert 0.8 - 1e-9 <= gains.min() and gains.max() <= 1.3 + 1e-9


def test_no_amplitude_jump_at_boundaries(cinc_records):
    star = STAR(p=1.0, seed=6)
    for name, x in cinc_records[:10]:
        r = detect_rpeaks(x, FS)
        y = star(x, FS, rpeaks=r)
        for k in r:
            if 2 <= k < x.shape[1] - 2:
                dx = np.abs(np.diff(x[:, k - 2:k + 3], axis=1)).max()
                dy = np.abs(np.diff(y[:, k - 2:k + 3], axis=1)).max()
                assert dy <= 1.31 * dx + 1e-3, (name, k, dx, dy)


def test_identical_warp_across_leads(cinc_records):
    x = cinc_records[0][1]
    lead = x[1]
    stack = np.stack([lead, 3.0 * lead, -lead, x[7]])
    r = detect_rpeaks(stack[:1], FS)
    y = STAR(p=1.0, seed=7)(stack, FS, rpeaks=r)
    assert np.allclose(y[1], 3.0 * y[0], atol=1e-5) and np.allclose(y[2], -y[0], atol=1e-6)
    y1 = STAR(p=1.0, seed=7)(stack[[3]], FS, rpeaks=r)        # a lead augmented alone gets the same warp
    assert np.allclose(y1[0], y[3], atol=1e-6)


def test_seeded_determinism_probability_and_counting(cinc_records):
    x = cinc_records[3][1]
    a = [STAR(p=1.0, seed=11)(x, FS) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], STAR(p=1.0, seed=12)(x, FS))
    star = STAR(p=0.5, seed=0)
    outs = [star(x, FS) for _ in range(60)]
    assert 15 <= star.stats["applied"] <= 45 and star.stats["skipped_p"] == 60 - star.stats["applied"]
    assert sum(np.array_equal(o, x) for o in outs) == star.stats["skipped_p"]
    assert np.array_equal(STAR(p=0.0)(x, FS), x)
    star = STAR(p=1.0)
    assert np.array_equal(star(x, FS, rpeaks=[2500]), x)
    assert np.array_equal(star(np.zeros((12, 5000), np.float32), FS), np.zeros((12, 5000), np.float32))
    assert star.stats["too_few_rpeaks"] == 2 and star.stats["applied"] == 0


def test_sample_dict_keeps_ppg_and_masked_channels(cinc_records):
    x = cinc_records[5][1]
    names = ["I", "II", "V1", "PPG", "V2"]
    ppg = np.sin(np.linspace(0, 60, x.shape[1])).astype(np.float32)
    sig = np.stack([x[0], x[1], x[6], ppg, np.zeros_like(ppg)])
    sample = {"signal": sig, "channel_mask": np.array([True, True, True, True, False]), "channels": names}
    out = STAR(p=1.0, seed=8).apply(sample, FS)
    assert np.array_equal(out["signal"][3], ppg) and np.array_equal(out["signal"][4], sig[4])
    assert not np.array_equal(out["signal"][:3], sig[:3]) and out["signal"].shape == sig.shape
    assert sample["signal"] is sig and np.array_equal(sample["signal"], sig)     # input sample not modified
