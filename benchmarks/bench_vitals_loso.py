"""Vital signs, leave-one-subject-out over all ten BIDMC subjects: heart rate, respiratory rate, SpO2.

References (per window, flagged rather than averaged when doubtful):
  HR    monitor HR (1 Hz) median over the 10 s window; flagged when a sample is missing/0 or the monitor's value moves
        by more than HR_REF_RANGE bpm inside the window
  RR    breaths marked by the two annotators (*_Breaths.csv) inside a 32 s window: 60 (n-1) / span per annotator,
        averaged; flagged with fewer than 3 breaths or annotators more than RR_REF_GAP breaths/min apart
  SpO2  monitor SpO2 median over the 10 s window; flagged when missing or moving more than 2 %
Estimators (the classical ones fit nothing, so every subject is an unseen subject; constant predictors are fitted on
the other nine subjects):
  HR    ECG R-peak counting, PPG pulse counting (both: mean beat interval, the existing baselines), and the
        signal-quality-aware fusion of both (finetune.baselines.fused_heart_rate: per-source template correlation x
        beat regularity; agreeing sources -> ECG, disagreeing -> the better source)
  RR    majority fusion of five respiratory modulations of PPG and ECG; the impedance channel's spectral peak (the
        signal the annotators marked: an upper reference, not a PPG/ECG method); training mean
  SpO2  training mean and training median of the monitor value (a single-wavelength PPG carries no oxygen ratio)
  model optional (--model DIR): the vitals recipe finetuned per fold (rate-aware head; val = the next subject)
Results: OUT/loso.json (per fold and pooled MAE with subject-bootstrap CIs) and a printed table.

    OMP_NUM_THREADS=1 python benchmarks/bench_vitals_loso.py --out runs/vitals_loso
    OMP_NUM_THREADS=1 python benchmarks/bench_vitals_loso.py --out runs/vitals_loso --model runs/reproduce/pretrain/model --steps 150
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import cardiofm  # noqa: F401  (torchvision guard before transformers)
from cardiofm.finetune import baselines as cb
from cardiofm.finetune.metrics import bootstrap_ci

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", REPO.parent / "shared" / "data"))
HR_WIN_S, HR_HOP_S, RR_WIN_S, RR_HOP_S = 10.0, 5.0, 32.0, 10.0
HR_REF_RANGE, RR_REF_GAP, SPO2_REF_RANGE = 10.0, 2.0, 2.0
ECG_NAMES = ("II", "I", "ECG", "aVR")


def _window_ref(series: np.ndarray, start: float, length: float, max_range: float) -> float:
    """Median of a 1 Hz series over [start, start+length) s, NaN (flagged) when missing or moving > max_range."""
    seg = np.asarray(series[int(start):int(start + length)], np.float64)
    if len(seg) == 0 or not np.isfinite(seg).all() or (seg <= 0).any() or np.ptp(seg) > max_range:
        return float("nan")
    return float(np.median(seg))


def _breath_ref(breaths: dict, start: int, stop: int, fs: float) -> float:
    """Annotated breaths/min in samples [start, stop), NaN when too few breaths or the annotators disagree."""
    rates = []
    for idx in breaths.values():
        inside = idx[(idx >= start) & (idx < stop)]
        if len(inside) < 3:
            return float("nan")
        rates.append(60.0 * (len(inside) - 1) / ((inside[-1] - inside[0]) / fs))
    return float(np.mean(rates)) if np.ptp(rates) <= RR_REF_GAP else float("nan")


def subject_windows(path: str) -> dict:
    """Per-window references and classical estimates of one BIDMC recording (band-passed at its own 125 Hz)."""
    from cardiofm.data.preprocess import PreprocessConfig, filter_channels
    from cardiofm.data.readers.bidmc import read_bidmc

    rec = read_bidmc(path)
    fs, names = rec.fs, rec.channels
    ecg_rows = [i for i, c in enumerate(names) if c in ECG_NAMES]
    x = filter_channels(rec.signal.astype(np.float64), names, fs, PreprocessConfig(fs=fs))
    ecg, ppg = x[ecg_rows], x[names.index("PPG")]
    resp = rec.signal[names.index("RESP")].astype(np.float64)
    ppg_raw = rec.signal[names.index("PPG")].astype(np.float64)   # RIIV lives below the PPG band-pass
    hr = {k: [] for k in ("ref", "ecg_peak", "ppg_peak", "fused", "ecg_sqi", "ppg_sqi", "spo2_ref", "start")}
    n = x.shape[1]
    for start in np.arange(0, n / fs - HR_WIN_S + 1e-9, HR_HOP_S):
        a, b = int(start * fs), int((start + HR_WIN_S) * fs)
        fused = cb.fused_heart_rate(ecg[:, a:b], ppg[a:b], fs)
        hr["ref"].append(_window_ref(rec.vital_series["HR"], start, HR_WIN_S, HR_REF_RANGE))
        hr["spo2_ref"].append(_window_ref(rec.vital_series["SpO2"], start, HR_WIN_S, SPO2_REF_RANGE))
        hr["ecg_peak"].append(cb.hr_by_peak_counting(ecg[:, a:b], fs, "ecg"))
        hr["ppg_peak"].append(cb.hr_by_peak_counting(ppg[a:b], fs, "ppg"))
        hr["fused"].append(fused["hr"])
        hr["ecg_sqi"].append(fused["ecg_sqi"])
        hr["ppg_sqi"].append(fused["ppg_sqi"])
        hr["start"].append(float(start))
    rr = {k: [] for k in ("ref", "fused", "resp_channel", "n_modulations")}
    for start in np.arange(0, n / fs - RR_WIN_S + 1e-9, RR_HOP_S):
        a, b = int(start * fs), int((start + RR_WIN_S) * fs)
        est = cb.respiratory_rate_estimates(ecg[:, a:b], ppg_raw[a:b], fs)
        rr["ref"].append(_breath_ref(rec.meta["breaths"], a, b, fs))
        rr["fused"].append(cb.fused_respiratory_rate(est))
        rr["resp_channel"].append(cb.resp_channel_rate(resp[a:b], fs))
        rr["n_modulations"].append(int(sum(np.isfinite(v) for v in est.values())))
    return {"subject": rec.record_id, "hr": {k: np.asarray(v) for k, v in hr.items()},
            "rr": {k: np.asarray(v) for k, v in rr.items()}}


def _mae(ref: np.ndarray, est: np.ndarray) -> dict:
    """MAE over windows with a valid reference; windows without an estimate are counted, not scored."""
    ok = np.isfinite(ref)
    scored = ok & np.isfinite(est)
    return {"mae": float(np.abs(ref[scored] - est[scored]).mean()) if scored.any() else float("nan"),
            "n": int(scored.sum()), "unmeasured": int((ok & ~np.isfinite(est)).sum()),
            "ref_flagged": int((~ok).sum())}


def loso_table(subjects: list[dict], model_hr: dict | None = None) -> dict:
    """Per-fold and pooled MAE of every estimator; constant predictors fitted on the other subjects."""
    folds = {}
    for i, s in enumerate(subjects):
        rest = [t for j, t in enumerate(subjects) if j != i]
        hr, rr = s["hr"], s["rr"]
        train_hr = np.concatenate([t["hr"]["ref"] for t in rest])
        train_rr = np.concatenate([t["rr"]["ref"] for t in rest])
        train_spo2 = np.concatenate([t["hr"]["spo2_ref"] for t in rest])
        row = {"HR": {k: _mae(hr["ref"], hr[k]) for k in ("ecg_peak", "ppg_peak", "fused")},
               "RR": {k: _mae(rr["ref"], rr[k]) for k in ("fused", "resp_channel")},
               "SpO2": {}}
        row["HR"]["training_mean"] = _mae(hr["ref"], np.full(len(hr["ref"]), cb.training_location(train_hr, "mean")))
        row["RR"]["training_mean"] = _mae(rr["ref"], np.full(len(rr["ref"]), cb.training_location(train_rr, "mean")))
        for kind in ("mean", "median"):
            row["SpO2"][f"training_{kind}"] = _mae(hr["spo2_ref"], np.full(len(hr["ref"]),
                                                   cb.training_location(train_spo2, kind)))
        if model_hr and s["subject"] in model_hr:
            row["HR"]["model"] = _mae(hr["ref"], model_hr[s["subject"]])
        folds[s["subject"]] = row
    return {"folds": folds, "summary": _summary(subjects, folds, model_hr)}


def _summary(subjects: list[dict], folds: dict, model_hr: dict | None) -> dict:
    """Mean of fold MAEs, worst fold, pooled MAE with a subject-bootstrap 95 % CI, per vital and estimator."""
    out = {}
    for vital in ("HR", "RR", "SpO2"):
        for est in folds[subjects[0]["subject"]][vital]:
            maes = [folds[s["subject"]][vital][est]["mae"] for s in subjects if est in folds[s["subject"]][vital]]
            out[f"{vital}/{est}"] = {"fold_mean_mae": float(np.nanmean(maes)), "worst_fold_mae": float(np.nanmax(maes)),
                                     "folds": len(maes)}
    for s_est, key, ref_key in (("fused", "HR", "ref"), ("fused", "RR", "ref")):
        ref = np.concatenate([s[key.lower()][ref_key] for s in subjects])
        est = np.concatenate([s[key.lower()][s_est] for s in subjects])
        groups = np.concatenate([[s["subject"]] * len(s[key.lower()][ref_key]) for s in subjects])
        ok = np.isfinite(ref) & np.isfinite(est)
        out[f"{key}/{s_est}"]["pooled_mae"] = float(np.abs(ref[ok] - est[ok]).mean())
        out[f"{key}/{s_est}"]["pooled_ci95"] = bootstrap_ci(lambda r, e: float(np.abs(r - e).mean()),
                                                            [ref[ok], est[ok]], groups=groups[ok])
    return out


def finetune_model_hr(model_dir: str, subjects: list[dict], paths: list[str], steps: int, out: Path,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """LOSO finetuning of the vitals recipe from `model_dir` (val = next subject); per-window HR on our windows."""
    from cardiofm.config import load_config
    from cardiofm.data.readers.bidmc import read_bidmc
    from cardiofm.finetune.recipe import FinetuneConfig, run_finetune
    from cardiofm.finetune.scoring import load_task_model

    preds = {}
    ids = [s["subject"] for s in subjects]
    for i, (subject, path) in enumerate(zip(ids, paths)):
        run = out / f"fold_{subject}_seed{seed}"
        if not (run / "model").is_dir():
            cfg = load_config(FinetuneConfig, "finetune_vitals", [
                f"model={model_dir}", f"output_dir={run}", f"data.root={DATA / 'bidmc'}",
                f"data.test_subjects=[{subject}]", f"data.val_subjects=[{ids[(i + 1) % len(ids)]}]",
                f"train.max_steps={steps}", f"train.seed={seed}", "train.eval_every=50", "bootstrap=0"])
            run_finetune(cfg)
        model, _ = load_task_model(str(run / "model"))
        rec = read_bidmc(path)
        starts = subjects[i]["hr"]["start"]
        k = model.config.vital_names.index("HR")
        preds[subject] = np.array([float(model.window_outputs(rec.signal[:, int(t * rec.fs):int((t + HR_WIN_S) *
                                   rec.fs)], rec.fs, rec.channels, field="predictions")[0, k]) for t in starts])
    return preds


def main(argv=None) -> int:
    """Compute every subject's windows, the LOSO table, print it and write OUT/loso.json."""
    from cardiofm.data.readers.bidmc import bidmc_files

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/vitals_loso")
    p.add_argument("--model", default="", help="pretrained (or preset) model to finetune per fold")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = bidmc_files(str(DATA / "bidmc"))
    subjects = [subject_windows(path) for path in paths]
    model_hr = finetune_model_hr(args.model, subjects, paths, args.steps, out, args.seed) if args.model else None
    table = loso_table(subjects, model_hr)
    (out / "loso.json").write_text(json.dumps(table, indent=1, default=float))
    for key, s in table["summary"].items():
        extra = f"; pooled {s['pooled_mae']:.2f} ({s['pooled_ci95'][0]:.2f}-{s['pooled_ci95'][1]:.2f})" \
            if "pooled_mae" in s else ""
        print(f"{key:<24} mean of fold MAEs {s['fold_mean_mae']:.2f}, worst fold {s['worst_fold_mae']:.2f}{extra}")
    for subject, row in table["folds"].items():
        print(subject, " ".join(f"{v}/{e} {m['mae']:.2f}" for v in row for e, m in row[v].items()),
              "| flagged HR/RR refs", row["HR"]["fused"]["ref_flagged"], row["RR"]["fused"]["ref_flagged"],
              "| unmeasured fused HR/RR", row["HR"]["fused"]["unmeasured"], row["RR"]["fused"]["unmeasured"])
    print(f"-> {out / 'loso.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
