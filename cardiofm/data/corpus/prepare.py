"""Corpus building: sources -> Records -> preprocessed windows -> Arrow shards (parallel, resumable, splittable)."""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import time
import traceback
from collections import Counter
from contextlib import contextmanager

import numpy as np

from ..preprocess import PreprocessConfig, preprocess_record
from ..record import Record, RecordError
from .shards import SHARD_DIR, corpus_features
from .sources import SOURCES, CorpusError, SourceOptions

log = logging.getLogger("cardiofm.corpus")
# rows per Arrow record batch: streaming readers hold one batch per open shard, so small batches keep memory flat
# (64 rows x 12 x 5000 float16 = 7.7 MB)
WRITER_BATCH_ROWS = 64


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)


def record_rows(piece: Record, cfg: PreprocessConfig) -> list[dict]:
    """One gap-free Record -> corpus rows (windows with float16 signal and the record's metadata as JSON)."""
    piece.validate()
    offset = float(piece.meta.get("start_s", 0.0))
    windows = preprocess_record(piece, cfg)  # the plausibility gate runs first: its numbers land in meta['quality']
    meta = {k: v for k, v in piece.meta.items() if k not in ("runs", "start_s")}
    meta.update(fs_original=piece.fs, channels_original=piece.channels, label_names=piece.label_names)
    meta_json = json.dumps(_json_safe(meta), ensure_ascii=False)
    rows = []
    for s in windows:
        s["signal"] = s["signal"].astype(np.float16)
        s["start_s"] = float(s["start_s"]) + offset
        s["meta"] = meta_json
        rows.append(s)
    return rows


def task_rows(pieces: list[Record], cfg: PreprocessConfig) -> list[dict]:
    """Rows of all pieces of one input; a bad piece of a gapped record is skipped, the input fails only if all do."""
    rows, first_error = [], None
    for piece in pieces:
        try:
            rows += record_rows(piece, cfg)
        except RecordError as err:
            if len(pieces) == 1:
                raise
            first_error = first_error or err
    if not rows:
        raise first_error or RecordError(pieces[0].path if pieces else "<input>", "no usable window")
    return rows


_FILE_TOKEN = re.compile(r"(?<!\S)[/\\]\S*|\S+\.[A-Za-z][A-Za-z0-9]{0,4}\b")  # /abs/path, name.ext


def reason_kind(reason: str) -> str:
    """Category of a quarantine reason for summary counts: the text before any detail, without file names, quoted
    values or numbers (corpus.json keys must not identify a record)."""
    head = re.split(r"[:(\[]", reason, maxsplit=1)[0]
    head = re.sub(r"'[^']*'|\"[^\"]*\"|['\"]\S*", "", head)  # quoted values (a cut one too)
    head = _FILE_TOKEN.sub("<file>", head)
    head = re.sub(r"[-+]?\d[\d.e+-]*", "", head)
    return re.sub(r"\s+", " ", head).strip(" ,;") or "unclassified"


def unexpected_reason(err: Exception) -> str:
    """Quarantine reason of an unexpected exception: its type and where it was raised, never its message (which
    may quote file contents such as report text)."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
    return f"unexpected {type(err).__name__}{where}"


@contextmanager
def _locked(path: str, what: str):
    """Hold an exclusive non-blocking fcntl lock on `path`; a lock held by another process raises CorpusError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CorpusError(f"{what} is in use by another prepare run (lock {path}); wait for it to finish or "
                              "use another --out") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock, also when the process is killed


def _shard_paths(out: str, k: int) -> tuple[str, str]:
    base = os.path.join(out, SHARD_DIR, f"shard-{k:05d}")
    return base + ".arrow", base + ".json"


