"""Reconstruction evaluation run: every input set scored for the model and the lagged linear baseline side by side,
limb-lead identities, 12x12 single-lead table, heart-rate consistency, diagnostic AUROC, and PNG figures."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...data.channels import LIMB_LEADS, TWELVE_LEADS
from ...models.inference import evaluating
from .baseline import fit_predict_baseline, limb_identity_residuals
from .evaluation import diagnostic_check, heart_rate_consistency, lead_table, plot_reconstruction, signal_metrics

logger = logging.getLogger(__name__)
SUPERCLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


def stack_windows(windows: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Window samples -> signals (N, C, T), present mask (N, C), channel names."""
    if not windows:
        return np.zeros((0, 0, 0), np.float32), np.zeros((0, 0), bool), []
    return (np.stack([w["signal"] for w in windows]), np.stack([w["channel_mask"] for w in windows]),
            list(windows[0]["channels"]))


def model_reconstruct(model, x: np.ndarray, names: list[str], inputs: list[str], batch_size: int = 64) -> np.ndarray:
    """Model output (N, 12, T) from the named input channels of preprocessed windows x (N, C, T)."""
    from ...data.channels import channel_ids

    vocab = tuple(model.config.channel_vocab)
    ids = torch.tensor(channel_ids(names, vocab))
    mask = torch.tensor([n in inputs for n in names])
    tid = torch.tensor(channel_ids(list(TWELVE_LEADS), vocab))
    device = next(model.parameters()).device
    outs = []
    with evaluating(model):
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i:i + batch_size]).to(device) * mask[None, :, None].to(device)
            b = len(xb)
            outs.append(model(xb, ids[None].expand(b, -1).to(device), mask[None].expand(b, -1).to(device),
                              target_ids=tid[None].expand(b, -1).to(device)).reconstruction.float().cpu())
    return torch.cat(outs).numpy()


def diagnosis_features(x: np.ndarray) -> np.ndarray:
    """(N, 12, T) mV -> (N, 12*7) amplitude/slope/spectral summaries per lead for a classical diagnosis scorer."""
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    edges = np.linspace(0, spec.shape[-1], 5).astype(int)
    bands = np.stack([spec[..., a:b].sum(-1) for a, b in zip(edges[:-1], edges[1:])], -1)
    bands = bands / bands.sum(-1, keepdims=True).clip(1e-12)
    stats = np.stack([x.std(-1), np.percentile(x, 2, axis=-1), np.percentile(x, 98, axis=-1),
                      np.abs(np.diff(x, axis=-1)).mean(-1)], -1)
    return np.concatenate([stats, bands[..., :3]], -1).reshape(len(x), -1)


