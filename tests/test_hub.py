"""Hub-native checkpoints: every model class saved here loads through the Auto classes (and its processor through
AutoProcessor) in a fresh interpreter that only imports cardiofm, with bit-identical outputs on a real PTB-XL record,
and by Hub id from an offline cache; push_to_hub uploads exactly the saved folder; cards state the real run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import cardiofm  # noqa: F401
from cardiofm.models import create_model
from cardiofm.models.tokenizer import ReportTokenizer
from tests.conftest import shared_path
from tests.hub_outputs import model_outputs

REPO_ID = "cardiofm-test/tiny-ecg"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
QUESTION = "Does lead aVL show any static noise on this ECG?"  # ECG-QA template 26, answers no / yes
REPORTS = ["sinus rhythm normal ecg", "sinusrhythmus normales ekg", "static noise in lead avl", "does lead show"] * 10
# class -> (Auto class in the child, output field compared); AutoCardioFM is checked for every class
AUTO_OF = {"CardioFMModel": "AutoModel", "CardioFMForPretraining": "AutoModelForPreTraining",
           "CardioFMForDiagnosis": "AutoModelForSequenceClassification", "CardioFMForVitals": None,
           "CardioFMForTarget": None, "CardioFMForReconstruction": None}


def _tokenizer() -> ReportTokenizer:
    return ReportTokenizer().train(REPORTS, 60)


def _qa_model(tokenizer):
    """A tiny QA model for ECG-QA template 26 (interval statistics in ms are placeholders: nothing is trained)."""
    from cardiofm.data.attributes import NUMERIC_FEATURES
    from cardiofm.models import CardioFMForQuestionAnswering, preset_config, qa_config

    head = qa_config(["no", "yes"], {26: ["no", "yes"]}, [100.0] * len(NUMERIC_FEATURES),
                     [20.0] * len(NUMERIC_FEATURES), {n: (50.0, 150.0) for n in NUMERIC_FEATURES})
    model = CardioFMForQuestionAnswering(preset_config("tiny", num_segments=2, **head)).eval()
    model.report_tokenizer = tokenizer
    return model


def _models(tokenizer) -> dict:
    from cardiofm.models import (CardioFMForDiagnosis, CardioFMForReconstruction, CardioFMForTarget,
                                 CardioFMForVitals, CardioFMModel, label_config, preset_config, target_config,
                                 vitals_config)

    torch.manual_seed(0)
    pretraining = create_model("tiny", tokenizer=tokenizer)
    return {"CardioFMModel": CardioFMModel(preset_config("tiny")), "CardioFMForPretraining": pretraining,
            "CardioFMForDiagnosis": CardioFMForDiagnosis(preset_config("tiny", **label_config(["NORM", "MI", "STTC"]))),
            "CardioFMForVitals": CardioFMForVitals(preset_config("tiny", **vitals_config(["HR"], [70.0], [10.0]))),
            "CardioFMForTarget": CardioFMForTarget(preset_config("tiny", **target_config("regression", ["age"],
                                                                                           [60.0], [15.0]))),
            "CardioFMForReconstruction": CardioFMForReconstruction(preset_config("tiny"))}


CHILD = textwrap.dedent("""
    import json, sys, torch
    import cardiofm
    import transformers
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoProcessor
    from cardiofm import AutoCardioFM
    root = sys.argv[1]
    spec = json.load(open(root + "/spec.json"))
    raw = load_file(root + "/signal.safetensors")["signal"].numpy()
    fs, channels = spec["fs"], spec["channels"]
    sys.path.insert(0, spec["tests"])
    from hub_outputs import model_outputs
    for name, auto_name in spec["auto"].items():
        path = root + "/" + name
        ref = load_file(path + "/ref.safetensors")
        assert AutoConfig.from_pretrained(path).architectures == [name], name
        processor = AutoProcessor.from_pretrained(path)
        assert type(processor).__name__ == "CardioFMProcessor"
        loaders = [AutoCardioFM] + ([getattr(transformers, auto_name)] if auto_name else [])
        for loader in loaders:
            model = loader.from_pretrained(path)
            assert type(model).__name__ == name, (name, loader, type(model))
            got = model_outputs(name, model, processor, raw, fs, channels)
            for key, value in ref.items():
                assert torch.equal(got[key], value), f"{name} via {loader.__name__}: {key} differs"
        print("OK", name)
    qa = transformers.AutoModelForQuestionAnswering.from_pretrained(root + "/qa")
    assert qa.report_tokenizer is not None and qa.report_tokenizer.vocab_size == spec["qa_vocab"]
    print("QA", json.dumps(qa.answer(spec["question"], [(raw, fs, channels)])))
    # the same pretraining checkpoint served by Hub id from an offline cache (HF_HUB_OFFLINE, HF_HUB_CACHE)
    from cardiofm.models import create_model
    hub = create_model(spec["repo_id"])
    assert hub.report_tokenizer is not None and torch.equal(hub.embed(raw, fs, channels),
                                                            load_file(root + "/CardioFMForPretraining/ref.safetensors")["helper"])
    assert type(transformers.AutoModel.from_pretrained(spec["repo_id"])).__name__ == "CardioFMModel"
    try:
        create_model("cardiofm-test/not-cached")
    except OSError:
        print("MISSING-ID-RAISES")
