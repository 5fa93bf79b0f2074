"""The scripted demonstrator as a policy: the reference `adapt eval` runs to prove its own harness.

It sees the simulator's state (object positions), not the camera frames, so it is an upper bound a
learned policy can be measured against, and a check that the evaluation loop — scene reset, task
text, stage tracking, action execution — lets a competent controller succeed. It drives robots whose
spec acts in end-effector space (`ee_delta`), where its commands are the spec's actions; for
joint-space robots the replay check (`benchmarks/harness.py`) proves the controller instead.
"""

from __future__ import annotations

import numpy as np

from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.sim.episodes import DEMOS
from adapt.sim.scripted import Arm, Style, check_drivable


class ScriptedExpert:
    """A `adapt.policy.Controller` around a scripted demo.

    `evaluate_closed_loop` hands it the simulation with `bind(sim)`; each episode's script starts at the
    first `step` after `reset`, from the scene as it is then. Once the script is done it holds still.
    """

    def __init__(self, spec: EmbodimentSpec, task: str, seed: int = 0):
        check_drivable(spec, "the scripted expert")
        if task not in DEMOS:
            raise AdaptError(f"no scripted demo for task '{task}'; tasks: {', '.join(DEMOS)}")
        self.spec, self.task, self.seed = spec, task, seed
        self.plans, self.sim, self.episodes = 0, None, 0
        self.reset()

    def bind(self, sim) -> None:
        self.sim = sim

    def predicted_frame(self) -> None:
        """The expert predicts no future."""

    def reset(self) -> None:
        self.script = None

    def step(self, observation: dict) -> np.ndarray:
        if self.sim is None:
            raise AdaptError("the scripted expert needs the simulation: call bind(sim) first")
        if self.script is None:
            rng = np.random.default_rng([self.seed, self.episodes])
            self.episodes += 1
            style = Style.sample(rng, proficient=True)
            self.script = DEMOS[self.task]([Arm(self.sim, rng, style, hand) for hand in range(self.sim.hands)])[1]
            self.plans += 1
        command = next(self.script, None)
        if command is None:  # done: stay put with the grippers as they are
            hands = range(self.sim.hands)
            command = np.r_[np.zeros(6 * len(hands)), [1.0 if self.sim.gripper(h) > -0.5 else -1.0 for h in hands]]
            self.script = iter(())
        return np.asarray(command, dtype=np.float32)
