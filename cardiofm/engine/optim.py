"""AdamW parameter groups (decay only on >= 2-D weights, optional layer-wise LR decay) and warmup + cosine."""
from __future__ import annotations

import math
import re
from typing import Callable

import torch
from torch import nn

from .config import OptimConfig

_LAYER_RE = re.compile(r"(?:^|\.)(?:encoder\.)?layers\.(\d+)\.")


def count_layers(model: nn.Module) -> int:
    """Depth used by layer-wise LR decay: the model's `config.num_hidden_layers`, else the number of `layers.N`."""
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if isinstance(depth, int):
        return depth
    ids = {int(m.group(1)) for name, _ in model.named_parameters() if (m := _LAYER_RE.search(name))}
    return max(ids) + 1 if ids else 0


def default_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter for LR decay: embeddings 0, encoder block i -> i + 1, everything else the top."""
    match = _LAYER_RE.search(name)
    if match and "decoder" not in name:
        return int(match.group(1)) + 1
    if "embed" in name and "decoder" not in name:
        return 0
    return num_layers + 1


def param_groups(model: nn.Module, cfg: OptimConfig,
                 layer_id_fn: Callable[[str, int], int] | None = None) -> list[dict]:
    """AdamW groups: weight decay only on >= 2-D weights; with cfg.layer_decay < 1, lr scaled per layer.

    `layer_id_fn(param_name, num_layers) -> int` in [0, num_layers + 1] places a parameter in a layer; a model may
    provide its own as `model.lr_layer_id`; else `default_layer_id` (names like `encoder.layers.3.`). Frozen
    parameters (requires_grad False) are left out, so a frozen encoder costs no optimizer state.
    Each group carries `lr_scale`, which the schedule multiplies in.
    """
    num_layers = count_layers(model)
    layer_id_fn = layer_id_fn or getattr(model, "lr_layer_id", None) or default_layer_id
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim >= 2
        layer = layer_id_fn(name, num_layers) if cfg.layer_decay < 1 else num_layers + 1
        scale = cfg.layer_decay ** (num_layers + 1 - layer)
        group = groups.setdefault((layer, decay), {
            "params": [], "names": [], "weight_decay": cfg.weight_decay if decay else 0.0,
            "lr": cfg.lr * scale, "lr_scale": scale})
        group["params"].append(param)
        group["names"].append(name)
    if not groups:
        raise ValueError("the model has no trainable parameters (all requires_grad False)")
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: nn.Module, cfg: OptimConfig,
                    layer_id_fn: Callable[[str, int], int] | None = None) -> torch.optim.AdamW:
    """torch AdamW over `param_groups` (a plain torch optimizer: DeepSpeed takes it as a client optimizer, no JIT)."""
    groups = param_groups(model, cfg, layer_id_fn)
    for g in groups:
        g.pop("names")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def lr_factor(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Multiplier of the peak lr after `step` updates: linear warmup, then cosine down to min_lr_ratio (or flat)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with `lr_factor` (group lrs already include their layer-decay scale)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, max_steps))
