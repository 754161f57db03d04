"""Signal-plausibility gate: amplitude and units, saturation/clipping, wrap-around jumps, polarity, noise-only.

One gate for `prepare` (an issue quarantines the record with its reason) and the inference API (an issue is a
`SignalQualityWarning` or a `SignalQualityError`, by the caller's strictness). Each check works on the physical
signal (ECG in mV) at its own rate; the thresholds were set on every real record of the shared PTB-XL, CinC 2021,
MIT-BIH and BIDMC sets, none of which any check rejects (benchmarks/RESULTS.md, "Robustness").
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

from .channels import canonical_channel, is_ecg
from .record import Record, RecordError

# bounds on sizes that come from input, checked before anything is allocated
MAX_FS_HZ = 100_000.0           # a WFDB header's sampling rate (the fastest physiological recorders: ~20 kHz)
MAX_SIGNALS = 256               # signals declared by one header
MAX_SEGMENTS = 100_000          # segments of one multi-segment record (MIMIC masters: a few thousand)
MAX_RECORD_SAMPLES = 2 ** 28    # channels x samples of one record: 1 GiB as float32 (a 24 h 3-lead Holter at
                                # 1 kHz is 2.6e8); longer recordings must be split
API_FS_RANGE_HZ = (25.0, 20_000.0)  # sampling rates accepted by prepare_input
# shortest input prepare_input accepts without pad=True, seconds (two beats at 50 bpm): a window that is mostly zero
# padding would get answers as confident as a full one
MIN_INPUT_S = 2.5

# robust peak-to-peak (0.5th to 99.5th percentile) of a surface ECG lead in mV: real leads span ~0.05-10 mV;
# ADC counts or microvolts are 200-1000x larger, volts 1000x smaller
ECG_MAX_MV = 40.0
ECG_MIN_MV = 0.01
# a sample-to-sample step larger than this (mV) is no cardiac event: an int16 wrap-around or a bad gain
ECG_MAX_STEP_MV = 25.0
# fraction of a channel's samples that may sit in flat runs at its own extreme values (clipped at the rails)
SATURATION_MAX = 0.02
SATURATION_RUN = 3          # samples: a flat run at least this long at the min/max counts as clipped
# lag-1 autocorrelation: sampled physiology is smooth (> 0.5 at >= 50 Hz), white noise or random bytes are ~0
NOISE_LAG1_MIN = 0.15
# Einthoven/Goldberger identities: a derived limb lead anti-correlated with its identity is wired or scaled upside
# down (well-recorded leads give > 0.9)
POLARITY_CORR_MIN = -0.5
_EINTHOVEN = (("III", ("II", 1.0), ("I", -1.0)), ("aVR", ("I", -0.5), ("II", -0.5)),
              ("aVL", ("I", 1.0), ("II", -0.5)), ("aVF", ("II", 1.0), ("I", -0.5)))
_MV_UNITS = {"mv", "millivolt", "millivolts"}


class SignalQualityWarning(UserWarning):
    """An input passed with a plausibility issue (API strictness 'warn'), or was converted (microvolts -> mV)."""


class SignalQualityError(RecordError):
    """An input refused by the plausibility gate; `issues` lists every failed check."""

    def __init__(self, path: str, issues: list["QualityIssue"]):
        super().__init__(path, "; ".join(i.reason() for i in issues))
        self.issues = issues


@dataclass
class QualityIssue:
    """One failed check: a stable code, the channels concerned and a detail made of numbers only (no report text)."""

    code: str        # amplitude_high | amplitude_low | jump | saturated | noise_only | polarity
    channels: list[str]
    detail: str

    _HEADS = {"amplitude_high": "implausible ECG amplitude (wrong gain or units?)",
              "amplitude_low": "implausibly small ECG amplitude (volts or a wrong gain?)",
              "jump": "implausible sample-to-sample jump (int16 wrap-around or a bad gain?)",
              "saturated": "saturated or clipped samples",
              "noise_only": "noise-only signal (no sample-to-sample correlation)",
              "polarity": "lead polarity inconsistent with Einthoven's law"}

    def reason(self) -> str:
        """Quarantine reason: a fixed head (the summary category) before the first colon, then the numbers."""
        return f"{self._HEADS[self.code]}: {self.detail} in {self.channels}"


@dataclass
class QualityReport:
    """Outcome of the gate: issues (empty when plausible) and the numbers kept in a corpus row's meta."""

    issues: list[QualityIssue] = field(default_factory=list)
    flags: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.issues


