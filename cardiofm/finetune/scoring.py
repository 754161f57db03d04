"""Score a saved task checkpoint on a data split, optionally beside the classical baselines on the same windows."""
from __future__ import annotations

import logging

import numpy as np

from ..data.channels import ECG_CHANNELS
from .data import build_task_data, vitals_arrays
from .evaluation import aggregate_by_record, diagnosis_report, vitals_report

logger = logging.getLogger(__name__)


def load_task_model(name_or_path: str):
    """A finetuned task model and its task name, from the class recorded in its config (`architectures`)."""
    from ..models import CardioFMConfig
    from .tasks import TASKS, model_class, task_of_architecture

    config = CardioFMConfig.from_pretrained(name_or_path)
    arch = (getattr(config, "architectures", None) or [""])[0]
    task = task_of_architecture(arch)
    if task is None:
        raise ValueError(f"{name_or_path}: config architectures {arch!r} is not a finetuned task model "
                         f"({sorted(t.model_class for t in TASKS.values())})")
    return model_class(task).from_pretrained_checked(name_or_path), task


def model_label_names(model) -> list[str] | None:
    """Classes of a classifier's label map (multi-label or single-label), None for regression/vitals."""
    if hasattr(model, "label_names"):
        return list(model.label_names)
    return list(model.output_names) if getattr(model, "is_classifier", False) else None


def evaluate_checkpoint(cfg, split: str = "test", baselines: bool = False,
                        aggregate: str | None = None) -> tuple[dict, dict]:
    """(report, curves) of the checkpoint `cfg.model` on `split` of `cfg.data` (thresholds and, unless `aggregate`
    is given, the window aggregation from its config)."""
    from dataclasses import replace

    from .recipe import evaluate_split, make_collate

    model, task = load_task_model(cfg.model)
    cfg = replace(cfg, task=task, aggregate=aggregate or getattr(model.config, "window_aggregation", None) or "mean")
    pre = model.config.preprocess_config
    user = cfg.data.source == "user"
    data = build_task_data(cfg.data, task, pre, model_label_names(model) if user else None)
    windows = data.windows[split]
    if not windows:
        raise ValueError(f"split {split!r} has no windows: check data.* folds/subjects in the config")
    collate = make_collate(cfg, model)
    th = getattr(model.config, "decision_thresholds", None)
    rep, curve = evaluate_split(cfg, model, windows, collate, None if th is None else np.asarray(th))
    report = {"task": task, "model": cfg.model, "splits": {split: rep}}
    if baselines:
        report["baselines"] = baseline_reports(task, model, data, windows, pre, cfg.bootstrap)
    return report, {split: curve}


def baseline_reports(task: str, model, data, windows: list[dict], pre, n_boot: int) -> dict:
    """Classical baselines on the same windows: features + logistic regression (diagnosis), peak counting (HR)."""
    from .baselines import diagnosis_baseline, hr_baselines

    out = {}
    if task == "diagnosis":
        names = model.label_names
        leads = [c for c in pre.channels if c in ECG_CHANNELS]
        prob = diagnosis_baseline(data.windows["train"], windows, names, pre.fs, leads)
        ids = [w["record_id"] for w in windows]
        y = np.array([[n in w["labels"] for n in names] for w in windows], dtype=float)
        _, prob = aggregate_by_record(ids, prob)
        _, y = aggregate_by_record(ids, y)
        rep = diagnosis_report(y, prob, names, None, n_boot)
        out["features_logistic"] = {"macro_auroc": rep["macro_auroc"], "micro_auroc": rep["micro_auroc"],
                                    "macro_auroc_ci95": rep.get("macro_auroc_ci95"),
                                    "per_class_auroc": {n: c["auroc"] for n, c in rep["per_class"].items()}}
    elif task == "vitals" and "HR" in model.config.vital_names:
        values, mask = vitals_arrays(windows, ["HR"])
        ids = np.array([w["record_id"] for w in windows])
        for name, hr in hr_baselines(windows, pre.fs).items():
            ok = mask[:, 0] & np.isfinite(hr)
            if ok.sum() < 2:
                continue
            rep = vitals_report(values[ok], hr[ok, None], np.ones((ok.sum(), 1), bool), ["HR"], ids[ok], n_boot)["HR"]
            out[name] = {"mae": rep["mae"], "mae_ci95": rep.get("mae_ci95"), "bias": rep["bias"],
                         "loa_low": rep["loa_low"], "loa_high": rep["loa_high"],
                         "windows_scored": int(ok.sum()), "windows_undetected": int((mask[:, 0] & ~ok).sum())}
        train_vals, train_mask = vitals_arrays(data.windows["train"], ["HR"])
        if train_mask.any() and mask.any():
            mean = float(train_vals[train_mask[:, 0], 0].mean())
            out["training_mean"] = {"mae": float(np.abs(values[mask[:, 0], 0] - mean).mean()), "value": mean}
    return out
