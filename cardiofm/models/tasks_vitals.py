"""CardioFMForVitals: heart rate, respiratory rate, SpO2 and blood pressure regression in physical units."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from transformers.utils import ModelOutput

from ..data.record import VITALS
from .configuration import CardioFMConfig
from .modeling import CardioFMModel, CardioFMPreTrainedModel
from .task_heads import apply_head, build_head, TaskModelMixin, masked_regression_loss

VITAL_UNITS = {"HR": "bpm", "RR": "breaths/min", "SpO2": "%", "SBP": "mmHg", "DBP": "mmHg"}
# Plausible population defaults, used only until `vitals_config` stores statistics of the training targets.
DEFAULT_MEAN = {"HR": 75.0, "RR": 16.0, "SpO2": 97.0, "SBP": 120.0, "DBP": 70.0}
DEFAULT_STD = {"HR": 15.0, "RR": 4.0, "SpO2": 2.0, "SBP": 20.0, "DBP": 12.0}


@dataclass
class VitalsOutput(ModelOutput):
    """loss: scalar when targets are given; logits: (B, V) normalised; predictions: (B, V) in physical units."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None


def vitals_config(names: Sequence[str] = VITALS, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> dict:
    """Config kwargs for the vitals head: names (subset of VITALS) and target normalisation (mean, SD; units)."""
    names = list(names)
    bad = [n for n in names if n not in VITALS]
    if bad or not names:
        raise ValueError(f"vital names must be a non-empty subset of {VITALS}, got {names}")
    mean = [DEFAULT_MEAN[n] for n in names] if mean is None else [float(m) for m in mean]
    std = [DEFAULT_STD[n] for n in names] if std is None else [float(s) for s in std]
    if len(mean) != len(names) or len(std) != len(names) or min(std) <= 0:
        raise ValueError("vital_mean/vital_std need one value per vital and positive SDs")
    return {"vital_names": names, "vital_mean": mean, "vital_std": std}


class CardioFMForVitals(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder + pooled regression head; targets normalised by config `vital_mean`/`vital_std`.

    Batches carry `vitals`/`vitals_mask` (B, 5) in VITALS order (collate_samples); missing targets are masked out
    of the loss, so a window with only a monitor HR trains only the HR output.
    """

    head_key_prefixes = ("head.",)

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        if getattr(config, "vital_names", None) is None:
            for key, value in vitals_config().items():
                setattr(config, key, value)
        self.cardiofm = CardioFMModel(config)
        self.head = build_head(config, len(config.vital_names))
        self.post_init()

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, vitals: torch.Tensor | None = None,
                vitals_mask: torch.Tensor | None = None, **unused) -> VitalsOutput:
        """signals (B, C, T) etc. as in CardioFMModel; vitals/vitals_mask (B, 5) in VITALS order and units."""
        encoded = self.cardiofm(signals, channel_ids, channel_mask, time_offsets)
        pooled = encoded.pooled_output
        z = apply_head(self.head, encoded, channel_mask)
        mean, std = self.config_tensor("vital_mean", z.device), self.config_tensor("vital_std", z.device)
        pred = z.float() * std + mean
        loss = None
        if vitals is not None:
            index = torch.tensor([VITALS.index(n) for n in self.config.vital_names], device=z.device)
            target = vitals[:, index].float()
            mask = torch.ones_like(target, dtype=torch.bool) if vitals_mask is None else vitals_mask[:, index].bool()
            loss = masked_regression_loss(z, (target - mean) / std, mask)
        return VitalsOutput(loss=loss, logits=z, predictions=pred, pooled_output=pooled)

    def predict(self, signal: np.ndarray, fs: float, channels: Sequence[str]) -> dict[str, float]:
        """Raw (channels, samples) array at `fs` Hz -> {vital: value in physical units}, mean over windows."""
        z = self.window_outputs(signal, fs, channels).mean(0)
        # linear, so the mean of z gives the mean prediction
        values = z * self.config_tensor("vital_std", z.device) + self.config_tensor("vital_mean", z.device)
        return {name: float(v) for name, v in zip(self.config.vital_names, values.cpu().numpy())}
