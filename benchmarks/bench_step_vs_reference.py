"""Pretraining and finetuning step of a cardiofm preset vs a same-size plain ViT-MAE (timm blocks), in one run.

Same width, depth, heads, FFN, decoder size, visible tokens and batch on both sides; the reference
(vit_mae_reference.py) has no channel/time embeddings, rotary attention, missing-channel handling or extra losses, so
the samples/s ratio shows what those cost. MFU = FLOPs counted on the real step (torch.utils.flop_counter) / step time
/ the matmul ceiling measured here (fp32 on CPU, bf16 autocast on CUDA). Steps are interleaved and the best of
`--steps` repeats is kept, so load from other programs on a shared machine hits both sides alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_step_vs_reference.py --preset small --batch-size 32 --threads 1

`--compile` times both sides through torch.compile (the first call of each step compiles it, untimed).

On a CPU shared with other programs the wall-clock figures fall whenever the scheduler gives this process's core to
another one, so on CPU the steps and the ceiling are also timed in process CPU time (`time.process_time`): the
"CPU-time MFU" column is what the code reaches while it holds the core. The wall-clock MFU stays the figure of record.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bench_model_mfu import autocast_for, count_flops, matmul_ceiling, sync
from vit_mae_reference import ViTMAEReference

NUM_LABELS = 5


def optimiser_step(loss_fn, params, autocast, device: str):
    """A closure running forward (autocast), backward and an AdamW step of loss_fn()."""
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")

    def step():
        with autocast():
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def cpu_time_ceiling(n: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of an n x n fp32 CPU matmul (2 n^3 FLOPs) by process CPU time, as matmul_ceiling times it by wall."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.process_time() - t) / repeats)
    return 2 * n ** 3 / best


def time_steps_both(steps: dict, device: str, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall s, process CPU s) per call of each step, interleaved repeat by repeat (load hits every step alike)."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            sync(device)
            out[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def make_batch(config, batch_size: int, device: str) -> dict:
    """A batch of random windows in the preset's layout: signals (B, C, T), channel_ids (B, C), labels (B, K)."""
    from cardiofm.data.channels import CHANNEL_VOCAB

    names = config.preprocess["channels"]
    t = int(config.window_s * config.sampling_rate)
    ids = torch.tensor([CHANNEL_VOCAB.index(n) for n in names], device=device)
    return {"signals": torch.randn(batch_size, len(names), t, device=device) * 0.2,
            "channel_ids": ids.expand(batch_size, -1).contiguous(),
            "labels": (torch.rand(batch_size, NUM_LABELS, device=device) < 0.3).float()}


def build_steps(preset: str, batch_size: int, device: str, compile_model: bool = False) -> tuple[dict, dict]:
    """Step closures {cardiofm/reference x pretrain/finetune} and a description of the shapes."""
    from cardiofm.models import CardioFMForDiagnosis, create_model, preset_config
    from cardiofm.models.tasks.diagnosis import label_config

    autocast = autocast_for(device)
    torch.manual_seed(0)
    pre = create_model(preset).to(device)
    fine = CardioFMForDiagnosis(preset_config(preset, **label_config([f"L{i}" for i in range(NUM_LABELS)])))
    fine = fine.to(device)
    cfg = pre.config
    batch = make_batch(cfg, batch_size, device)
    channels = batch["signals"].shape[1]
    ref = ViTMAEReference(cfg, channels, NUM_LABELS).to(device)
    inputs = {k: batch[k] for k in ("signals", "channel_ids")}
    run_pre, run_fine, ref_pre, ref_fine = pre, fine, ref.pretraining_loss, ref.finetuning_loss
    if compile_model:   # both sides, or the ratio would compare a compiled model with an eager one
        run_pre, run_fine = torch.compile(pre), torch.compile(fine)
        ref_pre, ref_fine = torch.compile(ref.pretraining_loss), torch.compile(ref.finetuning_loss)
    steps = {
        "cardiofm pretrain": optimiser_step(lambda: run_pre(**inputs).loss, pre.parameters(), autocast, device),
        "reference pretrain": optimiser_step(lambda: ref_pre(batch["signals"]), ref.parameters(), autocast, device),
        "cardiofm finetune": optimiser_step(lambda: run_fine(**inputs, labels=batch["labels"]).loss,
                                            fine.parameters(), autocast, device),
        "reference finetune": optimiser_step(lambda: ref_fine(batch["signals"], batch["labels"]),
                                             ref.parameters(), autocast, device),
    }
    tokens = channels * cfg.patches_per_window
    shape = {"preset": preset, "batch": batch_size, "tokens": tokens, "visible": int(tokens * (1 - cfg.mask_ratio)),
             "width": cfg.hidden_size, "depth": cfg.num_hidden_layers, "heads": cfg.num_attention_heads}
    return steps, shape


