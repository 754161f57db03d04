"""The run summary stored in `config.training_summary`: what a checkpoint was trained on and what it reached.

Recipes hand in facts they already hold (step count, losses, window counts, test reports); these functions only
shape them into plain JSON, so the model card can be regenerated truthfully from config.json at any later save.
"""
from __future__ import annotations

import math
import platform

# metrics put into the card's model-index: report key -> (metric type on the Hub, readable name)
CLASSIFICATION_METRICS = {"macro_auroc": ("roc_auc", "macro AUROC"), "micro_auroc": ("roc_auc", "micro AUROC"),
                          "macro_auprc": ("average_precision", "macro AUPRC"), "macro_f1": ("f1", "macro F1")}


def hardware_description() -> str:
    """'1 x NVIDIA H100 80GB HBM3' or '2 CPU threads (x86_64)' for the machine running the recipe."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"{torch.get_num_threads()} CPU threads ({platform.machine()})"


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def data_summary(sources, records: int | None, windows: int | None, window_s: float, fs: float) -> dict:
    """Sources (names), record and window counts and hours of signal (windows x window_s; None when unknown)."""
    hours = None if windows is None else round(windows * window_s / 3600.0, 3)
    return {"sources": [str(s) for s in sources], "records": records, "windows": windows, "hours": hours,
            "window_s": float(window_s), "fs_hz": float(fs)}


def last_logged(metrics_path, key: str) -> tuple[int | None, float | None]:
    """(step, value) of the last finite `key` in an engine metrics.jsonl; (None, None) when never logged."""
    import json
    from pathlib import Path

    step = value = None
    path = Path(metrics_path) if metrics_path else None
    if path is None or not path.is_file():
        return None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if _finite(row.get(key)) is not None:
            step, value = row.get("step"), _finite(row[key])
    return step, value


def run_summary(stage: str, model, data: dict, result, wall_time_s: float, eval_metrics: dict | None = None,
                tokens_seen: int | None = None, samples_seen: int | None = None, metrics_path=None,
                **extra) -> dict:
    """Summary of one training run; `result` is the engine's TrainResult (step, stopped, last eval metrics), the
    final train loss the last one logged in `metrics_path` (metrics.jsonl)."""
    from ..factory import preset_name

    metrics = dict(getattr(result, "metrics", {}) or {})
    loss_step, train_loss = last_logged(metrics_path, "train/loss")
    evals = {k: v for k, v in ((k, _finite(v)) for k, v in {**metrics, **(eval_metrics or {})}.items())
             if v is not None and not k.startswith("train/")}
    return {"stage": stage, "preset": preset_name(model.config),
            "parameters": int(sum(p.numel() for p in model.parameters())), "data": data,
            "steps": int(result.step), "stopped": result.stopped, "samples_seen": samples_seen,
            "tokens_seen": tokens_seen, "final_train_loss": train_loss, "final_train_loss_step": loss_step,
            "eval": evals,
            "wall_time_s": round(float(wall_time_s), 1), "hardware": hardware_description(), **extra}


def test_results(report: dict, split: str = "test") -> list[dict]:
    """A finetuning report's `split` metrics as [{name, type, value, ci95, n}] (classification or regression)."""
    rep = (report.get("splits") or {}).get(split) or {}
    out = []
    if "macro_auroc" in rep:
        for key, (kind, name) in CLASSIFICATION_METRICS.items():
            value = _finite(rep.get(key))
            if value is not None:
                ci = [_finite(c) for c in rep.get(f"{key}_ci95") or []]
                out.append({"name": name, "type": kind, "value": value, "n": rep.get("n_records"),
                            "ci95": ci if len(ci) == 2 and None not in ci else None})
        return out
    for target, row in rep.items():
        if isinstance(row, dict) and "mae" in row:
            ci = [_finite(c) for c in row.get("mae_ci95") or []]
            out.append({"name": f"{target} MAE ({row.get('unit', '')})".replace(" ()", ""), "type": "mae",
                        "value": float(row["mae"]), "n": row.get("n"),
                        "ci95": ci if len(ci) == 2 and None not in ci else None})
    return out


def pretraining_summary(cfg, model, result, wall_time_s: float, eval_metrics: dict | None, tokens_seen: int | None,
                        samples_seen: int | None) -> dict:
    """run_summary of a pretraining run (PretrainConfig `cfg`): corpora from their corpus.json, else synthetic."""
    import json
    from pathlib import Path

    pre = model.config.preprocess
    if cfg.data.corpus_dirs:
        records = windows = 0
        for d in cfg.data.corpus_dirs:
            summary = json.loads((Path(d) / "corpus.json").read_text(encoding="utf-8"))["summary"]
            records, windows = records + summary["records_ok"], windows + summary["samples"]
        data = data_summary([Path(d).name for d in cfg.data.corpus_dirs], records, windows, pre["window_s"],
                            pre["fs"])
    else:
        data = data_summary(["synthetic ECG+PPG with reports (cardiofm.data.synthetic)"], cfg.data.synthetic_size,
                            cfg.data.synthetic_size, pre["window_s"], pre["fs"])
    # a preset starts from random weights; anything else continues a checkpoint
    return run_summary("pretraining", model, data, result, wall_time_s, eval_metrics, tokens_seen, samples_seen,
                       Path(cfg.output_dir) / "metrics.jsonl", base_model=None if cfg.model.name in _presets() else cfg.model.name)


def finetuning_summary(cfg, model, data, report: dict, result, wall_time_s: float) -> dict:
    """run_summary of a finetuning run (FinetuneConfig `cfg`, TaskData `data`, the recipe's report) with the test
    split's metrics and the starting encoder's own pretraining summary."""
    from pathlib import Path

    windows = {k: len(v) for k, v in data.windows.items()}
    records = {k: len(v) for k, v in data.records.items()}
    pre = model.config.preprocess
    summary_data = data_summary([f"{cfg.data.source} ({Path(cfg.data.root).name})"], sum(records.values()),
                                sum(windows.values()), pre["window_s"], pre["fs"])
    summary_data["splits"] = {k: {"records": records.get(k, 0), "windows": windows.get(k, 0)} for k in windows}
    test_split = "test" if windows.get("test") else "val"
    base = None if cfg.model in _presets() else str(cfg.model)
    out = run_summary("finetuning", model, summary_data, result, wall_time_s, None, None, None,
                      Path(cfg.output_dir) / "metrics.jsonl", task=cfg.task,
                      mode=cfg.mode, base_model=base, pretraining=_base_summary(cfg.model))
    metrics = test_results(report, test_split)
    if metrics:
        out["test"] = {"split": test_split, "metrics": metrics,
                       "description": f"{records.get(test_split, 0)} records held out by {cfg.data.split}"}
    return out


def _presets() -> list[str]:
    from ..factory import list_presets

    return list_presets()


def _base_summary(name_or_path) -> dict | None:
    """The starting checkpoint's own training_summary (None for presets: random initialisation)."""
    if str(name_or_path) in _presets():
        return None
    from ..factory import resolve_config

    base = resolve_config(name_or_path).training_summary
    if base:
        base = {k: v for k, v in base.items() if k != "pretraining"}  # one level of history is enough
    return base
