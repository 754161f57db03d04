"""Predictions on a user's records: every record is cut into the checkpoint's windows (any length, rate and lead
naming; overlapping windows), windows are batched across records (not one record at a time) while a background
thread reads and preprocesses the next records, and window outputs are aggregated per record into one CSV row."""
from __future__ import annotations

import csv
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..data.collate import collate_samples
from ..data.record import RecordError
from .evaluation import AGGREGATIONS, VITAL_UNITS, batch_outputs
from .inputs import InputItem, InputOptions, read_input, record_windows

logger = logging.getLogger(__name__)
PREFETCH_RECORDS = 8   # records read ahead by the background thread (bounded: memory stays flat)


@dataclass
class PredictOptions:
    """Window overlap, aggregation and batch size of `cardiofm predict` / `embed`."""

    overlap: float = 0.5          # fraction of a window shared with the next one (0: back-to-back windows)
    aggregate: str | None = None  # "mean" | "max" over a record's windows; None: the model's window_aggregation
    batch_size: int = 64          # windows per forward pass, across records

    def stride_s(self, window_s: float) -> float:
        """Hop between windows, seconds."""
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap {self.overlap} must be in [0, 1)")
        return window_s * (1.0 - self.overlap)


def record_stream(items: Iterable[InputItem], opts: InputOptions, pre, stride_s: float) -> Iterator[tuple]:
    """(item, window samples or the RecordError) per input, read and preprocessed in a background thread."""
    q: queue.Queue = queue.Queue(maxsize=PREFETCH_RECORDS)
    done = object()

    def work():
        try:
            for item in items:
                try:
                    q.put((item, record_windows(read_input(item, opts), pre, stride_s)))
                except (RecordError, OSError, ValueError) as err:
                    q.put((item, err))
        finally:
            q.put(done)
    thread = threading.Thread(target=work, name="cardiofm-read", daemon=True)
    thread.start()
    while (got := q.get()) is not done:
        yield got
    thread.join()


def batched_outputs(stream: Iterable[tuple], forward: Callable[[list[dict]], torch.Tensor],
                    batch_size: int) -> Iterator[tuple]:
    """(item, (W, K) outputs or the error, window start times s) per record, in input order; windows of several
    records share a forward pass of `batch_size` windows."""
    pending: list[list] = []         # [item, samples, outputs so far]
    buffer: list[tuple[int, dict]] = []

    def flush():
        out = forward([s for _, s in buffer]).numpy()
        for (slot, _), row in zip(buffer, out):
            slot[2].append(row)
        buffer.clear()

    def finished():
        while pending and (isinstance(pending[0][1], BaseException) or len(pending[0][2]) == len(pending[0][1])):
            item, samples, rows = pending.pop(0)
            if isinstance(samples, BaseException):
                yield item, samples, None
            else:
                yield item, np.stack(rows), np.array([s["start_s"] for s in samples])

    for item, samples in stream:
        slot = [item, samples, []]
        pending.append(slot)
        if not isinstance(samples, BaseException):
            for s in samples:
                buffer.append((slot, s))
                if len(buffer) == batch_size:
                    flush()
        yield from finished()
    if buffer:
        flush()
    yield from finished()


def model_forward(model, fn: Callable = batch_outputs) -> Callable[[list[dict]], torch.Tensor]:
    """samples -> (B, K) CPU outputs of `fn(model, batch)` on collated windows (median beats included)."""
    vocab, beat_window = tuple(model.config.channel_vocab), model.config.beat_window

    @torch.no_grad()
    def forward(samples):
        return fn(model, collate_samples(samples, vocab=vocab, beat_window=beat_window))
    return forward


def output_columns(model, task: str) -> tuple[list[str], list[str], str]:
    """(output names, CSV column headers, kind) of a task model: kind "multilabel", "multiclass" or "values"."""
    if task == "diagnosis":
        names = list(model.label_names)
        return names, [f"prob_{n}" for n in names], "multilabel"
    if task == "target" and model.is_classifier:
        names = list(model.output_names)
        return names, [f"prob_{n}" for n in names], "multiclass"
    names = list(model.config.vital_names) if task == "vitals" else list(model.output_names)
    units = [VITAL_UNITS.get(n, "") for n in names] if task == "vitals" else \
        list(getattr(model.config, "target_units", None) or [""] * len(names))
    return names, [f"{n} [{u}]" if u else n for n, u in zip(names, units)], "values"


def record_row(key: str, outputs: np.ndarray, starts: np.ndarray, how: str, kind: str, names: list[str],
               headers: list[str], window_s: float, thresholds) -> dict:
    """One CSV row: aggregated outputs per column, the predicted classes, windows used and how."""
    value = AGGREGATIONS[how](outputs)
    if kind == "multiclass" and how == "max":
        value = value / value.sum()  # per-class maxima renormalised to probabilities
    row = {"record": key, "status": "ok", "windows": len(outputs),
           "covered_s": round(float(starts.max() + window_s - starts.min()), 3), "aggregation": how}
    row.update({h: float(v) for h, v in zip(headers, value)})
    if kind == "multilabel":
        th = list(thresholds) if thresholds else [0.5] * len(names)
        row["predicted"] = ";".join(n for n, v, t in zip(names, value, th) if v >= t)
    elif kind == "multiclass":
        row["predicted"] = names[int(np.argmax(value))]
    return row


def predict_records(model, task: str, items: list[InputItem], in_opts: InputOptions,
                    opts: PredictOptions) -> list[dict]:
    """One row per input record (status = the reason for a record that cannot be scored)."""
    pre = model.config.preprocess_config
    how = opts.aggregate or getattr(model.config, "window_aggregation", None) or "mean"
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation {how!r}: use {sorted(AGGREGATIONS)}")
    names, headers, kind = output_columns(model, task)
    thresholds = getattr(model.config, "decision_thresholds", None)
    model.eval()
    rows = []
    stream = record_stream(items, in_opts, pre, opts.stride_s(pre.window_s))
    for item, out, starts in batched_outputs(stream, model_forward(model), opts.batch_size):
        if isinstance(out, BaseException):
            logger.warning("not scored: %s", out)
            rows.append({"record": item.key, "status": getattr(out, "reason", str(out)), "windows": 0,
                         "aggregation": how})
            continue
        rows.append(record_row(item.key, out, starts, how, kind, names, headers, pre.window_s, thresholds))
    in_opts.warn_dropped()
    return rows


def write_rows(rows: list[dict], path: str) -> str:
    """Rows as CSV (columns in first-seen order; missing cells empty)."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path
