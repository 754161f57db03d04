"""Throughput: the faster synthetic generator equals the dense one, the per-run window cache, beat information
found once per window, the trainer's data-wait summary, the step benchmark's FLOP count, gpu_check without CUDA."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from cardiofm.data import PreprocessConfig
from cardiofm.data.synthetic import SyntheticDataset, _gauss_train, generate_record
from conftest import REPO, shared_path

TINY = PreprocessConfig(fs=100.0)   # the presets' layout: 12 leads + PPG, 10 s at 100 Hz


def test_local_gaussian_waves_equal_the_dense_sum():
    rng = np.random.default_rng(0)
    fs, n = 500.0, 5000
    centers = np.sort(rng.uniform(-1.5, 11.5, 25))          # beats before and after the window included
    amps = rng.uniform(0.9, 1.1, 25)
    t = np.arange(n) / fs
    for width in (0.008, 0.055, 0.08):
        dense = (amps[:, None] * np.exp(-0.5 * ((t[None] - centers[:, None]) / width) ** 2)).sum(0)
        assert np.abs(_gauss_train(n, fs, centers, amps, width) - dense).max() < 1e-12


@pytest.mark.parametrize("seed,rhythm,abs_sum,lead_ii,ppg", [
    # values of the previous (dense) generator: the local evaluation changes at most the last float32 bit
    (3, None, 8414.35824381992, [0.042721785604953766, 0.04207621142268181, 0.013311071321368217],
     [0.1437305063009262, 0.15038813650608063]),
    (8, "AFIB", 5742.315046358044, [0.050850123167037964, 0.06508038938045502, 0.05967710539698601],
     [0.17737480998039246, 0.1493888795375824]),
])
def test_generator_reproduces_the_previous_records(seed, rhythm, abs_sum, lead_ii, ppg):
    rec = generate_record(seed, rhythm=rhythm)
    assert float(np.abs(rec.signal.astype(np.float64)).sum()) == pytest.approx(abs_sum, rel=1e-9)
    np.testing.assert_allclose(rec.signal[1, 2000:2003], lead_ii, rtol=0, atol=1e-8)
    np.testing.assert_allclose(rec.signal[12, 100:102], ppg, rtol=0, atol=1e-8)


def test_prefilled_cache_equals_fresh_windows_and_is_not_aliased():
    cached = SyntheticDataset(20, seed=3, cfg=TINY)
    seconds = cached.prefill(processes=2, chunk=8)
    fresh = SyntheticDataset(20, seed=3, cfg=TINY, cache_mb=0)   # too small a cache: every item generated anew
    assert cached.caches and not fresh.caches and seconds > 0 and len(cached._cache) == 20
    for i in (0, 7, 19):
        a, b = cached[i], fresh[i]
        assert np.array_equal(a["signal"], b["signal"]) and a["text"] == b["text"] and a["labels"] == b["labels"]
    sample = cached[5]
    sample["signal"][:] = 0.0            # an in-place augmentation of the returned window...
    sample["labels"].append("X")
    assert np.abs(cached[5]["signal"]).max() > 0.1 and "X" not in cached[5]["labels"]  # ...leaves the cache alone
    with pytest.raises(ValueError, match="do not fit"):
        fresh.prefill()


def _ptbxl_windows(n: int) -> list[dict]:
    from cardiofm.data.preprocess import preprocess_record
    from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl

    root = str(shared_path("ptbxl"))
    return [preprocess_record(read_ptbxl(root, i), TINY)[0] for i in ptbxl_ids(root)[:n]]


def test_beat_info_found_once_gives_the_same_batch_on_real_records():
    from cardiofm.data.beats import beat_rate_features, with_beat_info
    from cardiofm.data.collate import collate_samples

    windows = _ptbxl_windows(6)
    with_info = [with_beat_info(w, TINY.fs) for w in windows]
    assert all(len(w["rpeaks"]) >= 4 for w in with_info)   # 10 s of a resting ECG: at least 4 beats
    beat_window = (TINY.fs, 25, 75)                           # 0.25 s before the R peak, 0.75 s beats
    detected = collate_samples(windows, beat_window=beat_window, rate_fs=TINY.fs)
    reused = collate_samples(with_info, beat_window=beat_window, rate_fs=TINY.fs)
    for key in ("beat_signals", "beat_ok", "beat_start_s", "rate_features"):
        assert torch.equal(detected[key], reused[key]), key
    assert reused["beat_ok"].all() and reused["rate_features"].shape == (6, 6)
    hr = reused["rate_features"][:, 0].numpy()
    assert ((hr > 35) & (hr < 160)).all()
    expect = beat_rate_features(windows[0]["signal"], windows[0]["channels"], TINY.fs, windows[0]["channel_mask"])
    np.testing.assert_array_equal(reused["rate_features"][0].numpy(), expect)


def test_synthetic_beat_info_matches_the_true_rpeaks():
    ds = SyntheticDataset(4, seed=11, cfg=TINY, beat_info=True)
    for i in range(4):
        s = ds[i]
        true = np.round(generate_record(11 + i).meta["rpeaks"] * TINY.fs / 500.0)
        matched = sum(np.min(np.abs(s["rpeaks"] - r)) <= 2 for r in true)   # within 20 ms
        assert matched >= len(true) - 1 and s["rate_features"][2] == 1.0


def test_trainer_states_the_run_data_wait(tmp_path, caplog):
    from cardiofm.engine import OptimConfig, TrainConfig, Trainer, seed_everything
    from cardiofm.engine.tracking import ThroughputMeter
    from cardiofm.models import create_model
    from cardiofm.pretrain.data import make_collate

    meter = ThroughputMeter()
    meter.add(0.1, 0.3, 8, 100)
    meter.add(0.1, 0.5, 8, 100)
    assert meter.report()["perf/data_fraction"] == pytest.approx(0.2)
    assert meter.summary()["data_fraction"] == pytest.approx(0.2) and meter.summary()["data_s"] == pytest.approx(0.2)

    data = SyntheticDataset(8, seed=5, cfg=TINY)
    data.prefill()
    seed_everything(0)
    cfg = TrainConfig(max_steps=2, batch_size=2, log_every=1, checkpoint_every=0, trackers=["none"],
                      optim=OptimConfig(lr=1e-3, warmup_steps=0))
    with caplog.at_level(logging.INFO, logger="cardiofm.engine"):
        Trainer(create_model("tiny"), cfg, data, make_collate(None, 32), output_dir=tmp_path).train()
    summary = [r.getMessage() for r in caplog.records if "of the loop" in r.getMessage()]
    assert len(summary) == 1 and "rank 0 data wait" in summary[0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    waits = [r["perf/data_fraction"] for r in rows if "perf/data_fraction" in r]
    assert len(waits) == 2 and all(0.0 <= w < 1.0 for w in waits)


def test_step_benchmark_counts_attention_and_compares_to_the_reference():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_model_mfu import count_flops
    from bench_step_vs_reference import measure

    q = torch.randn(2, 4, 64, 16)
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert flops == 4 * 2 * 4 * 64 * 64 * 16          # QK^T and PV: 2 x 2 B H L S E
    result = measure("tiny", batch_size=2, steps=1, device="cpu")
    assert set(result["steps"]) == {"cardiofm pretrain", "reference pretrain", "cardiofm finetune",
                                    "reference finetune"}
    assert result["tokens"] == 13 * 40 and result["visible"] == 130
    for row in result["steps"].values():
        assert row["gflop"] > 0 and 0 < row["mfu"] < 1.5
        # CPU time excludes time descheduled, and counts every thread: at most wall time x threads
        assert 0 < row["cpu_ms"] <= row["ms"] * torch.get_num_threads() * 1.05 + 5
        assert 0 < row["mfu_cpu_time"] < 1.5
    # the reference's encoder has the same size: its finetuning FLOPs are within 25 % of cardiofm's
    ratio = result["steps"]["reference finetune"]["gflop"] / result["steps"]["cardiofm finetune"]["gflop"]
    assert 0.75 < ratio < 1.25


def test_gpu_check_exits_cleanly_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the real check")
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]
    assert json.loads(out.read_text())["cuda"] is False
