"""Measured signal-quality features vs the PTB-XL noise columns: held-out per-lead / per-record AUROC (95 % CI,
resampling records) of the logistic noise prior (finetune.qa.noise_prior) fitted on every training-patient record,
beside a lead-identity-only regression and the same features on the model's band-passed window; and the exact match
of the noise questions answered from the prior at 0.5, beside the majority answer. Same patient splits as
bench_qa.py (half of the ECGs by whole patients held out, one split per seed).

    OMP_NUM_THREADS=1 python benchmarks/bench_qa_noise.py --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

KINDS = ("static noise", "baseline drift", "burst noise")
# noise-head AUROCs of the transformer (bench_qa.py round 2, benchmarks/RESULTS.md), seeds 0/1/2
HEADS_LEAD_AUROC = {"static noise": (0.730, 0.628, 0.775), "baseline drift": (0.620, 0.619, 0.522),
                    "burst noise": (0.644, 0.408, 0.641)}


def measure(ptbxl: str) -> dict:
    """ecg_id -> raw-window and band-passed-window features, noise targets, patient id."""
    from cardiofm.data.attributes import noise_targets
    from cardiofm.data.preprocess import PreprocessConfig, preprocess_record
    from cardiofm.data.readers.ptbxl import load_ptbxl_database, ptbxl_ids, read_ptbxl
    from cardiofm.data.signal_quality import lead_quality_features, raw_window

    pre = PreprocessConfig()
    db = load_ptbxl_database(ptbxl)
    out, seconds = {}, 0.0
    for e in ptbxl_ids(ptbxl):
        rec = read_ptbxl(ptbxl, e)
        t0 = time.perf_counter()
        raw = lead_quality_features(raw_window(rec.signal, rec.fs, rec.channels, pre.fs, pre.window_s), pre.fs)
        seconds += time.perf_counter() - t0
        w = preprocess_record(rec, pre)[0]
        filtered = lead_quality_features(raw_window(w["signal"], pre.fs, w["channels"], pre.fs, pre.window_s),
                                         pre.fs)
        lead, mask, record = noise_targets(db.loc[e])
        out[e] = SimpleNamespace(ecg_id=e, patient_id=int(db.loc[e, "patient_id"]), raw=raw, filtered=filtered,
                                 noise_lead=lead, noise_lead_mask=mask, noise_record=record)
    print(f"features: {1000 * seconds / len(out):.1f} ms per record (raw window, 12 leads), {len(out)} records")
    return out


def _auroc(y, p):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _scores(recs, train, field) -> dict:
    """Fit the noise prior on the training records' `field` features -> ecg_id -> (lead p (4, 12), record p (4,))
    for every record, and the prior."""
    from cardiofm.finetune.qa.noise_prior import fit_noise_prior, prior_logits

    def stack(ids, name):
        # lead identity only: features held constant, so each regression keeps its lead intercepts
        return np.zeros_like(stack(ids, "raw")) if name == "lead_only" else np.stack([getattr(recs[i], name)
                                                                                       for i in ids])
    prior = fit_noise_prior(*(stack(train, k) for k in (field, "noise_lead", "noise_lead_mask", "noise_record")))
    ids = sorted(recs)
    with torch.no_grad():
        lead, record = (torch.sigmoid(t).numpy() for t in prior_logits(torch.from_numpy(stack(ids, field)), prior))
    return {e: (lead[j], record[j]) for j, e in enumerate(ids)}, prior


def auroc_rows(recs, test, scores) -> dict:
    """Per noise kind: lead and record AUROC with 95 % CIs (records resampled)."""
    from cardiofm.data.attributes import NOISE_TYPES
    from cardiofm.finetune.metrics import bootstrap_ci

    lead_p = np.stack([scores[e][0] for e in test])
    record_p = np.stack([scores[e][1] for e in test])
    rows = {}
    rid = np.repeat(np.arange(len(test)), 12)
    for kind in KINDS:
        k = NOISE_TYPES.index(kind)
        y = np.concatenate([recs[i].noise_lead[k] for i in test]).astype(int)
        m = np.concatenate([recs[i].noise_lead_mask[k] for i in test])
        p = lead_p[:, k].reshape(-1)
        yr = np.array([recs[i].noise_record[k] for i in test]).astype(int)
        rows[kind] = {"lead_positives": int(y[m].sum()), "lead_auroc": _auroc(y[m], p[m]),
                      "lead_ci": bootstrap_ci(_auroc, [y[m], p[m]], 500, 0, groups=rid[m]),
                      "record_positives": int(yr.sum()), "record_auroc": _auroc(yr, record_p[:, k]),
                      "record_ci": bootstrap_ci(_auroc, [yr, record_p[:, k]], 500, 0)}
    return rows


def _evidence(lead_p, record_p) -> dict:
    from cardiofm.data.attributes import NOISE_TYPES
    from cardiofm.data.channels import TWELVE_LEADS

    return {"noise_lead": {kd: dict(zip(TWELVE_LEADS, map(float, lead_p[k]))) for k, kd in enumerate(NOISE_TYPES)},
            "noise_record": dict(zip(NOISE_TYPES, map(float, record_p)))}


def base_rate_thresholds(items, scores) -> dict[str, float]:
    """Per noise key: the cut at which the training questions' mean probability, shifted by one logit offset,
    equals their share of "yes" (prior-shift correction: questions are asked mostly about noisy records)."""
    from cardiofm.finetune.qa.composer import noise_probability, threshold_key
    from cardiofm.finetune.qa.questions import parse_question

    rows: dict[str, list] = {}
    for it in items:
        intent = parse_question(it.question)
        rows.setdefault(threshold_key(intent), []).append(
            (noise_probability(_evidence(*scores[it.ecg_ids[0]]), intent), it.answer == ["yes"]))
    out = {}
    for key, r in rows.items():
        p = np.clip([a for a, _ in r], 1e-6, 1 - 1e-6)
        logit, rate = np.log(p / (1 - p)), np.mean([b for _, b in r])
        lo, hi = -20.0, 20.0
        for _ in range(60):   # bisection: mean sigmoid(logit + shift) rises with shift
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate else (lo, mid)
        out[key] = float(1 / (1 + np.exp(lo)))   # p > 1 / (1 + e^shift)  <=>  sigmoid(logit + shift) > 0.5
    return out


def noise_question_em(items, train, test, scores) -> dict:
    """Held-out noise questions answered from the prior (yes above 0.5, and above the base-rate-matched cuts)
    vs the training majority, overall and per template."""
    from cardiofm.finetune.qa.attributes import split_questions
    from cardiofm.finetune.qa.composer import compose
    from cardiofm.finetune.qa.evaluation import majority_answers
    from cardiofm.finetune.qa.questions import parse_question

    split = {k: [it for it in v if it.attribute_type == "noise"]
             for k, v in split_questions(items, set(train), set(test)).items()}
    majority = majority_answers(split["train"])
    cuts = base_rate_thresholds(split["train"], scores)
    hits = {"prior": [], "base_rate": [], "majority": [], "template": []}
    for it in split["test"]:
        intent, ev = parse_question(it.question), [_evidence(*scores[it.ecg_ids[0]])]
        hits["prior"].append(compose(intent, ev, {}, ["no", "yes"])[0] == it.answer)
        hits["base_rate"].append(compose(intent, ev, {}, ["no", "yes"], cuts)[0] == it.answer)
        hits["majority"].append(majority.get(it.template_id) == it.answer)
        hits["template"].append(it.template_id)
    t = np.array(hits.pop("template"))
    out = {k: float(np.mean(v)) for k, v in hits.items()} | {"n": len(t)}
    out["by_template"] = {int(tid): {k: round(float(np.mean(np.array(v)[t == tid])), 3) for k, v in hits.items()}
                          | {"n": int((t == tid).sum())} for tid in np.unique(t)}
    return out


def main() -> None:
    """Measure once, then per seed: split, fit, score held-out records and noise questions; print the tables."""
    from cardiofm.finetune.qa.attributes import patient_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ptbxl", default="../shared/data/ptbxl")
    ap.add_argument("--ecgqa", default="../shared/data/ecgqa_ptbxl")
    ap.add_argument("--out", default="runs/bench_qa_noise")
    args = ap.parse_args()
    from cardiofm.data.readers.ecgqa import read_questions

    torch.set_num_threads(1)
    recs = measure(args.ptbxl)
    items = read_questions(args.ecgqa)
    report = {}
    for seed in args.seeds:
        train, test = (sorted(s) for s in patient_split(recs, 0.5, seed))
        report[seed] = {}
        for field in ("raw", "filtered", "lead_only"):
            scores, prior = _scores(recs, train, field)
            report[seed][field] = {"auroc": auroc_rows(recs, test, scores),
                                   "questions": noise_question_em(items, train, test, scores)}
        print(f"seed {seed}: {len(train)} train / {len(test)} test records; positives in training (lead models) "
              + ", ".join(f"{k}: {m['positives']}" for k, m in zip(("static", "burst", "drift", "electrodes"),
                                                                    prior["lead"])))
    for kind in KINDS:
        print(f"\n{kind}: held-out AUROC [95 % CI], seeds {args.seeds}")
        for field, name in (("raw", "features (raw window) + lead"), ("filtered", "features (band-passed) + lead"),
                            ("lead_only", "lead identity only")):
            for level in ("lead", "record"):
                cells = [f"{report[s][field]['auroc'][kind][f'{level}_auroc']:.3f} "
                         f"[{report[s][field]['auroc'][kind][f'{level}_ci'][0]:.3f}, "
                         f"{report[s][field]['auroc'][kind][f'{level}_ci'][1]:.3f}]" for s in args.seeds]
                print(f"  {name:<32} {level:<6} " + " / ".join(cells))
        print(f"  {'transformer heads (RESULTS r2)':<32} lead   " + " / ".join(map(str, HEADS_LEAD_AUROC[kind])))
    print("\nheld-out noise questions, exact match: prior at 0.5 / prior at base-rate-matched cuts / majority")
    for field in ("raw", "filtered", "lead_only"):
        q = [report[s][field]["questions"] for s in args.seeds]
        print(f"  {field:<10} " + " | ".join(f"{r['prior']:.3f} / {r['base_rate']:.3f} / {r['majority']:.3f} "
                                             f"(n {r['n']})" for r in q))
        for s, r in zip(args.seeds, q):
            print(f"    seed {s} by template: {r['by_template']}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
