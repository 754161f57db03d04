"""Pretraining recipe: setup -> train -> evaluate -> save, on the shared engine (accelerate / DeepSpeed)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..config import save_config
from .config import PretrainConfig

logger = logging.getLogger(__name__)


class PretrainRecipe:
    """`setup()` builds data, tokenizer, model and Trainer; `train()`; `evaluate()`; `save()` exports DIR/model."""

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.trainer = self.tokenizer = None
        self.started = time.time()
        self.counted = {"tokens": 0, "samples": 0}  # this process's batches, for the tokens-per-window rate

    def setup(self, resume: bool = False) -> "PretrainRecipe":
        """Data, tokenizer (reused from output_dir on resume), model seeded identically on every process, Trainer."""
        from ..engine import Trainer, seed_everything
        from ..models import create_model
        from .data import build_tokenizer, count_tokens, make_collate, training_data
        from .plots import make_plot_fn

        cfg = self.cfg
        preprocess = self._preprocess_config()
        train_data, texts, eval_samples = training_data(cfg, preprocess)
        if cfg.data.corpus_dirs and not cfg.data.eval_dirs:  # real data: evaluate on held-out real subjects
            train_data, eval_samples, held = held_out_slice(cfg, train_data)
            logger.info("no data.eval_dirs: eval loss and reconstruction plots on %d windows of %d held-out subjects "
                        "of the training corpora (left out of training; %d windows scanned)", held["eval_windows"],
                        held["subjects"], held["windows_scanned"])
        saved_tok = self.output_dir / "tokenizer"
        if resume and (saved_tok / "report_tokenizer.model").exists():
            cfg.tokenizer.path = str(saved_tok)  # a resumed run must tokenize exactly as before
        self.tokenizer = build_tokenizer(cfg, texts)
        seed_everything(cfg.train.seed)  # same initial weights on every process
        model = create_model(cfg.model.name, tokenizer=self.tokenizer, **cfg.model.overrides)
        collate = make_collate(self.tokenizer, cfg.tokenizer.max_text_len, model.config.beat_window,
                               model.config.channel_vocab)
        patch = model.config.patch_size
        self.eval_batches = [collate(eval_samples[i:i + cfg.train.batch_size])
                             for i in range(0, len(eval_samples), cfg.train.batch_size)]
        self.trainer = Trainer(model, cfg.train, train_data, collate, self._eval_fn, output_dir=self.output_dir,
                               transform=self._map_transform(), fs=preprocess.fs,
                               tokens_fn=lambda b: self._count(count_tokens(b, patch), b),
                               plot_fn=make_plot_fn(preprocess.fs),
                               plot_batch=self.eval_batches[0] if self.eval_batches else None)
        if self.trainer.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
            self.tokenizer.save_pretrained(saved_tok)
        logger.info("model %s: %.2fM parameters; data: %s", cfg.model.name,
                    sum(p.numel() for p in model.parameters()) / 1e6,
                    ", ".join(cfg.data.corpus_dirs) or f"{cfg.data.synthetic_size} synthetic windows")
        return self

    def _preprocess_config(self):
        """The model's preprocessing (from its preset when it has one), so data and model agree on fs/layout."""
        from ..models.factory import resolve_config

        return resolve_config(self.cfg.model.name).preprocess_config

    def _count(self, tokens: int, batch: dict) -> int:
        self.counted["tokens"] += tokens
        self.counted["samples"] += len(batch["signals"])
        return tokens

    def _map_transform(self):
        """Augmentation for the map-style synthetic set (streams apply it inside the mixture)."""
        if self.cfg.data.corpus_dirs:
            return None
        from .data import build_transform

        return build_transform(self.cfg)

    def _eval_fn(self, model) -> dict:
        """Mean eval losses per objective over this process's share of the eval batches, averaged over processes."""
        acc = self.trainer.accelerator
        torch.manual_seed(self.cfg.data.eval_batches_seed)  # the same masks at every evaluation (RNG is forked)
        sums: dict[str, float] = {}
        mine = self.eval_batches[acc.process_index::acc.num_processes] or self.eval_batches[:1]
        for batch in mine:
            out = model(**{k: v.to(acc.device) for k, v in batch.items()})
            for name, value in {"loss": out.loss, **out.losses}.items():
                sums[name] = sums.get(name, 0.0) + float(value) / len(mine)
        names = sorted(sums)
        vec = acc.reduce(torch.tensor([sums[n] for n in names], device=acc.device), reduction="mean") \
            if acc.num_processes > 1 else torch.tensor([sums[n] for n in names])
        return {f"eval/{n}": float(v) for n, v in zip(names, vec.tolist())}

    def train(self, resume: bool = False):
        """Run the Trainer (resuming from the newest complete checkpoint when asked)."""
        return self.trainer.train(resume=resume)

    def evaluate(self) -> dict:
        """Eval losses of the current weights."""
        return self.trainer.evaluate()

    def save(self, result=None) -> Path:
        """Export DIR/model: save_pretrained weights + config (with the run summary the card is written from) +
        report tokenizer (CardioFMForPretraining loads it)."""
        if result is not None:
            from ..models.hub.summary import pretraining_summary

            samples = self.trainer.state["samples_seen"]
            rate = self.counted["tokens"] / max(1, self.counted["samples"])  # tokens per window actually fed
            self.trainer.unwrapped_model().config.training_summary = pretraining_summary(
                self.cfg, self.trainer.unwrapped_model(), result, time.time() - self.started, None,
                int(round(samples * rate)), samples)
        path = self.trainer.export(self.output_dir / "model", tokenizer=self.tokenizer)
        if self.trainer.is_main_process:
            logger.info("model exported to %s (load with CardioFMForPretraining.from_pretrained)", path)
        return path


