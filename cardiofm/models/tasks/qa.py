"""CardioFMForQuestionAnswering: grounded attribute heads + question intent, composed into ECG-QA answers.

Each ECG is encoded on its own and read by attribute heads: per-lead noise flags (4 noise types x 12 leads, from
each lead's own token features), record-level noise flags and the six numeric interval features in ms (measured
prior + learned correction, or from tokens alone). Noise logits are, with a noise prior, the logistic score of
measured signal-quality features (data.signal_quality, fitted on training records: finetune.qa.noise_prior) plus a
learned correction bounded to +-qa_noise_correction_scale logits, so answers at 0.5 rest on calibrated
probabilities. The question's tokens join the sequence of its first ECG and a
template head reads its [CLS]; the rule parser (finetune.qa.questions) gives the intent that decides how the
attribute predictions are composed (finetune.qa.composer), so comparison questions are answered by comparing the
two ECGs' predicted attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ...data.attributes import NOISE_TYPES, NUMERIC_FEATURES, measure_intervals
from ...data.channels import TWELVE_LEADS
from ..configuration import CardioFMConfig
from ..inference import evaluating
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, batch_beats
from .heads import PooledHead, TaskModelMixin

NEG = -1e4  # logit of an answer the template does not allow (finite: keeps bf16/fp16 well defined)


@dataclass
class QAOutput(ModelOutput):
    """loss when targets are given; noise_lead_logits (B, 4, 12) in NOISE_TYPES x TWELVE_LEADS order;
    noise_record_logits (B, 4); numeric_ms (B, 6) NUMERIC_FEATURES in ms; template_logits (B, n_templates) or None
    (no question tokens)."""

    loss: torch.Tensor | None = None
    noise_lead_logits: torch.Tensor | None = None
    noise_record_logits: torch.Tensor | None = None
    numeric_ms: torch.Tensor | None = None
    template_logits: torch.Tensor | None = None


def qa_config(answers: Sequence[str], template_options: dict[int, Sequence[str]], numeric_mean: Sequence[float],
              numeric_std: Sequence[float], normal_ranges: dict[str, Sequence[float]], feature_prior: bool = True,
              prior_residual_scale: float = 0.25, noise_thresholds: dict[str, float] | None = None,
              feature_rules: dict[str, dict[str, int]] | None = None, noise_prior: dict | None = None,
              noise_correction_scale: float = 0.5) -> dict:
    """Head config values: answer vocabulary, per-template options (indices), numeric target statistics (ms), the
    normal range (lo, hi) ms of each numeric feature, and whether numeric features are the measured intervals +
    a learned correction (feature_prior; correction scale = prior_residual_scale x training SD); noise answer
    thresholds per composer.threshold_key ({}: 0.5) and per-feature comparison rules (None: all measured), both
    chosen on training data (finetune.qa.calibration); noise_prior the fitted logistic noise prior
    (finetune.qa.noise_prior; None: noise from the heads alone) and the bound of the heads' correction to it, logits."""
    from ...finetune.qa.composer import MEASURED
    from ...finetune.qa.questions import COMPARISONS
    index = {a: i for i, a in enumerate(answers)}
    tids = sorted(template_options)
    bad = {t: [a for a in template_options[t] if a not in index] for t in tids}
    bad = {t: v for t, v in bad.items() if v}
    if bad:
        raise ValueError(f"template answer options outside the answer vocabulary: {bad}")
    missing = [f for f in NUMERIC_FEATURES if f not in normal_ranges]
    if missing:
        raise ValueError(f"normal ranges missing for {missing}")
    return {"qa_answers": list(answers), "qa_template_ids": tids,
            "qa_template_options": [[index[a] for a in template_options[t]] for t in tids],
            "qa_numeric_mean": [float(v) for v in numeric_mean], "qa_numeric_std": [float(v) for v in numeric_std],
            "qa_normal_ranges": [[float(v) for v in normal_ranges[f]] for f in NUMERIC_FEATURES],
            "qa_feature_prior": bool(feature_prior), "qa_prior_residual_scale": float(prior_residual_scale),
            "qa_noise_thresholds": {str(k): float(v) for k, v in (noise_thresholds or {}).items()},
            "qa_feature_rules": [[int((feature_rules or {}).get(f, {}).get(c, MEASURED)) for c in COMPARISONS]
                                 for f in NUMERIC_FEATURES],
            "qa_noise_prior": dict(noise_prior or {}), "qa_noise_correction_scale": float(noise_correction_scale)}


