"""Numpy blocks of corpus rows: Arrow record batches become blocks (zero-copy float16 signals) that are read per shard,
mixed across sources by weight, shuffled through a fixed-size buffer and re-cut into batches. Memory is bounded by the
buffer, not by the corpus."""
from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

ARRAY_COLUMNS = ("signal", "channel_mask", "vitals", "vitals_mask", "start_s")
OBJECT_COLUMNS = ("text", "labels", "subject_id", "source", "record_id", "meta")
CHUNK_ROWS = 64  # rows drawn per mixing step and per emitted block (one writer batch)


def _storage(col: pa.Array) -> pa.Array:
    return col.storage if isinstance(col, pa.ExtensionArray) else col


def arrow_block(batch: pa.RecordBatch, n_channels: int, n_samples: int) -> dict:
    """One Arrow record batch of corpus rows -> a block: numpy arrays (signal (n, C, T) float16 without a copy) and
    Python lists for the string columns."""
    n = batch.num_rows
    sig = _storage(batch.column("signal")).flatten().flatten().to_numpy(zero_copy_only=False)
    if sig.size != n * n_channels * n_samples:
        raise ValueError(f"signal column holds {sig.size} values, expected {n} x {n_channels} x {n_samples}")
    block = {"signal": sig.reshape(n, n_channels, n_samples)}
    for name, dtype in (("channel_mask", bool), ("vitals", np.float32), ("vitals_mask", bool)):
        flat = _storage(batch.column(name)).flatten().to_numpy(zero_copy_only=False)
        block[name] = flat.astype(dtype, copy=False).reshape(n, -1)
    block["start_s"] = batch.column("start_s").to_numpy(zero_copy_only=False)
    for name in OBJECT_COLUMNS:
        block[name] = batch.column(name).to_pylist()
    return block


def block_len(block: dict) -> int:
    """Rows in a block."""
    return len(block["start_s"])


def take_rows(block: dict, idx) -> dict:
    """Rows idx (an int array or a slice) of a block, as a new block (arrays are copied by fancy indexing)."""
    if isinstance(idx, slice):
        return {k: v[idx] for k, v in block.items()}
    out = {k: block[k][idx] for k in ARRAY_COLUMNS}
    out.update({k: [block[k][i] for i in idx] for k in OBJECT_COLUMNS})
    return out


def concat_blocks(blocks: list[dict]) -> dict:
    """Rows of several blocks in order, as one block."""
    if len(blocks) == 1:
        return blocks[0]
    out = {k: np.concatenate([b[k] for b in blocks]) for k in ARRAY_COLUMNS}
    out.update({k: [x for b in blocks for x in b[k]] for k in OBJECT_COLUMNS})
    return out


def shard_rows(path: str) -> int:
    """Rows in a finished shard, from its report (so row-level splitting needs no pass over the data)."""
    with open(path[: -len(".arrow")] + ".json", encoding="utf-8") as f:
        return int(json.load(f)["samples"])


class ShardSource:
    """The shards of one corpus as this part sees them: whole files when they divide evenly among the parts, else
    every parts-th row by global row index (split_dataset_by_node's rule); each window lands in exactly one part."""

    def __init__(self, files: list[str], n_channels: int, n_samples: int, part: int, parts: int):
        self.n_channels, self.n_samples, self.part, self.parts = n_channels, n_samples, part, parts
        self.by_file = len(files) % parts == 0
        starts = np.cumsum([0] + [shard_rows(f) for f in files[:-1]]) if not self.by_file else [0] * len(files)
        mine = [not self.by_file or k % parts == part for k in range(len(files))]
        self.files = [(f, int(s)) for f, s, m in zip(files, starts, mine) if m]

    def blocks(self, order_rng: np.random.Generator | None) -> Iterator[dict]:
        """One pass over this part's rows in blocks; files in random order when order_rng is given."""
        order = order_rng.permutation(len(self.files)) if order_rng is not None else range(len(self.files))
        for k in order:
            path, first_row = self.files[k]
            # plain reads, not a memory map: a finished batch's pages are freed, so RSS does not grow with the corpus
            with pa.OSFile(path) as f:
                row = first_row
                for batch in pa.ipc.open_stream(f):
                    n = batch.num_rows
                    block = arrow_block(batch, self.n_channels, self.n_samples)
                    if not self.by_file:
                        keep = np.flatnonzero((row + np.arange(n)) % self.parts == self.part)
                        block = take_rows(block, keep) if len(keep) < n else block
                    row += n
                    if block_len(block):
                        yield block


