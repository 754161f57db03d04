"""R-peak detection: cardiofm's detector vs neurokit2's detectors on the same real records, accuracy and speed.

Accuracy: sensitivity / PPV against expert annotations (MIT-BIH 100, 101, 106, 119: beat symbols only, 30 min at
360 Hz) and CPSC 2019 reference R-peaks (50 clips, 10 s at 500 Hz; first/last 0.5 s ignored as in the challenge),
one-to-one matching at +-150 ms (EC57) and +-75 ms (CPSC 2019). neurokit2 detectors see one lead (they are
single-lead); cardiofm runs both on that same lead and on all leads. Speed: CPU seconds of this process (fair under a
shared machine) per record.

The default detector is rule-based (no fitted parameter, so its scores are the same under any protocol; its
thresholds were set by hand on these records). 'cardiofm:scored' adds a learned stage; its packaged weights were
fitted on all these records (optimistic), so --protocol loro refits it per fold and scores only held-out data:
each MIT-BIH record with a scorer fitted on the other three records + all CPSC clips; each fifth of the CPSC clips
(clip i in fold i % 5) with one fitted on the other clips + all MIT-BIH records. --protocol packaged skips the refits.
--write-scorer fits on every record and writes the packaged weights.

    python benchmarks/bench_rpeaks.py [--protocol loro|packaged] [--methods neurokit,...] [--write-scorer]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import cardiofm  # noqa: F401  (torchvision guard first)
from cardiofm.data import rpeaks_refine
from cardiofm.data.rpeaks import detect_rpeaks, match_rpeaks

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
NK_METHODS = "neurokit,pantompkins1985,hamilton2002,elgendi2010,kalidas2017,rodrigues2021,manikandan2012"
TOLERANCES_S = (0.15, 0.075)
CPSC_FOLDS = 5


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


def evaluate(records, detectors) -> tuple[np.ndarray, float]:
    """(per-record counts (records, tolerances, [TP, FN, FP]), CPU seconds); detectors[i] scores records[i]."""
    counts = np.zeros((len(records), len(TOLERANCES_S), 3), dtype=np.int64)
    cpu = 0.0
    for i, ((_, x, fs, ref, edge), detector) in enumerate(zip(records, detectors)):
        t0 = time.process_time()
        det = detector(x, fs)
        cpu += time.process_time() - t0
        n = x.shape[-1]
        if edge:
            ref, det = ref[(ref >= edge) & (ref <= n - edge)], det[(det >= edge) & (det <= n - edge)]
        counts[i] = [match_rpeaks(ref, det, int(tol * fs)) for tol in TOLERANCES_S]
    return counts, cpu


def fold_scorers(sets) -> dict[str, list]:
    """{set: [scorer fitted without record i, for each record i]} (features computed once per record)."""
    table = {k: [rpeaks_refine.labelled_candidates(x, fs, ref, edge) for _, x, fs, ref, edge in v]
             for k, v in sets.items()}
    mit, cpsc = table["MIT-BIH"], table["CPSC2019"]
    out = {"MIT-BIH": [rpeaks_refine.fit_scorer({"MIT-BIH": mit[:i] + mit[i + 1:], "CPSC2019": cpsc})
                       for i in range(len(mit))]}
    fold = np.arange(len(cpsc)) % CPSC_FOLDS
    per_fold = [rpeaks_refine.fit_scorer({"MIT-BIH": mit, "CPSC2019": [c for c, f in zip(cpsc, fold) if f != k]})
                for k in range(CPSC_FOLDS)]
    out["CPSC2019"] = [per_fold[f] for f in fold]
    return out


def row(name: str, set_name: str, c: np.ndarray, extra: str = "") -> str:
    """One printed line: beats, FN, FP, Se, PPV, F1 at each tolerance."""
    cells = []
    for (tp, fn, fp), tol in zip(c, TOLERANCES_S):
        se, ppv = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        cells.append(f"{int(tol * 1000):3d}ms {fn:4d} {fp:4d} {100 * se:6.2f} {100 * ppv:6.2f} "
                     f"{100 * 2 * se * ppv / max(se + ppv, 1e-12):6.2f}")
    return f"{name:28s} {set_name:10s} {c[0, 0] + c[0, 1]:6d}  " + "  ".join(cells) + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--methods", default=NK_METHODS, help="neurokit2 detectors to compare")
    parser.add_argument("--protocol", choices=("loro", "packaged"), default="loro")
    parser.add_argument("--per-record", action="store_true", help="print every CPSC clip too (MIT-BIH always)")
    parser.add_argument("--write-scorer", action="store_true", help="fit on all records, write the packaged weights")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sets = load_sets(Path(args.data))
    if args.write_scorer:
        groups = {k: [rpeaks_refine.labelled_candidates(x, fs, ref, edge) for _, x, fs, ref, edge in v]
                  for k, v in sets.items()}
        scorer = rpeaks_refine.fit_scorer(groups)
        rpeaks_refine.SCORER_PATH.write_text(json.dumps(scorer.to_json(), indent=1) + "\n")
        print(f"wrote {rpeaks_refine.SCORER_PATH.name}")
        return
    t0 = time.process_time()
    folds = fold_scorers(sets) if args.protocol == "loro" else None
    if folds:
        print(f"LORO fits: {time.process_time() - t0:.1f} s CPU")
    detectors = {"cardiofm default (all leads)": lambda v: [lambda x, fs: detect_rpeaks(x, fs)] * len(v),
                 "cardiofm default (lead 1)": lambda v: [lambda x, fs: detect_rpeaks(x[0], fs)] * len(v),
                 "cardiofm:scored packaged": lambda v: [lambda x, fs: detect_rpeaks(x, fs, "cardiofm:scored")]
                 * len(v)}
    if folds:
        detectors["cardiofm:scored LORO"] = lambda v: [
            (lambda s: lambda x, fs: rpeaks_refine.detect_scored(x, fs, s))(s) for s in folds[set_of[id(v)]]]
    for m in filter(None, args.methods.split(",")):
        detectors[f"neurokit2 {m}"] = (lambda name: lambda v: [lambda x, fs: detect_rpeaks(
            x[0], fs, method=f"neurokit2:{name}")] * len(v))(m)
    set_of = {id(v): k for k, v in sets.items()}
    print(f"{'detector':28s} {'set':10s} {'beats':>6s}  " + "  ".join(
        f"{'tol':5s} {'FN':>4s} {'FP':>4s} {'Se%':>6s} {'PPV%':>6s} {'F1%':>6s}" for _ in TOLERANCES_S)
        + "  ms/rec CPU  CPU/default")
    ours = {}
    for name, make in detectors.items():
        for set_name, records in sets.items():
            try:
                counts, cpu = evaluate(records, make(records))
            except Exception as err:  # a neurokit2 method failing on a record is a result too
                print(f"{name:28s} {set_name:10s} failed: {type(err).__name__}: {str(err)[:60]}")
                continue
            if name.startswith("cardiofm default (all"):
                ours[set_name] = cpu
            ratio = f"{cpu / ours[set_name]:6.1f}x" if set_name in ours else ""
            print(row(name, set_name, counts.sum(axis=0), f"  {1000 * cpu / len(records):10.2f}  {ratio}"))
            if name.startswith("cardiofm") and (set_name == "MIT-BIH" or args.per_record):
                for (rec, *_), c in zip(records, counts):
                    if set_name == "MIT-BIH" or c[1, 1] or c[1, 2]:
                        print(row(f"  {rec}", "", c))


if __name__ == "__main__":
    main()
