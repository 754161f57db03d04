"""The measurements of gpu_check.sh: bf16 step throughput, MFU, peak memory and data wait on one CUDA GPU.

Each section runs in its own child process under its own timeout (a crash, an OOM or a hang in one still lets the
others print), within one overall budget. Sections: pretraining/finetuning steps of the small and base presets vs the
same-size ViT-MAE reference (bench_step_vs_reference.py), eager and torch.compile; `cardiofm pretrain` on the
synthetic set through the engine (data wait, samples/s), plain and single-GPU DeepSpeed ZeRO-2; the corpus loader's
records/s (bench_corpus_read.py). MFU is against the GPU's bf16 dense peak from PEAK_BF16_TFLOPS (by device name)
and against the matmul ceiling measured in the run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; matched in order on the
# lower-cased device name, so the more specific names come first.
PEAK_BF16_TFLOPS = (
    ("h100 pcie", 756.0), ("h100 nvl", 835.0), ("h200", 989.0), ("h100", 989.0), ("gh200", 989.0),
    ("b200", 2250.0), ("a100", 312.0), ("l40s", 362.0), ("a10g", 125.0), ("a10", 125.0), ("l4", 121.0),
)
BUDGET_S = 450.0      # gpu_check.sh kills everything at 480 s
MIN_SECTION_S = 20.0  # a section with less time left than this is reported as skipped
# (name, timeout s): most important first, so a slow machine still reports the main figures
SECTIONS = (("steps small", 50), ("steps base", 50), ("steps small compile", 100), ("train small", 55),
            ("train base", 55), ("zero2 small", 70), ("steps base compile", 100), ("corpus", 45))


def peak_tflops(device_name: str) -> float | None:
    """bf16 dense peak of the named GPU in TFLOP/s, None when not in the table."""
    name = device_name.lower()
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in name), None)


def steps_section(preset: str, compile_model: bool) -> dict:
    """Steps of cardiofm and the reference, with the CUDA allocator's peak memory over them."""
    import torch

    from bench_step_vs_reference import measure

    torch.cuda.reset_peak_memory_stats()
    batch = {"small": 256, "base": 128}.get(preset, 64)
    result = measure(preset, batch, steps=5, device="cuda", compile_model=compile_model)
    result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    peak = peak_tflops(torch.cuda.get_device_name())
    for row in result["steps"].values():
        row["mfu_vs_peak"] = None if peak is None else row["gflop"] * 1e9 / (row["ms"] / 1e3) / (peak * 1e12)
    return result


def train_section(preset: str, zero2: bool, timeout: float, steps: int = 40, batch: int | None = None,
                  workers: int = 4, windows: int = 2048, precision: str = "bf16") -> dict:
    """`cardiofm pretrain` for `steps` steps on synthetic data: samples/s and data wait after the first log."""
    with tempfile.TemporaryDirectory() as tmp:
        batch = batch or {"small": 128, "base": 64}.get(preset, 32)
        cmd = [sys.executable, "-m", "cardiofm", "pretrain", "--output-dir", tmp, f"model.name={preset}",
               f"train.max_steps={steps}", f"train.batch_size={batch}", "train.log_every=10",
               "train.checkpoint_every=0", "train.eval_every=0", "train.plot_every=0", "train.trackers=[none]",
               f"train.num_workers={workers}", f"data.synthetic_size={windows}", "data.eval_size=8",
               f"train.mixed_precision={precision}"]
        env = dict(os.environ)
        if zero2:
            cmd.append(f"train.deepspeed={ROOT / 'scripts' / 'deepspeed' / 'zero2.json'}")
            # one process without a launcher: DeepSpeed needs the rendezvous variables a launcher would set
            env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                       MASTER_PORT="29613")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"cardiofm pretrain exited {proc.returncode}: {proc.stderr[-1500:]}")
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        rows = [r for r in rows if "perf/samples_per_s" in r][1:]   # the first window holds start-up
        mean = lambda key: sum(r[key] for r in rows) / max(len(rows), 1)  # noqa: E731
        summary = [line for line in proc.stderr.splitlines() if "data wait" in line and "of the loop" in line]
        return {"preset": preset, "zero2": zero2, "batch": batch, "samples_per_s": mean("perf/samples_per_s"),
                "data_wait": mean("perf/data_fraction"), "wall_s": time.perf_counter() - t0,
                "run_summary": summary[-1].split("INFO")[-1].strip() if summary else None}


