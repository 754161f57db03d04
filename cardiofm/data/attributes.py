"""ECG attributes that questions ask about: per-lead noise flags from the PTB-XL database columns and numeric
interval features (ms) measured from the waveform.

PTB-XL lists the leads a noise type affects as free text (" , I-AVR,  ", "alles", "V2,3", "v5-6"); ranges follow
the standard lead order. Numeric features follow ECG-QA's six, each the median over the beats of lead II
delineated by neurokit2's wavelet method at 500 Hz: RR interval (R to R), P duration (P onset to offset), PR
interval (P onset to QRS onset), QRS duration (Q peak to S peak), QT interval (Q peak to T offset) and QTc (Bazett).
These boundary choices are the ones that agree best with the answers of the ECG-QA comparison questions
(benchmarks/bench_qa.py reports the agreement).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from .channels import TWELVE_LEADS
from .record import RecordError

NOISE_TYPES: tuple[str, ...] = ("static noise", "burst noise", "baseline drift", "electrodes problems")
NOISE_COLUMNS: dict[str, str] = {"static noise": "static_noise", "burst noise": "burst_noise",
                                 "baseline drift": "baseline_drift", "electrodes problems": "electrodes_problems"}
NUMERIC_FEATURES: tuple[str, ...] = ("rr interval", "p duration", "pr interval", "qrs duration", "qt interval",
                                     "qt corrected")
DELINEATION_RATE = 500.0   # Hz: the wavelet delineator's boundaries are too coarse at PTB-XL's 100 Hz
DELINEATION_LEAD = "II"
_UPPER = {lead.upper(): lead for lead in TWELVE_LEADS}
_ALL_LEADS = {"ALLES", "ALL"}          # German "alles": every lead
_UNSPECIFIED = {"LEICHT", "NOISE"}     # "leicht" (slight): noise present, leads not named


@dataclass
class NoiseLeads:
    """Leads one noise type affects: `leads` (subset of TWELVE_LEADS); `present` also covers unnamed leads."""

    present: bool
    leads: frozenset[str]
    leads_known: bool


def _lead(token: str, where: str) -> str:
    key = token.strip().upper()
    if key.isdigit():
        key = "V" + key   # "V2,3": the chest-lead prefix is written once
    if key not in _UPPER:
        raise RecordError(where, f"unknown lead {token!r} in noise column")
    return _UPPER[key]


def parse_noise_leads(text, where: str = "ptbxl_database.csv") -> NoiseLeads:
    """PTB-XL noise column text (NaN/empty = none) -> NoiseLeads; ranges 'I-AVR' follow the standard lead order."""
    if not isinstance(text, str) or not text.strip(" ,"):
        return NoiseLeads(False, frozenset(), True)
    leads: set[str] = set()
    known = True
    # "V1V6" lists two leads without a separator; "AVL.AVF" uses a dot
    for token in re.split(r"[,.;\s]+|(?<=\d)(?=V)", text.strip().upper()):
        if not token:
            continue
        if token in _ALL_LEADS:
            leads |= set(TWELVE_LEADS)
        elif token in _UNSPECIFIED:
            known = False
        elif "-" in token:
            first, last = token.split("-", 1)
            a, b = _lead(first, where), _lead(last if not last.isdigit() else first[0] + last, where)
            i, j = TWELVE_LEADS.index(a), TWELVE_LEADS.index(b)
            if j < i:
                raise RecordError(where, f"lead range {token!r} runs backwards")
            leads |= set(TWELVE_LEADS[i:j + 1])
        else:
            leads.add(_lead(token, where))
    return NoiseLeads(True, frozenset(leads), known)


def noise_targets(row, where: str = "ptbxl_database.csv") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One database row -> per-lead flags (4 types, 12 leads) bool, their mask (False where the leads are not
    named), record-level flags (4,) bool, in NOISE_TYPES x TWELVE_LEADS order."""
    lead_flags = np.zeros((len(NOISE_TYPES), len(TWELVE_LEADS)), bool)
    lead_mask = np.ones_like(lead_flags)
    record = np.zeros(len(NOISE_TYPES), bool)
    for k, kind in enumerate(NOISE_TYPES):
        parsed = parse_noise_leads(row[NOISE_COLUMNS[kind]], f"{where}: {NOISE_COLUMNS[kind]}")
        record[k] = parsed.present
        lead_flags[k] = [lead in parsed.leads for lead in TWELVE_LEADS]
        lead_mask[k] = parsed.leads_known
    return lead_flags, lead_mask, record


def _median_span(start: np.ndarray, end: np.ndarray, fs: float) -> float:
    """Median of end - start over beats where both boundaries were found, ms (NaN when none)."""
    n = min(len(start), len(end))
    span = (np.asarray(end[:n], float) - np.asarray(start[:n], float)) / fs * 1000.0
    span = span[np.isfinite(span) & (span > 0)]
    return float(np.median(span)) if len(span) else float("nan")


def measure_intervals(signal: np.ndarray, fs: float, channels, lead: str = DELINEATION_LEAD,
                      rpeak_method: str = "neurokit2:neurokit") -> tuple[np.ndarray, np.ndarray]:
    """ECG (channels, samples) mV at fs Hz -> NUMERIC_FEATURES values (6,) ms and found (6,) bool (False: the
    delineator found no such boundary pair; the value is then 0, never NaN)."""
    try:
        import neurokit2 as nk
    except ImportError as err:  # optional dependency (extras 'dev'/'bench')
        raise ImportError("measuring intervals needs neurokit2: pip install 'cardiofm[bench]'") from err
    from .preprocess import resample
    from .rpeaks import detect_rpeaks

    channels = list(channels)
    if lead not in channels:
        raise ValueError(f"measure_intervals: lead {lead} not among the channels {channels}")
    x = np.asarray(signal, np.float64)[channels.index(lead)]
    if not np.isfinite(x).all():
        raise ValueError(f"measure_intervals: lead {lead} holds NaN/inf samples")
    if fs != DELINEATION_RATE:
        x = resample(x[None], fs, DELINEATION_RATE)[0]
    rate = DELINEATION_RATE
    clean = nk.ecg_clean(x, sampling_rate=rate)
    peaks = detect_rpeaks(x, rate, rpeak_method)
    values = np.zeros(len(NUMERIC_FEATURES))
    if len(peaks) < 3:
        return values, np.zeros(len(NUMERIC_FEATURES), bool)
    with warnings.catch_warnings():  # neurokit2 warns on every beat it cannot delineate
        warnings.simplefilter("ignore")
        _, waves = nk.ecg_delineate(clean, peaks, sampling_rate=rate, method="dwt")
    w = {k: np.asarray(v, float) for k, v in waves.items()}
    rr = float(np.median(np.diff(peaks))) / rate * 1000.0
    qt = _median_span(w["ECG_Q_Peaks"], w["ECG_T_Offsets"], rate)
    raw = [rr, _median_span(w["ECG_P_Onsets"], w["ECG_P_Offsets"], rate),
           _median_span(w["ECG_P_Onsets"], w["ECG_R_Onsets"], rate),
           _median_span(w["ECG_Q_Peaks"], w["ECG_S_Peaks"], rate), qt, qt / np.sqrt(rr / 1000.0)]
    raw = np.asarray(raw, float)
    found = np.isfinite(raw)
    values[found] = raw[found]
    return values, found
