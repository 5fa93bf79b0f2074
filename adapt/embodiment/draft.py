"""Draft a complete, valid spec from a robot description, for hardware vendors.

Everything the MJCF/URDF knows (joints, position limits, URDF velocity limits, a likely end-effector
frame) is filled in from it; what it cannot know (cameras, gripper, control rate) gets a placeholder
and is listed in the header comment so the vendor knows exactly what to edit.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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
_EE_NAME = re.compile(r"hand|eef|end_?effector|ee_?link|tcp|tool|flange|grasp", re.IGNORECASE)
_GRIPPER_NAME = re.compile(r"finger|gripper|jaw|knuckle|claw|thumb", re.IGNORECASE)
_LEG_NAME = re.compile(r"leg|hip|knee|ankle|foot|toe|wheel", re.IGNORECASE)


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
    roles = classify_joints(model, _urdf_mimic_joints(path))
    frames = [arm.end_effector for arm in roles.arms]
    arm_joints = [name for arm in roles.arms for name in arm.joints]
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
            for j in (joints[name] for name in arm_joints)
        ],
        "end_effector": frames[0] if len(frames) == 1 else frames,
        "gripper": {"kind": "parallel", "dim": gripper_dim, "range": [-1.0, 1.0]},
        "cameras": [{"name": "front", "role": "primary", "height": 224, "width": 224, "fps": 20}],
        "proprio": [
            {"name": "joint_position", "dim": len(arm_joints), "unit": "rad"},
            {"name": "gripper", "dim": gripper_dim, "unit": "normalized"},
        ],
        "action": {"kind": "joint_position", "dim": len(arm_joints) + gripper_dim, "control_hz": 20, "chunk": 16},
    }
    spec = spec_from_dict(raw, source=(out.resolve() if out is not None else Path.cwd() / f"{name}.yaml"))
    missing_velocity = [j for j in arm_joints if j not in velocities]
    header = [
        f"# Embodiment spec drafted by `adapt embodiment new` from {description}.",
        "# Joints and position limits come from that file. Check and edit what it cannot know:",
        "#   - cameras: names, roles, resolution and fps of your real cameras (one placeholder below)",
        "#   - gripper: kind, command dims and range as your controller takes them",
        "#   - action: kind, control_hz and chunk of your controller",
        f"#   - end_effector: guessed as {frames}; set the tool frame you command",
        "# How the description's joints were read (move a joint between lines if this is wrong):",
        *(f"#   {line}" for line in roles.describe()),
    ]
    if missing_velocity:
        header.append(f"#   - joints[*].velocity: the file has none; {PLACEHOLDER_VELOCITY} rad/s is a placeholder")
    continuous = [name for name in arm_joints if not joints[name].limited]
    if continuous:
        header.append(
            f"#   - joints {', '.join(continuous)}: continuous (no limits) in the file, drafted as"
            f" [-{CONTINUOUS_RANGE}, {CONTINUOUS_RANGE}] rad; narrow them to what your robot may reach"
        )
    header.append("# Then run: adapt embodiment validate <this file>")
    return spec, "\n".join(header) + "\n"


@dataclass
class Arm:
    joints: list[str]
    """The arm's own joints, root to tip (shared torso joints and gripper joints excluded)."""
    end_effector: str
    gripper: list[str]
    """The gripper's joints in the description (fingers, jaws, mimic joints); empty when it has none."""


@dataclass
class JointRoles:
    """How a description's movable joints were read: arms, their grippers, and the joints left out."""

    arms: list[Arm]
    left_out: dict[str, str] = field(default_factory=dict)
    """Joint -> why it is in no arm (a head, a torso shared by two arms, a gripper beyond no arm)."""

    def describe(self) -> list[str]:
        lines = []
        for i, arm in enumerate(self.arms, 1):
            gripper = ", ".join(arm.gripper) if arm.gripper else "none in the file (a placeholder gripper block)"
            lines.append(f"arm {i}: {', '.join(arm.joints)} -> end effector {arm.end_effector}; gripper: {gripper}")
        lines += [f"left out: {joint} ({why})" for joint, why in self.left_out.items()]
        return lines


