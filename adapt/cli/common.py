"""What every `adapt` command shares: the app, the consoles, and how bad input is reported."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from adapt.errors import AdaptError

app = typer.Typer(
    help="Adapt a World Action Model to a new robot: specs, data, LoRA fine-tuning, policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def user_errors(command: F) -> F:
    """Print AdaptError without a traceback and exit with status 2 (bad input)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AdaptError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
