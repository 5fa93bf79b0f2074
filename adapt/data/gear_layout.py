"""The layout of a GEAR dataset (DreamZero's and GR00T's LeRobot v2.1 with `meta/modality.json`): which named
sub-keys of the packed state and action columns hold which of the spec's parts, written by `adapt.data.gear` and
read back by `adapt.data.reader` (sub-keys matched to the spec's parts by name, in whatever order a dataset packs
them).

Proprio blocks are the state sub-keys; the action's arm part (named after the action kind) and the gripper are the
action sub-keys; cameras are the video keys; the relative keys are the action sub-keys a state block of the same
name has (DreamZero's rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adapt.data.codec import hands
from adapt.data.writer import ACTION_KEY, STATE_KEY, camera_key
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.files import read_json_object

TASK_KEY = "annotation.task"


def state_layout(spec: EmbodimentSpec) -> dict[str, tuple[int, int]]:
    """State sub-key -> [start, end) in the state vector: the spec's proprio blocks; on a robot with a gripper
    per arm, the gripper block one sub-key per arm, named after its end effector (`right_hand_gripper`)."""
    layout, start, arms = {}, 0, hands(spec)
    for block in spec.proprio:
        if block.name == "gripper" and len(arms) == block.dim:
            layout |= {f"{hand}_gripper": (start + i, start + i + 1) for i, hand in enumerate(arms)}
        else:
            layout[block.name] = (start, start + block.dim)
        start += block.dim
    return layout


def action_layout(spec: EmbodimentSpec) -> dict[str, tuple[int, int]]:
    """Action sub-key -> [start, end): the arm part named after the action kind, then the gripper; on a robot with
    several arms each acting in end-effector deltas with a gripper, each arm's part and gripper named after its
    end effector (`right_hand_ee_delta`, ..., `right_hand_gripper`, ...)."""
    arm = spec.action_dim - (spec.gripper.dim if spec.gripper else 0)
    arms = hands(spec)
    if arms and spec.action.kind == "ee_delta":
        width = arm // len(arms)
        layout = {f"{hand}_ee_delta": (i * width, (i + 1) * width) for i, hand in enumerate(arms)}
        return layout | {f"{hand}_gripper": (arm + i, arm + i + 1) for i, hand in enumerate(arms)}
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
