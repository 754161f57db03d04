"""CODE-15%: HDF5 parts with `tracings` (N, 4096, 12) at 400 Hz and `exam_id` (N,), plus exams.csv."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pandas as pd

from ..channels import TWELVE_LEADS
from ..record import Record, RecordError

CODE15_FS = 400.0
CODE15_LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")
CODE15_LABEL_NAMES = {"1dAVb": "1st degree AV block", "RBBB": "right bundle branch block",
                      "LBBB": "left bundle branch block", "SB": "sinus bradycardia", "ST": "sinus tachycardia",
                      "AF": "atrial fibrillation"}
# The release's documentation is ambiguous about the amplitude unit; the stored values have the size of millivolts
# (R waves ~1), so they are taken as mV. Pass another factor to read_code15 if your copy differs.
CODE15_TO_MV = 1.0


@lru_cache(maxsize=2)
def load_code15_exams(root: str) -> pd.DataFrame:
    """exams.csv indexed by exam_id (age, is_male, six label columns, patient_id, trace_file)."""
    path = os.path.join(root, "exams.csv")
    try:
        return pd.read_csv(path).set_index("exam_id")
    except (OSError, ValueError, KeyError) as err:
        raise RecordError(path, f"cannot read exams.csv ({err})")


@lru_cache(maxsize=8)
def _open(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise RecordError(path, f"unreadable HDF5 file ({err})")


def code15_index(root: str) -> list[tuple[str, int]]:
    """(hdf5 path, row) of every exam in the HDF5 parts under root; rows with exam_id 0 are padding and skipped."""
    out = []
    for name in sorted(os.listdir(root)):
        if name.endswith((".hdf5", ".h5")):
            import h5py

            path = os.path.join(root, name)
            try:  # opened and closed here: handles must not be inherited by forked corpus workers
                with h5py.File(path, "r") as f:
                    if "exam_id" not in f or "tracings" not in f:
                        raise RecordError(path, "missing 'tracings' or 'exam_id' dataset")
                    ids = np.asarray(f["exam_id"])
            except OSError as err:
                raise RecordError(path, f"unreadable HDF5 file ({err})")
            out += [(path, i) for i, e in enumerate(ids) if int(e) != 0]
    return out


def _trim_padding(x: np.ndarray) -> np.ndarray:
    """Drop the zero padding that fills short exams up to 4096 samples (all leads exactly 0)."""
    live = np.flatnonzero(np.any(x != 0, axis=0))
    return x[:, live[0]:live[-1] + 1] if len(live) else x[:, :0]


def read_code15(h5_path: str, row: int, root: str | None = None, to_mv: float = CODE15_TO_MV) -> Record:
    """One CODE-15% exam (file, row) -> Record with its six labels, age and sex from exams.csv."""
    where = f"{h5_path}[{row}]"
    f = _open(h5_path)
    try:
        exam_id = int(f["exam_id"][row])
        x = np.asarray(f["tracings"][row], dtype=np.float32).T * to_mv  # stored (samples, leads)
    except (KeyError, IndexError, OSError, ValueError) as err:
        raise RecordError(where, f"unreadable exam ({type(err).__name__}: {err})")
    if x.shape[0] != 12:
        raise RecordError(where, f"expected 12 leads, found {x.shape[0]}")
    rec = Record(signal=_trim_padding(x), channels=list(TWELVE_LEADS), fs=CODE15_FS, source="code15",
                 record_id=str(exam_id), subject_id=str(exam_id), path=where, units=["mV"] * 12)
    exams = load_code15_exams(root or os.path.dirname(h5_path))
    if exam_id in exams.index:
        info = exams.loc[exam_id]
        rec.labels = [c for c in CODE15_LABELS if c in info.index and bool(info[c])]
        rec.label_names = {c: CODE15_LABEL_NAMES[c] for c in rec.labels}
        rec.subject_id = str(int(info["patient_id"])) if "patient_id" in info.index else rec.subject_id
        rec.meta.update(age=float(info["age"]) if "age" in info.index else None,
                        sex=("M" if bool(info["is_male"]) else "F") if "is_male" in info.index else "",
                        normal_ecg=bool(info.get("normal_ecg", False)))
    else:
        rec.meta["exam_missing_from_table"] = True
    return rec
