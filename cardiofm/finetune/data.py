"""Finetuning data: read records of a source (a named dataset, or the user's records with a labels file), pick task
targets, split them (PTB-XL strat_fold, subject split, source-aware k-fold, the labels' split column or a seeded
subject-aware stratified split) and cut windows with the checkpoint's own PreprocessConfig."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..config import ConfigError
from ..data.preprocess import PreprocessConfig, preprocess_record
from ..data.record import VITALS, Record, RecordError

logger = logging.getLogger(__name__)
SUPERCLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]  # PTB-XL diagnostic superclasses, in the usual order


@dataclass
class FinetuneDataConfig:
    """Where the records come from, which targets to use and how to split them."""

    source: Literal["ptbxl", "bidmc", "cinc2021", "user"] = "ptbxl"
    root: str = "../shared/data/ptbxl"  # user: DATA, a folder/file of WFDB, CSV or NumPy records, or a prepared corpus
    labels_file: str = ""               # user: labels CSV (key column + targets; see data/readers/labels.py)
    labels_from_meta: str = ""          # user: targets from record metadata instead (e.g. labels, superclasses, age)
    label_kind: Literal["auto", "multilabel", "multiclass", "regression"] = "auto"   # auto: from the columns
    key_column: str = ""                # user: the labels' record-key column (default: record/key/... or the first)
    target_columns: list[str] = field(default_factory=list)   # user: target columns (default: all the others)
    file_channels: list[str] = field(default_factory=list)    # user: channel names of headerless CSV/NumPy files
    file_fs: float = 0.0                # user: sampling rate (Hz) of headerless CSV/NumPy files (or an fs column)
    ignore_unknown_channels: bool = False   # user: drop channels no alias names (one warning) instead of failing
    skip_unreadable: bool = False       # user: leave out labelled records that cannot be read (else: an error)
    labels: Literal["superclass", "subclass", "scp", "snomed"] = "superclass"   # diagnosis label set
    min_label_count: int = 5            # labels with fewer training positives are left out (not superclass)
    drop_unlabelled: bool = True        # diagnosis: drop records without any label of the set
    high_rate: bool = False             # PTB-XL: records500 instead of records100
    target: str = ""                    # task "target": a Record.meta key (age, sex, ...)
    # auto: ptbxl strat_fold, cinc2021 source_kfold, bidmc subject, user the labels' split column if it has one,
    # else stratified (subject-aware, label-stratified, seeded); all: every record is scored as "test"
    split: Literal["auto", "strat_fold", "subject", "source_kfold", "labels", "stratified", "all"] = "auto"
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])   # stratified: train/val/test
    split_seed: int = 0
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    val_folds: list[int] = field(default_factory=lambda: [8])
    test_folds: list[int] = field(default_factory=list)
    val_subjects: list[str] = field(default_factory=list)   # split "subject": record/subject ids held out
    test_subjects: list[str] = field(default_factory=list)
    n_folds: int = 5                    # split "source_kfold": fold `fold` tests, fold `fold + 1` validates
    fold: int = 0
    channels: list[str] = field(default_factory=list)      # feed only these channels (empty: all in the layout)
    stride_s: float = 0.0               # training-window hop, seconds (0: the checkpoint's stride)
    stretch_factors: list[float] = field(default_factory=list)  # vitals: time-stretch copies of training records
    max_records: int = 0                # 0: all

    def validate(self) -> None:
        """Raise ConfigError on inconsistent choices."""
        if self.split == "source_kfold" and not 0 <= self.fold < self.n_folds:
            raise ConfigError(f"data.fold must be in [0, {self.n_folds}), got {self.fold}")
        if any(f <= 0 for f in self.stretch_factors):
            raise ConfigError("data.stretch_factors must be positive")
        if self.source == "user" and bool(self.labels_file) == bool(self.labels_from_meta):
            raise ConfigError("data.source user needs exactly one of data.labels_file (--labels) and "
                              "data.labels_from_meta (--labels-from-meta)")
        if len(self.split_fractions) != 3 or min(self.split_fractions) < 0 or \
                abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ConfigError(f"data.split_fractions {self.split_fractions} must be three shares summing to 1")


def read_records(cfg: FinetuneDataConfig) -> list[Record]:
    """All readable records of the source (unreadable ones are logged with their reason and skipped)."""
    if cfg.source == "ptbxl":
        from ..data.readers.ptbxl import ptbxl_ids, read_ptbxl

        tasks = ptbxl_ids(cfg.root, cfg.high_rate)
        read = lambda i: read_ptbxl(cfg.root, i, cfg.high_rate)  # noqa: E731
    elif cfg.source == "bidmc":
        from ..data.readers.bidmc import bidmc_files, read_bidmc

        tasks, read = bidmc_files(cfg.root), read_bidmc
    elif cfg.source == "cinc2021":
        from ..data.readers.cinc2021 import read_cinc2021
        from ..data.corpus.sources import discover_wfdb

        tasks, read = discover_wfdb(cfg.root), read_cinc2021
    else:
        raise ConfigError(f"unknown data.source {cfg.source!r}")
    if cfg.max_records:
        tasks = tasks[:cfg.max_records]
    records = []
    for task in tasks:
        try:
            records.append(read(task))
        except RecordError as err:
            logger.warning("skipped %s", err)
    if not records:
        raise ConfigError(f"no readable {cfg.source} records under {cfg.root}")
    return records


def record_labels(rec: Record, kind: str) -> list[str]:
    """The record's labels in the chosen set: PTB-XL superclasses/subclasses/SCP codes or CinC SNOMED codes."""
    if kind == "superclass":
        return list(rec.meta.get("superclasses", []))
    if kind == "subclass":
        return list(rec.meta.get("subclasses", []))
    return list(rec.labels)


