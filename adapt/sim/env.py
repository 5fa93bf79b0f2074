"""A robosuite scene, driven in end-effector space and observed the way an embodiment spec says.

Scripted controllers think in end-effector terms, so every robot is driven through robosuite's
OSC_POSE controller (command: dx dy dz, droll dpitch dyaw in [-1, 1], scaled by the controller to at
most 5 cm and 0.5 rad per step, then the gripper in [-1 open, 1 closed]). Datasets, however, speak
the spec's action space; `spec_action` converts one executed step into it (see its docstring).

Frames come from our own `sim.render` calls, not robosuite's camera observations, so a frame is
taken exactly when it is recorded (and after our own scene randomization). MuJoCo's offscreen
renderer returns rows bottom-up (OpenGL), so they are flipped. On a CPU renderer (Mesa llvmpipe)
shadows and reflections triple the cost of a frame and multisampling doubles it; all three are off
(edges alias a little at 128 px), so we make the renderer ourselves rather than let robosuite.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import mujoco
import numpy as np
import robosuite
from robosuite import load_composite_controller_config
from robosuite.robots import ROBOT_CLASS_MAPPING
from robosuite.utils.binding_utils import MjRenderContextOffscreen

from adapt.data.codec import ActionCodec
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError, did_you_mean
from adapt.sim.scenes import TWO_ARM_SCENES, Thing, default_things, randomize_things

log = logging.getLogger(__name__)

ROBOSUITE_ROBOTS = "package://robosuite/models/assets/robots/"
PREFIX = "robot0_"
"""robosuite prefixes the joint, body and camera names of the first robot with this (`robot1_` the second)."""
STATE_FIELDS = ("joint_position", "joint_velocity", "gripper")
OFFSCREEN_SAMPLES = 0
"""Multisample anti-aliasing of rendered frames (MuJoCo's default 4 doubles the cost of a frame on a CPU)."""
GRIPPER_SETTLE_LIMIT = 1000
"""Most open commands applied to a gripper's rate-limited command state when an episode starts."""
CALIBRATION_STEPS = 15
"""Steps the gripper gets to open fully and to close fully when its range is measured."""


def robosuite_robot(spec: EmbodimentSpec) -> str:
    """robosuite's name for the spec's robot, read from `package://robosuite/models/assets/robots/<robot>/...`.

    Raises AdaptError for video-only specs, robots robosuite does not ship, and robots without a gripper.
    """
    if spec.video_only or spec.description is None:
        raise AdaptError(f"'{spec.name}' is video-only: there is no robot to simulate; pick a robot spec")
    if not spec.description.startswith(ROBOSUITE_ROBOTS):
        raise AdaptError(
            f"'{spec.name}': simulation needs a robosuite robot model (description "
            f"'{ROBOSUITE_ROBOTS}<robot>/robot.xml'), got '{spec.description}'"
        )
    folder = PurePosixPath(spec.description[len(ROBOSUITE_ROBOTS) :]).parts[0]
    names = {name.lower(): name for name in ROBOT_CLASS_MAPPING}
    if folder not in names:
        raise AdaptError(f"'{spec.name}': robosuite has no robot '{folder}'.{did_you_mean(folder, names)}")
    if len(spec.end_effectors) > 2 or spec.gripper is None or spec.action is None:
        raise AdaptError(f"'{spec.name}': only robots with one or two arms, each with a gripper, are simulated")
    if spec.gripper.dim != len(spec.end_effectors):
        raise AdaptError(
            f"'{spec.name}': gripper.dim {spec.gripper.dim} must be one per end effector ({len(spec.end_effectors)})"
        )
    return names[folder]


def scene_joint(spec: EmbodimentSpec, name: str) -> str:
    """The scene's name of a spec joint: robosuite prefixes the i-th robot's parts `robot<i>_`; a spec made of
    mounted copies names each copy's by its mount prefix instead."""
    for i, mount in enumerate(spec.mounts):
        if name.startswith(mount):
            return f"robot{i}_{name.removeprefix(mount)}"
    return PREFIX + name


def check_spec(spec: EmbodimentSpec) -> None:
    """Problems that need no simulator: raise AdaptError before any process or renderer starts."""
    robosuite_robot(spec)
    unknown = [p.name for p in spec.proprio if p.name not in STATE_FIELDS]
    if unknown:
        raise AdaptError(f"'{spec.name}': simulated state has fields {STATE_FIELDS}; the spec asks for {unknown}")
    fps = {c.fps for c in spec.cameras}
    if fps != {spec.action.control_hz}:
        raise AdaptError(
            f"'{spec.name}': the simulator records one frame per control step, so every camera's fps "
            f"({sorted(fps)}) must equal action.control_hz ({spec.action.control_hz:g})"
        )


class SimEnv:
    """One robosuite task (`scene`: Lift, Stack, PickPlaceCan; TwoArmLift for a two-armed robot) with the spec's
    robot and cameras.

    A robot has one hand per end effector of its spec (robosuite's arms, in its order: Baxter's right, then
    left). Commands and spec actions hold every hand's six end-effector values, then every hand's gripper
    (robosuite's layout); `eef` and `gripper` take a hand, hand 0 by default.

    Made once and reset per episode (soft resets: remaking the scene costs seconds). Use as a context
    manager, or call `close()`: the offscreen renderer must be released explicitly (robosuite frees it
    with the simulation). After `reset`,
    `things` are the objects scripts may act on and `homes` each hand's gripper orientation (pointing down);
    `base` is the world xy of the robot's base.
    """

    def __init__(self, spec: EmbodimentSpec, scene: str, seed: int, controller: str = "osc"):
        check_spec(spec)
        if controller not in ("osc", "joint"):
            raise AdaptError(f"controller '{controller}': use osc (end-effector commands) or joint (joint targets)")
        self.spec, self.scene, self.controller = spec, scene, controller
        self.codec = ActionCodec(spec)
        robot = robosuite_robot(spec)
        two_arms = scene in TWO_ARM_SCENES
        if two_arms != (len(spec.end_effectors) == 2):
            raise AdaptError(
                f"'{spec.name}' has {len(spec.end_effectors)} end effector(s): "
                + ("two-arm scenes need two" if two_arms else f"pick a two-arm scene ({', '.join(TWO_ARM_SCENES)})")
            )
        if spec.mounts:  # copies of one arm: one robosuite robot each, side by side
            robots, layout = [robot] * len(spec.mounts), {"env_configuration": "parallel"}
        else:
            robots, layout = robot, {"env_configuration": "single-robot"} if two_arms else {}
        self.env = robosuite.make(
            scene,
            robots=robots,
            **layout,
            controller_configs=_controller_config(robot, controller),
            has_renderer=False,
            has_offscreen_renderer=False,  # made below, with our settings
            use_camera_obs=False,
            control_freq=spec.action.control_hz,
            ignore_done=True,
            hard_reset=False,
            initialization_noise="default",
            seed=seed,
        )
        try:
            self._make_renderer()
            self._bind()
        except Exception:
            self.close()
            raise
        self.things: list[Thing] = []

    def _make_renderer(self) -> None:
        """An offscreen renderer for `render`, showing visual geoms only (as robosuite's would)."""
        self.env.sim.model.vis.quality.offsamples = OFFSCREEN_SAMPLES
        context = MjRenderContextOffscreen(self.env.sim, device_id=-1)  # registers itself with the sim
        context.vopt.geomgroup[0], context.vopt.geomgroup[1] = 0, 1  # collision meshes hidden
        context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def _bind(self) -> None:
        """Look up the spec's joints, cameras and gripper in the compiled scene."""
        sim, robot = self.env.sim, self.env.robots[0]
        self.env.reset()
        missing = [c.name for c in self.spec.cameras if c.name not in sim.model.camera_names]
        if missing:
            raise AdaptError(
                f"'{self.spec.name}': cameras {missing} are not in robosuite's {self.scene} scene;"
                f" available: {', '.join(sim.model.camera_names)}"
            )
        names = [scene_joint(self.spec, name) for name in self.spec.joint_names]
        absent = [n for n in names if n not in sim.model.joint_names]
        if absent:
            raise AdaptError(f"'{self.spec.name}': joints {absent} are not in robosuite's {robot.name} model")
        self._qpos = np.array([sim.model.get_joint_qpos_addr(n) for n in names])
        self._qvel = np.array([sim.model.get_joint_qvel_addr(n) for n in names])
        self._free_robot_base()
        if self.spec.mounts and len(robot.arms) > 1:
            raise AdaptError(f"'{self.spec.name}': mounts copy a one-armed robot; robosuite's {robot.name} has two")
        hands = [(r, r.arms[0]) for r in self.env.robots] if self.spec.mounts else [(robot, a) for a in robot.arms]
        hands = hands[: len(self.spec.end_effectors)]
        self.hands = len(hands)
        self._eef_sites = [r.eef_site_id[arm] for r, arm in hands]
        self.base = sim.data.body_xpos[sim.model.body_name2id(robot.robot_model.root_body)][:2].copy()
        self._fingers = [r._ref_gripper_joint_pos_indexes[arm][0] for r, arm in hands]
        self._gripper_ranges = self._calibrate_grippers()

    def _free_robot_base(self) -> None:
        """Stop the robot's fixed base from touching its own first link at rest.

        With MuJoCo 3.3, Sawyer's first link rests in contact with its base, and the friction there
        holds the first joint still. Geoms of the fixed base touch nothing the scripts use, so
        collisions of those in contact with the robot are switched off.
        """
        model, data = self.env.sim.model, self.env.sim.data
        robots = tuple(f"robot{i}_" for i in range(len(self.env.robots)))
        for contact in data.contact[: data.ncon]:
            geoms = (contact.geom1, contact.geom2)
            bodies = [model.geom_bodyid[g] for g in geoms]
            if not all(model.body_id2name(b).startswith(robots) for b in bodies):
                continue
            for geom, body in zip(geoms, bodies, strict=True):
                if model.body_weldid[body] == 0:  # welded to the world: the base
                    model.geom_contype[geom] = model.geom_conaffinity[geom] = 0
                    log.debug("disabled collisions of %s (touches the robot at rest)", model.geom_id2name(geom))

    def _calibrate_grippers(self) -> list[tuple[float, float]]:
        """Each hand's finger joint position when fully open and fully closed on nothing, so gripper state maps
        to [-1, 1]."""
        ends = []
        for command in (-1.0, 1.0):
            for _ in range(CALIBRATION_STEPS):  # the arms hold still: no motion, or their joints' own positions
                arms = np.zeros(6 * self.hands) if self.controller == "osc" else self.joint_positions()
                self.step(np.r_[arms, np.full(self.hands, command)])
            ends.append(self.env.sim.data.qpos[self._fingers].astype(float))
        if np.any(np.abs(ends[1] - ends[0]) < 1e-6):
            raise AdaptError(f"'{self.spec.name}': a gripper does not move when commanded")
        return [(float(lo), float(hi)) for lo, hi in zip(ends[0], ends[1], strict=True)]

    def reset(self, rng: np.random.Generator, randomize: bool) -> None:
        """New episode: robosuite's own placement, then (with `randomize`) our colors and wider scatter.

        robosuite draws placements and joint noise from `env.rng`; it is re-seeded from `rng` in place (the
        placement sampler holds the same generator), so an episode depends on its own seed only.
        """
        self.env.rng.bit_generator.state = np.random.default_rng(rng.integers(2**63)).bit_generator.state
        self.env.reset()
        self._open_gripper_command()
        self.things = randomize_things(self.env, self.scene, rng) if randomize else default_things(self.env, self.scene)
        self.homes = [self.eef(hand)[1] for hand in range(self.hands)]
        if self.hands > 1:  # a two-armed robot starts with its hands turned in: home points each straight down
            self.homes = [pointing_down(rotation) for rotation in self.homes]

    def _open_gripper_command(self) -> None:
        """robosuite's grippers rate-limit their command and keep it (`current_action`) across soft resets,
        so an episode would start from whatever the previous one left (closed, after a lift): its outcome,
        and a dataset simulated by several workers, would depend on the episodes run before it. Every
        episode starts from the fully open command instead."""
        for gripper in (g for robot in self.env.robots for g in robot.gripper.values()):
            for _ in range(GRIPPER_SETTLE_LIMIT):
                before = np.array(getattr(gripper, "current_action", 0.0), copy=True)
                gripper.format_action(np.array([-1.0]))
                if np.array_equal(before, getattr(gripper, "current_action", 0.0)):
                    break

    def step(self, command: np.ndarray) -> None:
        """Execute one controller command for one control period: OSC_POSE (6 values in [-1, 1] per hand, then
        each hand's gripper), or with the joint controller absolute joint targets (rad) then the grippers."""
        if self.controller == "osc":
            command = np.clip(command, -1.0, 1.0)
        if len(self.env.robots) > 1:  # one robosuite robot per hand: each takes its arm's values, then its gripper
            arms = np.split(command[: -self.hands], self.hands)
            command = np.concatenate([np.r_[arm, grip] for arm, grip in zip(arms, command[-self.hands :], strict=True)])
        self.env.step(command)

    def step_spec_action(self, action: np.ndarray) -> None:
        """Execute one action of the spec's action space (the inverse of `spec_action`)."""
        kind = self.spec.action.kind
        if (kind == "ee_delta") != (self.controller == "osc"):
            raise AdaptError(f"'{self.spec.name}' acts in {kind}: make the scene with controller='{_CONTROLLER[kind]}'")
        arm, gripper = self.codec.split(action)
        gripper = np.clip(gripper[: self.hands], -1.0, 1.0)
        if kind == "joint_delta":
            arm = self.joint_positions() + arm
        self.step(np.concatenate([arm, gripper]))

    def holds(self, thing: Thing, floor: float, hand: int = 0) -> bool:
        """The object hangs near the hand's gripper, above where it could rest on a surface at height `floor`."""
        position, near = self.position(thing), self.eef(hand)[0]
        return np.linalg.norm(position - near) < thing.radius + 0.03 and position[2] > floor + thing.bottom + 0.03

    def render(self) -> dict[str, np.ndarray]:
        """uint8 (H, W, 3) frames of the spec's cameras, top row first."""
        return {
            c.name: self.env.sim.render(width=c.width, height=c.height, camera_name=c.name)[::-1]
            for c in self.spec.cameras
        }

    def joint_positions(self) -> np.ndarray:
        """Arm joint positions in the spec's joint order (rad)."""
        return self.env.sim.data.qpos[self._qpos].copy()

    @property
    def gripper_range(self) -> tuple[float, float]:
        """Hand 0's first finger joint position fully open and closed on nothing (what `gripper` maps to -1
        and 1)."""
        return self._gripper_ranges[0]

    def gripper(self, hand: int = 0) -> float:
        """Finger opening mapped to [-1 fully open, 1 closed on nothing]; a held object stops it in between."""
        lo, hi = self._gripper_ranges[hand]
        opening = self.env.sim.data.qpos[self._fingers[hand]]
        return float(np.clip(2.0 * (opening - lo) / (hi - lo) - 1.0, -1.0, 1.0))

    def state(self) -> np.ndarray:
        """The spec's proprio vector: its fields concatenated in the spec's order (float32)."""
        parts = {
            "joint_position": self.joint_positions,
            "joint_velocity": lambda: self.env.sim.data.qvel[self._qvel],
            "gripper": lambda: np.array([self.gripper(hand) for hand in range(self.hands)]),
        }
        return np.concatenate([parts[p.name]() for p in self.spec.proprio]).astype(np.float32)

    def eef(self, hand: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A hand's end-effector (grip site) position in the world (m) and its rotation matrix."""
        data, site = self.env.sim.data, self._eef_sites[hand]
        return data.site_xpos[site].copy(), data.site_xmat[site].reshape(3, 3).copy()

    def position(self, thing: Thing) -> np.ndarray:
        """Centre of an object's body in the world (m)."""
        return self.env.sim.data.body_xpos[thing.body].copy()

    def yaw(self, thing: Thing) -> float:
        """An object's rotation about the vertical axis (rad)."""
        w, x, y, z = self.env.sim.data.body_xquat[thing.body]
        return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pointing_down(rotation: np.ndarray) -> np.ndarray:
    """The rotation nearest `rotation` whose approach (z) axis points straight down: the same yaw of the fingers."""
    x = rotation[:, 0] * [1.0, 1.0, 0.0]
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0.0, 0.0])
    z = np.array([0.0, 0.0, -1.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


_CONTROLLER = {"ee_delta": "osc", "joint_position": "joint", "joint_delta": "joint"}


def controller_for(spec: EmbodimentSpec) -> str:
    """The robosuite controller that executes the spec's action kind (what evaluation and replay use)."""
    return _CONTROLLER[spec.action.kind]


JOINT_GAIN = 300
"""Stiffness of the joint-position controller that replays joint targets (robosuite's default, 50, lags)."""


def _controller_config(robot: str, controller: str) -> dict:
    """robosuite's default composite config for `robot`, its arms switched to absolute joint targets for 'joint'."""
    config = load_composite_controller_config(robot=robot)
    for side in ("right", "left") if controller == "joint" else ():
        if side not in config["body_parts"]:
            continue
        arm = config["body_parts"][side]
        config["body_parts"][side] = {
            "type": "JOINT_POSITION",
            "input_type": "absolute",
            "input_max": 2 * np.pi,
            "input_min": -2 * np.pi,
            "output_max": 2 * np.pi,
            "output_min": -2 * np.pi,
            "kp": JOINT_GAIN,
            "damping_ratio": 1,
            "impedance_mode": "fixed",
            "kp_limits": [0, 1000],
            "damping_ratio_limits": [0, 10],
            "qpos_limits": None,
            "interpolation": None,
            "ramp_ratio": 0.2,
            "gripper": arm["gripper"],
        }
    return config


def spec_action(spec: EmbodimentSpec, command: np.ndarray, q_before: np.ndarray, q_after: np.ndarray) -> np.ndarray:
    """One executed step in the spec's action space; the gripper part is the command's (-1 open, 1 close).

    - `ee_delta`: the OSC_POSE command itself, in [-1, 1] (robosuite's controller input; x 0.05 m and
      x 0.5 rad give the requested end-effector step), so the action replays through robosuite unchanged.
    - `joint_position`: the joint positions the step reached (the target a joint-position controller
      should be given to reproduce it), clipped to the spec's limits.
    - `joint_delta`: those positions minus the positions before the step (rad per control period).
    """
    kind, hands = spec.action.kind, spec.gripper.dim
    arm_dims = len(command) - hands
    gripper = np.array([np.sign(c) or -1.0 for c in command[arm_dims:]])
    if kind == "ee_delta":
        arm = np.clip(command[:arm_dims], -1.0, 1.0)
    elif kind == "joint_position":
        limits = np.array([j.position for j in spec.joints])
        arm = np.clip(q_after, limits[:, 0], limits[:, 1])
    else:
        arm = q_after - q_before
    return np.concatenate([arm, gripper]).astype(np.float32)
