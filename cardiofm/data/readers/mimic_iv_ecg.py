"""MIMIC-IV-ECG: files/pNNNN/pSUBJECT/sSTUDY/STUDY.{hea,dat} + record_list.csv + machine_measurements.csv."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pandas as pd

from ..record import Record, RecordError
from .common import require_text
from .wfdb import read_wfdb

REPORT_COLUMNS = tuple(f"report_{i}" for i in range(18))  # the machine statements, one per column
MEASUREMENT_COLUMNS = ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis",
                       "t_axis")  # intervals in ms from the cart, axes in degrees


@lru_cache(maxsize=4)
def load_mimic_iv_ecg_tables(root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(record_list indexed by study_id, machine_measurements indexed by study_id); the latter may be empty."""
    rl_path = os.path.join(root, "record_list.csv")
    try:
        records = pd.read_csv(rl_path).set_index("study_id")
    except (OSError, ValueError, KeyError) as err:
        raise RecordError(rl_path, f"cannot read record_list.csv ({err})")
    mm_path = os.path.join(root, "machine_measurements.csv")
    if os.path.exists(mm_path):
        # undecodable bytes become U+FFFD so one bad report flags its own record instead of failing the table
        mm = pd.read_csv(mm_path, encoding="utf-8", encoding_errors="replace", dtype={c: str for c in REPORT_COLUMNS},
                         low_memory=False).set_index("study_id")
    else:
        mm = pd.DataFrame()
    return records, mm


def machine_report(row: pd.Series) -> str:
    """Join the non-empty report_0..report_17 statements of one ECG into one text ('; '-separated)."""
    parts = [str(row[c]).strip() for c in REPORT_COLUMNS if c in row.index and isinstance(row[c], str)]
    return "; ".join(p for p in parts if p)


def mimic_iv_ecg_ids(root: str) -> list[int]:
    """study_ids in record_list.csv whose header exists under root."""
    records, _ = load_mimic_iv_ecg_tables(root)
    return [int(s) for s, p in zip(records.index, records["path"]) if os.path.exists(os.path.join(root, p + ".hea"))]


def read_mimic_iv_ecg(root: str, study_id: int, require_report: bool = False) -> Record:
    """One MIMIC-IV-ECG study -> Record with the machine report as text, HR from the RR interval as a vital."""
    records, mm = load_mimic_iv_ecg_tables(root)
    if study_id not in records.index:
        raise RecordError(os.path.join(root, "record_list.csv"), f"study_id {study_id} is not listed")
    info = records.loc[study_id]
    rec = read_wfdb(os.path.join(root, info["path"]), source="mimic-iv-ecg")
    rec.subject_id, rec.record_id = str(int(info["subject_id"])), str(int(study_id))
    rec.meta["ecg_time"] = str(info.get("ecg_time", ""))
    text = ""
    if study_id in mm.index:
        row = mm.loc[study_id]
        row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        text = machine_report(row)
        measures = {c: float(row[c]) for c in MEASUREMENT_COLUMNS if c in row.index and np.isfinite(float(row[c]))}
        rec.meta["measurements"] = measures
        rr = measures.get("rr_interval")
        if rr and 200.0 <= rr <= 3000.0:  # 20-300 bpm; outside that the cart's RR is an artefact
            rec.vitals["HR"] = 60000.0 / rr
    if "\ufffd" in text:
        if require_report:
            raise RecordError(rec.path, "report is not valid UTF-8")
        rec.meta["text_issue"], text = "report is not valid UTF-8", ""
    if require_report:
        text = require_text(text, rec.path)
    elif not text:
        rec.meta.setdefault("text_issue", "empty report")
    rec.text = text
    return rec
