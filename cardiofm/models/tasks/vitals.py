"""CardioFMForVitals: heart rate, respiratory rate, SpO2 and blood pressure regression in physical units."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from transformers.utils import ModelOutput

from ...data.beats import RATE_FEATURES, batch_rate_features, measured_rate
from ...data.record import VITALS
from ..configuration import CardioFMConfig
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, batch_beats
from .heads import apply_head, build_head, TaskModelMixin, masked_regression_loss

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
                  std: Sequence[float] | None = None, rate_prior: bool = False,
                  rate_residual_std: float | None = None) -> dict:
    """Config kwargs for the vitals head: names (subset of VITALS), target normalisation (mean, SD; units) and the
    rate prior (HR = measured beat rate + learned correction, whose scale is rate_residual_std in bpm)."""
    names = list(names)
    bad = [n for n in names if n not in VITALS]
    if bad or not names:
        raise ValueError(f"vital names must be a non-empty subset of {VITALS}, got {names}")
    mean = [DEFAULT_MEAN[n] for n in names] if mean is None else [float(m) for m in mean]
    std = [DEFAULT_STD[n] for n in names] if std is None else [float(s) for s in std]
    if len(mean) != len(names) or len(std) != len(names) or min(std) <= 0:
        raise ValueError("vital_mean/vital_std need one value per vital and positive SDs")
    if rate_prior and "HR" not in names:
        raise ValueError("rate_prior needs HR among the vital names")
    residual = float(rate_residual_std) if rate_residual_std else 2.0
    return {"vital_names": names, "vital_mean": mean, "vital_std": std, "rate_prior": bool(rate_prior),
            "rate_residual_std": residual}


class CardioFMForVitals(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder + pooled regression head; targets normalised by config `vital_mean`/`vital_std`.

    Batches carry `vitals`/`vitals_mask` (B, 5) in VITALS order (collate_samples); missing targets are masked out
    of the loss, so a window with only a monitor HR trains only the HR output. With config `rate_prior`, HR is the
    window's measured beat rate (ECG median R-R, else PPG pulse interval; `cardiofm.data.beats`, computed here
    from the model's own input so training, evaluation and `predict` share it) plus a correction the head learns
    from the encoder's features and the rate measurements, in units of `rate_residual_std` bpm.
    """

    head_key_prefixes = ("head.", "rate_proj.")

    def __init__(self, config: CardioFMConfig):
        if config.vital_names is None:  # population defaults, on a copy: the caller's config stays as given
            config = copy.deepcopy(config)
            config.update(vitals_config())
        super().__init__(config)
        self.cardiofm = CardioFMModel(config)
        self.head = build_head(config, len(config.vital_names))
        if self.uses_rate_prior:
            self.rate_proj = nn.Linear(len(RATE_FEATURES) + 1, len(config.vital_names))
            self.rate_proj.zero_init = True
            self.head.proj.zero_init = True
        self.post_init()

    @property
    def uses_rate_prior(self) -> bool:
        """True when HR is predicted as measured beat rate + learned correction."""
        return bool(self.config.rate_prior)

    def rate_inputs(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None,
                    rate_features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) HR prior in bpm and (B, 7) normalised rate features of the preprocessed windows; rate_features
        (B, 6) RATE_FEATURES measured by the collate (data layer) are used as given, else measured here."""
        if rate_features is not None:
            raw = rate_features.detach().float().cpu().numpy()
        else:  # raw-array inference or a batch from a collate without rate_fs
            vocab = self.config.channel_vocab
            names = [[vocab[i] for i in row] for row in channel_ids.tolist()]
            present = np.ones(channel_ids.shape, bool) if channel_mask is None else channel_mask.bool().cpu().numpy()
            raw = batch_rate_features(signals.detach().float().cpu().numpy(), names, present,
                                      self.config.sampling_rate)
        k = self.config.vital_names.index("HR")
        mean, std = self.config.vital_mean[k], self.config.vital_std[k]
        # nothing detected in a window: the training mean stands in for the measurement
        prior = torch.from_numpy(np.nan_to_num(measured_rate(raw), nan=mean)).to(signals.device, torch.float32)
        e_med, e_mean, e_ok, p_med, p_ok, cv = torch.from_numpy(raw).to(signals.device).unbind(-1)
        # the disagreement of the two sources, in residual units, tells the head when the ECG count is doubtful
        both = e_ok * p_ok
        gap = (both * (e_med - p_med) / self.config.rate_residual_std).clamp(-5, 5)
        norm = torch.stack([(e_med - mean) / std * e_ok, (e_mean - e_med) / self.config.rate_residual_std * e_ok,
                            e_ok, (p_med - mean) / std * p_ok, p_ok, cv.clamp(0, 1), gap], -1)
        return prior, norm

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, vitals: torch.Tensor | None = None,
                vitals_mask: torch.Tensor | None = None, rate_features: torch.Tensor | None = None,
                **batch_extras) -> VitalsOutput:
        """signals (B, C, T) etc. as in CardioFMModel; vitals/vitals_mask (B, 5) in VITALS order and units;
        rate_features (B, 6) beat rates measured in the data pipeline (else measured here)."""
        encoded = self.cardiofm(signals, channel_ids, channel_mask, time_offsets,
                                beats=batch_beats(batch_extras, "CardioFMForVitals.forward"))
        z = apply_head(self.head, encoded, channel_mask).float()
        base = self.config_tensor("vital_mean", z.device).expand_as(z)
        scale = self.config_tensor("vital_std", z.device).expand_as(z)
        if self.uses_rate_prior:
            prior, feats = self.rate_inputs(signals, channel_ids, channel_mask, rate_features)
            z = z + self.rate_proj(feats.to(self.rate_proj.weight.dtype)).float()
            k = self.config.vital_names.index("HR")
            hr = torch.zeros_like(z, dtype=torch.bool)
            hr[:, k] = True
            base = torch.where(hr, prior[:, None].to(z.dtype), base)
            scale = torch.where(hr, torch.full_like(scale, self.config.rate_residual_std), scale)
        pred = z * scale + base
        loss = None
        if vitals is not None:
            index = torch.tensor([VITALS.index(n) for n in self.config.vital_names], device=z.device)
            target = vitals[:, index].float()
            mask = torch.ones_like(target, dtype=torch.bool) if vitals_mask is None else vitals_mask[:, index].bool()
            loss = masked_regression_loss(z, (target - base) / scale, mask)
        return VitalsOutput(loss=loss, logits=z, predictions=pred, pooled_output=encoded.pooled_output)

    def predict(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                **input_options) -> dict[str, float]:
        """Raw (channels, samples) array at `fs` Hz -> {vital: value in physical units}, mean over windows
        (input_options: units, quality, pad of the input contract)."""
        # predictions, not logits: with the rate prior each window has its own base, so z does not average linearly
        values = self.window_outputs(signal, fs, channels, field="predictions", **input_options).mean(0)
        return {name: float(v) for name, v in zip(self.config.vital_names, values.cpu().numpy())}
