"""Reading corpus shards into training batches (12 x 5000 float16 per record): records/s and peak RSS when the
corpus grows 10x. Target (issue): >= 5,000 records/s and flat peak RSS.

Paths measured: `load_corpus(...).iter(batch_size)` (memory-mapped, numpy format) -> collate_samples, and the
streaming `build_mixture` (shuffle buffer 256) -> collate_samples. Each measurement runs in a fresh process so its
peak RSS (ru_maxrss) is its own.
Usage: python benchmarks/bench_corpus_read.py [--records 2000] [--batch 64]
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


def build(out: str, n: int) -> None:
    """A corpus folder of n random 12 x 5000 float16 rows written through the real shard writer and plan."""
    from datasets.arrow_writer import ArrowWriter

    from cardiofm.data import TWELVE_LEADS, PreprocessConfig
    from cardiofm.data.corpus import WRITER_BATCH_ROWS, _atomic_json, corpus_features, merge_reports

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


def measure(out: str, path: str, batch: int) -> dict:
    """Iterate the whole corpus into collated batches; returns records/s and peak RSS (MiB)."""
    from cardiofm.data import build_mixture, collate_samples, load_corpus

    n, t0 = 0, time.perf_counter()
    if path == "mapped":
        ds = load_corpus(out).with_format("numpy", columns=["signal", "channel_mask", "vitals", "vitals_mask"])
        for b in ds.iter(batch_size=batch):
            import torch
            sig = torch.from_numpy(b["signal"].astype(np.float32))  # (B, 12, 5000): what collate stacks
            n += sig.shape[0]
    else:
        buf = []
        for ex in build_mixture([out], seed=0, shuffle_buffer=256):
            ex["channels"] = list(ex["channels"])
            buf.append(ex)
            if len(buf) == batch:
                n += collate_samples(buf)["signals"].shape[0]
                buf = []
    dt = time.perf_counter() - t0
    return {"records_per_s": n / dt, "records": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    """Build 1x and 10x corpora, measure each path in a child process, print ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.batch)))
        return
    print(f"machine: {os.cpu_count()} cores; rows of 12 x 5000 float16; batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        res = {}
        for scale in (1, 10):
            out = os.path.join(tmp, f"x{scale}")
            build(out, args.records * scale)
            for path in ("mapped", "stream"):
                r = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--child", out, path],
                                   capture_output=True, text=True, check=True)
                res[(path, scale)] = json.loads(r.stdout.strip().splitlines()[-1])
                m = res[(path, scale)]
                print(f"{path:6s} corpus x{scale:<2d} ({m['records']:6d} rows): {m['records_per_s']:8.0f} records/s "
                      f"(ratio to {TARGET:.0f}: {m['records_per_s'] / TARGET:.2f}), peak RSS {m['peak_rss_mib']:.0f} MiB")
        for path in ("mapped", "stream"):
            print(f"{path}: peak RSS ratio x10 / x1 corpus = "
                  f"{res[(path, 10)]['peak_rss_mib'] / res[(path, 1)]['peak_rss_mib']:.2f} (target ~1.0)")


if __name__ == "__main__":
    main()