def resolved_split(cfg: FinetuneDataConfig, has_split_column: bool = False) -> str:
    """The split rule "auto" stands for with this source."""
    if cfg.split != "auto":
        return cfg.split
    if cfg.source == "user":
        return "labels" if has_split_column else "stratified"
    return {"ptbxl": "strat_fold", "cinc2021": "source_kfold", "bidmc": "subject"}[cfg.source]


def stratified_split(label_lists: list[list[str]], subjects: list[str], fractions, seed: int) -> dict[str, list[int]]:
    """Subject-aware, label-stratified train/val/test indices (the data layer's iterative stratification over
    1/share folds), seeded: the same labels give the same split."""
    from ..data.splits import multi_hot_labels, iterative_stratification

    shares = [f for f in fractions[1:] if f > 0]
    n_folds = max(2, int(round(1 / min(shares)))) if shares else 1
    if n_folds == 1:
        return {"train": list(range(len(subjects))), "val": [], "test": []}
    y, _ = multi_hot_labels(label_lists)
    groups = np.unique(np.asarray(subjects), return_inverse=True)[1]
    fold = iterative_stratification(y, n_folds, groups, seed)
    n_test, n_val = int(round(fractions[2] * n_folds)), int(round(fractions[1] * n_folds))
    side = np.where(fold < n_test, 2, np.where(fold < n_test + n_val, 1, 0))
    return {name: np.flatnonzero(side == k).tolist() for k, name in enumerate(("train", "val", "test"))}


def split_records(records: list[Record], cfg: FinetuneDataConfig, label_lists: list[list[str]]) -> dict[str, list[int]]:
    """Record indices per split name (train/val/test); subjects never cross splits."""
    split = resolved_split(cfg)
    if split == "stratified":
        return stratified_split(label_lists, [r.subject_id for r in records], cfg.split_fractions, cfg.split_seed)
    if split == "all":
        return {"train": [], "val": [], "test": list(range(len(records)))}
    if split == "strat_fold":
        folds = np.array([int(r.meta.get("strat_fold", -1)) for r in records])
        if (folds < 0).any():
            raise ConfigError("split strat_fold needs PTB-XL records (meta strat_fold)")
        return {name: np.flatnonzero(np.isin(folds, f)).tolist()
                for name, f in (("train", cfg.train_folds), ("val", cfg.val_folds), ("test", cfg.test_folds))}
    if split == "subject":
        ids = [(r.record_id, r.subject_id) for r in records]
        held = lambda names: [i for i, (a, b) in enumerate(ids) if a in names or b in names]  # noqa: E731
        val, test = held(cfg.val_subjects), held(cfg.test_subjects)
        return {"train": [i for i in range(len(records)) if i not in set(val) | set(test)], "val": val, "test": test}
    if split != "source_kfold":
        raise ConfigError(f"split {split!r} needs user data with a labels file (data.source user)")
    from ..data.splits import source_aware_kfold

    # pooled challenge sets carry the contributing database in meta: that, not "cinc2021", is the source
    sources = [r.meta.get("database", r.source) for r in records]
    folds = source_aware_kfold(label_lists, [r.subject_id for r in records], sources, cfg.n_folds)
    test = folds[cfg.fold]["test"].tolist()
    val = folds[(cfg.fold + 1) % cfg.n_folds]["test"].tolist()
    return {"train": sorted(set(range(len(records))) - set(test) - set(val)), "val": val, "test": test}


def stretch_record(rec: Record, factor: float) -> Record:
    """Time-stretched copy for vital-sign augmentation: declaring fs x factor plays the recording `factor` times
    faster after resampling, so HR and RR scale by `factor` while SpO2 and pressures keep their values."""
    series = {k: (np.asarray(v) * factor if k in ("HR", "RR") else np.asarray(v)) for k, v in rec.vital_series.items()}
    vitals = {k: (v * factor if k in ("HR", "RR") else v) for k, v in rec.vitals.items()}
    return Record(**{**rec.__dict__, "fs": rec.fs * factor, "vital_series": series, "vitals": vitals,
                     "vital_fs": rec.vital_fs * factor, "record_id": f"{rec.record_id}@x{factor:g}"})


