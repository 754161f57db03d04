"""Corpus sources: how each named source finds its inputs (tasks) and turns one task into gap-free Records."""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from ..record import Record, RecordError


class CorpusError(ValueError):
    """A corpus run that cannot proceed (no inputs, output folder locked by another run); one-line message."""


@dataclass
class SourceOptions:
    """Per-run reader options: source root, PTB-XL rate, CSV/NumPy channels and fs, text and label policies."""

    root: str
    high_rate: bool = False              # PTB-XL: records500 instead of records100
    channels: list[str] | None = None    # csv/numpy: channel names when the files carry none
    fs: float | None = None              # csv/numpy: sampling rate, Hz, when the files carry none
    require_text: bool = True            # text sources: an empty or non-UTF-8 report quarantines the record
    label_map: str | None = None         # CSV whose first column lists every allowed label code
    min_samples_s: float = 10.0          # pieces of gapped records shorter than this (s) are skipped
    max_gap_s: float = 0.5               # gaps up to this (s) are interpolated and masked instead of splitting
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A named source: `discover(opts) -> sorted task strings`, `read(task, opts) -> list[Record]`."""

    name: str
    discover: Callable[[SourceOptions], list[str]]
    read: Callable[[str, SourceOptions], list[Record]]
    help: str


def _skip_dir(name: str) -> bool:
    return name.startswith(".")


def walk_tree(root: str):
    """os.walk that follows directory symlinks, visits each real directory once (a link loop is walked once) and
    skips hidden folders; yields (dir, sorted subdirs, files)."""
    seen: set[tuple[int, int]] = set()
    for d, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(x for x in dirs if not _skip_dir(x))
        yield d, dirs, files


def discover_wfdb(root: str) -> list[str]:
    """Record paths (without extension) of every WFDB record under root, recursively.

    Layout headers, segments named by a multi-segment header and numerics companions ('<rec>n' beside '<rec>')
    are parts of another record and are not listed on their own."""
    out = []
    for d, _, files in walk_tree(root):
        names = {f[:-4] for f in files if f.endswith(".hea")}
        parts: set[str] = set()
        for n in names:
            parts |= _segments_of(os.path.join(d, n + ".hea"))
        for n in sorted(names):
            if n in parts or n.endswith("_layout") or (n.endswith("n") and n[:-1] in names):
                continue
            out.append(os.path.join(d, n))
    return sorted(out)


_MULTI = re.compile(r"^\S+/\d+\s")


def _segments_of(header: str) -> set[str]:
    """Segment names listed by a multi-segment header ('name/nseg ...' record line); empty for others."""
    try:
        with open(header, "rb") as f:
            lines = [ln.decode("utf-8", "replace").strip() for ln in f.read(1 << 16).splitlines()]
    except OSError:
        return set()
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines or not _MULTI.match(lines[0]):
        return set()
    return {ln.split()[0] for ln in lines[1:] if ln.split()}


def _pieces(rec: Record, opts: SourceOptions) -> list[Record]:
    """Gap-free pieces at least one window long (gaps <= opts.max_gap_s interpolated first, then masked by
    preprocessing); a record with none raises RecordError."""
    from ..readers.wfdb import contiguous_pieces, interpolate_short_gaps

    if rec.fs < 10.0:  # below this a record is trend data (monitor numerics), not a waveform
        raise RecordError(rec.path, f"numerics-only record (fs {rec.fs:.4g} Hz), not a waveform")
    need = int(opts.min_samples_s * rec.fs)
    pieces = contiguous_pieces(interpolate_short_gaps(rec, opts.max_gap_s), need)
    if not pieces:
        what = "gap-free piece" if rec.meta.get("runs") else "record"
        raise RecordError(rec.path, f"shorter than one window (no {what} of {opts.min_samples_s:g} s)")
    return pieces


def _load_label_map(path: str | None) -> set[str] | None:
    if not path:
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return {r[0].strip() for r in rows[1:] if r}


def check_labels(rec: Record, opts: SourceOptions) -> Record:
    """Labels outside the user's label map raise RecordError (never silently dropped)."""
    allowed = opts.extra.setdefault("_label_map", _load_label_map(opts.label_map))
    if allowed is not None:
        unknown = [lab for lab in rec.labels if lab not in allowed]
        if unknown:
            raise RecordError(rec.path, f"label(s) {unknown} not in the label map")
    return rec


def _text_policy(rec: Record, opts: SourceOptions) -> Record:
    if opts.require_text and rec.meta.get("text_issue"):
        raise RecordError(rec.path, rec.meta["text_issue"])
    return rec


