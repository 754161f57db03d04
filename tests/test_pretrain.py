"""`cardiofm pretrain` in one process: config parsing, exact resume after SIGKILL at a random step, export, plots."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

import cardiofm  # noqa: F401
from cardiofm.config import ConfigError, load_config
from cardiofm.pretrain.config import PretrainConfig
from pretrain_launch import ROOT, env, exported_weights, pretrain_cmd, run, step_metrics

KEYS = ("train/loss", "train/signal", "train/text", "train/grad_norm", "train/lr")
RUN = ["train.max_steps=10", "train.checkpoint_every=2", "train.eval_every=3"]


def test_overrides_keep_the_preset_defaults_of_a_section():
    cfg = load_config(PretrainConfig, None, ["train.max_steps=5", "train.optim.lr=2e-3"])
    assert (cfg.train.max_steps, cfg.train.batch_size, cfg.train.optim.lr, cfg.train.optim.warmup_steps) == \
        (5, 8, 2e-3, 10)
    with pytest.raises(ConfigError, match="train.optim.lrr"):
        load_config(PretrainConfig, None, ["train.optim.lrr=1"])
    yaml_cfg = load_config(PretrainConfig, "pretrain_tiny")
    assert yaml_cfg.model.name == "tiny" and not yaml_cfg.data.corpus_dirs


def _kill_at_step(cmd, out_dir, step: int, timeout: float = 180) -> int:
    """Start a run, SIGKILL it as soon as metrics.jsonl shows `step`; returns the last step logged before the kill."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, t0 = out_dir / "metrics.jsonl", time.time()
    try:
        while time.time() - t0 < timeout and proc.poll() is None:
            if metrics.exists() and f'"step": {step},' in metrics.read_text():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)  # a step takes >= 0.1 s here: the kill lands within the next step or its save
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"run was not killed (rc {proc.returncode}): {proc.stderr.read()[-2000:]}"
    return max(step_metrics(out_dir))


def test_sigkill_then_resume_matches_uninterrupted_run_bitwise(tmp_path):
    kill_step = random.Random().randint(3, 7)  # any step must work; the value is in the failure message
    ref_cmd = pretrain_cmd(tmp_path / "ref", *RUN)
    ref = subprocess.Popen(ref_cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = _kill_at_step(pretrain_cmd(tmp_path / "run", *RUN), tmp_path / "run", kill_step)
    assert ref.wait(timeout=240) == 0, ref.stderr.read()[-3000:]
    run(pretrain_cmd(tmp_path / "run", *RUN, resume=True))

    want, got = step_metrics(tmp_path / "ref", KEYS), step_metrics(tmp_path / "run", KEYS)
    assert sorted(got) == list(range(1, 11)), f"killed at step {last}"
    for step in range(1, 11):
        assert got[step] == want[step], f"step {step} differs after SIGKILL at step {last}: {got[step]} vs {want[step]}"
    a, b = exported_weights(tmp_path / "ref"), exported_weights(tmp_path / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs (killed at step {last})"
    _check_export(tmp_path / "ref", a)


def _check_export(out_dir, saved: dict) -> None:
    """DIR/model loads with CardioFMForPretraining.from_pretrained (exact key set) and carries the tokenizer."""
    from cardiofm.models import CardioFMForPretraining
    from cardiofm.models.tokenizer import ReportTokenizer

    model = CardioFMForPretraining.from_pretrained_checked(str(out_dir / "model"))
    assert model.state_dict().keys() == saved.keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert ReportTokenizer.from_pretrained(out_dir / "model").vocab_size > 5
    assert (out_dir / "config.yaml").is_file()


def test_reconstruction_figure_draws_only_hidden_patches():
    from cardiofm.pretrain.plots import reconstruction_figure

    signals = np.sin(np.linspace(0, 20, 13 * 100)).reshape(13, 100).astype(np.float32)
    predictions = np.ones((13, 4, 25), dtype=np.float32)
    hidden = np.zeros((13, 4), dtype=bool)
    hidden[1, 2] = True
    fig = reconstruction_figure(signals, predictions, hidden, np.arange(13), fs=100.0)
    red = fig.axes[2].lines[1].get_ydata()               # lead II (row 2, column 1): reconstruction line
    assert np.isnan(red[:50]).all() and (red[50:75] == 1).all() and np.isnan(red[75:]).all()
    assert len(fig.axes) == 12


@pytest.mark.parametrize("name", ["zero1", "zero2", "zero2_offload", "zero3", "zero3_offload"])
def test_accelerate_deepspeed_configs_are_consistent(name):
    """Each accelerate yaml parses with accelerate and points at the DeepSpeed JSON of the same ZeRO stage whose
    batch entries are 'auto' (filled from TrainConfig, so launcher and recipe never disagree)."""
    import json

    from accelerate.commands.config.config_args import load_config_from_file

    acc = load_config_from_file(str(ROOT / "scripts" / "accelerate" / f"{name}.yaml"))
    assert acc.distributed_type == "DEEPSPEED"
    ds = json.loads((ROOT / acc.deepspeed_config["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == int(name[4])
    assert ("offload_optimizer" in ds["zero_optimization"]) == name.endswith("offload")
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        assert ds[key] == "auto", key


def test_gradient_checkpointing_same_losses_and_layer_decay_groups(tmp_path):
    """Activation checkpointing recomputes the encoder in backward without changing a single loss value; the real
    model's parameters fall into embedding / block / top groups for layer-wise LR decay."""
    from cardiofm.data.synthetic import SyntheticDataset
    from cardiofm.engine import OptimConfig, TrainConfig, Trainer, param_groups, seed_everything
    from cardiofm.models import create_model
    from cardiofm.models.tokenizer import ReportTokenizer
    from cardiofm.pretrain.data import make_collate

    data = SyntheticDataset(8, seed=5)
    tok = ReportTokenizer().train([data[i]["text"] for i in range(8)], vocab_size=100)
    losses = {}
    for ckpt in (False, True):
        seed_everything(0)
        cfg = TrainConfig(max_steps=2, batch_size=2, log_every=1, checkpoint_every=0, trackers=["none"],
                          gradient_checkpointing=ckpt, optim=OptimConfig(lr=1e-3, warmup_steps=0))
        Trainer(create_model("tiny", tokenizer=tok), cfg, data, make_collate(tok, 32),
                output_dir=tmp_path / str(ckpt)).train()
        losses[ckpt] = [json.loads(line)["train/loss"] for line in (tmp_path / str(ckpt) / "metrics.jsonl").open()]
    assert losses[True] == losses[False] and len(losses[True]) == 2

    groups = param_groups(create_model("tiny"), OptimConfig(layer_decay=0.5))
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    by_prefix = lambda prefix: {v for n, v in scale.items() if n.startswith(prefix)}  # noqa: E731
    # tiny has 2 blocks: embeddings 0.5^3, block 0 0.5^2, block 1 0.5, final norm / decoder / heads 1
    assert by_prefix("cardiofm.signal_embed.") == {0.125} and by_prefix("cardiofm.text_embed.") == {0.125}
    assert by_prefix("cardiofm.encoder.layers.0.") == {0.25} and by_prefix("cardiofm.encoder.layers.1.") == {0.5}
    assert by_prefix("decoder.") == {1.0} and by_prefix("cardiofm.encoder.norm.") == {1.0}
