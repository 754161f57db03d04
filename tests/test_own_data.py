"""A user's own data end to end on real records: the README walkthrough run verbatim (paths substituted), a labels
CSV against the dedicated PTB-XL path, multi-class / regression labels, 15-lead and MIT-BIH records through lead
aliases and --ignore-unknown-channels, a 30-minute record predicted by windows, and labels files with bad rows.

There is no PTB Diagnostic Database record in the shared data: the 15-lead records are written here with
wfdb.wrsamp from real PTB-XL 500 Hz records (their 12 leads under PTB's lowercase names) plus three Frank-like
channels vx, vy, vz (linear combinations of the leads)."""
from __future__ import annotations

import csv
import json
import re
import shlex

import numpy as np
import pytest
import torch

from conftest import REPO, shared_path

SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]
FAST = ["train.trackers=[none]", "train.checkpoint_every=0", "bootstrap=0", "eval_batch_size=64"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, one_torch_thread):
    """A randomly initialised tiny checkpoint with 0.5 s patches at 100 Hz (12 x 20 tokens per window)."""
    from cardiofm.models import CardioFMForPretraining, preset_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    CardioFMForPretraining(preset_config("tiny", patch_size=50)).save_pretrained(str(out))
    return str(out)


@pytest.fixture(scope="module")
def ptbxl():
    """PTB-XL rows with a diagnostic superclass: record name, 100/500 Hz paths, superclasses, fold, patient, age."""
    from cardiofm.data.readers.ptbxl import load_ptbxl_database, load_scp_statements, scp_superclasses

    root = shared_path("ptbxl")
    db, st = load_ptbxl_database(str(root)), load_scp_statements(str(root))
    rows = []
    for ecg_id, r in db.iterrows():
        sup = scp_superclasses(r["scp_codes"], st)
        if sup and (root / (r["filename_lr"] + ".hea")).exists():
            rows.append({"ecg_id": int(ecg_id), "name": r["filename_lr"].rsplit("/", 1)[-1], "lr": root / r["filename_lr"],
                         "hr": root / r["filename_hr"], "sup": sup, "fold": int(r["strat_fold"]),
                         "patient": int(r["patient_id"]), "age": float(r["age"])})
    return rows


def _split(fold: int) -> str:
    return "test" if fold == 8 else "val" if fold == 7 else "train"


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _link(folder, paths):
    """A WFDB folder of symlinks to real records (header + signal file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        for ext in (".hea", ".dat"):
            (folder / (p.name + ext)).symlink_to(p.with_name(p.name + ext))
    return folder


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cfg(overrides):
    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig

    return load_config(FinetuneConfig, None, FAST + overrides)


def readme_commands() -> list[str]:
    """The bash block of the README section 'Finetune on your own data'."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Finetune on your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("cardiofm ")]


