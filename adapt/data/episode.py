"""An episode in memory: what writers take and simulators produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episode:
    """One recorded episode; every array is time-aligned at the dataset's fps.

    `frames` maps a spec camera name to uint8 RGB frames (T, H, W, 3). `state` (T, state_dim) and
    `action` (T, action_dim) are float32 and absent (None) for video-only demos.
    """

    task: str
    frames: dict[str, np.ndarray]
    state: np.ndarray | None = None
    action: np.ndarray | None = None

    @property
    def length(self) -> int:
        return len(next(iter(self.frames.values())))
