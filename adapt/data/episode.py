"""An episode in memory: what writers take and simulators produce."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episode:
    """One recorded episode; every array is time-aligned at the dataset's fps.

    `frames` maps a spec camera name to uint8 RGB frames (T, H, W, 3). `state` (T, state_dim) and
    `action` (T, action_dim) are float32 and absent (None) for video-only demos. `frame_tasks` labels
    each frame with what the robot does there (T strings, as LeRobot's per-frame `task_index` does: "lift the
    red cube" while play picks a cube up); None means `task` throughout.
    """

    task: str
    frames: dict[str, np.ndarray]
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    frame_tasks: list[str] | None = None

    @property
    def tasks(self) -> list[str]:
        """Every task text of the episode, `task` first, then in order of first appearance."""
        return list(dict.fromkeys([self.task, *(self.frame_tasks or [])]))

    @property
    def length(self) -> int:
        return len(next(iter(self.frames.values())))
