"""A user's DATA argument -> records by key and model-ready windows. DATA is what `cardiofm prepare` reads (a folder or
files of WFDB, CSV or NumPy records, any length, rate and lead naming) or a corpus folder it built."""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..data.channels import resolve_channel
from ..data.preprocess import PreprocessConfig, preprocess_record
from ..data.record import Record, RecordError

logger = logging.getLogger(__name__)
SIGNAL_SUFFIXES = (".hea", ".csv.gz", ".csv", ".npy", ".npz")


@dataclass
class InputOptions:
    """How to read raw files: names and rate for headerless CSV/NumPy, and the unknown-channel policy."""

    channels: list[str] | None = None      # channel names of CSV/NumPy files without a header or sidecar
    fs: float | None = None                # sampling rate (Hz) of CSV/NumPy files without a time column or sidecar
    ignore_unknown_channels: bool = False  # drop channels no alias names (one warning) instead of failing
    dropped: dict[str, int] = field(default_factory=dict)   # unknown label -> records it was dropped from

    def warn_dropped(self) -> None:
        """One line listing the unknown channels dropped under ignore_unknown_channels."""
        if self.dropped:
            logger.warning("ignored unknown channel(s) %s (records per label; --ignore-unknown-channels)",
                           ", ".join(f"{k} ({v})" for k, v in sorted(self.dropped.items())))


@dataclass(frozen=True)
class InputItem:
    """One raw record: `key` is its path below DATA without extension ('/'-separated), `path` the file (WFDB:
    the record path without extension)."""

    key: str
    path: str


def is_corpus(path: str) -> bool:
    """True for a folder built by `cardiofm prepare` (it holds corpus.json)."""
    return os.path.isfile(os.path.join(str(path), "corpus.json"))


