"""Hub path tested offline: a pre-populated Hugging Face cache serves `create_model("org/name")` with HF_HUB_OFFLINE=1."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import save_file

import cardiofm  # noqa: F401
from cardiofm.models import create_model
from cardiofm.models.tokenizer import ReportTokenizer

REPO_ID = "cardiofm-test/tiny-ecg"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# runs in a fresh interpreter: the offline switch and cache location are read when huggingface_hub is imported
CHILD = textwrap.dedent(f"""
    import sys, torch
    import cardiofm
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel
    from cardiofm.models import CardioFMModel, create_model
    ref = load_file(sys.argv[1])
    model = create_model("{REPO_ID}").eval()
    assert model.report_tokenizer is not None and model.report_tokenizer.vocab_size > 10
    ids, mask = model.report_tokenizer.encode_batch(["sinus rhythm"], 8)
    with torch.no_grad():
        out = model.cardiofm(ref["signals"], ref["channel_ids"]).last_hidden_state
        auto = AutoModel.from_pretrained("{REPO_ID}").eval()
        out_auto = auto(ref["signals"], ref["channel_ids"]).last_hidden_state
    assert type(auto) is CardioFMModel and AutoConfig.from_pretrained("{REPO_ID}").model_type == "cardiofm"
    assert torch.equal(out, ref["hidden"]) and torch.equal(out_auto, ref["hidden"]), "outputs differ"
    try:
        create_model("cardiofm-test/not-cached")
    except OSError:
        print("MISSING-ID-RAISES")
    print("HUB-OK")
""")


def test_from_pretrained_hub_id_offline(tmp_path):
    model = create_model("tiny").eval()
    model.report_tokenizer = ReportTokenizer().train(["sinus rhythm normal ecg", "sinusrhythmus normales ekg"] * 10, 60)
    local = tmp_path / "saved"
    model.save_pretrained(local)
    snap = tmp_path / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    shutil.copytree(local, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(COMMIT)
    assert {"config.json", "model.safetensors", "README.md", "report_tokenizer.model"} <= set(os.listdir(snap))

    signals, ids = torch.randn(2, 13, 1000), torch.arange(13).expand(2, -1).contiguous()
    with torch.no_grad():
        hidden = model.cardiofm(signals, ids).last_hidden_state
    save_file({"signals": signals, "channel_ids": ids, "hidden": hidden.contiguous()}, str(tmp_path / "ref.safetensors"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "hf_home"),
               DS_ACCELERATOR="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "ref.safetensors")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HUB-OK" in proc.stdout and "MISSING-ID-RAISES" in proc.stdout
