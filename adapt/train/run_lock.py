"""One training run per run folder: a second `adapt finetune` or `adapt pretrain` into a folder that a run is
training into is refused at once, instead of both training to the end and leaving one run's adapter beside the
other's `last.ckpt` (which a later resume would continue).

The lock is an `flock` on `RUN/.adapt-run.lock`, which the operating system releases when the process ends however
it ends (SIGKILL and power loss included), so a killed run never leaves a folder locked. Only the first process
of a multi-process run (Lightning's rank 0 on node 0) takes it; the ranks it starts write to the same folder.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapt.errors import AdaptError

LOCK_FILE = ".adapt-run.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder `run_dir` (created if needed) for this process; refuse it if another process holds it."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AdaptError(
                f"{run_dir}: another run is training into this folder ({holder}); wait for it to end, stop it, or "
                "choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
