"""Frozen-encoder outputs kept on disk, so adaptation runs DreamZero's VAE, umT5 and CLIP once per input.

The encoders never train, so what they make of a window's frames, its first frame or its prompt is a pure
function of those inputs and the encoder weights. Entries are therefore addressed by content: the sha1 of
the input bytes (the uint8 mosaic, the prompt's UTF-8), the output kind and the base checkpoint's
fingerprint (which covers the encoders it holds). Changed data or another base gives other keys, never a
stale entry; nothing has to be invalidated by hand. Each entry is one safetensors file, written atomically
(temp file + rename: concurrent DDP processes writing the same entry are harmless), under
`$ADAPT_CACHE/encoders/<fingerprint>/<kind>/` (default `~/.cache/adapt`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import Tensor

from adapt.atomic import atomic_write_bytes


def cache_root() -> Path:
    return Path(os.environ.get("ADAPT_CACHE", Path.home() / ".cache" / "adapt")) / "encoders"


class EncoderCache:
    """Per-sample outputs of the frozen encoders of one base checkpoint."""

    def __init__(self, fingerprint: str):
        self.folder = cache_root() / fingerprint[:32]
        self.hits = self.misses = 0

    def get(self, kind: str, inputs: Sequence[Tensor | str], encode: Callable[[list[int]], Tensor]) -> Tensor:
        """One output per input, stacked: cached ones read back, the others computed together by
        `encode(indices)` (which returns the outputs of those inputs, batched) and stored."""
        paths = [self.folder / kind / f"{_digest(x)}.safetensors" for x in inputs]
        outputs: list[Tensor | None] = [load_file(p)["value"] if p.is_file() else None for p in paths]
        missing = [i for i, out in enumerate(outputs) if out is None]
        self.hits += len(inputs) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = encode(missing)
            for j, i in enumerate(missing):
                outputs[i] = fresh[j].detach().cpu().contiguous()
                _write(paths[i], outputs[i])
        return torch.stack(outputs)


def _digest(value: Tensor | str) -> str:
    data = value.encode() if isinstance(value, str) else value.detach().cpu().contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()


def _write(path: Path, value: Tensor) -> None:
    atomic_write_bytes(path, save({"value": value}))
