"""What is in a dataset, whether it fits a spec, and a contact sheet of its frames to look at.

Without a spec, the dataset is read as video-only with every camera it has, so any LeRobot dataset
can be inspected before anyone writes a spec for it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adapt.data.reader import FeatureMap, LeRobotDataset
from adapt.embodiment import EmbodimentSpec, spec_from_dict
from adapt.errors import AdaptError

IMAGE_PREFIX = "observation.images."


@dataclass
class DatasetReport:
    """A dataset's contents as `adapt data inspect` prints them."""

    root: Path
    version: str
    fps: float
    episodes: int
    frames: int
    cameras: dict[str, list[int]]
    """Dataset video key -> [height, width]."""
    state_dim: int | None
    action_dim: int | None
    tasks: list[str]
    spec: str | None = None
    problems: list[str] = field(default_factory=list)
    """Episodes that do not fit the spec (skipped episodes and why)."""

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60.0


def inspect_dataset(
    root: Path, spec: EmbodimentSpec | None = None, mapping: FeatureMap | None = None, contact_sheet: Path | None = None
) -> DatasetReport:
    """Summarize `root`; with `spec`, check every episode against it; optionally save a contact sheet PNG."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise AdaptError(f"{root}: not a LeRobot dataset (missing meta/info.json)")
    info = json.loads(info_path.read_text())
    view_spec, view_mapping = (spec, mapping) if spec is not None else _all_cameras_spec(info)
    dataset = LeRobotDataset(root, view_spec, view_mapping, skip_bad=True)
    features = info["features"]
    state_key = (mapping or FeatureMap()).state
    action_key = (mapping or FeatureMap()).action
    report = DatasetReport(
        root=root,
        version=dataset.version,
        fps=dataset.fps,
        episodes=len(dataset.episodes),
        frames=sum(e.length for e in dataset.episodes),
        cameras={k: v["shape"][:2] for k, v in features.items() if v.get("dtype") == "video"},
        state_dim=features[state_key]["shape"][0] if state_key in features else None,
        action_dim=features[action_key]["shape"][0] if action_key in features else None,
        tasks=dataset.tasks,
        spec=spec.name if spec else None,
        problems=[f"episode {index}: {why}" for index, why in dataset.skipped],
    )
    if contact_sheet is not None:
        save_contact_sheet(dataset, contact_sheet)
    return report


def save_contact_sheet(
    dataset: LeRobotDataset, path: Path, episodes: int = 4, per_episode: int = 6, size: tuple[int, int] = (96, 96)
) -> Path:
    """A PNG grid: one row per (episode, camera), frames evenly spaced through the episode."""
    from PIL import Image

    from adapt.atomic import atomic_write_bytes

    rows = []
    for episode in dataset.episodes[:episodes]:
        indices = np.linspace(0, episode.length - 1, per_episode).round().astype(int)
        for camera in dataset.spec.cameras:
            frames = dataset.frames(episode, camera.name, indices, size)
            rows.append(np.concatenate(list(frames), axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _all_cameras_spec(info: dict) -> tuple[EmbodimentSpec, FeatureMap]:
    """A video-only spec with one camera per video stream of the dataset, and the mapping to them."""
    keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
    if not keys:
        raise AdaptError("dataset has no video features to inspect")
    cameras = []
    for i, key in enumerate(keys):
        height, width = info["features"][key]["shape"][:2]
        cameras.append({"name": f"camera{i}", "role": "primary", "height": height, "width": width, "fps": info["fps"]})
    spec = spec_from_dict({"name": "inspected", "video_only": True, "cameras": cameras})
    return spec, FeatureMap(cameras={f"camera{i}": key for i, key in enumerate(keys)})