def fit_diagnosis_scorer(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """One-vs-rest logistic regression on diagnosis_features, fitted on real training 12-lead ECGs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(diagnosis_features(x))
    fits = [LogisticRegression(C=0.05, max_iter=2000).fit(scaler.transform(diagnosis_features(x)), y[:, k])
            if 0 < y[:, k].sum() < len(y) else None for k in range(y.shape[1])]

    def score(z: np.ndarray) -> np.ndarray:
        f = scaler.transform(diagnosis_features(z))
        return np.stack([m.predict_proba(f)[:, 1] if m is not None else np.zeros(len(z)) for m in fits], 1)
    return score


def _labels(windows: list[dict]) -> np.ndarray:
    return np.array([[c in w["meta"]["superclasses"] for c in SUPERCLASSES] for w in windows], dtype=float)


def _one_set(cfg, model, inputs, tr, te, fig_dir: Path) -> dict:
    """Model vs baseline metrics for one input set on (x, present, names) train/test triples."""
    (xtr, ptr, names), (xte, pte, _) = tr, te
    lead_idx = [names.index(n) for n in TWELVE_LEADS]
    present = pte[:, lead_idx]
    usable = [n for j, n in enumerate(TWELVE_LEADS) if present[:, j].all() and ptr[:, names.index(n)].all()]
    scored = [n for n in usable if n not in inputs]
    rows = ptr[:, [names.index(n) for n in inputs]].all(1)
    real = xte[:, lead_idx]
    pred = model_reconstruct(model, xte, names, inputs, cfg.eval_batch_size)
    base = np.zeros_like(real)
    base_idx = [TWELVE_LEADS.index(n) for n in usable]
    base[:, base_idx] = fit_predict_baseline(xtr[rows], xte, names, inputs, usable, model.config.sampling_rate,
                                             cfg.max_lag_s)
    res = {"inputs": inputs, "n_test": int(len(xte)), "n_train_baseline": int(rows.sum()),
           "model": signal_metrics(real, pred, list(TWELVE_LEADS), scored, present),
           "linear_baseline": signal_metrics(real, base, list(TWELVE_LEADS), scored, present)}
    m, b = res["model"]["mean"], res["linear_baseline"]["mean"]
    res["beats_baseline"] = {"r": m["r"] > b["r"], "mse": m["mse"] < b["mse"]}
    if all(n in usable for n in LIMB_LEADS):
        limb_err = float(np.sqrt(np.mean([res["model"]["per_lead"][n]["mse"] for n in LIMB_LEADS if n not in inputs]
                                         or [0.0])))
        res["limb_identities"] = {"model_residual_rms_mv": limb_identity_residuals(pred, list(TWELVE_LEADS)),
                                  "real_residual_rms_mv": limb_identity_residuals(real, list(TWELVE_LEADS)),
                                  "model_limb_rmse_mv": limb_err}
        res["heart_rate"] = {"model": heart_rate_consistency(real, pred, list(TWELVE_LEADS), scored,
                                                             model.config.sampling_rate),
                             "linear_baseline": heart_rate_consistency(real, base, list(TWELVE_LEADS), scored,
                                                                       model.config.sampling_rate)}
    tag = "+".join(inputs)
    for k in range(min(cfg.n_figures, len(xte))):
        plot_reconstruction(real[k], {"model": pred[k], "linear": base[k]}, list(TWELVE_LEADS),
                            model.config.sampling_rate, fig_dir / f"recon_{tag}_{k}.png",
                            f"from {tag}: real (black) vs model (red) vs lagged linear (blue)", inputs)
    res["_pred"], res["_base"] = pred, base
    return res


def evaluate_reconstruction(cfg, model, data, out: Path) -> dict:
    """Score every eval input set (PPG sets on BIDMC, others on PTB-XL) and the optional table/diagnostic checks."""
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    ptb = {s: stack_windows(data.windows[f"ptbxl_{s}"]) for s in ("train", "test")}
    bid = {s: stack_windows(data.windows[f"bidmc_{s}"]) for s in ("train", "test")}
    results: dict = {"sets": {}, "fs": model.config.sampling_rate,
                     "n_windows": {k: len(v) for k, v in data.windows.items()}}
    preds = {}
    for inputs in cfg.eval_sets:
        src = bid if "PPG" in inputs else ptb
        if not len(src["test"][0]) or not len(src["train"][0]):
            results["sets"]["+".join(inputs)] = {"skipped": "no data with these channels (set bidmc for PPG)"}
            continue
        res = _one_set(cfg, model, list(inputs), src["train"], src["test"], fig_dir)
        preds["+".join(inputs)] = (res.pop("_pred"), res.pop("_base"))
        results["sets"]["+".join(inputs)] = res
        logger.info("from %-10s model r %.3f mse %.4f | linear r %.3f mse %.4f", "+".join(inputs),
                    res["model"]["mean"]["r"], res["model"]["mean"]["mse"], res["linear_baseline"]["mean"]["r"],
                    res["linear_baseline"]["mean"]["mse"])
    (xtr, _, names), (xte, _, _) = ptb["train"], ptb["test"]
    lead_idx = [names.index(n) for n in TWELVE_LEADS]
    if cfg.lead_table and len(xte):
        results["lead_table"] = {
            "model": lead_table(lambda lead: model_reconstruct(model, xte, names, [lead], cfg.eval_batch_size),
                                xte[:, lead_idx], list(TWELVE_LEADS)),
            "linear_baseline": lead_table(lambda lead: fit_predict_baseline(
                xtr, xte, names, [lead], list(TWELVE_LEADS), model.config.sampling_rate, cfg.max_lag_s),
                xte[:, lead_idx], list(TWELVE_LEADS))}
    if cfg.diagnostic_check and len(xte):
        results["diagnostic"] = _diagnostic(cfg, data, xtr[:, lead_idx], xte[:, lead_idx], preds,
                                               model.config.sampling_rate)
    return results


def _diagnostic(cfg, data, real_tr: np.ndarray, real_te: np.ndarray, preds: dict, fs: float) -> dict:
    """Macro AUROC over PTB-XL superclasses on real vs model vs baseline 12-lead, per PTB-XL input set."""
    y_tr, y_te = _labels(data.windows["ptbxl_train"]), _labels(data.windows["ptbxl_test"])
    if cfg.diagnosis_model:
        from ...models import CardioFMForDiagnosis

        clf = CardioFMForDiagnosis.from_pretrained(cfg.diagnosis_model)
        names = clf.label_names
        y_te = np.array([[c in w["meta"]["superclasses"] for c in names] for w in data.windows["ptbxl_test"]], float)

        def score(x):
            return np.stack([np.array(list(clf.predict_proba(r, fs, list(TWELVE_LEADS)).values())) for r in x])
        scorer, label_names, kind = score, names, cfg.diagnosis_model
    else:
        scorer, label_names, kind = fit_diagnosis_scorer(real_tr, y_tr), SUPERCLASSES, "logistic regression on " \
            "per-lead amplitude/slope/spectral features, fitted on real training ECGs"
    out = {"classifier": kind}
    for tag, (pred, base) in preds.items():
        if pred.shape != real_te.shape:
            continue
        out[tag] = {"model": diagnostic_check(scorer, real_te, pred, y_te, label_names),
                    "linear_baseline": diagnostic_check(scorer, real_te, base, y_te, label_names)}
    return out
