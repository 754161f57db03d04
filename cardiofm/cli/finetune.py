"""`cardiofm finetune`: adapt a pretrained checkpoint to diagnosis, vital signs or a user target."""
from __future__ import annotations

import argparse

HELP = "finetune a checkpoint for diagnosis, vital signs or a user target (full, linear probe, layer decay)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm finetune`."""
    parser.add_argument("--config", help="YAML recipe: a path or a packaged name (finetune_diagnosis, finetune_vitals, ...); defaults without it")
    parser.add_argument("--task", choices=["diagnosis", "vitals", "target"], help="overrides the config's task")
    parser.add_argument("--model", help="checkpoint directory or Hub id to start from (or a preset: random init)")
    parser.add_argument("--mode", choices=["full", "linear_probe"], help="full finetune or frozen-encoder probe")
    parser.add_argument("--output-dir", help="where the model, metrics and plots go")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output-dir")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=500 data.root=../shared/data/ptbxl")


def run(args: argparse.Namespace) -> int:
    """Parse the config, run the recipe, print the headline metrics."""
    import logging

    from ..config import flag_overrides, load_config
    from ..finetune.evaluation import report_table
    from ..finetune.recipe import FinetuneConfig, run_finetune

    overrides = flag_overrides(args.overrides, {"task": args.task, "model": args.model, "mode": args.mode,
                                                "output_dir": args.output_dir})
    cfg = load_config(FinetuneConfig, args.config, overrides)
    report = run_finetune(cfg, resume=args.resume)
    print(report_table(report), end="")
    logging.getLogger("cardiofm").info("outputs in %s (model/, metrics.json, metrics.txt, *.png)", cfg.output_dir)
    return 0
