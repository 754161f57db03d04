"""CardioFMForQuestionAnswering: question text + one or two ECGs -> answer set (ECG-QA format).

Two ECGs sit side by side along the channel axis (first ECG segment 0, second segment 1); the question's [CLS] token
attends to every signal token. Answers are a multi-label output over the answer vocabulary; the template's answer
options restrict the output (the template is given, or predicted from the question by a small template head).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ...data.channels import channel_ids
from ...data.preprocess import prepare_input
from ..configuration import CardioFMConfig
from ..modeling import CardioFMModel, CardioFMPreTrainedModel, batch_beats
from .heads import TaskModelMixin

NEG = -1e4  # logit of an answer the template does not allow (finite: keeps bf16/fp16 and BCE well defined)


@dataclass
class QAOutput(ModelOutput):
    """loss (answers BCE + template CE) when labels are given; logits (B, K) answers, disallowed ones at NEG;
    template_logits (B, n_templates)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    template_logits: torch.Tensor | None = None


def qa_config(answers: Sequence[str], template_options: dict[int, Sequence[str]],
              single_answer_templates: Sequence[int] = ()) -> dict:
    """Head config values: answer vocabulary, per-template allowed answers (as indices) and single-answer flags."""
    index = {a: i for i, a in enumerate(answers)}
    tids = sorted(template_options)
    bad = {t: [a for a in template_options[t] if a not in index] for t in tids}
    bad = {t: v for t, v in bad.items() if v}
    if bad:
        raise ValueError(f"template answer options outside the answer vocabulary: {bad}")
    return {"qa_answers": list(answers), "qa_template_ids": tids,
            "qa_template_options": [[index[a] for a in template_options[t]] for t in tids],
            "qa_single_answer": [t in set(single_answer_templates) for t in tids]}


