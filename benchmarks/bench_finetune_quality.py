"""Finetuning quality on the shared records vs classical baselines measured in the same run.

Stages (each one command, each kept under ~10 minutes on a 2-core CPU):
  pretrain   masked signal + report modelling on all shared ECG/PPG/report data except the evaluation test sets
             (PTB-XL fold 8, BIDMC subjects 09-10), saved to OUT/pretrain/model
  diagnosis  PTB-XL superclasses: finetune (folds 1-6 train, 7 validation, 8 test) vs per-lead hand-made features +
             logistic regression trained on folds 1-7; macro AUROC on fold 8 with bootstrap CIs
  vitals     BIDMC HR (monitor HR, 10 s windows): finetune (subjects 01-07 train, 08 val, 09-10 test) vs R-peak and
             pulse-peak counting and the training-mean predictor on the same test windows

    python benchmarks/bench_finetune_quality.py --stage pretrain  --minutes 8
    python benchmarks/bench_finetune_quality.py --stage diagnosis --minutes 8
    python benchmarks/bench_finetune_quality.py --stage vitals    --minutes 8
Results: OUT/<stage>/metrics.json + metrics.txt + plots, and one summary line per stage printed at the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import cardiofm  # noqa: F401  (torchvision guard before transformers)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CARDIOFM_SHARED_DATA", REPO.parent / "shared" / "data"))
logger = logging.getLogger("bench_finetune")


def pretraining_samples(pre) -> list[dict]:
    """Windows of every shared ECG/PPG source, test sets left out (PTB-XL fold 8, BIDMC 09-10)."""
    from cardiofm.data.preprocess import preprocess_record
    from cardiofm.data.readers.bidmc import bidmc_files, read_bidmc
    from cardiofm.data.readers.cinc2021 import read_cinc2021
    from cardiofm.data.readers.ptbxl import ptbxl_ids, read_ptbxl
    from cardiofm.data.readers.wfdb import read_wfdb
    from cardiofm.data.record import RecordError

    root = str(DATA / "ptbxl")
    records = [r for r in (read_ptbxl(root, i) for i in ptbxl_ids(root)) if r.meta["strat_fold"] != 8]
    records += [read_bidmc(p) for p in bidmc_files(str(DATA / "bidmc")) if not p.endswith(("09_Signals.csv.gz",
                                                                                             "10_Signals.csv.gz"))]
    cinc = DATA / "torch_ecg_sample" / "cinc2021"
    records += [read_cinc2021(str(p.with_suffix(""))) for p in sorted(cinc.glob("*.hea"))]
    records += [read_wfdb(str(p.with_suffix("")), source="mitdb") for p in sorted((DATA / "mitdb").glob("*.hea"))]
    samples = []
    for rec in records:
        try:
            samples += preprocess_record(rec, pre)
        except RecordError as err:
            logger.warning("skipped %s", err)
    return samples


def stage_pretrain(out: Path, minutes: float, steps: int) -> dict:
    """Pretrain a tiny model (0.5 s patches) with masked signal + report modelling; export OUT/pretrain/model."""
    from cardiofm.data.collate import collate_samples
    from cardiofm.engine.config import OptimConfig, TrainConfig
    from cardiofm.engine.trainer import Trainer, seed_everything
    from cardiofm.models import CardioFMForPretraining, preset_config
    from cardiofm.models.tokenizer import ReportTokenizer

    seed_everything(0)
    config = preset_config("tiny", patch_size=50, pretraining_data="shared PTB-XL (folds 1-7), BIDMC 01-08, "
                           "CinC 2021 sample, MIT-BIH 4 records")
    samples = pretraining_samples(config.preprocess_config)
    texts = [s["text"] for s in samples if s["text"]]
    tok = ReportTokenizer().train(texts, vocab_size=400)
    model = CardioFMForPretraining(config)
    logger.info("pretraining on %d windows (%d with reports)", len(samples), len(texts))
    cfg = TrainConfig(max_steps=steps, batch_size=32, log_every=25, checkpoint_every=0, trackers=["none"],
                      optim=OptimConfig(lr=1e-3, warmup_steps=20))
    collate = lambda b: collate_samples(b, tokenizer=tok, max_text_len=48)  # noqa: E731
    trainer = Trainer(model, cfg, samples, collate, output_dir=out / "pretrain")
    deadline = time.time() + minutes * 60
    result = _train_until(trainer, deadline)
    path = trainer.export(out / "pretrain" / "model", tokenizer=tok)
    return {"windows": len(samples), "steps": result.step, "model": str(path)}


def _train_until(trainer, deadline: float):
    """Trainer.train, stopping at the wall-clock deadline (SIGTERM path: checkpoint, then stop)."""
    import threading

    timer = threading.Timer(max(1.0, deadline - time.time()), lambda: setattr(trainer, "_stop_signal", "deadline"))
    timer.start()
    try:
        return trainer.train()
    finally:
        timer.cancel()


def stage_finetune(out: Path, task: str, minutes: float, steps: int) -> dict:
    """Finetune the pretrained model with the recipe, then score the baselines on the same test windows."""
    from cardiofm.config import load_config
    from cardiofm.finetune.recipe import FinetuneConfig, run_finetune
    from cardiofm.finetune.scoring import evaluate_checkpoint

    model = out / "pretrain" / "model"
    if not model.is_dir():
        raise SystemExit(f"{model} missing: run --stage pretrain first")
    yaml = REPO / "configs" / ("finetune_diagnosis.yaml" if task == "diagnosis" else "finetune_vitals.yaml")
    root = DATA / ("ptbxl" if task == "diagnosis" else "bidmc")
    cfg = load_config(FinetuneConfig, yaml, [f"model={model}", f"output_dir={out / task}", f"data.root={root}",
                                             f"train.max_steps={steps}", "train.eval_every=50"])
    t0 = time.time()
    report = run_finetune(cfg)
    minutes_used = (time.time() - t0) / 60
    scored, _ = evaluate_checkpoint(load_config(FinetuneConfig, out / task / "finetune_config.yaml",
                                                [f"model={out / task / 'model'}"]), "test", baselines=True)
    report["baselines"] = scored["baselines"]
    (out / task / "metrics_with_baselines.json").write_text(json.dumps(report, indent=2, default=str))
    test = report["splits"]["test"]
    if task == "diagnosis":
        base = report["baselines"]["features_logistic"]
        return {"model_macro_auroc": test["macro_auroc"], "model_ci95": test.get("macro_auroc_ci95"),
                "baseline_macro_auroc": base["macro_auroc"], "baseline_ci95": base.get("macro_auroc_ci95"),
                "ratio": test["macro_auroc"] / base["macro_auroc"], "minutes": minutes_used}
    hr, b = test["HR"], report["baselines"]
    return {"model_hr_mae": hr["mae"], "model_ci95": hr.get("mae_ci95"),
            "ecg_peak_mae": b.get("ecg_peak_counting", {}).get("mae"),
            "ppg_peak_mae": b.get("ppg_peak_counting", {}).get("mae"),
            "training_mean_mae": b.get("training_mean", {}).get("mae"), "minutes": minutes_used}


def main(argv=None) -> int:
    """Run one stage and print its summary as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", required=True, choices=["pretrain", "diagnosis", "vitals"])
    p.add_argument("--out", default="runs/bench_finetune")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the pretraining stage")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps (0: stage default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import transformers

    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if not DATA.is_dir():
        print(f"shared data not found at {DATA} (set CARDIOFM_SHARED_DATA)")
        return 2
    if args.stage == "pretrain":
        summary = stage_pretrain(out, args.minutes, args.steps or 2000)
    else:
        summary = stage_finetune(out, args.stage, args.minutes, args.steps or (400 if args.stage == "diagnosis"
                                                                              else 300))
    print(json.dumps({"stage": args.stage, **summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
