"""Evaluation figures saved as PNG: per-class ROC curves, a confusion matrix and Bland-Altman plots."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    return plt


def plot_roc_curves(y_true: np.ndarray, y_prob: np.ndarray, label_names: Sequence[str], path: str | Path,
                    title: str = "ROC curves") -> Path:
    """One ROC curve per class with its AUROC in the legend (classes with a single outcome are skipped)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, name in enumerate(label_names):
        if not 0 < y_true[:, k].sum() < len(y_true):
            continue
        fpr, tpr, _ = roc_curve(y_true[:, k], y_prob[:, k])
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUROC {roc_auc_score(y_true[:, k], y_prob[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    if ax.get_legend_handles_labels()[0]:  # no class with both outcomes: nothing to label
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, plt, path)


def plot_bland_altman(y_true: np.ndarray, y_pred: np.ndarray, name: str, unit: str, path: str | Path) -> Path:
    """Bland-Altman plot: difference (pred - true) against the mean, with bias and 95% limits of agreement."""
    from .metrics import bland_altman

    plt = _pyplot()
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ba = bland_altman(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter((y_true + y_pred) / 2, y_pred - y_true, s=8, alpha=0.6)
    for value, style, label in ((ba["bias"], "-", "bias"), (ba["loa_low"], "--", "-1.96 SD"),
                                (ba["loa_high"], "--", "+1.96 SD")):
        ax.axhline(value, ls=style, c="crimson", lw=1)
        ax.text(ax.get_xlim()[1], value, f" {label} {value:+.2f}", va="center", fontsize=7, color="crimson")
    ax.set(xlabel=f"mean of monitor and model {name} ({unit})", ylabel=f"model - monitor ({unit})",
           title=f"{name}: Bland-Altman (n={len(y_true)})")
    return _save(fig, plt, path)


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path,
                          split: str = "test") -> Path:
    """Confusion matrix of record counts (rows: true class, columns: arg-max predicted class)."""
    plt = _pyplot()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k))
    ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion matrix ({split}, n={confusion.sum()})")
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
