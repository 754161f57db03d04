"""MIMIC-III / MIMIC-II waveform records (multi-segment, layout headers, PLETH) with their numerics as vitals."""
from __future__ import annotations

import os
import re

import numpy as np
import wfdb as _wfdb

from ..record import Record, RecordError
from .wfdb import read_wfdb, record_base

# numerics channel label (upper case) -> vital; arterial pressure is preferred over the cuff (NBP) when both exist
_NUMERICS = {"HR": "HR", "RESP": "RR", "SPO2": "SpO2", "%SPO2": "SpO2", "ABPSYS": "SBP", "ABP SYS": "SBP",
             "ABPDIAS": "DBP", "ABP DIAS": "DBP", "NBPSYS": "SBP_cuff", "NBP SYS": "SBP_cuff",
             "NBPDIAS": "DBP_cuff", "NBP DIAS": "DBP_cuff"}
_SUBJECT = re.compile(r"^(p\d{6}|s\d{5})-")


def mimic_subject(record_name: str) -> str:
    """Subject of a MIMIC waveform record: 'p000020-2183-...' -> 'p000020', '3000003_0003' -> '3000003'."""
    m = _SUBJECT.match(record_name)
    return m.group(1) if m else record_name.split("_")[0]


def _seconds(t) -> float | None:
    return None if t is None else t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def read_numerics(base: str, wave_start=None) -> tuple[dict[str, np.ndarray], float]:
    """A numerics record ('<name>n') -> ({vital: series}, fs Hz), aligned to the waveform start time."""
    try:
        rec = _wfdb.rdrecord(base)
    except Exception as err:
        raise RecordError(base + ".hea", f"unreadable numerics record ({type(err).__name__}: {err})")
    found: dict[str, np.ndarray] = {}
    for name, col in zip(rec.sig_name, rec.p_signal.T):
        key = _NUMERICS.get(name.strip().upper())
        if key and key not in found:
            col = np.where(col > 0, col, np.nan)  # monitors write 0 for "no reading"
            found[key] = col.astype(np.float32)
    for cuff, art in (("SBP_cuff", "SBP"), ("DBP_cuff", "DBP")):
        if cuff in found:
            found[art] = np.where(np.isfinite(found[art]), found[art], found[cuff]) if art in found else found[cuff]
            del found[cuff]
    shift = 0
    a, b = _seconds(wave_start), _seconds(rec.base_time)
    if a is not None and b is not None and b > a:
        shift = int(round((b - a) * rec.fs))  # numerics started later: pad their head with "missing"
    return {k: np.concatenate([np.full(shift, np.nan, np.float32), v]) for k, v in found.items()}, float(rec.fs)


def read_mimic_wdb(path: str, source: str = "mimic-wdb") -> Record:
    """A MIMIC waveform record (master header of a multi-segment record, or a single segment) -> Record."""
    base = record_base(path)
    rec = read_wfdb(base, source=source)
    if rec.fs < 10:
        raise RecordError(rec.path, f"numerics-only record (fs {rec.fs:.4g} Hz), not a waveform")
    rec.subject_id = mimic_subject(rec.record_id)
    num_base = base + "n"
    if os.path.exists(num_base + ".hea"):
        try:
            start = _wfdb.rdheader(base).base_time
        except Exception:
            start = None
        rec.vital_series, rec.vital_fs = read_numerics(num_base, start)
        rec.meta["numerics"] = sorted(rec.vital_series)
    age = rec.meta.get("age", "")
    rec.meta["age"] = float(age) if str(age).replace(".", "", 1).isdigit() else None
    return rec
