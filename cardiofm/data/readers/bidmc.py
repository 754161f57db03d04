"""BIDMC PPG and Respiration (CSV release): *_Signals.csv(.gz) at 125 Hz + *_Numerics.csv at 1 Hz + *_Fix.txt."""
from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

from ..record import Record, RecordError
from .common import map_channels, parse_sex

BIDMC_FS = 125.0
# monitor numerics -> vitals (PULSE is the oximeter's rate; HR from the ECG is the reference)
_NUMERICS = {"HR": "HR", "RESP": "RR", "SpO2": "SpO2"}


def _read_csv(path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, EOFError) as err:  # EOFError: truncated gzip
        raise RecordError(path, f"unreadable CSV ({type(err).__name__}: {err})")
    df.columns = [c.strip() for c in df.columns]  # the release writes ' PLETH', ' II', ...
    return df


def _fix_info(path: str) -> dict:
    info: dict = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            info[key.strip().lower()] = value.strip()
    return info


def read_bidmc(signals_path: str) -> Record:
    """One BIDMC recording from its *_Signals.csv(.gz) path -> Record with 1 Hz HR/RR/SpO2 as vital_series.

    The CSV release stores amplitudes normalised to [0, 1]; units are 'NU' (ECG is therefore not in mV)."""
    df = _read_csv(signals_path)
    stem = re.sub(r"_Signals\.csv(\.gz)?$", "", os.path.basename(signals_path))
    folder = os.path.dirname(signals_path)
    time_col = next((c for c in df.columns if c.lower().startswith("time")), None)
    cols = [c for c in df.columns if c != time_col]
    names, keep, dropped = map_channels(cols, signals_path)
    fs = BIDMC_FS
    if time_col is not None and len(df) > 1:
        dt = np.diff(df[time_col].to_numpy(np.float64)[:1000])
        fs = round(float(1.0 / np.median(dt)), 6)  # the time column is printed with 3 decimals
    x = df[[cols[i] for i in keep]].to_numpy(np.float32).T
    if not np.isfinite(x).all():
        raise RecordError(signals_path, "NaN/inf samples")
    rec = Record(signal=x, channels=names, fs=fs, source="bidmc", record_id=stem, path=signals_path,
                 units=["NU"] * len(names), meta={"dropped_channels": dropped} if dropped else {})
    num_path = os.path.join(folder, f"{stem}_Numerics.csv")
    if os.path.exists(num_path):
        num = _read_csv(num_path)
        rec.vital_series = {v: num[k].to_numpy(np.float32) for k, v in _NUMERICS.items() if k in num.columns}
        rec.vital_fs = 1.0
    breaths_path = os.path.join(folder, f"{stem}_Breaths.csv")
    if os.path.exists(breaths_path):
        rec.meta["breaths"] = read_breaths(breaths_path, x.shape[1])
    info = _fix_info(os.path.join(folder, f"{stem}_Fix.txt"))
    age = info.get("age", "")
    rec.meta.update(age=float(age) if age.replace(".", "", 1).isdigit() else None, sex=parse_sex(info.get("gender")),
                    location=info.get("location", ""), amplitude="normalised")
    rec.subject_id = info.get("mimic ii matched wdb id") or stem  # the MIMIC-II patient these 8 min come from
    return rec


def read_breaths(path: str, n_samples: int) -> dict[str, np.ndarray]:
    """*_Breaths.csv -> {"ann1": sorted breath sample indices, "ann2": ...} (signal samples at the record's rate);
    the reference for respiratory rate (two annotators marked each breath on the impedance signal)."""
    df = _read_csv(path)
    out = {}
    for col, key in zip(df.columns[:2], ("ann1", "ann2")):
        idx = pd.to_numeric(df[col], errors="coerce").dropna().to_numpy(np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= n_samples):
            raise RecordError(path, f"{col!r}: breath index outside the signal (0..{n_samples - 1})")
        out[key] = np.sort(idx)
    if not out:
        raise RecordError(path, "no annotator columns")
    return out


def bidmc_files(root: str) -> list[str]:
    """All *_Signals.csv(.gz) files under root, sorted."""
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if re.search(r"_Signals\.csv(\.gz)?$", f)]
    return sorted(out)
