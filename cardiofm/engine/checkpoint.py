"""Atomic full-state checkpoints: write into a temporary directory, then rename; keep the last N complete ones.

A checkpoint directory `step_00000100/` holds accelerate's state (model, optimizer, scheduler, grad scaler, the RNG
states of every process; DeepSpeed's sharded files under ZeRO) plus `trainer_state.json` (step, data position, best
metric). Only directories named `step_*` that contain `trainer_state.json` count; a save interrupted at any point
leaves a `.tmp-step_*` directory that resume ignores and the next save removes. With several nodes the checkpoint
root must be on a filesystem every node sees.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
_STEP_RE = re.compile(r"^step_(\d+)$")


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint after `step` optimizer updates."""
    return f"step_{step:08d}"


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename) to disk; best effort on filesystems without directory fsync."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CheckpointManager:
    """Saves/loads full training state under `root`; every process calls save/load (they are collective)."""

    def __init__(self, root: str | Path, keep_last: int = 3):
        self.root = Path(root)
        self.keep_last = keep_last

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir()
                 if (m := _STEP_RE.match(p.name)) and p.is_dir() and (p / STATE_FILE).is_file()]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        done = self.complete()
        return done[-1] if done else None

    def save(self, accelerator, step: int, trainer_state: dict) -> Path:
        """Write the full state after `step` updates atomically and prune old checkpoints; returns the final path."""
        final = self.root / checkpoint_name(step)
        tmp = self.root / f".tmp-{final.name}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            for stale in self.root.glob(".tmp-step_*"):  # leftovers of interrupted saves
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()
        self._write_state(accelerator, tmp, trainer_state)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if final.exists():  # re-saving the same step (e.g. SIGTERM right after a periodic save)
                shutil.rmtree(final)
            os.replace(tmp, final)  # the commit point: a rename is atomic on POSIX filesystems
            _fsync_dir(self.root)
            self._prune()
            logger.info("checkpoint saved: %s", final)
        accelerator.wait_for_everyone()
        return final

    def _write_state(self, accelerator, directory: Path, trainer_state: dict) -> None:
        """Everything but the commit: accelerate state from every process, then the trainer state (main)."""
        accelerator.save_state(str(directory))
        if accelerator.is_main_process:
            data = json.dumps(trainer_state, indent=2)
            (directory / STATE_FILE).write_text(data, encoding="utf-8")

    def load(self, accelerator, path: str | Path) -> dict:
        """Restore model/optimizer/scheduler/RNG states from `path` into the prepared objects; returns trainer state."""
        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"{path}: not a complete checkpoint (no {STATE_FILE})")
        accelerator.load_state(str(path))
        return json.loads(state_file.read_text(encoding="utf-8"))

    def _prune(self) -> None:
        """Delete complete checkpoints beyond the newest `keep_last`."""
        for old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
            logger.info("checkpoint removed (keep_last=%d): %s", self.keep_last, old)
