#!/usr/bin/env bash
# Pretrain on one machine with accelerate: all its GPUs (DDP, or DeepSpeed via ACCEL_CONFIG), else 2 CPU processes.
#   scripts/launch_single_node.sh --config pretrain_real
#   ACCEL_CONFIG=zero2 NUM_PROCESSES=4 scripts/launch_single_node.sh --config pretrain_base --resume
# ACCEL_CONFIG names a file in scripts/accelerate/ (ddp, zero1, zero2, zero2_offload, zero3, zero3_offload).
# Everything after the script name goes to `cardiofm pretrain`. Rerunning with --resume continues the run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
PORT="${MAIN_PORT:-29500}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  NUM="${NUM_PROCESSES:-$(nvidia-smi -L | wc -l)}"
  exec "$PY" -m accelerate.commands.launch --config_file "scripts/accelerate/${ACCEL_CONFIG:-ddp}.yaml" \
    --num_processes "$NUM" --main_process_port "$PORT" -m cardiofm.cli pretrain "$@"
fi
# CPU: ACCELERATE_USE_CPU + --multi_gpu is what gives synchronised processes over gloo (DeepSpeed: see below)
export DS_ACCELERATOR=cpu OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
NUM="${NUM_PROCESSES:-2}"
if [[ -n "${ACCEL_CONFIG:-}" && "${ACCEL_CONFIG}" != ddp ]]; then  # DeepSpeed on CPU: no ACCELERATE_USE_CPU
  exec "$PY" -m accelerate.commands.launch --config_file "scripts/accelerate/${ACCEL_CONFIG}.yaml" \
    --num_processes "$NUM" --main_process_port "$PORT" -m cardiofm.cli pretrain "$@"
fi
ACCELERATE_USE_CPU=true exec "$PY" -m accelerate.commands.launch --multi_gpu --num_processes "$NUM" \
  --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port "$PORT" -m cardiofm.cli pretrain "$@"
