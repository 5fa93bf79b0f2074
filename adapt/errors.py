"""User-facing errors: every bad input ends in one of these, naming the file, the field and the fix.

The CLI prints them without a traceback and exits with status 2; Python callers can catch `AdaptError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class AdaptError(Exception):
    """Bad input from the user (a file, a field, an argument). Its message is the whole explanation."""


class Interrupted(AdaptError):
    """A run stopped by a signal (Ctrl-C, SIGTERM); the CLI exits with 128 + its number, as shells expect."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.status = 128 + signum


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where (`field`, dotted with list indices) and what to change."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidFileError(AdaptError):
    """A file with one or more problems, all reported at once so the user can fix them in one pass."""

    def __init__(self, path: Path | str | None, problems: Iterable[Problem]):
        self.path = Path(path) if path is not None else None
        self.problems = list(problems)
        where = str(self.path) if self.path is not None else "<in memory>"
        count = len(self.problems)
        lines = [f"{where}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' when a close match exists, else ''; for unknown names in error messages."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
