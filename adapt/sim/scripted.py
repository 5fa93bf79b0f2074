"""Scripted controllers: waypoints in end-effector space, turned into OSC_POSE commands step by step.

Each behaviour is a generator that yields one 7-value command per control step and reads the scene
again before the next, so it reacts to what actually happened (a cube that slipped, a grasp that
missed). Sub-tasks return whether they succeeded; `grasp` retries after a miss, and its first attempt
sometimes aims off on purpose (`Style.miss`), so play data shows failures and recoveries rather than
clean repetitions. Every episode also draws its own speed and command noise; task demonstrations are
drawn proficient (`Style.sample(rng, proficient=True)`: no deliberate miss, little noise).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.sim.env import SimEnv
from adapt.sim.scenes import Thing, table_centre

Script = Generator[np.ndarray, None, bool]
"""Yields OSC_POSE commands (7 values in [-1, 1]); returns whether it achieved what it set out to do."""
GAIN = 2.0
"""Command per unit of error, in the controller's units (5 cm and 0.5 rad per step at command 1)."""
POS_SCALE, ROT_SCALE = 0.05, 0.5
HOVER = 0.1
"""Height (m) above an object from which grasps and pushes start, so the approach clears it."""
ATTEMPTS = 3
REOPEN = 6
"""Control steps the fingers get to open again after a grasp that missed."""
DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "forward": (1.0, 0.0), "back": (-1.0, 0.0)}
"""Push and move directions as the front camera (agentview) shows them: left and right of the image,
forward towards the camera (away from the robot), back towards the robot."""
REACH = ((-0.16, 0.16), (-0.24, 0.24))
"""x and y ranges (m) around the table centre that scripts keep the gripper and objects within."""


def check_drivable(spec: EmbodimentSpec, what: str) -> None:
    """Refuse `what` (a use of the scripted demonstrator as a policy) for a spec not acting in end-effector
    deltas: the demonstrator's OSC commands are such a spec's actions and no other's."""
    if spec.action is None or spec.action.kind != "ee_delta":
        kind = spec.action.kind if spec.action else "none"
        raise AdaptError(
            f"{what}: the scripted demonstrator drives end-effector (ee_delta) robots; '{spec.name}' acts in {kind}"
        )


@dataclass(frozen=True)
class Style:
    """How one episode moves; drawn per episode so no two episodes move alike."""

    speed: float
    """Largest translation command on any axis (0.35 to 0.9: slow and careful to brisk)."""
    noise: float
    """Standard deviation of the Gaussian noise added to every command."""
    miss: float
    """Probability that a grasp's first attempt aims 2.5 to 4 cm off the object."""

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        proficient: bool = False,
        *,
        calm: bool = False,
        tidy: bool = False,
        retries: bool = False,
    ) -> Style:
        """A varied style for play; with `proficient` the style of a task demonstration (calm and tidy).

        `calm`: move as a demonstration does (speed 0.5-0.9, command noise sd 0-0.03) instead of play's
        slow-to-brisk, noisier pace. `tidy`: no deliberate misses. A demonstration's first grasp aims at the
        object: a deliberate miss cannot be told apart from a real attempt in the frames, so behaviour cloning
        learns to aim off at random (the base trained on such demos stopped centimetres beside the cube).
        Misses still happen and are retried. `retries`: tidy, but first grasps still aim off on purpose as
        play's do, so the play shows misses recovered (hindsight labels the off-aim try as play and the
        recovery as the task: `adapt.sim.episodes`)."""
        calm, tidy = calm or proficient, tidy or proficient
        speed, noise = (
            (rng.uniform(0.5, 0.9), rng.uniform(0.0, 0.03))
            if calm
            else (rng.uniform(0.35, 0.9), rng.uniform(0.02, 0.12))
        )
        return cls(speed=speed, noise=noise, miss=0.0 if tidy and not retries else rng.uniform(0.1, 0.35))


