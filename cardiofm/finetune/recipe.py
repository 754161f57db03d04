"""Finetuning recipe: setup (data + task model from a checkpoint) -> train (shared engine: full finetune, linear
probe or layer-wise LR decay, early stopping on a validation metric) -> evaluate (val/test reports) -> save."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..config import ConfigError, save_config
from ..data.augment import AugmentConfig, build_augmentation
from ..data.collate import collate_samples
from ..engine.config import OptimConfig, TrainConfig
from .data import FinetuneDataConfig, TaskData, build_task_data
from .evaluation import predict_windows, write_report
from .tasks import model_class, task_spec

logger = logging.getLogger(__name__)


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """OptimConfig with finetuning defaults (overriding one key keeps the others)."""

    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.05


@dataclass
class FinetuneTrainConfig(TrainConfig):
    """TrainConfig with finetuning defaults: evaluate often, early-stop on the validation score, TensorBoard."""

    max_steps: int = 300
    batch_size: int = 32
    eval_every: int = 50
    checkpoint_every: int = 0
    log_every: int = 25
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])   # logs/ under output_dir
    early_stopping_metric: str | None = "val/score"
    early_stopping_mode: Literal["min", "max"] = "max"
    early_stopping_patience: int = 4
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)


@dataclass
class FinetuneConfig:
    """One finetuning run: task, starting checkpoint, adaptation mode, head options, data and loop settings."""

    # auto: from the data (PTB-XL/CinC diagnosis, BIDMC vitals; user labels: multi-label -> diagnosis,
    # multi-class -> target classification, numeric -> target regression); see finetune/tasks.py
    task: Literal["auto", "diagnosis", "vitals", "target"] = "auto"
    model: str = "tiny"                 # checkpoint dir / Hub id (pretrained) or preset name (random init)
    mode: Literal["full", "linear_probe"] = "full"   # linear_probe: encoder frozen, only the head trains
    loss: Literal["bce", "asymmetric"] = "bce"
    class_weighting: bool = False       # BCE positive weights n_neg/n_pos from the training labels
    vitals: list[str] = field(default_factory=lambda: ["HR"])
    rate_prior: bool = True             # vitals: HR = measured beat rate + learned correction (needs HR)
    target_task: Literal["classification", "regression"] = "regression"   # task "target"
    dropout: float = 0.1                # head dropout
    output_dir: str = "runs/finetune"
    eval_batch_size: int = 128
    aggregate: Literal["mean", "max"] = "mean"   # window outputs -> one per record (saved; predict uses it)
    bootstrap: int = 500                # bootstrap resamples for CIs (0: none)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    # auto: "beat" when the encoder has median-beat tokens, else "mean"; channel: per-lead features concatenated;
    # beat: per-lead, per-beat-phase median-beat token features
    head_pooling: Literal["auto", "mean", "channel", "beat"] = "auto"
    # median-beat patches per channel: None keeps the checkpoint's; N > 0 adds them to an encoder pretrained
    # without (their segment embedding then starts untrained), 0 removes them
    beat_tokens: int | None = None
    # LP-FT (Kumar et al., ICLR 2022): this many head-only steps (encoder frozen, constant lr) before the
    # train.max_steps of full finetuning, so that a fresh head does not push large gradients into pretrained weights
    head_warmup_steps: int = 0
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)   # on-the-fly training augmentation, e.g. STAR

    def validate(self) -> None:
        """Raise ConfigError on inconsistent settings."""
        if self.train.early_stopping_metric not in (None, "val/score", "val/loss"):
            raise ConfigError("train.early_stopping_metric for finetuning is 'val/score' (higher is better: macro "
                              "AUROC, or minus the MAE) or 'val/loss'")
        if self.head_warmup_steps < 0:
            raise ConfigError(f"head_warmup_steps must be >= 0, got {self.head_warmup_steps}")
        if self.task == "target" and not self.data.target and self.data.source != "user":
            raise ConfigError("task 'target' needs data.target (a record meta key such as age or sex) or user "
                              "labels (data.source user)")


def rate_residual_std(windows: list[dict], hr: np.ndarray, present: np.ndarray, fs: float) -> float | None:
    """Robust SD (1.4826 MAD, bpm, floor 0.5) of monitor HR minus the measured beat rate over training windows:
    the scale of the correction a rate-aware head learns; None (the config default) with fewer than two windows."""
    from ..data.beats import beat_rate_features, measured_rate

    if not windows:
        return None
    # window by window: stacking every training window into one array would copy the whole training set
    feats = np.stack([beat_rate_features(w["signal"], w["channels"], fs, w["channel_mask"]) for w in windows])
    errors = (hr - measured_rate(feats))[present.astype(bool)]
    errors = errors[np.isfinite(errors)]
    if len(errors) < 2:
        return None
    return float(max(0.5, 1.4826 * np.median(np.abs(errors - np.median(errors)))))


def encoder_overrides(cfg: FinetuneConfig) -> dict:
    """Config values set on the starting encoder: median-beat tokens (if asked) and the resolved head pooling."""
    from ..models.factory import resolve_config

    base = resolve_config(cfg.model)
    beats = base.beat_tokens if cfg.beat_tokens is None else cfg.beat_tokens
    pooling = cfg.head_pooling if cfg.head_pooling != "auto" else ("beat" if beats else "mean")
    return {"beat_tokens": beats, "head_pooling": pooling}


def build_model(cfg: FinetuneConfig, data: TaskData):
    """Task model: a checkpoint's encoder (only head keys may be missing) or a fresh preset; frozen for probing."""
    from ..models import list_presets, preset_config

    cls = model_class(cfg.task)
    head = {**task_spec(cfg.task).head_config(cfg, data), "classifier_dropout": cfg.dropout,
            "window_aggregation": cfg.aggregate, **encoder_overrides(cfg)}
    if cfg.model in list_presets():
        logger.warning("model %r is a preset: the encoder starts from random weights (no pretraining)", cfg.model)
        model = cls(preset_config(cfg.model, **head))
    else:
        model = cls.from_encoder(cfg.model, **head)
    if cfg.mode == "linear_probe":
        for p in model.cardiofm.parameters():
            p.requires_grad_(False)
    return model


