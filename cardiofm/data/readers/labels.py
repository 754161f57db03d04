"""A user's labels CSV -> targets per record key, with row-level errors.

One row per record (or per labelled segment of a long record): a key column naming the record, then either one label
column (multi-class), one `;`-separated labels column or one 0/1 column per class (multi-label), or numeric columns
(regression, e.g. age, HR, QT). Optional columns: `split` (train/val/test), `subject` (keeps a subject's records in one
split), `fs` (Hz, for headerless CSV/NumPy signals), `start_s`/`end_s` (label a segment of a long record, seconds).
Every problem is reported with the file, the CSV row (header = row 1) and the reason; nothing is dropped silently.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

KINDS = ("multilabel", "multiclass", "regression")
Kind = Literal["auto", "multilabel", "multiclass", "regression"]
KEY_COLUMNS = ("record", "record_id", "key", "file", "filename", "path", "ecg_id", "id", "name")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_OPTIONAL = {"split": "split", "subject": "subject", "subject_id": "subject", "patient": "subject",
             "patient_id": "subject", "fs": "fs", "start_s": "start_s", "end_s": "end_s"}
# units of common regression targets when the header gives none ('age [years]' or 'qt (ms)' name them)
DEFAULT_UNITS = {"age": "years", "hr": "bpm", "heart_rate": "bpm", "rr": "breaths/min", "qt": "ms", "qtc": "ms",
                 "pr": "ms", "qrs": "ms", "rr_interval": "ms", "spo2": "%", "sbp": "mmHg", "dbp": "mmHg",
                 "weight": "kg", "height": "cm", "bmi": "kg/m2", "lvef": "%", "ef": "%"}
_UNIT = re.compile(r"^(.*?)\s*[\[(]\s*([^\])]+?)\s*[\])]\s*$")
MAX_LISTED = 5   # row problems spelled out in one error message
MOSTLY = 0.8     # share of a column's cells that decides its kind


class LabelsError(ValueError):
    """Bad rows of a labels file: the message names the file, each row and its reason."""

    def __init__(self, path: str, problems: Sequence[tuple[int | None, str]]):
        self.path, self.problems = str(path), list(problems)
        shown = "; ".join(f"row {r}: {why}" if r else why for r, why in self.problems[:MAX_LISTED])
        more = f" (and {len(self.problems) - MAX_LISTED} more)" if len(self.problems) > MAX_LISTED else ""
        super().__init__(f"{path}: {shown}{more}")


@dataclass
class LabelRow:
    """One labelled record (or segment): `labels` (classes; multi-label positives) or `values` (regression)."""

    row: int                          # CSV row number, header = 1
    key: str
    labels: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    split: str | None = None
    subject: str | None = None
    fs: float | None = None
    start_s: float | None = None
    end_s: float | None = None

    @property
    def segment_id(self) -> str:
        """The key, plus '@start-end' (seconds) for a labelled segment."""
        if self.start_s is None and self.end_s is None:
            return self.key
        end = "end" if self.end_s is None else f"{self.end_s:g}"
        return f"{self.key}@{self.start_s or 0:g}-{end}"


@dataclass
class LabelTable:
    """Targets of one labels file: kind, output names (classes or targets), units and the rows."""

    path: str
    kind: str                         # multilabel | multiclass | regression
    names: list[str]
    rows: list[LabelRow]
    units: list[str] = field(default_factory=list)   # regression: one per name ('' when unknown)
    source: str = ""                  # how the targets were read, saved with the model

    @property
    def has_split(self) -> bool:
        """True when every row names its split."""
        return bool(self.rows) and all(r.split for r in self.rows)

    def label_lists(self) -> list[list[str]]:
        """Per row: its classes (multi-label positives / the one class), or a quantile bin of the first target
        (regression) for stratified splitting."""
        if self.kind != "regression":
            return [list(r.labels) for r in self.rows]
        import numpy as np

        v = np.array([r.values[0] for r in self.rows])
        edges = np.quantile(v, [0.2, 0.4, 0.6, 0.8]) if len(v) else []
        return [[f"bin{int(np.searchsorted(edges, x, side='right'))}"] for x in v]


def _split_unit(header: str) -> tuple[str, str]:
    m = _UNIT.match(header)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return header.strip(), DEFAULT_UNITS.get(header.strip().lower(), "")


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _is01(text: str) -> bool:
    return text.strip().lower() in ("0", "1", "0.0", "1.0", "true", "false")


def infer_kind(header: list[str], cells: list[list[str]], forced: Kind = "auto") -> str:
    """Task kind from the target columns: ';' lists or several 0/1 columns -> multilabel; numbers -> regression;
    one text column -> multiclass. A forced kind wins; mixed columns need one."""
    if forced != "auto":
        if forced not in KINDS:
            raise ValueError(f"label kind {forced!r}: use auto, {', '.join(KINDS)}")
        return forced
    values = [[row[j].strip() for row in cells if row[j].strip()] for j in range(len(header))]
    if len(header) == 1 and (any(";" in v for v in values[0]) or header[0].strip().lower() == "labels"):
        return "multilabel"
    # "mostly" (>= 80 % of the filled cells): a typo must surface as a row error, not turn numbers into classes
    binary = [bool(v) and sum(_is01(x) for x in v) >= MOSTLY * len(v) for v in values]
    numeric = [bool(v) and sum(_number(x) is not None for x in v) >= MOSTLY * len(v) and
               len({x for x in v if _number(x) is not None}) > 2 for v in values]
    if all(binary):
        return "multilabel"
    if all(numeric):
        return "regression"
    if len(header) == 1:
        return "multiclass"
    text = [h for h, n in zip(header, numeric) if not n]
    raise ValueError(f"target columns {text} hold text and {[h for h, n in zip(header, numeric) if n]} numbers: "
                     "name the targets (target columns) or force the label kind")


def read_labels(path: str | Path, kind: Kind = "auto", key_column: str = "",
                target_columns: Sequence[str] = ()) -> LabelTable:
    """Read and check a labels CSV -> LabelTable; any bad row raises LabelsError naming file, row and reason."""
    path = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise FileNotFoundError(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LabelsError(path, [(None, f"unreadable ({type(err).__name__}: {err})")]) from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise LabelsError(path, [(1, "empty file: the first row must name the columns")])
    header = [c.strip() for c in rows[0]]
    body = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if not body:
        raise LabelsError(path, [(None, "no data rows under the header")])
    bad = [(n, f"{len(r)} fields, the header has {len(header)}") for n, r in body if len(r) != len(header)]
    if bad:
        raise LabelsError(path, bad)
    key_idx, optional, targets = _columns(path, header, key_column, target_columns)
    names_raw = [header[j] for j in targets]
    cells = [[r[j] for j in targets] for _, r in body]
    try:
        kind = infer_kind(names_raw, cells, kind)
    except ValueError as err:
        raise LabelsError(path, [(None, str(err))]) from None
    first = [c[0].strip() for c in cells if c[0].strip()]
    list_mode = kind == "multilabel" and len(targets) == 1 and (
        names_raw[0].lower() == "labels" or any(";" in v for v in first) or not all(_is01(v) for v in first))
    table = _parse_rows(path, kind, header, body, key_idx, optional, targets, list_mode)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    table.source = (f"{Path(path).name} ({kind}, columns {', '.join(names_raw)}; {len(table.rows)} rows; "
                    f"sha256 {digest})")
    return table


def _columns(path: str, header: list[str], key_column: str, target_columns: Sequence[str]):
    """(key column index, {role: index} of optional columns, target column indices)."""
    lower = [h.lower() for h in header]
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise LabelsError(path, [(1, f"duplicated column name(s) {dups}")])
    if key_column:
        if key_column not in header:
            raise LabelsError(path, [(1, f"key column {key_column!r} not in the header {header}")])
        key_idx = header.index(key_column)
    else:
        key_idx = next((lower.index(k) for k in KEY_COLUMNS if k in lower), 0)
    optional = {_OPTIONAL[h]: j for j, h in enumerate(lower) if h in _OPTIONAL and j != key_idx}
    if target_columns:
        missing = [c for c in target_columns if c not in header]
        if missing:
            raise LabelsError(path, [(1, f"target column(s) {missing} not in the header {header}")])
        targets = [header.index(c) for c in target_columns]
    else:
        targets = [j for j in range(len(header)) if j != key_idx and j not in optional.values()]
    if not targets:
        raise LabelsError(path, [(1, f"no target column besides the key {header[key_idx]!r} and "
                                     f"{sorted(optional)} (add a label column)")])
    return key_idx, optional, targets


def _parse_rows(path, kind, header, body, key_idx, optional, targets, list_mode: bool) -> LabelTable:
    """Check every row (list_mode: one ';'-separated labels column); collect all problems before raising."""
    problems: list[tuple[int, str]] = []
    names = [_split_unit(header[j])[0] if kind == "regression" else header[j] for j in targets]
    units = [_split_unit(header[j])[1] for j in targets] if kind == "regression" else []
    seen: dict[tuple, int] = {}
    out = []
    for n, r in body:
        try:
            out.append(_parse_row(n, r, kind, header, key_idx, optional, targets, list_mode))
        except ValueError as err:
            problems.append((n, str(err)))
            continue
        ident = (out[-1].key, out[-1].start_s, out[-1].end_s)
        if ident in seen:
            what = "key" if ident[1:] == (None, None) else "key and segment"
            problems.append((n, f"duplicate {what} {out[-1].segment_id!r} (first on row {seen[ident]})"))
        seen.setdefault(ident, n)
    if list_mode:
        names = sorted({lab for row in out for lab in row.labels})
    elif kind == "multiclass":
        names = sorted({row.labels[0] for row in out})
        if len(names) < 2 and not problems:
            problems.append((None, f"column {header[targets[0]]!r} has one class only ({names}): a classifier "
                                   "needs at least two"))
    if problems:
        raise LabelsError(path, problems)
    return LabelTable(path=path, kind=kind, names=names, rows=out, units=units)


def _parse_row(n: int, r: list[str], kind: str, header: list[str], key_idx: int, optional: dict,
               targets: list[int], list_mode: bool) -> LabelRow:
    """One CSV row -> LabelRow; ValueError with the reason."""
    key = r[key_idx].strip()
    if not key:
        raise ValueError(f"empty record key in column {header[key_idx]!r}")
    row = LabelRow(row=n, key=key)
    cells = [(header[j], r[j].strip()) for j in targets]
    if kind == "regression":
        for col, text in cells:
            x = _number(text)
            if x is None:
                raise ValueError(f"non-numeric value {text!r} in column {col!r}" if text
                                 else f"empty value in column {col!r}")
            row.values.append(x)
    elif list_mode:
        col, text = cells[0]
        row.labels = sorted({lab.strip() for lab in text.split(";") if lab.strip()})
        if not row.labels:
            raise ValueError(f"empty labels in column {col!r} (name the record's classes, or use one 0/1 column "
                             "per class for records without any)")
    elif kind == "multilabel":
        for col, text in cells:
            if not _is01(text):
                raise ValueError(f"value {text!r} in column {col!r} is not 0 or 1" if text
                                 else f"empty value in column {col!r}")
            if text.lower() in ("1", "1.0", "true"):
                row.labels.append(col)
    else:
        col, text = cells[0]
        if not text:
            raise ValueError(f"empty label in column {col!r}")
        row.labels = [text]
    _parse_optional(row, r, optional)
    return row


def _parse_optional(row: LabelRow, r: list[str], optional: dict) -> None:
    """split / subject / fs / start_s / end_s of one row (ValueError on a bad value)."""
    if "split" in optional:
        text = r[optional["split"]].strip().lower()
        if text not in SPLIT_NAMES:
            raise ValueError(f"split {text!r} is not one of train, val, test")
        row.split = SPLIT_NAMES[text]
    if "subject" in optional and r[optional["subject"]].strip():
        row.subject = r[optional["subject"]].strip()
    for name in ("fs", "start_s", "end_s"):
        if name in optional and r[optional[name]].strip():
            x = _number(r[optional[name]])
            if x is None or x < 0 or (name == "fs" and x == 0):
                raise ValueError(f"{name} {r[optional[name]].strip()!r} is not a "
                                 f"{'positive' if name == 'fs' else 'non-negative'} number")
            setattr(row, name, x)
    if row.end_s is not None and row.end_s <= (row.start_s or 0.0):
        raise ValueError(f"end_s {row.end_s:g} is not after start_s {row.start_s or 0:g}")


def labels_from_values(key_values: Sequence[tuple[str, object]], source: str, where: str) -> LabelTable:
    """Targets from record metadata (e.g. PTB-XL superclasses, CinC Dx, age): lists -> multilabel, numbers ->
    regression, text -> multiclass; (key, value) pairs, all of one type."""
    rows, kinds = [], set()
    for i, (key, value) in enumerate(key_values):
        if isinstance(value, (list, tuple)):
            kinds.add("multilabel")
            rows.append(LabelRow(row=i + 1, key=str(key), labels=sorted({str(v) for v in value})))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            kinds.add("regression")
            rows.append(LabelRow(row=i + 1, key=str(key), values=[float(value)]))
        else:
            kinds.add("multiclass")
            rows.append(LabelRow(row=i + 1, key=str(key), labels=[str(value)]))
    if len(kinds) != 1:
        raise LabelsError(where, [(None, f"metadata {source!r} mixes {sorted(kinds)} values")])
    kind = kinds.pop()
    if kind == "regression":
        return LabelTable(path=where, kind=kind, names=[source], rows=rows, units=[DEFAULT_UNITS.get(source, "")],
                          source=f"record metadata {source!r} ({kind}, {len(rows)} records)")
    names = sorted({lab for r in rows for lab in r.labels})
    return LabelTable(path=where, kind=kind, names=names, rows=rows,
                      source=f"record metadata {source!r} ({kind}, {len(rows)} records)")


def labels_header(path: str | Path) -> list[str]:
    """Column names of a labels CSV (its first row)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [c.strip() for c in next(csv.reader(f), [])]
    except FileNotFoundError:
        raise FileNotFoundError(f"labels file {path} does not exist") from None
