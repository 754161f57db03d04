"""`cardiofm prepare` throughput on PTB-XL-like records (12 leads, 500 Hz, 10 s, WFDB format 16), by num_proc.

Target (issue): >= 200 records/s per core, scaling with num_proc. Prints records/s, per-core rate and ratios.
Usage: python benchmarks/bench_prepare.py [--records 400] [--procs 1 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import cardiofm  # noqa: F401  (torchvision guard first)
import numpy as np

TARGET_PER_CORE = 200.0


def write_records(folder: str, n: int) -> None:
    """n WFDB records shaped like PTB-XL records500 (12 x 5000 int16 at 1000 adu/mV)."""
    import wfdb

    from cardiofm.data import TWELVE_LEADS

    rng = np.random.default_rng(0)
    t = np.arange(5000) / 500.0
    base = np.stack([np.sin(2 * np.pi * 1.1 * t + k) for k in range(12)])
    first = "rec00000"
    wfdb.wrsamp(first, fs=500, units=["mV"] * 12, sig_name=list(TWELVE_LEADS),
                d_signal=(1000 * (base + 0.05 * rng.standard_normal(base.shape))).T.astype(np.int16),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=folder)
    with open(os.path.join(folder, first + ".hea")) as f:
        header = f.read()
    for i in range(1, n):  # copies under new names: reading cost is what matters, not content
        name = f"rec{i:05d}"
        shutil.copy(os.path.join(folder, first + ".dat"), os.path.join(folder, name + ".dat"))
        with open(os.path.join(folder, name + ".hea"), "w") as f:
            f.write(header.replace(first, name))


def main() -> None:
    """Prepare the same folder with each num_proc and print the rates."""
    from cardiofm.data.corpus import prepare_corpus
    from cardiofm.data.sources import SourceOptions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        write_records(src, args.records)
        base_rate = None
        print(f"machine: {cores} cores; {args.records} records of 12 x 5000 samples (500 Hz, 10 s)")
        for p in args.procs:
            out = os.path.join(tmp, f"out{p}")
            t0 = time.perf_counter()
            c = prepare_corpus("wfdb", SourceOptions(root=src, require_text=False), out, num_proc=p,
                               records_per_shard=max(10, args.records // (4 * p)), progress=False)
            dt = time.perf_counter() - t0
            assert c["summary"]["records_ok"] == args.records
            rate = args.records / dt
            base_rate = base_rate or rate
            print(f"num_proc={p}: {rate:7.1f} records/s, {rate / p:6.1f} per process "
                  f"(ratio to {TARGET_PER_CORE:.0f}/core target: {rate / p / TARGET_PER_CORE:.2f}); "
                  f"speed-up vs num_proc={args.procs[0]}: {rate / base_rate:.2f}x")


if __name__ == "__main__":
    main()
