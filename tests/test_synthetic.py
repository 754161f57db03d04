"""The embedded synthetic generator: lead identities, true R-peaks, PPG timing, labels and vitals."""
import numpy as np
import pytest

from cardiofm.data import PreprocessConfig, TWELVE_LEADS
from cardiofm.data.synthetic import SYNTHETIC_LABELS, SyntheticDataset, generate_record, synthetic_samples


def _lead(rec, name):
    return rec.signal[rec.channels.index(name)].astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_limb_lead_identities_hold(seed):
    rec = generate_record(seed)
    i, ii = _lead(rec, "I"), _lead(rec, "II")
    assert np.abs(_lead(rec, "III") - (ii - i)).max() < 1e-6
    assert np.abs(_lead(rec, "aVR") + (i + ii) / 2).max() < 1e-6
    assert np.abs(_lead(rec, "aVL") - (i - ii / 2)).max() < 1e-6
    assert np.abs(_lead(rec, "aVF") - (ii - i / 2)).max() < 1e-6


@pytest.mark.parametrize("rhythm", SYNTHETIC_LABELS)
def test_rpeaks_are_where_the_generator_says(rhythm):
    rec = generate_record(11, fs=500.0, rhythm=rhythm)
    lead_ii, rpeaks = _lead(rec, "II"), rec.meta["rpeaks"]
    half = int(0.05 * rec.fs)  # +-50 ms: the QRS complex
    for r in rpeaks:
        lo, hi = max(0, r - half), min(len(lead_ii), r + half + 1)
        assert abs(lo + int(np.argmax(lead_ii[lo:hi])) - r) <= 1
    rate = 60.0 * rec.fs / np.diff(rpeaks).mean()
    assert rate == pytest.approx(rec.vitals["HR"], rel=2e-3)  # peaks are rounded to samples
    assert rec.labels == [rhythm] and rec.label_names[rhythm] in rec.text


def test_rpeaks_found_by_detector():
    detect_rpeaks = pytest.importorskip("cardiofm.data.rpeaks").detect_rpeaks
    rec = generate_record(5, fs=500.0, rhythm="SR")
    found = detect_rpeaks(rec.signal[:12], rec.fs)
    true = rec.meta["rpeaks"]
    matched = sum(np.min(np.abs(found - r)) <= 0.05 * rec.fs for r in true)
    assert matched == len(true) and len(found) <= len(true) + 1


def test_ppg_peaks_follow_rpeaks():
    rec = generate_record(7, fs=500.0, rhythm="SR")
    ppg, rpeaks, peaks = _lead(rec, "PPG"), rec.meta["rpeaks"], rec.meta["ppg_peaks"]
    for p in peaks:
        lo, hi = max(0, p - 25), min(len(ppg), p + 26)
        assert abs(lo + int(np.argmax(ppg[lo:hi])) - p) <= 0.01 * rec.fs  # the systolic maximum, +-10 ms
        before = rpeaks[rpeaks < p]
        if len(before):
            delay_s = (p - before[-1]) / rec.fs
            assert 0.15 < delay_s < 0.4  # pulse transit time


def test_afib_is_irregular_and_sinus_is_regular():
    def rr_cv(rhythm):
        rr = np.diff(generate_record(21, duration_s=60.0, rhythm=rhythm).meta["rpeaks"])
        return rr.std() / rr.mean()
    assert rr_cv("AFIB") > 0.12 > 0.05 > rr_cv("SR")


def test_samples_match_pipeline_format():
    cfg = PreprocessConfig()
    samples = synthetic_samples(3, seed=0, cfg=cfg)
    s = samples[0]
    assert s["signal"].shape == (len(cfg.channels), cfg.window_samples) and s["signal"].dtype == np.float32
    assert s["channel_mask"].all() and s["channels"] == list(TWELVE_LEADS) + ["PPG"]
    assert np.isfinite(s["signal"]).all() and s["vitals_mask"].all()
    ds = SyntheticDataset(size=5, seed=0, cfg=cfg)
    assert np.array_equal(ds[0]["signal"], samples[0]["signal"])  # deterministic per index
    with pytest.raises(IndexError):
        ds[5]


def test_synth_cli_writes_readable_wfdb(tmp_path):
    import wfdb

    from cardiofm.cli import main

    assert main(["synth", "--out", str(tmp_path), "--num-records", "2", "--seed", "4"]) == 0
    sig, fields = wfdb.rdsamp(str(tmp_path / "synthetic_00000004"))
    ref = generate_record(4)
    assert fields["sig_name"] == ref.channels and fields["fs"] == 500
    assert np.abs(sig.T - ref.signal).max() < 1e-3  # 16-bit at 1 uV resolution
    assert any(c.startswith("Report: ") for c in fields["comments"])
