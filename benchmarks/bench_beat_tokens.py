"""Cost of median-beat tokens on real PTB-XL windows (12 leads, 10 s, 100 Hz): median-beat computation per window,
and a tiny-model pretraining step without beat tokens (the reference) vs with them, computed in the forward pass or
precomputed by the collate function (what DataLoader workers do).

CPU seconds of this process on one thread, robust to a shared machine.

    OMP_NUM_THREADS=1 python benchmarks/bench_beat_tokens.py [--steps 20] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import cardiofm  # noqa: E402,F401  (torchvision guard first)
from cardiofm.data.collate import collate_samples  # noqa: E402
from cardiofm.data.beats import BEAT_KEYS, median_beat_batch  # noqa: E402
from cardiofm.data.preprocess import PreprocessConfig, preprocess_record  # noqa: E402
from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl  # noqa: E402
from cardiofm.models import CardioFMForPretraining, preset_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(fn, repeats: int) -> float:
    """Mean process CPU seconds of fn() over `repeats` calls (after one warm-up call)."""
    fn()
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats


def train_step(model, batch, opt) -> None:
    """One pretraining step (forward, backward, optimizer)."""
    model(**batch, generator=torch.Generator().manual_seed(0)).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def main() -> None:
    """Print per-window median-beat cost and step-time ratios against the no-beat-token reference."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("CARDIOFM_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    torch.set_num_threads(1)
    root = str(Path(args.data) / "ptbxl")
    samples = []
    for i in ptbxl_ids(root)[:args.batch]:
        samples += preprocess_record(read_ptbxl(root, i), PreprocessConfig(fs=100.0))
    batch = collate_samples(samples[:args.batch])
    n = batch["signals"].shape[0]
    cfg_beats = preset_config("tiny", beat_tokens=3, num_segments=3)
    per_batch = cpu_seconds(lambda: median_beat_batch(batch["signals"], batch["channel_ids"], batch["channel_mask"],
                                                      cfg_beats.channel_vocab, *cfg_beats.beat_window), args.steps)
    print(f"median beats: {1000 * per_batch / n:.2f} ms per 12-lead 10 s window (batch of {n}, 1 core)")

    times = {}
    precomputed = collate_samples(samples[:args.batch], beat_window=cfg_beats.beat_window)
    for name, config, data in (("no beat tokens (reference)", preset_config("tiny"), batch),
                               ("beat tokens, computed in forward", cfg_beats, batch),
                               ("beat tokens, precomputed in collate", cfg_beats, precomputed)):
        torch.manual_seed(0)
        model = CardioFMForPretraining(config)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times[name] = cpu_seconds(lambda: train_step(model, data, opt), args.steps)
    ref = times["no beat tokens (reference)"]
    for name, t in times.items():
        print(f"{name:38s} {1000 * t:7.1f} ms/step  ratio {t / ref:.2f}")
    assert all(k in precomputed for k in BEAT_KEYS)


if __name__ == "__main__":
    main()
