"""Progress of long loops that are not Lightning training (simulation, evaluation): a live bar on a terminal,
plain periodic lines when the output is a file (nohup, SLURM), where a bar shows nothing until it ends."""

from __future__ import annotations

import logging
import sys
import time

progress_log = logging.getLogger("adapt.progress")
"""Where progress lines go when the output is not a terminal (training's too); the CLI shows it on stderr."""


def progress_bar(unit: str, enabled: bool = True, *, every_s: float = 60.0):
    """A rich bar (description, bar, done/total `unit`, elapsed time) on a terminal, `ProgressLog` otherwise;
    a no-op when not `enabled`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if enabled and not sys.stderr.isatty():
        return ProgressLog(unit, every_s)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit))
    return Progress(*columns, TimeElapsedColumn(), disable=not enabled)


def track(items: list, description: str, enabled: bool = True):
    """`items`, counted by `progress_bar` as they are consumed (a bar on a terminal, lines in a file); `items`
    themselves when not `enabled`. For loops over files or episodes."""
    return _tracked(items, description) if enabled else items


def _tracked(items: list, description: str):
    with progress_bar("done") as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


class ProgressLog:
    """The part of rich's `Progress` the loops use (`add_task`, `advance`, `update`, `print`), written as one log
    line per task at most every `every_s` seconds and when it completes: done/total, rate and time left."""

    def __init__(self, unit: str, every_s: float = 60.0):
        self.unit, self.every_s, self._tasks = unit, every_s, {}

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def add_task(self, description: str, total: float) -> int:
        now = time.monotonic()
        self._tasks[len(self._tasks)] = {
            "description": description,
            "total": total,
            "done": 0,
            "start": now,
            "shown": now,
        }
        return len(self._tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def print(self, message: str) -> None:
        progress_log.info("%s", message)

    def update(
        self, task: int, *, advance: float = 0, completed: float | None = None, description=None, visible=True
    ) -> None:
        """As rich's; a task hidden as it completes (`visible=False`) is not reported."""
        state = self._tasks[task]
        total = state["total"]  # None: not known in advance (a count of episodes of unknown length)
        finished_before = total is not None and state["done"] >= total
        state["done"] = completed if completed is not None else state["done"] + advance
        state["description"] = description or state["description"]
        now = time.monotonic()
        finished = total is not None and state["done"] >= total and not finished_before
        if (finished and visible) or now - state["shown"] >= self.every_s:
            state["shown"] = now
            rate = state["done"] / max(now - state["start"], 1e-9)
            if total is None:
                description, done = state["description"], state["done"]
                progress_log.info("%s: %d %s, %.1f %s/s", description, done, self.unit, rate, self.unit)
                return
            left = max(total - state["done"], 0) / rate / 60 if rate > 0 else float("nan")
            progress_log.info(
                "%s: %d/%d %s, %.1f %s/s, %.1f min left",
                state["description"], state["done"], total, self.unit, rate, self.unit, left,
            )  # fmt: skip