def corpus_section(timeout: float) -> dict:
    """The corpus reader benchmark's own report (records/s per read path)."""
    proc = subprocess.run([sys.executable, str(HERE / "bench_corpus_read.py"), "--records", "2000", "--repeat", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_corpus_read.py exited {proc.returncode}: {proc.stderr[-1500:]}")
    return {"report": proc.stdout.strip().splitlines()[-12:]}


def run_section(name: str, timeout: float) -> dict:
    """One section in this (child) process."""
    parts = name.split()
    if parts[0] == "steps":
        return steps_section(parts[1], "compile" in parts)
    if parts[0] in ("train", "zero2"):
        return train_section(parts[1], parts[0] == "zero2", timeout - 5)
    return corpus_section(timeout - 5)


def child(name: str, timeout: float) -> dict:
    """Run a section in a child process under `timeout` -> its result or {'error': why}."""
    cmd = [sys.executable, str(Path(__file__)), "--section", name, "--timeout", str(timeout)]
    try:
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    return json.loads(lines[-1])


def describe(name: str, r: dict) -> str:
    """One or a few printed lines for a section result."""
    if "error" in r:
        return f"[{name}] FAILED: {r['error']}"
    if name.startswith("steps"):
        out = [f"[{name}] batch {r['batch']}, {r['tokens']} tokens, peak memory {r['peak_memory_gib']:.1f} GiB, "
               f"matmul ceiling {r['ceiling_gflops'] / 1e3:.0f} TFLOP/s"]
        for step, row in r["steps"].items():
            peak = "n/a" if row["mfu_vs_peak"] is None else f"{100 * row['mfu_vs_peak']:.1f}%"
            out.append(f"    {step:<20} {row['samples_per_s']:>9.0f} samples/s  {row['ms']:>7.1f} ms  "
                       f"MFU {peak} of bf16 peak, {100 * row['mfu']:.1f}% of measured ceiling")
        out.append("    cardiofm / reference samples/s: " + ", ".join(
            f"{k} {v:.3f}" for k, v in r["samples_per_s_ratio"].items()))
        return "\n".join(out)
    if name.startswith(("train", "zero2")):
        return (f"[{name}] batch {r['batch']}: {r['samples_per_s']:.0f} samples/s, data wait "
                f"{100 * r['data_wait']:.1f}% ({r['run_summary']})")
    return f"[{name}]\n    " + "\n    ".join(r["report"])


def main() -> int:
    """Run every section (or one with --section) and print/write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write all results here (default $OUT/gpu_check.json if $OUT)")
    ap.add_argument("--section", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path[:0] = [str(HERE), str(ROOT)]   # the benchmarks beside this file; the package even when not installed
    if args.section:
        print(json.dumps(run_section(args.section, args.timeout)))
        return 0
    import torch

    path = args.json or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not report["cuda"]:
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__}; nothing measured")
        if path:
            Path(path).write_text(json.dumps(report, indent=1))
        return 0
    name = torch.cuda.get_device_name()
    report.update(device=name, peak_bf16_tflops=peak_tflops(name), sections={})
    print(f"gpu_check on {name} (bf16 dense peak {report['peak_bf16_tflops'] or 'not in the table'} TFLOP/s), "
          f"torch {torch.__version__}", flush=True)
    deadline = time.monotonic() + BUDGET_S
    for section, timeout in SECTIONS:
        left = deadline - time.monotonic()
        if left < MIN_SECTION_S:
            result = {"error": "skipped: the 8-minute budget is spent"}
        else:
            result = child(section, min(timeout, left))
        report["sections"][section] = result
        print(describe(section, result), flush=True)
        if path:  # after every section, so a kill still leaves what was measured
            Path(path).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