def _read_wfdb_task(task: str, opts: SourceOptions) -> list[Record]:
    from ..readers.wfdb import read_wfdb

    rec = read_wfdb(task)
    if rec.text is not None and not rec.text.strip():
        # a Report: line without text (a header without the line is a signal-only record)
        rec.meta["text_issue"] = "empty report line (drop the line for a signal-only record, or --keep-empty-text)"
    return _pieces(_text_policy(check_labels(rec, opts), opts), opts)


def _ptbxl_discover(opts):
    from ..readers.ptbxl import ptbxl_ids
    return [str(i) for i in ptbxl_ids(opts.root, opts.high_rate)]


def _ptbxl_read(task, opts):
    from ..readers.ptbxl import read_ptbxl
    return _pieces(_text_policy(read_ptbxl(opts.root, int(task), opts.high_rate), opts), opts)


def _cinc_read(task, opts):
    from ..readers.cinc2021 import read_cinc2021
    return _pieces(check_labels(read_cinc2021(task), opts), opts)


def _mimic_iv_discover(opts):
    from ..readers.mimic_iv_ecg import mimic_iv_ecg_ids
    return [str(i) for i in sorted(mimic_iv_ecg_ids(opts.root))]


def _mimic_iv_read(task, opts):
    from ..readers.mimic_iv_ecg import read_mimic_iv_ecg
    return _pieces(_text_policy(read_mimic_iv_ecg(opts.root, int(task)), opts), opts)


def _mimic_wdb_read(task, opts):
    from ..readers.mimic_wdb import read_mimic_wdb
    return _pieces(read_mimic_wdb(task), opts)


def _code15_discover(opts):
    from ..readers.code15 import code15_index
    return [f"{p}#{i}" for p, i in code15_index(opts.root)]


def _code15_read(task, opts):
    from ..readers.code15 import read_code15
    path, row = task.rsplit("#", 1)
    return _pieces(check_labels(read_code15(path, int(row), opts.root), opts), opts)


def _bidmc_discover(opts):
    return _files_with(opts.root, ("_signals.csv", "_signals.csv.gz"))


def _bidmc_read(task, opts):
    from ..readers.bidmc import read_bidmc
    return _pieces(read_bidmc(task), opts)


def _files_with(root: str, suffixes: tuple[str, ...]) -> list[str]:
    out = []
    for d, _, files in walk_tree(root):
        out += [os.path.join(d, f) for f in files if f.lower().endswith(suffixes)]
    return sorted(out)


def _csv_read(task, opts):
    from ..readers.tabular import read_csv_signal
    return _pieces(check_labels(read_csv_signal(task, opts.channels, opts.fs), opts), opts)


def _numpy_read(task, opts):
    from ..readers.tabular import read_numpy_signal
    return _pieces(check_labels(read_numpy_signal(task, opts.channels, opts.fs), opts), opts)


SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("wfdb", lambda o: discover_wfdb(o.root), _read_wfdb_task,
           "any folder of WFDB records (recursive; multi-segment records and numerics companions understood)"),
    Source("ptbxl", _ptbxl_discover, _ptbxl_read, "PTB-XL root (ptbxl_database.csv, scp_statements.csv, records100/)"),
    Source("cinc2021", lambda o: discover_wfdb(o.root), _cinc_read, "PhysioNet/CinC 2021 training folders (.hea + .mat, SNOMED Dx)"),
    Source("mimic-iv-ecg", _mimic_iv_discover, _mimic_iv_read,
           "MIMIC-IV-ECG root (record_list.csv, machine_measurements.csv, files/)"),
    Source("mimic-wdb", lambda o: discover_wfdb(o.root), _mimic_wdb_read,
           "MIMIC-III/II waveform records (multi-segment, PLETH) with numerics as vitals"),
    Source("code15", _code15_discover, _code15_read, "CODE-15% folder (exams.csv + exams_part*.hdf5)"),
    Source("bidmc", _bidmc_discover, _bidmc_read, "BIDMC CSV folder (*_Signals.csv, *_Numerics.csv, *_Fix.txt)"),
    Source("csv", lambda o: _files_with(o.root, (".csv", ".csv.gz")), _csv_read,
           "CSV files, one column per channel (--channels/--fs, a time column or a sidecar JSON)"),
    Source("numpy", lambda o: _files_with(o.root, (".npy", ".npz")), _numpy_read,
           ".npy (channels, samples) with --channels/--fs or sidecar JSON, or .npz with signal/fs/channels"),
]}