def robust_ptp(x: np.ndarray) -> np.ndarray:
    """Per-row 0.5th-99.5th percentile range of x (channels, samples), in x's units."""
    lo, hi = np.percentile(x, [0.5, 99.5], axis=1)
    return hi - lo


def saturated_fraction(x: np.ndarray) -> np.ndarray:
    """Per-row fraction of samples in flat runs (>= SATURATION_RUN samples) at the row's own min or max."""
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    tol = 1e-6 * (hi - lo)
    rail = np.zeros((x.shape[0], x.shape[1] + 2), dtype=np.int8)
    rail[:, 1:-1] = (x >= hi - tol) | (x <= lo + tol)
    # all rows at once (a Python loop per channel cost more than the arithmetic): run starts and ends come out of
    # nonzero() row by row in column order, so the k-th start and the k-th end bound the same run
    step = np.diff(rail, axis=1)
    rows, starts = np.nonzero(step == 1)
    ends = np.nonzero(step == -1)[1]
    lengths = ends - starts
    flat = np.bincount(rows, weights=np.where(lengths >= SATURATION_RUN, lengths, 0), minlength=x.shape[0])
    return np.where((hi - lo)[:, 0] > 0, flat / x.shape[1], 0.0)


def lag1_autocorrelation(x: np.ndarray) -> np.ndarray:
    """Per-row lag-1 autocorrelation of the de-meaned signal (1.0 for a flat row: nothing to judge)."""
    d = x - x.mean(axis=1, keepdims=True)
    den = (d * d).sum(axis=1)
    num = (d[:, 1:] * d[:, :-1]).sum(axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-30), 1.0)


def _polarity(x: np.ndarray, channels: list[str]) -> tuple[list[str], dict]:
    """Limb leads whose Einthoven/Goldberger identity is anti-correlated -> (inverted leads, correlations)."""
    idx = {c: i for i, c in enumerate(channels)}
    rules = [r for r in _EINTHOVEN if r[0] in idx and r[1][0] in idx and r[2][0] in idx]
    if not rules:
        return [], {}
    # the four identities as rows of one array: Pearson r by row sums instead of four np.corrcoef calls (equal to
    # them within float64 rounding, ~1e-16)
    lead = x[[idx[r[0]] for r in rules]]
    derived = (np.array([r[1][1] for r in rules])[:, None] * x[[idx[r[1][0]] for r in rules]]
               + np.array([r[2][1] for r in rules])[:, None] * x[[idx[r[2][0]] for r in rules]])
    d1 = lead - lead.mean(axis=1, keepdims=True)
    d2 = derived - derived.mean(axis=1, keepdims=True)
    s11, s22, s12 = (d1 * d1).sum(axis=1), (d2 * d2).sum(axis=1), (d1 * d2).sum(axis=1)
    ok = (s11 > 0) & (s22 > 0)
    r = np.clip(s12 / np.sqrt(np.where(ok, s11 * s22, 1.0)), -1.0, 1.0)
    bad, corr = [], {}
    for (name, _, _), r_i, ok_i in zip(rules, r, ok):
        if ok_i and np.isfinite(r_i):
            corr[name] = round(float(r_i), 3)
            if r_i < POLARITY_CORR_MIN:
                bad.append(name)
    return bad, corr