def test_readme_walkthrough_runs_verbatim(tiny_dir, ptbxl, tmp_path):
    from cardiofm.cli import main

    commands = readme_commands()
    assert len(commands) == 5
    train = [r for r in ptbxl if r["fold"] <= 8][:90]
    new = [r for r in ptbxl if r not in train][:6]
    subs = {"runs/pretrain/model": tiny_dir, "corpora/my_ecgs": str(tmp_path / "corpus"),
            "my_ecgs": str(_link(tmp_path / "my_ecgs", [r["lr"] for r in train])),
            "new_ecgs": str(_link(tmp_path / "new_ecgs", [r["lr"] for r in new])),
            "labels.csv": _write(tmp_path / "labels.csv", ["record"] + SUPER + ["split", "subject"],
                                 [[r["name"]] + [int(c in r["sup"]) for c in SUPER] + [_split(r["fold"]), r["patient"]]
                                  for r in train]),
            "runs/my_model": str(tmp_path / "run"), "predictions.csv": str(tmp_path / "predictions.csv"),
            "embeddings.npz": str(tmp_path / "embeddings.npz")}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True)))
    for line in commands:
        argv = [pattern.sub(lambda m: subs[m.group(0)], a) for a in shlex.split(line)][1:]
        assert main(["-q"] + argv) == 0, line
    run = tmp_path / "run"
    config = json.loads((run / "model" / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(5)] == SUPER           # the label map travels with the model
    assert len(config["decision_thresholds"]) == 5 and "labels.csv" in config["label_source"]
    test = json.loads((run / "test" / "metrics.json").read_text())["splits"]["test"]
    assert test["n_records"] == sum(r["fold"] == 8 for r in train) and test["macro_auroc_classes"].endswith("of 5")
    assert (run / "roc_test.png").exists() and list((run / "logs").rglob("events.out.tfevents*"))
    split = _read_csv(run / "split.csv")
    assert {r["record"] for r in split if r["split"] == "test"} == {r["name"] for r in train if r["fold"] == 8}
    preds = _read_csv(tmp_path / "predictions.csv")
    assert [p["record"] for p in preds] == sorted(r["name"] for r in new)
    assert all(p["status"] == "ok" and p["windows"] == "1" for p in preds)
    from cardiofm.models import CardioFMForDiagnosis
    from cardiofm.data.readers.wfdb import read_wfdb

    model = CardioFMForDiagnosis.from_pretrained(str(run / "model"))
    rec = read_wfdb(str(tmp_path / "new_ecgs" / preds[0]["record"]))
    ref = model.predict_proba(rec.signal, rec.fs, rec.channels)  # the model's own API on the same record
    assert max(abs(float(preds[0][f"prob_{k}"]) - v) for k, v in ref.items()) < 1e-5
    emb = np.load(tmp_path / "embeddings.npz")
    assert emb["embeddings"].shape == (6, 64) and np.isfinite(emb["embeddings"]).all()


def test_labels_csv_matches_the_dedicated_ptbxl_path(tiny_dir, ptbxl, tmp_path):
    """Same records, folds, seed and label order: the generic path trains and scores exactly as the PTB-XL one."""
    from cardiofm.finetune.recipe import run_finetune

    ids = [r["ecg_id"] for r in ptbxl]
    n = 120
    rows = [r for r in ptbxl if r["ecg_id"] in ids[:n]]
    labels = _write(tmp_path / "labels.csv", ["record"] + SUPER + ["split"],
                    [[r["name"]] + [int(c in r["sup"]) for c in SUPER] + [_split(r["fold"])] for r in rows])
    common = [f"model={tiny_dir}", "train.max_steps=6", "train.eval_every=0", "train.early_stopping_metric=null",
              "train.early_stopping_patience=0"]
    from cardiofm.data.readers.ptbxl import ptbxl_ids

    first = ptbxl_ids(str(shared_path("ptbxl")))
    dedicated = run_finetune(_cfg(common + [f"output_dir={tmp_path / 'ptbxl'}", f"data.root={shared_path('ptbxl')}",
                                            "data.train_folds=[1,2,3,4,5,6]", "data.val_folds=[7]",
                                            "data.test_folds=[8]", f"data.max_records={first.index(ids[n - 1]) + 1}"]))
    generic = run_finetune(_cfg(common + [f"output_dir={tmp_path / 'user'}", "data.source=user",
                                          f"data.root={shared_path('ptbxl', 'records100')}",
                                          f"data.labels_file={labels}"]))
    a, b = dedicated["splits"]["test"], generic["splits"]["test"]
    assert a["n_records"] == b["n_records"] == sum(r["fold"] == 8 for r in rows)
    for name in SUPER:
        assert a["per_class"][name]["auroc"] == pytest.approx(b["per_class"][name]["auroc"], abs=1e-9), name
    assert dedicated["splits"]["val"]["macro_auroc"] == pytest.approx(generic["splits"]["val"]["macro_auroc"], abs=1e-9)


def test_multiclass_and_regression_labels_on_a_wfdb_folder(tiny_dir, ptbxl, tmp_path):
    from cardiofm.cli import main
    from cardiofm.models import CardioFMConfig

    single = [r for r in ptbxl if len(r["sup"]) == 1][:100]
    folder = str(shared_path("ptbxl", "records100"))
    mc = _write(tmp_path / "dx.csv", ["record", "dx", "subject"], [[r["name"], r["sup"][0], r["patient"]] for r in single])
    assert main(["-q", "finetune", "--model", tiny_dir, "--train", folder, "--labels", mc, "--output-dir",
                 str(tmp_path / "mc")] + FAST + ["train.max_steps=6", "train.eval_every=3"]) == 0
    split = _read_csv(tmp_path / "mc" / "split.csv")  # no split column: seeded subject-aware stratified split
    sides = {}
    for r in split:
        sides.setdefault(r["subject"], set()).add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    counts = {k: sum(r["split"] == k for r in split) for k in ("train", "val", "test")}
    assert counts["train"] >= 70 and 5 <= counts["val"] <= 15 and 5 <= counts["test"] <= 15, counts
    metrics = json.loads((tmp_path / "mc" / "metrics.json").read_text())["splits"]["test"]
    classes = sorted({r["sup"][0] for r in single})
    assert np.asarray(metrics["confusion_matrix"]).sum() == counts["test"] and 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "mc" / "confusion_test.png").exists()
    assert main(["-q", "predict", str(tmp_path / "mc" / "model"), str(single[0]["lr"]), str(single[1]["lr"]),
                 "--out", str(tmp_path / "mc.csv")]) == 0
    preds = _read_csv(tmp_path / "mc.csv")
    assert len(preds) == 2 and all(p["predicted"] in classes for p in preds)
    assert all(abs(sum(float(p[f"prob_{c}"]) for c in classes) - 1) < 1e-5 for p in preds)

    ages = [r for r in ptbxl if np.isfinite(r["age"]) and r["age"] < 120][:100]
    reg = _write(tmp_path / "age.csv", ["record", "age", "split"],
                 [[r["name"], r["age"], _split(r["fold"])] for r in ages])
    assert main(["-q", "finetune", "--model", tiny_dir, "--train", folder, "--labels", reg, "--output-dir",
                 str(tmp_path / "age")] + FAST + ["train.max_steps=6", "train.eval_every=3"]) == 0
    config = CardioFMConfig.from_pretrained(str(tmp_path / "age" / "model"))
    assert config.target_names == ["age"] and config.target_units == ["years"]
    train_ages = [r["age"] for r in ages if _split(r["fold"]) == "train"]
    assert config.target_mean[0] == pytest.approx(np.mean(train_ages), abs=1e-4)  # normalisation from train only
    test = json.loads((tmp_path / "age" / "metrics.json").read_text())["splits"]["test"]["age"]
    assert test["unit"] == "years" and test["n"] == sum(_split(r["fold"]) == "test" for r in ages)
    assert (tmp_path / "age" / "bland_altman_age_test.png").exists()
    assert main(["-q", "predict", str(tmp_path / "age" / "model"), str(ages[0]["lr"]), "--out",
                 str(tmp_path / "age.csv")]) == 0
    assert 0 < float(_read_csv(tmp_path / "age.csv")[0]["age [years]"]) < 120


