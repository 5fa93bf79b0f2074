"""Training windows: what the World Action Model sees for one sampled time t of one episode.

A window holds `context` frames up to t and `future` frames after it (every `stride` steps), the state
at t, the action chunk starting at t, the task text at t (frames may carry their own: hindsight labels),
and masks saying which parts exist: a video-only window has no state and no action; near an episode's
end, future frames and actions are padded (repeating the last one) and masked out. Times are in the
spec's control steps; when the dataset was recorded at another fps, indices are resampled to the nearest
recorded frame.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import numpy as np
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from adapt.data.batch import Window, make_window
from adapt.data.codec import ActionCodec
from adapt.data.reader import EpisodeData, LeRobotDataset
from adapt.data.stats import NormStats
from adapt.data.window_config import WindowConfig
from adapt.errors import AdaptError
from adapt.processes import check_spawnable


class WindowDataset(Dataset):
    """Windows over every usable time step of every episode; items are dicts of tensors and a task string."""

    def __init__(
        self,
        dataset: LeRobotDataset,
        config: WindowConfig = WindowConfig(),
        stats: NormStats | None = None,
        *,
        skip_bad: bool = False,
    ):
        self.dataset, self.config, self.spec = dataset, config, dataset.spec
        self.codec = ActionCodec(self.spec, stats) if self.spec.action is not None else None
        self.chunk = self.spec.action.chunk if self.spec.action else 1
        self.ratio = (
            dataset.fps / min(c.fps for c in self.spec.cameras)
            if self.spec.video_only
            else dataset.fps / self.spec.action.control_hz
        )
        self.index = []
        for e, episode in enumerate(dataset.episodes):
            if self._steps(episode) <= config.stride:
                problem = (
                    f"{dataset.root}: episode {episode.index} has {self._steps(episode)} control steps, "
                    f"shorter than a window (needs {config.stride + 1}); lower the stride or drop it"
                )
                if not skip_bad:
                    raise AdaptError(problem)
                dataset.skipped.append((episode.index, problem))
                continue
            self.index += [(e, t) for t in self._times(episode)]
        if not self.index:
            raise AdaptError(f"{dataset.root}: no window left to train on (idle filter too strict?)")

    def __len__(self) -> int:
        return len(self.index)

    def _steps(self, episode: EpisodeData) -> int:
        return int(episode.length / self.ratio)

    def _times(self, episode: EpisodeData) -> list[int]:
        """Window start times: at least one future frame must exist; optionally only where the robot moves."""
        last = self._steps(episode) - self.config.stride
        times = list(range(max(last, 0)))
        if self.config.idle_threshold is not None and episode.state is not None:
            times = [t for t in times if self._motion(episode, t) >= self.config.idle_threshold]
        return times

    def _motion(self, episode: EpisodeData, t: int) -> float:
        rows = self._rows(episode, np.arange(t, t + self.chunk))
        return float(np.abs(episode.state[rows] - episode.state[rows[0]]).max())

    def _rows(self, episode: EpisodeData, steps: np.ndarray) -> np.ndarray:
        """Recorded frame indices for control steps, clamped into the episode."""
        return np.clip(np.round(steps * self.ratio).astype(int), 0, episode.length - 1)

    def _frame_times(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Control steps of the context frames (up to t) and of the future frames of the window at t."""
        cfg = self.config
        return t - cfg.stride * np.arange(cfg.context - 1, -1, -1), t + cfg.stride * np.arange(1, cfg.future + 1)

    def frame_rows(self, i: int) -> np.ndarray:
        """Recorded frame indices within its episode of window `i`'s frames (context, then future)."""
        e, t = self.index[i]
        return self._rows(self.dataset.episodes[e], np.concatenate(self._frame_times(t)))

    def __getitem__(self, i: int) -> Window:
        e, t = self.index[i]
        episode, cfg = self.dataset.episodes[e], self.config
        steps = self._steps(episode)
        context, future = self._frame_times(t)
        rows = self._rows(episode, np.concatenate([context, future]))
        frames = np.stack(
            [self.dataset.frames(episode, c.name, rows, (cfg.height, cfg.width)) for c in self.spec.cameras]
        )  # (cams, T, H, W, 3)
        state = action = None
        action_steps = t + np.arange(self.chunk)
        action_mask = np.zeros(self.chunk, bool)
        now = self._rows(episode, np.array([t]))[0]
        if episode.state is not None:
            raw_state = episode.state[now]
            state = self.codec.encode_state(raw_state)
        if episode.action is not None:
            action = self.codec.encode_actions(episode.action[self._rows(episode, action_steps)], raw_state)
            action_mask = action_steps < steps
        shapes = (self.spec.state_dim, self.chunk, self.spec.action_dim)
        return make_window(
            frames,
            context >= 0,
            future < steps,
            state,
            action,
            action_mask,
            episode.task_at(now),
            self.spec.name,
            shapes,
        )


def window_loader(
    windows: Dataset,
    batch_size: int = 16,
    workers: int = 2,
    shuffle: bool = True,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> DataLoader:
    """A DataLoader that keeps training fed: worker processes decode, batches are pinned when CUDA is up.

    With `weights` (one per window) an epoch draws as many windows as there are, each with probability in
    proportion to its weight, with replacement; otherwise every window once, shuffled or in order.
    Workers are spawned, not forked: decord (FFmpeg) state inherited through fork deadlocks the decoder.
    They ignore Ctrl-C (see `_start_worker`).
    """
    check_spawnable(workers)
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if weights is not None:
        sampler = WeightedRandomSampler(weights, len(windows), replacement=True, generator=generator)
    return DataLoader(
        windows,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        drop_last=False,
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        generator=generator,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_start_worker if workers > 0 else None,
    )


def _start_worker(worker_id: int) -> None:
    """Leave Ctrl-C to the training process, which stops at a step boundary and then shuts its workers down;
    seed the worker as Lightning would (a loader with its own `worker_init_fn` gets none of Lightning's).
    A terminal's Ctrl-C reaches the whole process group, and a worker that died of it first ended the run in
    "DataLoader worker exited unexpectedly" instead of the resume message. SIGTERM stays deadly: it is how
    the loader and Python's exit end workers that do not stop by themselves (ignored, a script hung on exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id)
