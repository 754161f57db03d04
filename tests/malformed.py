"""Malformed-record generator: damaged copies of real PTB-XL records (header claims, data files, gains, samples,
text), each with the quarantine reason `prepare` must give, plus the records that must survive."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

GOOD = ["00001_lr", "00002_lr", "00003_lr", "00004_lr"]
BASE = "00007_lr"                      # every damaged copy starts from this real 10 s, 12-lead, 100 Hz record
REPORT = "Sinusrhythmus Linkstyp"      # text planted in headers: it must never appear in a reason


def copy_record(src_dir: Path, name: str, dst_dir: Path, new: str | None = None) -> Path:
    """Copy a WFDB record (all files named `name.*`) under a new name, header rewritten; returns the base path."""
    new = new or name
    for f in os.listdir(src_dir):
        if f.startswith(name + "."):
            dst = dst_dir / (new + os.path.splitext(f)[1])
            shutil.copy(src_dir / f, dst)
            os.chmod(dst, 0o644)
    hea = dst_dir / f"{new}.hea"
    hea.write_text(hea.read_text(encoding="utf-8").replace(name, new), encoding="utf-8")
    return dst_dir / new


def edit_header(base: Path, old: str, new: str, count: int = 1) -> None:
    """Replace text in a record's header (the old text must be there)."""
    hea = base.with_suffix(".hea")
    text = hea.read_text(encoding="utf-8")
    assert old in text, (old, base)
    hea.write_text(text.replace(old, new, count), encoding="utf-8")


def samples(base: Path, fn) -> None:
    """Edit the int16 samples (samples, 12) of a format-16 record in place with fn(raw) (returning None or an array)."""
    path = base.with_suffix(".dat")
    raw = np.fromfile(path, dtype="<i2").reshape(-1, 12)
    out = fn(raw)
    (raw if out is None else out).astype("<i2").tofile(path)


def _wrap(raw):
    """int16 wrap-around: samples pushed past +32767 come back negative (a 65 mV jump at gain 1000)."""
    return ((raw.astype(np.int32) + np.where(raw > 200, 33000, 0) + 32768) % 65536) - 32768


def _gain(value: str):
    """Set every lead's ADC gain field to `value`."""
    return lambda b: edit_header(b, "1000.0(0)/mV", f"{value}(0)/mV", count=12)


def _rand(lo: int, hi: int):
    return lambda b: b.with_suffix(".dat").write_bytes(
        np.random.default_rng(1).integers(lo, hi, size=12000).astype("<i2").tobytes())


