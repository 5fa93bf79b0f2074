"""Starting worker processes safely. Data loader workers and simulation workers are spawned, not forked
(a forked decoder or renderer inherits the parent's FFmpeg or GL state and deadlocks), and a spawned process
imports the main script again: what a script runs at its top level without a main guard would run again in
every worker.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from adapt.errors import AdaptError

MAIN_GUARD = re.compile(r"""__name__\s*==\s*["']__main__["']""")


def check_spawnable(workers: int) -> None:
    """Refuse worker processes that would hang. A spawned process imports the main script again, so a script whose
    calls are not under `if __name__ == "__main__":` starts them again in every worker: the worker dies and the
    parent waits for it forever. Notebooks, the REPL and `python -c` have no script to re-run; a script with the
    guard is fine."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if workers == 0 or not path or not str(path).endswith(".py") or Path(path).stem == "__main__":
        return  # multiprocessing never re-runs a `__main__.py` (`python -m package`, a folder, a zip)
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    if not MAIN_GUARD.search(source):
        raise AdaptError(
            f"{path}: worker processes (data loading, simulation) import this script again, and it has no"
            ' `if __name__ == "__main__":` guard, so each would start the work again and the run would hang. Put'
            " the script's calls under that guard, or pass workers=0"
        )