def assess(signal: np.ndarray, channels: list[str], fs: float, units: list[str] | None = None) -> QualityReport:
    """Run every check on a (channels, samples) signal at fs Hz; amplitude checks only on ECG rows known in mV."""
    x = np.asarray(signal, dtype=np.float64)
    live = np.ptp(x, axis=1) > 1e-6  # flat rows are missing channels, judged elsewhere
    units = list(units) if units else ["mV"] * len(channels)
    ecg_mv = np.array([is_ecg(c) and str(u).strip().lower() in _MV_UNITS for c, u in zip(channels, units)]) & live
    rep = QualityReport()
    names = np.array(channels, dtype=object)
    if ecg_mv.any():
        ptp = robust_ptp(x[ecg_mv])
        step = np.abs(np.diff(x[ecg_mv], axis=1)).max(axis=1)
        rep.flags.update(ecg_ptp_mv=round(float(np.median(ptp)), 4), ecg_max_step_mv=round(float(step.max()), 4))
        high, low, jump = ptp > ECG_MAX_MV, ptp < ECG_MIN_MV, step > ECG_MAX_STEP_MV
        if high.any():
            rep.issues.append(QualityIssue("amplitude_high", list(names[ecg_mv][high]),
                                           f"peak-to-peak {ptp.max():.4g} mV > {ECG_MAX_MV:g} mV"))
        if low.all():  # one quiet lead is possible (e.g. a lead perpendicular to the axis); all quiet is not
            rep.issues.append(QualityIssue("amplitude_low", list(names[ecg_mv][low]),
                                           f"peak-to-peak {ptp.max():.3g} mV < {ECG_MIN_MV:g} mV"))
        if jump.any() and not high.any():
            rep.issues.append(QualityIssue("jump", list(names[ecg_mv][jump]),
                                           f"step {step.max():.4g} mV > {ECG_MAX_STEP_MV:g} mV"))
    if live.any():
        sat = saturated_fraction(x[live])
        lag1 = lag1_autocorrelation(x[live])
        rep.flags.update(saturated_max=round(float(sat.max()), 4), lag1_min=round(float(lag1.min()), 4))
        if (sat > SATURATION_MAX).any():
            rep.issues.append(QualityIssue("saturated", list(names[live][sat > SATURATION_MAX]),
                                           f"{100 * sat.max():.1f}% of samples flat at the rails > "
                                           f"{100 * SATURATION_MAX:g}%"))
        if (lag1 < NOISE_LAG1_MIN).any():
            rep.issues.append(QualityIssue("noise_only", list(names[live][lag1 < NOISE_LAG1_MIN]),
                                           f"lag-1 autocorrelation {lag1.min():.3f} < {NOISE_LAG1_MIN:g}"))
    inverted, corr = _polarity(x, channels)
    if corr:
        rep.flags["einthoven_corr_min"] = min(corr.values())
    if inverted:
        rep.issues.append(QualityIssue("polarity", inverted, f"correlation with the identity "
                                       f"{min(corr[c] for c in inverted):.3f} < {POLARITY_CORR_MIN:g}"))
    return rep


def microvolt_scale(signal: np.ndarray, channels: list[str]) -> float:
    """1e-3 when the ECG rows of a float array look like microvolts (median robust peak-to-peak in the uV range of a
    real ECG, 40-40000 uV, and above ECG_MAX_MV as mV), else 1.0; PPG/ABP/RESP rows are not used."""
    ecg = [i for i, c in enumerate(channels) if is_ecg(c)]
    if not ecg:
        return 1.0
    x = np.asarray(signal, dtype=np.float64)[ecg]
    x = x[np.ptp(x, axis=1) > 1e-6]
    if not len(x):
        return 1.0
    ptp = float(np.median(robust_ptp(x)))
    return 1e-3 if ECG_MAX_MV < ptp <= ECG_MAX_MV * 1000 else 1.0


def gate_record(record: Record) -> Record:
    """The gate in `prepare`: raise SignalQualityError naming every failed check, else keep the numbers in
    record.meta['quality'] (they travel into each corpus row's meta)."""
    rep = assess(record.signal, record.channels, record.fs, record.units)
    if rep.issues:
        raise SignalQualityError(record.path or record.record_id, rep.issues)
    record.meta["quality"] = rep.flags
    return record


