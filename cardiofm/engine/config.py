"""TrainConfig: the task-agnostic training settings shared by pretraining and finetuning recipes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import ConfigError


@dataclass
class OptimConfig:
    """AdamW + warmup/cosine schedule. `lr` is the peak learning rate reached after `warmup_steps` updates."""

    lr: float = 3e-4
    weight_decay: float = 0.05           # applied only to >= 2-D weights (not biases, norms, scalars)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 100
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1            # cosine floor as a fraction of `lr`
    layer_decay: float = 1.0             # < 1: layer-wise LR decay, lr * decay^(depth - layer_id) (finetuning)

    def validate(self) -> None:
        """Raise ConfigError on values that cannot train."""
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("optim: lr must be > 0, weight_decay and warmup_steps >= 0")
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"optim.layer_decay must be in (0, 1], got {self.layer_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class TrainConfig:
    """Loop settings; steps count optimizer updates, `batch_size` is per process and per micro-batch.

    Global batch = batch_size * grad_accum_steps * number of processes.
    """

    max_steps: int = 1000
    batch_size: int = 32
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0           # 0 disables clipping
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"   # auto: bf16 on GPU, fp32 on CPU
    seed: int = 0
    num_workers: int = 0                 # DataLoader worker processes (augmentations run there)
    compile: bool = False                # torch.compile the model
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500          # steps between full-state checkpoints (0: only final/SIGTERM)
    keep_last: int = 3                   # complete checkpoints kept on disk
    allow_inexact_resume: bool = False   # resume a checkpoint whose RNG state is missing/unreadable (with a warning)
    log_every: int = 10
    eval_every: int = 0                  # steps between eval_fn calls (0: only at the end)
    plot_every: int = 0                  # steps between plot_fn figures (0: never)
    nan_policy: Literal["skip", "stop"] = "stop"
    max_consecutive_nan: int = 10        # 'skip' still stops after this many non-finite steps in a row
    early_stopping_metric: str | None = None   # key of eval_fn's dict, e.g. "val/auroc"
    early_stopping_mode: Literal["min", "max"] = "min"
    early_stopping_patience: int = 0     # evaluations without improvement before stopping (0: off)
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    deepspeed: str | None = None         # DeepSpeed JSON (for torchrun/deepspeed launches; accelerate yaml also works)
    deepspeed_shm_comm: bool = False     # DeepSpeed's CPU shared-memory allreduce op (a ~30 s C++ JIT build)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        """Raise ConfigError on inconsistent values."""
        for name in ("max_steps", "batch_size", "grad_accum_steps", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "eval_every", "plot_every", "num_workers", "early_stopping_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_grad_norm < 0:
            raise ConfigError("train.max_grad_norm must be >= 0")
        if self.early_stopping_patience and not self.early_stopping_metric:
            raise ConfigError("train.early_stopping_patience needs train.early_stopping_metric")
        self.optim.validate()
