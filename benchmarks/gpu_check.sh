#!/usr/bin/env bash
# One CUDA check in at most 8 minutes: bf16 step throughput, MFU, peak memory and data wait of the small and base
# presets (eager and torch.compile, plain and single-GPU DeepSpeed ZeRO-2) and the corpus loader's records/s.
# Results also go to JSON: the path given as the first argument, else $OUT/gpu_check.json when $OUT is set.
# Without CUDA it prints one line and exits 0.
#   bash benchmarks/gpu_check.sh [results.json]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
args=()
[ $# -ge 1 ] && args=(--json "$1")
export DS_ACCELERATOR="${DS_ACCELERATOR:-cuda}"
# 480 s: the helper's own budget is 450 s; this is the hard stop should a section ignore its timeout
timeout --kill-after=10 480 "$PY" "$ROOT/benchmarks/gpu_check.py" "${args[@]}"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: stopped at the 8-minute limit; finished sections are in the JSON"
exit $rc
