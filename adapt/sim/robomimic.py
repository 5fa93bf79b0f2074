"""robomimic / robosuite HDF5 files, read into and written from adapt's datasets.

robomimic's layout (what robosuite's demonstration collection, robomimic's datasets and MimicGen write): one
HDF5 file, `data/demo_N` per episode with `actions` (T, A), `obs/<camera>_image` (T, H, W, 3) uint8 and the
robot's proprioception `obs/robot0_joint_pos`, `obs/robot0_joint_vel`, `obs/robot0_gripper_qpos`; `data`
carries `env_args` (JSON: the environment and its controller). Images are as robosuite renders them by default
(OpenGL: bottom row first); adapt's frames are upright, so frames are flipped upside down by default.

adapt's state is the spec's proprio parts: joint positions and velocities are robomimic's own; the gripper is
the first finger joint's position mapped to [-1 open, 1 closed on nothing] by the same calibration adapt's
simulator uses (`adapt.sim.env.SimEnv`), so an imported file holds what adapt's simulated data would. Actions
are taken as they are when the file's controller speaks the spec's action space (OSC_POSE: `ee_delta`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from adapt.data.episode import Episode
from adapt.data.reader import LeRobotDataset
from adapt.data.writer import DatasetWriter
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.progress import track

JOINT_KEYS = {"joint_position": "robot0_joint_pos", "joint_velocity": "robot0_joint_vel"}
GRIPPER_KEY = "robot0_gripper_qpos"
CONTROLLERS = {"ee_delta": "OSC_POSE"}
"""robosuite controller type that speaks each spec action kind (actions are copied only where they agree)."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency; a broken install
        raise AdaptError("reading robomimic HDF5 needs h5py: pip install h5py") from None
    return h5py


def gripper_range(spec: EmbodimentSpec) -> tuple[float, float]:
    """First finger joint position fully open and closed on nothing, as adapt's simulator calibrates it."""
    from adapt.sim.env import SimEnv

    with SimEnv(spec, "Lift", 0) as sim:
        return sim.gripper_range


def import_robomimic(
    file: Path,
    spec: EmbodimentSpec,
    out: Path,
    *,
    cameras: dict[str, str] | None = None,
    flip: bool = True,
    task: str | None = None,
    progress: bool = False,
) -> tuple[Path, int]:
    """Write the demos of robomimic `file` as a LeRobot dataset of `spec` at `out`; returns (`out`, episodes).

    `cameras` maps a spec camera to an `obs` key (default `<camera>_image`); `task` is the episodes' text
    (default: each demo's `task` attribute where adapt wrote the file, else the file's environment name as
    words: "pick place can" for PickPlaceCan)."""
    h5py = _h5py()
    cameras = {c.name: (cameras or {}).get(c.name, f"{c.name}_image") for c in spec.cameras}
    try:
        handle = h5py.File(file, "r")
    except OSError as error:
        raise AdaptError(f"{file}: not a readable HDF5 file ({error})") from None
    with handle:
        if "data" not in handle:
            raise AdaptError(f"{file}: no 'data' group; robomimic files keep their demos in data/demo_N")
        env = _env_args(file, handle["data"])
        _check_controller(file, env, spec)
        names = sorted(handle["data"], key=lambda n: int(re.sub(r"\D", "", n) or -1))
        if not names:
            raise AdaptError(f"{file}: data holds no demos")
        default = _task_text(env)
        lo_hi = gripper_range(spec) if any(p.name == "gripper" for p in spec.proprio) else None
        with DatasetWriter(out, spec) as writer:
            for name in track(names, "importing demos", progress):
                demo = handle["data"][name]
                text = task or str(demo.attrs.get("task", default))
                writer.add(_episode(file, name, demo, spec, cameras, flip, text, lo_hi))
    return out, len(names)


