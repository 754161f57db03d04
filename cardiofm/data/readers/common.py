"""Helpers shared by the readers: channel-name mapping, unit conversion to mV, strict text decoding."""
from __future__ import annotations

import re

import numpy as np

from ..channels import is_ecg, resolve_channel
from ..record import RecordError

# physical unit (lower case) -> factor to millivolts
_TO_MV = {"mv": 1.0, "millivolt": 1.0, "millivolts": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3,
          "v": 1e3, "volt": 1e3, "volts": 1e3, "nv": 1e-6}


def map_channels(raw_names: list[str], where: str,
                 allow_inverted: bool = False) -> tuple[list[str], list[int], list[str]]:
    """Source labels -> (canonical names, indices kept, dropped unknown labels); duplicates raise RecordError.

    Inverted leads ('-aVR') are kept only with allow_inverted, by readers that then multiply the rows by
    channel_signs (else they count as unknown: a lead must never enter with the wrong polarity)."""
    names, keep, dropped = [], [], []
    for i, raw in enumerate(raw_names):
        canon, sign = resolve_channel(str(raw))
        if canon is None or (sign < 0 and not allow_inverted):
            dropped.append(str(raw).strip())
            continue
        names.append(canon)
        keep.append(i)
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raw_dups = [str(raw_names[keep[i]]).strip() for i, n in enumerate(names) if n in dups]
        raise RecordError(where, f"duplicated channel name(s) {dups} (labels {raw_dups})")
    if not names:
        raise RecordError(where, f"no known channel name among {[str(r).strip() for r in raw_names]}")
    return names, keep, dropped


def channel_signs(raw_names: list[str], keep: list[int]) -> np.ndarray:
    """(len(keep), 1) float32 polarity of the kept source channels: -1 for inverted leads such as '-aVR'."""
    return np.array([[resolve_channel(str(raw_names[i]))[1]] for i in keep], dtype=np.float32)


def ecg_to_mv(signal: np.ndarray, channels: list[str], units: list[str]) -> tuple[np.ndarray, list[str]]:
    """Scale ECG rows given in V/uV/mV to mV in place; other channels and unknown units are left as they are."""
    out_units = list(units)
    for i, (name, unit) in enumerate(zip(channels, units)):
        factor = _TO_MV.get(str(unit).strip().lower())
        if is_ecg(name) and factor is not None:
            if factor != 1.0:
                signal[i] *= factor
            out_units[i] = "mV"
    return signal, out_units


def decode_text(raw: bytes, where: str, what: str = "text") -> str:
    """Strict UTF-8 decode; undecodable bytes raise RecordError (a report must never be silently mangled)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(where, f"{what} is not valid UTF-8 (at byte {err.start}; bytes not quoted)")


_KEY_VALUE = re.compile(r"^\s*([A-Za-z_][\w ]{0,30}?)\s*:\s*(.*)$")
_ANGLE = re.compile(r"<([^>]+)>:\s*(\S*)")


def parse_comments(comments: list[str]) -> dict[str, str]:
    """Header comments ('Age: 29', 'Dx: 1,2', '<age>: 60 <sex>: F') -> {lower-case key: value string}."""
    out: dict[str, str] = {}
    for line in comments:
        line = line.strip().lstrip("#").strip()
        pairs = _ANGLE.findall(line)
        if pairs:
            out.update({k.strip().lower(): v.strip() for k, v in pairs})
            continue
        m = _KEY_VALUE.match(line)
        if m:
            out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def parse_float(value, default: float = float("nan")) -> float:
    """A number from a header/CSV field ('56', '56.0', '??', '') -> float, NaN when absent."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


def parse_sex(value) -> str:
    """'Male'/'M'/'1'(PTB-XL: 1 = female) handled by callers; here: normalise free text to 'M', 'F' or ''."""
    v = str(value or "").strip().lower()
    if v in ("m", "male", "man"):
        return "M"
    if v in ("f", "female", "woman"):
        return "F"
    return ""


def require_text(text: str | None, where: str) -> str:
    """A report that must exist: empty or whitespace-only raises RecordError."""
    if text is None or not str(text).strip():
        raise RecordError(where, "empty report")
    return str(text).strip()