def _fifteen_lead(rows, folder):
    """PTB-DB-style 15-lead WFDB records: 12 PTB-XL leads (500 Hz, lowercase names) + Frank-like vx, vy, vz."""
    import wfdb

    from cardiofm.data.readers.wfdb import read_wfdb

    folder.mkdir()
    names = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz"]
    for r in rows:
        rec = read_wfdb(str(r["hr"]))
        x = rec.signal  # (12, 5000) mV in TWELVE_LEADS order
        frank = np.stack([0.6 * x[0] + 0.2 * x[10], 0.7 * x[1] - 0.1 * x[6], -0.5 * x[7] + 0.1 * x[2]])
        wfdb.wrsamp(r["name"], fs=rec.fs, units=["mV"] * 15, sig_name=names, p_signal=np.vstack([x, frank]).T,
                    fmt=["16"] * 15, adc_gain=[1000.0] * 15, baseline=[0] * 15, write_dir=str(folder))
    return folder


def test_fifteen_lead_and_mitbih_records(tiny_dir, ptbxl, tmp_path):
    from cardiofm.cli import main
    from cardiofm.data.readers.wfdb import read_wfdb
    from cardiofm.models import CardioFMForDiagnosis

    rows = [r for r in ptbxl if r["hr"].with_name(r["hr"].name + ".hea").exists()][:14]  # ecg_id <= 100
    folder = _fifteen_lead(rows, tmp_path / "ptbdb")
    labels = _write(tmp_path / "norm.csv", ["record", "NORM", "split"],
                    [[r["name"], int("NORM" in r["sup"]), "val" if i % 5 == 4 else "train"] for i, r in enumerate(rows)])
    argv = ["-q", "finetune", "--model", tiny_dir, "--train", str(folder), "--labels", labels, "--output-dir",
            str(tmp_path / "run")] + FAST + ["train.max_steps=3", "train.eval_every=0", "train.batch_size=8"]
    assert main(argv) == 2 and not (tmp_path / "run" / "model").exists()  # vx vy vz are unknown: refused
    assert main(argv + ["--ignore-unknown-channels"]) == 0
    model_dir = str(tmp_path / "run" / "model")
    out = tmp_path / "p15.csv"
    assert main(["-q", "predict", model_dir, str(folder), "--out", str(out), "--ignore-unknown-channels"]) == 0
    p15 = {p["record"]: float(p["prob_NORM"]) for p in _read_csv(out)}
    model = CardioFMForDiagnosis.from_pretrained(model_dir)
    for r in rows[:3]:  # the 12 leads of the 15-lead file predict as the original 12-lead record
        rec = read_wfdb(str(r["hr"]))
        assert abs(p15[r["name"]] - model.predict_proba(rec.signal, rec.fs, rec.channels)["NORM"]) < 2e-3

    mitdb = shared_path("mitdb")
    for overlap in ("0.5", "0"):
        out = tmp_path / f"mit{overlap}.csv"
        assert main(["-q", "predict", model_dir, str(mitdb / "100"), str(mitdb / "101"), "--overlap", overlap,
                     "--out", str(out)]) == 0
        preds = {p["record"]: p for p in _read_csv(out)}
        n = int(650000 / 360 * 100)  # 30 min 5.6 s at 100 Hz after resampling from 360 Hz
        hop = 1000 if overlap == "0" else 500
        assert all(int(p["windows"]) == (n - 1000) // hop + 1 for p in preds.values())
    rec = read_wfdb(str(mitdb / "101"))
    assert rec.channels == ["II", "V1"]  # MLII is lead II
    ref = model.predict_proba(rec.signal, rec.fs, rec.channels)["NORM"]
    assert abs(float(preds["101"]["prob_NORM"]) - ref) < 1e-5


def test_labels_from_metadata_of_a_prepared_ptbxl_corpus(tiny_dir, ptbxl, tmp_path):
    from cardiofm.cli import main
    from cardiofm.models import CardioFMConfig

    root = tmp_path / "ptbxl"
    _link(root / "records100" / "00000", [r["lr"] for r in ptbxl[:60]])
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        (root / name).symlink_to(shared_path("ptbxl", name))
    assert main(["-q", "prepare", "ptbxl", "--root", str(root), "--out", str(tmp_path / "corpus"),
                 "--no-progress", "--keep-empty-text"]) == 0
    assert main(["-q", "finetune", "--model", tiny_dir, "--train", str(tmp_path / "corpus"), "--labels-from-meta",
                 "superclasses", "--output-dir", str(tmp_path / "run")] + FAST + ["train.max_steps=3"]) == 0
    config = CardioFMConfig.from_pretrained(str(tmp_path / "run" / "model"))
    assert sorted(config.label2id) == sorted({c for r in ptbxl[:60] for c in r["sup"]})
    assert "superclasses" in config.label_source


def test_bad_labels_files_name_file_row_and_reason(tiny_dir, ptbxl, tmp_path, capsys):
    from cardiofm.cli import main
    from cardiofm.data.readers.labels import LabelsError, read_labels
    from cardiofm.finetune.recipe import run_finetune

    folder = str(shared_path("ptbxl", "records100"))
    names = [r["name"] for r in ptbxl[:6]]
    bad = _write(tmp_path / "bad.csv", ["record", "labels"],
                 [[names[0], "NORM"], [names[1], "MI;STTC"], [names[0], "CD"], [names[2], ""], ["99999_lr", "NORM"]])
    with pytest.raises(LabelsError) as err:
        read_labels(bad)
    msg = str(err.value)
    assert msg.startswith(bad) and "row 4: duplicate key" in msg and "first on row 2" in msg
    assert "row 5: empty labels in column 'labels'" in msg
    ok = _write(tmp_path / "missing.csv", ["record", "labels"], [[names[0], "NORM"], ["99999_lr", "MI"]])
    with pytest.raises(LabelsError, match=r"missing.csv: row 3: record '99999_lr' not found in DATA"):
        run_finetune(_cfg([f"model={tiny_dir}", "data.source=user", f"data.root={folder}",
                           f"data.labels_file={ok}", f"output_dir={tmp_path / 'm'}"]))
    age = _write(tmp_path / "age.csv", ["record", "age"], [[n, a] for n, a in zip(names, [61, "sixty", 70, 55, 48, 33])])
    capsys.readouterr()
    rc = main(["-q", "finetune", "--model", tiny_dir, "--train", folder, "--labels", age, "--output-dir",
               str(tmp_path / "run")])  # mostly numbers: read as regression, the text cell is a row error
    err_text = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err_text and len(err_text.splitlines()) == 1
    assert "age.csv: row 3: non-numeric value 'sixty' in column 'age'" in err_text
    assert not (tmp_path / "run" / "model").exists()  # nothing trained on a partially read label set


def test_unknown_evaluation_class_and_not_computable_auroc():
    from cardiofm.finetune.metrics import classification_report
    from cardiofm.finetune.tasks import class_ids

    with pytest.raises(ValueError, match=r"class\(es\) \['AFIB'\] are not in the model's label map"):
        class_ids([{"target": "NORM"}, {"target": "AFIB"}], ["MI", "NORM"])
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    rep = classification_report(y, np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.1], [0.3, 0.6]]), ["A", "B"])
    assert rep["macro_auroc"] == 1.0 and rep["macro_auroc_classes"] == "1 of 2"  # B is not averaged in as 0.5
    assert rep["not_computable"] == {"B": "not computable: no positives"} and rep["per_class"]["B"]["auroc"] is None


