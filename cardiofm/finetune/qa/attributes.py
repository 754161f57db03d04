"""Attribute targets for the QA heads: every PTB-XL record's first window, its noise flags (database columns) and
measured intervals; the patient split; normal ranges of the numeric features fitted to the training questions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ...data.attributes import NUMERIC_FEATURES, measure_intervals, noise_targets
from ...data.preprocess import PreprocessConfig, preprocess_record
from ...data.signal_quality import lead_quality_features, raw_window
from ...data.readers.ecgqa import QAItem

logger = logging.getLogger(__name__)
_CHANGE_TEMPLATES = {68: "became normal", 69: "became abnormal", 70: "still abnormal"}
# Textbook adult reference ranges (ms), the starting point of the fit: RR 600-1000 (60-100 bpm), P wave < 120,
# PR 120-200, QRS 60-110, QT 350-450, QTc 350-450 (0 / 10 s: no lower / upper limit).
REFERENCE_RANGES_MS = {"rr interval": (600.0, 1000.0), "p duration": (0.0, 120.0), "pr interval": (120.0, 200.0),
                       "qrs duration": (60.0, 110.0), "qt interval": (350.0, 450.0), "qt corrected": (350.0, 450.0)}
FIT_TOLERANCE = 1      # questions: ranges this close to the best agreement count as equally good


@dataclass
class ECGAttributes:
    """One PTB-XL ECG: its first preprocessed window and the attributes questions ask about."""

    ecg_id: int
    patient_id: int
    window: dict                 # preprocess_record sample (signal (C, T), channel_mask, channels)
    noise_lead: np.ndarray       # (4, 12) bool, NOISE_TYPES x TWELVE_LEADS
    noise_lead_mask: np.ndarray  # (4, 12) bool, False where the database does not name the leads
    noise_record: np.ndarray     # (4,) bool
    numeric_ms: np.ndarray       # (6,) ms, NUMERIC_FEATURES (0 where not found)
    numeric_found: np.ndarray    # (6,) bool
    noise_features: np.ndarray | None = None   # (12, F) data.signal_quality.LEAD_FEATURES of the raw window


_MEASURED: dict[tuple, dict[int, ECGAttributes]] = {}   # one process measures a record set once (benchmark seeds)


def record_attributes(root: str, ecg_ids, pre: PreprocessConfig) -> dict[int, ECGAttributes]:
    """ecg_id -> ECGAttributes for PTB-XL records (intervals measured on the same window the model reads, signal
    quality on that window before band-passing)."""
    key = (str(root), tuple(ecg_ids), repr(pre.to_dict()))
    if key not in _MEASURED:
        _MEASURED[key] = _measure_records(root, ecg_ids, pre)
    return _MEASURED[key]


def _measure_records(root: str, ecg_ids, pre: PreprocessConfig) -> dict[int, ECGAttributes]:
    from ...data.readers.ptbxl import load_ptbxl_database, read_ptbxl

    db = load_ptbxl_database(root)
    out = {}
    for ecg_id in ecg_ids:
        rec = read_ptbxl(root, ecg_id)
        window = preprocess_record(rec, pre)[0]
        lead, mask, record = noise_targets(db.loc[ecg_id], f"ptbxl_database.csv ecg_id {ecg_id}")
        values, found = measure_intervals(window["signal"], pre.fs, window["channels"])
        quality = lead_quality_features(raw_window(rec.signal, rec.fs, rec.channels, pre.fs, pre.window_s), pre.fs)
        out[ecg_id] = ECGAttributes(ecg_id, int(db.loc[ecg_id, "patient_id"]), window, lead, mask, record,
                                    values, found, quality)
    return out


def patient_split(records: dict[int, ECGAttributes], test_fraction: float, seed: int) -> tuple[set, set]:
    """(train ecg_ids, test ecg_ids): whole patients drawn at random until test_fraction of the ECGs is reached."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    patients = sorted({r.patient_id for r in records.values()})
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    by_patient: dict[int, list[int]] = {}
    for r in records.values():
        by_patient.setdefault(r.patient_id, []).append(r.ecg_id)
    test: set[int] = set()
    for p in patients:
        if len(test) >= test_fraction * len(records):
            break
        test |= set(by_patient[p])
    return set(records) - test, test