class Arm:
    """Drives one hand's gripper (`hand`: 0, or 1 on a two-armed robot) to positions and yaws (about its
    pointing-down home orientation) by P-control; its commands are that hand's 7 values."""

    def __init__(self, sim: SimEnv, rng: np.random.Generator, style: Style, hand: int = 0):
        self.sim, self.rng, self.style, self.hand = sim, rng, style, hand
        self.gain = GAIN
        self.yaw, self.grip = 0.0, -1.0
        self.floor = min(sim.position(t)[2] - t.bottom for t in sim.things)
        """Height (m) of the surface the objects stand on; targets stay above it."""
        self.centre = table_centre(sim.env)

    def move(self, target, *, yaw: float | None = None, grip: float | None = None, tol=0.01, steps=80) -> Script:
        """Go to `target` (world xyz, m); True once within `tol`, False when `steps` run out."""
        self.yaw = self.yaw if yaw is None else yaw
        self.grip = self.grip if grip is None else grip
        target = np.asarray(target, dtype=float).copy()
        target[2] = max(target[2], self.floor + 0.012)  # fingertips reach about a centimetre below the grip site
        for _ in range(steps):
            position, rotation = self.sim.eef(self.hand)
            if np.linalg.norm(target - position) < tol:
                return True
            yield self._command(target - position, rotation)
        return False

    def hold(self, steps: int, grip: float | None = None) -> Script:
        """Stay where the gripper is (e.g. while it closes) for `steps` control steps."""
        here = self.sim.eef(self.hand)[0]
        yield from self.move(here, grip=grip, tol=0.0, steps=steps)
        return True

    def hold_command(self) -> np.ndarray:
        """One command that keeps the hand where it is, fingers as they are."""
        return self._command(np.zeros(3), self.sim.eef(self.hand)[1])

    def _command(self, error: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        translation = np.clip(error / POS_SCALE * self.gain, -1.0, 1.0)
        translation *= min(1.0, self.style.speed / max(np.abs(translation).max(), 1e-9))
        goal = Rotation.from_euler("z", self.yaw).as_matrix() @ self.sim.homes[self.hand]
        turn = np.clip(Rotation.from_matrix(goal @ rotation.T).as_rotvec() / ROT_SCALE * self.gain, -1.0, 1.0)
        noisy = np.r_[translation, turn] + self.rng.normal(0.0, self.style.noise, 6)
        return np.r_[np.clip(noisy, -1.0, 1.0), self.grip]

    def grasp_yaw(self, thing: Thing) -> float:
        """Yaw that lines the fingers up with a cube's faces (cubes look the same every 90 degrees)."""
        home = self.sim.homes[self.hand]
        home = np.arctan2(home[1, 0], home[0, 0])
        return float((self.sim.yaw(thing) - home + np.pi / 4) % (np.pi / 2) - np.pi / 4)

    def holds(self, thing: Thing) -> bool:
        """The object hangs between the fingers above where it could rest."""
        return self.sim.holds(thing, self.floor, self.hand)

    def spot(self, radius: float, avoid: list[Thing]) -> np.ndarray | None:
        """A free table spot (world xy) within reach, clear of the `avoid` objects; None if none is found."""
        for _ in range(20):
            xy = self.centre + [self.rng.uniform(*REACH[0]), self.rng.uniform(*REACH[1])]
            if all(np.linalg.norm(xy - self.sim.position(t)[:2]) > radius + t.radius + 0.04 for t in avoid):
                return xy
        return None


def grasp(arm: Arm, thing: Thing) -> Script:
    """Pick `thing` up to a hand's width above its surface, retrying after a miss."""
    for attempt in range(ATTEMPTS):
        if (yield from grasp_attempt(arm, thing, attempt)):
            return True
    yield from reopen(arm)
    return False


def reopen(arm: Arm) -> Script:
    """Open the fingers a missed grasp closed: at the start of the next try, or after the last one."""
    yield from arm.hold(REOPEN, grip=-1.0)


def grasp_attempt(arm: Arm, thing: Thing, attempt: int) -> Script:
    """One try of `grasp` (the first may aim off on purpose, `Style.miss`). A try of its own so that hindsight
    labels can name the one that lifted. A retry starts by opening the fingers the miss closed, so the recovery
    belongs to the try that lifts: what a policy told to lift must do when it has closed on nothing."""
    if attempt > 0:
        yield from reopen(arm)
    centre, yaw = arm.sim.position(thing), arm.grasp_yaw(thing)
    if attempt == 0 and arm.rng.random() < arm.style.miss:
        angle = arm.rng.uniform(-np.pi, np.pi)
        centre[:2] += arm.rng.uniform(0.025, 0.04) * np.array([np.cos(angle), np.sin(angle)])
    yield from arm.move(centre + [0, 0, HOVER], yaw=yaw, grip=-1.0)
    yield from arm.move(centre, tol=0.008, steps=40)
    yield from arm.hold(8, grip=1.0)
    yield from arm.move(arm.sim.eef()[0] + [0, 0, HOVER], steps=30)
    return arm.holds(thing)


def place(arm: Arm, thing: Thing, xy: np.ndarray, surface: float) -> Script:
    """Carry the held `thing` over `xy`, set it down on a surface at height `surface` (m), let go, back off."""
    offset = arm.sim.eef()[0] - arm.sim.position(thing)  # where the object hangs below the grip site
    rest = np.r_[xy, surface + thing.bottom + 0.005] + offset
    yield from arm.move(rest + [0, 0, HOVER])
    yield from arm.move(rest, tol=0.008, steps=50)
    yield from arm.hold(6, grip=-1.0)
    yield from arm.move(arm.sim.eef()[0] + [0, 0, HOVER * 0.8], steps=30)
    return bool(np.linalg.norm(arm.sim.position(thing)[:2] - xy) < 0.03)


def lift(arm: Arm, thing: Thing, put_back: bool = True) -> Script:
    """Pick `thing` up, raise it high and hold it there; then set it down again (`put_back`) for the next sub-task."""
    start = arm.sim.position(thing)[:2]
    if not (yield from grasp(arm, thing)):
        return False
    yield from arm.move(arm.sim.eef()[0] * [1, 1, 0] + [0, 0, arm.floor + arm.rng.uniform(0.18, 0.26)])
    yield from arm.hold(int(arm.rng.integers(5, 15)))
    lifted = arm.holds(thing)
    if lifted and put_back:
        lifted = yield from place(arm, thing, start + arm.rng.normal(0.0, 0.02, 2), arm.floor)
    return lifted


def move_to(arm: Arm, thing: Thing, side: str, others: list[Thing]) -> Script:
    """Pick `thing` up and set it down on the `side` (a DIRECTIONS key) of the table."""
    direction = np.array(DIRECTIONS[side])
    for _ in range(20):
        xy = arm.spot(thing.radius, others)
        if xy is not None and (xy - arm.centre) @ direction > 0.08:
            break
    else:
        return False
    if not (yield from grasp(arm, thing)):
        return False
    return (yield from place(arm, thing, xy, arm.floor))


def stack(arm: Arm, thing: Thing, base: Thing) -> Script:
    """Put `thing` on top of `base`; True when it stays there after the gripper lets go."""
    if not (yield from grasp(arm, thing)):
        return False
    below = arm.sim.position(base)
    yield from place(arm, thing, below[:2], below[2] + base.top)
    above = arm.sim.position(thing)
    return bool(np.linalg.norm(above[:2] - below[:2]) < base.radius and above[2] > below[2] + base.top)


def push(arm: Arm, thing: Thing, side: str) -> Script:
    """Push `thing` 8 to 14 cm towards `side` with closed fingers; True if it moved at least 4 cm that way."""
    direction = np.r_[DIRECTIONS[side], 0.0]
    start = arm.sim.position(thing)
    behind = start - direction * (thing.radius + 0.045)
    behind[2] = arm.floor + 0.015
    yield from arm.move(behind + [0, 0, HOVER], yaw=arm.rng.uniform(-0.5, 0.5), grip=1.0)
    yield from arm.move(behind, tol=0.01, steps=40)
    yield from arm.move(behind + direction * (thing.radius + 0.045 + arm.rng.uniform(0.08, 0.14)), steps=60)
    yield from arm.move(arm.sim.eef()[0] + [0, 0, HOVER], steps=30)
    return bool((arm.sim.position(thing) - start) @ direction > 0.04)


def push_sides(arm: Arm, thing: Thing) -> list[str]:
    """Directions `thing` can be pushed 15 cm without leaving the reachable part of the table."""
    xy = arm.sim.position(thing)[:2] - arm.centre
    low, high = np.array([r[0] for r in REACH]), np.array([r[1] for r in REACH])
    return [
        s for s, d in DIRECTIONS.items() if np.all((low <= xy + 0.15 * np.array(d)) & (xy + 0.15 * np.array(d) <= high))
    ]


def reach(arm: Arm, regrip: bool = True) -> Script:
    """Play: go somewhere in the workspace with a new wrist yaw, maybe (`regrip`) opening or closing the fingers."""
    target = np.r_[arm.centre + [arm.rng.uniform(*REACH[0]), arm.rng.uniform(*REACH[1])], 0.0]
    target[2] = arm.floor + arm.rng.uniform(0.03, 0.3)
    grip = float(arm.rng.choice([-1.0, 1.0])) if regrip and arm.rng.random() < 0.4 else None
    yield from arm.move(target, yaw=arm.rng.uniform(-1.0, 1.0), grip=grip, steps=60)
    yield from arm.hold(int(arm.rng.integers(0, 12)))
    return True
