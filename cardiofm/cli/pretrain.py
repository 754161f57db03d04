"""`cardiofm pretrain`: YAML config + key=value overrides -> the pretraining recipe (any launcher)."""
from __future__ import annotations

import argparse

HELP = "pretrain CardioFM (accelerate/DeepSpeed aware; tiny preset on synthetic data without --config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --output-dir, --resume and key=value overrides."""
    parser.add_argument("--config", default=None, help="YAML config: a path or a packaged name (pretrain_tiny, pretrain_real, ...); default: tiny preset, embedded synthetic data")
    parser.add_argument("--output-dir", default=None, help="run directory (overrides output_dir in the config)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=100 train.optim.lr=3e-4")


def run(args: argparse.Namespace) -> int:
    """Parse the config, run the recipe, and leave distributed workers cleanly."""
    import logging

    from ..config import flag_overrides, load_config
    from ..engine.distributed import finish_process
    from ..pretrain.config import PretrainConfig
    from ..pretrain.recipe import run as run_recipe

    overrides = flag_overrides(args.overrides, {"output_dir": args.output_dir})
    cfg = load_config(PretrainConfig, args.config, overrides)
    for noisy in ("accelerate", "deepspeed", "DeepSpeed", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # keep per-checkpoint file listings out of the log
    from ..engine import NonFiniteLossError

    try:
        rc = run_recipe(cfg, resume=args.resume)
    except NonFiniteLossError as err:
        logging.getLogger("cardiofm.pretrain").error("%s", err)
        rc = 1
    finish_process(rc)  # multi-process: destroy the group and os._exit (avoids a gloo abort at exit)
    return rc
