"""Classical vital-sign estimators on real BIDMC recordings: quality-aware HR fusion, respiratory rate against the
annotated breaths, the breath-annotation reader, and the augmentation study's fold-paired test and PTB-XL label map."""
from __future__ import annotations

import numpy as np
import pytest

from cardiofm.data.preprocess import PreprocessConfig, filter_channels
from cardiofm.data.readers.bidmc import read_bidmc, read_breaths
from cardiofm.data.record import RecordError
from cardiofm.finetune import baselines as cb
from cardiofm.finetune.study import paired_vs_reference

from tests.conftest import shared_path


@pytest.fixture(scope="module")
def bidmc01():
    """bidmc_01 with band-passed ECG leads and the raw PPG (RIIV needs its baseline)."""
    rec = read_bidmc(str(shared_path("bidmc", "bidmc_csv", "bidmc_01_Signals.csv.gz")))
    x = filter_channels(rec.signal.astype(np.float64), rec.channels, rec.fs, PreprocessConfig(fs=rec.fs))
    ecg = x[[i for i, c in enumerate(rec.channels) if c in ("II", "ECG", "aVR")]]
    return rec, ecg, x[rec.channels.index("PPG")], rec.signal[rec.channels.index("PPG")].astype(np.float64)


def test_breath_annotations_are_read_as_sorted_sample_indices(bidmc01):
    rec = bidmc01[0]
    breaths = rec.meta["breaths"]
    assert set(breaths) == {"ann1", "ann2"} and len(breaths["ann1"]) == 170
    assert np.all(np.diff(breaths["ann1"]) > 0) and breaths["ann1"][-1] < rec.signal.shape[1]


def test_breath_index_beyond_the_signal_names_the_file(tmp_path):
    path = tmp_path / "x_Breaths.csv"
    path.write_text("breaths ann1 [signal sample no], breaths ann2 [signal sample no]\n10,12\n900,905\n")
    with pytest.raises(RecordError, match="x_Breaths.csv.*outside the signal"):
        read_breaths(str(path), 500)


def test_fused_heart_rate_tracks_the_monitor_and_flags_garbage(bidmc01):
    rec, ecg, ppg, _ = bidmc01
    fs, errors = rec.fs, []
    for start in range(0, 200, 20):     # 10 windows of 10 s
        a, b = int(start * fs), int((start + 10) * fs)
        out = cb.fused_heart_rate(ecg[:, a:b], ppg[a:b], fs)
        errors.append(abs(out["hr"] - np.median(rec.vital_series["HR"][start:start + 10])))
        assert 0.5 < out["ecg_sqi"] <= 1.0 and 0.5 < out["ppg_sqi"] <= 1.0
    assert np.mean(errors) < 1.0   # measured 0.43 bpm over all of bidmc_01 (benchmarks/bench_vitals_loso.py)
    noise = np.random.default_rng(0).normal(size=(1, int(10 * fs)))
    flagged = cb.fused_heart_rate(noise, noise[0], fs)
    assert flagged["ecg_sqi"] < cb.MIN_SQI and flagged["ppg_sqi"] < cb.MIN_SQI


def test_respiratory_rate_from_ppg_and_ecg_modulations_matches_the_annotators(bidmc01):
    rec, ecg, _, ppg_raw = bidmc01
    fs, idx = rec.fs, rec.meta["breaths"]["ann1"]
    a, b = 0, int(32 * fs)
    inside = idx[(idx >= a) & (idx < b)]
    reference = 60.0 * (len(inside) - 1) / ((inside[-1] - inside[0]) / fs)
    fused = cb.fused_respiratory_rate(cb.respiratory_rate_estimates(ecg[:, a:b], ppg_raw[a:b], fs))
    assert abs(fused - reference) < 2.0
    assert np.isnan(cb.fused_respiratory_rate({"a": 10.0, "b": 25.0, "c": 40.0}))   # no majority: flagged


def test_paired_vs_reference_exact_sign_flip():
    ref = [{"fold": f, "macro_auroc": 0.5} for f in range(5)]
    arm = [{"fold": f, "macro_auroc": 0.6} for f in range(5)]
    out = paired_vs_reference(ref, arm)
    assert out["wins"] == 5 and out["mean_diff"] == pytest.approx(0.1)
    assert out["sign_flip_p"] == pytest.approx(2 / 32)   # only all-plus and all-minus are as extreme


def test_ptbxl_statements_map_to_known_cinc2021_snomed_codes():
    from cardiofm.data.readers.cinc2021 import snomed_ct_map
    from cardiofm.finetune.study import PTBXL_SNOMED

    known = snomed_ct_map()
    assert {PTBXL_SNOMED[c] for c in ("SR", "AFIB", "CRBBB", "IMI")} == {"426783006", "164889003", "713427006",
                                                                       "164865005"}
    assert not [c for c in PTBXL_SNOMED.values() if c not in known]
