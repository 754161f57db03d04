"""Corpus shards on disk: the row schema, finished-shard discovery, corpus.json, and reading a corpus back (one
memory-mapped Dataset, a per-example stream, or the batch-level streaming mixture used for pretraining)."""
from __future__ import annotations

import glob
import json
import logging
import os

import numpy as np

from ..preprocess import PreprocessConfig
from ..record import VITALS

log = logging.getLogger("cardiofm.corpus")
SHARD_DIR = "shards"


def corpus_features(cfg: PreprocessConfig):
    """Explicit HF Features of a corpus row: float16 (C, T) signal, masks, text, labels, vitals, ids, meta JSON."""
    from datasets import Array2D, Features, List, Value

    c, t = len(cfg.channels), cfg.window_samples
    return Features({
        "signal": Array2D(shape=(c, t), dtype="float16"),
        "channel_mask": List(Value("bool"), length=c),
        "channels": List(Value("string")),
        "text": Value("string"),
        "labels": List(Value("string")),
        "vitals": List(Value("float32"), length=len(VITALS)),
        "vitals_mask": List(Value("bool"), length=len(VITALS)),
        "subject_id": Value("string"),
        "source": Value("string"),
        "record_id": Value("string"),
        "start_s": Value("float32"),
        "meta": Value("string"),
    })


def corpus_shards(out: str) -> list[str]:
    """Finished shard files of a corpus, in order."""
    files = sorted(glob.glob(os.path.join(out, SHARD_DIR, "shard-*.arrow")))
    return [f for f in files if os.path.exists(f[:-6] + ".json")]


def read_corpus_info(out: str) -> dict:
    """OUT/corpus.json (PreprocessConfig and summary); a folder without one raises FileNotFoundError."""
    path = os.path.join(out, "corpus.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{out} is not a corpus (no corpus.json); build it with `cardiofm prepare`")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_corpus(out: str):
    """A built corpus as one memory-mapped `datasets.Dataset` (rows: see corpus_features)."""
    from datasets import Dataset, concatenate_datasets

    info = read_corpus_info(out)
    if not info["summary"]["complete"]:
        log.warning("%s is incomplete: %d of %d shards done", out, info["summary"]["shards_done"],
                    info["summary"]["shards_total"])
    files = corpus_shards(out)
    if not files:
        raise FileNotFoundError(f"{out} has no finished shards")
    parts = [Dataset.from_file(f) for f in files]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def stream_corpus(out: str):
    """A corpus as a streaming `datasets.IterableDataset` over its shards (one stream shard per file)."""
    from datasets import load_dataset

    files = corpus_shards(out)
    if not files:
        raise FileNotFoundError(f"{out} has no finished shards")
    cfg = PreprocessConfig.from_dict(read_corpus_info(out)["preprocess"])
    return load_dataset("arrow", data_files=files, split="train", streaming=True, features=corpus_features(cfg))


def _as_sample(ex: dict) -> dict:
    """A numpy-formatted corpus row -> the pipeline's sample dict types (float32 signal, lists of str)."""
    ex["signal"] = np.asarray(ex["signal"], dtype=np.float32)
    ex["channel_mask"] = np.asarray(ex["channel_mask"], dtype=bool)
    ex["vitals"] = np.asarray(ex["vitals"], dtype=np.float32)
    ex["vitals_mask"] = np.asarray(ex["vitals_mask"], dtype=bool)
    ex["channels"] = [str(c) for c in ex["channels"]]
    ex["labels"] = [str(c) for c in ex["labels"]]
    for k in ("text", "subject_id", "source", "record_id", "meta"):
        ex[k] = str(ex[k])
    ex["start_s"] = float(ex["start_s"])
    return ex


def build_mixture(dirs: list[str], weights: list[float] | None = None, seed: int = 0, shuffle_buffer: int = 1000,
                  rank: int = 0, world_size: int = 1, stopping_strategy: str = "all_exhausted", *,
                  backend: str = "arrow"):
    """Streaming mixture of corpora: sources interleaved with probabilities ∝ weights, split by node (each window on
    exactly one rank), shuffled through a fixed-size buffer (memory constant in corpus size); yields sample dicts.

    backend="arrow" (default) returns a `stream.CorpusStream`: whole Arrow batches become numpy blocks, so it also
    offers `.batches(batch_size, tokenizer=..., label_names=...)`, an iterable of already-collated batches for
    `DataLoader(..., batch_size=None)`; `.map(fn)`, `.shard(rank, world_size)` and `.set_epoch(e)` as well.
    backend="datasets" returns the per-example `datasets.IterableDataset` pipeline (interleave_datasets,
    split_dataset_by_node, buffer shuffle): the same windows, about 10x slower; kept as the reference.
    """
    if not dirs:
        raise ValueError("build_mixture needs at least one corpus folder")
    weights = [1.0] * len(dirs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(dirs) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights {weights} must be {len(dirs)} non-negative numbers with a positive sum")
    infos = {d: read_corpus_info(d)["preprocess"] for d in dirs}
    layouts = {d: (p["channels"], p["fs"], p["window_s"]) for d, p in infos.items()}
    if len({json.dumps(v) for v in layouts.values()}) > 1:
        raise ValueError(f"corpora differ in channel layout / fs / window and cannot be mixed: {layouts}")
    if backend == "datasets":
        return _mixture_per_example(dirs, weights, seed, shuffle_buffer, rank, world_size, stopping_strategy)
    if backend != "arrow":
        raise ValueError(f"backend {backend!r}: use 'arrow' or 'datasets'")
    from .stream import CorpusStream

    used = [(d, w) for d, w in zip(dirs, weights) if w > 0]  # a zero-weight source is never drawn
    shards = []
    for d, _ in used:
        files = corpus_shards(d)
        if not files:
            raise FileNotFoundError(f"{d} has no finished shards")
        shards.append(files)
    total = sum(w for _, w in used)
    cfg = PreprocessConfig.from_dict(infos[dirs[0]])
    return CorpusStream(shards, [w / total for _, w in used], cfg.channels, cfg.window_samples, seed=seed,
                        shuffle_buffer=shuffle_buffer, rank=rank, world_size=world_size,
                        stopping_strategy=stopping_strategy)


def _mixture_per_example(dirs, weights, seed, shuffle_buffer, rank, world_size, stopping_strategy):
    """The per-example `datasets` pipeline (reference for build_mixture's batch-level stream)."""
    from datasets import interleave_datasets
    from datasets.distributed import split_dataset_by_node

    streams = [stream_corpus(d) for d in dirs]
    total = sum(weights)
    ds = streams[0] if len(streams) == 1 else interleave_datasets(
        streams, probabilities=[w / total for w in weights], seed=seed, stopping_strategy=stopping_strategy)
    if world_size > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    if shuffle_buffer > 1:
        # one input shard at a time feeds the buffer: memory stays buffer-sized however many shards there are
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer, max_buffer_input_shards=1)
    return ds.with_format("numpy").map(_as_sample).with_format(None)
