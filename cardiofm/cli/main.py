"""`cardiofm` command line: thin subcommands that parse arguments, then call a recipe."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module defining `HELP`, `add_arguments(parser)` and `run(args) -> int | None`
SUBCOMMANDS: dict[str, str] = {
    "prepare": "cardiofm.cli.prepare",
    "synth": "cardiofm.cli.synth",
    "train-tokenizer": "cardiofm.cli.train_tokenizer",
    "pretrain": "cardiofm.cli.pretrain",
    "finetune": "cardiofm.cli.finetune",
    "evaluate": "cardiofm.cli.evaluate",
    "embed": "cardiofm.cli.embed",
    "reconstruct": "cardiofm.cli.reconstruct",
    "qa": "cardiofm.cli.qa",
    "augment-study": "cardiofm.cli.augment_study",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per available subcommand."""
    parser = argparse.ArgumentParser(
        prog="cardiofm",
        description="Pretrain and finetune a multimodal foundation model for ECG, PPG and report text.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("cardiofm"):
                continue  # subcommand not part of this build
            raise
        text = module.HELP.replace("%", "%%")  # argparse formats help strings with %
        p = sub.add_parser(name, help=text, description=text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cardiofm` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("cardiofm").warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
