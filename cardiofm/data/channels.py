"""Canonical channel vocabulary and the one lead/alias table: leads are addressed by name, never by position."""
from __future__ import annotations

import re

TWELVE_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS: tuple[str, ...] = TWELVE_LEADS[:6]
PRECORDIAL_LEADS: tuple[str, ...] = TWELVE_LEADS[6:]
# right-sided and posterior chest leads: ECG leads of their own, kept by name (a layout may include them)
EXTRA_LEADS: tuple[str, ...] = ("V3R", "V4R", "V5R", "V7", "V8", "V9")
# Everything a checkpoint can embed by name; new names are appended, never reordered (ids live in checkpoints).
CHANNEL_VOCAB: tuple[str, ...] = TWELVE_LEADS + ("PPG", "ABP", "RESP", "ECG", "CVP", "PAP") + EXTRA_LEADS
ECG_CHANNELS: frozenset[str] = frozenset(TWELVE_LEADS + ("ECG",) + EXTRA_LEADS)

# Upper-case label (spaces, '_' and '-' separators removed) -> canonical name; None = known to carry no waveform
# the model can use. Real files write the same lead many ways: D1/DI (European limb-lead names), MLII (MIT-BIH's
# modified lead II), 'ECG II', 'Lead_II', lowercase PTB 'avr'.
_ALIASES: dict[str, str | None] = {
    "D1": "I", "DI": "I", "D2": "II", "DII": "II", "D3": "III", "DIII": "III",
    "MLI": "I", "MLII": "II", "ML2": "II", "MLIII": "III",
    "MCL1": "V1", "MCL": "V1", "MV1": "V1", "MV2": "V2", "MV3": "V3", "MV4": "V4", "MV5": "V5", "MV6": "V6",
    "PLETH": "PPG", "PPG": "PPG", "SPO2WAVE": "PPG", "PULSE": None,
    "ABP": "ABP", "ART": "ABP", "ARTERIAL": "ABP",
    "RESP": "RESP", "IMPEDANCE": "RESP",
    "ECG": "ECG", "ECG1": "ECG", "V": "ECG",  # a monitor's unnamed chest lead: an ECG of unknown placement
    "CVP": "CVP", "PAP": "PAP",
}
# inverted leads (Cabrera display): stored as the canonical lead times the sign
_INVERTED = {"-AVR": "aVR", "AVRNEG": "aVR", "NEGAVR": "aVR"}
_PREFIX = re.compile(r"^(LEAD|ECG|EKG)(?=.)")


def _key(name: str) -> str:
    """Upper case without separators, trailing dots or a 'LEAD'/'ECG' prefix before a lead name."""
    key = re.sub(r"[\s_]+", "", str(name).strip().upper()).rstrip(".")
    bare = _PREFIX.sub("", key)
    return bare if bare and bare != key and _lookup(bare) is not None else key


def _lookup(key: str) -> str | None:
    for lead in TWELVE_LEADS + EXTRA_LEADS:
        if key == lead.upper():
            return lead
    return _ALIASES.get(key)


def resolve_channel(name: str) -> tuple[str | None, float]:
    """A source's channel label -> (canonical name or None when unknown, polarity +1/-1): '-aVR' -> ('aVR', -1)."""
    raw = re.sub(r"[\s_]+", "", str(name).strip().upper()).rstrip(".")
    if raw in _INVERTED:
        return _INVERTED[raw], -1.0
    return _lookup(_key(name)), 1.0


def canonical_channel(name: str) -> str | None:
    """Map a source's channel label (e.g. 'MLII', ' PLETH', 'avr', 'DII', 'ECG II') to its canonical name, or None
    if unknown; inverted leads ('-aVR') need their polarity too: use resolve_channel."""
    canon, sign = resolve_channel(name)
    return canon if sign > 0 else None


def is_ecg(name: str) -> bool:
    """True for ECG channels (12 standard leads, right-sided/posterior leads and unnamed monitor ECG)."""
    return name in ECG_CHANNELS


def channel_ids(names: list[str] | tuple[str, ...], vocab: tuple[str, ...] = CHANNEL_VOCAB) -> list[int]:
    """Ids of canonical channel names in the vocabulary; raises naming any unknown channel."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise KeyError(f"unknown channel name(s) {unknown}; known: {list(vocab)}")
    return [index[n] for n in names]
