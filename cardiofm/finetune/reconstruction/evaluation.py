"""Reconstruction evaluation in the style of ECGGenEval: signal-level (MSE, MAE, Pearson r), feature-level
(heart-rate consistency across generated leads) and diagnostic-level (a classifier's AUROC on real vs generated)."""
from __future__ import annotations

from typing import Callable

import numpy as np

FLAT_STD_MV = 0.005  # a real lead with std below 5 uV carries no waveform: Pearson r is undefined there


def pearson_per_window(real: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pearson r per (record, lead) over time for (N, L, T) arrays; NaN where the real lead is flat.

    A flat *prediction* of a non-flat lead scores r = 0 (excluding it would reward a model for giving up).
    """
    rc = real - real.mean(-1, keepdims=True)
    pc = pred - pred.mean(-1, keepdims=True)
    rs, ps = np.sqrt((rc ** 2).mean(-1)), np.sqrt((pc ** 2).mean(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rc * pc).mean(-1) / (rs * ps)
    r = np.where(ps < 1e-8, 0.0, r)
    return np.where(rs < FLAT_STD_MV, np.nan, r)


def signal_metrics(real: np.ndarray, pred: np.ndarray, leads: list[str], scored: list[str] | None = None,
                   present: np.ndarray | None = None) -> dict:
    """Per-lead and mean MSE (mV^2), MAE (mV) and Pearson r for (N, L, T) arrays; means over `scored` leads.

    `present` (N, L) bool marks real leads that exist (missing ones are left out of every figure).
    """
    if real.shape != pred.shape:
        raise ValueError(f"real {real.shape} and reconstructed {pred.shape} shapes differ")
    if not np.isfinite(pred).all():
        raise ValueError("reconstruction contains NaN/inf")
    present = np.ones(real.shape[:2], bool) if present is None else present
    err = pred - real
    r = pearson_per_window(real, pred)
    per_lead = {}
    for j, name in enumerate(leads):
        m = present[:, j]
        rj = r[m, j]
        per_lead[name] = {"mse": float(np.mean(err[m, j] ** 2)) if m.any() else float("nan"),
                          "mae": float(np.mean(np.abs(err[m, j]))) if m.any() else float("nan"),
                          "r": float(np.nanmean(rj)) if np.isfinite(rj).any() else float("nan"),
                          "n": int(np.isfinite(rj).sum())}
    scored = [s for s in (scored or leads) if np.isfinite(per_lead[s]["mse"])]
    mean = {k: float(np.nanmean([per_lead[s][k] for s in scored])) if scored else float("nan")
            for k in ("mse", "mae", "r")}
    return {"per_lead": per_lead, "mean": mean, "scored_leads": scored}


def rpeak_heart_rate(x: np.ndarray, fs: float, detect: Callable) -> float:
    """Heart rate (bpm) of one lead (samples,) from the median RR interval of detected R-peaks; NaN if < 2 peaks."""
    peaks = np.asarray(detect(x, fs))
    if len(peaks) < 2:
        return float("nan")
    return float(60.0 * fs / np.median(np.diff(np.sort(peaks))))


def heart_rate_consistency(real: np.ndarray, pred: np.ndarray, leads: list[str], scored: list[str], fs: float,
                           detect: Callable | None = None) -> dict:
    """Feature-level check: HR (bpm) of each generated lead vs the real same lead, and spread across generated leads."""
    if detect is None:
        from ...data.rpeaks import detect_rpeaks as detect
    idx = [leads.index(s) for s in scored]
    abs_err, spread = [], []
    for n in range(real.shape[0]):
        hr_pred = np.array([rpeak_heart_rate(pred[n, j], fs, detect) for j in idx])
        hr_real = np.array([rpeak_heart_rate(real[n, j], fs, detect) for j in idx])
        ok = np.isfinite(hr_pred) & np.isfinite(hr_real)
        abs_err.extend(np.abs(hr_pred[ok] - hr_real[ok]).tolist())
        if np.isfinite(hr_pred).sum() >= 2:
            spread.append(float(np.nanstd(hr_pred)))
    abs_err = np.asarray(abs_err)
    return {"hr_mae_bpm": float(abs_err.mean()) if len(abs_err) else float("nan"),
            "hr_within_5bpm": float((abs_err <= 5).mean()) if len(abs_err) else float("nan"),
            "hr_spread_across_leads_bpm": float(np.mean(spread)) if spread else float("nan"),
            "n_lead_pairs": int(len(abs_err))}


def diagnostic_check(score: Callable[[np.ndarray], np.ndarray], real: np.ndarray, pred: np.ndarray,
                     labels: np.ndarray, label_names: list[str]) -> dict:
    """Diagnostic level: macro AUROC of `score((N,12,T)) -> (N,K)` on real vs reconstructed 12-lead ECGs."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for name, x in (("real", real), ("reconstructed", pred)):
        s = np.asarray(score(x))
        aucs = {label_names[k]: float(roc_auc_score(labels[:, k], s[:, k]))
                for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)}
        out[name] = {"macro_auroc": float(np.mean(list(aucs.values()))) if aucs else float("nan"), "per_label": aucs}
    out["auroc_ratio"] = out["reconstructed"]["macro_auroc"] / out["real"]["macro_auroc"]
    return out


def lead_table(reconstruct_from: Callable[[str], np.ndarray], real: np.ndarray, leads: list[str]) -> dict:
    """12x12 input-lead x output-lead mean Pearson r; `reconstruct_from(lead)` returns (N, 12, T) from that lead."""
    table = np.full((len(leads), len(leads)), np.nan)
    for i, lead in enumerate(leads):
        r = pearson_per_window(real, reconstruct_from(lead))
        table[i] = np.nanmean(r, axis=0)
    return {"input_leads": list(leads), "output_leads": list(leads), "r": table.round(4).tolist(),
            "mean_r_generated": {lead: float(np.nanmean(np.delete(table[i], i))) for i, lead in enumerate(leads)}}


def plot_reconstruction(real: np.ndarray, preds: dict[str, np.ndarray], leads: list[str], fs: float, path,
                        title: str = "", inputs: list[str] = ()) -> None:
    """PNG of one 12-lead ECG (L, T) in mV: real in black, each reconstruction (name -> (L, T)) overlaid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(real.shape[-1]) / fs
    rows = (len(leads) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 1.6 * rows), sharex=True)
    colours = ["tab:red", "tab:blue", "tab:green", "tab:orange"]
    for j, (ax, lead) in enumerate(zip(axes.T.ravel(), leads)):
        ax.plot(t, real[j], color="black", lw=0.8, label="real")
        for (name, p), c in zip(preds.items(), colours):
            ax.plot(t, p[j], color=c, lw=0.7, alpha=0.8, label=name)
        ax.set_ylabel(f"{lead}{' (input)' if lead in inputs else ''}\nmV", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("s", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
