"""Figures of docs/ablations.md from the JSON the benchmarks write (nothing is recomputed here).

    python benchmarks/ablation_figures.py --out runs/reproduce --vitals runs/vitals_loso/loso.json \
        --augment runs/augment_study/summary.json --figures docs/figures
Writes pretrain_curves.png (held-out objectives and masked MSE vs baselines over steps), ablation_diagnosis.png,
ablation_reconstruction.png, vitals_loso.png and augment_study.png for whichever inputs exist.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pretrain_curves(curves: Path, dst: Path) -> None:
    """Held-out masked MSE (model vs copy-the-mean / visible-mean / interpolation) and every objective vs step."""
    rows = [json.loads(line) for line in curves.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for key, style in (("model", "-o"), ("copy_mean", "--"), ("visible_mean", ":"), ("linear_interp", "-.")):
        a.plot(steps, [r[key] for r in rows], style, label=key.replace("_", " "))
    a.set(xlabel="pretraining step", ylabel="held-out masked-patch MSE", title="masked reconstruction (held out)")
    a.legend(fontsize=8)
    for key in sorted(k for k in rows[0] if k.startswith("loss_")):
        b.plot(steps, [r[key] for r in rows], "-o", label=key[5:])
    b.set(xlabel="pretraining step", ylabel="held-out loss", title="every objective (held out)")
    b.legend(fontsize=8)
    _save(fig, dst / "pretrain_curves.png")


def diagnosis_bars(summary: dict, dst: Path) -> None:
    """Macro AUROC per arm: seeds as dots, mean as a bar, classical baseline as a line."""
    arms = list(summary["arms"])
    fig, ax = plt.subplots(figsize=(1.3 * len(arms) + 2, 3.6))
    for i, arm in enumerate(arms):
        a = summary["arms"][arm]
        ax.bar(i, a["mean"], yerr=a["sd"], color="C0" if arm.startswith("pretrained") else "C7", alpha=0.7)
        ax.plot([i] * len(a["seeds"]), a["seeds"], "k.", ms=6)
    ax.axhline(summary["classical"]["macro_auroc"], color="C3", ls="--", label="features + logistic")
    ax.set_xticks(range(len(arms)), [a.replace("_", "\n") for a in arms], fontsize=8)
    lo = min(min(a["seeds"]) for a in summary["arms"].values())
    ax.set(ylim=(max(0.4, lo - 0.05), 1.0), ylabel="macro AUROC, PTB-XL fold 8", title="diagnosis ablation")
    ax.legend(fontsize=8)
    _save(fig, dst / "ablation_diagnosis.png")


def reconstruction_bars(summary: dict, dst: Path) -> None:
    """Mean Pearson r per input set and arm (sd over seeds) beside the lagged linear baseline."""
    sets = ("I", "II+V1+V5")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    arms = list(summary["arms"])
    width = 0.8 / (len(arms) + 1)
    for j, s in enumerate(sets):
        ax.bar(j, summary["linear"][s]["r"], width, color="C3", alpha=0.7, label="lagged linear" if j == 0 else None)
        for k, arm in enumerate(arms):
            r = summary["arms"][arm][s]["r"]
            ax.bar(j + (k + 1) * width, r["mean"], width, yerr=r["sd"], color=f"C{k}", alpha=0.7,
                   label=arm if j == 0 else None)
    ax.set_xticks([j + width * len(arms) / 2 for j in range(len(sets))], [f"from {s}" for s in sets])
    ax.set(ylim=(0.5, 1.0), ylabel="mean Pearson r (generated leads)", title="reconstruction, PTB-XL fold 8")
    ax.legend(fontsize=8)
    _save(fig, dst / "ablation_reconstruction.png")


def vitals_folds(loso: dict, dst: Path) -> None:
    """HR MAE per left-out subject for each estimator."""
    folds = loso["folds"]
    subjects = list(folds)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for k, est in enumerate(e for e in folds[subjects[0]]["HR"] if e != "training_mean"):
        ax.plot(range(len(subjects)), [folds[s]["HR"][est]["mae"] for s in subjects], "-o", label=est)
    ax.set_xticks(range(len(subjects)), [s[-2:] for s in subjects])
    ax.set(xlabel="left-out BIDMC subject", ylabel="HR MAE (bpm)", title="heart rate, leave one subject out")
    ax.legend(fontsize=8)
    _save(fig, dst / "vitals_loso.png")


def augment_bars(summary: dict, dst: Path) -> None:
    """Macro AUROC mean +- sd over folds per augmentation arm."""
    arms = list(summary)
    fig, ax = plt.subplots(figsize=(1.1 * len(arms) + 2, 3.4))
    means = [summary[a]["macro_auroc"][0] for a in arms]
    sds = [summary[a]["macro_auroc"][1] for a in arms]
    ax.bar(range(len(arms)), means, yerr=sds, color=["C7" if a == "none" else "C0" for a in arms], alpha=0.75)
    ax.set_xticks(range(len(arms)), [a.replace("_", "\n") for a in arms], fontsize=8)
    ax.set(ylim=(0.4, 1.0), ylabel="macro AUROC (5 folds)", title="augmentation study (pretrained, finetuned)")
    _save(fig, dst / "augment_study.png")


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"-> {path}")


def main() -> None:
    """Draw every figure whose input exists."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    ap.add_argument("--vitals", type=Path, default=Path("runs/vitals_loso/loso.json"))
    ap.add_argument("--augment", type=Path, default=Path("runs/augment_study/summary.json"))
    ap.add_argument("--figures", type=Path, default=Path("docs/figures"))
    args = ap.parse_args()
    if (args.out / "pretrain" / "curves.jsonl").is_file():
        pretrain_curves(args.out / "pretrain" / "curves.jsonl", args.figures)
    for name, draw in (("diagnosis", diagnosis_bars), ("reconstruction", reconstruction_bars)):
        path = args.out / "ablation" / f"{name}.json"
        if path.is_file() and json.loads(path.read_text()).get("arms"):
            draw(json.loads(path.read_text()), args.figures)
    if args.vitals.is_file():
        vitals_folds(json.loads(args.vitals.read_text()), args.figures)
    if args.augment.is_file():
        augment_bars(json.loads(args.augment.read_text()), args.figures)


if __name__ == "__main__":
    main()
