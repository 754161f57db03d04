"""Helpers for tests that run `cardiofm pretrain` in fresh processes (1 or 2, through accelerate's launcher)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# small and quick: batch 2, no eval/plots unless asked, every step logged
FAST = ["train.batch_size=2", "train.log_every=1", "train.eval_every=0", "train.plot_every=0", "data.eval_size=2",
        "data.synthetic_size=64", "train.trackers=[none]"]


def free_port() -> int:
    """A TCP port nobody listens on (for the rendezvous of a 2-process launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra) -> dict:
    """Environment of a launched run: CPU DeepSpeed accelerator, one thread per process (2 cores, 2 processes)."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE",
                                                                     "LOCAL_RANK", "MASTER_"))}
    out.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", **extra)
    return out


def pretrain_cmd(out_dir: Path, *overrides: str, launcher: list[str] | None = None, resume: bool = False) -> list:
    """Command line of `cardiofm pretrain` (optionally behind a launcher)."""
    cli = ["-m", "cardiofm.cli", "pretrain", "--output-dir", str(out_dir), *FAST, *overrides]
    if resume:
        cli.append("--resume")
    if launcher is None:
        return [sys.executable, *cli]
    return [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--main_process_port", str(free_port()),
            *cli]


def run(cmd: list, timeout: float = 240, **env_extra) -> subprocess.CompletedProcess:
    """Run to completion; raise with the tail of the log when it fails."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env(**env_extra), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} -> rc {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def ddp_launcher(n: int = 2) -> tuple[list[str], dict]:
    """accelerate launcher args + env for n synchronised CPU processes (DDP over gloo)."""
    return ["--multi_gpu", "--num_processes", str(n)], {"ACCELERATE_USE_CPU": "true"}


def deepspeed_launcher(stage: int, n: int = 2, config_file: bool = False) -> tuple[list[str], dict]:
    """accelerate launcher args for DeepSpeed ZeRO `stage` on n CPU processes (no ACCELERATE_USE_CPU: it disables DS):
    command-line flags, or the repository's accelerate yaml + DeepSpeed JSON when `config_file`."""
    if config_file:
        return ["--config_file", str(ROOT / "scripts" / "accelerate" / f"zero{stage}.yaml"), "--num_processes", str(n)], {}
    return ["--use_deepspeed", "--zero_stage", str(stage), "--num_processes", str(n), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no"], {}


def step_metrics(out_dir: Path, keys=("train/loss",)) -> dict[int, tuple]:
    """step -> values of `keys` from metrics.jsonl; later lines win (a resumed run re-logs the steps it redoes)."""
    rows = {}
    for line in (out_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if keys[0] in row:
            rows[row["step"]] = tuple(row[k] for k in keys)
    return rows


def exported_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    """Tensors of DIR/model/model.safetensors."""
    from safetensors.torch import load_file

    return load_file(str(out_dir / "model" / "model.safetensors"))


def digests(stderr: str) -> dict[int, str]:
    """rank -> weights digest logged by the Trainer at the end of training."""
    out = {}
    for line in stderr.splitlines():
        if "weights digest" in line:
            parts = line.split()
            out[int(parts[parts.index("rank") + 1])] = parts[-1]
    return out
