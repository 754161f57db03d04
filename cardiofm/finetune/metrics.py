"""Evaluation metrics: multi-label AUROC/AUPRC/F1 at tuned thresholds, the CinC 2021 challenge score, vital-sign
MAE with Bland-Altman limits, and percentile bootstrap confidence intervals over records."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from .challenge import challenge_score, to_scored_classes  # noqa: F401  (re-exported: one metrics entry point)


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true, dtype=np.float64), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score[:, None]
    if y_true.shape != y_score.shape:
        raise ValueError(f"labels {y_true.shape} and scores {y_score.shape} differ in shape")
    if not np.isfinite(y_score).all():
        raise ValueError("scores contain NaN/inf")
    return y_true, y_score


def per_class_auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(K,) AUROC per class of (N, K) multi-hot labels and scores; NaN where a class has one outcome only."""
    y_true, y_score = _check(y_true, y_score)
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_score[:, k])
    return out


def per_class_auprc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(K,) area under the precision-recall curve (average precision) per class; NaN without positives."""
    y_true, y_score = _check(y_true, y_score)
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if y_true[:, k].sum() > 0:
            out[k] = average_precision_score(y_true[:, k], y_score[:, k])
    return out


def auroc_status(y_true: np.ndarray) -> list[str]:
    """Per class: "" when AUROC is computable, else why not ("not computable: no positives" / "... no negatives")."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_true = y_true[:, None] if y_true.ndim == 1 else y_true
    pos, n = y_true.sum(0), len(y_true)
    return ["not computable: no positives" if p == 0 else "not computable: no negatives" if p == n else ""
            for p in pos]


