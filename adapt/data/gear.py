"""The GEAR layout DreamZero and GR00T train from: a LeRobot v2.1 dataset (one parquet file and one mp4 per
episode and camera) whose `meta/` adds `modality.json` (named sub-keys of the packed state and action
columns, with index ranges), `embodiment.json`, `stats.json` (mean, std, min, max, q01, q99 per column)
and `relative_stats_dreamzero.json` (statistics of action chunks minus the state they start from).

Everything comes from the embodiment spec: proprio blocks are the state sub-keys, the action's arm part
(named after the action kind) and gripper are the action sub-keys, cameras are the video keys, and the
relative keys are the action sub-keys a state block of the same name has (DreamZero's rule; the layout is
`adapt.data.gear_layout`, which the reader also uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adapt.atomic import atomic_directory
from adapt.data.gear_layout import TASK_KEY, action_layout, modality, relative_keys, state_layout
from adapt.data.reader import LeRobotDataset
from adapt.data.writer import ACTION_KEY, STATE_KEY, VideoStream, camera_key, dataset_features, frame_columns
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError

CODEBASE_VERSION = "v2.1"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
RELATIVE_HORIZON = 24
"""Action chunk length DreamZero's relative statistics are computed over (its converter's default)."""


def statistics(values: np.ndarray) -> dict[str, list[float]]:
    values = values.astype(np.float64)
    return {
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "q01": np.quantile(values, 0.01, axis=0).tolist(),
        "q99": np.quantile(values, 0.99, axis=0).tolist(),
    }


def export_gear(dataset: LeRobotDataset, out: Path, embodiment_tag: str | None = None) -> Path:
    """Write `dataset` (any layout this package reads) as a GEAR dataset at `out`; returns `out`."""
    spec = dataset.spec
    if spec.video_only or not (dataset.has_state and dataset.has_action):
        raise AdaptError(f"{dataset.root}: GEAR datasets carry state and actions; this one has none")
    tasks = {task: i for i, task in enumerate(dataset.tasks)}
    states, actions, lines, per_episode = [], [], [], []
    offset = 0
    with atomic_directory(Path(out)) as tmp:
        for index, episode in enumerate(dataset.episodes):  # renumbered: skipped source episodes leave no gap
            n, chunk = episode.length, index // 1000
            task_index = np.array([tasks[episode.task_at(frame)] for frame in range(n)])
            table = frame_columns(n, index, offset, task_index, dataset.fps, episode.state, episode.action)
            table[TASK_KEY] = table["task_index"]
            path = tmp / DATA_PATH.format(episode_chunk=chunk, episode_index=index)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(table), path)
            for camera in spec.cameras:
                frames = dataset.frames(episode, camera.name, np.arange(n), (camera.height, camera.width))
                video = VideoStream(
                    tmp
                    / VIDEO_PATH.format(episode_chunk=chunk, video_key=camera_key(camera.name), episode_index=index),
                    dataset.fps,
                    crf=18,
                    gop=10,
                )
                video.write(frames)
                video.close()
            states.append(episode.state)
            actions.append(episode.action)
            lines.append({"episode_index": index, "tasks": episode.tasks, "length": n})
            per_episode.append(
                {
                    "episode_index": index,
                    "stats": {
                        key: {**statistics(v), "count": [n]}
                        for key, v in ((STATE_KEY, episode.state), (ACTION_KEY, episode.action))
                    },
                }
            )
            offset += n
        meta = tmp / "meta"
        _jsonl(meta / "episodes.jsonl", lines)
        _jsonl(meta / "tasks.jsonl", [{"task_index": i, "task": t} for t, i in tasks.items()])
        _jsonl(meta / "episodes_stats.jsonl", per_episode)
        (meta / "info.json").write_text(json.dumps(_info(dataset, spec, offset, len(tasks)), indent=2))
        (meta / "modality.json").write_text(json.dumps(modality(spec), indent=2))
        (meta / "embodiment.json").write_text(json.dumps({"embodiment_tag": embodiment_tag or spec.name}))
        state, action = np.concatenate(states), np.concatenate(actions)
        (meta / "stats.json").write_text(
            json.dumps({STATE_KEY: statistics(state), ACTION_KEY: statistics(action)}, indent=2)
        )
        (meta / "relative_stats_dreamzero.json").write_text(
            json.dumps(_relative_statistics(spec, dataset.episodes), indent=2)
        )
    return Path(out)


def _relative_statistics(spec: EmbodimentSpec, episodes) -> dict:
    """Per relative key: statistics of every action in each chunk of `RELATIVE_HORIZON` minus the state at
    the chunk's start (DreamZero's definition)."""
    states, actions = state_layout(spec), action_layout(spec)
    out = {}
    for key in relative_keys(spec):
        (s0, s1), (a0, a1) = states[key], actions[key]
        chunks = [
            e.action[i : i + RELATIVE_HORIZON, a0:a1] - e.state[i, s0:s1]
            for e in episodes
            for i in range(max(e.length - RELATIVE_HORIZON, 0))
        ]
        if chunks:
            out[key] = statistics(np.concatenate(chunks))
    return out


def _info(dataset: LeRobotDataset, spec: EmbodimentSpec, frames: int, tasks: int) -> dict:
    features = dataset_features(spec, dataset.fps)
    features[TASK_KEY] = {"dtype": "int64", "shape": [1], "names": None}
    episodes = len(dataset.episodes)
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": spec.name,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "total_videos": episodes * len(spec.cameras),
        "total_chunks": (episodes - 1) // 1000 + 1,
        "chunks_size": 1000,
        "fps": dataset.fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
