"""Atomic writes: a file appears whole or not at all, so an interrupted command never leaves a
half-written file that later loads as valid.

Temp files and folders are created private (0600/0700); before the rename they get the permissions
a plain write would have given them (0666/0777 less the umask), so checkpoints stay shareable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapt.errors import AdaptError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_shareable(path: Path) -> None:
    """Give `path` (and, for a folder, everything in it) the modes a plain write would have."""
    mask = _umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _make_shareable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_directory(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` in one rename, on error it is removed.

    A reader therefore sees the old folder, or the complete new one, never a half-written one.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise AdaptError(f"{path} already exists; choose another folder or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield tmp
        _make_shareable(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
