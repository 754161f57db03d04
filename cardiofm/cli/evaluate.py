"""`cardiofm evaluate`: score a finetuned checkpoint on a split (metrics JSON + table + ROC/Bland-Altman PNGs),
optionally beside the classical baselines computed on the same windows."""
from __future__ import annotations

import argparse

HELP = "evaluate a finetuned diagnosis/vitals/target checkpoint: metrics JSON, table and plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm evaluate`."""
    parser.add_argument("--model", required=True, help="finetuned model directory or Hub id")
    parser.add_argument("--config", help="finetune YAML giving data/split (the run's finetune_config.yaml)")
    parser.add_argument("--split", default=None, choices=["train", "val", "test", "all"],
                        help="split to score (default test; with --data and a labels file without a split column: "
                             "every labelled record)")
    parser.add_argument("--output-dir", required=True, help="where metrics.json, metrics.txt and PNGs go")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% CIs (0: none)")
    parser.add_argument("--baselines", action="store_true",
                        help="also score the classical baselines (features + logistic regression; peak counting)")
    from .finetune import add_data_arguments

    add_data_arguments(parser, "--data")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (data.* ...)")


def run(args: argparse.Namespace) -> int:
    """Load model and data, predict, score, write the report."""
    import logging

    from ..config import flag_overrides, load_config
    from ..data.readers.labels import labels_header
    from .finetune import data_overrides
    from ..finetune.evaluation import report_table, write_report
    from ..finetune.recipe import FinetuneConfig
    from ..finetune.scoring import evaluate_checkpoint

    flags = {"model": args.model, "bootstrap": args.bootstrap, **data_overrides(args)}
    aggregate = flags.pop("aggregate", None)
    split = args.split or "test"
    if args.data and (args.split == "all" or (args.split is None and not args.config and not (
            args.labels and "split" in [h.lower() for h in labels_header(args.labels)]))):
        flags["data.split"], split = "all", "test"  # new data: score every labelled record
    cfg = load_config(FinetuneConfig, args.config, flag_overrides(args.overrides, flags))
    report, curves = evaluate_checkpoint(cfg, split, args.baselines, aggregate)
    paths = write_report(report, args.output_dir, curves)
    print(report_table(report), end="")
    logging.getLogger("cardiofm").info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
