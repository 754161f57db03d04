"""Plain CSV / NumPy signals with a channel list and a sampling rate (from arguments, a time column or a sidecar)."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pandas as pd

from ..quality import MAX_FS_HZ, MAX_RECORD_SAMPLES
from ..record import Record, RecordError
from .common import channel_signs, ecg_to_mv, map_channels

_TIME_COLUMNS = ("time", "time [s]", "t", "timer", "timestamp", "datetime", "seconds", "time_s")


def _sidecar(path: str) -> dict:
    """Optional '<file>.json' next to the data: {"fs": Hz, "channels": [...], "units": [...], "subject_id": ...}."""
    side = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(side):
        return {}
    try:
        with open(side, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise RecordError(side, f"unreadable sidecar JSON ({err})")


def _fs_from_time(values: pd.Series, where: str) -> float:
    """Sampling rate from a time column (seconds, milliseconds timer, or datetime strings); irregular raises."""
    if values.dtype == object:
        t = pd.to_datetime(values, errors="coerce").astype("int64").to_numpy() / 1e9
    else:
        t = values.to_numpy(np.float64)
    dt = np.diff(t[:5000])
    dt = dt[np.isfinite(dt)]
    if len(dt) == 0 or np.median(dt) <= 0:
        raise RecordError(where, "time column does not increase: cannot derive the sampling rate")
    step = float(np.median(dt))
    if values.dtype != object and step > 1.0:
        step /= 1000.0  # a millisecond timer
    return round(1.0 / step, 6)


def _finish(x: np.ndarray, names: list[str], fs, units, path: str, meta: dict, source: str) -> Record:
    where = path
    if fs is None:
        raise RecordError(where, "missing sampling rate (give fs, a time column or a sidecar JSON)")
    fs = float(fs)
    if not 0 < fs <= MAX_FS_HZ:  # also refuses NaN
        raise RecordError(where, f"invalid sampling rate {fs!r} (expected 0 < fs <= {MAX_FS_HZ:g} Hz)")
    if x.dtype.kind not in "fiu":
        raise RecordError(where, f"samples must be real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise RecordError(where, "NaN/inf samples")
    mapped, keep, dropped = map_channels(names, where, allow_inverted=True)
    x = np.ascontiguousarray(x[keep], dtype=np.float32) * channel_signs(names, keep)  # '-aVR' -> aVR
    units = [units[i] for i in keep] if units else ["mV"] * len(mapped)
    x, units = ecg_to_mv(x, mapped, units)
    if dropped:
        meta["dropped_channels"] = dropped
    name = os.path.splitext(os.path.basename(path))[0]
    return Record(signal=x, channels=mapped, fs=fs, source=source, record_id=name, path=path, units=units,
                  subject_id=str(meta.pop("subject_id", name)), text=meta.pop("text", None),
                  labels=list(meta.pop("labels", [])), meta=meta)


def read_csv_signal(path: str, channels: list[str] | None = None, fs: float | None = None,
                    units: list[str] | None = None, source: str = "csv") -> Record:
    """CSV with one column per channel (header = channel names unless `channels` is given); ECG assumed mV."""
    side = _sidecar(path)
    channels, fs, units = channels or side.get("channels"), fs or side.get("fs"), units or side.get("units")
    max_rows = MAX_RECORD_SAMPLES // max(1, _n_columns(path))  # bounds memory whatever the (compressed) file size
    try:
        df = pd.read_csv(path, header=None if channels and _no_header(path) else "infer", nrows=max_rows + 1)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise RecordError(path, f"unreadable CSV ({type(err).__name__})")
    if len(df) > max_rows:
        raise RecordError(path, f"more than {max_rows} rows; at most {MAX_RECORD_SAMPLES} samples per record")
    df.columns = [str(c).strip() for c in df.columns]
    time_col = next((c for c in df.columns if c.lower() in _TIME_COLUMNS), None)
    if time_col is not None:
        fs = fs or _fs_from_time(df[time_col], path)
        df = df.drop(columns=[time_col])
    if channels:
        if len(channels) != df.shape[1]:
            raise RecordError(path, f"{df.shape[1]} data column(s) but {len(channels)} channel name(s) given")
        df.columns = list(channels)
    try:
        x = df.to_numpy(np.float32).T
    except ValueError as err:
        raise RecordError(path, f"non-numeric samples ({err})")
    meta = {k: v for k, v in side.items() if k not in ("fs", "channels", "units")}
    return _finish(x, list(df.columns), fs, units, path, meta, source)


def _first_line(path: str) -> str:
    """First line of a (possibly gzipped) CSV, at most 1 MiB of it."""
    import gzip

    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.readline(1 << 20).decode("utf-8", "replace")
    except (OSError, EOFError) as err:
        raise RecordError(path, f"unreadable CSV ({type(err).__name__})")


def _n_columns(path: str) -> int:
    """Columns of a CSV from its first line."""
    return len(_first_line(path).split(","))


def _no_header(path: str) -> bool:
    """True when the first CSV field is a number (a file without a header line)."""
    first = _first_line(path).split(",")[0].strip()
    try:
        float(first)
        return True
    except ValueError:
        return False


def read_numpy_signal(path: str, channels: list[str] | None = None, fs: float | None = None,
                      units: list[str] | None = None, source: str = "numpy") -> Record:
    """.npy (channels, samples) with channels/fs from arguments or sidecar, or .npz with signal, fs, channels."""
    side = _sidecar(path)
    _check_numpy_headers(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise RecordError(path, f"unreadable NumPy file ({type(err).__name__}: {err})")
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if "signal" not in data:
                raise RecordError(path, "npz file has no 'signal' array")
            x = data["signal"]
            fs = fs or (float(data["fs"]) if "fs" in data else None)
            channels = channels or ([str(c) for c in data["channels"]] if "channels" in data else None)
    else:
        x = data
    channels, fs, units = channels or side.get("channels"), fs or side.get("fs"), units or side.get("units")
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.dtype.kind not in "fiu":  # bool and complex (an imaginary part dropped) are refused too
        raise RecordError(path, f"expected a real (channels, samples) array, got {x.dtype} {x.shape}")
    if not channels:
        raise RecordError(path, "missing channel names (give channels or a sidecar JSON)")
    if len(channels) != x.shape[0]:
        if len(channels) == x.shape[1]:
            x = x.T  # stored (samples, channels)
        else:
            raise RecordError(path, f"array {x.shape} does not match {len(channels)} channel name(s)")
    meta = {k: v for k, v in side.items() if k not in ("fs", "channels", "units")}
    return _finish(x.astype(np.float32), list(channels), fs, units, path, meta, source)


def _check_npy_header(f, where: str, available: int) -> None:
    """Shape and dtype an .npy header claims, checked against the bytes that hold the data and MAX_RECORD_SAMPLES
    before numpy allocates the array."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    except (ValueError, OSError, EOFError) as err:
        raise RecordError(where, f"unreadable NumPy header ({type(err).__name__})")
    count = int(np.prod(shape, dtype=np.float64))
    if count > MAX_RECORD_SAMPLES:
        raise RecordError(where, f"array header declares {count:.4g} values; at most {MAX_RECORD_SAMPLES} accepted")
    need = count * dtype.itemsize
    if need > available - f.tell():
        raise RecordError(where, f"truncated NumPy data: header declares {shape} {dtype} ({need} bytes), the file "
                                 f"holds {available - f.tell()}")


def _check_numpy_headers(path: str) -> None:
    """Every array header of an .npy or .npz file against its stored size (an .npz member's declared size)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith(".npy"):
                        with z.open(info) as f:
                            _check_npy_header(f, f"{path}[{info.filename}]", info.file_size)
            return
        with open(path, "rb") as f:
            _check_npy_header(f, path, os.path.getsize(path))
    except (OSError, zipfile.BadZipFile) as err:
        raise RecordError(path, f"unreadable NumPy file ({type(err).__name__})")
