"""Cut the frames of one task out of labelled play: the episodes a policy without language trains on.

Hindsight-labelled play names what the arm does at each frame ("lift the red cube" during the try that picks
it up, "reach ..." elsewhere). A policy that takes no instruction (ACT, Diffusion Policy) cannot be told which
part of play is the task; a user would cut those frames out and train on them alone. `select_task` does that
cut: every run of consecutive frames whose label contains the text becomes an episode of a new dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adapt.data.episode import Episode
from adapt.data.reader import LeRobotDataset
from adapt.data.writer import DatasetWriter
from adapt.errors import AdaptError
from adapt.progress import track


def task_runs(labels: list[str], match: str, min_frames: int) -> list[tuple[int, int]]:
    """(start, stop) of every run of consecutive frames whose label contains `match` (case-insensitive), at
    least `min_frames` long."""
    needle = match.casefold()
    hits = np.array([needle in label.casefold() for label in labels] + [False])
    runs, start = [], None
    for index, hit in enumerate(hits):
        if hit and start is None:
            start = index
        elif not hit and start is not None:
            if index - start >= min_frames:
                runs.append((start, index))
            start = None
    return runs


def select_task(
    dataset: LeRobotDataset, match: str, out: Path, *, min_frames: int = 20, progress: bool = False
) -> tuple[Path, int]:
    """Write every run of frames of `dataset` labelled with `match` (at least `min_frames` long) as an episode
    of a new dataset at `out` (same spec, fps and recorded camera sizes; state and actions kept). Returns (`out`, the
    number of episodes written); raises, writing nothing, when no run qualifies."""
    if not match.strip():
        raise AdaptError("--task: empty text; give part of the label to keep, e.g. 'lift'")
    if min_frames < 2:
        raise AdaptError(f"--min-frames {min_frames}: an episode needs at least 2 frames")
    spec = dataset.spec
    cuts = []
    for episode in dataset.episodes:
        labels = [episode.task_at(frame) for frame in range(episode.length)]
        cuts += [(episode, start, stop) for start, stop in task_runs(labels, match, min_frames)]
    if not cuts:
        raise AdaptError(
            f"{dataset.root}: no run of {min_frames}+ frames is labelled with {match!r} "
            f"(its tasks: {', '.join(dataset.tasks[:8])})"
        )
    sizes = {c.name: dataset.recorded_size(c.name) for c in spec.cameras}
    with DatasetWriter(out, spec, dataset.fps) as writer:
        for episode, start, stop in track(cuts, "cutting episodes", progress):
            indices = np.arange(start, stop)
            frames = {name: dataset.frames(episode, name, indices, size) for name, size in sizes.items()}
            writer.add(
                Episode(
                    task=episode.task_at(start),
                    frames=frames,
                    state=None if episode.state is None else episode.state[start:stop],
                    action=None if episode.action is None else episode.action[start:stop],
                    frame_tasks=[episode.task_at(frame) for frame in indices],
                )
            )
    return out, len(cuts)
