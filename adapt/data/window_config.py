"""The shape of a training window, in a module of its own: model configs name it without importing the
data loading code (decord, torch datasets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowConfig:
    """Shape of a training window."""

    context: int = 2
    """Frames up to and including t."""
    future: int = 4
    """Frames after t that the model predicts."""
    stride: int = 4
    """Control steps between consecutive frames of a window."""
    height: int = 64
    width: int = 64
    """Resolution the frames are decoded to (the model's, not the dataset's)."""
    idle_threshold: float | None = None
    """Drop windows whose state moves less than this (max abs change over the action chunk)."""