def make_collate(cfg: FinetuneConfig, model):
    """collate_fn for this task: collate_samples plus the task's targets (multi-hot labels, class ids, values)."""
    vocab = tuple(model.config.channel_vocab)
    targets = task_spec(cfg.task).targets(model)

    # rate-aware vitals heads read beat rates measured here, in the DataLoader workers, not in the model's forward
    rate_fs = model.config.sampling_rate if getattr(model, "uses_rate_prior", False) else None

    def collate(samples):
        batch = collate_samples(samples, vocab=vocab, beat_window=model.config.beat_window, rate_fs=rate_fs)
        batch.update(targets(samples))
        return batch
    return collate


def evaluate_split(cfg: FinetuneConfig, model, windows: list[dict], collate, thresholds=None,
                   n_boot: int | None = None) -> tuple[dict, dict]:
    """(report, curve data) of one split, scored per record (window outputs aggregated by cfg.aggregate), except
    vitals (per window: the monitor value changes along a recording)."""
    n_boot = cfg.bootstrap if n_boot is None else n_boot
    pred = predict_windows(model, windows, collate, cfg.eval_batch_size)
    return task_spec(cfg.task).report(model, windows, pred, thresholds, n_boot, cfg.aggregate)


def validation_score(cfg: FinetuneConfig, report: dict, loss: float) -> float:
    """One number to early-stop on, higher is better: macro AUROC over computable classes, or minus the mean MAE;
    minus the validation loss when no class has both outcomes on the validation split."""
    if "macro_auroc" in report:
        return float(report["macro_auroc"]) if np.isfinite(report["macro_auroc"]) else -loss
    return -float(np.mean([r["mae"] for r in report.values()]))


def make_eval_fn(cfg: FinetuneConfig, windows: list[dict], collate):
    """eval_fn(model) -> {"val/score", "val/loss"} for the engine (no bootstrap: it runs every eval_every steps)."""
    def eval_fn(model):
        model = getattr(model, "module", model)
        rep, _ = evaluate_split(cfg, model, windows, collate, n_boot=0)
        device = next(model.parameters()).device
        losses = []
        with torch.no_grad():
            for i in range(0, len(windows), cfg.eval_batch_size):
                batch = {k: v.to(device) for k, v in collate(windows[i:i + cfg.eval_batch_size]).items()}
                losses.append(float(model(**batch).loss) * len(batch["signals"]))
        loss = sum(losses) / len(windows)
        return {"val/score": validation_score(cfg, rep, loss), "val/loss": loss}
    return eval_fn


