"""Reading corpus shards into training batches (12 x 5000 float16 per record): records/s, ratio to the target and
peak RSS when the corpus grows 10x. Target (issue): >= 5,000 records/s with 2 workers and flat peak RSS.

Paths, each in a fresh process (its own peak RSS; CPU seconds of the process and its workers are counted too):
  batches     build_mixture(...).batches(64): whole Arrow batches -> collated tensors, one process
  batches-2t  the same read by 2 background threads (batches(64, threads=2))
  batches-2w  the same through DataLoader(batch_size=None, num_workers=2): worker processes hand each 15 MB batch
              over through shared memory, which costs more CPU than reading it
  samples     build_mixture(...) sample dicts -> collate_samples
  mapped      load_corpus(...).iter(batch_size) memory-mapped numpy batches -> float32 tensor
  reference   build_mixture(..., backend="datasets") per-example pipeline -> collate_samples (the previous path)
All streams use a shuffle buffer of 256 rows. Under contention (a shared machine) wall-clock rates fall below the
per-CPU-second rates; both are printed with the load average.
Usage: python benchmarks/bench_corpus_read.py [--records 2000] [--batch 64] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import cardiofm  # noqa: F401  (torchvision guard first)
import numpy as np

TARGET = 5000.0
PATHS = ("batches", "batches-2t", "batches-2w", "samples", "mapped", "reference")


def build(out: str, n: int) -> None:
    """A corpus folder of n random 12 x 5000 float16 rows written through the real shard writer and plan."""
    from datasets.arrow_writer import ArrowWriter

    from cardiofm.data import TWELVE_LEADS, PreprocessConfig
    from cardiofm.data.corpus.prepare import WRITER_BATCH_ROWS, _atomic_json, merge_reports
    from cardiofm.data.corpus.shards import corpus_features

    cfg = PreprocessConfig(fs=500.0, channels=list(TWELVE_LEADS))
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    per = 1000
    shards = -(-n // per)
    _atomic_json(os.path.join(out, "plan.json"), {"source": "bench", "preprocess": cfg.to_dict(), "num_shards": shards,
                                                  "records_per_shard": per, "num_tasks": n})
    rng = np.random.default_rng(0)
    block = rng.standard_normal((16, 12, 5000)).astype(np.float16)
    for k in range(shards):
        rows = min(per, n - k * per)
        w = ArrowWriter(features=corpus_features(cfg), path=os.path.join(out, "shards", f"shard-{k:05d}.arrow"),
                        writer_batch_size=WRITER_BATCH_ROWS)
        for i in range(rows):
            w.write({"signal": block[i % 16], "channel_mask": [True] * 12, "channels": list(TWELVE_LEADS), "text": "",
                     "labels": [], "vitals": [0.0] * 5, "vitals_mask": [False] * 5, "subject_id": str(i),
                     "source": "bench", "record_id": f"{k}-{i}", "start_s": 0.0, "meta": "{}"})
        w.finalize()
        w.close()
        _atomic_json(os.path.join(out, "shards", f"shard-{k:05d}.json"),
                     {"shard": k, "tasks": rows, "records_ok": rows, "samples": rows, "quarantine": [], "seconds": 0})
    merge_reports(out)


def _iterate(out: str, path: str, batch: int) -> int:
    """Read the whole corpus through one path into collated batches; returns the rows seen."""
    import torch

    from cardiofm.data import build_mixture, collate_samples, load_corpus

    n = 0
    if path == "mapped":
        ds = load_corpus(out).with_format("numpy", columns=["signal", "channel_mask", "vitals", "vitals_mask"])
        for b in ds.iter(batch_size=batch):
            n += torch.from_numpy(b["signal"].astype(np.float32)).shape[0]  # (B, 12, 5000): what collate stacks
    elif path in ("batches", "batches-2t", "batches-2w"):
        threads = 2 if path == "batches-2t" else 0
        batches = build_mixture([out], seed=0, shuffle_buffer=256).batches(batch, drop_last=False, threads=threads)
        if path == "batches-2w":
            batches = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=2)
        for b in batches:
            n += b["signals"].shape[0]
    else:
        buf = []
        backend = "datasets" if path == "reference" else "arrow"
        for ex in build_mixture([out], seed=0, shuffle_buffer=256, backend=backend):
            buf.append(ex)
            if len(buf) == batch:
                n += collate_samples(buf)["signals"].shape[0]
                buf = []
        n += len(buf)
    return n


def measure(out: str, path: str, batch: int) -> dict:
    """records/s (wall and per CPU second, workers included) and peak RSS (MiB) of this process and its workers."""
    import torch

    import datasets  # noqa: F401  imported before the clock starts: a one-off cost, not a reading rate

    import cardiofm.data.corpus.stream  # noqa: F401

    torch.set_num_threads(1)  # as in a DataLoader worker; the machine's cores are shared
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    n = _iterate(out, path, batch)
    dt = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime - c0.ru_utime - c0.ru_stime + kids.ru_utime + kids.ru_stime
    return {"records": n, "records_per_s": n / dt, "records_per_cpu_s": n / max(cpu, 1e-9),
            "peak_rss_mib": me.ru_maxrss / 1024, "workers_peak_rss_mib": kids.ru_maxrss / 1024}


def _child(out: str, path: str, batch: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--batch", str(batch), "--child", out, path],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build 1x and 10x corpora, measure each path in child processes (best of --repeat), print ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.batch)))
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; rows of 12 x 5000 "
          f"float16; batch {args.batch}; best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for scale in (1, 10):
            out = os.path.join(tmp, f"x{scale}")
            build(out, args.records * scale)
            for path in args.paths:
                if path == "reference" and scale == 10:
                    continue  # the per-example reference is only timed at 1x (it is the slow one)
                runs = [_child(out, path, args.batch) for _ in range(args.repeat)]
                m = res[(path, scale)] = max(runs, key=lambda r: r["records_per_s"])
                m["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
                m["workers_peak_rss_mib"] = max(r["workers_peak_rss_mib"] for r in runs)
                workers = f", workers {m['workers_peak_rss_mib']:.0f}" if path == "batches-2w" else ""
                print(f"{path:10s} x{scale:<2d} ({m['records']:6d} rows): {m['records_per_s']:7.0f} records/s "
                      f"(ratio to {TARGET:.0f}: {m['records_per_s'] / TARGET:.2f}); "
                      f"{m['records_per_cpu_s']:7.0f} records per CPU-s; peak RSS {m['peak_rss_mib']:.0f} MiB{workers}",
                      flush=True)
        ref = res.get(("reference", 1))
        for path in args.paths:
            if ref and path != "reference":
                wall = res[(path, 1)]['records_per_s'] / ref['records_per_s']
                print(f"{path}: speed-up vs reference at x1 = {wall:.1f}x "
                      f"wall, {res[(path, 1)]['records_per_cpu_s'] / ref['records_per_cpu_s']:.1f}x per CPU-s")
            if path != "reference":
                rss = [max(res[(path, k)]["peak_rss_mib"], res[(path, k)]["workers_peak_rss_mib"]) for k in (1, 10)]
                print(f"{path}: peak RSS x10 / x1 corpus = {rss[1]:.0f} / {rss[0]:.0f} MiB = {rss[1] / rss[0]:.2f} "
                      f"(target ~1.0)")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
