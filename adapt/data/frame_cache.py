"""Decoded frames at the model's resolution, kept on disk so that training decodes each video once.

Random-access decoding of mp4 windows costs a small model more CPU than its own training step (a
worker at ~110 % CPU beside a training process at ~70 % on two cores). A video file is therefore
decoded once, front to back, resized to the model's (H, W) and stored as an uncompressed uint8 `.npy`
file; a window then reads its frames by index from a memory map, with no decoding at all.

An entry's key is the video's resolved path, byte size and modification time, and the resolution: a
re-recorded or edited dataset, or another model resolution, gets a new entry, never stale frames.
Entries are written atomically (temp file + rename), so a killed run leaves no half entry behind.
The cache lives in `$ADAPT_CACHE/frames` (default `~/.cache/adapt/frames`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

CHUNK = 256
"""Frames decoded and resized per call while an entry is built (bounded memory for long videos)."""


def cache_dir() -> Path:
    return Path(os.environ.get("ADAPT_CACHE", Path.home() / ".cache" / "adapt")) / "frames"


def entry_path(video: Path, size: tuple[int, int]) -> Path:
    """Where the frames of `video` at `size` (H, W) are cached."""
    stat = video.stat()
    key = f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size[0]}x{size[1]}"
    return cache_dir() / f"{video.stem}-{size[0]}x{size[1]}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"


def cached_frames(video: Path, size: tuple[int, int], open_reader) -> np.ndarray:
    """All frames of `video` as a read-only uint8 memory map (n, H, W, 3); on first use the entry is built
    from `open_reader()` (a reader from `adapt.data.video.open_video`)."""
    path = entry_path(video, size)
    if not path.is_file():
        _build(path, open_reader(), size)
    return np.load(path, mmap_mode="r")


def _build(path: Path, reader, size: tuple[int, int]) -> None:
    from adapt.data.resize import resize_frames

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        total = len(reader)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total, *size, 3))
        for start in range(0, total, CHUNK):
            indices = list(range(start, min(start + CHUNK, total)))
            out[indices[0] : indices[-1] + 1] = resize_frames(reader.get_batch(indices).asnumpy(), size)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
