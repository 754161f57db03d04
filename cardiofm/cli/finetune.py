"""`cardiofm finetune`: adapt a pretrained checkpoint to diagnosis, vital signs or a user target."""
from __future__ import annotations

import argparse

HELP = "finetune a checkpoint for diagnosis, vital signs or a user target (full, linear probe, layer decay)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm finetune`."""
    parser.add_argument("--config", help="YAML recipe: a path or a packaged name (finetune_diagnosis, finetune_vitals, ...); defaults without it")
    parser.add_argument("--task", choices=["auto", "diagnosis", "vitals", "target"],
                        help="overrides the config's task (auto: from the data; with --labels: from its columns)")
    parser.add_argument("--model", help="checkpoint directory or Hub id to start from (or a preset: random init)")
    parser.add_argument("--mode", choices=["full", "linear_probe"], help="full finetune or frozen-encoder probe")
    parser.add_argument("--output-dir", help="where the model, metrics and plots go")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output-dir")
    add_data_arguments(parser, "--train")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=500 data.root=../shared/data/ptbxl")


def add_data_arguments(parser: argparse.ArgumentParser, flag: str) -> None:
    """Your own records + labels (finetune --train, evaluate --data): DATA, the labels CSV or metadata key, and
    how to read both."""
    from .predict import add_input_arguments

    parser.add_argument(flag, dest="data", metavar="DATA",
                        help="your records: a folder or file of WFDB (.hea), CSV or NumPy records, or a corpus built "
                             "by `cardiofm prepare` (needs --labels or --labels-from-meta)")
    parser.add_argument("--labels", help="labels CSV: a record key column, then one label column (multi-class), a "
                                         "';'-separated labels column or 0/1 columns (multi-label), or numbers "
                                         "(regression); optional split, subject, fs, start_s, end_s columns")
    parser.add_argument("--labels-from-meta", metavar="KEY",
                        help="targets from the records' metadata instead of a CSV (e.g. labels, superclasses, age)")
    parser.add_argument("--label-kind", choices=["auto", "multilabel", "multiclass", "regression"],
                        help="force the task kind the labels are read as (none: inferred from the columns)")
    parser.add_argument("--key-column", help="the labels' record-key column (none: record, key, id, ... or the first column)")
    parser.add_argument("--target-columns", help="comma-separated target columns (none: every column but the key and optional ones)")
    parser.add_argument("--aggregate", choices=["mean", "max"], help="window outputs -> one per record")
    add_input_arguments(parser)


def data_overrides(args: argparse.Namespace) -> dict:
    """Config overrides (data.*) of the own-data flags; none when DATA is not given."""
    if not args.data:
        if args.labels or args.labels_from_meta:
            raise ValueError("--labels/--labels-from-meta need the records they label (--train / --data DATA)")
        return {"aggregate": args.aggregate}
    flags = {"data.source": "user", "data.root": args.data, "data.labels_file": args.labels,
             "data.labels_from_meta": args.labels_from_meta, "data.label_kind": args.label_kind,
             "data.key_column": args.key_column, "data.file_fs": args.fs, "aggregate": args.aggregate,
             "data.ignore_unknown_channels": True if args.ignore_unknown_channels else None}
    if args.target_columns:
        flags["data.target_columns"] = "[" + ",".join(c.strip() for c in args.target_columns.split(",")) + "]"
    if args.channels:
        flags["data.file_channels"] = "[" + ",".join(c.strip() for c in args.channels.split(",")) + "]"
    return flags


def run(args: argparse.Namespace) -> int:
    """Parse the config, run the recipe, print the headline metrics."""
    import logging

    from ..config import flag_overrides, load_config
    from ..finetune.evaluation import report_table
    from ..finetune.recipe import FinetuneConfig, run_finetune

    overrides = flag_overrides(args.overrides, {"task": args.task, "model": args.model, "mode": args.mode,
                                                "output_dir": args.output_dir, **data_overrides(args)})
    cfg = load_config(FinetuneConfig, args.config, overrides)
    report = run_finetune(cfg, resume=args.resume)
    print(report_table(report), end="")
    logging.getLogger("cardiofm").info("outputs in %s (model/, metrics.json, metrics.txt, *.png, split.csv, logs/)",
                                       cfg.output_dir)
    return 0
