"""Scripted behaviours of a two-armed robot: each hand an `Arm` with a script of its own, run in lockstep.

`together` steps both hands' scripts at once and joins their commands in the robot's layout (both hands' six
end-effector values, then both grippers); a hand whose script has finished holds where it is until the other's
has. A two-armed lift reaches both pot handles from above with the fingers across the grip bars, closes both
grippers, and raises the pot level, both hands at the same pace. A handover (`hand_over`) has the first hand pick
TwoArmHandover's hammer up by the head's end of its handle, carry it to a point between the arms with the head
turned towards its own side, and hold it there while the second hand takes the other end, then let go. Two-armed
play (`play_together`) strings lifts, put-downs, one-handed tries at a handle, reaches of each hand about its own
side of the table, and pauses.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from adapt.sim.scenes import hammer_handle, handles, succeeded
from adapt.sim.scripted import HOVER, REACH, Arm, Script

LIFT = (0.15, 0.22)
"""How far (m) a two-armed lift raises the pot: robosuite's TwoArmLift succeeds above 10 cm."""
HANDOVER = np.array([-0.15, 0.0, 0.03])
"""Where the hammer changes hands, from the midpoint of the hands' starting positions (m): a little nearer the
robot, between the arms, where both reach with room to turn the wrist."""
GRIPS = (0.25, -0.3)
"""Where each hand takes the handle, in handle lengths from its centre towards the head: the first near the head,
the second near the butt."""
HEAD_SPREAD = np.radians(50)
"""The carrying hand turns the hammer until its head points within this of the hand's own side (no further: a
wrist turned half a turn reaches its joint limit)."""


def together(arms: list[Arm], scripts: list[Script]) -> Generator[np.ndarray, None, list[bool]]:
    """Run one script per hand in lockstep until all have finished; returns each script's result."""
    results: list[bool | None] = [None] * len(arms)
    while True:
        commands = []
        for i, (arm, script) in enumerate(zip(arms, scripts, strict=True)):
            if results[i] is None:
                try:
                    commands.append(next(script))
                    continue
                except StopIteration as done:
                    results[i] = bool(done.value)
            commands.append(arm.hold_command())
        if all(r is not None for r in results):
            break
        yield np.r_[np.concatenate([c[:6] for c in commands]), [c[6] for c in commands]]
    return [bool(r) for r in results]


def bar_yaw(arm: Arm, bar: np.ndarray) -> float:
    """Yaw about the hand's home that puts the fingers across a grip bar along `bar` (the fingers close along the
    hand's x axis; a bar looks the same turned half a turn)."""
    home = arm.sim.homes[arm.hand]
    across = np.arctan2(bar[1], bar[0]) - np.arctan2(home[1, 1], home[0, 1])
    return float((across + np.pi / 2) % np.pi - np.pi / 2)


def lift_together(arms: list[Arm]) -> Script:
    """Both hands grasp their handle of TwoArmLift's pot and raise it level; whether it is lifted (`succeeded`)."""
    grips = handles(arms[0].sim.env)
    above = [
        arm.move(at + [0, 0, HOVER], yaw=bar_yaw(arm, bar), grip=-1.0, steps=150)
        for arm, (at, bar) in zip(arms, grips, strict=True)
    ]
    yield from together(arms, above)
    grips = handles(arms[0].sim.env)
    yield from together(arms, [arm.move(at, tol=0.006, steps=80) for arm, (at, _) in zip(arms, grips, strict=True)])
    yield from together(arms, [arm.hold(12, grip=1.0) for arm in arms])
    height = arms[0].rng.uniform(*LIFT)
    yield from together(arms, [arm.move(arm.sim.eef(arm.hand)[0] + [0, 0, height], steps=80) for arm in arms])
    yield from together(arms, [arm.hold(int(arms[0].rng.integers(5, 15))) for arm in arms])
    return succeeded(arms[0].sim.env)


def put_down(arms: list[Arm], heights: list[float]) -> Script:
    """Lower the held pot until each hand is back at the height it grasped at, let go, and rise clear of it."""
    yield from together(
        arms,
        [
            arm.move(arm.sim.eef(arm.hand)[0] * [1, 1, 0] + [0, 0, z], steps=80)
            for arm, z in zip(arms, heights, strict=True)
        ],
    )
    yield from let_go(arms)
    return True


def let_go(arms: list[Arm]) -> Script:
    """Open both hands where they are and rise clear of the handles."""
    yield from together(arms, [arm.hold(8, grip=-1.0) for arm in arms])
    yield from together(arms, [arm.move(arm.sim.eef(arm.hand)[0] + [0, 0, HOVER], steps=40) for arm in arms])
    return True


def reach_own_side(arm: Arm) -> Script:
    """Play: one hand goes somewhere above its own half of the table (the right hand right of the pot, the left
    hand left of it), with a new wrist yaw, so the two arms never cross."""
    side = -1.0 if arm.hand == 0 else 1.0
    xy = arm.centre + [arm.rng.uniform(*REACH[0]), side * arm.rng.uniform(0.1, REACH[1][1] + 0.08)]
    yield from arm.move(np.r_[xy, arm.floor + arm.rng.uniform(0.12, 0.32)], yaw=arm.rng.uniform(-0.8, 0.8), steps=60)
    yield from arm.hold(int(arm.rng.integers(0, 12)))
    return True


