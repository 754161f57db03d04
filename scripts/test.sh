#!/usr/bin/env bash
# Run the whole test suite: installs the project environment first (idempotent), then pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}" TOKENIZERS_PARALLELISM=false
exec "$ROOT/.venv/bin/python" -m pytest tests "$@"
