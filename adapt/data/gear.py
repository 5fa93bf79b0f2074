"""The GEAR layout DreamZero and GR00T train from: a LeRobot v2.1 dataset (one parquet file and one mp4 per
episode and camera) whose `meta/` adds `modality.json` (named sub-keys of the packed state and action
columns, with index ranges), `embodiment.json`, `stats.json` (mean, std, min, max, q01, q99 per column)
and `relative_stats_dreamzero.json` (statistics of action chunks minus the state they start from).

Everything comes from the embodiment spec: proprio blocks are the state sub-keys, the action's arm part
(named after the action kind) and gripper are the action sub-keys, cameras are the video keys, and the
relative keys are the action sub-keys a state block of the same name has (DreamZero's rule). Reading a
GEAR dataset maps its sub-keys onto the spec's parts by name, in whatever order the dataset packs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adapt.atomic import atomic_directory
from adapt.data.writer import ACTION_KEY, STATE_KEY, VideoStream, camera_key, dataset_features, frame_columns
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.files import read_json_object

CODEBASE_VERSION = "v2.1"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
TASK_KEY = "annotation.task"
if TYPE_CHECKING:
    from adapt.data.reader import LeRobotDataset  # the reader imports this module to map GEAR sub-keys
RELATIVE_HORIZON = 24
"""Action chunk length DreamZero's relative statistics are computed over (its converter's default)."""


def state_layout(spec: EmbodimentSpec) -> dict[str, tuple[int, int]]:
    """State sub-key -> [start, end) in the state vector: the spec's proprio blocks."""
    layout, start = {}, 0
    for block in spec.proprio:
        layout[block.name] = (start, start + block.dim)
        start += block.dim
    return layout


def action_layout(spec: EmbodimentSpec) -> dict[str, tuple[int, int]]:
    """Action sub-key -> [start, end): the arm part named after the action kind, then the gripper."""
    arm = spec.action_dim - (spec.gripper.dim if spec.gripper else 0)
    layout = {spec.action.kind: (0, arm)}
    if spec.gripper:
        layout["gripper"] = (arm, spec.action_dim)
    return layout


def modality(spec: EmbodimentSpec) -> dict:
    def entries(layout: dict, key: str) -> dict:
        return {
            name: {
                "original_key": key,
                "start": a,
                "end": b,
                "rotation_type": None,
                "absolute": True,
                "dtype": "float32",
            }
            for name, (a, b) in layout.items()
        }

    return {
        "state": entries(state_layout(spec), STATE_KEY),
        "action": entries(action_layout(spec), ACTION_KEY),
        "video": {c.name: {"original_key": camera_key(c.name)} for c in spec.cameras},
        "annotation": {"task": {"original_key": TASK_KEY}},
    }


def relative_keys(spec: EmbodimentSpec) -> list[str]:
    """Action sub-keys with a state block of the same name and size (DreamZero subtracts one from the other)."""
    states, actions = state_layout(spec), action_layout(spec)
    return [k for k, (a, b) in actions.items() if k in states and states[k][1] - states[k][0] == b - a]


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


def read_modality(root: Path, spec: EmbodimentSpec) -> dict[str, np.ndarray]:
    """Where each of the spec's state and action values sits in a GEAR dataset's packed columns, from its
    `meta/modality.json`: sub-keys are matched to the spec's parts by name (in any order), and each must
    have the part's size. Returns, per group, the column indices in the spec's order; an unknown or
    missing sub-key, a range of the wrong size or outside the column, or another column is named."""
    path = Path(root) / "meta" / "modality.json"
    raw = read_json_object(path, "GEAR modality description")
    indices = {}
    for group, layout, column, width in (
        ("state", state_layout(spec), STATE_KEY, spec.state_dim),
        ("action", action_layout(spec), ACTION_KEY, spec.action_dim),
    ):
        entries = raw.get(group, {})
        if not isinstance(entries, dict):
            raise AdaptError(f"{path}: '{group}' must map sub-key names to index ranges")
        parts = ", ".join(f"{k} ({b - a})" for k, (a, b) in layout.items())
        unknown = sorted(set(entries) - set(layout))
        missing = sorted(set(layout) - set(entries))
        if unknown or missing:
            problems = [f"{unknown} are not among them"] * bool(unknown) + [f"{missing} are missing"] * bool(missing)
            raise AdaptError(f"{path}: spec '{spec.name}' has {group} parts {parts}; {' and '.join(problems)}")
        order = []
        for name, (a, b) in layout.items():
            entry = entries[name]
            try:
                start, end = int(entry["start"]), int(entry["end"])
                key = entry.get("original_key", column)
            except (KeyError, TypeError, ValueError):
                raise AdaptError(f"{path}: {group}.{name} needs integer 'start' and 'end'") from None
            if key != column or end - start != b - a or start < 0 or end > width:
                raise AdaptError(
                    f"{path}: {group}.{name} is {key}[{start}:{end}], but spec '{spec.name}' needs {b - a} "
                    f"values of {column} (of {width}) for it"
                )
            order.extend(range(start, end))
        if sorted(order) != list(range(width)):
            raise AdaptError(f"{path}: the {group} sub-keys overlap; each value of {column} must belong to one")
        indices[group] = np.asarray(order)
    return indices


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
