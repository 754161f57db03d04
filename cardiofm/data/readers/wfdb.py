"""Generic WFDB reader: single- and multi-segment records (with layout headers) -> Record in mV."""
from __future__ import annotations

import os
import re

import numpy as np
import wfdb as _wfdb

from ..quality import MAX_FS_HZ, MAX_RECORD_SAMPLES, MAX_SEGMENTS, MAX_SIGNALS
from ..record import VITALS, Record, RecordError
from .common import channel_signs, decode_text, ecg_to_mv, map_channels, parse_comments, parse_float

# bytes per sample of the WFDB storage formats whose file size can be predicted (compressed 5xx cannot)
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5,
                     "310": 4 / 3, "311": 4 / 3}
_FMT = re.compile(r"^(\d+)(x\d+)?(:\d+)?(\+\d+)?$")
_MAX_SAMPLES_PER_FRAME = 64  # WFDB oversampled signals use a few; more is a header error
_GAIN = re.compile(r"^([-+\d.eE]+)(?:\((-?\d+)\))?(?:/(\S+))?$")
_MAX_HEADER_BYTES = 16 << 20  # a 100000-segment master header is ~3 MB
_VITAL_KEYS = {"hr": "HR", "rr": "RR", "spo2": "SpO2", "sbp": "SBP", "dbp": "DBP"}


def record_base(path: str) -> str:
    """'dir/rec.hea' | 'dir/rec.dat' | 'dir/rec' -> 'dir/rec' (the WFDB record path without extension)."""
    path = str(path)
    root, ext = os.path.splitext(path)
    return root if ext.lower() in (".hea", ".dat", ".mat") else path


