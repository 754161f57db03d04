"""Pretraining data: the embedded synthetic set or a streamed corpus mixture, tokenizer training, collation."""
from __future__ import annotations

import itertools
import logging
from functools import partial

from ..data.collate import collate_samples
from .config import PretrainConfig

logger = logging.getLogger(__name__)


def build_transform(cfg: PretrainConfig):
    """The on-the-fly augmentation `callable(sample, fs) -> sample`, or None."""
    if not cfg.data.augment:
        return None
    from ..config import from_dict
    from ..data.augment import AugmentConfig, build_augmentation

    return build_augmentation(from_dict(AugmentConfig, cfg.data.augment, prefix="data.augment."))


class MixtureStream:
    """Stream factory for the Trainer: this process's shard of the corpus mixture, reshuffled per epoch."""

    def __init__(self, cfg: PretrainConfig, transform=None, fs: float | None = None):
        self.cfg, self.transform, self.fs = cfg, transform, fs

    def __call__(self, rank: int = 0, world_size: int = 1, epoch: int = 0):
        from ..data.corpus import build_mixture

        d = self.cfg.data
        ds = build_mixture(list(d.corpus_dirs), d.weights, seed=self.cfg.train.seed + epoch,
                           shuffle_buffer=d.shuffle_buffer, rank=rank, world_size=world_size)
        if self.transform is not None:
            ds = ds.map(StreamAugment(self.transform, self.fs, (self.cfg.train.seed, epoch, rank)))
        return ds


class StreamAugment:
    """`transform(sample, fs)` inside a stream, reseeded once per (seed, epoch, rank, DataLoader worker).

    Each worker reads a fixed part of the stream, so its augmentation draws repeat exactly on a replayed (resumed)
    epoch, and two workers never share one random stream.
    """

    def __init__(self, transform, fs: float, key: tuple[int, int, int]):
        self.transform, self.fs, self.key, self._seeded_for = transform, fs, key, None

    def __call__(self, sample: dict) -> dict:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker = info.id if info is not None else -1
        if self._seeded_for != worker and callable(getattr(self.transform, "reseed", None)):
            from ..engine.data import sample_seed

            self.transform.reseed(sample_seed(self.key[0], self.key[1], self.key[2] * 1000 + worker + 1))
            self._seeded_for = worker
        return self.transform(sample, self.fs)


def training_data(cfg: PretrainConfig, preprocess):
    """(train_data for the Trainer, a few samples for tokenizer training, eval samples)."""
    from ..data.synthetic import SyntheticDataset, synthetic_samples

    d = cfg.data
    eval_seed = d.synthetic_seed + 10_000_000  # disjoint from the training records
    if not d.corpus_dirs:
        train = SyntheticDataset(d.synthetic_size, seed=d.synthetic_seed, cfg=preprocess)
        if train.caches:
            _prefill(train)
        texts = [train[i]["text"] for i in range(min(len(train), cfg.tokenizer.train_texts, 256))]
        return train, texts, synthetic_samples(d.eval_size, seed=eval_seed, cfg=preprocess)
    stream = MixtureStream(cfg, build_transform(cfg), preprocess.fs)
    texts = [s["text"] for s in itertools.islice(iter(stream()), cfg.tokenizer.train_texts)]
    if d.eval_dirs:
        from ..data.corpus import build_mixture

        evals = list(itertools.islice(iter(build_mixture(list(d.eval_dirs), shuffle_buffer=0)), d.eval_size))
    else:
        evals = synthetic_samples(d.eval_size, seed=eval_seed, cfg=preprocess)
    return stream, texts, evals


def _prefill(train) -> None:
    """Generate the whole synthetic set before training, on this process's share of the machine's cores."""
    import os

    # every process of a local launch builds its own copy: split the cores between them
    processes = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    seconds = train.prefill(processes=processes)
    logger.info("synthetic set: %d windows generated in %.1f s on %d process(es), cached for the run",
                len(train), seconds, processes)


def build_tokenizer(cfg: PretrainConfig, texts: list[str]):
    """Load the tokenizer from cfg.tokenizer.path, or train it on the report texts of the training data."""
    from ..models.tokenizer import ReportTokenizer

    if cfg.tokenizer.path:
        return ReportTokenizer.from_pretrained(cfg.tokenizer.path)
    tok = ReportTokenizer().train(texts, vocab_size=cfg.tokenizer.vocab_size)
    logger.info("report tokenizer trained on %d texts: %d tokens", len(texts), tok.vocab_size)
    return tok


def make_collate(tokenizer, max_text_len: int, beat_window: tuple[float, int, int] | None = None,
                 vocab=None):
    """collate_fn for the DataLoader (a partial: picklable for worker processes); with the model's beat_window the
    workers also compute its median beats."""
    extra = {} if vocab is None else {"vocab": tuple(vocab)}
    return partial(collate_samples, tokenizer=tokenizer, max_text_len=max_text_len, beat_window=beat_window, **extra)


def count_tokens(batch: dict, patch_size: int) -> int:
    """Signal tokens of present channels (C x T / patch_size each) plus real text tokens in a batch."""
    patches = batch["signals"].shape[-1] // patch_size
    n = int(batch["channel_mask"].sum()) * patches
    if "text_mask" in batch:
        n += int(batch["text_mask"].sum())
    return n