class CardioFMForQuestionAnswering(TaskModelMixin, CardioFMPreTrainedModel):
    """Shared encoder over [ECG tokens | question tokens] + answer head and template head."""

    head_key_prefixes = ("qa_head.", "template_head.")

    def __init__(self, config: CardioFMConfig):
        super().__init__(config)
        if config.beat_tokens and config.beat_segment < 2:
            # segments 0 and 1 are the two ECGs of a question; median beats need a third id
            raise ValueError(f"question answering with beat_tokens needs num_segments >= 3, got {config.num_segments}")
        h = config.hidden_size
        self.cardiofm = CardioFMModel(config)
        n_answers = len(getattr(config, "qa_answers", None) or ["no", "yes"])
        n_templates = len(getattr(config, "qa_template_ids", None) or [0])
        # [CLS] of the question + mean signal feature of each ECG of the pair
        self.qa_head = nn.Sequential(nn.LayerNorm(3 * h, eps=config.layer_norm_eps), nn.Linear(3 * h, h), nn.GELU(),
                                     nn.Linear(h, n_answers))
        self.template_head = nn.Linear(h, n_templates)
        self.post_init()

    @property
    def answers(self) -> list[str]:
        """Answer vocabulary in logit order."""
        return list(self.config.qa_answers)

    def option_mask(self, template_index: torch.Tensor) -> torch.Tensor:
        """(B,) template positions -> (B, K) bool of the answers each template allows."""
        k = len(self.config.qa_answers)
        table = torch.zeros(len(self.config.qa_template_ids), k, dtype=torch.bool, device=template_index.device)
        for t, opts in enumerate(self.config.qa_template_options):
            table[t, opts] = True
        return table[template_index]

    def forward(self, signals: torch.Tensor, channel_ids: torch.Tensor, input_ids: torch.Tensor,
                channel_mask: torch.Tensor | None = None, time_offsets: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, template_index: torch.Tensor | None = None,
                **unused) -> QAOutput:
        """signals (B, C, T) (two ECGs: 2 x 13 channels, segment_ids 0/1), question input_ids/text_mask (B, L),
        labels (B, K) multi-hot answers, template_index (B,) position in config.qa_template_ids."""
        out = self.cardiofm(signals, channel_ids, channel_mask, time_offsets, input_ids, text_mask, segment_ids,
                           beats=batch_beats(unused))
        b, c, p, h = out.signal_hidden_state.shape
        seg = torch.zeros(b, c, dtype=torch.long, device=signals.device) if segment_ids is None else segment_ids
        present = out.token_mask[:, :c * p].view(b, c, p).float()
        pooled = []
        for s in (0, 1):
            w = present * (seg == s)[..., None]
            pooled.append((out.signal_hidden_state * w[..., None]).sum((1, 2)) / w.sum((1, 2)).clamp_min(1)[:, None])
        cls = out.text_hidden_state[:, 0]
        template_logits = self.template_head(cls)
        chosen = template_logits.argmax(-1) if template_index is None else template_index
        logits = self.qa_head(torch.cat([cls] + pooled, -1))
        allowed = self.option_mask(chosen)
        logits = logits.masked_fill(~allowed, NEG)
        loss = None
        if labels is not None:
            # BCE only over the template's options: the others are excluded by construction, not learned
            bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
            loss = (bce * allowed).sum() / allowed.sum().clamp_min(1)
            if template_index is not None:
                loss = loss + F.cross_entropy(template_logits.float(), template_index)
        return QAOutput(loss=loss, logits=logits, template_logits=template_logits)

    def decide(self, logits: torch.Tensor, template_index: torch.Tensor) -> list[list[str]]:
        """(B, K) logits -> answer sets: argmax for single-answer templates, else p >= 0.5 (at least one answer)."""
        probs = torch.sigmoid(logits.float())
        out = []
        for p, t in zip(probs, template_index.tolist()):
            pick = [int(p.argmax())]
            if not self.config.qa_single_answer[t]:
                above = torch.nonzero(p >= 0.5).flatten().tolist()
                pick = above or pick
            out.append([self.config.qa_answers[i] for i in pick])
        return out

    def qa_inputs(self, question: str, ecgs: Sequence[tuple[np.ndarray, float, Sequence[str]]]) -> dict:
        """One question + 1-2 raw ECGs (signal mV, fs Hz, channel names) -> model inputs (first 10 s window each)."""
        if not 1 <= len(ecgs) <= 2:
            raise ValueError(f"a question is about one or two ECGs, got {len(ecgs)}")
        tokenizer = getattr(self, "report_tokenizer", None)
        if tokenizer is None:
            raise RuntimeError("no question tokenizer attached (model.report_tokenizer); load a saved QA model")
        cfg = self.config.preprocess_config
        sig, mask = [], []
        for signal, fs, chans in ecgs:
            prep = prepare_input(np.asarray(signal), float(fs), list(chans), cfg)
            sig.append(prep["signal"][0])
            mask.append(prep["channel_mask"][0])
        if len(ecgs) == 1:
            sig.append(np.zeros_like(sig[0]))
            mask.append(np.zeros_like(mask[0]))
        ids = channel_ids(list(cfg.channels) * 2, tuple(self.config.channel_vocab))
        n = len(cfg.channels)
        input_ids, text_mask = tokenizer.encode_batch([question], self.config.max_text_len)
        device = next(self.parameters()).device
        return {"signals": torch.from_numpy(np.concatenate(sig))[None].to(device),
                "channel_ids": torch.tensor(ids)[None].to(device),
                "channel_mask": torch.from_numpy(np.concatenate(mask))[None].to(device),
                "segment_ids": torch.tensor([0] * n + [1] * n)[None].to(device),
                "input_ids": input_ids.to(device), "text_mask": text_mask.to(device)}

    @torch.no_grad()
    def answer(self, question: str, ecgs: Sequence[tuple[np.ndarray, float, Sequence[str]]],
               template_id: int | None = None) -> list[str]:
        """Answer set for a question about one or two ECGs, each (signal (C, samples) mV, fs Hz, channel names)."""
        batch = self.qa_inputs(question, ecgs)
        if template_id is not None:
            if template_id not in self.config.qa_template_ids:
                raise ValueError(f"unknown template_id {template_id}")
            batch["template_index"] = torch.tensor([self.config.qa_template_ids.index(template_id)],
                                                   device=batch["signals"].device)
        was_training = self.training
        self.eval()
        try:
            out = self(**batch)
        finally:
            self.train(was_training)
        chosen = batch.get("template_index", out.template_logits.argmax(-1))
        return self.decide(out.logits, chosen)[0]
