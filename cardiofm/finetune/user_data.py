"""Finetuning data from a user's own records: a labels CSV (or record metadata) joined by key to the records of DATA,
checked row by row, split (the labels' split column, or a seeded subject-aware stratified split) and cut into the
checkpoint's windows. Nothing is trained on a partially read label set: missing or unreadable records are errors."""
from __future__ import annotations

import logging

import numpy as np

from ..config import ConfigError
from ..data.preprocess import PreprocessConfig
from ..data.readers.labels import LabelRow, LabelsError, LabelTable, labels_from_values, read_labels
from ..data.record import RecordError
from .data import FinetuneDataConfig, TaskData, resolved_split, stratified_split
from .inputs import (InputOptions, KeyIndex, corpus_meta, corpus_samples, crop, discover_inputs, is_corpus,
                     read_input, record_windows)

logger = logging.getLogger(__name__)
TASK_OF_KIND = {"multilabel": ("diagnosis", None), "multiclass": ("target", "classification"),
                "regression": ("target", "regression")}


def task_of_labels(kind: str, task: str) -> tuple[str, str | None]:
    """(task, target_task) that a label kind trains; a conflicting explicit task raises ConfigError."""
    resolved, target_task = TASK_OF_KIND[kind]
    if task not in ("auto", resolved):
        raise ConfigError(f"the labels are {kind}, which trains task {resolved!r}, not {task!r}: drop --task or "
                          "force the label kind (data.label_kind)")
    return resolved, target_task


def input_options(cfg: FinetuneDataConfig) -> InputOptions:
    """Reader options of the user's raw files."""
    return InputOptions(channels=list(cfg.file_channels) or None, fs=cfg.file_fs or None,
                        ignore_unknown_channels=cfg.ignore_unknown_channels)


def _meta_value(meta: dict, labels: list[str], key: str):
    """A record's target from its metadata: 'labels' is the record's label list (CinC Dx, PTB-XL SCP codes)."""
    value = labels if key == "labels" else meta.get(key)
    if value is None or (isinstance(value, (list, tuple, str)) and len(value) == 0):
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def load_label_table(cfg: FinetuneDataConfig, opts: InputOptions, index: KeyIndex | None) -> LabelTable:
    """The labels CSV, or targets read from every record's metadata (records without the key are left out, with
    a warning naming how many)."""
    if cfg.labels_file:
        return read_labels(cfg.labels_file, cfg.label_kind, cfg.key_column, cfg.target_columns)
    key = cfg.labels_from_meta
    if index is None:
        pairs = [(rid, (meta, labels)) for rid, (meta, labels, _) in corpus_meta(cfg.root).items()]
    else:
        pairs = []
        for item in index.by_key.values():
            rec = read_input(item, opts)
            pairs.append((item.key, (rec.meta, rec.labels)))
    values = [(rid, _meta_value(meta, labels, key)) for rid, (meta, labels) in pairs]
    missing = [rid for rid, v in values if v is None]
    if missing:
        logger.warning("%d of %d records have no %r in their metadata and are left out (e.g. %s)", len(missing),
                       len(values), key, ", ".join(missing[:3]))
    table = labels_from_values([(rid, v) for rid, v in values if v is not None], key, cfg.root)
    if not table.rows:
        raise ConfigError(f"no record under {cfg.root} has {key!r} in its metadata")
    return table


def check_classes(table: LabelTable, label_names: list[str] | None) -> None:
    """Evaluation data may only hold the classes the model was trained on: an unknown one raises, naming it."""
    if label_names is None or table.kind == "regression":
        return
    known = set(label_names)
    bad = [(r.row, f"class(es) {sorted(set(r.labels) - known)} not in the model's label map {label_names}")
           for r in table.rows if set(r.labels) - known]
    if bad:
        raise LabelsError(table.path, bad)


def row_samples(cfg: FinetuneDataConfig, table: LabelTable, pre: PreprocessConfig, opts: InputOptions,
                index: KeyIndex | None) -> list[tuple[LabelRow, str, list[dict], list[dict] | None]]:
    """(row, subject, windows at the checkpoint's stride, training-stride windows or None) for every row; missing
    and unreadable records are collected and raised together (or skipped with skip_unreadable)."""
    missing, broken, out = [], [], []
    train_stride = cfg.stride_s if cfg.stride_s and abs(cfg.stride_s - pre.stride_s) > 1e-9 else None
    if index is None:
        by_record = corpus_samples(cfg.root, pre, {r.key for r in table.rows})
        if train_stride:
            logger.warning("data.stride_s is ignored for a prepared corpus (its windows were cut by prepare)")
    cached = (None, None)
    for row in table.rows:
        try:
            if index is None:
                if row.key not in by_record:
                    raise KeyError(f"record {row.key!r} not found in the corpus {cfg.root}")
                end = np.inf if row.end_s is None else row.end_s - pre.window_s
                wins = [w for w in by_record[row.key] if (row.start_s or 0.0) <= w["start_s"] <= end + 1e-6]
                if not wins:
                    raise RecordError(row.key, "no corpus window inside the labelled segment")
                out.append((row, row.subject or wins[0]["subject_id"], wins, None))
                continue
            item = index.find(row.key)
            rec = cached[1] if cached[0] == item.key else read_input(item, opts, row.fs)
            cached = (item.key, rec)
            piece = crop(rec, row.start_s, row.end_s)
            out.append((row, row.subject or rec.subject_id, record_windows(piece, pre),
                        record_windows(piece, pre, train_stride) if train_stride else None))
        except KeyError as err:
            missing.append((row.row, err.args[0]))
        except RecordError as err:
            broken.append((row.row, str(err)))
    if missing:
        raise LabelsError(table.path, missing)
    if broken and not cfg.skip_unreadable:
        hint = " (or data.skip_unreadable=true to leave unreadable records out)"
        raise LabelsError(table.path, [(r, why + (hint if i == 0 else "")) for i, (r, why) in enumerate(broken)])
    if broken:
        logger.warning("left out %d unreadable record(s) (data.skip_unreadable): %s", len(broken),
                       "; ".join(f"row {r}: {why}" for r, why in broken[:3]))
    opts.warn_dropped()
    return out


