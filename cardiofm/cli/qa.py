"""`cardiofm qa`: finetune and evaluate ECG question answering (ECG-QA on PTB-XL)."""
from __future__ import annotations

import argparse

HELP = ("ECG question answering (ECG-QA format): attribute heads + intent parsing; exact match vs majority and "
        "oracle-attribute answers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm qa`."""
    parser.add_argument("--config", help="YAML recipe: a path or a packaged name (finetune_qa)")
    parser.add_argument("--model", help="checkpoint dir / Hub id to start from, or a preset (random init)")
    parser.add_argument("--output-dir", help="where model/ and metrics.json go")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output-dir")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=500 ecgqa=../shared/data/ecgqa_ptbxl")


def run(args: argparse.Namespace) -> int:
    """Parse the config, run the recipe, print exact match per question type and attribute type."""
    import logging

    from ..config import flag_overrides, load_config
    from ..finetune.qa.recipe import QAConfig, run_qa

    overrides = flag_overrides(args.overrides, {"model": args.model, "output_dir": args.output_dir})
    cfg = load_config(QAConfig, args.config, overrides)
    report = run_qa(cfg, resume=args.resume)
    test = report["questions"]
    print(f"{'group':<34} {'n':>4} {'model EM':>9} {'oracle EM':>10} {'majority EM':>12}")
    for section in ("by_question_type", "by_attribute_type", "by_variant"):
        for name, row in test[section].items():
            print(f"{name:<34} {row['n']:4d} {row['model']['em']:9.3f} {row['oracle']['em']:10.3f} "
                  f"{row['majority']['em']:12.3f}")
    row = test["overall"]
    print(f"{'overall':<34} {row['n']:4d} {row['model']['em']:9.3f} {row['oracle']['em']:10.3f} "
          f"{row['majority']['em']:12.3f}")
    logging.getLogger("cardiofm").info("outputs in %s (model/, metrics.json)", cfg.output_dir)
    return 0
