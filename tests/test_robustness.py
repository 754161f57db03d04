"""Hostile and messy input: malformed WFDB records through `prepare` (each quarantined with its reason, good ones all
kept), the plausibility gate on every real shared record (no false rejects), the inference API's input contract
(property-based), empty/symlinked/locked corpus folders, and resume from damaged checkpoints."""
from __future__ import annotations

import json
import logging
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import malformed
from cardiofm.data import PreprocessConfig, load_corpus, prepare_input
from cardiofm.data.corpus import CorpusError, prepare_corpus
from cardiofm.data.corpus.prepare import _locked, reason_kind
from cardiofm.data.corpus.sources import SourceOptions, discover_wfdb
from cardiofm.data.preprocess import check_quality
from cardiofm.data.quality import SignalQualityError, SignalQualityWarning
from cardiofm.data.readers.wfdb import read_wfdb
from cardiofm.engine import CheckpointManager
from cardiofm.engine.checkpoint import CheckpointError
from tests.conftest import shared_path

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def malformed_corpus(tmp_path_factory):
    """prepare over the malformed set -> (corpus summary, dataset, {record: reason}, kept ids, {record: pattern})."""
    tmp = tmp_path_factory.mktemp("malformed")
    root = tmp / "records"
    kept, bad = malformed.build(root, shared_path("ptbxl", "records100", "00000"))
    label_map = tmp / "labels.csv"
    label_map.write_text("code\nNORM\n")
    out = str(tmp / "corpus")
    corpus = prepare_corpus("wfdb", SourceOptions(root=str(root), label_map=str(label_map)), out, num_proc=1,
                            records_per_shard=16, progress=False)
    reasons = {os.path.basename(q["path"]).split(".")[0]: q["reason"]
               for q in map(json.loads, open(os.path.join(out, "quarantine.jsonl")))}
    return corpus, load_corpus(out).with_format("numpy"), reasons, kept, bad


def test_every_malformed_record_is_quarantined_with_its_reason(malformed_corpus):
    corpus, ds, reasons, kept, bad = malformed_corpus
    assert len(bad) >= 40
    assert set(reasons) == set(bad), sorted(set(reasons) ^ set(bad))
    wrong = {n: reasons[n] for n, pattern in bad.items() if not malformed.reason_ok(n, reasons[n], pattern)}
    assert not wrong
    assert set(ds["record_id"]) == kept
    s = corpus["summary"]
    assert (s["records_ok"], s["records_quarantined"], s["complete"]) == (len(kept), len(bad), True)
    keys = " ".join(s["quarantine_reasons"])  # summary keys carry no record or file name, no report text
    names = [n for n in list(bad) + list(kept) if "_" in n] + [".dat", ".hea", "huge", "records"]
    assert not any(name in keys for name in names), keys
    assert all(malformed.REPORT not in r and "\\x" not in r for r in reasons.values())


def test_short_gaps_are_interpolated_and_masked_not_dropped(malformed_corpus):
    _, ds, _, _, _ = malformed_corpus
    rows = {(r, float(t)): i for i, (r, t) in enumerate(zip(ds["record_id"], ds["start_s"]))}
    one = ds[rows[("one_invalid_sample", 0.0)]]
    assert one["channel_mask"].tolist() == [True] * 3 + [False] + [True] * 8 + [False]  # aVR masked, the rest kept
    assert not np.abs(one["signal"][3]).any() and np.isfinite(one["signal"]).all()
    assert json.loads(one["meta"])["interpolated"] == [["aVR", 500, 501]]
    # 30 s with a 20 ms dropout at 15 s on every lead: the middle window is masked away, the outer two are kept
    assert sorted(t for r, t in rows if r == "gap_30s") == [0.0, 20.0]


def test_quality_flags_travel_in_the_row_meta(malformed_corpus):
    _, ds, _, _, _ = malformed_corpus
    q = json.loads(ds[0]["meta"])["quality"]
    assert 0.05 < q["ecg_ptp_mv"] < 10 and q["saturated_max"] < 0.02 and q["lag1_min"] > 0.15
    assert q["einthoven_corr_min"] > 0.9