def assign_splits(cfg: FinetuneDataConfig, table: LabelTable, rows, subjects: list[str]) -> list[str]:
    """Split name per row: the labels' split column, a seeded stratified split, everything as test, or held-out
    subjects; a subject on both sides of a given split column raises."""
    split = resolved_split(cfg, table.has_split)
    n = len(rows)
    if split == "labels":
        if not table.has_split:
            raise ConfigError(f"data.split labels needs a split column in {table.path}")
        names = [r.split for r, *_ in rows]
        first: dict[str, tuple[str, int]] = {}
        clash = []
        for (r, *_), subj, name in zip(rows, subjects, names):
            seen = first.setdefault(subj, (name, r.row))
            if seen[0] != name:
                clash.append((r.row, f"subject {subj!r} is in split {name!r} here and in {seen[0]!r} on row {seen[1]}"))
        if clash:
            raise LabelsError(table.path, clash)
        return names
    if split == "all":
        return ["test"] * n
    if split == "subject":
        held = lambda names, r, s: r.key in names or s in names  # noqa: E731
        return ["test" if held(cfg.test_subjects, r, s) else "val" if held(cfg.val_subjects, r, s) else "train"
                for (r, *_), s in zip(rows, subjects)]
    if split != "stratified":
        raise ConfigError(f"data.split {split!r} is for named datasets; user data takes labels, stratified, subject "
                          "or all")
    all_lists = table.label_lists()
    by_row = {id(r): lab for r, lab in zip(table.rows, all_lists)}
    idx = stratified_split([by_row[id(r)] for r, *_ in rows], subjects, cfg.split_fractions, cfg.split_seed)
    names = ["train"] * n
    for name in ("val", "test"):
        for i in idx[name]:
            names[i] = name
    return names


def _label(samples: list[dict], row: LabelRow, subject: str, kind: str) -> list[dict]:
    for s in samples:
        s["record_id"], s["subject_id"] = row.segment_id, subject
        s["labels"] = list(row.labels)
        if kind == "multiclass":
            s["target"] = row.labels[0]
        elif kind == "regression":
            s["target"] = list(row.values)
    return samples


def build_user_task_data(cfg: FinetuneDataConfig, task: str, pre: PreprocessConfig,
                         label_names: list[str] | None = None) -> TaskData:
    """Labels + records of DATA -> TaskData (windows per split, the LabelTable, subjects) for the labels' task."""
    opts = input_options(cfg)
    index = None if is_corpus(cfg.root) else KeyIndex(discover_inputs(cfg.root, exclude=(cfg.labels_file,)))
    table = load_label_table(cfg, opts, index)
    task, _ = task_of_labels(table.kind, task)
    check_classes(table, label_names)
    rows = row_samples(cfg, table, pre, opts, index)
    subjects = [subj for _, subj, *_ in rows]
    splits = assign_splits(cfg, table, rows, subjects)
    windows = {"train": [], "val": [], "test": []}
    ids = {"train": [], "val": [], "test": []}
    for (row, subj, wins, train_wins), name in zip(rows, splits):
        use = train_wins if name == "train" and train_wins is not None else wins
        windows[name] += _label(use, row, subj, table.kind)
        ids[name].append(row.segment_id)
    names = list(label_names) if label_names is not None else list(table.names)
    if table.kind != "regression" and windows["train"]:
        seen = {lab for w in windows["train"] for lab in w["labels"]}
        absent = [c for c in names if c not in seen]
        if absent:
            logger.warning("class(es) %s have no positive record in the training split", absent)
    logger.info("%s: %s labels (%s) for %d records; windows %s", table.path, table.kind, ", ".join(names[:8]),
                len(rows), {k: len(v) for k, v in windows.items()})
    return TaskData(windows=windows, label_names=names, records=ids, fs=pre.fs, task=task, labels=table,
                    subjects={row.segment_id: subj for (row, subj, *_) in rows})
