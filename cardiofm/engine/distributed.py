"""Accelerator construction (DDP over NCCL or gloo, DeepSpeed ZeRO from a launcher or a JSON) and a clean exit."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch

from .config import TrainConfig

logger = logging.getLogger(__name__)


def resolve_mixed_precision(choice: str) -> str:
    """'auto' -> the launcher's ACCELERATE_MIXED_PRECISION if set, else bf16 on a bf16 GPU, else 'no' (fp32 on CPU)."""
    if choice != "auto":
        return choice
    env = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if env:
        return env
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _on_cpu() -> bool:
    return not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")


def _disable_deepspeed_shm_comm() -> None:
    """Skip DeepSpeed's CPU shared-memory allreduce op: building it is a ~30 s C++ JIT compile; gloo does the job."""
    try:
        import deepspeed.ops
    except ImportError:
        return
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _deepspeed_plugin(cfg: TrainConfig, config_path: str | None):
    """A DeepSpeedPlugin from train.deepspeed (a JSON path), or None to let the launcher's settings decide."""
    if not config_path:
        return None
    from accelerate.utils import DeepSpeedPlugin

    if not Path(config_path).is_file():
        raise FileNotFoundError(f"train.deepspeed: DeepSpeed config {config_path} does not exist")
    return DeepSpeedPlugin(hf_ds_config=str(config_path))


def fill_deepspeed_config(accelerator, cfg: TrainConfig) -> None:
    """Make DeepSpeed's batch/accumulation/clipping entries agree with TrainConfig (else DeepSpeed asserts)."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.batch_size
    ds["gradient_accumulation_steps"] = cfg.grad_accum_steps
    ds["train_batch_size"] = cfg.batch_size * cfg.grad_accum_steps * accelerator.num_processes
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = cfg.max_grad_norm
    zero = ds.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:  # export needs the full weights gathered on the main process
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    ds.setdefault("steps_per_print", 10**9)  # our logger reports; keep DeepSpeed's own prints quiet


def build_accelerator(cfg: TrainConfig, output_dir: str | Path):
    """An Accelerator for this launch: gloo on CPU, optional DeepSpeed, trackers writing under output_dir."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration

    deepspeed_config = cfg.deepspeed
    use_ds = bool(deepspeed_config) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true")
    if use_ds and _on_cpu() and not cfg.deepspeed_shm_comm:
        _disable_deepspeed_shm_comm()
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # a backend given to a single process makes it "distributed"
    handlers = [InitProcessGroupKwargs(backend="gloo")] if _on_cpu() and launched else []
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=[t for t in cfg.trackers if t != "none"] or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(Path(output_dir) / "logs")),
        deepspeed_plugin=_deepspeed_plugin(cfg, deepspeed_config),
        kwargs_handlers=handlers,
        step_scheduler_with_optimizer=False,  # the trainer steps the schedule once per optimizer update
    )
    fill_deepspeed_config(accelerator, cfg)
    return accelerator


def is_multiprocess() -> bool:
    """True inside a torch.distributed job of more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def finish_process(rc: int) -> None:
    """End a distributed worker: destroy the process group, flush, and `os._exit(rc)`.

    With gloo, a rank sometimes aborts at interpreter exit ('terminate called without an active exception',
    SIGABRT) after a successful run; leaving through os._exit after destroying the group avoids that teardown.
    Single-process runs return normally.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
        dist.destroy_process_group()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 (16 hex) over this process's parameter bytes in name order: equal on replicas that agree bitwise.

    Under ZeRO-3 a process holds only its shard, so the digest then describes the shard.
    """
    import hashlib

    h = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        data = getattr(param, "ds_tensor", None)
        data = param.data if data is None else data
        h.update(name.encode())
        h.update(data.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
