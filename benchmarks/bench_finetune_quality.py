"""Finetuning quality on the shared records vs classical baselines measured in the same run.

Stages (each one command, each kept under ~16 minutes on a 2-core CPU):
  pretrain   masked signal + report modelling + ECG-report contrastive on all shared ECG/PPG/report data except
             every task's test data (PTB-XL fold 8, all BIDMC subjects: benchmarks/shared_corpus.py): tiny preset,
             0.25 s patches at 100 Hz, held-out learning curves, saved to OUT/pretrain/model
  diagnosis  PTB-XL superclasses: finetune (folds 1-6 train, 7 validation, 8 test; 3 seeds, probabilities averaged)
             vs per-lead hand-made features + logistic regression on the same training windows; macro AUROC on
             fold 8 with bootstrap CIs
  vitals     BIDMC HR (monitor HR, 10 s windows): rate-aware head finetuned (subjects 01-07 train, 08 val, 09-10
             test) vs R-peak and pulse-peak counting and the training-mean predictor on the same test windows

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune_quality.py --stage pretrain --minutes 16 --steps 6000
    OMP_NUM_THREADS=2 python benchmarks/bench_finetune_quality.py --stage diagnosis --steps 400
    OMP_NUM_THREADS=2 python benchmarks/bench_finetune_quality.py --stage vitals    --steps 300
Results: OUT/<stage>/metrics.json + metrics.txt + plots, and one summary line per stage printed at the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import cardiofm  # noqa: F401  (torchvision guard before transformers)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", REPO.parent / "shared" / "data"))
logger = logging.getLogger("bench_finetune")


SNAPSHOT_STEPS = (250, 1000)   # pretraining checkpoints kept for the learning curve over pretraining steps
ALL_SOURCES = ("shared PTB-XL folds 1-7, CinC 2021 sample, MIT-BIH, wfdb-python sample waveforms (CinC 2015, "
               "MIMIC-II, MGH, mimicdb), HeartPy PPG")


def stage_pretrain(out: Path, minutes: float, steps: int, contrastive: float = 0.5, width: int = 0,
                   patch_size: int = 25, beat_tokens: int = 0, eval_every: int = 250,
                   sources: tuple[str, ...] = ()) -> dict:
    """Pretrain a tiny model (`patch_size` samples per patch at 100 Hz) with masked signal + report modelling
    (+ ECG-report contrastive with weight `contrastive`; hidden size `width` if set; `beat_tokens` median-beat
    patches per channel if set) on every shared source but the tasks' test data (benchmarks/shared_corpus.py), or
    only the training windows of `sources` (e.g. ptbxl, cinc2021: the 12-lead subset);
    held-out learning curves every `eval_every` steps to OUT/pretrain/curves.jsonl; export OUT/pretrain/model
    (and snapshots at SNAPSHOT_STEPS). Resumes from OUT/pretrain's last checkpoint when one exists."""
    from bench_pretrain_real import channel_means, evaluate
    from shared_corpus import pretraining_windows

    from cardiofm.data.collate import collate_samples
    from cardiofm.engine.config import OptimConfig, TrainConfig
    from cardiofm.engine.trainer import Trainer, seed_everything
    from cardiofm.models import CardioFMForPretraining, preset_config
    from cardiofm.models.tokenizer import ReportTokenizer

    seed_everything(0)
    sizes = {"hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": width // 32} if width else {}
    if beat_tokens:
        sizes.update(beat_tokens=beat_tokens, num_segments=3)  # segment 2 = median beats, 0/1 stay for ECG pairs
    corpus = f"shared {', '.join(sources)} training windows (PTB-XL folds 1-6)" if sources else ALL_SOURCES
    config = preset_config("tiny", patch_size=patch_size, contrastive_loss_weight=contrastive, **sizes,
                           pretraining_data=corpus)
    samples, held_out, counts = pretraining_windows(config.preprocess_config, sources=sources)
    texts = [s["text"] for s in samples if s["text"]]
    tok = ReportTokenizer().train(texts, vocab_size=400)
    model = CardioFMForPretraining(config)
    logger.info("pretraining on %d windows (%d with reports), %d held out: %s", len(samples), len(texts),
                len(held_out), counts)
    cfg = TrainConfig(max_steps=steps, batch_size=32, log_every=25, checkpoint_every=250, keep_last=1,
                      eval_every=eval_every, trackers=["none"], optim=OptimConfig(lr=1e-3, warmup_steps=20))
    collate = lambda b: collate_samples(b, tokenizer=tok, max_text_len=48,  # noqa: E731
                                        beat_window=config.beat_window)
    means = channel_means(samples)
    curves = out / "pretrain" / "curves.jsonl"
    curves.parent.mkdir(parents=True, exist_ok=True)
    t0, holder = time.time(), {}

    def held_out_curve(m) -> dict:
        """Held-out objectives and masked MSE vs baselines, appended to curves.jsonl; snapshots at SNAPSHOT_STEPS."""
        step = holder["trainer"].state["step"]
        row = {"step": step, "minutes": (time.time() - t0) / 60, **evaluate(m, held_out, means, collate=collate)}
        with curves.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if step in SNAPSHOT_STEPS:
            holder["trainer"].export(out / "pretrain" / "snapshots" / f"step{step}", tokenizer=tok)
        return {f"heldout/{k}": v for k, v in row.items() if k not in ("step", "minutes")}

    trainer = Trainer(model, cfg, samples, collate, held_out_curve, output_dir=out / "pretrain")
    holder["trainer"] = trainer
    result = _train_until(trainer, time.time() + minutes * 60)
    path = trainer.export(out / "pretrain" / "model", tokenizer=tok)
    (out / "pretrain" / "metrics.json").write_text(json.dumps(
        {"windows": len(samples), "held_out_windows": len(held_out), "windows_per_source": counts,
         "sources": list(sources) or "all",
         "steps": result.step, "held_out": result.metrics, "minutes": (time.time() - t0) / 60}, indent=1))
    return {"windows": len(samples), "steps": result.step, "model": str(path), "held_out": result.metrics}


def _train_until(trainer, deadline: float):
    """Trainer.train, stopping at the wall-clock deadline (SIGTERM path: checkpoint, then stop)."""
    import threading

    timer = threading.Timer(max(1.0, deadline - time.time()), lambda: setattr(trainer, "_stop_signal", "deadline"))
    timer.start()
    try:
        return trainer.train(resume=True)
    finally:
        timer.cancel()


def stage_finetune(out: Path, task: str, steps: int, seeds: int = 1, extra: list[str] | None = None,
                   first_seed: int = 0) -> dict:
    """Finetune the pretrained model with the recipe (`seeds` runs, probabilities averaged for diagnosis), then
    score the baselines on the same test windows."""
    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig, run_finetune
    from cardiofm.finetune.scoring import evaluate_checkpoint

    model = out / "pretrain" / "model"
    if not model.is_dir():
        raise SystemExit(f"{model} missing: run --stage pretrain first")
    yaml = "finetune_diagnosis" if task == "diagnosis" else "finetune_vitals"
    root = DATA / ("ptbxl" if task == "diagnosis" else "bidmc")
    t0 = time.time()
    runs = []
    for seed in range(first_seed, first_seed + seeds):
        run = out / task / (f"seed{seed}" if seeds > 1 else "")
        cfg = load_config(FinetuneConfig, yaml, [f"model={model}", f"output_dir={run}", f"data.root={root}",
                                                 f"train.max_steps={steps}", "train.eval_every=50",
                                                 f"train.seed={seed}"] + list(extra or []))
        runs.append((run, run_finetune(cfg)))
    minutes_used = (time.time() - t0) / 60
    run, report = runs[0]
    scored, _ = evaluate_checkpoint(load_config(FinetuneConfig, run / "finetune_config.yaml",
                                                [f"model={run / 'model'}"]), "test", baselines=True)
    report["baselines"] = scored["baselines"]
    if task == "diagnosis" and seeds > 1:
        report["ensemble"] = ensemble_diagnosis(cfg, [r for r, _ in runs])
        report["seed_macro_auroc"] = [r["splits"]["test"]["macro_auroc"] for _, r in runs]
    (out / task / "metrics_with_baselines.json").write_text(json.dumps(report, indent=2, default=str))
    test = report.get("ensemble") or report["splits"]["test"]
    if task == "diagnosis":
        base = report["baselines"]["features_logistic"]
        if seeds > 1:   # one loadable model at OUT/diagnosis/model: the first seed (chosen before any test score)
            shutil.copytree(runs[0][0] / "model", out / task / "model", dirs_exist_ok=True)
        summary = {"model_macro_auroc": test["macro_auroc"], "model_ci95": test.get("macro_auroc_ci95"),
                   "seed_macro_auroc": report.get("seed_macro_auroc"),
                   "model_per_class": {n: c["auroc"] for n, c in test["per_class"].items()},
                   "baseline_macro_auroc": base["macro_auroc"], "baseline_ci95": base.get("macro_auroc_ci95"),
                   "baseline_per_class": base["per_class_auroc"],
                   "ratio": test["macro_auroc"] / base["macro_auroc"], "minutes": minutes_used}
        (out / task / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
        return summary
    hr, b = test["HR"], report["baselines"]
    return {"model_hr_mae": hr["mae"], "model_ci95": hr.get("mae_ci95"),
            "ecg_peak_mae": b.get("ecg_peak_counting", {}).get("mae"),
            "ppg_peak_mae": b.get("ppg_peak_counting", {}).get("mae"),
            "training_mean_mae": b.get("training_mean", {}).get("mae"),
            "ratio_to_ecg_peak": hr["mae"] / b.get("ecg_peak_counting", {}).get("mae", float("nan")),
            "minutes": minutes_used}


def ensemble_diagnosis(cfg, runs: list[Path]) -> dict:
    """Test-fold report of the mean probability of several finetuned diagnosis models (one record, one row)."""
    import numpy as np

    from cardiofm.data.collate import collate_samples
    from cardiofm.finetune.data import build_task_data
    from cardiofm.finetune.evaluation import aggregate_by_record, diagnosis_report, predict_windows
    from cardiofm.finetune.recipe import make_collate
    from cardiofm.finetune.scoring import load_task_model

    probs, windows, model = [], None, None
    for run in runs:
        model, _ = load_task_model(str(run / "model"))
        if windows is None:
            windows = build_task_data(cfg.data, "diagnosis", model.config.preprocess_config).windows["test"]
        probs.append(predict_windows(model, windows, make_collate(cfg, model), cfg.eval_batch_size))
    ids = [w["record_id"] for w in windows]
    _, prob = aggregate_by_record(ids, np.mean(probs, 0))
    _, y = aggregate_by_record(ids, collate_samples(windows, label_names=model.label_names)["labels"].numpy())
    return diagnosis_report(y, prob, model.label_names, None, cfg.bootstrap)


def main(argv=None) -> int:
    """Run one stage and print its summary as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", required=True, choices=["pretrain", "diagnosis", "vitals"])
    p.add_argument("--out", default="runs/bench_finetune")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the pretraining stage")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps (0: stage default)")
    p.add_argument("--contrastive", type=float, default=0.5, help="pretraining: ECG-report contrastive loss weight")
    p.add_argument("--seeds", type=int, default=3, help="diagnosis: runs with seeds F..F+N-1, probabilities averaged")
    p.add_argument("--first-seed", type=int, default=0, help="diagnosis: first seed F (a second ensemble: 3)")
    p.add_argument("--set", nargs="*", default=[], help="finetuning: extra config overrides, e.g. head_pooling=channel")
    p.add_argument("--patch-size", type=int, default=25, help="pretraining: samples per patch at 100 Hz")
    p.add_argument("--width", type=int, default=0, help="pretraining: hidden size (0: the tiny preset's 64)")
    p.add_argument("--beat-tokens", type=int, default=0, help="pretraining: median-beat patches per channel (0: off)")
    p.add_argument("--eval-every", type=int, default=250, help="pretraining: steps between held-out evaluations")
    p.add_argument("--sources", default="", help="pretraining: only these sources' training windows, comma-separated "
                                                  "(ptbxl,cinc2021 = the 12-lead subset; held-out slice unchanged)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import transformers

    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if not DATA.is_dir():
        print(f"shared data not found at {DATA} (set CARDIOFM_SHARED_DATA)")
        return 2
    if args.stage == "pretrain":
        summary = stage_pretrain(out, args.minutes, args.steps or 2000, args.contrastive, args.width,
                                 args.patch_size, args.beat_tokens, args.eval_every,
                                 tuple(s for s in args.sources.split(",") if s))
    else:
        summary = stage_finetune(out, args.stage, args.steps or (400 if args.stage == "diagnosis" else 300),
                                 args.seeds if args.stage == "diagnosis" else 1, args.set, args.first_seed)
    print(json.dumps({"stage": args.stage, **summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
