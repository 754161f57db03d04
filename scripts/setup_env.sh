#!/usr/bin/env bash
# Create (or reuse) the project virtualenv `.venv` and install cardiofm with its dev extras.
# Idempotent: a second run with nothing changed returns in seconds.
# CPU machines get the CPU build of torch; a machine whose Python already has torch (e.g. CUDA) keeps it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CARDIOFM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.cardiofm-installed"

if [ ! -x "$VENV/bin/python" ]; then
  # --system-site-packages: a CUDA torch already installed on a GPU machine is seen and kept.
  "$PY" -m venv --system-site-packages "$VENV"
fi
VPY="$VENV/bin/python"
HASH="$(cat "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && "$VPY" -c "import cardiofm" 2>/dev/null; then
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
TORCH_VERSION="$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
if [ -z "$TORCH_VERSION" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "$VPY" -m pip install "torch>=2.3,<3"
  else
    # The CPU wheel; an unpinned torch would pull several GB of CUDA wheels.
    "$VPY" -m pip install "torch==2.13.0"
  fi
  TORCH_VERSION="$("$VPY" -c 'import torch; print(torch.__version__.split("+")[0])')"
fi

# Pin torch to what is installed, for every resolver step and every isolated build (PIP_CONSTRAINT reaches those).
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
case "$TORCH_VERSION" in
  2.13.*) echo "torchvision==0.28.0" >> "$CONSTRAINTS" ;;
esac
export PIP_CONSTRAINT="$CONSTRAINTS"
export DS_BUILD_OPS=0
"$VPY" -m pip install -e "$ROOT[dev]"
# Tools that import timm/transformers before cardiofm (the accelerate and deepspeed launchers) need the torchvision
# guard too: a .pth file installs a hook that runs it on the first `import torchvision` (and costs nothing before).
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import cardiofm_torchvision_guard" > "$SITE/cardiofm_torchvision_guard.pth"
"$VPY" -c "import cardiofm, torch, transformers, timm, accelerate, deepspeed, datasets, sentencepiece; print('cardiofm environment ready: torch', torch.__version__)"
echo "$HASH" > "$STAMP"