class _Feed:
    """Rows of one source on demand; restarts the source when it runs out if asked to (oversampling)."""

    def __init__(self, source: ShardSource, order_rng: np.random.Generator | None):
        self.source, self.order_rng = source, order_rng
        self.it, self.block, self.pos, self.pass_rows = source.blocks(order_rng), None, 0, 0

    def take(self, k: int, restart: bool) -> tuple[dict | None, int | None]:
        """Up to k rows -> (block or None, index of the draw at which the source first ran out, or None)."""
        got, n, ran_out = [], 0, None
        while n < k:
            if self.block is None or self.pos >= block_len(self.block):
                self.block, self.pos = next(self.it, None), 0
                if self.block is None:
                    ran_out = n if ran_out is None else ran_out
                    if not restart or self.pass_rows == 0:  # a source with no rows for this part cannot restart
                        break
                    self.it, self.pass_rows = self.source.blocks(self.order_rng), 0
                    continue
            m = min(k - n, block_len(self.block) - self.pos)
            got.append(take_rows(self.block, slice(self.pos, self.pos + m)))
            self.pos, n, self.pass_rows = self.pos + m, n + m, self.pass_rows + m
        return (concat_blocks(got) if got else None), ran_out


def mixed_blocks(sources: list[ShardSource], probs: list[float], rng: np.random.Generator,
                 order_rng: np.random.Generator | None, first_exhausted: bool) -> Iterator[dict]:
    """Rows of all sources, each row's source drawn with probabilities probs (interleave_datasets' semantics: stop
    when the first source runs out, or restart sources until every one has run out once)."""
    if len(sources) == 1:
        yield from sources[0].blocks(order_rng)
        return
    feeds = [_Feed(s, order_rng) for s in sources]
    done = [False] * len(sources)
    while True:
        choice = rng.choice(len(sources), size=CHUNK_ROWS, p=probs)
        cut, last_done, pieces = CHUNK_ROWS, -1, []
        for s in range(len(sources)):
            pos = np.flatnonzero(choice == s)
            if not len(pos):
                continue
            block, ran_out = feeds[s].take(len(pos), restart=not first_exhausted)
            if ran_out is not None:
                if first_exhausted:
                    cut = min(cut, int(pos[ran_out]))
                elif not done[s]:
                    done[s], last_done = True, max(last_done, int(pos[ran_out]))
            if block is not None:
                pieces.append((pos[: block_len(block)], block))
        if not first_exhausted and all(done):
            cut = last_done if last_done >= 0 else 0
        if pieces:
            where = np.concatenate([p for p, _ in pieces])
            block = concat_blocks([b for _, b in pieces])
            keep = np.flatnonzero(where < cut)
            keep = keep[np.argsort(where[keep], kind="stable")]  # rows in the order their sources were drawn
            if len(keep):
                yield take_rows(block, keep)
        if cut < CHUNK_ROWS or not pieces:
            return


def shuffled_blocks(blocks: Iterator[dict], size: int, rng: np.random.Generator) -> Iterator[dict]:
    """Buffer shuffle at block level: a buffer of `size` rows; each incoming block's rows replace as many randomly
    chosen buffered rows, which are emitted. Memory: size rows, whatever the corpus size."""
    buf, n = None, 0
    for block in blocks:
        start, total = 0, block_len(block)
        while start < total:
            if n < size:  # filling: append rows
                m = min(size - n, total - start)
                part = take_rows(block, slice(start, start + m))
                if buf is None:
                    buf = {k: np.empty((size,) + part[k].shape[1:], part[k].dtype) for k in ARRAY_COLUMNS}
                    buf.update({k: [None] * size for k in OBJECT_COLUMNS})
                for k in ARRAY_COLUMNS:
                    buf[k][n:n + m] = part[k]
                for k in OBJECT_COLUMNS:
                    buf[k][n:n + m] = part[k]
                n, start = n + m, start + m
                continue
            m = min(size, total - start, CHUNK_ROWS)
            slots = rng.choice(size, m, replace=False)
            yield take_rows(buf, slots)
            for k in ARRAY_COLUMNS:
                buf[k][slots] = block[k][start:start + m]
            for k in OBJECT_COLUMNS:
                for slot, value in zip(slots, block[k][start:start + m]):
                    buf[k][slot] = value
            start += m
    if n:
        order = rng.permutation(n)
        for i in range(0, n, CHUNK_ROWS):
            yield take_rows(buf, order[i:i + CHUNK_ROWS])


def rebatch(blocks: Iterator[dict], batch_size: int, drop_last: bool) -> Iterator[dict]:
    """Blocks of any size -> blocks of exactly batch_size rows (the last one shorter unless drop_last)."""
    pending, n = [], 0
    for block in blocks:
        pending.append(block)
        n += block_len(block)
        while n >= batch_size:
            whole = concat_blocks(pending)
            yield take_rows(whole, slice(0, batch_size))
            rest = take_rows(whole, slice(batch_size, None))
            pending, n = ([rest] if block_len(rest) else []), n - batch_size
    if n and not drop_last:
        yield concat_blocks(pending)