def classify_joints(model: mujoco.MjModel, mimic: frozenset[str] = frozenset()) -> JointRoles:
    """Arms, grippers and the rest, from the kinematic tree.

    Gripper joints: URDF mimic joints and names like finger/gripper/jaw/knuckle/claw, and every joint
    beyond an arm's end effector. An arm is a maximal chain of the remaining joints from the root to a
    leaf. Joints shared by several chains (a torso), chains of leg-like names (hip, knee, ankle, wheel)
    and chains much shorter than the longest arm (a head pan) are left out. The end effector is the last
    body of the chain before its gripper: a body named like a hand or tool, else the one the gripper
    hangs from, else the deepest; never a finger tip.
    """
    movable = {mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE}
    names = {j: model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] in movable}
    is_gripper = {j: bool(_GRIPPER_NAME.search(n)) or n in mimic for j, n in names.items()}
    arm_path: dict[int, tuple[int, ...]] = {0: ()}
    grip_path: dict[int, tuple[int, ...]] = {0: ()}
    depth = {0: 0}
    for body in range(1, model.nbody):  # MuJoCo orders bodies so parents come first
        parent = int(model.body_parentid[body])
        own = [j for j in names if model.jnt_bodyid[j] == body]
        arm_path[body] = arm_path[parent] + tuple(j for j in own if not is_gripper[j] and not grip_path[parent])
        grip_path[body] = grip_path[parent] + tuple(j for j in own if is_gripper[j] or grip_path[parent])
        depth[body] = depth[parent] + 1
    has_child = {int(model.body_parentid[b]) for b in range(1, model.nbody)}
    leaves = [b for b in range(1, model.nbody) if b not in has_child and arm_path[b]]
    chains = sorted({arm_path[b] for b in leaves if not any(set(arm_path[b]) < set(arm_path[o]) for o in leaves)})
    if not chains:
        raise AdaptError("the description has no chain of movable joints ending in a body")
    counts: dict[int, int] = {}
    for chain in chains:
        for j in chain:
            counts[j] = counts.get(j, 0) + 1
    left_out = {names[j]: "shared by several chains: a torso or a base" for j in sorted(counts) if counts[j] > 1}
    own = {chain: [j for j in chain if counts[j] == 1] for chain in chains}
    legs = {c for c in chains if own[c] and all(_LEG_NAME.search(names[j]) for j in own[c])}
    longest = max((len(own[c]) for c in chains if c not in legs), default=0)
    arms = []
    for chain in chains:
        if chain in legs or len(own[chain]) < max(2, (longest + 1) // 2):
            why = "a leg" if chain in legs else "on a short chain: a head, a wheel?"
            left_out.update({names[j]: why for j in own[chain]})
            continue
        bodies = [b for b in range(1, model.nbody) if arm_path[b] == chain and not grip_path[b]]
        grippers = sorted({j for b in range(1, model.nbody) if arm_path[b] == chain for j in grip_path[b]})

        def score(body: int, chain=chain) -> tuple:
            holds_gripper = any(
                grip_path[b] and arm_path[b] == chain and _ancestor(model, body, b) for b in range(1, model.nbody)
            )
            return (bool(_EE_NAME.search(model.body(body).name)), holds_gripper, depth[body])

        end = max(bodies, key=score)
        arms.append(Arm([names[j] for j in own[chain]], model.body(end).name, [names[j] for j in grippers]))
    if not arms:
        raise AdaptError("the description has no arm: every chain of movable joints is shared, a leg or too short")
    placed = {n for arm in arms for n in (*arm.joints, *arm.gripper)} | set(left_out)
    for j, name in names.items():
        if name not in placed:
            left_out[name] = "a gripper joint on no arm" if is_gripper[j] else "not on an arm's chain: a head, a wheel?"
    return JointRoles(arms, left_out)


def _ancestor(model: mujoco.MjModel, ancestor: int, body: int) -> bool:
    while body > 0:
        if body == ancestor:
            return True
        body = int(model.body_parentid[body])
    return False


def _urdf_mimic_joints(path: Path) -> frozenset[str]:
    """Joints a URDF declares as mimicking another (a second finger, a gripper linkage)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return frozenset()
    return frozenset(j.get("name") for j in root.iter("joint") if j.find("mimic") is not None)


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
