"""`cardiofm predict MODEL DATA --out preds.csv`: a finetuned checkpoint over a folder (or files) of records of any
length, rate and lead naming -> one CSV row per record (class probabilities and the predicted classes, or values with
their units), window outputs aggregated as the row says."""
from __future__ import annotations

import argparse

HELP = "predict with a finetuned checkpoint over WFDB/CSV/NumPy records: one CSV row per record"


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of raw inputs shared by predict/embed/evaluate/finetune: channel names and rate of headerless files,
    the unknown-channel policy."""
    parser.add_argument("--channels", default=None,
                        help="comma-separated channel names of CSV/NumPy files without a header or sidecar")
    parser.add_argument("--fs", type=float, default=None,
                        help="sampling rate (Hz) of CSV/NumPy files without a time column or sidecar")
    parser.add_argument("--ignore-unknown-channels", action="store_true",
                        help="drop channels no lead alias names (one warning) instead of failing")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm predict`."""
    parser.add_argument("model", help="finetuned model directory or Hub id (written by `cardiofm finetune`)")
    parser.add_argument("data", nargs="+", help="folder(s) or files of records: WFDB (.hea), CSV or NumPy")
    parser.add_argument("--out", required=True, help="output CSV: one row per record")
    parser.add_argument("--overlap", type=float, default=0.5,
                        help="fraction of a window shared by consecutive windows of a long record")
    parser.add_argument("--aggregate", choices=["mean", "max"], default=None,
                        help="window outputs -> record (default: the one the model was evaluated with)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per forward pass, across records")
    add_input_arguments(parser)


def input_options(args: argparse.Namespace):
    """InputOptions from the shared input flags."""
    from ..finetune.inputs import InputOptions

    chans = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    return InputOptions(channels=chans, fs=args.fs, ignore_unknown_channels=args.ignore_unknown_channels)


def run(args: argparse.Namespace) -> int:
    """Load the model, predict every record, write the CSV; exit code 1 when some record could not be scored."""
    import logging

    from ..finetune.inputs import discover_inputs
    from ..finetune.predict import PredictOptions, predict_records, write_rows
    from ..finetune.scoring import load_task_model

    log = logging.getLogger("cardiofm.predict")
    model, task = load_task_model(args.model)
    items = discover_inputs(args.data)
    rows = predict_records(model, task, items, input_options(args),
                           PredictOptions(args.overlap, args.aggregate, args.batch_size))
    write_rows(rows, args.out)
    bad = sum(r["status"] != "ok" for r in rows)
    log.info("%d records -> %s (%d not scored)", len(rows), args.out, bad)
    return 1 if bad else 0
