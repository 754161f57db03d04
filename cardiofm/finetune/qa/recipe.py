"""ECG question-answering recipe: ECG-QA questions joined to PTB-XL -> finetune CardioFMForQuestionAnswering on the
shared engine -> exact match of the answer set per question type and attribute type vs the majority-answer baseline."""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...config import ConfigError, save_config
from ...data.channels import channel_ids
from ...data.preprocess import PreprocessConfig, preprocess_record
from ...data.readers.ecgqa import QAItem, check_answers, join_ptbxl, read_answer_vocab, read_questions, \
    read_template_options
from ...engine.config import TrainConfig

logger = logging.getLogger(__name__)
_VERIFY_ANSWERS = {"yes", "no", "not sure"}


@dataclass
class QAConfig:
    """One ECG-QA finetuning run."""

    model: str = "tiny"                  # pretraining checkpoint dir / Hub id, or a preset (random init)
    model_overrides: dict[str, int] = field(default_factory=dict)
    ecgqa: str = ""                      # folder with template/paraphrased JSON, answers.csv, per-template options
    ptbxl: str = ""                      # PTB-XL root the ecg_ids refer to
    variants: list[str] = field(default_factory=lambda: ["template", "paraphrased"])
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    test_folds: list[int] = field(default_factory=lambda: [8])  # split by the strat_fold of the first ECG
    max_questions: int = 0               # 0 = all (tests use a few)
    tokenizer_vocab: int = 400           # question vocabulary (trained on the training questions)
    output_dir: str = "runs/qa"
    eval_batch_size: int = 32
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=200, batch_size=16, checkpoint_every=0, log_every=25, trackers=["none"]))

    def validate(self) -> None:
        """Raise ConfigError on unusable settings."""
        if set(self.train_folds) & set(self.test_folds):
            raise ConfigError("train_folds and test_folds overlap")


def _ecg_windows(records: dict, pre: PreprocessConfig) -> dict[int, dict]:
    """ecg_id -> its first preprocessed window (ECG-QA questions are about the 10 s PTB-XL recording)."""
    return {i: preprocess_record(rec, pre)[0] for i, rec in records.items()}


def qa_samples(items: list[QAItem], ecgs: dict[int, dict], answers: list[str], template_ids: list[int],
               vocab: tuple[str, ...]) -> list[dict]:
    """Questions -> samples: signal (2C, T) = [first ECG | second ECG or zeros], segment ids, labels, template."""
    index = {a: i for i, a in enumerate(answers)}
    out = []
    for it in items:
        first = ecgs[it.ecg_ids[0]]
        second = ecgs[it.ecg_ids[1]] if it.n_ecgs == 2 else None
        c = len(first["channels"])
        labels = np.zeros(len(answers), np.float32)
        labels[[index[a] for a in it.answer]] = 1.0
        out.append({
            "signal": np.concatenate([first["signal"], second["signal"] if second else np.zeros_like(first["signal"])]),
            "channel_mask": np.concatenate([first["channel_mask"], second["channel_mask"] if second
                                            else np.zeros(c, bool)]),
            "channel_ids": np.array(channel_ids(list(first["channels"]) * 2, vocab)),
            "segment_ids": np.array([0] * c + [1] * c), "question": it.question, "labels": labels,
            "template_index": template_ids.index(it.template_id), "item": it})
    return out


def make_qa_collate(tokenizer, max_text_len: int):
    """collate_fn: stack QA samples and tokenize the questions."""
    def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = tokenizer.encode_batch([s["question"] for s in samples], max_text_len)
        return {"signals": torch.from_numpy(np.stack([s["signal"] for s in samples])),
                "channel_ids": torch.from_numpy(np.stack([s["channel_ids"] for s in samples])).long(),
                "channel_mask": torch.from_numpy(np.stack([s["channel_mask"] for s in samples])),
                "segment_ids": torch.from_numpy(np.stack([s["segment_ids"] for s in samples])).long(),
                "input_ids": ids, "text_mask": mask,
                "labels": torch.from_numpy(np.stack([s["labels"] for s in samples])),
                "template_index": torch.tensor([s["template_index"] for s in samples])}
    return collate


def majority_answers(train: list[QAItem]) -> dict[int, list[str]]:
    """template_id -> the most frequent answer set of that template in the training questions."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for it in train:
        counts[it.template_id][tuple(sorted(it.answer))] += 1
    return {t: list(c.most_common(1)[0][0]) for t, c in counts.items()}


def exact_match_report(items: list[QAItem], predictions: list[list[str]], majority: dict[int, list[str]]) -> dict:
    """Exact match of answer sets (model and majority baseline), overall, per question type and attribute type."""
    rows = []
    for it, pred in zip(items, predictions):
        base = majority.get(it.template_id, [])
        rows.append((it, set(pred) == set(it.answer), set(base) == set(it.answer)))

    def summary(sel):
        n = len(sel)
        return {"n": n, "model_em": float(np.mean([m for _, m, _ in sel])) if n else float("nan"),
                "majority_em": float(np.mean([b for _, _, b in sel])) if n else float("nan")}
    out = {"overall": summary(rows), "by_question_type": {}, "by_attribute_type": {}, "by_variant": {}}
    for key, attr in (("by_question_type", "question_type"), ("by_attribute_type", "attribute_type"),
                      ("by_variant", "variant")):
        for value in sorted({getattr(it, attr) for it in items}):
            out[key][value] = summary([r for r in rows if getattr(r[0], attr) == value])
    return out


@torch.no_grad()
def predict_answers(model, samples: list[dict], collate, batch_size: int, given_template: bool = True):
    """Answer sets for samples (template given, as in ECG-QA evaluation, or predicted by the template head)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds, template_hits = [], []
    try:
        for i in range(0, len(samples), batch_size):
            batch = {k: v.to(device) for k, v in collate(samples[i:i + batch_size]).items()}
            truth = batch.pop("template_index")
            batch.pop("labels")
            out = model(**batch, template_index=truth if given_template else None)
            chosen = truth if given_template else out.template_logits.argmax(-1)
            template_hits += (out.template_logits.argmax(-1) == truth).tolist()
            preds += model.decide(out.logits, chosen)
    finally:
        model.train(was_training)
    return preds, float(np.mean(template_hits)) if template_hits else float("nan")