def read_header_text(base: str) -> str:
    """The .hea file as strict UTF-8 text; missing, non-UTF-8 or missing/invalid sampling rate raise RecordError."""
    where = base + ".hea"
    try:
        size = os.path.getsize(where)
        if size > _MAX_HEADER_BYTES:
            raise RecordError(where, f"header is {size} bytes; at most {_MAX_HEADER_BYTES} accepted")
        with open(where, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise RecordError(where, f"cannot read header ({err.strerror or err})")
    text = decode_text(raw, where, "header")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise RecordError(where, "empty header")
    fields = lines[0].split()
    if len(fields) < 3:
        raise RecordError(where, "missing sampling rate in the record line")
    fs = parse_float(fields[2].split("/")[0].split("(")[0], default=float("nan"))
    if not 0 < fs <= MAX_FS_HZ:
        raise RecordError(where, f"invalid sampling rate {fields[2]!r} (expected 0 < fs <= {MAX_FS_HZ:g} Hz)")
    return text


_WFDB_FORMATS = frozenset(_BYTES_PER_SAMPLE) | {"0", "508", "516", "524"}  # 0: null (layout) signal


def _count(value: str, what: str, where: str, most: int) -> int:
    """A non-negative integer header field no larger than `most`; anything else raises RecordError."""
    if not value.isdigit():
        raise RecordError(where, f"invalid {what} {value[:20]!r} in the header")
    n = int(value)
    if n > most:
        raise RecordError(where, f"header declares {n} {what}; at most {most} are accepted")
    return n


def check_header_claims(base: str, text: str, nested: bool = False) -> None:
    """Bounds on every size the header claims, checked before anything is allocated: signal and segment counts,
    samples (x signals) per record, one signal line per signal, formats, frames, skews and gains."""
    where = base + ".hea"
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    head, body = lines[0], lines[1:]
    nsig = _count(head[1], "signals", where, MAX_SIGNALS)
    nsamp = _count(head[3], "samples", where, MAX_RECORD_SAMPLES) if len(head) > 3 else None
    if nsamp is not None and nsamp * max(nsig, 1) > MAX_RECORD_SAMPLES:
        raise RecordError(where, f"header declares {nsig} signals x {nsamp} samples; at most "
                                 f"{MAX_RECORD_SAMPLES} samples per record are accepted (split the recording)")
    if "/" in head[0]:
        if nested:
            raise RecordError(where, "a segment of a multi-segment record is itself multi-segment")
        nseg = _count(head[0].split("/", 1)[1], "segments", where, MAX_SEGMENTS)
        if len(body) != nseg:
            raise RecordError(where, f"header declares {nseg} segments but lists {len(body)}")
        for seg in body:
            _count(seg[1] if len(seg) > 1 else "", "segment samples", where, MAX_RECORD_SAMPLES)
            seg_base = os.path.join(os.path.dirname(base), seg[0])
            if seg[0] != "~" and os.path.exists(seg_base + ".hea"):
                check_header_claims(seg_base, read_header_text(seg_base), nested=True)
        return
    if len(body) != nsig:
        raise RecordError(where, f"header declares {nsig} signals but lists {len(body)} signal lines")
    for fields in body:
        _check_signal_line(fields, nsamp, where)


def _check_signal_line(fields: list[str], nsamp: int | None, where: str) -> None:
    """Format, samples per frame, skew and gain of one signal line."""
    m = _FMT.match(fields[1]) if len(fields) > 1 else None
    if m is None or m.group(1) not in _WFDB_FORMATS:
        raise RecordError(where, f"unsupported signal format {(fields[1] if len(fields) > 1 else '')[:20]!r}")
    if m.group(2) and int(m.group(2)[1:]) > _MAX_SAMPLES_PER_FRAME:
        raise RecordError(where, f"{m.group(2)[1:]} samples per frame; at most {_MAX_SAMPLES_PER_FRAME} accepted")
    if m.group(3) and int(m.group(3)[1:]) > (nsamp or 0):
        raise RecordError(where, f"skew of {m.group(3)[1:]} samples exceeds the record length ({nsamp or 0})")
    g = _GAIN.match(fields[2]) if len(fields) > 2 else None
    if g is not None:
        gain = parse_float(g.group(1))
        if not np.isfinite(gain):
            raise RecordError(where, f"invalid ADC gain {fields[2][:20]!r}")
        if gain < 0:
            raise RecordError(where, f"negative ADC gain {gain:g} (the lead's polarity would be inverted)")


def _check_data_length(base: str, hdr, where: str) -> None:
    """Compare each signal file's size with what the header implies; truncation and extra data both raise."""
    expected: dict[str, float] = {}
    for i, fname in enumerate(hdr.file_name):
        bps = _BYTES_PER_SAMPLE.get(str(hdr.fmt[i]))
        if bps is None:
            return  # compressed or exotic format: let the decoder judge
        spf = (hdr.samps_per_frame or [1] * hdr.n_sig)[i] or 1
        offset = (hdr.byte_offset or [0] * hdr.n_sig)[i] or 0
        expected[fname] = expected.get(fname, float(offset)) + bps * spf
    for fname, per_frame_plus_offset in expected.items():
        p = os.path.join(os.path.dirname(base), fname)
        if not os.path.exists(p):
            raise RecordError(where, f"signal file {fname} is missing")
        offset = 0
        for i, f in enumerate(hdr.file_name):
            if f == fname:
                offset = (hdr.byte_offset or [0] * hdr.n_sig)[i] or 0
                break
        need = int(np.ceil((per_frame_plus_offset - offset) * hdr.sig_len + offset))
        have = os.path.getsize(p)
        if have != need:
            kind = "truncated" if have < need else "longer than the header says"
            raise RecordError(where, f"header/data length mismatch: {fname} is {kind} ({have} bytes, header "
                                     f"implies {need} for {hdr.sig_len} samples)")



def _fast_read(base: str, text: str):
    """Direct reader for the common layout (one file, format 16, no frames/skew), ~10x faster than the generic
    parser; returns (signal (C, N) float32, names, units, fs, comments) or None to use wfdb instead."""
    lines = [ln.strip() for ln in text.splitlines()]
    comments = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    head = lines[0].split()
    if "/" in head[0] or len(head) < 4 or "/" in head[2] or "(" in head[2]:
        return None  # multi-segment or counter frequency
    nsig, fs, n = int(head[1]), float(head[2]), int(head[3])
    sig = [ln.split() for ln in lines[1:1 + nsig]]
    if nsig == 0 or len(sig) != nsig or any(len(f) < 3 for f in sig) or len({f[0] for f in sig}) != 1:
        return None
    fmts = [_FMT.match(f[1]) for f in sig]
    if any(m is None or m.group(1) != "16" or m.group(2) or m.group(3) for m in fmts):
        return None
    gains = [_GAIN.match(f[2]) for f in sig]
    if any(g is None for g in gains):
        return None
    offset = int(fmts[0].group(4) or 0)
    path = os.path.join(os.path.dirname(base), sig[0][0])
    if not os.path.exists(path):
        return None  # diagnosed by _check_data_length
    raw = np.fromfile(path, dtype="<i2", offset=offset)
    if raw.size != nsig * n:
        return None  # length problems are diagnosed by _check_data_length
    raw = raw.reshape(n, nsig).T
    gain = np.array([float(g.group(1)) or 200.0 for g in gains], dtype=np.float32)[:, None]
    adc_zero = [int(f[4]) if len(f) > 4 else 0 for f in sig]
    baseline = np.array([int(g.group(2)) if g.group(2) is not None else z for g, z in zip(gains, adc_zero)],
                        dtype=np.float32)[:, None]
    x = (raw.astype(np.float32) - baseline) / gain
    invalid = raw == -32768  # WFDB's "no sample" value for format 16
    if invalid.any():
        x[invalid] = np.nan
    names = [" ".join(f[8:]) if len(f) > 8 else "" for f in sig]
    units = [g.group(3) or "mV" for g in gains]
    return x, names, units, fs, comments


def _read_raw(base: str, where: str):
    """wfdb record with float32 physical signal; any decoder failure becomes RecordError."""
    try:
        hdr = _wfdb.rdheader(base)
    except Exception as err:  # the wfdb parser raises many types on malformed headers
        raise RecordError(where, f"unreadable header ({type(err).__name__}: {err})")
    multi = getattr(hdr, "seg_name", None) is not None
    if not multi:
        if hdr.n_sig == 0 or not hdr.sig_len:
            raise RecordError(where, "header declares no signal samples")
        _check_data_length(base, hdr, where)
    try:
        rec = _wfdb.rdrecord(base, m2s=True, return_res=32)
    except FileNotFoundError as err:
        raise RecordError(where, f"missing signal file {os.path.basename(str(err.filename))}")
    except Exception as err:
        raise RecordError(where, f"unreadable signal data ({type(err).__name__}: {err})")
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise RecordError(where, "no signal samples")
    return rec, multi


def _valid_runs(signal: np.ndarray, channels: list[str]) -> list[list]:
    """Contiguous pieces where the set of finite channels is constant: [[start, stop, [names]], ...]."""
    finite = np.isfinite(signal)
    code = (finite.astype(np.int64) * (np.int64(1) << np.arange(len(channels), dtype=np.int64))[:, None]).sum(0)
    edges = np.flatnonzero(np.diff(code)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(code)]])
    return [[int(a), int(b), [c for i, c in enumerate(channels) if finite[i, a]]]
            for a, b in zip(starts, stops) if code[a] != 0]