def measure(preset: str, batch_size: int, steps: int, device: str, compile_model: bool = False) -> dict:
    """FLOPs, best step time, samples/s and MFU of the four steps, plus cardiofm/reference ratios."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    ceiling = matmul_ceiling(device, dtype)
    cpu_ceiling = cpu_time_ceiling() if device == "cpu" else None
    closures, shape = build_steps(preset, batch_size, device)
    flops = {name: count_flops(fn) for name, fn in closures.items()}   # eager; also the warm-up call
    if compile_model:   # the FLOP counter does not see inside compiled graphs: count eager, time compiled
        closures = build_steps(preset, batch_size, device, compile_model=True)[0]
        for fn in closures.values():
            fn()            # compiles
    times = time_steps_both(closures, device, steps)
    rows = {}
    for name in closures:
        best = min(wall for wall, _ in times[name])
        rows[name] = {"gflop": flops[name] / 1e9, "ms": 1e3 * best, "samples_per_s": batch_size / best,
                      "mfu": flops[name] / best / ceiling}
        if cpu_ceiling:
            best_cpu = min(cpu for _, cpu in times[name])
            rows[name].update(cpu_ms=1e3 * best_cpu, mfu_cpu_time=flops[name] / best_cpu / cpu_ceiling)
    ratios = {kind: rows[f"cardiofm {kind}"]["samples_per_s"] / rows[f"reference {kind}"]["samples_per_s"]
              for kind in ("pretrain", "finetune")}
    return {"device": device, "threads": torch.get_num_threads(), "ceiling_gflops": ceiling / 1e9,
            "cpu_time_ceiling_gflops": cpu_ceiling / 1e9 if cpu_ceiling else None, **shape,
            "compile": compile_model, "steps": rows, "samples_per_s_ratio": ratios}


def print_report(r: dict) -> None:
    """Human-readable table of measure()'s result."""
    print(f"device {r['device']} ({r['threads']} threads), matmul ceiling {r['ceiling_gflops']:.1f} GFLOP/s; "
          f"preset {r['preset']} (D={r['width']}, depth {r['depth']}, {r['heads']} heads), batch {r['batch']}, "
          f"{r['tokens']} tokens ({r['visible']} visible when pretraining), compile {r['compile']}")
    cpu = r.get("cpu_time_ceiling_gflops")
    if cpu:
        print(f"CPU-time matmul ceiling {cpu:.1f} GFLOP/s")
    print(f"{'step':<20} {'GFLOP':>8} {'ms/step':>8} {'samples/s':>10} {'MFU':>6}"
          + (f" {'CPU ms':>8} {'CPU-time MFU':>13}" if cpu else ""))
    for name, row in r["steps"].items():
        extra = f" {row['cpu_ms']:>8.0f} {100 * row['mfu_cpu_time']:>12.1f}%" if cpu else ""
        print(f"{name:<20} {row['gflop']:>8.1f} {row['ms']:>8.0f} {row['samples_per_s']:>10.1f} "
              f"{100 * row['mfu']:>5.1f}%" + extra)
    for kind, ratio in r["samples_per_s_ratio"].items():
        print(f"{kind}: cardiofm / reference samples/s = {ratio:.3f}")


def main() -> None:
    """Measure and print; --json writes the result too."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="timed repeats per step (best kept)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the cardiofm models and the reference (FLOPs still counted eagerly)")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = measure(args.preset, args.batch_size, args.steps, device, args.compile)
    result["loadavg"] = os.getloadavg()[0]
    print_report(result)
    print(f"load average at the end: {result['loadavg']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
