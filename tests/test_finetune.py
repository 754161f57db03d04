"""Finetuning on real records: PTB-XL superclasses from a tiny pretrained checkpoint, BIDMC heart rate, linear
probe, `cardiofm evaluate` outputs, and predict_proba on a raw 500 Hz WFDB record."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import shared_path

SUPERCLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]
FAST = ["train.trackers=[none]", "train.checkpoint_every=0", "train.log_every=50", "bootstrap=50",
        "eval_batch_size=64"]


def _cfg(overrides):
    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig

    return load_config(FinetuneConfig, None, FAST + overrides)


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    """A tiny checkpoint pretrained for a few masked-modelling steps on PTB-XL training folds, then saved."""
    from cardiofm.data.collate import collate_samples
    from cardiofm.data.preprocess import preprocess_record
    from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl
    from cardiofm.models import CardioFMForPretraining, preset_config

    root = str(shared_path("ptbxl"))
    torch.manual_seed(0)
    # 50-sample patches at 100 Hz (0.5 s): 12 leads x 20 patches = 240 tokens keeps the CPU test short
    model = CardioFMForPretraining(preset_config("tiny", patch_size=50))
    pre = model.config.preprocess_config
    recs = [read_ptbxl(root, i) for i in ptbxl_ids(root)[:64]]
    samples = [s for r in recs if r.meta["strat_fold"] <= 7 for s in preprocess_record(r, pre)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(4):
        batch = collate_samples(samples[step * 16:(step + 1) * 16])
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    out = tmp_path_factory.mktemp("pretrained") / "tiny"
    model.save_pretrained(str(out))
    return str(out)


@pytest.fixture(scope="module")
def diagnosis_run(pretrained_dir, tmp_path_factory):
    """Full finetune on PTB-XL 100 Hz: folds 1-7 train, fold 8 validation; median-beat tokens added at finetuning
    as in the packaged finetune_diagnosis config (2 x 0.5 s patches here: R - 0.5 s .. R + 0.5 s), so the beat head and
    predict_proba's in-forward median beats are exercised."""
    from cardiofm.finetune.recipe import run_finetune

    out = tmp_path_factory.mktemp("diag")
    cfg = _cfg([f"model={pretrained_dir}", f"data.root={shared_path('ptbxl')}", f"output_dir={out}",
                "beat_tokens=2", "train.max_steps=60", "train.eval_every=30", "train.early_stopping_patience=0",
                "train.optim.lr=1.5e-3", "train.optim.warmup_steps=10"])
    return out, run_finetune(cfg)


def test_diagnosis_finetune_beats_chance_on_fold8(diagnosis_run):
    out, report = diagnosis_run
    val = report["splits"]["val"]
    assert val["n_records"] >= 40
    assert val["macro_auroc"] >= 0.65, val
    assert set(val["per_class"]) == set(SUPERCLASSES)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["splits"]["val"]["macro_auroc"] == pytest.approx(val["macro_auroc"])
    assert (out / "roc_val.png").stat().st_size > 5000 and (out / "model" / "config.json").exists()
    saved_config = json.loads((out / "model" / "config.json").read_text())
    assert saved_config["beat_tokens"] == 2 and saved_config["head_pooling"] == "beat"


def test_linear_probe_trains_only_the_head(pretrained_dir, tmp_path):
    from safetensors.torch import load_file

    from cardiofm.finetune.recipe import run_finetune

    cfg = _cfg([f"model={pretrained_dir}", f"data.root={shared_path('ptbxl')}", f"output_dir={tmp_path}",
                "mode=linear_probe", "head_pooling=channel", "train.max_steps=6", "train.eval_every=0",
                "train.early_stopping_metric=null", "train.early_stopping_patience=0", "data.max_records=120"])
    report = run_finetune(cfg)
    # channel head: LayerNorm(64) + Linear(13 channel slots x 64 -> 5)
    assert report["training"]["trainable_parameters"] == 2 * 64 + 13 * 64 * 5 + 5
    before, after = load_file(f"{pretrained_dir}/model.safetensors"), load_file(f"{tmp_path}/model/model.safetensors")
    enc = [k for k in after if k.startswith("cardiofm.")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in after if k.startswith("head.proj"))


def test_head_warmup_trains_only_the_head_then_unfreezes(pretrained_dir, tmp_path):
    """LP-FT stage 1 (head_warmup_steps): encoder weights unchanged, head moved, encoder trainable afterwards."""
    from cardiofm.finetune.data import build_task_data
    from cardiofm.finetune.recipe import build_model, make_collate, resolve_task, warm_up_head
    from cardiofm.models.factory import resolve_config

    cfg = _cfg([f"model={pretrained_dir}", f"data.root={shared_path('ptbxl')}", f"output_dir={tmp_path}",
                "head_warmup_steps=3", "data.max_records=120"])
    data = build_task_data(cfg.data, "diagnosis", resolve_config(cfg.model).preprocess_config)
    cfg = resolve_task(cfg, data)
    model = build_model(cfg, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    warm_up_head(cfg, model, data.windows["train"], make_collate(cfg, model), tmp_path / "head_warmup")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("cardiofm."))
    assert not torch.equal(before["head.proj.weight"], after["head.proj.weight"])
    assert all(p.requires_grad for p in model.cardiofm.parameters())


