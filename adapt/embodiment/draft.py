"""Draft a complete, valid spec from a robot description, for hardware vendors.

Everything the MJCF/URDF knows (joints, position limits, URDF velocity limits, a likely end-effector
frame) is filled in from it; what it cannot know (cameras, gripper, control rate) gets a placeholder
and is listed in the header comment so the vendor knows exactly what to edit.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from adapt.embodiment.kinematics import description_joints, load_description, mujoco
from adapt.embodiment.loading import spec_from_dict
from adapt.embodiment.spec import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.resources import PACKAGE_SCHEME, resolve_package_path

PLACEHOLDER_VELOCITY = 1.0
"""rad/s (m/s) used when the description has no velocity limit (MJCF never has one)."""
CONTINUOUS_RANGE = 6.2832
"""Position range (rad, about 2 pi either way) drafted for joints the description leaves unlimited."""
_EE_NAME = re.compile(r"hand|eef|end_?effector|ee_?link|tcp|tool|flange|gripper|grasp", re.IGNORECASE)


def draft_spec(description: str, name: str, out: Path | None = None) -> tuple[EmbodimentSpec, str]:
    """A validated spec for `description` (path or package:// reference) and a YAML header comment.

    `out` is where the spec will be written; a file path is stored relative to it.
    """
    path = resolve_package_path(description) if description.startswith(PACKAGE_SCHEME) else Path(description)
    model = load_description(path)
    joints = description_joints(model)
    if not joints:
        raise AdaptError(f"{path}: the description has no movable (hinge or slide) joints")
    velocities = _urdf_velocities(path)
    frames = guess_end_effectors(model)
    if description.startswith(PACKAGE_SCHEME):
        reference = description
    else:
        anchor = (out.parent if out is not None else Path.cwd()).resolve()
        reference = Path(os.path.relpath(path.resolve(), anchor)).as_posix()
    gripper_dim = len(frames)
    raw = {
        "name": name,
        "description": reference,
        "joints": [
            {
                "name": j.name,
                "position": list(j.range) if j.limited else [-CONTINUOUS_RANGE, CONTINUOUS_RANGE],
                "velocity": velocities.get(j.name, PLACEHOLDER_VELOCITY),
            }
            for j in joints.values()
        ],
        "end_effector": frames[0] if len(frames) == 1 else frames,
        "gripper": {"kind": "parallel", "dim": gripper_dim, "range": [-1.0, 1.0]},
        "cameras": [{"name": "front", "role": "primary", "height": 224, "width": 224, "fps": 20}],
        "proprio": [
            {"name": "joint_position", "dim": len(joints), "unit": "rad"},
            {"name": "gripper", "dim": gripper_dim, "unit": "normalized"},
        ],
        "action": {"kind": "joint_position", "dim": len(joints) + gripper_dim, "control_hz": 20, "chunk": 16},
    }
    spec = spec_from_dict(raw, source=(out.resolve() if out is not None else Path.cwd() / f"{name}.yaml"))
    missing_velocity = [j for j in joints if j not in velocities]
    header = [
        f"# Embodiment spec drafted by `adapt embodiment new` from {description}.",
        "# Joints and position limits come from that file. Check and edit what it cannot know:",
        "#   - cameras: names, roles, resolution and fps of your real cameras (one placeholder below)",
        "#   - gripper: kind, command dims and range as your controller takes them",
        "#   - action: kind, control_hz and chunk of your controller",
        f"#   - end_effector: guessed as {frames}; set the tool frame you command",
    ]
    if missing_velocity:
        header.append(f"#   - joints[*].velocity: the file has none; {PLACEHOLDER_VELOCITY} rad/s is a placeholder")
    header.append("# Then run: adapt embodiment validate <this file>")
    return spec, "\n".join(header) + "\n"


def guess_end_effectors(model: mujoco.MjModel) -> list[str]:
    """One frame per kinematic chain: the leaf body ending each maximal chain of movable joints.

    A leaf whose joints are a strict subset of another leaf's (a decorative link hanging off the
    middle of an arm) is not a chain end. Among leaves ending the same chain, a name that looks like
    a hand or tool wins, then the deepest.
    """
    movable = {mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE}
    joints_of: dict[int, frozenset[int]] = {0: frozenset()}
    depth = {0: 0}
    for body in range(1, model.nbody):  # MuJoCo orders bodies so parents come first
        parent = int(model.body_parentid[body])
        own = {j for j in range(model.njnt) if model.jnt_bodyid[j] == body and model.jnt_type[j] in movable}
        joints_of[body] = joints_of[parent] | own
        depth[body] = depth[parent] + 1
    has_child = {int(model.body_parentid[b]) for b in range(1, model.nbody)}
    leaves = [b for b in range(1, model.nbody) if b not in has_child and joints_of[b]]
    chains = [b for b in leaves if not any(joints_of[b] < joints_of[other] for other in leaves)]
    best: dict[frozenset[int], int] = {}
    for body in chains:
        key = joints_of[body]
        score = (bool(_EE_NAME.search(model.body(body).name)), depth[body])
        if key not in best or score > (bool(_EE_NAME.search(model.body(best[key]).name)), depth[best[key]]):
            best[key] = body
    if not best:
        raise AdaptError("the description has no chain of movable joints ending in a body")
    return [model.body(b).name for b in sorted(best.values())]


def _urdf_velocities(path: Path) -> dict[str, float]:
    """Velocity limits from a URDF's <limit velocity=...> (MuJoCo drops them); {} for MJCF."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    if root.tag != "robot":
        return {}
    velocities = {}
    for joint in root.iter("joint"):
        limit = joint.find("limit")
        if limit is not None and float(limit.get("velocity", 0)) > 0:
            velocities[joint.get("name")] = float(limit.get("velocity"))
    return velocities
