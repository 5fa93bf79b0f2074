"""What is in a dataset, whether it fits a spec, and a contact sheet of its frames to look at.

Without a spec, the dataset is read as video-only with every camera it has, so any LeRobot dataset
can be inspected before anyone writes a spec for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adapt.data.reader import FeatureMap, LeRobotDataset, read_info
from adapt.embodiment import EmbodimentSpec, spec_from_dict
from adapt.errors import AdaptError

IMAGE_PREFIX = "observation.images."
LIMIT_MARGIN = 0.05
"""How far (a fraction of a joint's range) a recorded position may lie beyond the spec's limits."""
LIMIT_FRAMES = 0.01
"""The fraction of frames beyond that margin from which a joint is named."""


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
    outside_limits: list[str] = field(default_factory=list)
    """Joints whose recorded positions lie outside the spec's limits (see `limit_violations`)."""
    mismatches: list[str] = field(default_factory=list)
    """Cameras whose size or frame rate differ from the spec's: usable (frames are resized, windows are
    timed by the dataset's rate), but worth knowing before training on them."""

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60.0


def inspect_dataset(
    root: Path, spec: EmbodimentSpec | None = None, mapping: FeatureMap | None = None, contact_sheet: Path | None = None
) -> DatasetReport:
    """Summarize `root`; with `spec`, check every episode against it; optionally save a contact sheet PNG."""
    root = Path(root)
    info = read_info(root)
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
        mismatches=_camera_mismatches(dataset) if spec is not None else [],
        outside_limits=limit_violations(dataset) if spec is not None else [],
    )
    if contact_sheet is not None:
        save_contact_sheet(dataset, contact_sheet)
    return report


def limit_violations(dataset: LeRobotDataset) -> list[str]:
    """Each joint whose recorded positions (the state's joint positions, and absolute joint targets) lie beyond
    the spec's limits by more than `LIMIT_MARGIN` of its range in more than `LIMIT_FRAMES` of the frames, said in
    words: data recorded in other units (degrees against limits in radians) or from another robot, which a
    policy trained on it could only command clipped to the limits."""
    spec, found = dataset.spec, []
    if spec.video_only or not spec.joints:
        return found
    lower = np.array([j.position[0] for j in spec.joints])
    upper = np.array([j.position[1] for j in spec.joints])
    margin = LIMIT_MARGIN * (upper - lower)
    recorded = []
    joints = spec.proprio_slice("joint_position")
    states = [e.state for e in dataset.episodes if e.state is not None]
    if joints is not None and states:
        recorded.append(("state", np.concatenate(states)[:, joints]))
    actions = [e.action for e in dataset.episodes if e.action is not None]
    if spec.action.kind == "joint_position" and not spec.action.relative and actions:
        recorded.append(("action", np.concatenate(actions)[:, : len(spec.joints)]))
    for what, values in recorded:
        beyond = ((values < lower - margin) | (values > upper + margin)).mean(0)
        for i in np.flatnonzero(beyond > LIMIT_FRAMES):
            found.append(
                f"{what} of joint {spec.joints[i].name}: {beyond[i]:.0%} of frames outside its limits "
                f"[{lower[i]:.3g}, {upper[i]:.3g}] (recorded {values[:, i].min():.3g} to {values[:, i].max():.3g};"
                " other units, or another robot?)"
            )
    return found


def _camera_mismatches(dataset: LeRobotDataset) -> list[str]:
    """Each spec camera whose dataset video differs from it in size or frame rate, said in words."""
    found = []
    for camera in dataset.spec.cameras:
        key = dataset.camera_keys[camera.name]
        height, width = dataset.recorded_size(camera.name)
        fps = dataset.camera_fps(key)
        if (height, width) != (camera.height, camera.width):
            found.append(
                f"camera {camera.name}: the dataset's {key} is {height}x{width}, the spec says "
                f"{camera.height}x{camera.width} (frames will be resized)"
            )
        if abs(fps - camera.fps) > 1e-6:
            found.append(f"camera {camera.name}: the dataset's {key} runs at {fps:g} fps, the spec says {camera.fps:g}")
    return found


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