def _atomic_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def process_shard(job: tuple) -> dict:
    """Read, preprocess and write one shard to a temp file, then rename it into place; returns its report."""
    from datasets.arrow_writer import ArrowWriter

    k, tasks, out, cfg_dict, source_name, opts = job
    cfg, source = PreprocessConfig.from_dict(cfg_dict), SOURCES[source_name]
    arrow_path, json_path = _shard_paths(out, k)
    tmp = os.path.join(out, SHARD_DIR, f".tmp-shard-{k:05d}-{os.getpid()}.arrow")
    quarantine, ok, samples, t0 = [], 0, 0, time.time()
    # the temp file is locked while written: another run's stale-file cleanup leaves it alone
    with _locked(tmp + ".lock", f"temp shard {k}"):
        writer = ArrowWriter(features=corpus_features(cfg), path=tmp, writer_batch_size=WRITER_BATCH_ROWS)
        try:
            for task in tasks:
                try:
                    rows = task_rows(source.read(task, opts), cfg)
                except RecordError as err:
                    quarantine.append({"path": err.path, "reason": err.reason, "task": task, "source": source_name})
                    continue
                except Exception as err:  # a long run never dies on one file: unexpected failures are quarantined
                    quarantine.append({"path": task, "reason": unexpected_reason(err), "task": task,
                                       "source": source_name})
                    continue
                for r in rows:
                    writer.write(r)
                ok, samples = ok + 1, samples + len(rows)
            writer.finalize()
        finally:
            writer.close()
        os.replace(tmp, arrow_path)
    os.remove(tmp + ".lock")
    report = {"shard": k, "tasks": len(tasks), "records_ok": ok, "samples": samples, "quarantine": quarantine,
              "seconds": round(time.time() - t0, 3)}
    _atomic_json(json_path, report)
    return report


