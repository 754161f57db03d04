"""Step time and peak memory vs window length (2.5 s to 60 s of 12-lead ECG + PPG), with and without gradient
checkpointing, plus inference on the longest window; the attention kernel that ran is reported.

Each (window, checkpointing) point runs in a fresh process, so its peak memory is its own: on CUDA the allocator's
peak above the model's weights, on CPU the process's peak resident set above what it held before the first step.
`saved activations` counts the bytes autograd keeps for backward (what checkpointing trades for recompute). The
attention FLOP share (torch.utils.flop_counter) says where the quadratic term starts to dominate.

    OMP_NUM_THREADS=1 python benchmarks/bench_long_windows.py --threads 1 \
        --plot docs/figures/throughput_long_windows.png
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

WINDOWS_S = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0)
ATTENTION_OPS = ("scaled_dot_product", "_flash_attention", "_efficient_attention", "_cudnn_attention")


def build(preset: str, window_s: float, batch_size: int, device: str):
    """(pretraining model, inference model, batch) of the preset re-cut for `window_s` second windows."""
    from cardiofm.models import CardioFMModel, create_model, preset_config

    from bench_step_vs_reference import make_batch

    pre = dict(preset_config(preset).preprocess, window_s=window_s, stride_s=window_s)
    torch.manual_seed(0)
    model = create_model(preset, preprocess=pre).to(device)
    encoder = CardioFMModel(model.config).to(device).eval()
    batch = make_batch(model.config, batch_size, device)
    return model, encoder, {k: batch[k] for k in ("signals", "channel_ids")}


class SavedBytes:
    """Bytes of the distinct tensors autograd saves for backward while active (a saved_tensors_hooks context)."""

    def __init__(self):
        self.seen, self.bytes = set(), 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.device.type)
        if key not in self.seen:
            self.seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def attention_kernels(fn) -> list[str]:
    """Names of the attention operators one call of fn runs (e.g. the CPU flash kernel or the math fallback)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sorted({e.key for e in prof.key_averages() if any(op in e.key for op in ATTENTION_OPS)})


def attention_flop_share(fn) -> float:
    """Fraction of counted FLOPs spent in scaled-dot-product attention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    per_op = counter.get_flop_counts().get("Global", {})
    total = sum(per_op.values()) or 1
    return sum(v for op, v in per_op.items() if "attention" in str(op)) / total


def peak_bytes(device: str) -> int:
    """Peak memory so far: CUDA allocator peak, else the process's peak resident set (Linux ru_maxrss is KiB)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_point(preset: str, window_s: float, batch_size: int, checkpointing: bool, steps: int) -> dict:
    """Measure one (window, checkpointing) point in this process."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, encoder, batch = build(preset, window_s, batch_size, device)
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))

    def step(saved: SavedBytes | None = None):
        with autocast():
            if saved is None:
                loss = model(**batch).loss
            else:
                with saved:
                    loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad(), autocast():
            encoder(**batch)

    base = peak_bytes(device)
    saved = SavedBytes()
    step(saved)                                     # warm-up, counts saved activations
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    train_peak = peak_bytes(device) - base
    t0 = time.perf_counter()
    infer()
    infer_s = time.perf_counter() - t0
    cfg = model.config
    tokens = len(cfg.preprocess["channels"]) * cfg.patches_per_window
    return {"window_s": window_s, "checkpointing": checkpointing, "tokens": tokens,
            "visible": int(tokens * (1 - cfg.mask_ratio)), "step_s": min(times),
            "train_peak_mib": train_peak / 2 ** 20, "saved_activations_mib": saved.bytes / 2 ** 20,
            "infer_s": infer_s, "attention_kernels": attention_kernels(infer) if not checkpointing else [],
            "attention_flop_share": attention_flop_share(step) if not checkpointing else None, "device": device}


def run_all(args) -> list[dict]:
    """Every point in its own child process (fresh peak-memory counters)."""
    rows = []
    for window in args.windows:
        for ckpt in (False, True):
            cmd = [sys.executable, __file__, "--one", str(window), "--preset", args.preset, "--batch-size",
                   str(args.batch_size), "--steps", str(args.steps), "--threads", str(args.threads)]
            if ckpt:
                cmd.append("--checkpointing")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
            if proc.returncode != 0:
                raise SystemExit(f"window {window} s, checkpointing {ckpt} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{window:>6.1f} s ckpt {int(ckpt)}: {r['step_s']:.2f} s/step, peak {r['train_peak_mib']:.0f} MiB, "
                  f"saved {r['saved_activations_mib']:.0f} MiB", flush=True)
    return rows


def plot(rows: list[dict], path: str, title: str) -> None:
    """Step time and peak memory vs window length, with and without checkpointing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ckpt, style in ((False, "o-"), (True, "s--")):
        pts = [r for r in rows if r["checkpointing"] == ckpt]
        label = "gradient checkpointing" if ckpt else "plain"
        axes[0].plot([r["window_s"] for r in pts], [r["step_s"] for r in pts], style, label=label)
        axes[1].plot([r["window_s"] for r in pts], [r["saved_activations_mib"] for r in pts], style, label=label)
    plain = [r for r in rows if not r["checkpointing"]]
    scale = plain[0]["step_s"] / plain[0]["window_s"]
    axes[0].plot([r["window_s"] for r in plain], [scale * r["window_s"] for r in plain], ":", color="grey",
                 label="linear from the shortest")
    axes[0].set(xlabel="window (s)", ylabel="pretraining step (s)", title=title)
    axes[1].set(xlabel="window (s)", ylabel="saved activations (MiB)", title="activation memory")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    """Sweep window lengths (or measure one point with --one) and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per point after one warm-up (best kept)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--windows", type=float, nargs="+", default=list(WINDOWS_S))
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None, help="PNG path for the step-time / memory figure")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one is not None:
        print(json.dumps(one_point(args.preset, args.one, args.batch_size, args.checkpointing, args.steps)))
        return
    rows = run_all(args)
    print(f"\n{args.preset} preset, batch {args.batch_size}, {rows[0]['device']}, threads {args.threads or 'default'}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'window s':>8} {'tokens':>6} {'step s':>7} {'ckpt s':>7} {'s/step per s':>12} {'peak MiB':>8} "
          f"{'ckpt MiB':>8} {'saved MiB':>9} {'ckpt saved':>10} {'attn FLOP':>9} {'infer s':>7}")
    for plain, ck in zip(rows[::2], rows[1::2]):
        print(f"{plain['window_s']:>8.1f} {plain['tokens']:>6} {plain['step_s']:>7.2f} {ck['step_s']:>7.2f} "
              f"{plain['step_s'] / plain['window_s']:>12.3f} {plain['train_peak_mib']:>8.0f} "
              f"{ck['train_peak_mib']:>8.0f} {plain['saved_activations_mib']:>9.0f} "
              f"{ck['saved_activations_mib']:>10.0f} {100 * plain['attention_flop_share']:>8.1f}% "
              f"{plain['infer_s']:>7.2f}")
    print("attention kernels:", sorted({k for r in rows for k in r["attention_kernels"]}))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot, f"{args.preset}, batch {args.batch_size}, {rows[0]['device']}")


if __name__ == "__main__":
    main()
