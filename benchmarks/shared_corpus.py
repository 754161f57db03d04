"""The pretraining corpus of the shared recordings, with every task's test data left out and a subject-held-out
evaluation slice.

Left out of pretraining (so no downstream test signal is ever seen, even without labels):
  PTB-XL strat_fold 8 (diagnosis and reconstruction test fold) and the CinC 2021 HR records that are PTB-XL
  recordings of fold 8 (CinC's HR source is PTB-XL: HR06000 = ecg_id 6000); all ten BIDMC subjects (vitals
  leave-one-subject-out tests every one of them).
Evaluation slice (subject-disjoint from the training windows, never a task's test data):
  PTB-XL strat_fold 7 (patient-disjoint folds), MIT-BIH 119 and HeartPy data3 (40 evenly spaced windows each).
Long records (MIT-BIH 30 min, MIMIC waveforms, HeartPy) are cut into 10 s windows with a 10 s hop; PTB-XL 500 Hz
copies of ecg_id <= 100 are the same recordings as the 100 Hz files and are not added twice.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", REPO.parent / "shared" / "data"))
TEST_FOLD, EVAL_FOLD = 8, 7
EVAL_RECORDS = ("mitdb/119", "heartpy/data3")
EVAL_PER_RECORD = 40              # evenly spaced windows kept per long held-out record (30 min would swamp PTB-XL)
SEGMENT = re.compile(r"^(\d+_\d{4}|\d+s\d\d)$")   # MIMIC segment headers: 3234460_0001, 041s01
logger = logging.getLogger("shared_corpus")


def _ptbxl(root: Path) -> list[tuple[str, object]]:
    """(slice, Record) for PTB-XL 100 Hz: fold 8 dropped, fold 7 to the evaluation slice."""
    from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl

    out = []
    for i in ptbxl_ids(str(root)):
        rec = read_ptbxl(str(root), i)
        fold = rec.meta["strat_fold"]
        if fold != TEST_FOLD:
            out.append(("eval" if fold == EVAL_FOLD else "train", rec))
    return out


def ptbxl_fold8_ids(root: Path) -> set[int]:
    """ecg_ids of PTB-XL's test fold in the shared records."""
    from cardiofm.data.readers.ptbxl import load_ptbxl_database

    db = load_ptbxl_database(str(root))
    return {int(i) for i, f in zip(db.index, db["strat_fold"]) if int(f) == TEST_FOLD}


def _cinc(root: Path, fold8: set[int]) -> list[tuple[str, object]]:
    """CinC 2021 sample minus the PTB-XL recordings of the test fold."""
    from cardiofm.data.readers.cinc2021 import read_cinc2021

    out = []
    for hea in sorted(root.glob("*.hea")):
        if hea.stem.startswith("HR") and int(hea.stem[2:]) in fold8:
            continue
        out.append(("train", read_cinc2021(str(hea.with_suffix("")))))
    return out


def _waveforms(data: Path) -> list[tuple[str, object]]:
    """MIT-BIH, the wfdb-python sample records (CinC 2015, MIMIC-II/III, MGH, mimicdb) and HeartPy PPG."""
    from cardiofm.data.readers.mimic_wdb import read_mimic_wdb
    from cardiofm.data.readers.tabular import read_csv_signal
    from cardiofm.data.readers.wfdb import read_wfdb
    from cardiofm.data.record import RecordError

    out = []
    for hea in sorted((data / "mitdb").glob("*.hea")):
        out.append(("eval" if hea.stem == "119" else "train", read_wfdb(str(hea.with_suffix("")), source="mitdb")))
    sample = data / "wfdb_python_sample"
    for folder in sorted(p for p in sample.iterdir() if p.is_dir() and p.name != "mitdb"):
        split = "eval" if folder.name in EVAL_RECORDS else "train"
        headers = [h for h in sorted(folder.glob("*.hea")) if not h.stem.endswith(("n", "_layout"))]
        masters = [h for h in headers if not SEGMENT.match(h.stem)]
        # numerics and layout headers are not waveforms; a master header already joins its segments
        for hea in masters or headers:
            reader = read_mimic_wdb if folder.name.startswith("mimic") and "mimicdb" not in folder.name else read_wfdb
            try:
                rec = reader(str(hea.with_suffix("")), source=f"wfdb_sample/{folder.name}")
            except RecordError as err:
                logger.warning("skipped %s", err)
                continue
            out.append((split, rec))
    heartpy = data / "heartpy_ppg"
    for name in ("data.csv", "data2.csv", "data3.csv"):
        # data.csv is bare 100 Hz samples; data2/data3 carry a time column and a value column named 'hr' that
        # holds the PPG samples
        rec = read_csv_signal(str(heartpy / name), channels=["PPG"], fs=100.0 if name == "data.csv" else None,
                              source="heartpy")
        out.append(("eval" if f"heartpy/{name[:-4]}" in EVAL_RECORDS else "train", rec))
    return out


def pretraining_windows(pre, data: Path = DATA, sources: tuple[str, ...] = ()) -> tuple[list[dict], list[dict], dict]:
    """(train windows, held-out evaluation windows, {source: [train, eval] window counts}) at `pre` settings;
    `sources` (Record.source names, e.g. ("ptbxl", "cinc2021") for the 12-lead subset) keeps only those sources'
    training windows, the held-out slice stays whole so that held-out curves compare across corpora."""
    import numpy as np

    from cardiofm.data.preprocess import preprocess_record
    from cardiofm.data.record import RecordError

    records = _ptbxl(data / "ptbxl") + _cinc(data / "torch_ecg_sample" / "cinc2021", ptbxl_fold8_ids(data / "ptbxl"))
    records += _waveforms(data)
    unknown = set(sources) - {rec.source for _, rec in records}
    if unknown:
        raise ValueError(f"pretraining sources {sorted(unknown)} not among {sorted({r.source for _, r in records})}")
    train, held, counts = [], [], {}
    for split, rec in records:
        if sources and split == "train" and rec.source not in sources:
            continue
        try:
            windows = preprocess_record(rec, pre)
        except RecordError as err:
            logger.warning("skipped %s", err)
            continue
        if split == "eval" and len(windows) > EVAL_PER_RECORD:
            windows = [windows[int(k)] for k in np.linspace(0, len(windows) - 1, EVAL_PER_RECORD)]
        (held if split == "eval" else train).extend(windows)
        c = counts.setdefault(rec.source, [0, 0])
        c[split == "eval"] += len(windows)
    return train, held, counts
