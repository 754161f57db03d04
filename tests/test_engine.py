"""Engine unit tests on a toy model: optimizer groups, schedule, sharded resumable sampling, checkpoints, NaN policy,
SIGTERM, and bit-exact in-process resume after an interrupted checkpoint save."""
from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

import cardiofm  # noqa: F401  (torchvision guard before accelerate/transformers)
from cardiofm.engine import (CheckpointManager, NonFiniteLossError, OptimConfig, TrainConfig, Trainer, lr_factor,
                             param_groups, seed_everything)
from cardiofm.engine.data import EpochIndexedDataset, ShardedBatchSampler
from engine_toy import ToyData, ToyRegressor, collate


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=8, batch_size=4, log_every=1, checkpoint_every=2, keep_last=2, trackers=["none"],
                optim=OptimConfig(lr=3e-3, warmup_steps=2))
    base.update(kw)
    return TrainConfig(**base)


def _trainer(tmp_path, cfg=None, data=None, **kw) -> Trainer:
    seed_everything(0)
    return Trainer(ToyRegressor(), cfg or _cfg(), data or ToyData(64), collate, output_dir=tmp_path, **kw)


def _losses(path) -> dict[int, float]:
    """step -> train/loss from metrics.jsonl (the last entry wins: a resumed run re-logs later steps)."""
    out = {}
    for line in (path / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "train/loss" in row:
            out[row["step"]] = row["train/loss"]
    return out


def test_weight_decay_only_on_matrices_and_layer_decay():
    model = ToyRegressor()
    groups = param_groups(model, OptimConfig(weight_decay=0.1, layer_decay=0.5))
    for g in groups:
        for name, p in zip(g["names"], g["params"]):
            assert (g["weight_decay"] > 0) == (p.ndim >= 2), name
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    # depth 2: embeddings id 0 -> 0.5^3, block 0 -> 0.5^2, block 1 -> 0.5, head -> 1
    assert scale["embed.weight"] == pytest.approx(0.125)
    assert scale["layers.0.1.weight"] == pytest.approx(0.25)
    assert scale["layers.1.1.weight"] == pytest.approx(0.5)
    assert scale["head.weight"] == 1.0
    model.embed.weight.requires_grad_(False)  # a frozen part gets no optimizer state
    assert "embed.weight" not in {n for g in param_groups(model, OptimConfig()) for n in g["names"]}


def test_warmup_cosine_schedule():
    cfg = OptimConfig(warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg, 110) == pytest.approx(0.1)
    assert lr_factor(9, cfg, 110) == pytest.approx(1.0)
    assert lr_factor(60, cfg, 110) == pytest.approx(0.55)   # half way down the cosine
    assert lr_factor(110, cfg, 110) == pytest.approx(0.1)


def test_sampler_shards_disjoint_and_resumes_mid_epoch():
    full = [ShardedBatchSampler(50, 4, rank=r, world_size=2, seed=3) for r in range(2)]
    first = [list(zip(range(12), iter(s))) for s in full]          # 6 batches per epoch: crosses an epoch
    epoch0 = [i for r in range(2) for _, b in first[r][:6] for e, i in b]
    assert len(epoch0) == len(set(epoch0)) == 48                   # disjoint over ranks, drop_last of 50
    resumed = ShardedBatchSampler(50, 4, rank=1, world_size=2, seed=3, start_epoch=1, start_batch=2)
    assert [b for _, b in first[1][8:12]] == [b for _, b in zip(range(4), iter(resumed))]


def test_augmentation_seeded_per_sample_not_per_worker():
    draw = EpochIndexedDataset(ToyData(8), transform=lambda s, fs: {**s, "x": s["x"] + torch.randn(8)}, fs=100.0)
    a, b = draw[(0, 3)]["x"], draw[(0, 3)]["x"]
    torch.manual_seed(99)
    before = torch.rand(1)
    torch.manual_seed(99)
    draw[(1, 3)]
    assert torch.equal(a, b) and not torch.equal(a, draw[(1, 3)]["x"])
    assert torch.equal(before, torch.rand(1))                       # the caller's RNG stream is untouched


def test_checkpoint_keeps_last_n_and_writes_full_state(tmp_path):
    result = _trainer(tmp_path).train()
    names = sorted(p.name for p in CheckpointManager(tmp_path / "checkpoints").complete())
    assert names == ["step_00000006", "step_00000008"] and result.step == 8
    files = {p.name for p in (tmp_path / "checkpoints" / "step_00000008").iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
            "trainer_state.json"} <= files
    state = json.loads((tmp_path / "checkpoints" / "step_00000008" / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["batch_in_epoch"] == 8 and state["samples_seen"] == 32


def test_interrupted_save_resumes_from_previous_complete_checkpoint(tmp_path, monkeypatch):
    """A save that dies after writing part of the state at step 6 leaves step 4 as the resume point; the resumed run
    then matches an uninterrupted run bit for bit (loss at every step and final weights)."""
    ref = _trainer(tmp_path / "ref")
    ref.train()
    real_write = CheckpointManager._write_state

    def dying_write(self, accelerator, directory, state):
        if state["step"] == 6:
            accelerator.save_state(str(directory))   # model/optimizer written, trainer_state.json never is
            raise KeyboardInterrupt("killed during checkpoint save")
        real_write(self, accelerator, directory, state)

    monkeypatch.setattr(CheckpointManager, "_write_state", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path / "run").train()
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / ".tmp-step_00000006").is_dir()
    assert CheckpointManager(ckpts).latest().name == "step_00000004"
    monkeypatch.setattr(CheckpointManager, "_write_state", real_write)
    resumed = _trainer(tmp_path / "run")
    assert resumed.train(resume=True).step == 8
    assert not (ckpts / ".tmp-step_00000006").exists()               # the next save cleaned it up
    assert _losses(tmp_path / "run") == _losses(tmp_path / "ref")
    for (name, a), b in zip(ref.unwrapped_model().state_dict().items(), resumed.unwrapped_model().state_dict().values()):
        assert torch.equal(a, b), name


def test_sigterm_writes_final_checkpoint_and_stops(tmp_path):
    calls = {"n": 0}

    def tokens_then_sigterm(batch):
        calls["n"] += 1
        if calls["n"] == 3:  # during step 3: the step finishes, then checkpoint and stop
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    previous = signal.getsignal(signal.SIGTERM)
    result = _trainer(tmp_path, _cfg(checkpoint_every=0), tokens_fn=tokens_then_sigterm).train()
    assert result.stopped == "sigterm" and result.step == 3
    assert CheckpointManager(tmp_path / "checkpoints").latest().name == "step_00000003"
    assert signal.getsignal(signal.SIGTERM) == previous                # handler restored after the run


def test_nan_policy_stop_names_the_step(tmp_path):
    first_of_step3 = int(ShardedBatchSampler(64, 4, seed=0).epoch_order(0)[8])  # batch 2 of the shuffled epoch
    with pytest.raises(NonFiniteLossError, match=r"at step 3 \(epoch 0, micro-batch 2\).*nan_policy=stop"):
        _trainer(tmp_path, _cfg(nan_policy="stop"), ToyData(64, nan_at=(first_of_step3,))).train()
    assert _losses(tmp_path).keys() == {1, 2}                           # nothing logged for the bad step


def test_nan_policy_skip_skips_and_keeps_weights_finite(tmp_path):
    data = ToyData(64, nan_at=(5,))
    trainer = _trainer(tmp_path, _cfg(nan_policy="skip", max_steps=20), data)
    result = trainer.train()
    assert result.step == 20 and result.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in trainer.unwrapped_model().parameters())
    assert all(math.isfinite(v) for v in _losses(tmp_path).values())
