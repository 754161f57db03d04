"""PTB-XL: WFDB records + ptbxl_database.csv (report, scp_codes with likelihoods, strat_fold, patient_id)."""
from __future__ import annotations

import ast
import os
from functools import lru_cache

import numpy as np
import pandas as pd

from ..record import Record, RecordError
from .common import require_text
from .wfdb import read_wfdb


@lru_cache(maxsize=4)
def load_ptbxl_database(root: str) -> pd.DataFrame:
    """ptbxl_database.csv indexed by ecg_id, with `scp_codes` parsed into {code: likelihood %}."""
    path = os.path.join(root, "ptbxl_database.csv")
    try:
        df = pd.read_csv(path, index_col="ecg_id")
    except (OSError, ValueError) as err:
        raise RecordError(path, f"cannot read the PTB-XL database table ({err})")
    df["scp_codes"] = [_parse_scp(v, f"{path}:{i}") for i, v in zip(df.index, df["scp_codes"])]
    return df


def _parse_scp(value, where: str) -> dict[str, float] | None:
    try:
        codes = ast.literal_eval(value) if isinstance(value, str) else {}
    except (ValueError, SyntaxError):
        return None  # reported per record by read_ptbxl
    return {str(k): float(v) for k, v in codes.items()} if isinstance(codes, dict) else None


@lru_cache(maxsize=4)
def load_scp_statements(root: str) -> pd.DataFrame:
    """scp_statements.csv indexed by SCP code: description, diagnostic_class (superclass), subclass, rhythm, form."""
    path = os.path.join(root, "scp_statements.csv")
    try:
        return pd.read_csv(path, index_col=0)
    except (OSError, ValueError) as err:
        raise RecordError(path, f"cannot read the SCP statement table ({err})")


def scp_superclasses(codes, statements: pd.DataFrame) -> list[str]:
    """Diagnostic superclasses (NORM, MI, STTC, CD, HYP) of SCP codes, via scp_statements.csv."""
    out = set()
    for code in codes:
        if code in statements.index and statements.loc[code, "diagnostic"] == 1.0:
            cls = statements.loc[code, "diagnostic_class"]
            if isinstance(cls, str):
                out.add(cls)
    return sorted(out)


def ptbxl_ids(root: str, high_rate: bool = False) -> list[int]:
    """ecg_ids whose signal header exists under root (records100 at 100 Hz, records500 at 500 Hz)."""
    df = load_ptbxl_database(root)
    col = "filename_hr" if high_rate else "filename_lr"
    return [int(i) for i, f in zip(df.index, df[col]) if os.path.exists(os.path.join(root, f + ".hea"))]


def read_ptbxl(root: str, ecg_id: int, high_rate: bool = False, require_report: bool = False) -> Record:
    """One PTB-XL ECG -> Record: report text, SCP codes as labels (likelihoods and superclasses in meta).

    An empty report raises RecordError when `require_report`, else gives text '' and meta['text_issue']."""
    df, statements = load_ptbxl_database(root), load_scp_statements(root)
    if ecg_id not in df.index:
        raise RecordError(os.path.join(root, "ptbxl_database.csv"), f"ecg_id {ecg_id} is not in the table")
    row = df.loc[ecg_id]
    rec = read_wfdb(os.path.join(root, row["filename_hr" if high_rate else "filename_lr"]), source="ptbxl")
    codes = row["scp_codes"]
    if codes is None:
        raise RecordError(rec.path, f"unparseable scp_codes for ecg_id {ecg_id}")
    unknown = [c for c in codes if c not in statements.index]
    if unknown:
        raise RecordError(rec.path, f"label(s) {unknown} not in the label map scp_statements.csv")
    report = row["report"] if isinstance(row["report"], str) else ""
    if require_report:
        report = require_text(report, rec.path)
    elif not report.strip():
        rec.meta["text_issue"] = "empty report"
    rec.text = report.strip()
    rec.labels = list(codes)
    rec.label_names = {c: str(statements.loc[c, "description"]) for c in codes}
    sub = sorted({str(statements.loc[c, "diagnostic_subclass"]) for c in codes
                  if isinstance(statements.loc[c, "diagnostic_subclass"], str)})
    age = float(row["age"]) if np.isfinite(row["age"]) else None
    rec.meta.update(scp_likelihoods=codes, superclasses=scp_superclasses(codes, statements), subclasses=sub,
                    strat_fold=int(row["strat_fold"]), age=age, sex={0: "M", 1: "F"}.get(int(row["sex"]), ""),
                    validated_by_human=bool(row["validated_by_human"]), device=str(row.get("device", "")))
    rec.subject_id = str(int(row["patient_id"]))
    rec.record_id = str(ecg_id)
    return rec
