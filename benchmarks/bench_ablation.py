"""Does pretraining earn its keep? The same splits, recipes and seeds with the encoder pretrained or randomly
initialised (same architecture: the pretrained config with fresh weights), finetuned or frozen (linear probe),
beside the classical baseline measured in the same run.

  diagnosis       PTB-XL superclasses, folds 1-6 train / 7 val / 8 test, 12 leads (packaged config finetune_diagnosis):
                  arms classical (features + logistic), random_probe, random_full, pretrained_probe, pretrained_full,
                  pretrained_star (full + STAR); optional pretraining-steps curve (--snapshots: pretrained_full from
                  OUT/pretrain/snapshots/step*)
  reconstruction  PTB-XL folds 1-7 -> 8, from lead I and from II+V1+V5: lagged linear, random_full, pretrained_full
Per arm: every seed's test score, mean +- sd over seeds, and a record-bootstrap 95 % CI (diagnosis: of the seeds'
mean probability). Every run is kept under OUT/ablation/<task>/<arm>/seed<k>; finished runs are skipped (resumable).

    OMP_NUM_THREADS=1 python benchmarks/bench_ablation.py --out runs/reproduce --task diagnosis --seeds 3
    OMP_NUM_THREADS=1 python benchmarks/bench_ablation.py --out runs/reproduce --task reconstruction --seeds 3
Summary: OUT/ablation/<task>.json and a printed table.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

import cardiofm  # noqa: F401  (torchvision guard before transformers)

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("bench_ablation")
DIAGNOSIS_ARMS = {"random_probe": ("random", ["mode=linear_probe"]), "random_full": ("random", []),
                  "pretrained_probe": ("pretrained", ["mode=linear_probe"]), "pretrained_full": ("pretrained", []),
                  "pretrained_star": ("pretrained", ["augment.enabled=[star]"])}
RECON_ARMS = {"random_full": "random", "pretrained_full": "pretrained"}


def random_init_model(out: Path, seed: int = 0) -> Path:
    """OUT/random_init/model: the pretrained checkpoint's config, tokenizer and architecture with fresh weights."""
    import torch

    from cardiofm.models import CardioFMConfig, CardioFMForPretraining

    src, dst = out / "pretrain" / "model", out / "random_init" / "model"
    if (dst / "config.json").is_file():
        return dst
    shutil.copytree(src, dst, dirs_exist_ok=True)
    torch.manual_seed(seed)
    CardioFMForPretraining(CardioFMConfig.from_pretrained(str(src))).save_pretrained(str(dst))
    return dst


def _start(out: Path, init: str) -> Path:
    """Starting checkpoint of an arm: the pretrained export, its random-init twin, or a snapshot directory."""
    if init == "random":
        return random_init_model(out)
    return out / "pretrain" / "model" if init == "pretrained" else Path(init)


def diagnosis_run(out: Path, arm: str, init: str, extra: list[str], seed: int, steps: int) -> dict:
    """One finetuning run of the diagnosis recipe (cached in its run directory)."""
    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig, run_finetune

    run = out / "ablation" / "diagnosis" / arm / f"seed{seed}"
    done = run / "ablation_run.json"
    if done.is_file():
        return json.loads(done.read_text())
    data = Path(cardiofm_data()) / "ptbxl"
    cfg = load_config(FinetuneConfig, "finetune_diagnosis",
                      [f"model={_start(out, init)}", f"output_dir={run}", f"data.root={data}",
                       f"train.max_steps={steps}", f"train.seed={seed}", "bootstrap=0"] + extra)
    report = run_finetune(cfg)
    test = report["splits"]["test"]
    row = {"macro_auroc": test["macro_auroc"], "per_class": {n: c["auroc"] for n, c in test["per_class"].items()},
           "val_macro_auroc": report["splits"]["val"]["macro_auroc"], "steps": report["training"]["steps"],
           "run": str(run)}
    done.write_text(json.dumps(row, indent=1))
    return row


def cardiofm_data() -> str:
    """The shared recordings folder (CARDIOFM_SHARED_DATA, else ../shared/data beside the repository)."""
    import os

    return os.environ.get("CARDIOFM_SHARED_DATA", str(REPO.parent / "shared" / "data"))


