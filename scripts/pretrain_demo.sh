#!/usr/bin/env bash
# The main job on a fresh machine: install the environment (idempotent), then a short pretraining run of the
# tiny preset on the embedded synthetic data. Extra arguments go to `cardiofm pretrain` (e.g. train.max_steps=50).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"
# 300 steps (about a minute on 2 idle cores) so the masked-reconstruction loss visibly falls; overrides come last.
exec "$ROOT/.venv/bin/cardiofm" pretrain --output-dir "${OUTPUT_DIR:-runs/demo}" train.max_steps=300 \
  train.checkpoint_every=100 train.eval_every=100 train.plot_every=100 "$@"
