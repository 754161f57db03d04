"""ECG-QA on the shared PTB-XL sample: exact match of answers composed from the model's attribute heads, from the
oracle attributes (database noise columns + measured intervals) and the majority answer per template, over several
seeds (each seed: its own patient split and initialisation); mean +- sd, plus noise-head AUROC on held-out ECGs.

    OMP_NUM_THREADS=1 python benchmarks/bench_qa.py --seeds 0 1 2 --steps 200 --out runs/bench_qa
    ... --set calibration_fraction=0.25     (noise thresholds from a calibration split of the training patients)
    ... --set noise_prior=false             (noise from the transformer heads alone, without the measured prior)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def _rows(report: dict) -> dict[str, dict[str, float]]:
    q = report["questions"]
    groups = {"overall": q["overall"], **q["by_question_type"], **q["by_variant"]}
    return {g: {src: row[src]["em"] for src in ("model", "oracle", "majority")} | {"n": row["n"]}
            for g, row in groups.items()}


def main() -> None:
    """Run the QA recipe once per seed and print the per-group exact match table (mean +- sd over seeds)."""
    from cardiofm.config import load_config
    from cardiofm.finetune.qa.recipe import QAConfig, run_qa

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--out", default="runs/bench_qa")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="further QAConfig overrides")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        cfg = load_config(QAConfig, "finetune_qa", [f"model={args.model}", f"split_seed={seed}",
                                                    f"train.seed={seed}", f"train.max_steps={args.steps}",
                                                    f"output_dir={Path(args.out) / f'seed{seed}'}", *args.set])
        runs.append(run_qa(cfg))
    tables = [_rows(r) for r in runs]
    print(f"{'group':<30} {'n (mean)':>8} {'model EM':>15} {'oracle EM':>15} {'majority EM':>15}")
    summary = {}
    for g in tables[0]:
        row = {src: (float(np.mean([t[g][src] for t in tables])), float(np.std([t[g][src] for t in tables])))
               for src in ("model", "oracle", "majority")}
        n = float(np.mean([t[g]["n"] for t in tables]))
        summary[g] = row | {"n": n}
        print(f"{g:<30} {n:8.1f} " + " ".join(f"{row[s][0]:7.3f}+-{row[s][1]:.3f}" for s in
                                              ("model", "oracle", "majority")))
    noise = {k: [r["attributes"]["noise"][k] for r in runs] for k in runs[0]["attributes"]["noise"]}
    for kind, rows in noise.items():
        print(f"noise logits {kind:<20} lead AUROC " + ", ".join(
            f"{r['lead_auroc']:.3f} [{r['lead_auroc_ci95'][0]:.3f}, {r['lead_auroc_ci95'][1]:.3f}]" for r in rows))
    print("normal ranges (ms) per seed:", [r["normal_ranges_ms"] for r in runs])
    for r in runs:   # chosen on training data only: feature rules by CV, thresholds on the calibration patients
        print("feature rules:", {f: (v["rule"], round(v.get("cv_measured_agreement", float("nan")), 2),
                                     round(v.get("cv_prior_agreement", float("nan")), 2))
                                 for f, v in r["feature_rules"].items()})
        print("noise thresholds:", {k: (v["n"], round(v["threshold"], 3)) for k, v in r["noise_thresholds"].items()})
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=1,
                                                            default=float))


if __name__ == "__main__":
    main()
