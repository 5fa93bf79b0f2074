"""Kinematics from the robot description (MJCF or URDF), through MuJoCo.

Only the kinematic tree matters here, so meshes, materials and textures are dropped before compiling:
a robosuite arm then loads in a few milliseconds instead of ~600 ms, and a URDF whose meshes live in
a ROS package we do not have still loads. Static bodies are kept (MuJoCo fuses them for URDF by
default), because end-effector frames such as `tool0` hang on fixed joints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapt.embodiment.spec import EmbodimentSpec
from adapt.errors import AdaptError, Problem, did_you_mean
from adapt.mujoco_gl import import_mujoco

mujoco = import_mujoco(render=False)  # kinematics renders nothing

LIMIT_TOLERANCE = 1e-5
"""Spec limits may exceed the description's by this much (rounding when limits are copied by hand)."""


@dataclass(frozen=True)
class DescriptionJoint:
    """A movable joint as the description declares it."""

    name: str
    kind: str  # "hinge" or "slide"
    limited: bool
    range: tuple[float, float]


def load_description(path: Path, mounts: list[str] = ()) -> mujoco.MjModel:
    """Compile the kinematic tree of an MJCF or URDF file. Raises AdaptError when it does not load.

    With `mounts` the file is one arm of a robot made of copies of it: each copy is attached at the origin
    with its prefix on every name (where the copies stand is the simulator's business, not the spec's).

    Only kinematics is needed, so meshes, materials and the bodies' inertias are dropped before compiling:
    descriptions whose inertias MuJoCo rejects ("inertia must have positive eigenvalues": Tiago, PR2) load too."""
    path = Path(path)
    if not path.is_file():
        raise AdaptError(f"robot description not found: {path}")
    try:
        spec = mujoco.MjSpec.from_file(str(path))
        for body in spec.bodies:
            if body.explicitinertial:
                body.fullinertia = [math.nan, 0, 0, 0, 0, 0]  # NaN first: use the diagonal below instead
                body.inertia = [1e-9] * 3
                body.mass = max(body.mass, 1e-6)
        for geom in spec.geoms:
            geom.material = ""
        for element in [g for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH]:
            spec.delete(element)
        for element in [*spec.meshes, *spec.materials, *spec.textures, *spec.hfields]:
            spec.delete(element)
        spec.compiler.fusestatic = False
        if mounts:
            spec = _copies(spec, mounts)
        spec.compiler.boundmass = 1e-6  # bodies whose only geoms were meshes keep a valid mass
        spec.compiler.boundinertia = 1e-9
        return spec.compile()
    except Exception as err:  # MuJoCo raises ValueError for parse and compile errors alike
        raise AdaptError(f"MuJoCo could not load robot description {path}: {err}") from None


def _copies(arm: mujoco.MjSpec, prefixes: list[str]) -> mujoco.MjSpec:
    """A robot of one copy of `arm` per prefix, each copy's names prefixed."""
    robot = mujoco.MjSpec()
    robot.compiler.fusestatic = False
    robot.compiler.boundmass, robot.compiler.boundinertia = arm.compiler.boundmass, arm.compiler.boundinertia
    robot.compiler.degree = arm.compiler.degree
    for prefix in prefixes:  # one copy of the arm each: MuJoCo attaches a body once
        robot.worldbody.add_frame().attach_body(arm.copy().worldbody.first_body(), prefix, "")
    return robot


def description_joints(model: mujoco.MjModel) -> dict[str, DescriptionJoint]:
    """The movable (hinge and slide) joints of a compiled description, in tree order."""
    kinds = {mujoco.mjtJoint.mjJNT_HINGE: "hinge", mujoco.mjtJoint.mjJNT_SLIDE: "slide"}
    joints = {}
    for i in range(model.njnt):
        kind = kinds.get(model.jnt_type[i])
        if kind is not None:
            lower, upper = (float(v) for v in model.jnt_range[i])
            joints[model.joint(i).name] = DescriptionJoint(
                model.joint(i).name, kind, bool(model.jnt_limited[i]), (lower, upper)
            )
    return joints


def frame_names(model: mujoco.MjModel) -> list[str]:
    """Bodies and sites that can serve as end-effector frames."""
    return [model.body(i).name for i in range(1, model.nbody)] + [model.site(i).name for i in range(model.nsite)]


def check_against_description(spec: EmbodimentSpec) -> list[Problem]:
    """Problems between a spec and its robot description: missing joints or frames, limits too wide."""
    try:
        model = load_description(spec.description_path(), spec.mounts)
    except AdaptError as err:
        return [Problem("description", f"{err}; fix the path (relative to the spec file) or the file")]
    available = description_joints(model)
    problems = []
    for i, joint in enumerate(spec.joints):
        found = available.get(joint.name)
        if found is None:
            hint = did_you_mean(joint.name, available)
            problems.append(
                Problem(
                    f"joints[{i}].name",
                    f"joint '{joint.name}' is not in the description.{hint} Its joints: {', '.join(available)}",
                )
            )
            continue
        lower, upper = joint.position
        if found.limited and (lower < found.range[0] - LIMIT_TOLERANCE or upper > found.range[1] + LIMIT_TOLERANCE):
            problems.append(
                Problem(
                    f"joints[{i}].position",
                    f"[{lower}, {upper}] is wider than the description's "
                    f"[{found.range[0]}, {found.range[1]}] for '{joint.name}'; narrow it to lie within",
                )
            )
    frames = frame_names(model)
    for frame in spec.end_effectors:
        if frame not in frames:
            problems.append(
                Problem(
                    "end_effector",
                    f"'{frame}' is neither a body nor a site of the description.{did_you_mean(frame, frames)}",
                )
            )
    return problems


class Kinematics:
    """Forward kinematics of a spec's end-effector frames, in the description's root (robot base) frame.

    Joint vectors follow the spec's joint order. Quaternions are (w, x, y, z), MuJoCo's convention.
    """

    def __init__(self, spec: EmbodimentSpec):
        if spec.video_only:
            raise AdaptError(f"embodiment '{spec.name}' is video-only and has no kinematics")
        self.spec = spec
        self.model = load_description(spec.description_path(), spec.mounts)
        self.data = mujoco.MjData(self.model)
        self._qpos_index = np.array([self.model.joint(name).qposadr[0] for name in spec.joint_names])
        self._frames = {}
        for frame in spec.end_effectors:
            body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, frame)
            if body >= 0:
                self._frames[frame] = ("body", body)
            else:
                self._frames[frame] = ("site", mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, frame))

    def fk(self, q: np.ndarray, frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pose of `frame` (default: the first end effector) at joint positions `q` (rad/m, spec order).

        Returns (position (3,) in m, quaternion (4,) wxyz).
        """
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self._qpos_index),):
            raise ValueError(f"fk expects {len(self._qpos_index)} joint positions, got shape {q.shape}")
        frame = frame or self.spec.end_effectors[0]
        if frame not in self._frames:
            raise KeyError(f"unknown frame '{frame}'; end effectors: {list(self._frames)}")
        self.data.qpos[self._qpos_index] = q
        mujoco.mj_kinematics(self.model, self.data)
        kind, index = self._frames[frame]
        if kind == "body":
            return self.data.xpos[index].copy(), self.data.xquat[index].copy()
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[index])
        return self.data.site_xpos[index].copy(), quat