def record_windows(rec: Record, pre: PreprocessConfig, labels: list[str], keep_channels: list[str],
                   target_key: str = "") -> list[dict]:
    """Window samples of one record with `labels` (and meta[target_key] as `target`); channels outside
    `keep_channels` are masked out."""
    samples = preprocess_record(rec, pre)
    if keep_channels:
        drop = np.array([c not in keep_channels for c in pre.channels])
        for s in samples:
            s["channel_mask"] = s["channel_mask"] & ~drop
            s["signal"] = np.where(s["channel_mask"][:, None], s["signal"], 0.0).astype(np.float32)
        samples = [s for s in samples if s["channel_mask"].any()]
    for s in samples:
        s["labels"] = list(labels)
        if target_key:
            s["target"] = rec.meta.get(target_key)
    return samples


@dataclass
class TaskData:
    """Windows per split plus what the head needs: label names, vital names, target statistics."""

    windows: dict[str, list[dict]]
    label_names: list[str]
    records: dict[str, list[str]]      # split -> record ids (evaluation aggregates windows per record)
    fs: float = 100.0                  # sampling rate of the windows, Hz
    task: str = ""                     # the task the targets are for (resolved from the labels for user data)
    labels: object = None              # user data: the LabelTable (kind, names, units, source description)
    subjects: dict[str, str] = field(default_factory=dict)   # record id -> subject id (written to split.csv)


def build_task_data(cfg: FinetuneDataConfig, task: str, pre: PreprocessConfig,
                    label_names: list[str] | None = None) -> TaskData:
    """Read, label, split and window the records for `task` ("diagnosis" | "vitals" | "target"; "auto" with user
    data: from the labels). `label_names`: a trained model's classes (evaluation: an unknown class is an error)."""
    if cfg.source == "user":
        from .user_data import build_user_task_data

        return build_user_task_data(cfg, task, pre, label_names)
    if task == "auto":
        from .tasks import task_for_source

        task = task_for_source(cfg.source)
    records = read_records(cfg)
    label_lists = [record_labels(r, cfg.labels) for r in records]
    if task == "diagnosis" and cfg.drop_unlabelled:
        keep = [i for i, labs in enumerate(label_lists) if labs]
        records, label_lists = [records[i] for i in keep], [label_lists[i] for i in keep]
    splits = split_records(records, cfg, label_lists)
    if not splits["train"]:
        raise ConfigError("the training split is empty: check data.split and its folds/subjects")
    label_names = choose_labels(cfg, [label_lists[i] for i in splits["train"]]) if task == "diagnosis" else []
    train_stride = PreprocessConfig.from_dict({**pre.to_dict(), "stride_s": cfg.stride_s or pre.stride_s})
    windows, ids = {}, {}
    for name, idx in splits.items():
        out = []
        for i in idx:
            rec = records[i]
            copies = [rec] + ([stretch_record(rec, f) for f in cfg.stretch_factors] if name == "train" else [])
            for r in copies:
                try:
                    out += record_windows(r, train_stride if name == "train" else pre, label_lists[i], cfg.channels,
                                          cfg.target if task == "target" else "")
                except RecordError as err:
                    logger.warning("skipped %s", err)
        if task == "vitals":
            out = [s for s in out if s["vitals_mask"].any()]
        elif task == "target":  # records without the target (e.g. unknown age) cannot supervise or be scored
            out = [s for s in out if s.get("target") not in (None, "") and s.get("target") == s.get("target")]
        windows[name], ids[name] = out, [records[i].record_id for i in idx]
    logger.info("windows: %s", {k: len(v) for k, v in windows.items()})
    return TaskData(windows=windows, label_names=label_names, records=ids, fs=pre.fs, task=task,
                    subjects={r.record_id: r.subject_id for r in records})


def choose_labels(cfg: FinetuneDataConfig, train_labels: list[list[str]]) -> list[str]:
    """Label names of the head: the five superclasses, else labels with >= min_label_count training positives."""
    if cfg.labels == "superclass":
        return list(SUPERCLASSES)
    counts: dict[str, int] = {}
    for labs in train_labels:
        for lab in set(labs):
            counts[lab] = counts.get(lab, 0) + 1
    names = sorted(k for k, c in counts.items() if c >= cfg.min_label_count)
    if not names:
        raise ConfigError(f"no label has >= {cfg.min_label_count} training positives")
    return names


def vitals_arrays(windows: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, V) values and presence mask of the named vitals over windows (units: bpm, breaths/min, %, mmHg)."""
    idx = [VITALS.index(n) for n in names]
    values = np.stack([np.asarray(w["vitals"])[idx] for w in windows]) if windows else np.zeros((0, len(idx)))
    mask = np.stack([np.asarray(w["vitals_mask"])[idx] for w in windows]) if windows else np.zeros((0, len(idx)), bool)
    return values, mask
