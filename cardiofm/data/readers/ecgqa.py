"""ECG-QA reader: template and paraphrased question JSON, answer vocabulary and per-template options, joined to PTB-XL.

ECG-QA (Oh et al., 2023) asks questions about one PTB-XL ECG ("single-*" question types) or compares two
("comparison-*"). Each item names its ECGs by PTB-XL `ecg_id`; the answer is a set of strings from `answers.csv`,
and `answers_for_each_template.csv` lists the options a template can take (the output is restricted to those).
"""
from __future__ import annotations

import ast
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..record import Record, RecordError

QUESTION_FILES = {"template": "template_questions.json", "paraphrased": "paraphrased_questions.json"}
_REQUIRED = ("question", "answer", "question_type", "attribute_type", "ecg_id", "template_id")


@dataclass
class QAItem:
    """One ECG-QA question: text, answer set, its type labels and the PTB-XL ecg_ids (one or two) it is about."""

    question: str
    answer: list[str]
    question_type: str          # e.g. "single-verify", "comparison_irrelevant-query"
    attribute_type: str         # e.g. "noise", "scp_code", "numeric_feature"
    template_id: int
    ecg_ids: list[int]
    attribute: list[str] = field(default_factory=list)
    sample_id: int = -1
    variant: str = "template"   # "template" or "paraphrased"

    @property
    def n_ecgs(self) -> int:
        """Number of ECGs the question is about (1 or 2)."""
        return len(self.ecg_ids)


def _item(raw: dict, variant: str, where: str) -> QAItem:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise RecordError(where, f"question entry lacks field(s) {missing}")
    ecg_ids = [int(i) for i in raw["ecg_id"]]
    if len(ecg_ids) not in (1, 2):
        raise RecordError(where, f"sample {raw.get('sample_id')}: expected 1 or 2 ecg_ids, got {ecg_ids}")
    answer = [str(a) for a in raw["answer"]]
    if not answer:
        raise RecordError(where, f"sample {raw.get('sample_id')}: empty answer set")
    return QAItem(question=str(raw["question"]), answer=answer, question_type=str(raw["question_type"]),
                  attribute_type=str(raw["attribute_type"]), template_id=int(raw["template_id"]), ecg_ids=ecg_ids,
                  attribute=[str(a) for a in (raw.get("attribute") or [])], sample_id=int(raw.get("sample_id", -1)),
                  variant=variant)


def read_questions(root: str | Path, variants: tuple[str, ...] = ("template", "paraphrased")) -> list[QAItem]:
    """Read the ECG-QA question JSON file(s) in `root` (variants: 'template', 'paraphrased')."""
    root = Path(root)
    items: list[QAItem] = []
    for variant in variants:
        if variant not in QUESTION_FILES:
            raise ValueError(f"unknown ECG-QA variant {variant!r}; use {sorted(QUESTION_FILES)}")
        path = root / QUESTION_FILES[variant]
        if not path.is_file():
            raise RecordError(str(path), "ECG-QA question file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RecordError(str(path), f"invalid JSON: {err}") from None
        if not isinstance(data, list):
            raise RecordError(str(path), "top level must be a list of questions")
        items.extend(_item(raw, variant, str(path)) for raw in data)
    return items


def read_answer_vocab(root: str | Path) -> list[str]:
    """Answer vocabulary from `answers.csv` (columns index, class), in index order."""
    path = Path(root) / "answers.csv"
    if not path.is_file():
        raise RecordError(str(path), "ECG-QA answer vocabulary not found")
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"index", "class"} <= set(rows[0]):
        raise RecordError(str(path), "expected columns 'index' and 'class'")
    rows.sort(key=lambda r: int(r["index"]))
    return [r["class"] for r in rows]


def read_template_options(root: str | Path) -> dict[int, list[str]]:
    """template_id -> the answers that template allows, from `answers_for_each_template.csv`."""
    path = Path(root) / "answers_for_each_template.csv"
    if not path.is_file():
        raise RecordError(str(path), "ECG-QA per-template answer file not found")
    out: dict[int, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                out[int(row["template_id"])] = [str(a) for a in ast.literal_eval(row["classes"])]
            except (ValueError, SyntaxError, KeyError) as err:
                raise RecordError(str(path), f"bad row {row}: {err}") from None
    return out


def check_answers(items: list[QAItem], vocab: list[str], where: str = "ECG-QA") -> None:
    """Raise naming the first question whose answer is outside the vocabulary."""
    known = set(vocab)
    for it in items:
        bad = [a for a in it.answer if a not in known]
        if bad:
            raise RecordError(where, f"sample {it.sample_id}: answer(s) {bad} not in answers.csv")


@dataclass
class QAJoin:
    """Questions joined to their ECGs: ecg_id -> Record, the questions whose ECGs all loaded, and why others failed."""

    records: dict[int, Record]
    items: list[QAItem]
    quarantine: dict[int, str]   # ecg_id -> reason the waveform could not be used


def join_ptbxl(items: list[QAItem], load_ecg: Callable[[int], Record]) -> QAJoin:
    """Load every referenced PTB-XL ECG once via `load_ecg(ecg_id)`; questions whose ECG failed are quarantined."""
    records: dict[int, Record] = {}
    quarantine: dict[int, str] = {}
    for ecg_id in sorted({i for it in items for i in it.ecg_ids}):
        try:
            records[ecg_id] = load_ecg(ecg_id)
        except (RecordError, OSError, ValueError) as err:
            quarantine[ecg_id] = str(err)
    kept = [it for it in items if all(i in records for i in it.ecg_ids)]
    return QAJoin(records, kept, quarantine)
