"""Trainer: the task-agnostic accelerate/DeepSpeed loop shared by pretraining and finetuning.

Contract with a recipe:
- `model(**batch)` returns an object with `.loss` (scalar tensor) and optionally `.losses` (dict of scalar tensors,
  logged per objective). Frozen parts are parameters with `requires_grad=False` (left out of the optimizer).
- `train_data`: a map-style dataset (sharded per process, exactly resumable), an iterable stream, or a stream
  factory `make(rank=, world_size=, epoch=)` (see engine.data); `collate_fn`
  turns a list of samples into the batch dict; `transform(sample, fs)` (map-style only) runs in DataLoader
  workers, seeded per sample.
- `eval_fn(model) -> dict[str, float]` runs on every process (in eval mode, no grad, without touching the training
  RNG) with the prepared model; it must return the same dict on every process. `train.early_stopping_metric` names
  one of its keys; the best model is exported to `output_dir/best` when it improves.
- `plot_fn(model, batch, step) -> dict[str, Figure]` runs on every process every `plot_every` steps; the main
  process logs the figures. `tokens_fn(batch) -> int` counts tokens for tokens/s. `layer_id_fn(name, depth)` places
  parameters for layer-wise LR decay (else `model.lr_layer_id` or names like `encoder.layers.3.`).
Build the model after seeding (`seed_everything`) so every process starts from the same weights.
"""
from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import CheckpointManager
from .config import TrainConfig
from .data import build_loader
from .distributed import build_accelerator, weights_digest
from .optim import build_optimizer, build_scheduler
from .tracking import MetricsLogger
from .trainer_loop import NonFiniteLossError, TrainingLoop, TrainResult

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch identically on every process (call before building the model)."""
    from accelerate.utils import set_seed

    set_seed(seed)


class Trainer(TrainingLoop):
    """Runs `cfg.max_steps` optimizer updates with checkpoints, resume, SIGTERM handling and NaN policy."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, train_data, collate_fn: Callable,
                 eval_fn: Callable | None = None, *, output_dir: str | Path, transform: Callable | None = None,
                 fs: float | None = None, tokens_fn: Callable | None = None, plot_fn: Callable | None = None,
                 plot_batch: dict | None = None, layer_id_fn: Callable | None = None):
        self.cfg, self.output_dir = cfg, Path(output_dir)
        self.train_data, self.collate_fn, self.eval_fn = train_data, collate_fn, eval_fn
        self.transform, self.fs, self.tokens_fn = transform, fs, tokens_fn
        self.plot_fn, self.plot_batch = plot_fn, plot_batch
        self.accelerator = build_accelerator(cfg, self.output_dir)
        self.uses_deepspeed = self.accelerator.state.deepspeed_plugin is not None
        self.checkpoints = CheckpointManager(self.output_dir / "checkpoints", cfg.keep_last)
        self.metrics = MetricsLogger(self.accelerator, self.output_dir)
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "best_metric": None,
                      "evals_without_improvement": 0, "consecutive_nonfinite": 0, "skipped_steps": 0,
                      "num_processes": self.accelerator.num_processes}
        self._stop_signal: str | None = None   # set by the SIGTERM handler of this process
        self._position = (0, 0)                 # (epoch, micro-batch index) of the batch being computed
        self._stop_signal_all = False           # any process received it (agreed collectively each micro-batch)
        self.model, self.optimizer, self.scheduler = self._prepare(model, layer_id_fn)

    # ---- setup ---------------------------------------------------------------------------------------------------
    def _prepare(self, model, layer_id_fn):
        """Gradient checkpointing, optimizer and schedule, torch.compile, then accelerate/DeepSpeed wrapping."""
        cfg = self.cfg
        if cfg.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ValueError(f"{type(model).__name__} does not support gradient checkpointing")
            model.gradient_checkpointing_enable()
        optimizer = build_optimizer(model, cfg.optim, layer_id_fn)
        scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps)
        if cfg.compile:
            model = torch.compile(model)
        return self.accelerator.prepare(model, optimizer, scheduler)

    @property
    def is_main_process(self) -> bool:
        """True on the process that writes logs, plots and exports."""
        return self.accelerator.is_main_process

    def unwrapped_model(self) -> torch.nn.Module:
        """The bare model (no DDP/DeepSpeed/compile wrapper)."""
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def _restore(self) -> Path | None:
        """Load the newest checkpoint that verifies against its manifest into the prepared objects; None when there
        is none. A damaged newer one is skipped (logged); an unusable RNG state raises CheckpointError unless
        train.allow_inexact_resume."""
        path, _ = self.checkpoints.resume_point(self.accelerator.process_index, self.cfg.allow_inexact_resume)
        if path is None:
            logger.info("--resume: no complete checkpoint under %s, starting from step 0", self.checkpoints.root)
            return None
        saved = self.checkpoints.load(self.accelerator, path)
        if saved.get("num_processes") != self.accelerator.num_processes:
            logger.warning("resuming a %s-process run with %d processes: the data order after this point differs",
                           saved.get("num_processes"), self.accelerator.num_processes)
        self.state.update({k: v for k, v in saved.items() if k in self.state and k != "num_processes"})
        logger.info("resumed from %s at step %d (epoch %d, micro-batch %d)", path, self.state["step"],
                    self.state["epoch"], self.state["batch_in_epoch"])
        return path

    # ---- data ----------------------------------------------------------------------------------------------------
    def _loader(self):
        acc, cfg = self.accelerator, self.cfg
        return build_loader(self.train_data, cfg.batch_size, self.collate_fn, rank=acc.process_index,
                            world_size=acc.num_processes, seed=cfg.seed, num_workers=cfg.num_workers,
                            transform=self.transform, fs=self.fs, start_epoch=self.state["epoch"],
                            start_batch=self.state["batch_in_epoch"])

    def _batches(self):
        """Endless (batch, seconds waited) stream that keeps state['epoch'/'batch_in_epoch'] at the next batch."""
        while True:
            loader, per_epoch = self._loader()
            it = iter(loader)
            if per_epoch is None:  # a stream: replay and drop what this epoch already consumed
                for _ in range(self.state["batch_in_epoch"]):
                    next(it)
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                waited = time.perf_counter() - t0
                self._position = (self.state["epoch"], self.state["batch_in_epoch"])  # of this batch, for messages
                self.state["batch_in_epoch"] += 1
                if per_epoch is not None and self.state["batch_in_epoch"] == per_epoch:
                    self.state["epoch"], self.state["batch_in_epoch"] = self.state["epoch"] + 1, 0
                yield batch, waited
            if per_epoch is None:
                if self.state["batch_in_epoch"] == 0:
                    raise ValueError("the training stream yielded no complete batch for this process")
                self.state["epoch"], self.state["batch_in_epoch"] = self.state["epoch"] + 1, 0

    def _to_device(self, batch: dict) -> dict:
        dev = self.accelerator.device
        return {k: v.to(dev, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _install_signal_handler(self):
        """SIGTERM (preemption) -> finish the current step, write a checkpoint, stop."""
        def handler(signum, frame):
            self._stop_signal = signal.Signals(signum).name
            logger.warning("%s received: checkpoint after this step, then exit", self._stop_signal)
        try:
            return signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread: the caller handles preemption
            return None


__all__ = ["Trainer", "TrainResult", "NonFiniteLossError", "seed_everything", "weights_digest"]
