"""R-peak detection: cardiofm's detector vs neurokit2's detectors on the same real records, accuracy and speed.

Accuracy: sensitivity / PPV against expert annotations (MIT-BIH 100, 101, 106, 119: beat symbols only, 30 min at
360 Hz) and CPSC 2019 reference R-peaks (50 clips, 10 s at 500 Hz; first/last 0.5 s ignored as in the challenge),
+-150 ms one-to-one matching. neurokit2 detectors see one lead (they are single-lead); cardiofm runs both on that
same lead and on all leads. Speed: CPU seconds of this process (fair under a shared machine) per record.

    python benchmarks/bench_rpeaks.py [--methods neurokit,pantompkins1985,...] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import cardiofm  # noqa: F401  (torchvision guard first)
from cardiofm.data.rpeaks import detect_rpeaks, match_rpeaks

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
NK_METHODS = "neurokit,pantompkins1985,hamilton2002,elgendi2010,kalidas2017,rodrigues2021,manikandan2012"


def load_sets(root: Path) -> dict[str, list[tuple[str, np.ndarray, float, np.ndarray, int]]]:
    """{set: [(name, signal (leads, samples), fs, reference peaks, edge samples ignored)]}."""
    import wfdb
    from scipy.io import loadmat

    mit = []
    for name in ("100", "101", "106", "119"):
        rec = wfdb.rdrecord(str(root / "mitdb" / name))
        ann = wfdb.rdann(str(root / "mitdb" / name), "atr")
        ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
        mit.append((name, rec.p_signal.T, float(rec.fs), ref, 0))
    cpsc = []
    base = root / "torch_ecg_sample" / "cpsc2019"
    for f in sorted((base / "data").glob("data_*.mat")):
        ref = loadmat(base / "ref" / f.name.replace("data_", "R_"))["R_peak"].ravel().astype(int)
        cpsc.append((f.stem, loadmat(f)["ecg"].ravel()[None], 500.0, ref, 250))
    return {"MIT-BIH": mit, "CPSC2019": cpsc}


def evaluate(records, detector) -> tuple[int, int, int, float]:
    """(TP, FN, FP, CPU seconds) of `detector(signal, fs)` over records."""
    tp = fn = fp = 0
    cpu = 0.0
    for _, x, fs, ref, edge in records:
        t0 = time.process_time()
        det = detector(x, fs)
        cpu += time.process_time() - t0
        n = x.shape[-1]
        if edge:
            ref, det = ref[(ref >= edge) & (ref <= n - edge)], det[(det >= edge) & (det <= n - edge)]
        a, b, c = match_rpeaks(ref, det, int(0.15 * fs))
        tp, fn, fp = tp + a, fn + b, fp + c
    return tp, fn, fp, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--methods", default=NK_METHODS, help="neurokit2 detectors to compare")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sets = load_sets(Path(args.data))
    detectors = {"cardiofm (all leads)": lambda x, fs: detect_rpeaks(x, fs),
                 "cardiofm (first lead)": lambda x, fs: detect_rpeaks(x[0], fs)}
    for m in args.methods.split(","):
        detectors[f"neurokit2 {m}"] = (lambda name: lambda x, fs: detect_rpeaks(x[0], fs,
                                                                              method=f"neurokit2:{name}"))(m)
    print(f"{'detector':28s} {'set':9s} {'beats':>6s} {'FN':>5s} {'FP':>5s} {'Se %':>7s} {'PPV %':>7s} "
          f"{'ms/rec CPU':>10s} {'CPU vs ours':>11s}")
    ours_cpu = {}
    for name, det in detectors.items():
        for set_name, records in sets.items():
            try:
                tp, fn, fp, cpu = evaluate(records, det)
            except Exception as err:  # a neurokit2 method failing on a record is a result too
                print(f"{name:28s} {set_name:9s} failed: {type(err).__name__}: {str(err)[:60]}")
                continue
            ours_cpu.setdefault(set_name, cpu)
            print(f"{name:28s} {set_name:9s} {tp + fn:6d} {fn:5d} {fp:5d} {100 * tp / max(tp + fn, 1):7.2f} "
                  f"{100 * tp / max(tp + fp, 1):7.2f} {1000 * cpu / len(records):10.2f} "
                  f"{cpu / max(ours_cpu[set_name], 1e-9):10.1f}x")


if __name__ == "__main__":
    main()