def test_evaluate_cli_writes_metrics_and_plots(diagnosis_run, tmp_path):
    from cardiofm.cli import main

    out, _ = diagnosis_run
    rc = main(["--log-level", "WARNING", "evaluate", "--model", str(out / "model"), "--config",
               str(out / "finetune_config.yaml"), "--split", "val", "--output-dir", str(tmp_path),
               "--bootstrap", "50", "--baselines"])
    assert rc == 0
    rep = json.loads((tmp_path / "metrics.json").read_text())
    val = rep["splits"]["val"]
    assert 0.0 <= val["macro_auroc"] <= 1.0 and len(val["macro_auroc_ci95"]) == 2
    assert not val["thresholds_tuned_on_test"]  # thresholds come from the checkpoint's config
    assert rep["baselines"]["features_logistic"]["macro_auroc"] > 0.7
    assert "macro AUROC" in (tmp_path / "metrics.txt").read_text()
    assert (tmp_path / "roc_val.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_proba_on_raw_500hz_wfdb_record(diagnosis_run):
    from cardiofm.data.readers.wfdb import read_wfdb
    from cardiofm.models import CardioFMForDiagnosis

    out, _ = diagnosis_run
    rec = read_wfdb(str(shared_path("ptbxl", "records500", "00000", "00001_hr.hea").with_suffix("")))
    assert rec.fs == 500 and rec.signal.shape == (12, 5000)
    model = CardioFMForDiagnosis.from_pretrained(str(out / "model"))
    probs = model.predict_proba(rec.signal, rec.fs, rec.channels)
    assert list(probs) == SUPERCLASSES and all(0.0 < p < 1.0 for p in probs.values())
    # same record at 100 Hz through the same path: probabilities agree closely (resampling differences only)
    rec100 = read_wfdb(str(shared_path("ptbxl", "records100", "00000", "00001_lr.hea").with_suffix("")))
    p100 = model.predict_proba(rec100.signal, rec100.fs, rec100.channels)
    assert max(abs(p100[k] - probs[k]) for k in probs) < 0.1
    subset = model.predict_proba(rec.signal[:2], rec.fs, ["I", "II"])  # any channel subset
    assert set(subset) == set(SUPERCLASSES)
    assert set(model.predict_labels(rec.signal, rec.fs, rec.channels)) <= set(SUPERCLASSES)


def test_vitals_hr_from_bidmc_beats_training_mean(pretrained_dir, tmp_path):
    from cardiofm.data.readers.bidmc import bidmc_files, read_bidmc
    from cardiofm.finetune.recipe import run_finetune
    from cardiofm.models import CardioFMForVitals

    cfg = _cfg([f"model={pretrained_dir}", "task=vitals", "vitals=[HR]", f"data.root={shared_path('bidmc')}",
                "data.source=bidmc", "data.split=subject", "data.val_subjects=[bidmc_08]",
                "data.test_subjects=[bidmc_09,bidmc_10]", "data.stride_s=10",
                f"output_dir={tmp_path}", "train.max_steps=60", "train.eval_every=30",
                "train.early_stopping_patience=0", "train.optim.lr=1.5e-3"])
    report = run_finetune(cfg)
    hr = report["splits"]["test"]["HR"]
    assert hr["n"] > 50
    assert hr["mae"] < hr["training_mean_mae"], hr  # the constant predictor: mean HR of the training windows
    assert hr["mae"] < 1.5, hr                         # the rate-aware head starts from the measured beat rate
    assert (tmp_path / "bland_altman_HR_test.png").exists()
    model = CardioFMForVitals.from_pretrained(str(tmp_path / "model"))
    assert model.uses_rate_prior
    rec = read_bidmc(next(f for f in bidmc_files(str(shared_path("bidmc"))) if "bidmc_09_" in f))
    start = int(60 * rec.fs)   # one minute in: 30 s of raw ECG + PPG at 125 Hz against the monitor's 1 Hz HR
    raw = rec.signal[:, start:start + int(30 * rec.fs)]
    value = model.predict(raw, rec.fs, rec.channels)["HR"]
    assert abs(value - float(np.median(rec.vital_series["HR"][60:90]))) < 3.0


def test_only_head_keys_may_be_missing(pretrained_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from cardiofm.models import CardioFMForDiagnosis, label_config

    model = CardioFMForDiagnosis.from_encoder(pretrained_dir, **label_config(SUPERCLASSES))
    assert model.label_names == SUPERCLASSES
    broken = tmp_path / "broken"
    model.save_pretrained(str(broken))
    weights = load_file(str(broken / "model.safetensors"))
    weights.pop(next(k for k in weights if ".encoder.layers.0." in k))
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing keys"):
        CardioFMForDiagnosis.from_pretrained_checked(str(broken))


def test_layer_decay_scales_lr_by_depth():
    from cardiofm.engine.config import OptimConfig
    from cardiofm.engine.optim import param_groups
    from cardiofm.models import CardioFMForDiagnosis, label_config, preset_config

    model = CardioFMForDiagnosis(preset_config("tiny", **label_config(SUPERCLASSES)))
    groups = param_groups(model, OptimConfig(lr=1e-3, layer_decay=0.5))
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    depth = model.config.num_hidden_layers
    assert lr_of["head.proj.weight"] == pytest.approx(1e-3)
    assert lr_of["cardiofm.signal_embed.patch_embed.weight" if "cardiofm.signal_embed.patch_embed.weight" in lr_of
                 else next(n for n in lr_of if "embed" in n)] == pytest.approx(1e-3 * 0.5 ** (depth + 1))
    assert lr_of[next(n for n in lr_of if ".layers.0." in n)] == pytest.approx(1e-3 * 0.5 ** depth)
