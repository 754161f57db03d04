#!/usr/bin/env bash
# Pretrain across several machines with accelerate. Run this on EVERY machine with its own MACHINE_RANK:
#   MAIN_ADDR=10.0.0.1 NUM_MACHINES=4 MACHINE_RANK=0 GPUS_PER_NODE=8 ACCEL_CONFIG=zero2 \
#     scripts/launch_multinode.sh --config pretrain_base --resume
# MAIN_ADDR: address of machine 0 (reachable from all); MAIN_PORT (29500) must be open between the machines.
# The run's output_dir (checkpoints!) must be on a filesystem shared by all machines.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${MAIN_ADDR:?set MAIN_ADDR to the address of machine rank 0}"
: "${NUM_MACHINES:?set NUM_MACHINES}"
: "${MACHINE_RANK:?set MACHINE_RANK (0 .. NUM_MACHINES-1)}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
exec "$PY" -m accelerate.commands.launch --config_file "scripts/accelerate/${ACCEL_CONFIG:-zero2}.yaml" \
  --num_machines "$NUM_MACHINES" --machine_rank "$MACHINE_RANK" \
  --num_processes "$((NUM_MACHINES * GPUS_PER_NODE))" \
  --main_process_ip "$MAIN_ADDR" --main_process_port "${MAIN_PORT:-29500}" \
  -m cardiofm.cli pretrain "$@"
