"""Scripted behaviours of a two-armed robot: each hand an `Arm` with a script of its own, run in lockstep.

`together` steps both hands' scripts at once and joins their commands in the robot's layout (both hands' six
end-effector values, then both grippers); a hand whose script has finished holds where it is until the other's
has. A two-armed lift reaches both pot handles from above with the fingers across the grip bars, closes both
grippers, and raises the pot level, both hands at the same pace.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from adapt.sim.scenes import handles
from adapt.sim.scripted import HOVER, Arm, Script

LIFT = (0.15, 0.22)
"""How far (m) a two-armed lift raises the pot: robosuite's TwoArmLift succeeds above 10 cm."""


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
    """Both hands grasp their handle of TwoArmLift's pot and raise it level; whether robosuite calls it lifted."""
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
    return bool(arms[0].sim.env._check_success())
