"""Record: one recording with named channels in physical units, plus its text, labels and vitals."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .channels import CHANNEL_VOCAB

# Vital-sign targets in a fixed order; units: HR bpm, RR breaths/min, SpO2 %, SBP/DBP mmHg.
VITALS: tuple[str, ...] = ("HR", "RR", "SpO2", "SBP", "DBP")


class RecordError(ValueError):
    """A record that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Record:
    """A recording: `signal` float32 (channels, samples) in physical units (ECG in mV) at `fs` Hz."""

    signal: np.ndarray
    channels: list[str]
    fs: float
    text: str | None = None
    labels: list[str] = field(default_factory=list)
    label_names: dict[str, str] = field(default_factory=dict)
    vitals: dict[str, float] = field(default_factory=dict)
    vital_series: dict[str, np.ndarray] = field(default_factory=dict)  # name -> values sampled at vital_fs
    vital_fs: float = 1.0
    subject_id: str = ""
    source: str = ""
    record_id: str = ""
    path: str = ""
    units: list[str] = field(default_factory=list)
    offsets_s: dict[str, float] = field(default_factory=dict)  # per-channel start time, seconds
    meta: dict = field(default_factory=dict)  # age, sex, strat_fold, ...

    def __post_init__(self):
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2 or self.signal.shape[0] != len(self.channels):
            raise RecordError(self.path or self.record_id, f"signal shape {self.signal.shape} does not match "
                              f"{len(self.channels)} channels {self.channels}")

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.signal.shape[1] / float(self.fs)

    def validate(self) -> None:
        """Raise RecordError for input no model should see: bad fs, unknown/duplicate leads, NaN, flat lines."""
        where = self.path or self.record_id or "<record>"
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise RecordError(where, f"invalid sampling rate {self.fs!r}")
        unknown = [c for c in self.channels if c not in CHANNEL_VOCAB]
        if unknown:
            raise RecordError(where, f"unknown channel name(s) {unknown}")
        dups = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dups:
            raise RecordError(where, f"duplicated channel name(s) {dups}")
        if self.signal.shape[1] == 0:
            raise RecordError(where, "empty signal")
        if not np.isfinite(self.signal).all():
            bad = [c for c, row in zip(self.channels, self.signal) if not np.isfinite(row).all()]
            raise RecordError(where, f"NaN/inf samples in channel(s) {bad}")
        flat = [c for c, row in zip(self.channels, self.signal) if np.ptp(row) < 1e-6]
        if len(flat) == len(self.channels):
            raise RecordError(where, "flat line on every channel")

    def select(self, names: list[str]) -> "Record":
        """A copy restricted to the named channels, in the given order."""
        idx = [self.channels.index(n) for n in names]
        out = Record(**{**self.__dict__, "signal": self.signal[idx], "channels": list(names)})
        out.units = [self.units[i] for i in idx] if self.units else []
        return out
