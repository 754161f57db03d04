"""`cardiofm` command line: a lazy subcommand table, one error handler, verbosity and third-party noise settings.

Start-up imports only argparse and the subcommand modules, whose imports live inside `run()`, so `cardiofm --help`
and `cardiofm <command> --help` never load torch. User errors print one line naming the input and the reason and
exit with 2 (`--debug` shows the traceback); a subcommand whose module fails to import stays listed and says why.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from .errors import USER_ERROR_EXIT, UserError, is_user_error, one_line

# subcommand -> module defining `HELP`, `add_arguments(parser)` and `run(args) -> int | None`
SUBCOMMANDS: dict[str, str] = {
    "prepare": "cardiofm.cli.prepare",
    "synth": "cardiofm.cli.synth",
    "train-tokenizer": "cardiofm.cli.train_tokenizer",
    "pretrain": "cardiofm.cli.pretrain",
    "finetune": "cardiofm.cli.finetune",
    "evaluate": "cardiofm.cli.evaluate",
    "embed": "cardiofm.cli.embed",
    "predict": "cardiofm.cli.predict",
    "reconstruct": "cardiofm.cli.reconstruct",
    "qa": "cardiofm.cli.qa",
    "augment-study": "cardiofm.cli.augment_study",
}
# loggers of libraries that announce routine facts at INFO/WARNING (accelerator detection, per-file checkpoint lists)
NOISY_LOGGERS = ("DeepSpeed", "deepspeed", "accelerate", "torch.distributed", "transformers", "datasets", "timm")


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _unavailable(name: str, err: BaseException):
    """run() of a subcommand whose module failed to import: report why, as a user-facing error."""
    def run(args):
        raise UserError(f"subcommand {name!r} is unavailable in this installation: {type(err).__name__}: {err}")
    return run


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per subcommand (a broken one is listed as unavailable)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cardiofm",
        description="Pretrain and finetune a multimodal foundation model for ECG, PPG and report text.",
    )
    parser.add_argument("--version", action="version", version=f"cardiofm {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="debug logging, third-party warnings and progress bars included")
    parser.add_argument("--log-level", default=None, help="explicit logging level (DEBUG, INFO, WARNING)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # noqa: BLE001 - any import failure is reported by the subcommand itself
            text = f"(unavailable: {type(err).__name__}: {err})".replace("%", "%%")
            p = sub.add_parser(name, help=text, description=text)
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            p.set_defaults(_run=_unavailable(name, err))
            continue
        text = module.HELP.replace("%", "%%")  # argparse formats help strings with %
        p = sub.add_parser(name, help=text, description=text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def configure_output(args: argparse.Namespace) -> None:
    """Logging level from -q/-v/--log-level; third-party notices and warnings off unless -v."""
    level = (args.log_level or ("DEBUG" if args.verbose else "WARNING" if args.quiet else "INFO")).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)
    if args.verbose:
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the fork warning of HF tokenizers
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        noisy.setLevel(logging.ERROR)  # child loggers (accelerate.utils...) inherit it
        if _errors_only not in noisy.filters:
            noisy.addFilter(_errors_only)  # DeepSpeed resets its own logger's level when it is imported
    for module in ("deepspeed", "accelerate", "transformers", "torch", "timm", "datasets", "huggingface_hub"):
        warnings.filterwarnings("ignore", module=module + r"(\.|$)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cardiofm` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args)
    if not getattr(args, "_run", None):
        parser.print_help()
        return USER_ERROR_EXIT
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("cardiofm").warning("interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - one handler for the whole CLI
        if args.debug or not is_user_error(err):
            raise
        print(f"cardiofm {args.command}: error: {one_line(err)}", file=sys.stderr)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
