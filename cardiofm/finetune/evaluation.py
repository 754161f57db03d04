"""Predictions of a task model over window samples, per-record aggregation, metric reports, and writing them
(metrics JSON, a readable table, ROC / Bland-Altman PNGs)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..models.inference import evaluating
from .metrics import (add_classification_cis, add_regression_cis, classification_report, format_table,
                      regression_report)

VITAL_UNITS = {"HR": "bpm", "RR": "breaths/min", "SpO2": "%", "SBP": "mmHg", "DBP": "mmHg"}


TARGET_KEYS = ("labels", "vitals", "vitals_mask", "targets", "targets_mask")


@torch.no_grad()
def batch_outputs(model, batch: dict) -> torch.Tensor:
    """(B, K) outputs of one collated batch, on CPU: probabilities (diagnosis: sigmoid; classification: softmax)
    or values in physical units (vitals/regression). The model must be in eval mode."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v) and k not in TARGET_KEYS}
    out = model(**batch)  # inference only: no targets, no loss
    pred = getattr(out, "predictions", None)
    return (torch.sigmoid(out.logits) if pred is None else pred).float().cpu()


def predict_windows(model, windows: list[dict], collate_fn: Callable, batch_size: int = 128) -> np.ndarray:
    """(N, K) model outputs per window: probabilities (diagnosis), values in physical units (vitals/regression)."""
    with evaluating(model):
        outs = [batch_outputs(model, collate_fn(windows[i:i + batch_size]))
                for i in range(0, len(windows), batch_size)]
    result = torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)
    if not np.isfinite(result).all():
        raise ValueError("model produced NaN/inf predictions")
    return result


AGGREGATIONS = {"mean": lambda v: v.mean(0), "max": lambda v: v.max(0)}


def aggregate_by_record(record_ids: Sequence[str], values: np.ndarray,
                        how: str = "mean") -> tuple[list[str], np.ndarray]:
    """Mean (or max) of window rows per record -> (record ids in first-seen order, (R, K) values)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"window aggregation {how!r}: use {sorted(AGGREGATIONS)}")
    order: dict[str, list[int]] = {}
    for i, r in enumerate(record_ids):
        order.setdefault(r, []).append(i)
    return list(order), np.stack([AGGREGATIONS[how](values[idx]) for idx in order.values()])


def diagnosis_report(y_true: np.ndarray, y_prob: np.ndarray, label_names: Sequence[str],
                     thresholds: np.ndarray | None = None, n_boot: int = 500, seed: int = 0) -> dict:
    """Classification report with bootstrap CIs, plus the CinC 2021 score when the labels are SNOMED codes."""
    rep = classification_report(y_true, y_prob, label_names, thresholds)
    if n_boot:
        add_classification_cis(rep, y_true, y_prob, n_boot, seed)
    from .challenge import challenge_score, load_challenge_weights, to_scored_classes

    groups, _ = load_challenge_weights()
    scored = {c for g in groups for c in g}
    if any(n in scored for n in label_names):
        th = np.array([rep["per_class"][n]["threshold"] for n in label_names])
        labels = to_scored_classes(y_true > 0, label_names)
        outputs = to_scored_classes(y_prob >= th[None], label_names)
        rep["challenge_score"] = challenge_score(labels, outputs)
    return rep


def vitals_report(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray, names: Sequence[str],
                  groups: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
                  units: Sequence[str] | None = None) -> dict:
    """Per-target MAE/RMSE/r/Bland-Altman over rows with a target (units: vitals' own, or `units`); CIs resample
    whole records when `groups`."""
    out = {}
    for k, name in enumerate(names):
        m = np.asarray(mask[:, k], bool)
        if not m.any():
            continue
        rep = regression_report(y_true[m, k], y_pred[m, k])
        if n_boot:
            add_regression_cis(rep, y_true[m, k], y_pred[m, k], n_boot, seed,
                               None if groups is None else np.asarray(groups)[m])
        out[name] = {**rep, "unit": units[k] if units else VITAL_UNITS.get(name, "")}
    return out


def report_table(report: dict) -> str:
    """Readable text table of a report written by the recipe or `cardiofm evaluate`."""
    parts = []
    for split, rep in report.get("splits", {}).items():
        if "per_class" in rep:
            rows = [(name, c.get("auroc_status") or c["auroc"], c["auprc"], c["f1"], c["threshold"], c["support"])
                    for name, c in rep["per_class"].items()]
            rows.append(("macro", rep["macro_auroc"], rep["macro_auprc"], rep["macro_f1"], None, rep["n_records"]))
            head = f"[{split}] macro AUROC {rep['macro_auroc']:.3f} over {rep.get('macro_auroc_classes', 'all')} " \
                   f"classes (95% CI {_ci(rep.get('macro_auroc_ci95'))}), micro AUROC {rep['micro_auroc']:.3f}"
            if "accuracy" in rep:
                head += f", accuracy {rep['accuracy']:.3f}, balanced accuracy {rep['balanced_accuracy']:.3f}"
            if "challenge_score" in rep:
                head += f", CinC 2021 challenge score {rep['challenge_score']:.3f}"
            parts += [head, format_table(rows, ["label", "AUROC", "AUPRC", "F1", "threshold", "n"])]
        else:
            rows = [(name, r["mae"], _ci(r.get("mae_ci95")), r["rmse"], r["bias"], r["loa_low"], r["loa_high"],
                     r["pearson_r"], r["n"], r["unit"]) for name, r in rep.items()]
            parts += [f"[{split}]", format_table(rows, ["vital", "MAE", "MAE 95% CI", "RMSE", "bias", "LoA low",
                                                        "LoA high", "r", "n", "unit"])]
    for name, rep in report.get("baselines", {}).items():
        parts.append(f"[baseline {name}] " + ", ".join(f"{k} {v:.3f}" for k, v in rep.items()
                                                      if isinstance(v, float)))
    return "\n\n".join(parts) + "\n"


def _ci(ci) -> str:
    return "n/a" if not ci or any(v is None or not np.isfinite(v) for v in ci) else f"{ci[0]:.3f}-{ci[1]:.3f}"


def write_report(report: dict, out_dir: str | Path, curves: dict | None = None) -> dict[str, Path]:
    """Write metrics.json, metrics.txt and plots (ROC per diagnosis split, Bland-Altman per vital) -> paths."""
    from .plots import plot_bland_altman, plot_confusion_matrix, plot_roc_curves

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "table": out / "metrics.txt"}
    paths["json"].write_text(json.dumps(report, indent=2, default=_json_default), encoding="utf-8")
    paths["table"].write_text(report_table(report), encoding="utf-8")
    for split, c in (curves or {}).items():
        if c["kind"] == "diagnosis":
            paths[f"roc_{split}"] = plot_roc_curves(c["y_true"], c["y_pred"], c["names"], out / f"roc_{split}.png",
                                                    f"ROC curves ({split})")
            if "confusion" in c:
                paths[f"confusion_{split}"] = plot_confusion_matrix(np.asarray(c["confusion"]), c["names"],
                                                                    out / f"confusion_{split}.png", split)
        else:
            for k, name in enumerate(c["names"]):
                m = c["mask"][:, k]
                if m.sum() > 1:
                    unit = c["units"][k] if c.get("units") else VITAL_UNITS.get(name, "")
                    paths[f"bland_altman_{name}_{split}"] = plot_bland_altman(
                        c["y_true"][m, k], c["y_pred"][m, k], name, unit, out / f"bland_altman_{name}_{split}.png")
    return paths


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
