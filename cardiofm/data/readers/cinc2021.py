"""PhysioNet/CinC Challenge 2021 records (.mat + .hea): 12 leads, SNOMED-CT `Dx`, age and sex in comments."""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

from ..record import Record, RecordError
from .common import parse_float, parse_sex
from .wfdb import read_wfdb

# record-name prefix -> contributing database (the challenge pooled several sources)
CINC2021_DATABASES = {"A": "CPSC", "Q": "CPSC-Extra", "I": "StPetersburg", "S": "PTB", "HR": "PTB-XL",
                      "E": "Georgia", "JS": "Chapman-Ningbo"}


@lru_cache(maxsize=1)
def snomed_ct_map() -> dict[str, tuple[str, str]]:
    """SNOMED-CT code -> (abbreviation, description) for the ECG statements used by the CinC 2020/2021 challenges."""
    text = resources.files("cardiofm.data").joinpath("resources/snomed_ct_ecg.csv").read_text(encoding="utf-8")
    return {row["snomed_ct"]: (row["abbreviation"], row["description"]) for row in csv.DictReader(text.splitlines())}


def cinc2021_database(record_id: str) -> str:
    """Contributing database of a challenge record from its name prefix ('HR06002' -> 'PTB-XL')."""
    prefix = record_id.rstrip("0123456789")
    return CINC2021_DATABASES.get(prefix, prefix or "unknown")


def read_cinc2021(path: str, label_map: dict[str, tuple[str, str]] | None = None) -> Record:
    """One challenge record -> Record with SNOMED codes as labels; codes outside `label_map` raise RecordError."""
    rec = read_wfdb(path, source="cinc2021")
    label_map = snomed_ct_map() if label_map is None else label_map
    bad = [c for c in rec.labels if not c.isdigit()]
    if bad:
        raise RecordError(rec.path, f"Dx entries {bad} are not SNOMED-CT codes")
    unknown = [c for c in rec.labels if c not in label_map]
    if unknown:
        raise RecordError(rec.path, f"label(s) {unknown} not in the label map")
    rec.label_names = {c: label_map[c][0] for c in rec.labels}
    age = parse_float(rec.meta.get("age"))
    rec.meta = {k: v for k, v in rec.meta.items() if k not in ("rx", "hx", "sx") or v.lower() != "unknown"}
    rec.meta.update(age=None if age != age else age, sex=parse_sex(rec.meta.get("sex")),
                    database=cinc2021_database(rec.record_id))
    rec.subject_id = f"{rec.meta['database']}:{rec.record_id}"  # the challenge publishes no patient ids
    return rec
