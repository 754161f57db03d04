"""STAR throughput (R-peak detection included) on real 12-lead 10 s 500 Hz records, side by side with the reference
path: neurokit2 kalidas2017 detection + per-beat scipy FFT resampling to equal segment lengths (the published
implementation's approach, at the correct sampling rate). Also shows what each does to R-R variability.

Speed is CPU seconds of this process on one thread (records/s per core), robust to a shared machine; wall-clock
records/s are printed beside it.

    OMP_NUM_THREADS=1 python benchmarks/bench_star.py [--repeats 5] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")     # per-core figures: no BLAS/OpenMP threads

import numpy as np  # noqa: E402

import cardiofm  # noqa: E402,F401  (torchvision guard first)
from cardiofm.data import STAR, detect_rpeaks  # noqa: E402
from cardiofm.data.augment import EqualSegmentResample  # noqa: E402


def load_cinc(root: Path) -> list[np.ndarray]:
    """The CinC 2021 sample: (12, 5000) float32 mV records at 500 Hz."""
    import wfdb

    return [wfdb.rdrecord(str(h.with_suffix(""))).p_signal.T.astype(np.float32)
            for h in sorted((root / "torch_ecg_sample" / "cinc2021").glob("*.hea"))]


def kalidas(x: np.ndarray, fs: float) -> np.ndarray:
    """Reference detection: neurokit2 kalidas2017 on lead II (the reference path is single-lead)."""
    return detect_rpeaks(x[1], fs, method="neurokit2:kalidas2017")


def throughput(fn, records, fs, repeats) -> tuple[float, float]:
    """(records per CPU second, records per wall second) of fn(x, fs) over records x repeats."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for x in records:
            fn(x, fs)
    n = repeats * len(records)
    return n / (time.process_time() - c0), n / (time.perf_counter() - w0)


def rr_cv(records, fn, fs) -> float:
    """Median over records of |CV(R-R) after - CV(R-R) before| (0 = variability untouched)."""
    out = []
    for x in records:
        r0 = detect_rpeaks(x, fs)
        r1 = detect_rpeaks(fn(x, fs), fs)
        if len(r0) > 3 and len(r1) > 3:
            cv = lambda r: np.std(np.diff(r)) / np.mean(np.diff(r))  # noqa: E731
            out.append(abs(cv(r1) - cv(r0)))
    return float(np.median(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    records, fs = load_cinc(Path(args.data)), 500.0
    star = STAR(p=1.0, seed=0)
    cached = {id(x): detect_rpeaks(x, fs) for x in records}   # e.g. R-peaks stored with the corpus
    reference = EqualSegmentResample(p=1.0, seed=0, detector=kalidas)
    rows = [("STAR incl. detection (cardiofm)", lambda x, f: star(x, f)),
            ("detect_rpeaks only (12 leads)", detect_rpeaks),
            ("STAR warp only (R-peaks given)", lambda x, f: star(x, f, rpeaks=cached[id(x)])),
            ("reference: kalidas2017 + per-beat scipy resample", reference)]
    print(f"{len(records)} records, 12 leads x 10 s x 500 Hz, {args.repeats} repeats, 1 thread")
    print(f"{'path':52s} {'rec/s per core (CPU)':>21s} {'rec/s wall':>11s} {'vs reference':>13s}")
    results = {name: throughput(fn, records, fs, args.repeats) for name, fn in rows}
    ref_cpu = results["reference: kalidas2017 + per-beat scipy resample"][0]
    for name, (cpu, wall) in results.items():
        print(f"{name:52s} {cpu:21.0f} {wall:11.0f} {cpu / ref_cpu:12.1f}x")
    print(f"STAR >= 1000 records/s per core incl. detection: "
          f"{'yes' if results['STAR incl. detection (cardiofm)'][0] >= 1000 else 'NO'}")
    print(f"median |change of R-R coefficient of variation|: STAR {rr_cv(records, STAR(p=1.0, seed=1), fs):.4f}, "
          f"reference equal-segment {rr_cv(records, EqualSegmentResample(p=1.0, seed=1, detector=kalidas), fs):.4f}")


if __name__ == "__main__":
    main()