def strip_suffix(name: str) -> str:
    """'a/b/rec.csv.gz' -> 'a/b/rec' (signal suffixes only; WFDB .dat/.mat too)."""
    for suffix in SIGNAL_SUFFIXES + (".dat", ".mat"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def discover_inputs(data: str | list[str], exclude: tuple[str, ...] = ()) -> list[InputItem]:
    """Raw records under DATA (folders are searched recursively; files are taken as given), sorted by key."""
    from ..data.corpus.sources import discover_wfdb, walk_tree

    paths = [data] if isinstance(data, str) else list(data)
    skip = {os.path.abspath(p) for p in exclude if p}
    items = []
    for p in paths:
        if os.path.isfile(p + ".hea") or p.lower().endswith((".hea", ".dat", ".mat")):
            base = strip_suffix(p)  # a WFDB record: its path without extension
            items.append(InputItem(os.path.basename(base), base))
            continue
        if os.path.isfile(p):
            items.append(InputItem(os.path.basename(strip_suffix(p)), p))
            continue
        if not os.path.isdir(p):
            raise FileNotFoundError(f"input {p} is neither a file nor a folder")
        if is_corpus(p):
            raise ValueError(f"{p} is a prepared corpus: pass it alone as DATA")
        found = list(discover_wfdb(p))
        for d, _, files in walk_tree(p):  # the walk `prepare` uses: symlinked folders once, hidden ones skipped
            found += [os.path.join(d, f) for f in sorted(files)
                      if f.lower().endswith(SIGNAL_SUFFIXES[1:]) and os.path.abspath(os.path.join(d, f)) not in skip]
        items += [InputItem(strip_suffix(os.path.relpath(path, p)).replace(os.sep, "/"), path) for path in found]
    if not items:
        raise FileNotFoundError(f"no WFDB (.hea), CSV or NumPy record under {', '.join(paths)}")
    dups = sorted(k for k, n in Counter(i.key for i in items).items() if n > 1)
    if dups:
        raise ValueError(f"two inputs share the record key(s) {dups[:5]} (same name with different formats)")
    return sorted(items, key=lambda i: i.key)


class KeyIndex:
    """Finds an input by its key: the path below DATA without extension, or the bare record name when unique."""

    def __init__(self, items: list[InputItem]):
        self.by_key = {i.key: i for i in items}
        self.by_name: dict[str, list[InputItem]] = {}
        for i in items:
            self.by_name.setdefault(i.key.rsplit("/", 1)[-1], []).append(i)

    def find(self, key: str) -> InputItem:
        """The input named `key` (extension optional); KeyError with the reason when absent or ambiguous."""
        k = strip_suffix(key.strip().replace("\\", "/").removeprefix("./"))
        if k in self.by_key:
            return self.by_key[k]
        hits = self.by_name.get(k, [])
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise KeyError(f"record {key!r} is ambiguous ({', '.join(h.key for h in hits[:3])}): use the path below "
                           "DATA")
        raise KeyError(f"record {key!r} not found in DATA")


def read_input(item: InputItem, opts: InputOptions, fs: float | None = None) -> Record:
    """One raw record -> Record (record_id = its key). Unknown channel labels raise RecordError unless
    opts.ignore_unknown_channels (then they are dropped and counted for one warning)."""
    from ..data.readers import read_csv_signal, read_numpy_signal, read_wfdb

    path = item.path
    low = path.lower()
    if low.endswith((".csv", ".csv.gz")):
        rec = read_csv_signal(path, opts.channels, fs or opts.fs)
    elif low.endswith((".npy", ".npz")):
        rec = read_numpy_signal(path, opts.channels, fs or opts.fs)
    else:
        rec = read_wfdb(path)
        if fs and abs(fs - rec.fs) > 1e-6:
            raise RecordError(rec.path, f"the labels give fs {fs:g} Hz but the header says {rec.fs:g} Hz")
    unknown = [c for c in rec.meta.get("dropped_channels", []) if resolve_channel(c)[0] is None]
    if unknown and not opts.ignore_unknown_channels:
        raise RecordError(rec.path, f"unknown channel name(s) {unknown} (kept: {rec.channels}): rename them, or "
                                    "pass --ignore-unknown-channels to drop them")
    for c in unknown:
        opts.dropped[c] = opts.dropped.get(c, 0) + 1
    rec.record_id = item.key
    return rec


def crop(rec: Record, start_s: float | None, end_s: float | None) -> Record:
    """The labelled segment [start_s, end_s) of a record (seconds; None = its start / end)."""
    if start_s is None and end_s is None:
        return rec
    a, b = int(round((start_s or 0.0) * rec.fs)), rec.signal.shape[1] if end_s is None else int(round(end_s * rec.fs))
    if b > rec.signal.shape[1] or a >= b:
        raise RecordError(rec.path, f"segment {start_s or 0:g}-{end_s if end_s is not None else 'end'} s lies "
                                    f"outside the record ({rec.duration_s:.1f} s)")
    meta = {**rec.meta, "start_s": float(start_s or 0.0)}
    return Record(**{**rec.__dict__, "signal": rec.signal[:, a:b], "meta": meta})


def record_windows(rec: Record, pre: PreprocessConfig, stride_s: float | None = None) -> list[dict]:
    """Windows of one record at the checkpoint's rate and layout, hop stride_s seconds (None: the config's); a
    record shorter than one window raises RecordError with its length."""
    if stride_s and abs(stride_s - pre.stride_s) > 1e-9:
        pre = PreprocessConfig.from_dict({**pre.to_dict(), "stride_s": float(stride_s)})
    samples = preprocess_record(rec, pre)
    offset = float(rec.meta.get("start_s", 0.0))
    for s in samples:
        s["start_s"] = float(s["start_s"]) + offset
    return samples


def check_corpus_layout(data: str, pre: PreprocessConfig) -> PreprocessConfig:
    """The corpus's PreprocessConfig; its rate and window must equal the model's (channels are mapped by name)."""
    from ..data.corpus.shards import read_corpus_info

    built = PreprocessConfig.from_dict(read_corpus_info(data)["preprocess"])
    if abs(built.fs - pre.fs) > 1e-9 or abs(built.window_s - pre.window_s) > 1e-9:
        raise ValueError(f"{data} was prepared at {built.fs:g} Hz with {built.window_s:g} s windows; the model needs "
                         f"{pre.fs:g} Hz and {pre.window_s:g} s: re-run `cardiofm prepare ... --set fs={pre.fs:g} "
                         f"window_s={pre.window_s:g}` or pass the raw records")
    differ = [k for k in ("ecg_band_hz", "ppg_band_hz", "ecg_norm", "other_norm", "notch_hz")
              if built.to_dict()[k] != pre.to_dict()[k]]
    if differ:
        logger.warning("%s was prepared with other %s than the model was trained with", data, differ)
    return built


def corpus_samples(data: str, pre: PreprocessConfig, keys: set[str] | None = None) -> dict[str, list[dict]]:
    """Windows of a prepared corpus grouped by record id (only `keys` when given), placed in the model's layout."""
    from ..data.corpus.shards import load_corpus

    built = check_corpus_layout(data, pre)
    ds = load_corpus(data)
    ids = ds["record_id"]
    pick = [i for i, r in enumerate(ids) if keys is None or r in keys]
    rows = [built.channels.index(c) if c in built.channels else -1 for c in pre.channels]
    out: dict[str, list[dict]] = {}
    for ex in ds.select(pick).with_format("numpy"):
        sig16, mask = np.asarray(ex["signal"]), np.asarray(ex["channel_mask"], bool)
        signal = np.zeros((len(pre.channels), sig16.shape[1]), np.float32)
        present = np.zeros(len(pre.channels), bool)
        for j, r in enumerate(rows):
            if r >= 0:
                signal[j], present[j] = sig16[r], mask[r]
        if not present.any():
            continue
        out.setdefault(str(ex["record_id"]), []).append({
            "signal": signal, "channel_mask": present, "channels": list(pre.channels), "text": str(ex["text"]),
            "labels": [str(x) for x in ex["labels"]], "vitals": np.asarray(ex["vitals"], np.float32),
            "vitals_mask": np.asarray(ex["vitals_mask"], bool), "subject_id": str(ex["subject_id"]),
            "source": str(ex["source"]), "record_id": str(ex["record_id"]), "start_s": float(ex["start_s"]),
            "meta": json.loads(str(ex["meta"]) or "{}")})
    return out


def corpus_meta(data: str) -> dict[str, tuple[dict, list[str], str]]:
    """Record id -> (metadata, labels, subject id) of a prepared corpus, from its first window."""
    from ..data.corpus.shards import load_corpus

    ds = load_corpus(data).select_columns(["record_id", "meta", "labels", "subject_id"])
    out = {}
    for ex in ds:
        if ex["record_id"] not in out:
            out[ex["record_id"]] = (json.loads(ex["meta"] or "{}"), list(ex["labels"]), ex["subject_id"])
    return out
