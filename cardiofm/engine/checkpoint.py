"""Atomic full-state checkpoints: write into a temporary directory, then rename; keep the last N complete ones.

A checkpoint directory `step_00000100/` holds accelerate's state (model, optimizer, scheduler, grad scaler, the RNG
states of every process; DeepSpeed's sharded files under ZeRO) plus `trainer_state.json` (step, data position, best
metric) and, written last, `manifest.json` (size and sha256 of every other file). Only directories named `step_*`
that contain `trainer_state.json` count; a save interrupted at any point leaves a `.tmp-step_*` directory that
resume ignores and the next save removes. Resume takes the newest checkpoint whose manifest verifies (a truncated or
altered file sends it to the previous one, with a log line naming both); a missing or unreadable RNG state is an
error unless inexact resumption is allowed. With several nodes the checkpoint root must be on a filesystem every
node sees.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"
RNG_FILE = "random_states_{}.pkl"   # accelerate's per-process RNG state (restricted torch.load, weights_only)
_STEP_RE = re.compile(r"^step_(\d+)$")
_RNG_RE = re.compile(r"^random_states_\d+\.pkl$")


class CheckpointError(ValueError):
    """No checkpoint can be resumed as asked: none verifies, or its RNG state is missing or unreadable."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> dict:
    """Write DIR/manifest.json: {relative path: {bytes, sha256}} of every other file in the checkpoint."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    manifest = {"files": {str(p.relative_to(directory)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                          for p in files}}
    tmp = directory / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST_FILE)
    return manifest


def verify_checkpoint(directory: Path) -> list[str]:
    """Problems of a checkpoint against its manifest (empty when every listed file has its size and hash)."""
    try:
        listed = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return [f"no {MANIFEST_FILE}"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"unreadable {MANIFEST_FILE} ({type(err).__name__})"]
    problems = []
    for name, want in listed.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != want["bytes"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {want['bytes']}")
        elif _sha256(path) != want["sha256"]:
            problems.append(f"{name} does not match its sha256")
    return problems


def rng_problem(directory: Path, process_index: int) -> str | None:
    """Why this process's RNG state in `directory` cannot be restored exactly, or None."""
    from accelerate.utils import load  # torch.load with weights_only=True, as accelerate restores it

    path = directory / RNG_FILE.format(process_index)
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        states = load(path)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types on damaged files
        return f"{path.name} is unreadable ({type(err).__name__})"
    keys = set(states) if isinstance(states, dict) else set()
    missing = {"random_state", "numpy_random_seed", "torch_manual_seed"} - keys
    return f"{path.name} lacks {sorted(missing)}" if missing else None


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
        """The newest complete checkpoint (verified or not), or None."""
        done = self.complete()
        return done[-1] if done else None

    def resume_point(self, process_index: int, allow_inexact: bool = False) -> tuple[Path | None, bool]:
        """(newest checkpoint that verifies, whether its RNG state is unusable) or (None, False) when there is none
        at all; damaged newer ones are skipped with a warning; raises CheckpointError when checkpoints exist but
        none verifies, or when the chosen one's RNG state is unusable and not `allow_inexact`."""
        done, skipped = self.complete(), []
        for path in reversed(done):
            problems = verify_checkpoint(path)
            damaged = [p for p in problems if not _RNG_RE.match(p.split()[0])]
            if damaged:
                logger.warning("checkpoint %s fails verification (%s): trying the previous one", path.name,
                               "; ".join(damaged))
                skipped.append(path.name)
                continue
            rng = [p for p in problems if _RNG_RE.match(p.split()[0])] or [rng_problem(path, process_index)]
            rng = [p for p in rng if p]
            if skipped:
                logger.warning("resuming from %s, the newest checkpoint that verifies (skipped %s)", path.name,
                               ", ".join(skipped))
            if rng and not allow_inexact:
                raise CheckpointError(f"{path}: RNG state unusable ({'; '.join(rng)}): resuming would not be exact; "
                                      "set train.allow_inexact_resume=true to resume anyway")
            if rng:
                logger.warning("%s: RNG state unusable (%s): resuming WITHOUT it, the run is no longer exact",
                               path.name, "; ".join(rng))
            return path, bool(rng)
        if done:
            raise CheckpointError(f"no checkpoint under {self.root} verifies (tried {', '.join(skipped)})")
        return None, False

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
        accelerator.wait_for_everyone()  # every process's files are written before they are hashed
        if accelerator.is_main_process:
            write_manifest(directory)

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