def touch_handle(arm: Arm, tidy: bool = False) -> Script:
    """Play: one hand goes down onto its handle, maybe closes on it (never when `tidy`), lets go and rises again;
    the pot stays put."""
    at, bar = handles(arm.sim.env)[arm.hand]
    yield from arm.move(at + [0, 0, HOVER], yaw=bar_yaw(arm, bar), grip=-1.0, steps=100)
    yield from arm.move(at, tol=0.008, steps=60)
    yield from arm.hold(int(arm.rng.integers(6, 14)), grip=-1.0 if tidy else float(arm.rng.choice([-1.0, 1.0])))
    yield from arm.hold(6, grip=-1.0)
    yield from arm.move(arm.sim.eef(arm.hand)[0] + [0, 0, HOVER], steps=40)
    return True


def play_together(arms: list[Arm], log: list[list], lift_text: str, tidy: bool = False) -> Script:
    """Endless two-armed play in TwoArmLift's scene: the recorder stops it at the episode's length.

    `log` gets [description, succeeded] as each part starts, as one-armed play's does: a lift is named
    `lift_text` from the start of its try until it ends; a try that lifts is held a while, put down and let go
    (unnamed), and one that does not lift is let go. Reaches, one-handed touches of a handle and pauses go
    unnamed; `tidy` play closes the fingers only to lift."""
    rng = arms[0].rng
    while True:
        roll = rng.random()
        if roll < 0.3:
            log.append([None, True])
            yield from together(arms, [reach_own_side(arm) for arm in arms])
        elif roll < 0.45:
            log.append([None, True])
            hand = int(rng.integers(len(arms)))
            yield from together(arms, [touch_handle(a, tidy) if a.hand == hand else a.hold(1) for a in arms])
        elif roll < 0.9:
            grasped_at = [at[2] for at, _ in handles(arms[0].sim.env)]
            log.append([lift_text, False])
            lifted = log[-1][1] = yield from lift_together(arms)
            log.append([None, True])
            if lifted:
                yield from together(arms, [arm.hold(int(rng.integers(0, 20))) for arm in arms])
                yield from put_down(arms, grasped_at)
            else:
                yield from let_go(arms)
        else:
            log.append([None, True])
            yield from together(arms, [arm.hold(int(rng.integers(10, 30))) for arm in arms])


def hand_over(arms: list[Arm]) -> Script:
    """The first hand picks TwoArmHandover's hammer up and hands it to the second; whether robosuite calls it
    handed over (the second hand holds the handle, the first nothing, the hammer 10 cm above the table)."""
    giver, taker = arms
    env = giver.sim.env
    start = (giver.sim.eef(giver.hand)[0] + taker.sim.eef(taker.hand)[0]) / 2
    centre, towards, length = hammer_handle(env)
    grip = centre + towards * GRIPS[0] * length
    yield from together(arms, [giver.move(grip + [0, 0, HOVER], yaw=bar_yaw(giver, towards), grip=-1.0), taker.hold(1)])
    yield from together(arms, [giver.move(grip, tol=0.006, steps=60), taker.hold(1)])
    yield from together(arms, [giver.hold(12, grip=1.0), taker.hold(1)])
    yield from together(arms, [giver.move(giver.sim.eef(giver.hand)[0] + [0, 0, 0.2], steps=60), taker.hold(1)])
    _, towards, _ = hammer_handle(env)
    own_side = np.array([0.0, -1.0 if giver.sim.eef(giver.hand)[0][1] < start[1] else 1.0])
    off = (np.arctan2(towards[1], towards[0]) - np.arctan2(own_side[1], own_side[0]) + np.pi) % (2 * np.pi) - np.pi
    turn = -np.sign(off) * max(abs(off) - HEAD_SPREAD, 0.0)
    yield from together(arms, [giver.move(start + HANDOVER, yaw=giver.yaw + turn, steps=150), taker.hold(1)])
    centre, towards, length = hammer_handle(env)
    butt = centre + towards * GRIPS[1] * length
    yield from together(
        arms, [giver.hold(1), taker.move(butt + [0, 0, HOVER], yaw=bar_yaw(taker, towards), grip=-1.0, steps=150)]
    )
    centre, towards, length = hammer_handle(env)
    yield from together(arms, [giver.hold(1), taker.move(centre + towards * GRIPS[1] * length, tol=0.006, steps=60)])
    yield from together(arms, [giver.hold(1), taker.hold(12, grip=1.0)])
    yield from together(arms, [giver.hold(10, grip=-1.0), taker.hold(1)])
    away = giver.sim.eef(giver.hand)[0] + [0, 0.1 * own_side[1], 0.1]
    yield from together(arms, [giver.move(away, steps=40), taker.hold(int(giver.rng.integers(5, 15)))])
    return succeeded(env)
