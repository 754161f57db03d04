"""Start-up time of the CLI: `cardiofm --help`, `cardiofm pretrain --help`, `cardiofm --version` and `import cardiofm`,
beside the reference measured in the same run: the eager model layer (`import cardiofm.models` + its classes +
transformers' AutoModel), what every start paid before the CLI became lazy, and a bare `python -c pass`.

    .venv/bin/python benchmarks/bench_cli_start.py --repeats 5

Prints the median wall time of each command (fresh interpreter per run) and the ratio to the eager reference.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "cardiofm --help": [sys.executable, "-m", "cardiofm", "--help"],
    "cardiofm pretrain --help": [sys.executable, "-m", "cardiofm", "pretrain", "--help"],
    "cardiofm --version": [sys.executable, "-m", "cardiofm", "--version"],
    "import cardiofm": [sys.executable, "-c", "import cardiofm"],
    "reference: eager model layer": [sys.executable, "-c", "import cardiofm; from cardiofm.models import "
                                     "CardioFMForDiagnosis; from transformers import AutoModel"],
    "reference: python -c pass": [sys.executable, "-c", "pass"],
}


def median_seconds(cmd: list[str], repeats: int) -> float:
    """Median wall time of `cmd` over `repeats` fresh runs, seconds (one warm-up run first: file cache)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd, capture_output=True, env=env, check=True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Measure every command and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    results = {name: median_seconds(cmd, args.repeats) for name, cmd in COMMANDS.items()}
    eager = results["reference: eager model layer"]
    print(f"load average (1/5/15 min): {' '.join(load)}; median of {args.repeats} runs")
    print(f"{'command':<32} {'seconds':>8} {'/ eager':>8}")
    for name, seconds in results.items():
        print(f"{name:<32} {seconds:8.3f} {seconds / eager:8.2f}")


if __name__ == "__main__":
    main()
