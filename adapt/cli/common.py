"""What every `adapt` command shares: the app, the consoles, and how bad input is reported."""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from adapt.errors import AdaptError, Interrupted

app = typer.Typer(
    help="Adapt a World Action Model to a new robot: specs, data, LoRA fine-tuning, policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable)
DEBUG = {"on": False}
"""Set by `adapt --debug`: unexpected errors show their traceback instead of a one-line summary."""


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an unexpected error.")] = False,
) -> None:
    DEBUG["on"] = debug
    progress = logging.getLogger("adapt.progress")  # progress lines when the output is a file
    if not progress.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is when a record comes (a test runner swaps it per command)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def user_errors(command: F) -> F:
    """Errors end in one line, never a traceback: bad input (AdaptError) and operating-system errors
    (a path that is a file, a full disk, no permission) exit with status 2 naming what to fix; anything
    else exits with status 1 and writes its traceback to a report file (shown with `adapt --debug`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        for name, value in kwargs.items():  # click takes "inf" and "nan" as numbers; no option means them
            if isinstance(value, float) and not math.isfinite(value):
                _fail(f"--{name.replace('_', '-')} {value}: expected a finite number", 2)
        try:
            return command(*args, **kwargs)
        except Interrupted as error:
            _fail(str(error), error.status)
        except AdaptError as error:
            _fail(str(error), 2)
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            _fail(f"{error.strerror or error}{where}: check the path and its permissions", 2)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            if DEBUG["on"]:
                raise
            report = _write_report()
            _fail(f"unexpected {type(error).__name__}: {error} (full report: {report}; see it with `adapt --debug`)", 1)

    return wrapper  # type: ignore[return-value]


def output_path(value: Path | None) -> Path | None:
    """`--out` callback: an output path under a file is refused while the options are parsed, before
    anything is loaded (Click reports it as a bad --out value, exit status 2)."""
    from adapt.files import check_output_path

    if value is not None:
        try:
            check_output_path(value)
        except AdaptError as error:
            raise typer.BadParameter(str(error)) from None
    return value


def _fail(message: str, status: int):
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(status) from None


def _write_report() -> Path:
    """The current exception's traceback in a new file under the temp folder; returns its path."""
    fd, name = tempfile.mkstemp(prefix="adapt-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(traceback.format_exc())
    return Path(name)
