"""Corpus building end to end: a folder of real records mixed with >= 15 broken files (every good record arrives,
every bad one is quarantined with its reason), resume, machine splitting, parallel workers, loading, mixing."""
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest

from cardiofm.data import PreprocessConfig, build_mixture, load_corpus
from cardiofm.data.corpus import prepare_corpus
from cardiofm.data.corpus.sources import SourceOptions
from tests.conftest import shared_path

GOOD_PTBXL = ["00001_lr", "00002_lr", "00003_lr", "00004_lr", "00005_lr", "00006_lr"]
GOOD_CINC = ["HR06002", "E07500", "JS20005"]


def _copy(src_dir, name, dst_dir, new=None):
    new = new or name
    for f in os.listdir(src_dir):
        if f.startswith(name + "."):
            dst = os.path.join(dst_dir, new + os.path.splitext(f)[1])
            shutil.copy(os.path.join(src_dir, f), dst)
            os.chmod(dst, 0o644)
    hea = os.path.join(dst_dir, new + ".hea")
    with open(hea, encoding="utf-8") as fh:
        text = fh.read()
    with open(hea, "w", encoding="utf-8") as fh:
        fh.write(text.replace(name, new))
    return os.path.join(dst_dir, new)


def _edit_header(base, old, new):
    with open(base + ".hea", encoding="utf-8") as f:
        text = f.read()
    assert old in text
    with open(base + ".hea", "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


def _set_samples(base, fn):
    raw = np.fromfile(base + ".dat", dtype="<i2").reshape(-1, 12)
    fn(raw)
    raw.tofile(base + ".dat")


def _broken_folder(tmp_path):
    """Real records plus broken copies; returns (folder, good record ids, {bad name: expected reason})."""
    ptb = str(shared_path("ptbxl", "records100", "00000"))
    cinc = str(shared_path("torch_ecg_sample", "cinc2021"))
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    for n in GOOD_PTBXL:
        _copy(ptb, n, str(root))
    for n in GOOD_CINC:
        _copy(cinc, n, str(root / "sub"))  # recursion into sub-folders
    bad = {}

    def broken(name, reason, damage):
        base = _copy(ptb, "00007_lr", str(root), name)
        damage(base)
        bad[name] = reason

    broken("truncated", "truncated", lambda b: open(b + ".dat", "r+b").truncate(9000))
    broken("longer_header", "header/data length mismatch", lambda b: _edit_header(b, "12 100 1000", "12 100 1100"))
    broken("extra_data", "longer than the header says", lambda b: open(b + ".dat", "ab").write(b"\0" * 240))
    broken("empty_dat", "truncated", lambda b: open(b + ".dat", "w").close())
    broken("no_dat", "signal file no_dat.dat is missing", lambda b: os.remove(b + ".dat"))
    broken("zero_fs", "invalid sampling rate", lambda b: _edit_header(b, "12 100 1000", "12 0 1000"))
    broken("no_fs", "missing sampling rate", lambda b: _edit_header(b, "12 100 1000", "12"))
    broken("text_fs", "invalid sampling rate", lambda b: _edit_header(b, "12 100 1000", "12 fast 1000"))
    broken("latin1", "not valid UTF-8", lambda b: open(b + ".hea", "ab").write(b"# Report: Sinusrhythmus, ST-Senkung \xe4\n"))
    broken("empty_report", "empty report", lambda b: open(b + ".hea", "a").write("# Report:   \n"))
    broken("all_invalid", "no valid samples", lambda b: _set_samples(b, lambda r: r.__setitem__(slice(None), -32768)))
    broken("nan_gaps", "shorter than one window", lambda b: _set_samples(b, lambda r: r.__setitem__(slice(400, 402), -32768)))
    broken("flat", "flat line on every channel", lambda b: _set_samples(b, lambda r: r.__setitem__(slice(None), 7)))
    broken("short", "shorter than one window", lambda b: (_edit_header(b, "12 100 1000", "12 100 500"),
                                                          open(b + ".dat", "r+b").truncate(500 * 24)))
    broken("unknown_leads", "no known channel name", lambda b: [_edit_header(b, f" {lead}\n", f" X{i}\n") for i, lead in
                                                              enumerate(["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"])])
    broken("dup_leads", "duplicated channel", lambda b: _edit_header(b, " V1\n", " V2\n"))
    broken("bad_label", "not in the label map", lambda b: open(b + ".hea", "a").write("# Labels: NORM,NOT_A_CODE\n"))
    (root / "garbage.hea").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    bad["garbage"] = "not valid UTF-8"
    good = {n for n in GOOD_PTBXL} | set(GOOD_CINC)
    return root, good, bad


def _label_map(tmp_path):
    path = tmp_path / "labels.csv"
    from cardiofm.data.readers.cinc2021 import snomed_ct_map
    path.write_text("code\nNORM\n" + "\n".join(snomed_ct_map()) + "\n")
    return str(path)


def test_broken_inputs_are_quarantined_and_good_records_all_arrive(tmp_path):
    root, good, bad = _broken_folder(tmp_path)
    assert len(bad) >= 15
    out = str(tmp_path / "corpus")
    opts = SourceOptions(root=str(root), label_map=_label_map(tmp_path))
    corpus = prepare_corpus("wfdb", opts, out, num_proc=2, records_per_shard=4, progress=False)
    ds = load_corpus(out)
    assert set(ds["record_id"]) == good and len(ds) == len(good)  # 10 s records: one window each
    quarantined = [json.loads(line) for line in open(os.path.join(out, "quarantine.jsonl"))]
    by_name = {os.path.basename(q["path"]).rsplit(".", 1)[0]: q["reason"] for q in quarantined}
    assert set(by_name) == set(bad)
    for name, reason in bad.items():
        assert reason in by_name[name], (name, by_name[name])
    s = corpus["summary"]
    assert s["records_ok"] == len(good) and s["records_quarantined"] == len(bad) and s["complete"]
    assert sum(s["quarantine_reasons"].values()) == len(bad)
    row = ds.with_format("numpy")[0]
    assert row["signal"].shape == (13, 1000) and row["signal"].dtype == np.float32
    assert row["channel_mask"].tolist() == [True] * 12 + [False]  # no PPG in a 12-lead ECG: masked, not faked
    assert np.abs(row["signal"][12]).max() == 0 and np.isfinite(row["signal"]).all()
    meta = json.loads(row["meta"])
    assert meta["fs_original"] in (100.0, 500.0)


def test_rerun_resumes_and_machines_split_the_shards(tmp_path):
    root = tmp_path / "ptb"
    root.mkdir()
    ptb = str(shared_path("ptbxl", "records100", "00000"))
    for n in GOOD_PTBXL:
        _copy(ptb, n, str(root))
    opts = SourceOptions(root=str(root))
    split = str(tmp_path / "split")
    a = prepare_corpus("wfdb", opts, split, shard_index=0, num_shards=2, records_per_shard=2, progress=False)
    assert a["summary"]["shards_done"] == 2 and not a["summary"]["complete"]  # shards 0 and 2 of 3
    b = prepare_corpus("wfdb", opts, split, shard_index=1, num_shards=2, records_per_shard=2, progress=False)
    assert b["summary"]["complete"] and b["summary"]["this_run"]["records"] == 2
    mtimes = {f: os.path.getmtime(os.path.join(split, "shards", f)) for f in os.listdir(os.path.join(split, "shards"))}
    again = prepare_corpus("wfdb", opts, split, records_per_shard=2, progress=False)
    assert again["summary"]["this_run"]["records"] == 0  # every shard was finished: nothing redone
    assert mtimes == {f: os.path.getmtime(os.path.join(split, "shards", f)) for f in mtimes}
    whole = str(tmp_path / "whole")
    prepare_corpus("wfdb", opts, whole, records_per_shard=2, progress=False)
    a_ds, w_ds = load_corpus(split), load_corpus(whole)
    assert sorted(a_ds["record_id"]) == sorted(w_ds["record_id"]) == sorted(GOOD_PTBXL)
    x, y = np.asarray(a_ds.sort("record_id")["signal"]), np.asarray(w_ds.sort("record_id")["signal"])
    assert np.array_equal(x, y)
    with pytest.raises(ValueError, match="different"):
        prepare_corpus("wfdb", opts, whole, PreprocessConfig(fs=250.0), records_per_shard=2, progress=False)


def test_ptbxl_and_bidmc_corpora_carry_text_labels_vitals_and_mix(tmp_path):
    ptb_out, bidmc_out = str(tmp_path / "ptbxl"), str(tmp_path / "bidmc")
    c = prepare_corpus("ptbxl", SourceOptions(root=str(shared_path("ptbxl"))), ptb_out, progress=False)
    assert c["summary"]["records_ok"] == 352 and c["summary"]["quarantine_reasons"] == {"empty report": 1}
    b = prepare_corpus("bidmc", SourceOptions(root=str(shared_path("bidmc"))), bidmc_out, progress=False)
    assert b["summary"]["records_ok"] == 10 and b["summary"]["samples"] == 10 * 48  # 8 min -> 48 windows of 10 s
    ptb = load_corpus(ptb_out)
    first = ptb[0]
    assert first["text"] and first["labels"] and json.loads(first["meta"])["strat_fold"] in range(1, 11)
    bid = load_corpus(bidmc_out).with_format("numpy")[0]
    assert bid["channel_mask"][12] and bid["vitals_mask"][:3].all() and 40 < bid["vitals"][0] < 160

    mix = build_mixture([ptb_out, bidmc_out], weights=[3, 1], seed=0, shuffle_buffer=64)
    counts, n = Counter(), 0
    for ex in mix:
        counts[ex["source"]] += 1
        n += 1
        if n == 400:
            break
    assert ex["signal"].dtype == np.float32 and ex["signal"].shape == (13, 1000) and isinstance(ex["channels"], list)
    assert 0.65 < counts["ptbxl"] / 400 < 0.85

    ranks = [{(ex["record_id"], ex["start_s"]) for ex in build_mixture([bidmc_out], rank=r, world_size=2,
                                                                         shuffle_buffer=0)} for r in range(2)]
    assert not ranks[0] & ranks[1] and len(ranks[0] | ranks[1]) == 480  # each window on exactly one rank