def test_gate_rejects_no_real_shared_record():
    """False-reject rate over every PTB-XL (100 and 500 Hz), CinC 2021, MIT-BIH and BIDMC record: exactly 0."""
    from cardiofm.data.readers.bidmc import bidmc_files, read_bidmc
    from cardiofm.data.readers.cinc2021 import read_cinc2021

    paths = [(read_wfdb, p) for sub in ("records100", "records500")
             for p in sorted(shared_path("ptbxl", sub).rglob("*.hea"))]
    paths += [(read_cinc2021, p) for p in sorted(shared_path("torch_ecg_sample", "cinc2021").glob("*.hea"))]
    paths += [(read_wfdb, p) for p in sorted(shared_path("mitdb").glob("*.hea"))]
    paths += [(read_bidmc, p) for p in bidmc_files(str(shared_path("bidmc")))]
    rejected = {}
    for read, p in paths:
        rec = read(str(p)[:-4] if str(p).endswith(".hea") else str(p))
        issues = check_quality(rec, CFG)
        if issues:
            rejected[str(p)] = [i.reason() for i in issues]
    assert len(paths) >= 480 and not rejected


def test_empty_root_and_symlinked_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no wfdb input found"):
        prepare_corpus("wfdb", SourceOptions(root=str(tmp_path / "empty")), str(tmp_path / "out0"), progress=False)
    assert not (tmp_path / "out0").exists()
    real = tmp_path / "elsewhere" / "records"
    real.mkdir(parents=True)
    malformed.copy_record(shared_path("ptbxl", "records100", "00000"), "00001_lr", real)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(real, root / "records")                 # a symlinked records folder
    os.symlink(root, real / "loop")                    # and a link loop back to the root
    assert [os.path.basename(t) for t in discover_wfdb(str(root))] == ["00001_lr"]
    corpus = prepare_corpus("wfdb", SourceOptions(root=str(root)), str(tmp_path / "out1"), progress=False)
    assert corpus["summary"]["records_ok"] == 1