def test_pretraining_on_real_corpora_evaluates_on_held_out_subjects(ptbxl, tmp_path):
    """Without data.eval_dirs the eval loss comes from whole subjects of the real corpus, never seen in training."""
    from cardiofm.cli import main
    from cardiofm.config import load_config
    from cardiofm.pretrain.config import PretrainConfig
    from cardiofm.pretrain.recipe import PretrainRecipe

    root = tmp_path / "ptbxl"
    _link(root / "records100" / "00000", [r["lr"] for r in ptbxl[:30]])
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        (root / name).symlink_to(shared_path("ptbxl", name))
    corpus = tmp_path / "corpus"
    assert main(["-q", "prepare", "ptbxl", "--root", str(root), "--out", str(corpus), "--no-progress",
                 "--keep-empty-text"]) == 0
    cfg = load_config(PretrainConfig, None, [f"output_dir={tmp_path / 'run'}", f"data.corpus_dirs=[{corpus}]",
                                             "data.eval_size=6", "data.shuffle_buffer=0", "train.trackers=[none]",
                                             "tokenizer.vocab_size=60", "tokenizer.train_texts=30"])
    recipe = PretrainRecipe(cfg).setup()
    rule = recipe.trainer.train_data.held  # the hash rule: the same on every rank, epoch and shard
    trained = {s["subject_id"] for s in recipe.trainer.train_data(rank=0, world_size=1, epoch=0)}
    every = {str(r["patient"]) for r in ptbxl[:30]}
    held = {s for s in every if rule({"source": "ptbxl", "subject_id": s})}
    assert held and trained == every - held  # whole real subjects held out, the rest trains
    assert sum(len(b["signals"]) for b in recipe.eval_batches) == 6