class WithoutSubjects:
    """Stream factory wrapper: the training stream minus the held-out evaluation subjects (see held_out_slice)."""

    def __init__(self, make, held):
        self.make, self.held = make, held

    def __call__(self, rank: int = 0, world_size: int = 1, epoch: int = 0):
        return _Excluding(self.make(rank=rank, world_size=world_size, epoch=epoch), self.held)


class _Excluding(torch.utils.data.IterableDataset):
    def __init__(self, stream, held):
        self.stream, self.held = stream, held

    def __iter__(self):
        return (s for s in self.stream if not self.held(s))


class HeldOutSubjects:
    """Subjects whose stable hash (of source/subject id) is at most `threshold`: the same rule on every rank,
    epoch and shard, including shards never scanned."""

    def __init__(self, threshold: int):
        self.threshold = threshold

    @staticmethod
    def key_hash(source: str, subject: str) -> int:
        """Stable 64-bit hash of a (source, subject id) pair."""
        import hashlib

        return int.from_bytes(hashlib.sha1(f"{source}/{subject}".encode()).digest()[:8], "big")

    def __call__(self, sample: dict) -> bool:
        return self.key_hash(str(sample["source"]), str(sample["subject_id"])) <= self.threshold


def held_out_slice(cfg, train_data, scan_shards: int = 4):
    """Real evaluation without data.eval_dirs: whole subjects of the training corpora, chosen by hash until their
    windows reach data.eval_size (counted in the first `scan_shards` shards of each corpus), are left out of
    training; their windows are the eval set -> (training stream factory, eval samples, summary)."""
    import itertools

    from ..config import ConfigError
    from ..data.corpus import build_mixture
    from ..data.corpus.shards import corpus_shards

    counts: dict[tuple[str, str], int] = {}
    for d in cfg.data.corpus_dirs:
        from datasets import Dataset

        for f in corpus_shards(d)[:scan_shards]:
            part = Dataset.from_file(f).select_columns(["source", "subject_id"])
            for src, subj in zip(part["source"], part["subject_id"]):
                counts[(src, subj)] = counts.get((src, subj), 0) + 1
    if len(counts) < 2:
        raise ConfigError("the training corpora hold fewer than two subjects: no subject can be held out for the "
                          "eval loss; give data.eval_dirs")
    ranked = sorted(counts, key=lambda k: HeldOutSubjects.key_hash(*k))
    total, picked = 0, []
    for key in ranked[:-1]:  # at least one subject stays in training
        picked.append(key)
        total += counts[key]
        if total >= cfg.data.eval_size:
            break
    held = HeldOutSubjects(HeldOutSubjects.key_hash(*picked[-1]))
    stream = build_mixture(list(cfg.data.corpus_dirs), shuffle_buffer=0)
    evals = list(itertools.islice((s for s in stream if held(s)), cfg.data.eval_size))
    summary = {"subjects": len(picked), "windows_scanned": sum(counts.values()), "eval_windows": len(evals)}
    return WithoutSubjects(train_data, held), evals, summary


def run(cfg: PretrainConfig, resume: bool = False) -> int:
    """setup -> train -> evaluate -> save; returns a process exit code (143 when stopped by SIGTERM)."""
    recipe = PretrainRecipe(cfg).setup(resume=resume)
    result = recipe.train(resume=resume)
    if result.stopped == "sigterm":
        logger.warning("preempted at step %d: checkpoint %s; rerun with --resume", result.step, result.checkpoint)
        return 143
    recipe.save(result)
    if recipe.trainer.is_main_process:
        logger.info("done at step %d (%s); outputs in %s: model/, checkpoints/, logs/ (TensorBoard), plots/, "
                    "metrics.jsonl", result.step, result.stopped, recipe.output_dir.resolve())
    return 0
