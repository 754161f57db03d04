"""CardioFMForTarget: a generic head for targets users bring (age, sex, outcomes): single-label classification
(softmax over `id2label`) or regression of named targets (normalised by stored mean/SD, outputs in their units)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from ..configuration import CardioFMConfig
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, batch_beats
from .heads import apply_head, build_head, TaskModelMixin, masked_regression_loss


@dataclass
class TargetOutput(ModelOutput):
    """loss when targets are given; logits (B, K) class scores or normalised values; predictions (B, K):
    class probabilities (classification) or values in the targets' units (regression)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None


def target_config(task: str, names: Sequence[str], mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> dict:
    """Config kwargs: task "classification" (names = classes) or "regression" (names = targets, with mean/SD)."""
    names = [str(n) for n in names]
    if task == "classification":
        if len(names) < 2:
            raise ValueError("classification needs at least two class names")
        return {"target_task": task, "id2label": dict(enumerate(names)),
                "label2id": {n: i for i, n in enumerate(names)}}
    if task == "regression":
        mean = [0.0] * len(names) if mean is None else [float(m) for m in mean]
        std = [1.0] * len(names) if std is None else [float(s) for s in std]
        return {"target_task": task, "target_names": names, "target_mean": mean, "target_std": std}
    raise ValueError(f"unknown target task {task!r}; use 'classification' or 'regression'")


class CardioFMForTarget(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder + pooled head for one user target family; batches carry `targets` ((B,) class ids, or
    (B, K) values with an optional `targets_mask`)."""

    head_key_prefixes = ("head.",)

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        task = config.target_task
        if task not in ("classification", "regression"):
            raise ValueError("config.target_task must be 'classification' or 'regression' (see target_config)")
        self.is_classifier = task == "classification"
        n_out = config.num_labels if self.is_classifier else len(config.target_names)
        self.cardiofm = CardioFMModel(config)
        self.head = build_head(config, n_out)
        self.post_init()

    @property
    def output_names(self) -> list[str]:
        """Class names (classification) or target names (regression), in output order."""
        if self.is_classifier:
            return [self.config.id2label[i] for i in range(self.config.num_labels)]
        return list(self.config.target_names)

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                targets_mask: torch.Tensor | None = None, **batch_extras) -> TargetOutput:
        """Inputs as in CardioFMModel.forward; targets (B,) long class ids or (B, K) float values in their units."""
        encoded = self.cardiofm(signals, channel_ids, channel_mask, time_offsets,
                                beats=batch_beats(batch_extras, "CardioFMForTarget.forward"))
        pooled = encoded.pooled_output
        z = apply_head(self.head, encoded, channel_mask)
        loss = None
        if self.is_classifier:
            pred = torch.softmax(z.float(), -1)
            if targets is not None:
                loss = F.cross_entropy(z.float(), targets.long().view(-1))
        else:
            mean, std = self.config_tensor("target_mean", z.device), self.config_tensor("target_std", z.device)
            pred = z.float() * std + mean
            if targets is not None:
                targets = targets.float().view(len(z), -1)
                mask = torch.isfinite(targets) if targets_mask is None else targets_mask.bool().view_as(targets)
                norm = (torch.nan_to_num(targets) - mean) / std
                loss = masked_regression_loss(z, norm, mask)
        return TargetOutput(loss=loss, logits=z, predictions=pred, pooled_output=pooled)

    def predict(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                **input_options) -> dict[str, float]:
        """Raw (channels, samples) at `fs` Hz -> {class: probability} or {target: value}, averaged over windows
        (input_options: units, quality, pad of the input contract)."""
        z = self.window_outputs(signal, fs, channels, **input_options)
        if self.is_classifier:
            values = torch.softmax(z, -1).mean(0)
        else:
            std, mean = self.config_tensor("target_std", z.device), self.config_tensor("target_mean", z.device)
            values = z.mean(0) * std + mean
        return {name: float(v) for name, v in zip(self.output_names, values.cpu().numpy())}
