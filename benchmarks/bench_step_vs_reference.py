"""Pretraining and finetuning step of a cardiofm preset vs a same-size plain ViT-MAE (timm blocks), in one run.

Same width, depth, heads, FFN, decoder size, visible tokens and batch on both sides; the reference
(vit_mae_reference.py) has no channel/time embeddings, rotary attention, missing-channel handling or extra losses, so
the samples/s ratio shows what those cost. MFU = FLOPs counted on the real step (torch.utils.flop_counter) / step time
/ the matmul ceiling measured here (fp32 on CPU, bf16 autocast on CUDA). Steps are interleaved and the best of
`--steps` repeats is kept, so load from other programs on a shared machine hits both sides alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_step_vs_reference.py --preset small --batch-size 32 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from bench_model_mfu import autocast_for, count_flops, matmul_ceiling, time_steps
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
    run_pre, run_fine = pre, fine
    if compile_model:
        run_pre, run_fine = torch.compile(pre), torch.compile(fine)
    steps = {
        "cardiofm pretrain": optimiser_step(lambda: run_pre(**inputs).loss, pre.parameters(), autocast, device),
        "reference pretrain": optimiser_step(lambda: ref.pretraining_loss(batch["signals"]), ref.parameters(),
                                             autocast, device),
        "cardiofm finetune": optimiser_step(lambda: run_fine(**inputs, labels=batch["labels"]).loss,
                                            fine.parameters(), autocast, device),
        "reference finetune": optimiser_step(lambda: ref.finetuning_loss(batch["signals"], batch["labels"]),
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
    closures, shape = build_steps(preset, batch_size, device)
    flops = {name: count_flops(fn) for name, fn in closures.items()}   # eager; also the warm-up call
    if compile_model:   # the FLOP counter does not see inside compiled graphs: count eager, time compiled
        closures = build_steps(preset, batch_size, device, compile_model=True)[0]
        for fn in closures.values():
            fn()            # compiles
    times = time_steps(closures, device, steps)
    rows = {}
    for name in closures:
        best = min(times[name])
        rows[name] = {"gflop": flops[name] / 1e9, "ms": 1e3 * best, "samples_per_s": batch_size / best,
                      "mfu": flops[name] / best / ceiling}
    ratios = {kind: rows[f"cardiofm {kind}"]["samples_per_s"] / rows[f"reference {kind}"]["samples_per_s"]
              for kind in ("pretrain", "finetune")}
    return {"device": device, "threads": torch.get_num_threads(), "ceiling_gflops": ceiling / 1e9, **shape,
            "compile": compile_model, "steps": rows, "samples_per_s_ratio": ratios}


def print_report(r: dict) -> None:
    """Human-readable table of measure()'s result."""
    print(f"device {r['device']} ({r['threads']} threads), matmul ceiling {r['ceiling_gflops']:.1f} GFLOP/s; "
          f"preset {r['preset']} (D={r['width']}, depth {r['depth']}, {r['heads']} heads), batch {r['batch']}, "
          f"{r['tokens']} tokens ({r['visible']} visible when pretraining), compile {r['compile']}")
    print(f"{'step':<20} {'GFLOP':>8} {'ms/step':>8} {'samples/s':>10} {'MFU':>6}")
    for name, row in r["steps"].items():
        print(f"{name:<20} {row['gflop']:>8.1f} {row['ms']:>8.0f} {row['samples_per_s']:>10.1f} "
              f"{100 * row['mfu']:>5.1f}%")
    for kind, ratio in r["samples_per_s_ratio"].items():
        print(f"{kind}: cardiofm / reference samples/s = {ratio:.3f}")


def main() -> None:
    """Measure and print; --json writes the result too."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="timed repeats per step (best kept)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the cardiofm models")
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
