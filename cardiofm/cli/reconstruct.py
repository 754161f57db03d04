"""`cardiofm reconstruct`: train/evaluate 12-lead reconstruction from any lead subset or PPG, or apply a model."""
from __future__ import annotations

import argparse

HELP = "12-lead reconstruction from any lead subset or PPG: train + evaluate vs lagged linear baseline, or apply"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cardiofm reconstruct`."""
    parser.add_argument("--config", help="YAML recipe: a path or a packaged name (finetune_reconstruction)")
    parser.add_argument("--model", help="checkpoint dir / Hub id to start from, or a preset (random init)")
    parser.add_argument("--output-dir", help="where model/, results.json and figures/ go")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output-dir")
    parser.add_argument("--apply", metavar="DATA", help="instead of training: reconstruct every record of DATA (a "
                        "WFDB/CSV/NumPy file or folder) with --model (a trained reconstruction model); one .npy each "
                        "(in --output-dir, else the current folder)")
    parser.add_argument("--inputs", default="I", help="with --apply: comma-separated input channels, e.g. II,V1,V5")
    from .predict import add_input_arguments

    add_input_arguments(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=2000 ptbxl=../shared/data/ptbxl")


def _apply(args: argparse.Namespace) -> int:
    import logging

    import numpy as np

    from pathlib import Path

    from ..data.record import RecordError
    from ..finetune.inputs import discover_inputs, read_input
    from ..models import CardioFMForReconstruction
    from .errors import UserError
    from .predict import input_options

    if not args.model:
        raise UserError("--apply needs --model (a directory written by `cardiofm reconstruct`)")
    model = CardioFMForReconstruction.from_pretrained(args.model)
    inputs = [c.strip() for c in args.inputs.split(",") if c.strip()]
    opts, out_dir = input_options(args), Path(args.output_dir or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    log, failed = logging.getLogger("cardiofm"), 0
    for item in discover_inputs(args.apply):
        try:
            rec = read_input(item, opts)
            missing = [c for c in inputs if c not in rec.channels]
            if missing:
                raise RecordError(rec.path, f"input channel(s) {missing} not in the record ({rec.channels})")
            rec = rec.select(inputs)
        except RecordError as err:
            log.error("skipped %s", err)
            failed += 1
            continue
        out = model.reconstruct(rec.signal, rec.fs, rec.channels)
        path = out_dir / f"{item.key.replace('/', '_')}_reconstructed.npy"
        np.save(path, out)
        log.info("reconstructed %s from %s -> %s (%s, mV at %g Hz)", model.target_names, inputs, path, out.shape,
                 rec.fs)
    opts.warn_dropped()
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Parse the config, train and evaluate (or apply), print model vs baseline per input set."""
    import logging

    from ..config import flag_overrides, load_config
    from ..finetune.reconstruction.recipe import ReconstructionConfig, run_reconstruction

    if args.apply:
        return _apply(args)
    overrides = flag_overrides(args.overrides, {"model": args.model, "output_dir": args.output_dir})
    cfg = load_config(ReconstructionConfig, args.config, overrides)
    results = run_reconstruction(cfg, resume=args.resume)
    print(f"{'input set':<12} {'model r':>8} {'linear r':>9} {'model MSE':>10} {'linear MSE':>11}")
    for name, res in results["sets"].items():
        if "model" in res:
            m, b = res["model"]["mean"], res["linear_baseline"]["mean"]
            print(f"{name:<12} {m['r']:8.3f} {b['r']:9.3f} {m['mse']:10.4f} {b['mse']:11.4f}")
    logging.getLogger("cardiofm").info("outputs in %s (model/, results.json, figures/)", cfg.output_dir)
    return 0
