"""Training engine shared by pretraining and finetuning: the accelerate/DeepSpeed `Trainer` (one class), verified
atomic checkpoints, resumable sharded loading, accelerator construction, optimiser/schedule and metrics tracking.
Task-agnostic: may import cardiofm.config only, never data readers, models or recipes."""
from .checkpoint import CheckpointManager
from .config import OptimConfig, TrainConfig
from .optim import build_optimizer, build_scheduler, lr_factor, param_groups
from .trainer import NonFiniteLossError, Trainer, TrainResult, seed_everything
from .distributed import finish_process, weights_digest

__all__ = ["CheckpointManager", "OptimConfig", "TrainConfig", "build_optimizer", "build_scheduler", "lr_factor",
           "param_groups", "NonFiniteLossError", "Trainer", "TrainResult", "seed_everything", "finish_process",
           "weights_digest"]