""")


def test_every_class_roundtrips_through_auto_classes_in_a_fresh_interpreter(tmp_path, one_torch_thread):
    from cardiofm.data.readers.wfdb import read_wfdb

    rec = read_wfdb(str(shared_path("ptbxl", "records100", "00000", "00001_lr.hea"))[:-4])
    tokenizer = _tokenizer()
    for name, model in _models(tokenizer).items():
        model.eval().save_pretrained(tmp_path / name)
        ref = model_outputs(name, model, model.processor, rec.signal, rec.fs, rec.channels)
        save_file(ref, str(tmp_path / name / "ref.safetensors"))
    qa = _qa_model(tokenizer)
    qa.save_pretrained(tmp_path / "qa")
    expected = qa.answer(QUESTION, [(rec.signal, rec.fs, rec.channels)])
    save_file({"signal": torch.from_numpy(rec.signal.copy())}, str(tmp_path / "signal.safetensors"))
    (tmp_path / "spec.json").write_text(json.dumps({"fs": rec.fs, "channels": rec.channels, "auto": AUTO_OF,
                                                    "tests": str(Path(__file__).parent), "question": QUESTION,
                                                    "qa_vocab": tokenizer.vocab_size, "repo_id": REPO_ID}))
    snap = tmp_path / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    shutil.copytree(tmp_path / "CardioFMForPretraining", snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(COMMIT)
    # the offline switch and cache location are read when huggingface_hub is imported: set for the child only
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", HF_HUB_OFFLINE="1",
               HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("OK ") == len(AUTO_OF)
    answer = json.loads(proc.stdout.split("QA ", 1)[1].splitlines()[0])
    assert answer == expected and set(answer) <= {"no", "yes"}
    assert "MISSING-ID-RAISES" in proc.stdout


def test_processor_files_match_the_config_and_missing_declared_tokenizer_raises(tmp_path):
    from cardiofm.models import CardioFMProcessor

    model = create_model("tiny", tokenizer=_tokenizer())
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["preprocess"] == model.config.preprocess and saved["channel_vocab"] == model.config.channel_vocab
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["CardioFMForPretraining"]
    (tmp_path / "report_tokenizer.model").unlink()
    with pytest.raises(FileNotFoundError, match="report_tokenizer.model"):
        CardioFMProcessor.from_pretrained(tmp_path)


def test_push_to_hub_uploads_exactly_the_saved_files(tmp_path, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub import ModelCard

    model = create_model("tiny", tokenizer=_tokenizer())
    model.config.training_summary = {"stage": "pretraining", "steps": 1234, "data": {"sources": ["ptbxl"]}}
    model.save_pretrained(tmp_path / "saved")
    uploaded, repos = {}, []

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        for path in Path(folder_path).rglob("*"):
            if path.is_file():
                uploaded[str(path.relative_to(folder_path))] = path.read_bytes()
        return f"https://hub.invalid/{repo_id}/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: repos.append(repo_id) or
                        type("RepoUrl", (), {"repo_id": repo_id})())
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    model.push_to_hub("cardiofm-test/pushed", token="hf_test_not_a_token")
    saved = {str(p.relative_to(tmp_path / "saved")): p.read_bytes() for p in (tmp_path / "saved").rglob("*")}
    assert repos == ["cardiofm-test/pushed"]
    assert set(uploaded) == set(saved) >= {"model.safetensors", "config.json", "README.md", "report_tokenizer.model",
                                            "preprocessor_config.json", "processor_config.json"}
    assert all(uploaded[k] == saved[k] for k in saved), [k for k in saved if uploaded[k] != saved[k]]
    card = ModelCard(uploaded["README.md"].decode())
    assert card.data.library_name == "cardiofm" and card.data.pipeline_tag == "feature-extraction"
    assert "1,234" in card.text and "ptbxl" in card.data.datasets


def test_pretrained_checkpoint_card_states_its_steps_and_data(tmp_path, one_torch_thread):
    from cardiofm.cli.main import main

    out = tmp_path / "run"
    rc = main(["-q", "pretrain", "--config", "pretrain_tiny", "--output-dir", str(out), "train.max_steps=3",
               "data.synthetic_size=24", "data.eval_size=8", "train.eval_every=3", "train.log_every=1",
               "train.checkpoint_every=0", "train.plot_every=0"])
    assert rc == 0
    summary = json.loads((out / "model" / "config.json").read_text())["training_summary"]
    card = (out / "model" / "README.md").read_text()
    assert summary["steps"] == 3 and summary["samples_seen"] == 3 * 8 and summary["data"]["windows"] == 24
    assert summary["tokens_seen"] > 3 * 8 * 12 * 40 and summary["final_train_loss"] > 0  # 12 leads x 40 patches
    assert "Optimizer steps: 3" in card and "24 windows of 10 s" in card and "random initialisation" not in card
    assert f"{summary['final_train_loss']:.4f}" in card and "library_name: cardiofm" in card


def test_task_head_card_has_label_map_and_model_index_with_cis(tmp_path):
    from huggingface_hub import ModelCard

    from cardiofm.models import CardioFMForDiagnosis, label_config, preset_config
    from cardiofm.models.hub.summary import test_results

    model = CardioFMForDiagnosis(preset_config("tiny", **label_config(["NORM", "MI"]), decision_thresholds=[0.3, 0.6]))
    report = {"splits": {"test": {"macro_auroc": 0.81, "macro_auroc_ci95": [0.74, 0.88], "n_records": 40}}}
    model.config.training_summary = {"stage": "finetuning", "steps": 50, "data": {"sources": ["ptbxl"]},
                                     "test": {"split": "test", "metrics": test_results(report)}}
    model.save_pretrained(tmp_path)
    card = ModelCard((tmp_path / "README.md").read_text())
    result = card.data.eval_results[0]
    assert result.metric_value == 0.81 and "0.740-0.880" in result.metric_name and result.dataset_split == "test"
    assert "| 1 | MI | 0.600 |" in card.text and "not a medical device" in card.text


def test_loading_report_counts_and_preset_mismatch_refused(tmp_path, caplog):
    import logging

    from cardiofm.models import CardioFMForDiagnosis, CheckpointMismatchError, label_config, preset_config

    create_model("tiny").save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="cardiofm.models"):
        model = CardioFMForDiagnosis.from_encoder(str(tmp_path), **label_config(["NORM", "MI"]))
    line = next(r.getMessage() for r in caplog.records if "weights transferred" in r.getMessage())
    encoder = len(model.cardiofm.state_dict())
    assert f"{encoder} weights transferred, 4 newly initialised [head (4)]" in line and "decoder" in line
    with pytest.raises(CheckpointMismatchError, match="preset 'tiny'.*preset 'small'.*hidden_size 64 != 384"):
        CardioFMForDiagnosis.from_pretrained(str(tmp_path), config=preset_config("small", **label_config(["A", "B"])))