def run_finetune(cfg: FinetuneConfig, resume: bool = False) -> dict:
    """setup -> train -> evaluate -> save; returns the report written to output_dir/metrics.json."""
    from ..engine.trainer import Trainer, seed_everything
    from ..models.factory import resolve_config
    from ..models.hub.summary import finetuning_summary

    started = time.time()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    pre = resolve_config(cfg.model).preprocess_config
    data = build_task_data(cfg.data, cfg.task, pre)
    cfg = resolve_task(cfg, data)
    if not data.windows["train"]:
        raise ConfigError("the training split is empty: check data.split and its folds/subjects or the labels' "
                          "split column")
    save_config(cfg, out / "finetune_config.yaml")
    write_split(data, out / "split.csv")
    seed_everything(cfg.train.seed)  # data reading may draw random numbers: the model starts from the seed
    model = build_model(cfg, data)
    collate = make_collate(cfg, model)
    has_val = bool(data.windows["val"])
    train_cfg = cfg.train if has_val else _without_early_stopping(cfg.train)
    transform = build_augmentation(cfg.augment) if cfg.augment.enabled else None
    if cfg.head_warmup_steps and cfg.mode == "full":
        warm_up_head(cfg, model, data.windows["train"], collate, out / "head_warmup", transform, pre.fs)
    trainer = Trainer(model, train_cfg, data.windows["train"], collate,
                      make_eval_fn(cfg, data.windows["val"], collate) if has_val else None, output_dir=out,
                      transform=transform, fs=pre.fs)
    result = trainer.train(resume=resume)
    trainer.export(out / "model")  # gathers ZeRO-3 shards; evaluation below re-saves with tuned thresholds
    model = trainer.unwrapped_model()
    if has_val and train_cfg.early_stopping_metric and (out / "best").is_dir():
        model = type(model).from_pretrained(str(out / "best"))  # the validation-best weights, not the last ones
    elif trainer.uses_deepspeed:
        model = type(model).from_pretrained(str(out / "model"))  # full weights, not this rank's ZeRO shards
    report, curves = evaluate_and_save(cfg, model, data, collate, out)
    report["training"] = {"steps": result.step, "stopped": result.stopped, "mode": cfg.mode,
                          "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    write_report(report, out, curves)
    model.config.training_summary = finetuning_summary(cfg, model, data, report, result, time.time() - started)
    model.save_pretrained(str(out / "model"))  # config and card now state the run and its test metrics
    logger.info("finetuned model in %s, metrics in %s", out / "model", out / "metrics.json")
    return report


def warm_up_head(cfg: FinetuneConfig, model, windows: list[dict], collate, out: Path, transform=None,
                 fs: float | None = None) -> None:
    """LP-FT stage 1: cfg.head_warmup_steps updates of the head alone (encoder frozen, constant lr, no layer decay,
    no evaluation), in place; the encoder is trainable again afterwards."""
    from dataclasses import replace

    from ..engine.trainer import Trainer

    encoder = [p for p in model.cardiofm.parameters() if p.requires_grad]
    for p in encoder:
        p.requires_grad_(False)
    optim = replace(cfg.train.optim, schedule="constant", layer_decay=1.0)
    train = replace(cfg.train, max_steps=cfg.head_warmup_steps, eval_every=0, early_stopping_metric=None,
                    early_stopping_patience=0, checkpoint_every=0, trackers=["none"], optim=optim)
    Trainer(model, train, windows, collate, None, output_dir=out, transform=transform, fs=fs).train()
    for p in encoder:
        p.requires_grad_(True)


def evaluate_and_save(cfg: FinetuneConfig, model, data: TaskData, collate, out: Path) -> tuple[dict, dict]:
    """Reports on val and test; diagnosis thresholds tuned on val, stored in the config, applied to test."""
    report, curves, thresholds = {"task": cfg.task, "model": cfg.model, "splits": {}}, {}, None
    for split in ("val", "test"):
        if not data.windows[split]:
            continue
        rep, curve = evaluate_split(cfg, model, data.windows[split], collate, thresholds)
        report["splits"][split], curves[split] = rep, curve
        if split == "val" and "per_class" in rep and "confusion_matrix" not in rep:  # multi-label F1 cut-offs
            thresholds = np.array([c["threshold"] for c in rep["per_class"].values()])
            model.config.decision_thresholds = [float(t) for t in thresholds]
    model.save_pretrained(str(out / "model"))
    return report, curves


def resolve_task(cfg: FinetuneConfig, data: TaskData) -> FinetuneConfig:
    """The config with the task the data resolved ("auto"), and the target kind user labels imply."""
    from dataclasses import replace

    updates = {"task": data.task or cfg.task}
    table = data.labels
    if table is not None and updates["task"] == "target":
        updates["target_task"] = "classification" if table.kind == "multiclass" else "regression"
    return replace(cfg, **updates)


def write_split(data: TaskData, path: Path) -> Path:
    """record,split,subject rows of the run (the split is reproducible from the seed; this file shows it)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["record", "split", "subject"])
        for split, ids in data.records.items():
            w.writerows([rid, split, data.subjects.get(rid, "")] for rid in ids)
    return path


def _without_early_stopping(train: TrainConfig) -> TrainConfig:
    from dataclasses import replace

    logger.warning("no validation windows: training for max_steps without early stopping")
    return replace(train, early_stopping_metric=None, early_stopping_patience=0, eval_every=0)
