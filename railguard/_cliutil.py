"""What every ``railguard`` command shares: one-sentence failures on stderr, writing output,
loading a spec with its problems reported, and the error boundary that :func:`run_command`
puts around each command.

The boundary's contract, the same for every command:

- a :class:`~railguard.spec.errors.LoadError` prints each problem as one located line
  (``file:line:column: error: ...``) and exits 2;
- any other :class:`~railguard.spec.errors.RailguardError` (spec, verifier, runtime) and an
  ``OSError`` print one sentence and exit 2;
- a closed pipe on stdout (``railguard check | head``) stops quietly with exit 1;
- Ctrl-C prints ``interrupted`` and exits 130;
- any other exception is a bug in railguard: one sentence that says so and exit 2, no
  traceback, unless the user asked for one with ``railguard --debug COMMAND`` or
  ``RAILGUARD_DEBUG=1``, in which case the exception propagates with its traceback.

Nothing here imports a layer at module level, so command modules can use it and still build
their parsers cheaply.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from railguard.spec import LoadError, Spec

__all__ = [
    "DEBUG_ENV",
    "debug_requested",
    "fail",
    "load_or_report",
    "positive_number",
    "report_problems",
    "run_command",
    "sentence",
    "write",
]

#: The environment variable that, set to anything but ``""`` or ``0``, shows tracebacks.
DEBUG_ENV = "RAILGUARD_DEBUG"

#: Exit code of unusable input (and of a bug in railguard, which is said as such).
USAGE = 2
INTERRUPTED = 130

_Args = TypeVar("_Args")
_Number = TypeVar("_Number", int, float)


def sentence(text: str) -> str:
    """``text`` on one line: line breaks become spaces, so a message stays one sentence."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def fail(message: str) -> int:
    """Print ``railguard: error: <message>`` on stderr and return the exit code 2."""
    print(f"railguard: error: {sentence(message)}", file=sys.stderr)
    return USAGE


def report_problems(exc: LoadError) -> int:
    """Print each problem of a load error as one located line on stderr; return 2."""
    for problem in exc.problems:
        print(f"{problem.location}: error: {sentence(problem.message)}", file=sys.stderr)
    return USAGE


def write(output: str | None, text: str) -> None:
    """Write ``text`` to the file ``output``, or to stdout when it is ``None`` or ``-``."""
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def positive_number(kind: Callable[[str], _Number], what: str) -> Callable[[str], _Number]:
    """An argparse ``type`` that reads a number with ``kind`` (``int``, ``float``) and accepts it
    only when positive; anything else is a usage error naming ``what`` was expected (``"a
    positive integer"``)."""

    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not {what}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"`{text}` is not {what}")
        return value

    return parse


def load_or_report(path: str) -> Spec | None:
    """Load a spec, or print its problems (one line each) to stderr and return None."""
    from railguard.spec import LoadError, load

    try:
        return load(path)
    except LoadError as exc:
        report_problems(exc)
        return None


def debug_requested(flag: bool = False) -> bool:
    """Whether tracebacks were asked for: ``--debug`` or the ``RAILGUARD_DEBUG`` variable."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"cannot use `{where}`: {reason}"


def run_command(command: Callable[[_Args], int], args: _Args, *, debug: bool = False) -> int:
    """Run one command's handler inside the error boundary (see the module's docstring) and
    return its exit code."""
    from railguard.spec.errors import LoadError, RailguardError

    try:
        return command(args)
    except LoadError as exc:
        return report_problems(exc)
    except BrokenPipeError:
        # The reader went away (`railguard check ... | head`): stop quietly, and keep the
        # interpreter from failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except RailguardError as exc:
        return fail(str(exc) or type(exc).__name__)
    except OSError as exc:
        return fail(_os_error(exc))
    except KeyboardInterrupt:
        print("railguard: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if debug_requested(debug):
            raise
        first = (str(exc).splitlines() or [""])[0].strip()
        what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return fail(
            f"internal error ({what}); this is a bug in railguard: please report it with the "
            f"traceback that `railguard --debug` (or {DEBUG_ENV}=1) shows"
        )
