"""CardioFMForDiagnosis: multi-label ECG/PPG diagnosis over any label set, label names kept in the config."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from transformers.utils import ModelOutput

from ..configuration import CardioFMConfig
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, batch_beats
from .heads import apply_head, build_head, TaskModelMixin, multilabel_loss


@dataclass
class DiagnosisOutput(ModelOutput):
    """loss: scalar when labels are given; logits: (B, K) one per label in config.id2label; pooled_output: (B, H)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None


def label_config(label_names: Sequence[str]) -> dict:
    """id2label/label2id config kwargs for an ordered list of label names (SCP codes, SNOMED codes, user labels)."""
    names = [str(n) for n in label_names]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"label names must be unique and non-empty, got {names}")
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


class CardioFMForDiagnosis(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder + pooled linear head with one sigmoid output per label (multi-label).

    Config fields read here (declared in CardioFMConfig): `id2label` (label names, in output order),
    `diagnosis_loss` ("bce" | "asymmetric"), `class_pos_weight` (per-label BCE positive weights),
    `classifier_dropout`, `head_pooling`, `decision_thresholds` (per-label cut-offs tuned on validation data).
    """

    head_key_prefixes = ("head.",)

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        self.cardiofm = CardioFMModel(config)
        self.head = build_head(config, config.num_labels)
        self.post_init()

    @property
    def label_names(self) -> list[str]:
        """Output label names in logit order."""
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **batch_extras) -> DiagnosisOutput:
        """signals (B, C, T), channel_ids/channel_mask/time_offsets (B, C) as in CardioFMModel; labels (B, K) 0/1."""
        encoded = self.cardiofm(signals, channel_ids, channel_mask, time_offsets,
                                beats=batch_beats(batch_extras, "CardioFMForDiagnosis.forward"))
        pooled = encoded.pooled_output
        logits = apply_head(self.head, encoded, channel_mask)
        loss = None
        if labels is not None:
            pos_weight = self.config_tensor("class_pos_weight", logits.device)
            loss = multilabel_loss(logits, labels, self.config.diagnosis_loss, pos_weight)
        return DiagnosisOutput(loss=loss, logits=logits, pooled_output=pooled)

    def predict_proba(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                      **input_options) -> dict[str, float]:
        """Raw (channels, samples) array in physical units (ECG mV) at `fs` Hz -> {label: probability}.

        The checkpoint's own preprocessing (resampling, filtering, windowing) is applied; probabilities are averaged
        over the recording's windows. input_options: units, quality, pad of the input contract (prepare_input).
        """
        probs = torch.sigmoid(self.window_outputs(signal, fs, channels, **input_options)).mean(0).cpu().numpy()
        return {name: float(p) for name, p in zip(self.label_names, probs)}

    def predict_labels(self, signal: np.ndarray, fs: float, channels: Sequence[str] | str,
                       **input_options) -> list[str]:
        """Labels whose probability reaches the stored decision threshold (0.5 when none was tuned)."""
        probs = self.predict_proba(signal, fs, channels, **input_options)
        th = self.config.decision_thresholds or [0.5] * len(probs)
        return [name for (name, p), t in zip(probs.items(), th) if p >= t]
