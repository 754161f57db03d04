"""Canonical channel vocabulary and name mapping: leads are addressed by name, never by position."""
from __future__ import annotations

TWELVE_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS: tuple[str, ...] = TWELVE_LEADS[:6]
PRECORDIAL_LEADS: tuple[str, ...] = TWELVE_LEADS[6:]
# Everything a checkpoint can embed by name; new names are appended, never reordered (ids live in checkpoints).
CHANNEL_VOCAB: tuple[str, ...] = TWELVE_LEADS + ("PPG", "ABP", "RESP", "ECG", "CVP", "PAP")
ECG_CHANNELS: frozenset[str] = frozenset(TWELVE_LEADS + ("ECG",))

_ALIASES = {
    "MLII": "II", "ML2": "II", "LEAD II": "II", "ECG II": "II", "ECGII": "II",
    "LEAD I": "I", "ECG I": "I", "LEAD III": "III",
    "AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "-AVR": None,
    "PLETH": "PPG", "PLETH.": "PPG", "PULSE": None, "PPG": "PPG", "SPO2 WAVE": "PPG",
    "ABP": "ABP", "ART": "ABP", "ARTERIAL": "ABP",
    "RESP": "RESP", "RESP.": "RESP", "IMPEDANCE": "RESP",
    "MCL1": "V1", "MCL": "V1",
    "ECG": "ECG", "V": "ECG",  # a monitor's unnamed chest lead: an ECG of unknown placement
    "CVP": "CVP", "PAP": "PAP",
}


def canonical_channel(name: str) -> str | None:
    """Map a source's channel label (e.g. 'MLII', ' PLETH', 'avr') to its canonical name, or None if unknown."""
    key = name.strip().upper().replace("_", " ")
    for lead in TWELVE_LEADS:
        if key == lead.upper():
            return lead
    if key in _ALIASES:
        return _ALIASES[key]
    compact = key.replace(" ", "")
    return _ALIASES.get(compact)


def is_ecg(name: str) -> bool:
    """True for ECG channels (12 standard leads and unnamed monitor ECG)."""
    return name in ECG_CHANNELS


def channel_ids(names: list[str] | tuple[str, ...], vocab: tuple[str, ...] = CHANNEL_VOCAB) -> list[int]:
    """Ids of canonical channel names in the vocabulary; raises naming any unknown channel."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise KeyError(f"unknown channel name(s) {unknown}; known: {list(vocab)}")
    return [index[n] for n in names]