# ---- the API input contract (prepare_input) -------------------------------------------------------------------
def input_channels(channels, layout) -> list[str]:
    """API channel names: a list/tuple of names or one comma-separated string ('I,II') -> canonical names."""
    if isinstance(channels, str):
        channels = channels.split(",")
    elif isinstance(channels, np.ndarray):
        channels = channels.tolist()
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, str) for c in channels):
        raise RecordError("<input>", f"channels must be a list of names or a comma-separated string, got "
                                     f"{type(channels).__name__}")
    if any(c.strip() in ("", ",") for c in channels):
        raise RecordError("<input>", f"empty channel name in {list(channels)} (a comma-separated string split into "
                                     "characters?); pass ['I', 'II'] or 'I,II'")
    names = []
    for c in channels:
        canon = c if c in layout else canonical_channel(c)
        if canon is None:
            raise RecordError("<input>", f"unknown channel name {c!r}")
        names.append(canon)
    return names


def input_fs(fs) -> float:
    """API sampling rate: a finite real number in API_FS_RANGE_HZ (Hz)."""
    lo, hi = API_FS_RANGE_HZ
    if isinstance(fs, (bool, np.bool_)) or not isinstance(fs, numbers.Real):
        raise RecordError("<input>", f"fs must be a number in Hz, got {type(fs).__name__}")
    fs = float(fs)
    if not lo <= fs <= hi:  # also refuses NaN
        raise RecordError("<input>", f"sampling rate {fs!r} Hz is outside the accepted range [{lo:g}, {hi:g}] Hz")
    return fs


def input_array(signal, n_channels: int) -> np.ndarray:
    """API signal: a real float/integer (channels, samples) array within MAX_RECORD_SAMPLES; not yet converted."""
    try:
        x = np.asarray(signal)
    except ValueError as err:  # ragged nested lists
        raise RecordError("<input>", f"signal is not a rectangular array ({err})")
    if x.dtype.kind not in "fiu":
        raise RecordError("<input>", f"signal dtype {x.dtype} is not accepted: samples must be real numbers "
                                     "(float or integer)")
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise RecordError("<input>", f"signal must be (channels, samples), got shape {x.shape}")
    if x.shape[0] != n_channels:
        hint = " (transposed? pass (channels, samples))" if x.shape[1] == n_channels else ""
        raise RecordError("<input>", f"signal has {x.shape[0]} rows but {n_channels} channel names{hint}")
    if x.size > MAX_RECORD_SAMPLES:
        raise RecordError("<input>", f"{x.size} samples; at most {MAX_RECORD_SAMPLES} per call (split it)")
    return x


def input_millivolts(x: np.ndarray, names: list[str], units) -> np.ndarray:
    """Float32 copy with ECG rows in mV: from `units` ('mV'/'uV'/'V', one or per channel), else microvolts are
    detected and converted with a SignalQualityWarning; integer arrays (ADC counts?) need `units`."""
    from .readers.common import ecg_to_mv

    integer = x.dtype.kind in "iu"
    x = x.astype(np.float32)
    bad = [c for c, row in zip(names, x) if not np.isfinite(row).all()]
    if bad:
        raise RecordError("<input>", f"NaN/inf samples in channel(s) {bad}")
    if units is None:
        if integer:
            raise RecordError("<input>", "integer samples look like ADC counts: convert them to mV (divide by the "
                                         "gain in counts/mV) or pass units='uV' / 'mV'")
        scale = microvolt_scale(x, names)
        if scale != 1.0:
            warnings.warn("ECG amplitudes look like microvolts (hundreds to thousands per beat): converted to mV; "
                          "pass units='uV' or units='mV' to state it", SignalQualityWarning, stacklevel=4)
            x[[i for i, c in enumerate(names) if is_ecg(c)]] *= scale
        return x
    units = [units] * len(names) if isinstance(units, str) else list(units)
    if len(units) != len(names):
        raise RecordError("<input>", f"{len(units)} unit(s) for {len(names)} channel(s)")
    x, out_units = ecg_to_mv(x, names, [str(u) for u in units])
    unknown = [u for c, u in zip(names, out_units) if is_ecg(c) and u != "mV"]
    if unknown:
        raise RecordError("<input>", f"unknown ECG unit(s) {unknown}; use 'mV', 'uV' or 'V'")
    return x
