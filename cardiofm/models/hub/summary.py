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


def run_summary(stage: str, model, data: dict, result, wall_time_s: float, eval_metrics: dict | None = None,
                tokens_seen: int | None = None, samples_seen: int | None = None, **extra) -> dict:
    """Summary of one training run; `result` is the engine's TrainResult (step, stopped, metrics)."""
    from ..factory import preset_name

    metrics = dict(getattr(result, "metrics", {}) or {})
    train_loss = _finite(metrics.get("train/loss"))
    evals = {k: v for k, v in ((k, _finite(v)) for k, v in {**metrics, **(eval_metrics or {})}.items())
             if v is not None and not k.startswith("train/")}
    return {"stage": stage, "preset": preset_name(model.config),
            "parameters": int(sum(p.numel() for p in model.parameters())), "data": data,
            "steps": int(result.step), "stopped": result.stopped, "samples_seen": samples_seen,
            "tokens_seen": tokens_seen, "final_train_loss": train_loss, "eval": evals,
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