def split_questions(items: list[QAItem], train: set, test: set) -> dict[str, list[QAItem]]:
    """Questions whose ECGs all lie in one split; a question that mixes splits is dropped from both."""
    return {"train": [it for it in items if set(it.ecg_ids) <= train],
            "test": [it for it in items if set(it.ecg_ids) <= test]}


def _abnormal(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ~((values >= lo) & (values <= hi))   # NaN (not found) compares False: outside the range


def fit_normal_ranges(items: list[QAItem], records: dict[int, ECGAttributes]) -> tuple[dict, dict]:
    """Normal range (lo, hi) ms per numeric feature: among the ranges within FIT_TOLERANCE questions of the best
    agreement with the training comparison questions (templates 68-70, measured features), the one nearest the
    textbook range (a few dozen questions cannot pin both limits); returns the ranges and their agreement."""
    compare = [it for it in items if it.template_id in _CHANGE_TEMPLATES]
    if not compare:
        raise ValueError("no training comparison questions (templates 68-70) to fit normal ranges on")
    ranges, agreement = {}, {}
    for k, feature in enumerate(NUMERIC_FEATURES):
        v = np.array([[records[e].numeric_ms[k] if records[e].numeric_found[k] else np.nan for e in it.ecg_ids]
                      for it in compare])
        asked = np.array([feature in it.answer for it in compare])
        kind = np.array([it.template_id for it in compare])
        pool = np.array([r.numeric_ms[k] for r in records.values() if r.numeric_found[k]])
        # 0 and 10 s stand for 'no lower / upper limit' (finite: the ranges are saved in the JSON config)
        grid = np.concatenate([[0.0], np.unique(np.round(np.quantile(pool, np.linspace(0, 1, 61)))), [1e4]])
        ref_lo, ref_hi = REFERENCE_RANGES_MS[feature]
        grid = np.unique(np.concatenate([grid, [ref_lo, ref_hi]]))
        scored = []
        for lo in grid:
            for hi in grid[grid > lo]:
                a, b = _abnormal(v[:, 0], lo, hi), _abnormal(v[:, 1], lo, hi)
                member = np.where(kind == 68, a & ~b, np.where(kind == 69, ~a & b, a & b))
                scored.append((int(np.sum(member == asked)), float(lo), float(hi)))
        top = max(s[0] for s in scored)
        near = [s for s in scored if s[0] >= top - FIT_TOLERANCE]
        hits, lo, hi = min(near, key=lambda s: abs(s[1] - ref_lo) + abs(min(s[2], 2000.0) - min(ref_hi, 2000.0)))
        agreement[feature], ranges[feature] = hits / len(compare), (lo, hi)
    return ranges, agreement


def range_agreement(items: list[QAItem], records: dict[int, ECGAttributes], ranges: dict) -> dict[str, float]:
    """Share of comparison questions (templates 68-70) whose answer names each feature exactly when its measured
    values under `ranges` say so (per feature, NaN without comparison questions)."""
    compare = [it for it in items if it.template_id in _CHANGE_TEMPLATES]
    out = {}
    for k, feature in enumerate(NUMERIC_FEATURES):
        lo, hi = ranges[feature]
        hits = []
        for it in compare:
            v = np.array([records[e].numeric_ms[k] if records[e].numeric_found[k] else np.nan for e in it.ecg_ids])
            a, b = _abnormal(v, lo, hi)
            member = {68: a and not b, 69: not a and b, 70: a and b}[it.template_id]
            hits.append(member == (feature in it.answer))
        out[feature] = float(np.mean(hits)) if hits else float("nan")
    return out