def _mean_sd(values: list[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def diagnosis_ablation(out: Path, seeds: list[int], steps: int, arms: list[str], snapshots: bool,
                       variant: str = "", overrides: list[str] | None = None) -> dict:
    """Every diagnosis arm x seed, the classical baseline, seed-ensemble CIs; with `variant`, every arm also gets
    the config `overrides` and is kept as ARM+VARIANT (arms of earlier calls stay in OUT/ablation/diagnosis.json)."""
    from bench_finetune_quality import ensemble_diagnosis

    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig
    from cardiofm.finetune.scoring import evaluate_checkpoint

    plan = {a: DIAGNOSIS_ARMS[a] for a in arms}
    if snapshots:
        for snap in sorted((out / "pretrain" / "snapshots").glob("step*")):
            plan[f"pretrained_full@{snap.name}"] = (str(snap), [])
    if variant:
        plan = {f"{arm}+{variant}": (init, extra + list(overrides or [])) for arm, (init, extra) in plan.items()}
    path = out / "ablation" / "diagnosis.json"
    summary: dict = json.loads(path.read_text()) if path.is_file() else {"arms": {}}
    for arm, (init, extra) in plan.items():
        rows = [diagnosis_run(out, arm, init, extra, s, steps) for s in seeds]
        cfg = load_config(FinetuneConfig, Path(rows[0]["run"]) / "finetune_config.yaml",
                          [f"model={Path(rows[0]['run']) / 'model'}", "bootstrap=1000"])
        ens = ensemble_diagnosis(cfg, [Path(r["run"]) for r in rows])
        summary["arms"][arm] = {"seeds": [r["macro_auroc"] for r in rows], **_mean_sd([r["macro_auroc"] for r in rows]),
                                "val": _mean_sd([r["val_macro_auroc"] for r in rows]), "overrides": extra,
                                "mi": _mean_sd([r["per_class"]["MI"] for r in rows]),
                                "ensemble_macro_auroc": ens["macro_auroc"], "ensemble_ci95": ens.get("macro_auroc_ci95")}
        path.write_text(json.dumps(summary, indent=1, default=float))
        if "classical" not in summary:
            scored, _ = evaluate_checkpoint(cfg, "test", baselines=True)
            base = scored["baselines"]["features_logistic"]
            summary["classical"] = {"macro_auroc": base["macro_auroc"], "ci95": base.get("macro_auroc_ci95"),
                                    "mi": base["per_class_auroc"].get("MI")}
    path.write_text(json.dumps(summary, indent=1, default=float))
    return summary


def reconstruction_run(out: Path, arm: str, init: str, seed: int, steps: int, warmup: int) -> dict:
    """One reconstruction run (stage-1 linear path, then the decoder) from lead I and II+V1+V5 (cached)."""
    import torch

    from cardiofm.config import load_config
    from cardiofm.finetune.reconstruction.recipe import ReconstructionConfig, run_reconstruction

    run = out / "ablation" / "reconstruction" / arm / f"seed{seed}"
    done = run / "ablation_run.json"
    if done.is_file():
        return json.loads(done.read_text())
    torch.manual_seed(seed)
    cfg = load_config(ReconstructionConfig, "finetune_reconstruction", [
        f"model={_start(out, init)}", f"ptbxl={Path(cardiofm_data()) / 'ptbxl'}", "bidmc=", f"output_dir={run}",
        "eval_sets=[[I],[II,V1,V5]]", "lead_table=false", "diagnostic_check=false", "n_figures=0",
        f"train.max_steps={steps}", f"lag_warmup_steps={warmup}", f"train.seed={seed}"])
    res = run_reconstruction(cfg)
    row = {name: {"model": s["model"]["mean"], "linear": s["linear_baseline"]["mean"]}
           for name, s in res["sets"].items() if "model" in s}
    row["run"] = str(run)
    done.write_text(json.dumps(row, indent=1, default=float))
    return row


def reconstruction_ablation(out: Path, seeds: list[int], steps: int, warmup: int) -> dict:
    """Random-init vs pretrained reconstruction, seeds, and the lagged linear baseline of the same runs."""
    summary: dict = {"arms": {}}
    for arm, init in RECON_ARMS.items():
        rows = [reconstruction_run(out, arm, init, s, steps, warmup) for s in seeds]
        summary["arms"][arm] = {name: {"r": _mean_sd([r[name]["model"]["r"] for r in rows]),
                                       "mse": _mean_sd([r[name]["model"]["mse"] for r in rows])}
                                for name in ("I", "II+V1+V5")}
        summary["linear"] = {name: {"r": rows[0][name]["linear"]["r"], "mse": rows[0][name]["linear"]["mse"]}
                             for name in ("I", "II+V1+V5")}
        (out / "ablation" / "reconstruction.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def print_tables(diag: dict | None, recon: dict | None) -> None:
    """Markdown rows ready for the docs."""
    if diag:
        c = diag["classical"]
        print("| arm | val (fold 7) macro AUROC | test (fold 8) macro AUROC (seeds) | ensemble | 95 % CI | MI |")
        print(f"| classical features + logistic | - | {c['macro_auroc']:.3f} | - | ({c['ci95'][0]:.3f}-{c['ci95'][1]:.3f})"
              f" | {c['mi']:.3f} |")
        for arm, a in diag["arms"].items():
            lo, hi = a["ensemble_ci95"] or (float("nan"), float("nan"))
            a = {"val": {"mean": float("nan"), "sd": float("nan")}, **a}   # summaries written before val was kept
            print(f"| {arm} | {a['val']['mean']:.3f} +- {a['val']['sd']:.3f} | {a['mean']:.3f} +- {a['sd']:.3f} "
                  f"({', '.join(f'{v:.3f}' for v in a['seeds'])}) | {a['ensemble_macro_auroc']:.3f} | "
                  f"({lo:.3f}-{hi:.3f}) | {a['mi']['mean']:.3f} |")
    if recon:
        lin = recon["linear"]
        print(f"| lagged linear | {lin['I']['r']:.3f} | {lin['I']['mse']:.4f} | {lin['II+V1+V5']['r']:.3f} | "
              f"{lin['II+V1+V5']['mse']:.4f} |")
        for arm, a in recon["arms"].items():
            cells = [f"{a[s][m]['mean']:.{3 if m == 'r' else 4}f} +- {a[s][m]['sd']:.{3 if m == 'r' else 4}f}"
                     for s in ("I", "II+V1+V5") for m in ("r", "mse")]
            print(f"| {arm} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    """Run the requested ablations (resumable) and print their tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/reproduce", help="folder holding pretrain/model (bench_finetune_quality)")
    p.add_argument("--task", default="all", choices=["all", "diagnosis", "reconstruction"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--arms", default=",".join(DIAGNOSIS_ARMS), help="diagnosis arms, comma-separated")
    p.add_argument("--diagnosis-steps", type=int, default=300)
    p.add_argument("--recon-steps", type=int, default=400)
    p.add_argument("--recon-warmup", type=int, default=800)
    p.add_argument("--snapshots", action="store_true", help="diagnosis: also finetune the pretraining snapshots")
    p.add_argument("--variant", default="", help="diagnosis: name for the --set overrides (arms kept as ARM+NAME)")
    p.add_argument("--set", nargs="*", default=[], help="diagnosis: config overrides of the variant, e.g. "
                                                        "train.optim.lr=3e-3")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import transformers
    import torch

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    out = Path(args.out)
    if not (out / "pretrain" / "model" / "config.json").is_file():
        raise SystemExit(f"{out / 'pretrain' / 'model'} missing: run scripts/reproduce.sh pretrain {out}")
    seeds = list(range(args.seeds))
    if bool(args.variant) != bool(args.set):
        raise SystemExit("--variant and --set go together (a name for the overrides, and the overrides)")
    diag = diagnosis_ablation(out, seeds, args.diagnosis_steps, args.arms.split(","), args.snapshots, args.variant,
                              args.set) if args.task in ("all", "diagnosis") else None
    recon = reconstruction_ablation(out, seeds, args.recon_steps, args.recon_warmup) \
        if args.task in ("all", "reconstruction") else None
    print_tables(diag, recon)
    return 0


if __name__ == "__main__":
    sys.exit(main())
