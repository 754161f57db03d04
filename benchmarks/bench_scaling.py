"""Data-parallel scaling on CPU: samples/s of `cardiofm pretrain` (tiny, synthetic) with 1 vs 2 processes.

Weak scaling: the per-process batch stays fixed, so 2 processes see twice the samples per step. Prints samples/s,
scaling efficiency = samples/s(2) / (2 x samples/s(1)), and the share of each process's time spent waiting for the
DataLoader vs computing (a high data share means the accelerator is starved: add num_workers or faster storage).
On a shared machine the numbers move with other load: rerun and compare within one invocation.

    .venv/bin/python benchmarks/bench_scaling.py --steps 30 --batch-size 8
    .venv/bin/python benchmarks/bench_scaling.py --processes 1 --corpus runs/corpus/ptbxl   # data wait, real data
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

import cardiofm  # noqa: F401  (torchvision guard first)

ROOT = Path(__file__).resolve().parents[1]


def run_pretrain(out: Path, processes: int, steps: int, batch_size: int, workers: int, port: int,
                 corpus: str | None = None) -> float:
    """One run of `cardiofm pretrain` (synthetic data, or a prepared corpus folder); returns wall seconds."""
    args = ["-m", "cardiofm", "pretrain", "--output-dir", str(out), f"train.max_steps={steps}",
            f"train.batch_size={batch_size}", "train.log_every=5", "train.checkpoint_every=0", "train.eval_every=0",
            "train.plot_every=0", f"train.num_workers={workers}", "data.eval_size=2", "train.trackers=[none]"]
    if corpus:
        args.append(f"data.corpus_dirs=[{corpus}]")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE"))}
    # 2 cores: one thread per process in both runs, so the comparison is about processes, not threads
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        env["ACCELERATE_USE_CPU"] = "true"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({processes} processes):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def steady_metrics(out: Path) -> dict:
    """Mean samples/s, tokens/s and data-wait share over log windows after the first (warm-up excluded)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "perf/samples_per_s" in r][1:]
    if not rows:
        raise SystemExit("too few steps for a steady-state window: raise --steps")
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {"samples_per_s": mean("perf/samples_per_s"), "tokens_per_s": mean("perf/tokens_per_s"),
            "data_share": mean("perf/data_fraction")}


def main() -> None:
    """Run 1 and 2 processes back to back and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8, help="per process")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--corpus", default=None, help="a `cardiofm prepare` folder instead of synthetic data")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to run")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.processes:
            out = Path(tmp) / f"p{n}"
            wall = run_pretrain(out, n, args.steps, args.batch_size, args.num_workers, 29700 + n, args.corpus)
            results[n] = {**steady_metrics(out), "wall_s": wall}
    print(f"tiny preset, {args.corpus or 'synthetic data'}, batch {args.batch_size}/process, {args.steps} steps, "
          f"{args.num_workers} loader workers, CPU ({os.cpu_count()} cores), gloo")
    print(f"{'processes':>9} {'samples/s':>10} {'tokens/s':>10} {'data wait':>9} {'compute':>8} {'wall s':>7}")
    for n, r in results.items():
        print(f"{n:>9} {r['samples_per_s']:>10.1f} {r['tokens_per_s']:>10.0f} {100 * r['data_share']:>8.0f}% "
              f"{100 * (1 - r['data_share']):>7.0f}% {r['wall_s']:>7.1f}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if 1 in results and 2 in results:
        eff = results[2]["samples_per_s"] / (2 * results[1]["samples_per_s"])
        print(f"speed-up 2 vs 1 process: {results[2]['samples_per_s'] / results[1]['samples_per_s']:.2f}x, "
              f"scaling efficiency {100 * eff:.0f}%")


if __name__ == "__main__":
    main()