def _episode(file, name, demo, spec, cameras, flip, text, lo_hi) -> Episode:
    where = f"{file}: data/{name}"
    obs = demo.get("obs")
    if obs is None:
        raise AdaptError(f"{where} has no obs group")
    frames = {}
    for camera, key in cameras.items():
        if key not in obs:
            raise AdaptError(f"{where}/obs has no {key!r} for camera {camera} (its keys: {', '.join(obs)})")
        images = np.asarray(obs[key])
        frames[camera] = np.ascontiguousarray(images[:, ::-1] if flip else images)
    parts = []
    for part in spec.proprio:
        if part.name == "gripper":
            if GRIPPER_KEY not in obs:
                raise AdaptError(f"{where}/obs has no {GRIPPER_KEY!r} (the gripper state)")
            lo, hi = lo_hi
            finger = np.asarray(obs[GRIPPER_KEY], np.float64)[:, :1]
            parts.append(np.repeat(np.clip(2.0 * (finger - lo) / (hi - lo) - 1.0, -1.0, 1.0), part.dim, axis=1))
        elif part.name in JOINT_KEYS:
            key = JOINT_KEYS[part.name]
            if key not in obs or obs[key].shape[1:] != (part.dim,):
                shape = obs[key].shape if key in obs else "missing"
                raise AdaptError(f"{where}/obs/{key}: expected (T, {part.dim}) for {part.name}, got {shape}")
            parts.append(np.asarray(obs[key], np.float64))
        else:
            raise AdaptError(f"spec '{spec.name}': proprio part {part.name!r} has no robomimic counterpart")
    actions = np.asarray(demo["actions"], np.float32) if "actions" in demo else None
    if actions is None or actions.shape[1:] != (spec.action_dim,):
        shape = None if actions is None else actions.shape
        raise AdaptError(f"{where}/actions: expected (T, {spec.action_dim}) for '{spec.name}', got {shape}")
    return Episode(task=text, frames=frames, state=np.concatenate(parts, axis=1).astype(np.float32), action=actions)


def export_robomimic(dataset: LeRobotDataset, file: Path, *, flip: bool = True) -> Path:
    """Write `dataset` (of an `ee_delta` spec) as a robomimic HDF5 file; the inverse of `import_robomimic`."""
    h5py = _h5py()
    spec = dataset.spec
    if spec.action.kind not in CONTROLLERS:
        raise AdaptError(f"spec '{spec.name}' acts in {spec.action.kind}; robomimic files hold OSC_POSE actions")
    if not (dataset.has_state and dataset.has_action):
        raise AdaptError(f"{dataset.root}: robomimic files need state and actions; this dataset is video-only")
    lo, hi = gripper_range(spec)
    offsets = np.cumsum([0] + [p.dim for p in spec.proprio])
    partial = file.with_name(f".{file.name}.partial")
    try:
        with h5py.File(partial, "w") as handle:
            data = handle.create_group("data")
            env = {"env_name": "", "type": 1, "env_kwargs": {"robots": [spec.name]}}  # the scene is not recorded
            env["env_kwargs"]["controller_configs"] = {"type": CONTROLLERS[spec.action.kind]}
            data.attrs["env_args"] = json.dumps(env)
            total = 0
            for index, episode in enumerate(dataset.episodes):
                demo = data.create_group(f"demo_{index}")
                demo.attrs["num_samples"] = episode.length
                demo.attrs["task"] = episode.task
                demo.create_dataset("actions", data=episode.action.astype(np.float64))
                for camera in spec.cameras:
                    size = dataset.recorded_size(camera.name)
                    images = dataset.frames(episode, camera.name, np.arange(episode.length), size)
                    demo.create_dataset(f"obs/{camera.name}_image", data=images[:, ::-1] if flip else images)
                for part, start, stop in zip(spec.proprio, offsets[:-1], offsets[1:], strict=True):
                    values = episode.state[:, start:stop].astype(np.float64)
                    if part.name == "gripper":
                        finger = lo + (values[:, :1] + 1.0) / 2.0 * (hi - lo)
                        demo.create_dataset(f"obs/{GRIPPER_KEY}", data=np.concatenate([finger, -finger], axis=1))
                    elif part.name in JOINT_KEYS:
                        demo.create_dataset(f"obs/{JOINT_KEYS[part.name]}", data=values)
                total += episode.length
            data.attrs["total"] = total
    except BaseException:
        partial.unlink(missing_ok=True)  # a failed export leaves no file that looks whole
        raise
    partial.replace(file)
    return file


def _env_args(file: Path, data) -> dict:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise AdaptError(f"{file}: data.attrs['env_args'] is not JSON") from None


def _check_controller(file: Path, env: dict, spec: EmbodimentSpec) -> None:
    """Refuse actions of another space than the spec's: a policy trained on them would command nonsense."""
    configs = env.get("env_kwargs", {}).get("controller_configs") or {}
    found = configs.get("type") or (configs.get("body_parts", {}).get("right", {}).get("type"))
    wanted = CONTROLLERS.get(spec.action.kind)
    if found is not None and found != wanted:
        raise AdaptError(
            f"{file}: its actions are robosuite {found} commands, but spec '{spec.name}' acts in "
            f"{spec.action.kind} ({wanted or 'no robosuite controller'}); choose a spec of that action space"
        )


def _task_text(env: dict) -> str:
    """robosuite's environment name as words ("PickPlaceCan" -> "pick place can"), or "demo"."""
    name = str(env.get("env_name", "")).strip()
    return " ".join(re.findall(r"[A-Z][a-z]*|[a-z]+|\d+", name)).lower() or "demo"