# name -> (damage(base), regular expression the quarantine reason must match)
CASES: dict = {
    # sizes claimed by the header: refused before anything is allocated
    "huge_nsig": (lambda b: b.with_suffix(".hea").write_text("huge_nsig 1000000000 100 1000\n"
                                                             "huge_nsig.dat 16 1000/mV 16 0 0 0 0 I\n"),
                  r"declares 1000000000 signals; at most 256"),
    "huge_nsamp": (lambda b: edit_header(b, "12 100 1000", "12 100 1000000000000"), r"samples.*at most"),
    "huge_skew": (lambda b: edit_header(b, ".dat 16 ", ".dat 16:1000000000 "), r"skew of 1000000000"),
    "huge_frames": (lambda b: edit_header(b, ".dat 16 ", ".dat 16x100000 "), r"samples per frame"),
    "huge_segments": (lambda b: b.with_suffix(".hea").write_text("huge_segments/1000000000 12 100 1000\nseg 1000\n"),
                      r"declares 1000000000 segments"),
    "missing_lines": (lambda b: b.with_suffix(".hea").write_text(
        "\n".join(b.with_suffix(".hea").read_text().splitlines()[:6]) + "\n"), r"declares 12 signals but lists 5"),
    "zero_signals": (lambda b: edit_header(b, "12 100 1000", "0 100 1000"), r"declares 0 signals but lists 12"),
    "text_nsamp": (lambda b: edit_header(b, "12 100 1000", "12 100 many"), r"invalid samples"),
    "fs_huge": (lambda b: edit_header(b, "12 100 1000", "12 1e9 1000"), r"invalid sampling rate"),
    "fs_nan": (lambda b: edit_header(b, "12 100 1000", "12 nan 1000"), r"invalid sampling rate"),
    "zero_fs": (lambda b: edit_header(b, "12 100 1000", "12 0 1000"), r"invalid sampling rate"),
    "no_fs": (lambda b: edit_header(b, "12 100 1000", "12"), r"missing sampling rate"),
    "bad_format": (lambda b: edit_header(b, ".dat 16 ", ".dat 999 "), r"unsupported signal format"),
    "huge_header": (lambda b: open(b.with_suffix(".hea"), "a").write("#" + "x" * (17 << 20) + "\n"),
                    r"header is \d+ bytes"),
    "empty_header": (lambda b: b.with_suffix(".hea").write_bytes(b""), r"empty header"),
    "garbage_header": (lambda b: b.with_suffix(".hea").write_bytes(b"\x89PNG\r\n\x1a\n\x00binary"),
                       r"not valid UTF-8"),
    # data files against the header
    "truncated": (lambda b: open(b.with_suffix(".dat"), "r+b").truncate(9000), r"truncated"),
    "extra_data": (lambda b: open(b.with_suffix(".dat"), "ab").write(b"\0" * 240), r"longer than the header says"),
    "empty_dat": (lambda b: open(b.with_suffix(".dat"), "w").close(), r"truncated"),
    "no_dat": (lambda b: b.with_suffix(".dat").unlink(), r"signal file no_dat.dat is missing"),
    "longer_header": (lambda b: edit_header(b, "12 100 1000", "12 100 1100"), r"header/data length mismatch"),
    # gains and units
    "negative_gain": (lambda b: edit_header(b, "1000.0(0)/mV", "-1000.0(0)/mV"), r"negative ADC gain"),
    "inf_gain": (_gain("1e999"), r"invalid ADC gain"),
    "gain_inflates": (_gain("0.001"), r"implausible ECG amplitude"),          # amplitudes x 10^6
    "gain_shrinks": (_gain("1e9"), r"implausibly small ECG amplitude"),      # amplitudes x 10^-6
    "units_uv": (lambda b: edit_header(b, "/mV", "/uV", count=12), r"implausibly small ECG amplitude"),
    # samples
    "int16_wrap": (lambda b: samples(b, _wrap), r"implausible (sample-to-sample jump|ECG amplitude)"),
    "clipped": (lambda b: samples(b, lambda r: np.clip(r, -150, 150)), r"saturated or clipped"),
    "random_bytes": (_rand(-32768, 32767), r"implausible ECG amplitude|noise-only"),
    "random_small": (_rand(-400, 400), r"noise-only signal"),
    "inverted_lead": (lambda b: samples(b, lambda r: r.__setitem__((slice(None), 2), -r[:, 2])), r"Einthoven"),
    "all_invalid": (lambda b: samples(b, lambda r: r.__setitem__(slice(None), -32768)), r"no valid samples"),
    "gap_everywhere": (lambda b: samples(b, lambda r: r.__setitem__(slice(400, 402), -32768)),
                       r"shorter than one window of measured samples"),
    "long_gap": (lambda b: samples(b, lambda r: r.__setitem__(slice(300, 600), -32768)), r"shorter than one window"),
    "flat": (lambda b: samples(b, lambda r: r.__setitem__(slice(None), 7)), r"flat line on every channel"),
    "short": (lambda b: (edit_header(b, "12 100 1000", "12 100 500"),
                         open(b.with_suffix(".dat"), "r+b").truncate(12000)), r"shorter than one window"),
    # channel names and text
    "unknown_leads": (lambda b: [edit_header(b, f" {lead}\n", f" X{i}\n") for i, lead in enumerate(
        ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"])], r"no known channel name"),
    "dup_leads": (lambda b: edit_header(b, " V1\n", " V2\n"), r"duplicated channel"),
    "latin1_report": (lambda b: open(b.with_suffix(".hea"), "ab").write(f"# Report: {REPORT} \xe4\n".encode("latin-1")),
                      r"not valid UTF-8"),
    "empty_report": (lambda b: open(b.with_suffix(".hea"), "a").write("# Report:   \n"), r"empty report"),
    "bad_label": (lambda b: open(b.with_suffix(".hea"), "a").write("# Labels: NORM,NOT_A_CODE\n"),
                  r"not in the label map"),
}


def build(root: Path, ptbxl_dir: Path) -> tuple[set[str], dict[str, str]]:
    """Write the good records, every damaged copy and two gapped 30 s records into root -> (ids that must be kept,
    {damaged id: reason pattern})."""
    root.mkdir(parents=True, exist_ok=True)
    for name in GOOD:
        copy_record(ptbxl_dir, name, root)
    for name, (damage, _) in CASES.items():
        damage(copy_record(ptbxl_dir, BASE, root, name))
    # one invalid sample on one lead: interpolated, that lead masked in its window, the record kept
    samples(copy_record(ptbxl_dir, BASE, root, "one_invalid_sample"), lambda r: r.__setitem__((500, 3), -32768))
    # a 30 s record (three real records end to end) with a 20 ms dropout on every lead at 15 s: 2 of 3 windows kept
    base = copy_record(ptbxl_dir, BASE, root, "gap_30s")
    edit_header(base, "12 100 1000", "12 100 3000")
    parts = [np.fromfile(ptbxl_dir / f"{n}.dat", dtype="<i2") for n in ("00005_lr", BASE, "00006_lr")]
    base.with_suffix(".dat").write_bytes(np.concatenate(parts).tobytes())
    samples(base, lambda r: r.__setitem__(slice(1500, 1502), -32768))
    kept = set(GOOD) | {"one_invalid_sample", "gap_30s"}
    return kept, {name: reason for name, (_, reason) in CASES.items()}


def reason_ok(name: str, reason: str, pattern: str) -> bool:
    """True when a quarantine reason matches its case's pattern."""
    return re.search(pattern, reason) is not None