def _metadata(comments: list[str]) -> tuple[str | None, list[str], dict[str, float], dict]:
    """Report text, labels, vitals and the rest from 'Key: value' header comments."""
    kv = parse_comments(comments)
    text = kv.get("report")
    raw_labels = kv.get("labels") or kv.get("dx") or ""
    labels = [lab.strip() for lab in raw_labels.split(",") if lab.strip()]
    vitals = {v: parse_float(kv[k]) for k, v in _VITAL_KEYS.items() if k in kv}
    vitals = {k: v for k, v in vitals.items() if np.isfinite(v)}
    meta = {k: v for k, v in kv.items() if k not in ("report", "labels", "dx") and k not in _VITAL_KEYS}
    return text, labels, vitals, meta


def read_wfdb(path: str, source: str = "wfdb") -> Record:
    """Any WFDB record (path with or without extension; single or multi-segment) -> Record, ECG in mV.

    Unknown channel labels are dropped (listed in meta['dropped_channels']); gaps and invalid samples are set to 0
    and the valid pieces listed in meta['runs'] as [start, stop, channels] so nothing invalid passes as signal."""
    base = record_base(path)
    where = base + ".hea"
    text = read_header_text(base)
    check_header_claims(base, text)
    fast = _fast_read(base, text)
    if fast is not None:
        x_all, raw_names, raw_units, fs, comments = fast
        multi = False
    else:
        rec, multi = _read_raw(base, where)
        x_all, raw_names, fs, comments = rec.p_signal.T, list(rec.sig_name or []), rec.fs, list(rec.comments or [])
        raw_units = [str(u or "") for u in (rec.units or [""] * rec.n_sig)]
    names, keep, dropped = map_channels(raw_names, where, allow_inverted=True)
    x = np.ascontiguousarray(x_all[keep], dtype=np.float32) * channel_signs(raw_names, keep)  # '-aVR' -> aVR
    units = [raw_units[i] for i in keep]
    if np.isinf(x).any():
        raise RecordError(where, "infinite samples")
    meta: dict = {"dropped_channels": dropped} if dropped else {}
    if multi:
        meta["multi_segment"] = True
    if np.isnan(x).any():
        alive = ~np.isnan(x).all(axis=1)
        if not alive.any():
            raise RecordError(where, "no valid samples on any channel")
        if not alive.all():
            meta.setdefault("dropped_channels", []).extend(n for n, a in zip(names, alive) if not a)
            x, names, units = x[alive], [n for n, a in zip(names, alive) if a], [u for u, a in zip(units, alive) if a]
        meta["runs"] = _valid_runs(x, names)
        x = np.nan_to_num(x, nan=0.0)
    x, units = ecg_to_mv(x, names, units)
    text, labels, vitals, extra = _metadata(comments)
    meta.update(extra)
    name = os.path.basename(base)
    return Record(signal=x, channels=names, fs=float(fs), text=text, labels=labels, vitals=vitals,
                  subject_id=str(extra.get("subject_id") or extra.get("subject") or name), source=source,
                  record_id=name, path=where, units=units, meta=meta)