def test_second_concurrent_prepare_is_refused_and_live_temp_shards_survive(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    malformed.copy_record(shared_path("ptbxl", "records100", "00000"), "00001_lr", root)
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    with _locked(str(out / ".prepare-0-of-1.lock"), str(out)):  # another run holds the output folder
        with pytest.raises(CorpusError, match="in use by another prepare run"):
            prepare_corpus("wfdb", SourceOptions(root=str(root)), str(out), progress=False)
    live = out / "shards" / ".tmp-shard-00000-999999.arrow"   # a temp shard another run is still writing
    stale = out / "shards" / ".tmp-shard-00000-999998.arrow"  # one left by a killed run
    live.write_bytes(b"partial")
    stale.write_bytes(b"partial")
    with _locked(str(live) + ".lock", "temp shard"):
        corpus = prepare_corpus("wfdb", SourceOptions(root=str(root)), str(out), progress=False)
        assert live.exists() and not stale.exists()
    assert corpus["summary"]["complete"]


def test_reason_kinds_carry_no_file_names():
    assert reason_kind("signal file rec_0042.dat is missing") == "signal file <file> is missing"
    assert reason_kind("missing signal file /data/p1/x.mat") == "missing signal file <file>"
    assert reason_kind("header declares 1000000000 signals; at most 256 are accepted") == \
        "header declares signals; at most are accepted"


# ---- the inference API's input contract ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ecg500():
    rec = read_wfdb(str(shared_path("ptbxl", "records500", "00000", "00001_hr.hea"))[:-4])
    return rec.signal, rec.fs, rec.channels


@pytest.mark.parametrize("change, match", [
    (lambda x, fs, ch: (x, 1e9, ch), r"outside the accepted range"),
    (lambda x, fs, ch: (x, float("nan"), ch), r"outside the accepted range"),
    (lambda x, fs, ch: (x, True, ch), r"fs must be a number"),
    (lambda x, fs, ch: (x.astype(bool), fs, ch), r"dtype bool is not accepted"),
    (lambda x, fs, ch: (x.astype(np.complex64), fs, ch), r"dtype complex64 is not accepted"),
    (lambda x, fs, ch: ((x * 1000).astype(np.int16), fs, ch), r"integer samples look like ADC counts"),
    (lambda x, fs, ch: (x * 1e5, fs, ch), r"implausible ECG amplitude"),
    (lambda x, fs, ch: (x[:, :1], fs, ch), r"at least 2.5 s"),
    (lambda x, fs, ch: (x[:, :500], fs, ch), r"at least 2.5 s"),
    (lambda x, fs, ch: (x[:2], fs, list("I,II")), r"comma-separated string split into characters"),
    (lambda x, fs, ch: (x.T, fs, ch), r"transposed"),
    (lambda x, fs, ch: (np.where(np.arange(x.shape[1]) == 9, np.nan, x), fs, ch), r"NaN/inf"),
    (lambda x, fs, ch: (x, fs, ch[:-1] + ["BOGUS"]), r"unknown channel name 'BOGUS'"),
])
def test_api_refuses_with_a_clear_message(ecg500, change, match):
    with pytest.raises(ValueError, match=match):
        prepare_input(*change(*ecg500), CFG)


def test_api_units_strings_padding_and_strictness(ecg500):
    x, fs, ch = ecg500
    ref = prepare_input(x, fs, ch, CFG)
    with pytest.warns(SignalQualityWarning, match="microvolts"):
        uv = prepare_input(x * 1000, fs, ch, CFG)
    np.testing.assert_allclose(uv["signal"], ref["signal"], atol=1e-4)
    counts = prepare_input(np.round(x * 1000).astype(np.int16), fs, ch, CFG, units="uV")
    np.testing.assert_allclose(counts["signal"], ref["signal"], atol=2e-3)
    assert prepare_input(x[:2], fs, "I, II", CFG)["channel_mask"][0, :2].all()
    with pytest.warns(SignalQualityWarning, match="zero-padded"):
        short = prepare_input(x[:, :2000], fs, ch, CFG)
    assert short["valid_fraction"].tolist() == [0.4] and ref["valid_fraction"].tolist() == [1.0]
    with pytest.warns(SignalQualityWarning):
        assert prepare_input(x[:, :1], fs, ch, CFG, pad=True)["valid_fraction"][0] < 0.01
    noise = np.random.default_rng(0).normal(size=x.shape)
    with pytest.warns(SignalQualityWarning, match="noise-only"):
        prepare_input(noise, fs, ch, CFG)
    with pytest.raises(SignalQualityError, match="noise-only"):
        prepare_input(noise, fs, ch, CFG, quality="error")
    inverted = x.copy()
    inverted[ch.index("III")] *= -1
    with pytest.raises(SignalQualityError, match="Einthoven"):
        prepare_input(inverted, fs, ch, CFG, quality="error")


_DTYPES = st.sampled_from([np.float32, np.float64, np.int16, np.int32, np.uint8, np.bool_, np.complex64, np.float16])
_FS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([100.0, 250.0, 500.0, 1e9, -1.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(_DTYPES, st.tuples(st.integers(1, 3), st.integers(1, 3000))), _FS,
       st.sampled_from([None, "mV", "uV"]))
def test_api_either_answers_finite_windows_or_raises_valueerror(x, fs, units):
    """Any array, rate and unit: finite windows in the layout's shape, or a ValueError; never another exception."""
    channels = ["I", "II", "V1"][:x.shape[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = prepare_input(x, fs, channels, CFG, units=units)
        except ValueError as err:
            assert str(err).startswith("<input>: ")
            return
    assert x.dtype.kind in "fiu" and 25 <= fs <= 20000
    assert out["signal"].shape[1:] == (13, 1000) and np.isfinite(out["signal"]).all()
    assert ((0 < out["valid_fraction"]) & (out["valid_fraction"] <= 1)).all()


@settings(max_examples=25, deadline=None)
@given(st.floats(0.2, 5.0), st.sampled_from([100.0, 360.0, 500.0]))
def test_api_gain_and_rate_changes_keep_a_real_ecg_plausible(ecg500, scale, fs):
    """A real ECG scaled to any plausible amplitude at any common rate passes the gate without a warning."""
    x, _, ch = ecg500
    with warnings.catch_warnings():
        warnings.simplefilter("error", SignalQualityWarning)
        out = prepare_input(x * scale, fs, ch, CFG)
    assert np.isfinite(out["signal"]).all()


# ---- resume from damaged checkpoints (in-process toy trainer: bit-exact comparisons) ---------------------------
def _toy(tmp_path, **kw):
    from cardiofm.engine import OptimConfig, TrainConfig, Trainer, seed_everything
    from engine_toy import ToyData, ToyRegressor, collate

    seed_everything(0)
    cfg = TrainConfig(max_steps=6, batch_size=4, log_every=1, checkpoint_every=2, keep_last=3, trackers=["none"],
                      optim=OptimConfig(lr=3e-3, warmup_steps=2), **kw)
    return Trainer(ToyRegressor(), cfg, ToyData(64), collate, output_dir=tmp_path)


def _losses(path) -> dict[int, float]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_truncated_newest_checkpoint_resumes_from_previous_bit_exactly(tmp_path, caplog):
    ref = _toy(tmp_path)
    ref.train()
    want = _losses(tmp_path)
    weights = {k: v.clone() for k, v in ref.unwrapped_model().state_dict().items()}
    newest = tmp_path / "checkpoints" / "step_00000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])
    (tmp_path / "metrics.jsonl").unlink()
    with caplog.at_level(logging.WARNING, logger="cardiofm.engine.checkpoint"):
        resumed = _toy(tmp_path)
        assert resumed.train(resume=True).step == 6
    assert "resuming from step_00000004, the newest checkpoint that verifies (skipped step_00000006)" in caplog.text
    assert _losses(tmp_path) == {5: want[5], 6: want[6]}
    for name, value in resumed.unwrapped_model().state_dict().items():
        assert torch.equal(value, weights[name]), name
    manifest = json.loads((tmp_path / "checkpoints" / "step_00000006" / "manifest.json").read_text())
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json"} <= set(manifest["files"])


def test_corrupt_rng_state_is_refused_unless_inexact_resume_is_allowed(tmp_path, caplog):
    _toy(tmp_path).train()
    for step in ("00000002", "00000004", "00000006"):
        (tmp_path / "checkpoints" / f"step_{step}" / "random_states_0.pkl").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="RNG state unusable.*allow_inexact_resume"):
        _toy(tmp_path).train(resume=True)
    with caplog.at_level(logging.WARNING, logger="cardiofm.engine.checkpoint"):
        assert _toy(tmp_path, allow_inexact_resume=True).train(resume=True).step == 6
    assert "the run is no longer exact" in caplog.text
    assert CheckpointManager(tmp_path / "checkpoints").latest().name == "step_00000006"


def test_no_checkpoint_that_verifies_is_an_error(tmp_path):
    _toy(tmp_path).train()
    for ckpt in CheckpointManager(tmp_path / "checkpoints").complete():
        (ckpt / "optimizer.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint under .* verifies"):
        _toy(tmp_path).train(resume=True)


def test_pretrain_cli_resumes_from_previous_checkpoint_when_newest_is_truncated(tmp_path):
    """The real `cardiofm pretrain`: step 4's weights truncated -> --resume restarts at step 2 and ends bit-identical
    to the uninterrupted run (metrics of steps 3-4 and exported weights)."""
    from pretrain_launch import exported_weights, pretrain_cmd, run, step_metrics

    keys = ("train/loss", "train/grad_norm", "train/lr")
    args = ["train.max_steps=4", "train.checkpoint_every=2"]
    run(pretrain_cmd(tmp_path, *args))
    want, weights = step_metrics(tmp_path, keys), exported_weights(tmp_path)
    model = tmp_path / "checkpoints" / "step_00000004" / "model.safetensors"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    shutil.rmtree(tmp_path / "model")
    proc = run(pretrain_cmd(tmp_path, *args, resume=True))
    assert "skipped step_00000004" in proc.stderr and "resumed from" in proc.stderr
    assert step_metrics(tmp_path, keys) == want
    got = exported_weights(tmp_path)
    assert got.keys() == weights.keys() and all(torch.equal(got[k], weights[k]) for k in got)
