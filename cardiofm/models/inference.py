"""Inference-time helper shared by the task models and the evaluation code: eval mode for a block, restored after."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with `model` in eval mode and without gradients; its previous training flag is restored after,
    also when the block raises (so an evaluation inside a training loop never leaves dropout switched off)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
