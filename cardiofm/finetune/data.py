"""Finetuning data: read records of a source, pick task targets, split them (PTB-XL strat_fold, subject split,
source-aware k-fold) and cut windows with the checkpoint's own PreprocessConfig."""
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

    source: Literal["ptbxl", "bidmc", "cinc2021"] = "ptbxl"
    root: str = "../shared/data/ptbxl"
    labels: Literal["superclass", "subclass", "scp", "snomed"] = "superclass"   # diagnosis label set
    min_label_count: int = 5            # labels with fewer training positives are left out (not superclass)
    drop_unlabelled: bool = True        # diagnosis: drop records without any label of the set
    high_rate: bool = False             # PTB-XL: records500 instead of records100
    target: str = ""                    # task "target": a Record.meta key (age, sex, ...)
    split: Literal["strat_fold", "subject", "source_kfold"] = "strat_fold"
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


def split_records(records: list[Record], cfg: FinetuneDataConfig, label_lists: list[list[str]]) -> dict[str, list[int]]:
    """Record indices per split name (train/val/test); subjects never cross splits."""
    if cfg.split == "strat_fold":
        folds = np.array([int(r.meta.get("strat_fold", -1)) for r in records])
        if (folds < 0).any():
            raise ConfigError("split strat_fold needs PTB-XL records (meta strat_fold)")
        return {name: np.flatnonzero(np.isin(folds, f)).tolist()
                for name, f in (("train", cfg.train_folds), ("val", cfg.val_folds), ("test", cfg.test_folds))}
    if cfg.split == "subject":
        ids = [(r.record_id, r.subject_id) for r in records]
        held = lambda names: [i for i, (a, b) in enumerate(ids) if a in names or b in names]  # noqa: E731
        val, test = held(cfg.val_subjects), held(cfg.test_subjects)
        return {"train": [i for i in range(len(records)) if i not in set(val) | set(test)], "val": val, "test": test}
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


def build_task_data(cfg: FinetuneDataConfig, task: str, pre: PreprocessConfig) -> TaskData:
    """Read, label, split and window the records for `task` ("diagnosis" | "vitals" | "target")."""
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
    return TaskData(windows=windows, label_names=label_names, records=ids, fs=pre.fs)


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
