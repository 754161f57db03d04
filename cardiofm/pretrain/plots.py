"""Reconstruction figure: true 12-lead ECG with the model's reconstruction of the patches it did not see."""
from __future__ import annotations

import numpy as np
import torch

from ..data.channels import CHANNEL_VOCAB, TWELVE_LEADS


def reconstruction_figure(signals: np.ndarray, predictions: np.ndarray, hidden: np.ndarray, channel_ids: np.ndarray,
                          fs: float, title: str = ""):
    """One sample: signals (C, T) mV, predictions (C, P, patch) mV, hidden (C, P) bool -> 6 x 2 grid of the leads.

    Black: the recording; red: the reconstruction, drawn only on patches hidden from the encoder.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [CHANNEL_VOCAB[int(i)] for i in channel_ids]
    c, t = signals.shape
    patch = predictions.shape[-1]
    recon = np.full((c, predictions.shape[1] * patch), np.nan, dtype=np.float32)
    for ch in range(c):
        for p in np.flatnonzero(hidden[ch]):
            recon[ch, p * patch:(p + 1) * patch] = predictions[ch, p]
    time_s = np.arange(t) / fs
    fig, axes = plt.subplots(6, 2, figsize=(12, 9), sharex=True)
    for k, lead in enumerate(TWELVE_LEADS):
        ax = axes[k % 6, k // 6]
        if lead in names:
            ch = names.index(lead)
            ax.plot(time_s, signals[ch], color="black", lw=0.7, label="true")
            ax.plot(time_s, recon[ch, :t], color="tab:red", lw=0.9, label="reconstructed (masked)")
            frac = hidden[ch].mean() if hidden[ch].size else 0.0
            ax.set_title(f"{lead}  ({100 * frac:.0f}% masked)", fontsize=8, loc="left")
        else:
            ax.set_title(f"{lead} (absent)", fontsize=8, loc="left")
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=7)
    fig.suptitle(title or "12-lead reconstruction of masked patches (mV)", fontsize=10)
    fig.tight_layout()
    return fig


def make_plot_fn(fs: float):
    """plot_fn for the Trainer: forward the fixed batch once, draw its first sample."""
    def plot_fn(model, batch: dict, step: int) -> dict:
        out = model(**batch)
        hidden = out.loss_mask[0].cpu().numpy()  # hidden and present: where the decoder predicted
        fig = reconstruction_figure(batch["signals"][0].float().cpu().numpy(),
                                    out.predictions[0].float().cpu().numpy(), hidden,
                                    batch["channel_ids"][0].cpu().numpy(), fs,
                                    title=f"step {step}: true (black) vs reconstructed masked patches (red), mV")
        return {"reconstruction/12_lead": fig}
    return plot_fn


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Detached float32 numpy copy."""
    return x.detach().float().cpu().numpy()