def macro_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean AUROC over the classes that have both outcomes (never a 0.5 stand-in for the others); NaN if none."""
    a = per_class_auroc(y_true, y_score)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def micro_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUROC of all (record, class) pairs pooled."""
    y_true, y_score = _check(y_true, y_score)
    flat = y_true.ravel()
    return float(roc_auc_score(flat, y_score.ravel())) if 0 < flat.sum() < flat.size else float("nan")


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(K,) F1 per class for binary predictions; NaN where a class has no positives in labels or predictions."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = (y_true & y_pred).sum(0)
    denom = 2 * tp + (~y_true & y_pred).sum(0) + (y_true & ~y_pred).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def tune_thresholds(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(K,) per-class probability thresholds maximising F1 (tune on validation data, apply to test data)."""
    y_true, y_score = _check(y_true, y_score)
    out = np.full(y_true.shape[1], 0.5)
    for k in range(y_true.shape[1]):
        if y_true[:, k].sum() == 0:
            continue
        cands = np.unique(y_score[:, k])
        pred = y_score[:, k][:, None] >= cands[None]  # (N, candidates)
        pos = y_true[:, k].astype(bool)[:, None]
        tp = (pred & pos).sum(0)
        f1 = 2 * tp / (pred.sum(0) + pos.sum())
        out[k] = float(cands[int(np.argmax(f1))])
    return out


def classification_report(y_true: np.ndarray, y_prob: np.ndarray, label_names: Sequence[str],
                          thresholds: np.ndarray | None = None) -> dict:
    """Macro/micro AUROC, macro AUPRC/F1 and per-class AUROC, AUPRC, F1, threshold and support (a JSON-ready dict).

    `thresholds` come from validation data; without them they are tuned on these labels (optimistic F1, flagged).
    """
    y_true, y_prob = _check(y_true, y_prob)
    tuned_here = thresholds is None
    thresholds = tune_thresholds(y_true, y_prob) if tuned_here else np.asarray(thresholds, dtype=np.float64)
    auroc, auprc = per_class_auroc(y_true, y_prob), per_class_auprc(y_true, y_prob)
    f1 = f1_scores(y_true > 0, y_prob >= thresholds[None])
    status = auroc_status(y_true)
    per_class = {name: {"auroc": _num(auroc[k]), "auprc": _num(auprc[k]), "f1": _num(f1[k]),
                        "threshold": float(thresholds[k]), "support": int(y_true[:, k].sum()),
                        **({"auroc_status": status[k]} if status[k] else {})}
                 for k, name in enumerate(label_names)}
    return {"n_records": int(len(y_true)), "macro_auroc": macro_auroc(y_true, y_prob),
            "macro_auroc_classes": f"{sum(not s for s in status)} of {len(status)}",
            "not_computable": {n: status[k] for k, n in enumerate(label_names) if status[k]},
            "micro_auroc": micro_auroc(y_true, y_prob),
            "macro_auprc": float(np.nanmean(auprc)) if np.isfinite(auprc).any() else float("nan"),
            "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
            "thresholds_tuned_on_test": tuned_here, "per_class": per_class}


def multiclass_report(y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str]) -> dict:
    """Single-label report: accuracy, balanced accuracy, macro-F1 of the arg-max class, one-vs-rest AUROC per
    class (macro over computable classes) and the confusion matrix (rows: true class, columns: predicted)."""
    y_true, y_prob = np.asarray(y_true, np.int64), np.asarray(y_prob, np.float64)
    k = len(class_names)
    if y_prob.shape != (len(y_true), k):
        raise ValueError(f"probabilities {y_prob.shape} do not match {len(y_true)} records x {k} classes")
    onehot = np.eye(k)[y_true]
    pred = y_prob.argmax(1)
    rep = classification_report(onehot, y_prob, class_names, np.full(k, -np.inf))
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, pred), 1)
    recall = np.array([confusion[i, i] / confusion[i].sum() for i in range(k) if confusion[i].sum()])
    f1 = f1_scores(onehot > 0, np.eye(k)[pred] > 0)
    for name, f in zip(class_names, f1):
        rep["per_class"][name].update(f1=_num(f), threshold=None)
    rep.update(accuracy=float((pred == y_true).mean()), balanced_accuracy=float(recall.mean()),
               macro_f1=float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
               confusion_matrix=confusion.tolist(), thresholds_tuned_on_test=False, decision="arg-max class")
    return rep


def _num(x: float) -> float | None:
    """JSON-safe float: NaN (undefined metric) becomes None."""
    return None if not np.isfinite(x) else float(x)


def bland_altman(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Bias (mean of pred - true) and 95% limits of agreement (bias +- 1.96 SD), in the target's units."""
    d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    bias, sd = float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def regression_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MAE, RMSE, Pearson r and Bland-Altman bias/limits of one target (units of the target, e.g. bpm)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"targets {y_true.shape} and predictions {y_pred.shape} must be equal 1-D arrays")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("targets or predictions contain NaN/inf")
    err = y_pred - y_true
    r = float(np.corrcoef(y_true, y_pred)[0, 1]) if len(y_true) > 2 and y_true.std() > 0 and y_pred.std() > 0 \
        else float("nan")
    return {"n": int(len(y_true)), "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "pearson_r": r, **bland_altman(y_true, y_pred)}


def bootstrap_ci(metric: Callable[..., float], arrays: Sequence[np.ndarray], n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05, groups: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile (1 - alpha) CI of metric(*arrays) resampling records (or whole `groups`, e.g. subjects) with
    replacement; resamples where the metric is undefined (NaN, e.g. one class only) are skipped."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    if groups is None:
        units = [np.array([i]) for i in range(n)]
    else:
        groups = np.asarray(groups)
        units = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))])
        v = metric(*(np.asarray(a)[pick] for a in arrays))
        if np.isfinite(v):
            values.append(v)
    if len(values) < max(10, n_boot // 10):
        return float("nan"), float("nan")
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def add_classification_cis(report: dict, y_true: np.ndarray, y_prob: np.ndarray, n_boot: int = 500,
                           seed: int = 0, groups: np.ndarray | None = None) -> dict:
    """Add 95% bootstrap CIs of macro/micro AUROC to a classification_report dict (in place; returned)."""
    for key, fn in (("macro_auroc", macro_auroc), ("micro_auroc", micro_auroc)):
        report[f"{key}_ci95"] = list(bootstrap_ci(fn, [y_true, y_prob], n_boot, seed, groups=groups))
    return report


def add_regression_cis(report: dict, y_true: np.ndarray, y_pred: np.ndarray, n_boot: int = 1000, seed: int = 0,
                       groups: np.ndarray | None = None) -> dict:
    """Add a 95% bootstrap CI of the MAE to a regression_report dict (in place; returned)."""
    mae = lambda t, p: float(np.abs(p - t).mean())  # noqa: E731
    report["mae_ci95"] = list(bootstrap_ci(mae, [y_true, y_pred], n_boot, seed, groups=groups))
    return report


def format_table(rows: list[tuple], headers: Sequence[str]) -> str:
    """Plain-text table with aligned columns (numbers to 3 decimals) for logs and the evaluate report."""
    def cell(v):
        if isinstance(v, float):
            return "n/a" if not np.isfinite(v) else f"{v:.3f}"
        return "n/a" if v is None else str(v)
    body = [[cell(v) for v in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in body])
