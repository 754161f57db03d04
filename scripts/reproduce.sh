#!/usr/bin/env bash
# Reproduce the project's recommended recipes end to end.
#
#   bash scripts/reproduce.sh TASK OUT            CPU recipe on the shared recordings (../shared/data)
#   bash scripts/reproduce.sh --full TASK OUT     GPU-scale recipe on the full public datasets (see the end of file)
#
# TASK: pretrain | diagnosis | vitals | reconstruction | qa | ablation | augment
# Every task writes OUT/TASK/model (loadable with cardiofm.AutoModel / from_pretrained) and OUT/TASK/metrics.json.
# Pretraining runs once: the other tasks reuse OUT/pretrain/model and run `pretrain` first when it is missing.
# Every stage resumes: a killed pretraining continues from its last checkpoint, finished runs are skipped.
#
# CPU budget (2 cores): pretraining <= 26 min wall clock (a deadline, not a step count: the step count therefore
# depends on the machine), each task <= 20 min. Heavy loops are single-threaded (OMP_NUM_THREADS=1) so that two
# tasks can share a 2-core machine.
set -euo pipefail

FULL=0
if [[ "${1:-}" == "--full" ]]; then FULL=1; shift; fi
TASK="${1:?usage: reproduce.sh [--full] TASK OUT}"
OUT="${2:?usage: reproduce.sh [--full] TASK OUT}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-$REPO/.venv/bin/python}"
CLI="${CARDIOFM_CLI:-$REPO/.venv/bin/cardiofm}"
DATA="${CARDIOFM_SHARED_DATA:-$REPO/../shared/data}"
export CARDIOFM_SHARED_DATA="$DATA" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p "$OUT"

pretrain() {
  if [[ -f "$OUT/pretrain/model/config.json" ]]; then
    echo "pretraining: reusing $OUT/pretrain/model"; return
  fi
  "$PY" benchmarks/bench_finetune_quality.py --stage pretrain --minutes "${PRETRAIN_MINUTES:-26}" --steps 6000 \
    --eval-every 250 --out "$OUT"
}

diagnosis() {
  pretrain
  "$PY" benchmarks/bench_finetune_quality.py --stage diagnosis --steps 400 --seeds 3 --out "$OUT"
}

vitals() {
  pretrain
  "$PY" benchmarks/bench_finetune_quality.py --stage vitals --steps 300 --out "$OUT"
  "$PY" benchmarks/bench_vitals_loso.py --out "$OUT/vitals/loso" --model "$OUT/pretrain/model" --steps 100
}

reconstruction() {
  pretrain
  "$PY" benchmarks/bench_reconstruction.py --model "$OUT/pretrain/model" --output-dir "$OUT/reconstruction" \
    --steps 600 --warmup-steps 1200
  cp "$OUT/reconstruction/results.json" "$OUT/reconstruction/metrics.json"
}

qa() {
  pretrain
  "$CLI" qa --config finetune_qa --model "$OUT/pretrain/model" --output-dir "$OUT/qa" \
    ecgqa="$DATA/ecgqa_ptbxl" ptbxl="$DATA/ptbxl"   # writes $OUT/qa/model and $OUT/qa/metrics.json
}

ablation() {
  pretrain
  "$PY" benchmarks/bench_ablation.py --out "$OUT" --task diagnosis --seeds 3 --diagnosis-steps 150 \
    --arms random_probe,random_full,pretrained_probe,pretrained_full
  "$PY" benchmarks/bench_ablation.py --out "$OUT" --task reconstruction --seeds 3 --recon-steps 200 --recon-warmup 300
}

augment() {
  pretrain
  "$CLI" augment-study --config augment_study model="$OUT/pretrain/model" \
    root="$DATA/torch_ecg_sample/cinc2021" ptbxl_root="$DATA/ptbxl" output_dir="$OUT/augment"
}

full() {
  # GPU-scale recipe on the full public datasets. Download them first (PhysioNet credentials where required):
  #   PTB-XL 1.0.3, PhysioNet/CinC 2021 (all sources), MIMIC-IV-ECG 1.0 -> $FULL_DATA/{ptbxl,cinc2021,mimic_iv_ecg}
  local D="${FULL_DATA:?set FULL_DATA to the folder with the full datasets}"
  case "$TASK" in
    pretrain)
      for src in ptbxl cinc2021 mimic_iv_ecg; do
        "$CLI" prepare "$src" --root "$D/$src" --out "$OUT/corpora/$src"
      done
      accelerate launch --multi_gpu --num_processes "${GPUS:-8}" -m cardiofm pretrain \
        --config pretrain_base output_dir="$OUT/pretrain" \
        "data.corpus_dirs=[$OUT/corpora/ptbxl,$OUT/corpora/cinc2021,$OUT/corpora/mimic_iv_ecg]" ;;
    diagnosis)
      accelerate launch -m cardiofm finetune --config finetune_diagnosis \
        --model "$OUT/pretrain/model" output_dir="$OUT/diagnosis" data.root="$D/ptbxl" \
        "data.train_folds=[1,2,3,4,5,6,7,8]" "data.val_folds=[9]" "data.test_folds=[10]" train.max_steps=20000 ;;
    reconstruction)
      "$PY" benchmarks/bench_reconstruction.py --model "$OUT/pretrain/model" --ptbxl "$D/ptbxl" \
        --train-folds 1,2,3,4,5,6,7,8 --test-folds 10 --steps 20000 --output-dir "$OUT/reconstruction" ;;
    augment)
      "$CLI" augment-study --config augment_study model="$OUT/pretrain/model" root="$D/cinc2021" \
        train.max_steps=2000 train.batch_size=64 min_label_count=50 output_dir="$OUT/augment" ;;
    *) echo "--full covers pretrain, diagnosis, reconstruction, augment (vitals/qa: the CPU recipe)"; exit 2 ;;
  esac
}

if (( FULL )); then full; else
  case "$TASK" in
    pretrain|diagnosis|vitals|reconstruction|qa|ablation|augment) "$TASK" ;;
    *) echo "unknown task $TASK (pretrain|diagnosis|vitals|reconstruction|qa|ablation|augment)"; exit 2 ;;
  esac
fi
if [[ -d "$OUT/$TASK/model" ]]; then
  echo "$TASK: model in $OUT/$TASK/model, metrics in $OUT/$TASK/metrics.json"
else
  echo "$TASK: results under $OUT/$TASK (and $OUT/ablation for the ablation tables)"
fi