def interpolate_short_gaps(record: Record, max_gap_s: float) -> Record:
    """Invalid spans of <= max_gap_s seconds with measured samples on both sides -> linear interpolation, listed in
    meta['interpolated'] as [channel, start, stop] (samples) so preprocessing masks them; longer gaps stay gaps."""
    runs = record.meta.get("runs")
    if not runs or max_gap_s <= 0:
        return record
    n, row = record.signal.shape[1], {c: i for i, c in enumerate(record.channels)}
    valid = np.zeros(record.signal.shape, dtype=bool)
    for start, stop, names in runs:
        valid[[row[c] for c in names], start:stop] = True
    x, filled, longest = record.signal.copy(), [], int(max_gap_s * record.fs)
    for i, name in enumerate(record.channels):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], (~valid[i]).view(np.int8), [0]))))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a <= longest and a > 0 and b < n:
                x[i, a:b] = np.interp(np.arange(a, b), [a - 1, b], [x[i, a - 1], x[i, b]])
                valid[i, a:b] = True
                filled.append([name, int(a), int(b)])
    if not filled:
        return record
    meta = {**record.meta, "runs": _valid_runs(np.where(valid, x, np.nan), record.channels),
            "interpolated": record.meta.get("interpolated", []) + filled}
    return Record(**{**record.__dict__, "signal": x, "meta": meta})


def _spans_in(spans: list, names: list[str], start: int, stop: int) -> list:
    """Interpolated spans [channel, a, b] of `names` overlapping [start, stop), shifted to start at 0."""
    return [[c, max(a, start) - start, min(b, stop) - start] for c, a, b in spans
            if c in names and a < stop and b > start]


def contiguous_pieces(record: Record, min_samples: int = 1) -> list[Record]:
    """Split a record with gaps (meta['runs']) into gap-free Records of >= min_samples; start in meta['start_s']."""
    runs = record.meta.get("runs")
    if not runs:
        return [record] if record.signal.shape[1] >= min_samples else []
    pieces = []
    for start, stop, names in runs:
        if stop - start < min_samples:
            continue
        idx = [record.channels.index(n) for n in names]
        meta = {k: v for k, v in record.meta.items() if k not in ("runs", "interpolated")}
        meta["start_s"] = record.meta.get("start_s", 0.0) + start / record.fs
        if record.meta.get("interpolated"):
            meta["interpolated"] = _spans_in(record.meta["interpolated"], names, start, stop)
        pieces.append(Record(**{**record.__dict__, "signal": record.signal[idx, start:stop], "channels": list(names),
                                "units": [record.units[i] for i in idx] if record.units else [], "meta": meta}))
    return pieces
