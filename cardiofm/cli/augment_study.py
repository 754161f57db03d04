"""`cardiofm augment-study`: the same diagnosis model trained with each augmentation under source-aware k-fold."""
from __future__ import annotations

import argparse

HELP = "compare augmentations (STAR, equal-segment reference and baselines) under source-aware 5-fold on CinC 2021"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the augment-study subcommand."""
    parser.add_argument("--config", default=None, help="study YAML (StudyConfig); defaults otherwise")
    parser.add_argument("--root", default=None, help="CinC 2021 folder (the sample or a full download)")
    parser.add_argument("--arms", default=None,
                        help="comma-separated arms, e.g. none,star,equal_segment (default: all nine)")
    parser.add_argument("--folds", default=None, help="comma-separated fold indices to run (default: all)")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps per arm and fold")
    parser.add_argument("--output-dir", default=None, help="where results.json / summary.md go")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.batch_size=16 arm_p=0.8")


def run(args: argparse.Namespace) -> int:
    """Parse the config, run every arm x fold, print the summary table."""
    from ..config import flag_overrides, load_config
    from ..finetune.study import StudyConfig, run_study

    overrides = flag_overrides(args.overrides, {
        "root": args.root, "arms": f"[{args.arms}]" if args.arms else None,
        "folds": f"[{args.folds}]" if args.folds else None, "train.max_steps": args.max_steps,
        "output_dir": args.output_dir})
    cfg = load_config(StudyConfig, args.config, overrides)
    run_study(cfg)
    print(f"results in {cfg.output_dir}/summary.md, summary.json, results.json")
    return 0