QA_HEAD_KEYS = ("qa_answers", "qa_template_ids", "qa_template_options", "qa_numeric_mean", "qa_numeric_std",
                "qa_normal_ranges", "qa_feature_prior", "qa_prior_residual_scale", "qa_noise_thresholds",
                "qa_feature_rules")   # qa_noise_prior is optional: checkpoints without one answer from the heads


class CardioFMForQuestionAnswering(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder + attribute heads (noise per lead / per record, numeric features in ms) + template head."""

    head_key_prefixes = ("noise_lead_head.", "noise_record_head.", "numeric_head.", "template_head.")

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        missing = [k for k in QA_HEAD_KEYS if getattr(config, k, None) is None]
        if missing:
            raise ValueError(f"question-answering config lacks {missing}: build it with qa_config(...)")
        h = config.hidden_size
        self.cardiofm = CardioFMModel(config)
        self.noise_lead_head = nn.Sequential(nn.LayerNorm(h, eps=config.layer_norm_eps), nn.Linear(h, len(NOISE_TYPES)))
        self.noise_record_head = PooledHead(h, len(NOISE_TYPES), eps=config.layer_norm_eps)
        self.numeric_head = PooledHead(h, len(NUMERIC_FEATURES), eps=config.layer_norm_eps)
        self.template_head = nn.Linear(h, len(config.qa_template_ids))
        self.post_init()

    @property
    def answers(self) -> list[str]:
        """Answer vocabulary."""
        return list(self.config.qa_answers)

    def template_options(self, template_id: int) -> list[str]:
        """The answers template `template_id` allows; ValueError for a template this model was not built with."""
        ids = list(self.config.qa_template_ids)
        if template_id not in ids:
            raise ValueError(f"unknown template_id {template_id}; this model knows {ids}")
        return [self.answers[i] for i in self.config.qa_template_options[ids.index(template_id)]]

    def decision_rules(self) -> tuple[dict[str, tuple], dict[str, float], dict[str, dict[str, int]]]:
        """(normal ranges ms, noise thresholds, feature rules) in the composer's form, from the config."""
        from ...finetune.qa.questions import COMPARISONS

        ranges = dict(zip(NUMERIC_FEATURES, map(tuple, self.config.qa_normal_ranges)))
        rules = {f: dict(zip(COMPARISONS, map(int, row))) for f, row in zip(NUMERIC_FEATURES,
                                                                             self.config.qa_feature_rules)}
        return ranges, dict(self.config.qa_noise_thresholds), rules

    def _lead_slots(self, channel_ids: torch.Tensor) -> torch.Tensor:
        """(C,) position of each TWELVE_LEADS lead in the input layout (its channel vocabulary id)."""
        vocab = list(self.config.channel_vocab)
        want = torch.tensor([vocab.index(lead) for lead in TWELVE_LEADS], device=channel_ids.device)
        hits = channel_ids[0][None, :] == want[:, None]                       # (12, C)
        if not bool(hits.any(1).all()):
            raise ValueError("question answering needs the 12 leads in the input layout")
        return hits.float().argmax(1)

    def numeric_from(self, correction: torch.Tensor, measured: torch.Tensor | None,
                     measured_found: torch.Tensor | None) -> torch.Tensor:
        """(B, 6) head outputs -> ms: measured prior + std * output where measured (qa_feature_prior), else
        training mean + std * output."""
        mean = self.config_tensor("qa_numeric_mean", correction.device)
        std = self.config_tensor("qa_numeric_std", correction.device)
        base = mean.expand_as(correction)
        if self.config.qa_feature_prior:
            if measured is None or measured_found is None:
                raise ValueError("qa_feature_prior models need the measured intervals (measured, measured_found)")
            base = torch.where(measured_found.bool(), measured.float(), base)
            std = std * self.config.qa_prior_residual_scale
        return base + std * correction.float()

    def noise_from(self, lead_out: torch.Tensor, record_out: torch.Tensor,
                   noise_features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Head outputs (B, 4, 12), (B, 4) -> noise logits: the measured-feature prior + scale * tanh(output) with a
        noise prior (qa_noise_prior), else the outputs themselves."""
        if not self.config.qa_noise_prior:
            return lead_out, record_out
        if noise_features is None:
            raise ValueError("models with a noise prior need the measured signal-quality features (noise_features)")
        from ...finetune.qa.noise_prior import prior_logits

        lead_prior, record_prior = prior_logits(noise_features, self.config.qa_noise_prior)
        scale = self.config.qa_noise_correction_scale
        return (lead_prior + scale * torch.tanh(lead_out.float()),
                record_prior + scale * torch.tanh(record_out.float()))

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, channel_mask: torch.Tensor | None = None,
                time_offsets: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, measured: torch.Tensor | None = None,
                measured_found: torch.Tensor | None = None, noise_features: torch.Tensor | None = None,
                noise_lead: torch.Tensor | None = None, noise_lead_mask: torch.Tensor | None = None,
                noise_record: torch.Tensor | None = None,
                numeric: torch.Tensor | None = None, numeric_mask: torch.Tensor | None = None,
                template_index: torch.Tensor | None = None, **batch_extras) -> QAOutput:
        """signals (B, C, T) one ECG each, optional question input_ids/text_mask (B, L); measured/measured_found
        (B, 6) ms / bool; noise_features (B, 12, F) measured signal quality (data.signal_quality); targets
        noise_lead (+mask) (B, 4, 12), noise_record (B, 4), numeric (+mask) (B, 6) ms, template_index (B,)."""
        out = self.cardiofm(signals, channel_ids, channel_mask, time_offsets, input_ids, text_mask, None,
                            beats=batch_beats(batch_extras, "CardioFMForQuestionAnswering.forward"))
        b, c, p, h = out.signal_hidden_state.shape
        present = out.token_mask[:, :c * p].view(b, c, p).float()
        per_lead = (out.signal_hidden_state * present[..., None]).sum(2) / present.sum(2).clamp_min(1)[..., None]
        per_lead = per_lead[:, self._lead_slots(channel_ids)]                  # (B, 12, H)
        lead_logits, record_logits = self.noise_from(self.noise_lead_head(per_lead).transpose(1, 2),   # (B, 4, 12)
                                                     self.noise_record_head(out.pooled_output), noise_features)
        numeric_ms = self.numeric_from(self.numeric_head(out.pooled_output), measured, measured_found)
        template_logits = None if out.text_hidden_state is None else self.template_head(out.text_hidden_state[:, 0])
        loss = self._loss(lead_logits, record_logits, numeric_ms, template_logits, noise_lead, noise_lead_mask,
                          noise_record, numeric, numeric_mask, template_index)
        return QAOutput(loss=loss, noise_lead_logits=lead_logits, noise_record_logits=record_logits,
                        numeric_ms=numeric_ms, template_logits=template_logits)

    def _loss(self, lead_logits, record_logits, numeric_ms, template_logits, noise_lead, noise_lead_mask,
              noise_record, numeric, numeric_mask, template_index) -> torch.Tensor | None:
        """Sum of the losses whose targets the batch carries (BCE on noise flags, smooth-L1 on numeric features in
        units of their training SD, CE on the template)."""
        parts = []
        if noise_lead is not None:
            mask = torch.ones_like(noise_lead, dtype=torch.bool) if noise_lead_mask is None else noise_lead_mask.bool()
            bce = F.binary_cross_entropy_with_logits(lead_logits.float(), noise_lead.float(), reduction="none")
            parts.append((bce * mask).sum() / mask.sum().clamp_min(1))
        if noise_record is not None:
            parts.append(F.binary_cross_entropy_with_logits(record_logits.float(), noise_record.float()))
        if numeric is not None:
            std = self.config_tensor("qa_numeric_std", numeric_ms.device)
            mask = torch.ones_like(numeric, dtype=torch.bool) if numeric_mask is None else numeric_mask.bool()
            err = F.smooth_l1_loss(numeric_ms / std, numeric.float() / std, reduction="none")
            parts.append((err * mask).sum() / mask.sum().clamp_min(1))
        if template_index is not None and template_logits is not None:
            parts.append(F.cross_entropy(template_logits.float(), template_index))
        return sum(parts) if parts else None

    def ecg_inputs(self, signal: np.ndarray, fs: float, channels: Sequence[str]) -> dict[str, torch.Tensor]:
        """One raw ECG (channels, samples) mV at fs Hz -> model inputs of its first 10 s window, with the measured
        intervals and signal-quality features of that window when the model uses them as priors."""
        batch = {k: v[:1] for k, v in self.windows_batch(signal, fs, channels).items()}
        if self.config.qa_noise_prior:
            from ...data.quality import input_channels
            from ...data.signal_quality import lead_quality_features, raw_window

            pre = self.config.preprocess_config
            names = input_channels(channels, pre.channels)   # the processor accepted them: same names here
            feats = lead_quality_features(raw_window(signal, fs, names, pre.fs, pre.window_s), pre.fs)
            batch["noise_features"] = torch.from_numpy(feats)[None].to(batch["signals"].device)
        if self.config.qa_feature_prior:
            names = list(self.config.preprocess_config.channels)
            window = batch["signals"][0].detach().cpu().numpy()
            values, found = measure_intervals(window, self.config.preprocess_config.fs, names)
            device = batch["signals"].device
            batch["measured"] = torch.tensor(values, dtype=torch.float32, device=device)[None]
            batch["measured_found"] = torch.tensor(found, device=device)[None]
        return batch

    def attributes(self, signal: np.ndarray, fs: float, channels: Sequence[str]) -> dict:
        """Attribute evidence of one ECG: noise probabilities per type and lead, per type, numeric features (ms)."""
        batch = self.ecg_inputs(signal, fs, channels)
        with evaluating(self):
            out = self(**batch)
        lead_p = torch.sigmoid(out.noise_lead_logits[0].float()).cpu().numpy()
        record_p = torch.sigmoid(out.noise_record_logits[0].float()).cpu().numpy()
        numeric = out.numeric_ms[0].float().cpu().numpy()
        if not (np.isfinite(lead_p).all() and np.isfinite(record_p).all() and np.isfinite(numeric).all()):
            raise ValueError("model produced NaN/inf attribute predictions for this ECG")
        return {"noise_lead": {kind: dict(zip(TWELVE_LEADS, map(float, lead_p[k])))
                               for k, kind in enumerate(NOISE_TYPES)},
                "noise_record": dict(zip(NOISE_TYPES, map(float, record_p))),
                "numeric_ms": dict(zip(NUMERIC_FEATURES, map(float, numeric)))}

    def answer(self, question: str, ecgs: Sequence[tuple[np.ndarray, float, Sequence[str]]],
               return_evidence: bool = False):
        """Answer set (list of str) for a question about one or two ECGs, each (signal (C, samples) mV, fs Hz,
        channel names); with return_evidence also the attribute evidence the answer was composed from."""
        from ...finetune.qa.composer import compose
        from ...finetune.qa.questions import parse_question

        intent = parse_question(question)
        if len(ecgs) != intent.n_ecgs:
            raise ValueError(f"the question needs {intent.n_ecgs} ECG(s), got {len(ecgs)}: {question!r}")
        evidence = [self.attributes(*ecg) for ecg in ecgs]
        ranges, thresholds, rules = self.decision_rules()
        answer, used = compose(intent, evidence, ranges, self.template_options(intent.template_id), thresholds, rules)
        return (answer, used) if return_evidence else answer

    @torch.no_grad()
    def predict_template(self, question: str, ecg: tuple[np.ndarray, float, Sequence[str]]) -> int:
        """The template head's template_id for a question read jointly with its first ECG."""
        tokenizer = getattr(self, "report_tokenizer", None)
        if tokenizer is None:
            raise RuntimeError("no question tokenizer attached (model.report_tokenizer); load a saved QA model")
        batch = self.ecg_inputs(*ecg)
        batch["input_ids"], batch["text_mask"] = [t.to(batch["signals"].device) for t in
                                                  tokenizer.encode_batch([question], self.config.max_text_len)]
        with evaluating(self):
            logits = self(**batch).template_logits
        return int(self.config.qa_template_ids[int(logits.argmax(-1))])

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """HF from_pretrained + the question tokenizer saved beside the weights (attached as report_tokenizer)."""
        model = super().from_pretrained(*args, **kwargs)
        loaded = model[0] if isinstance(model, tuple) else model
        path = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        if getattr(loaded, "report_tokenizer", None) is None and path is not None:
            from ..tokenizer import ReportTokenizer
            try:
                loaded.report_tokenizer = ReportTokenizer.from_pretrained(str(path))
            except (OSError, FileNotFoundError):
                pass  # encoder checkpoints carry no question tokenizer: the recipe trains one
        return model
