"""The progress bar of long loops that are not Lightning training (simulation, evaluation)."""

from __future__ import annotations


def progress_bar(unit: str, enabled: bool = True):
    """A rich bar: description, bar, done/total `unit`, elapsed time; a no-op when not `enabled`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit))
    return Progress(*columns, TimeElapsedColumn(), disable=not enabled)