def load_qa_data(cfg: QAConfig, pre: PreprocessConfig, vocab: tuple[str, ...]):
    """Questions (split by the first ECG's strat_fold), answer vocabulary, template options, samples per split."""
    from ...data.readers.ptbxl import read_ptbxl

    if not cfg.ecgqa or not cfg.ptbxl:
        raise ConfigError("ecgqa and ptbxl folders are both required")
    items = read_questions(cfg.ecgqa, tuple(cfg.variants))
    if cfg.max_questions:
        items = items[:cfg.max_questions]
    answers, options = read_answer_vocab(cfg.ecgqa), read_template_options(cfg.ecgqa)
    check_answers(items, answers, cfg.ecgqa)
    joined = join_ptbxl(items, lambda ecg_id: read_ptbxl(cfg.ptbxl, ecg_id))
    if joined.quarantine:
        logger.warning("%d ECG(s) could not be used: %s", len(joined.quarantine), list(joined.quarantine.items())[:3])
    ecgs = _ecg_windows(joined.records, pre)
    fold = {i: r.meta["strat_fold"] for i, r in joined.records.items()}
    split = {"train": [it for it in joined.items if fold[it.ecg_ids[0]] in cfg.train_folds],
             "test": [it for it in joined.items if fold[it.ecg_ids[0]] in cfg.test_folds]}
    if not split["train"]:
        raise ConfigError("no training questions in train_folds")
    return split, answers, options, ecgs


def _head_values(split, answers, options) -> dict:
    from ...models.tasks.qa import qa_config

    longest: dict[int, int] = defaultdict(int)
    for it in split["train"]:
        longest[it.template_id] = max(longest[it.template_id], len(it.answer))
    # yes/no/not-sure templates, and templates never answered with more than one option, pick exactly one answer
    single = [t for t, opts in options.items() if set(opts) <= _VERIFY_ANSWERS or longest.get(t) == 1]
    return qa_config(answers, options, single)


def run_qa(cfg: QAConfig, resume: bool = False) -> dict:
    """setup -> train -> exact-match evaluation vs majority baseline -> save (model + question tokenizer)."""
    from ...engine.trainer import Trainer, seed_everything
    from ...models import CardioFMConfig, list_presets, preset_config
    from ...models.tasks.qa import CardioFMForQuestionAnswering
    from ...models.tokenizer import ReportTokenizer

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "qa_config.yaml")
    seed_everything(cfg.train.seed)
    base = preset_config(cfg.model, **cfg.model_overrides) if cfg.model in list_presets() \
        else CardioFMConfig.from_pretrained(cfg.model)
    split, answers, options, ecgs = load_qa_data(cfg, base.preprocess_config, tuple(base.channel_vocab))
    head = _head_values(split, answers, options)
    if cfg.model in list_presets():
        logger.warning("model %r is a preset: the encoder starts from random weights", cfg.model)
        model = CardioFMForQuestionAnswering(preset_config(cfg.model, **cfg.model_overrides, **head))
    else:
        model = CardioFMForQuestionAnswering.from_encoder(cfg.model, **head)
    tokenizer = ReportTokenizer().train([it.question for it in split["train"]],
                                        min(cfg.tokenizer_vocab, model.config.text_vocab_size))
    model.report_tokenizer = tokenizer
    vocab = tuple(model.config.channel_vocab)
    samples = {k: qa_samples(v, ecgs, answers, model.config.qa_template_ids, vocab) for k, v in split.items()}
    collate = make_qa_collate(tokenizer, model.config.max_text_len)
    trainer = Trainer(model, cfg.train, samples["train"], collate, None, output_dir=out)
    result = trainer.train(resume=resume)
    model = trainer.unwrapped_model()
    model.report_tokenizer = tokenizer
    model.save_pretrained(str(out / "model"))
    majority = majority_answers(split["train"])
    report = {"n_questions": {k: len(v) for k, v in split.items()}, "n_answers": len(answers),
              "training": {"steps": result.step, "stopped": result.stopped, "model": cfg.model}}
    for name in ("test",):  # scoring the training split would cost as much as training
        if not samples[name]:
            continue
        preds, template_acc = predict_answers(model, samples[name], collate, cfg.eval_batch_size)
        free, _ = predict_answers(model, samples[name], collate, cfg.eval_batch_size, given_template=False)
        report[name] = exact_match_report(split[name], preds, majority)
        report[name]["template_head_accuracy"] = template_acc
        report[name]["model_em_predicted_template"] = float(np.mean(
            [set(p) == set(it.answer) for p, it in zip(free, split[name])]))
    (out / "results.json").write_text(json.dumps(report, indent=1))
    logger.info("QA model in %s, results in %s", out / "model", out / "results.json")
    return report
