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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointManager
from .config import TrainConfig
from .data import PositionedBatches, build_loader, preserve_rng
from .distributed import build_accelerator, weights_digest
from .optim import build_optimizer, build_scheduler
from .tracking import MetricsLogger, ThroughputMeter

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A NaN/inf loss or gradient under nan_policy=stop (or too many in a row under skip, or under DeepSpeed)."""


@dataclass
class TrainResult:
    """How a run ended: step reached, why it stopped, last eval metrics, last checkpoint directory."""

    step: int
    stopped: str                      # "max_steps" | "early_stopping" | "sigterm"
    metrics: dict = field(default_factory=dict)
    checkpoint: Path | None = None
    skipped_steps: int = 0


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch identically on every process (call before building the model)."""
    from accelerate.utils import set_seed

    set_seed(seed)


class Trainer:
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
        self._batches = PositionedBatches(self._loader, self.state)
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

    def _loader(self, state: dict):
        acc, cfg = self.accelerator, self.cfg
        return build_loader(self.train_data, cfg.batch_size, self.collate_fn, rank=acc.process_index,
                            world_size=acc.num_processes, seed=cfg.seed, num_workers=cfg.num_workers,
                            transform=self.transform, fs=self.fs, start_epoch=state["epoch"],
                            start_batch=state["batch_in_epoch"])

    # ---- the loop ------------------------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainResult:
        """Run until max_steps, early stopping or SIGTERM; with resume, continue from the latest checkpoint."""
        cfg, acc = self.cfg, self.accelerator
        last_ckpt = self._restore() if resume else None
        if last_ckpt is None:
            from accelerate.utils import set_seed

            set_seed(cfg.seed, device_specific=True)  # per-process masking streams, identical run to run
        acc.init_trackers("tensorboard")
        previous_handler = self._install_signal_handler()
        self.model.train()
        batches, meter, metrics, stopped = iter(self._batches), ThroughputMeter(), {}, "max_steps"
        progress = tqdm(total=cfg.max_steps, initial=self.state["step"], desc="train", unit="step",
                        disable=not self.is_main_process, dynamic_ncols=True)
        logger.info("training %d -> %d steps on %d process(es), global batch %d; outputs in %s", self.state["step"],
                    cfg.max_steps, acc.num_processes, cfg.batch_size * cfg.grad_accum_steps * acc.num_processes,
                    self.output_dir.resolve())
        try:
            while self.state["step"] < cfg.max_steps:
                done = self._update(batches, meter)
                if done is None:
                    continue  # non-finite step skipped; data moved on, the step counter did not
                step = self.state["step"]
                progress.update(1)
                self._log_step(step, done, meter)
                if cfg.plot_every and step % cfg.plot_every == 0:
                    self._plot(step)
                end = step >= cfg.max_steps
                if (cfg.eval_every and step % cfg.eval_every == 0) or end:
                    metrics, early = self._evaluate_and_track(step)
                    stopped = "early_stopping" if early else stopped
                # processes agree on a signal at each micro-batch; one alone may also act on one that came later
                if self._stop_signal_all or (acc.num_processes == 1 and self._stop_signal):
                    stopped = "sigterm"
                if end or stopped != "max_steps" or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    last_ckpt = self.save_checkpoint()
                if stopped != "max_steps":
                    logger.warning("stopping at step %d: %s", step, stopped)
                    break
        finally:
            progress.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            for tracker in acc.trackers:  # not end_training(): that also destroys the process group (export)
                tracker.finish()
        self.metrics.log_run_summary(meter)
        logger.info("rank %d weights digest %s", acc.process_index, weights_digest(self.unwrapped_model()))
        return TrainResult(step=self.state["step"], stopped=stopped, metrics=metrics, checkpoint=last_ckpt,
                           skipped_steps=self.state["skipped_steps"])

    def _update(self, batches, meter: ThroughputMeter) -> dict | None:
        """One optimizer update over grad_accum_steps micro-batches -> logged values, or None if skipped."""
        cfg, acc = self.cfg, self.accelerator
        totals: dict[str, torch.Tensor] = {}
        bad, grad_norm = False, None
        lr = self.scheduler.get_last_lr()[-1]  # the rate this update uses (logged before the schedule moves on)
        for _ in range(cfg.grad_accum_steps):
            batch, waited = next(batches)
            t0 = time.perf_counter()
            batch = self._to_device(batch)
            with acc.accumulate(self.model):
                bad_here, parts = self._micro_step(batch)
                bad |= bad_here
                if acc.sync_gradients:
                    grad_norm = self._optimizer_step(bad)
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + value / cfg.grad_accum_steps
            tokens = int(self.tokens_fn(batch)) if self.tokens_fn else 0
            meter.add(waited, time.perf_counter() - t0, cfg.batch_size, tokens)
        if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):
            bad = True  # finite loss, overflowing gradients: the update was not applied (see _optimizer_step)
        self.state["samples_seen"] += cfg.batch_size * cfg.grad_accum_steps * acc.num_processes
        if bad:
            return self._skip_update(totals)
        self.state["consecutive_nonfinite"] = 0
        self.state["step"] += 1
        values = {f"train/{k}": v for k, v in totals.items()}
        values["train/lr"] = lr
        if grad_norm is not None:
            values["train/grad_norm"] = torch.as_tensor(grad_norm, dtype=torch.float32)
        return values

    def _micro_step(self, batch: dict) -> tuple[bool, dict]:
        """Forward, collective NaN/SIGTERM check, backward -> (non-finite anywhere, detached per-objective losses)."""
        out = self.model(**batch)
        loss = out.loss
        nonfinite, self._stop_signal_all = self._any_flag(not bool(torch.isfinite(loss.detach())),
                                                          self._stop_signal is not None)
        if nonfinite:
            epoch, micro = self._batches.position
            where = f"step {self.state['step'] + 1} (epoch {epoch}, micro-batch {micro})"
            parts = {k: f"{float(v.detach()):.4g}" for k, v in (getattr(out, "losses", None) or {}).items()}
            if self.cfg.nan_policy == "stop" or self.uses_deepspeed:
                why = "nan_policy=stop" if self.cfg.nan_policy == "stop" else \
                    "DeepSpeed steps inside backward, so a non-finite step cannot be skipped"
                raise NonFiniteLossError(f"non-finite loss {float(loss.detach()):.4g} at {where}, objectives {parts}; "
                                         f"stopping ({why}). Lower optim.lr or check the data at this position.")
            logger.warning("non-finite loss %s at %s, objectives %s: skipping this update (nan_policy=skip)",
                           float(loss.detach()), where, parts)
        # backward even on a bad micro-batch keeps DDP's reducer and accumulation bookkeeping in step on every rank;
        # the polluted gradients are discarded in _optimizer_step
        self.accelerator.backward(loss)
        parts = {"loss": loss.detach().float()}
        for name, value in (getattr(out, "losses", None) or {}).items():
            parts[name] = value.detach().float()
        return nonfinite, parts

    def _any_flag(self, nonfinite: bool, stop: bool) -> tuple[bool, bool]:
        """OR of (non-finite loss, stop requested) over all processes, so every rank takes the same branch."""
        if self.accelerator.num_processes == 1:
            return nonfinite, stop
        flags = torch.tensor([float(nonfinite), float(stop)], device=self.accelerator.device)
        flags = self.accelerator.reduce(flags, reduction="sum")
        return bool(flags[0] > 0), bool(flags[1] > 0)

    def _optimizer_step(self, bad: bool):
        """Clip, step optimizer and schedule unless the update is bad; returns the global grad norm."""
        cfg, acc = self.cfg, self.accelerator
        if self.uses_deepspeed:  # the engine clipped and stepped inside backward; our LambdaLR is not the engine's
            self.scheduler.step()
            return acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        grad_norm = None
        if not bad:
            max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")  # inf: measure, never clip
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
            bad = not bool(torch.isfinite(grad_norm))
            if bad:
                logger.warning("non-finite gradient norm at step %d: update skipped", self.state["step"] + 1)
        if not bad:
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _skip_update(self, totals: dict) -> None:
        """Count a skipped update; too many in a row means the run has diverged: stop."""
        self.state["consecutive_nonfinite"] += 1
        self.state["skipped_steps"] += 1
        n = self.state["consecutive_nonfinite"]
        self.metrics.log({"train/skipped_steps": self.state["skipped_steps"]}, self.state["step"] + 1)
        if n > self.cfg.max_consecutive_nan:
            raise NonFiniteLossError(f"{n} non-finite updates in a row at step {self.state['step'] + 1} "
                                     f"(train.max_consecutive_nan={self.cfg.max_consecutive_nan}): the run diverged")
        return None

    def _log_step(self, step: int, values: dict, meter: ThroughputMeter) -> None:
        """Every log_every steps (and the last): the step's values to TensorBoard/metrics.jsonl and one log line."""
        if step % self.cfg.log_every and step != self.cfg.max_steps:
            return
        out = self.metrics.log_step(step, values, meter)
        if self.is_main_process:
            logger.info("step %d/%d loss %.4f lr %.3g %.1f samples/s (data wait %.0f%%)", step, self.cfg.max_steps,
                        out["train/loss"], out["train/lr"], out["perf/samples_per_s"],
                        100 * out["perf/data_fraction"])

    def _plot(self, step: int) -> None:
        """Figures from plot_fn on a fixed batch (training RNG untouched); the main process logs them."""
        if self.plot_fn is None or self.plot_batch is None:
            return
        self.model.eval()
        with torch.no_grad(), preserve_rng():
            figures = self.plot_fn(self.model, self._to_device(self.plot_batch), step)
        self.model.train()
        if self.is_main_process:
            self.metrics.log_figures(figures, step)
        else:
            import matplotlib.pyplot as plt

            for fig in figures.values():
                plt.close(fig)

    def evaluate(self) -> dict:
        """eval_fn(model) on every process in eval mode, without grads and without touching the training RNG."""
        if self.eval_fn is None:
            return {}
        self.model.eval()
        with torch.no_grad(), preserve_rng():
            metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
        self.model.train()
        return metrics

    def _evaluate_and_track(self, step: int) -> tuple[dict, bool]:
        """Evaluate, log, export the best model, and decide early stopping."""
        metrics = self.evaluate()
        if not metrics:
            return metrics, False
        self.metrics.log(metrics, step)
        key, cfg = self.cfg.early_stopping_metric, self.cfg
        if key is None:
            return metrics, False
        if key not in metrics:
            raise KeyError(f"train.early_stopping_metric {key!r} not among eval metrics {sorted(metrics)}")
        best, value = self.state["best_metric"], metrics[key]
        improved = best is None or (value < best if cfg.early_stopping_mode == "min" else value > best)
        if improved:
            self.state["best_metric"], self.state["evals_without_improvement"] = value, 0
            self.export(self.output_dir / "best")
            logger.info("new best %s = %.5g at step %d -> %s", key, value, step, self.output_dir / "best")
        else:
            self.state["evals_without_improvement"] += 1
        patience = cfg.early_stopping_patience
        return metrics, bool(patience and self.state["evals_without_improvement"] >= patience)

    def save_checkpoint(self) -> Path:
        """Write the full training state now (collective: call on every process)."""
        return self.checkpoints.save(self.accelerator, self.state["step"], dict(self.state))

    def export(self, directory: str | Path, tokenizer=None) -> Path:
        """save_pretrained of the bare model (gathered under ZeRO-3) into `directory` (collective call)."""
        directory = Path(directory)
        state_dict = self.accelerator.get_state_dict(self.model)
        if state_dict is not None:  # torch.compile wraps the module: export the bare names
            state_dict = {k.replace("_orig_mod.", "", 1) if k.startswith("_orig_mod.") else k: v
                          for k, v in state_dict.items()}
        if self.is_main_process:
            model = self.unwrapped_model()
            if tokenizer is not None:
                model.report_tokenizer = tokenizer
            if hasattr(model, "save_pretrained"):
                model.save_pretrained(str(directory), state_dict=state_dict)
            else:  # plain nn.Module (tests, custom heads)
                directory.mkdir(parents=True, exist_ok=True)
                torch.save(state_dict, directory / "pytorch_model.bin")
        self.accelerator.wait_for_everyone()
        return directory

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
