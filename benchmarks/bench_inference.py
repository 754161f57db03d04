"""Inference throughput of `cardiofm predict` over a folder of real records against the bare forward pass, in one run.

For each preset (random weights: speed does not depend on them), the same PTB-XL 10 s records at 100 Hz are scored
three ways: (1) the predict path (read WFDB -> preprocess -> windows batched across records -> forward -> per-record
aggregation and CSV rows, reading in a background thread), (2) the bare forward pass on the already collated
batches of the same windows (the reference), (3) one record at a time through `predict_proba`. Python overhead =
(1) / (2) - 1; target < 15 %.

    OMP_NUM_THREADS=1 python benchmarks/bench_inference.py --records 128 --presets tiny small
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def diagnosis_model(preset: str):
    """A randomly initialised diagnosis model of a preset with the five PTB-XL superclasses."""
    from cardiofm.models import CardioFMForDiagnosis, label_config, preset_config

    return CardioFMForDiagnosis(preset_config(preset, **label_config(["NORM", "MI", "STTC", "CD", "HYP"]))).eval()


def measure(preset: str, items, batch_size: int, repeats: int) -> dict:
    """records/s of the predict path, the bare forward and per-record predict_proba (best of `repeats`)."""
    import torch

    from cardiofm.data.collate import collate_samples
    from cardiofm.finetune.evaluation import batch_outputs
    from cardiofm.finetune.inputs import InputOptions, read_input, record_windows
    from cardiofm.finetune.predict import PredictOptions, predict_records

    model = diagnosis_model(preset)
    pre = model.config.preprocess_config
    opts = PredictOptions(overlap=0.0, batch_size=batch_size)
    windows = [w for it in items for w in record_windows(read_input(it, InputOptions()), pre)]
    batches = [collate_samples(windows[i:i + batch_size], vocab=tuple(model.config.channel_vocab),
                               beat_window=model.config.beat_window) for i in range(0, len(windows), batch_size)]
    records = [read_input(it, InputOptions()) for it in items]

    def pipeline():
        rows = predict_records(model, "diagnosis", items, InputOptions(), opts)
        assert len(rows) == len(items) and all(r["status"] == "ok" for r in rows)

    def bare():
        with torch.no_grad():
            for b in batches:
                batch_outputs(model, b)

    def one_by_one():
        for rec in records:
            model.predict_proba(rec.signal, rec.fs, rec.channels)

    out = {"preset": preset, "records": len(items), "windows": len(windows),
           "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    bare()  # warm-up: allocator, filter design caches
    for name, fn in (("predict", pipeline), ("bare_forward", bare), ("one_record_at_a_time", one_by_one)):
        best = min(_time(fn) for _ in range(repeats))
        out[f"{name}_s"] = round(best, 3)
        out[f"{name}_records_per_s"] = round(len(items) / best, 1)
    out["python_overhead"] = round(out["predict_s"] / out["bare_forward_s"] - 1, 3)
    return out


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    """Print one JSON line per preset."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=128, help="PTB-XL 10 s records (100 Hz) to score")
    p.add_argument("--presets", nargs="+", default=["tiny", "small"])
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per way (best is reported)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args(argv)
    import torch
    import transformers

    from cardiofm.finetune.inputs import discover_inputs

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    folder = DATA / "ptbxl" / "records100"
    if not folder.is_dir():
        print(f"shared data not found at {folder} (set CARDIOFM_SHARED_DATA)")
        return 2
    items = discover_inputs(str(folder))[:args.records]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    for preset in args.presets:
        print(json.dumps({**measure(preset, items, args.batch_size, args.repeats), "threads": args.threads,
                          "loadavg": " ".join(load)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
