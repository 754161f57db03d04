"""The task registry: task name -> model class, config defaults, head config from the training windows, batch
targets and the report of one split. Recipe, scoring, predict and the CLI look tasks up here instead of branching
on names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import ConfigError
from ..data.collate import collate_samples
from .evaluation import aggregate_by_record, diagnosis_report, vitals_report
from .metrics import multiclass_report


@dataclass(frozen=True)
class TaskSpec:
    """One finetuning task: its model class (in cardiofm.models), the named data sources it is the default task of,
    head config builder, batch-target builder and per-split report."""

    name: str
    model_class: str
    sources: tuple[str, ...]         # data.source values for which task "auto" means this task
    head_config: Callable            # (cfg, data) -> dict of config values of the new head
    targets: Callable                # (model) -> (samples) -> dict of target tensors
    report: Callable                 # (model, windows, pred, thresholds, n_boot, how) -> (report, curves)


def _label_extras(data) -> dict:
    """Where the targets came from, saved with the model (user labels: kind, source description, units)."""
    table = getattr(data, "labels", None)
    if table is None:
        return {}
    return {"label_kind": table.kind, "label_source": table.source}


def _diagnosis_head(cfg, data) -> dict:
    from ..models import label_config
    from ..models.tasks.heads import pos_weight_from_labels

    head = {**label_config(data.label_names), "diagnosis_loss": cfg.loss, **_label_extras(data)}
    if cfg.class_weighting:
        y = collate_samples(data.windows["train"], label_names=data.label_names)["labels"].numpy()
        head["class_pos_weight"] = pos_weight_from_labels(y)
    return head


def _vitals_head(cfg, data) -> dict:
    from ..models import vitals_config
    from ..models.tasks.heads import target_stats
    from .data import vitals_arrays
    from .recipe import rate_residual_std

    train = data.windows["train"]
    values, mask = vitals_arrays(train, cfg.vitals)
    rate_prior = cfg.rate_prior and "HR" in cfg.vitals
    residual = None
    if rate_prior:
        k = cfg.vitals.index("HR")
        residual = rate_residual_std(train, values[:, k], mask[:, k], data.fs)
    return vitals_config(cfg.vitals, *target_stats(values, mask), rate_prior=rate_prior, rate_residual_std=residual)


def _target_head(cfg, data) -> dict:
    from ..models import target_config
    from ..models.tasks.heads import target_stats

    train, table = data.windows["train"], getattr(data, "labels", None)
    if cfg.target_task == "classification":
        names = data.label_names if table is not None else sorted({str(w["target"]) for w in train})
        return {**target_config("classification", names), **_label_extras(data)}
    v = np.array([np.atleast_1d(np.asarray(w["target"], np.float64)) for w in train])
    names = list(table.names) if table is not None else [cfg.data.target]
    units = list(table.units) if table is not None else [""]
    return {**target_config("regression", names, *target_stats(v, np.isfinite(v))), "target_units": units,
            **_label_extras(data)}


def _no_targets(model):
    return lambda samples: {}


def _diagnosis_targets(model):
    names = model.label_names
    return lambda samples: {"labels": label_matrix(samples, names)}


def label_matrix(samples: list[dict], names: list[str]) -> torch.Tensor:
    """(B, K) multi-hot labels over the model's label map (labels outside it are not supervised)."""
    from ..data.collate import multi_hot

    return multi_hot([s.get("labels", []) for s in samples], names)


def class_ids(samples: list[dict], names: list[str]) -> torch.Tensor:
    """(B,) class indices of samples' `target`; a class outside the model's label map raises, naming it."""
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted({str(s["target"]) for s in samples} - set(index))
    if unknown:
        raise ValueError(f"class(es) {unknown} are not in the model's label map {names}")
    return torch.tensor([index[str(s["target"])] for s in samples])


def _target_targets(model):
    if model.is_classifier:
        return lambda samples: {"targets": class_ids(samples, model.output_names)}
    return lambda samples: {"targets": torch.tensor(
        np.array([np.atleast_1d(np.asarray(s["target"], np.float64)) for s in samples]), dtype=torch.float32)}


def _diagnosis_report(model, windows, pred, thresholds, n_boot, how):
    ids = [w["record_id"] for w in windows]
    y = label_matrix(windows, model.label_names).numpy()
    _, prob = aggregate_by_record(ids, pred, how)
    _, y = aggregate_by_record(ids, y, "max")
    rep = diagnosis_report(y, prob, model.label_names, thresholds, n_boot)
    return rep, {"kind": "diagnosis", "y_true": y, "y_pred": prob, "names": model.label_names}


def _vitals_report(model, windows, pred, thresholds, n_boot, how):
    from .data import vitals_arrays

    names = model.config.vital_names
    values, mask = vitals_arrays(windows, names)
    rep = vitals_report(values, pred, mask, names, [w["record_id"] for w in windows], n_boot)
    for k, name in enumerate(names):  # reference: the training mean predicted everywhere
        if name in rep:
            rep[name]["training_mean_mae"] = float(np.abs(values[mask[:, k], k] - model.config.vital_mean[k]).mean())
    return rep, {"kind": "vitals", "y_true": values, "y_pred": pred, "mask": mask, "names": names}


def _target_report(model, windows, pred, thresholds, n_boot, how):
    ids = [w["record_id"] for w in windows]
    names = model.output_names
    if model.is_classifier:
        y = class_ids(windows, names).numpy()
        records, prob = aggregate_by_record(ids, pred, how)
        prob = prob / prob.sum(1, keepdims=True)  # max-aggregated probabilities renormalised over classes
        first = {r: y[i] for i, r in reversed(list(enumerate(ids)))}
        y = np.array([first[r] for r in records])
        rep = multiclass_report(y, prob, names)
        return rep, {"kind": "diagnosis", "y_true": np.eye(len(names))[y], "y_pred": prob, "names": names,
                     "confusion": rep["confusion_matrix"]}
    values = np.array([np.atleast_1d(np.asarray(w["target"], np.float64)) for w in windows])
    records, agg = aggregate_by_record(ids, pred, how)
    _, y = aggregate_by_record(ids, values)
    units = list(getattr(model.config, "target_units", None) or [""] * len(names))
    mask = np.ones_like(y, bool)
    rep = vitals_report(y, agg, mask, names, records, n_boot, units=units)
    return rep, {"kind": "vitals", "y_true": y, "y_pred": agg, "mask": mask, "names": names, "units": units}


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("diagnosis", "CardioFMForDiagnosis", ("ptbxl", "cinc2021"), _diagnosis_head, _diagnosis_targets,
             _diagnosis_report),
    TaskSpec("vitals", "CardioFMForVitals", ("bidmc",), _vitals_head, _no_targets, _vitals_report),
    TaskSpec("target", "CardioFMForTarget", (), _target_head, _target_targets, _target_report),
]}


def task_for_source(source: str) -> str:
    """The task "auto" means for a named data source (user data: the labels decide, see user_data)."""
    found = [t.name for t in TASKS.values() if source in t.sources]
    if not found:
        raise ConfigError(f"data.source {source!r} has no default task: set task")
    return found[0]


def task_spec(name: str) -> TaskSpec:
    """The registered task `name`; ConfigError naming the known ones otherwise."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def model_class(name: str):
    """The task model class of task `name`."""
    from .. import models

    return getattr(models, task_spec(name).model_class)


def task_of_architecture(arch: str) -> str | None:
    """Task name of a saved model's class name (config `architectures[0]`), or None."""
    return next((t.name for t in TASKS.values() if t.model_class == arch), None)