def _plan(out: str, source: str, opts: SourceOptions, cfg: PreprocessConfig, tasks: list[str], per_shard: int) -> dict:
    """The corpus plan (config + task list digest); a rerun with different inputs or settings is refused."""
    digest = hashlib.sha256("\n".join(tasks).encode()).hexdigest()
    plan = {"source": source, "root": os.path.abspath(opts.root), "preprocess": cfg.to_dict(),
            "records_per_shard": per_shard, "num_tasks": len(tasks), "tasks_sha256": digest,
            "num_shards": max(1, -(-len(tasks) // per_shard))}
    path = os.path.join(out, "plan.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        diff = [k for k in plan if k != "root" and old.get(k) != plan[k]]
        if diff:
            raise ValueError(f"{out} was started with different {diff}; use a new --out or delete it")
    else:
        _atomic_json(path, plan)
    return plan


def merge_reports(out: str) -> dict:
    """Combine every finished shard's report into OUT/corpus.json (summary) and OUT/quarantine.jsonl."""
    with open(os.path.join(out, "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    reports = []
    for path in sorted(glob.glob(os.path.join(out, SHARD_DIR, "shard-*.json"))):
        if os.path.exists(path[:-5] + ".arrow"):
            with open(path, encoding="utf-8") as f:
                reports.append(json.load(f))
    quarantine = [q for r in reports for q in r["quarantine"]]
    tmp = os.path.join(out, f".quarantine.jsonl.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for q in quarantine:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    os.replace(tmp, os.path.join(out, "quarantine.jsonl"))
    done = sorted(r["shard"] for r in reports)
    summary = {
        "records_seen": sum(r["tasks"] for r in reports), "records_ok": sum(r["records_ok"] for r in reports),
        "records_quarantined": len(quarantine), "samples": sum(r["samples"] for r in reports),
        "quarantine_reasons": dict(Counter(reason_kind(q["reason"]) for q in quarantine).most_common()),
        "shards_done": len(done), "shards_total": plan["num_shards"], "complete": len(done) == plan["num_shards"],
    }
    corpus = {"source": plan["source"], "preprocess": plan["preprocess"], "records_per_shard": plan["records_per_shard"],
              "num_tasks": plan["num_tasks"], "summary": summary}
    _atomic_json(os.path.join(out, "corpus.json"), corpus)
    return corpus


def _pool(num_proc: int):
    import multiprocessing as mp

    # fork: workers inherit the imported modules (datasets, scipy) instead of re-importing them per process
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ctx.Pool(num_proc, maxtasksperchild=64)


def _remove_stale(out: str, todo: list[int]) -> None:
    """Delete temp shards of shards this run redoes, left by interrupted runs; a temp file whose lock another live
    run holds is being written and stays."""
    for tmp in glob.glob(os.path.join(out, SHARD_DIR, ".tmp-shard-*.arrow")):
        if int(os.path.basename(tmp).split("-")[2]) not in todo:
            continue
        try:
            with _locked(tmp + ".lock", "temp shard"):
                if os.path.exists(tmp):
                    os.remove(tmp)
            os.remove(tmp + ".lock")
        except CorpusError:
            continue  # a concurrent run's shard (a different machine split): not ours to delete
        except FileNotFoundError:
            continue  # its writer finished and removed it meanwhile


def prepare_corpus(source: str, opts: SourceOptions, out: str, cfg: PreprocessConfig | None = None,
                   num_proc: int = 1, shard_index: int = 0, num_shards: int = 1, records_per_shard: int = 1000,
                   progress: bool = True) -> dict:
    """Build (or resume) the corpus of one source in OUT; this machine takes shards k with k % num_shards == index.

    A second run with the same machine split into the same OUT while this one runs raises CorpusError (fcntl lock
    OUT/.prepare-<index>-of-<num>.lock); so does a source root that holds no input."""
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}; known: {sorted(SOURCES)}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} must be in [0, {num_shards})")
    if not os.path.isdir(opts.root):
        raise FileNotFoundError(f"source root {opts.root} is not a folder")
    cfg = cfg or PreprocessConfig()
    opts.min_samples_s = max(opts.min_samples_s, cfg.window_s)
    tasks = SOURCES[source].discover(opts)
    if not tasks:
        raise CorpusError(f"no {source} input found under {opts.root} (see `cardiofm prepare --help` for what each "
                          "source expects)")
    os.makedirs(os.path.join(out, SHARD_DIR), exist_ok=True)
    with _locked(os.path.join(out, f".prepare-{shard_index}-of-{num_shards}.lock"), out):
        return _run_shards(source, opts, out, cfg, tasks, num_proc, shard_index, num_shards, records_per_shard,
                           progress)


def _run_shards(source, opts, out, cfg, tasks, num_proc, shard_index, num_shards, records_per_shard, progress):
    """The locked body of prepare_corpus: plan, stale cleanup, shards (in a pool), merged reports."""
    from tqdm import tqdm

    plan = _plan(out, source, opts, cfg, tasks, records_per_shard)
    mine = [k for k in range(plan["num_shards"]) if k % num_shards == shard_index]
    todo = [k for k in mine if not all(os.path.exists(p) for p in _shard_paths(out, k))]
    _remove_stale(out, todo)
    log.info("%s: %d inputs -> %d shards; this machine: %d shards, %d already done, %d to do",
             source, len(tasks), plan["num_shards"], len(mine), len(mine) - len(todo), len(todo))
    jobs = [(k, tasks[k * records_per_shard:(k + 1) * records_per_shard], out, cfg.to_dict(), source, opts)
            for k in todo]
    t0, n_rec = time.time(), 0
    bar = tqdm(total=len(jobs), desc=f"prepare {source}", unit="shard", disable=not progress)
    results = map(process_shard, jobs) if num_proc <= 1 else None
    pool = _pool(num_proc) if num_proc > 1 and jobs else None
    try:
        results = results if pool is None else pool.imap_unordered(process_shard, jobs)
        for rep in results:
            n_rec += rep["tasks"]
            bar.update(1)
            bar.set_postfix(records_per_s=f"{n_rec / max(time.time() - t0, 1e-9):.0f}",
                            quarantined=len(rep["quarantine"]))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    corpus = merge_reports(out)
    corpus["summary"]["this_run"] = {"records": n_rec, "seconds": round(time.time() - t0, 3)}
    s = corpus["summary"]
    log.info("corpus in %s: %d samples from %d records, %d quarantined (see %s); %d/%d shards done",
             out, s["samples"], s["records_ok"], s["records_quarantined"], os.path.join(out, "quarantine.jsonl"),
             s["shards_done"], s["shards_total"])
    return corpus
