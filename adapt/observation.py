"""An observation for a policy, checked in one place: a uint8 frame of each spec camera at the spec's size, the
state whole or as the spec's proprio blocks, every value finite, and the task text.

The policy (`adapt.policy.Policy.act`) and the servers (`adapt.serving`) take observations through
`check_observation`; a server first renames its wire's keys (openpi's `observation/<name>`, DreamZero's) and
names problems in its own terms through `key`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError


@dataclass(frozen=True)
class Observation:
    """A checked observation: frames by spec camera name, the state (float32, state_dim) and the task (None: the
    policy's own)."""

    frames: dict[str, np.ndarray]
    state: np.ndarray
    task: str | None = None


def check_observation(
    observation: dict | Observation, spec: EmbodimentSpec, key: Callable[[str], str] = str
) -> Observation:
    """`observation` (camera name -> frame, `state` or the proprio blocks by name, optional `task`) checked
    against `spec`; the first problem is raised as an `AdaptError` naming the field as `key(name)` calls it.
    Nothing is taken from an observation that breaks any rule: no command is made from it."""
    if isinstance(observation, Observation):
        return observation
    frames = {}
    for camera in spec.cameras:
        expected = (camera.height, camera.width, 3)
        if camera.name not in observation:
            raise AdaptError(f"missing {key(camera.name)}: uint8 {expected} (camera of spec '{spec.name}')")
        frame = observation[camera.name]
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise AdaptError(f"{key(camera.name)}: expected uint8 {expected}, got {got} (spec '{spec.name}')")
        frames[camera.name] = frame
    if "state" in observation:
        state = _vector(observation["state"], key("state"), spec.state_dim)
    else:
        missing = [p for p in spec.proprio if p.name not in observation]
        if missing:
            blocks = " and ".join(f"{key(p.name)} ({p.dim},)" for p in missing)
            raise AdaptError(f"missing {key('state')} ({spec.state_dim},) or {blocks}")
        state = np.concatenate([_vector(observation[p.name], key(p.name), p.dim) for p in spec.proprio])
    task = observation.get("task")
    if task is not None and not isinstance(task, str):
        raise AdaptError(f"{key('task')}: expected a string, got {type(task).__name__}")
    return Observation(frames, state, task)


def _vector(value, name: str, dim: int) -> np.ndarray:
    if dim == 1 and isinstance(value, int | float | np.number) and not isinstance(value, bool):
        value = np.asarray([value])  # a one-number block (a gripper) given as a number
    if isinstance(value, list | tuple):
        with contextlib.suppress(ValueError):  # a ragged list stays a list, and is named below
            value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.shape != (dim,):
        got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise AdaptError(f"{name}: expected float32 ({dim},), got {got}")
    if not np.isfinite(value).all():
        raise AdaptError(f"{name}: non-finite values at {np.flatnonzero(~np.isfinite(value)).tolist()}; no command")
    return value.astype(np.float32)
