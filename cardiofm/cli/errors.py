"""User errors of the command line: which exceptions mean "bad input" (one line on stderr, exit code 2) and how that
line reads. Everything else is a bug and keeps its traceback. Cheap to import (no numpy, torch or yaml)."""
from __future__ import annotations

USER_ERROR_EXIT = 2


class UserError(Exception):
    """Input the user can fix (a missing file, a bad value); the message names the input and the reason."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The project's user-error exception types (imported when an error happens, not at start-up)."""
    from huggingface_hub.errors import EntryNotFoundError

    from ..config import ConfigError
    from ..data.record import RecordError

    # ValueError: the project raises it for bad user input (unknown preset, label, channel); OSError: missing or
    # unreadable files, Hub ids that do not exist; EntryNotFoundError: a file missing from a Hub repo
    return (UserError, ConfigError, RecordError, OSError, ValueError, KeyError, EntryNotFoundError)


def is_user_error(err: BaseException) -> bool:
    """True when `err` is bad input rather than a bug."""
    try:
        return isinstance(err, user_error_types())
    except ImportError:  # a broken install: report the original error as a bug
        return False


def one_line(err: BaseException) -> str:
    """The error as one line: the input it names and the reason (first line of a multi-line message)."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[0] + (" (...; rerun with --debug for the full message)" if len(lines) > 1 else "")
