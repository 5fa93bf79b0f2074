"""What one episode of each kind does, and how it is recorded.

- `play`: purposeful but unstructured interaction with the cubes of a scene (two in robosuite's Stack
  scene, or the Lift scene's one; reach, push, pick up, put down, pause) for as long as asked; no goal,
  so the task text only names the objects. With hindsight labels, each frame says what the arm was doing
  there, as an annotator would write it afterwards: "lift the red cube" from the start of the try that
  picks a cube up until it hangs in the fingers (missed tries before it are play), "push the red cube to
  the left" while a push moves it, the episode's text elsewhere (reaching about, pauses, putting down,
  and whatever failed). Play varies its pace and command noise episode by episode, sometimes aims a grasp
  off on purpose and opens or closes the fingers while reaching about; `calm` play moves as a
  demonstration does, and `tidy` play closes the fingers only to pick something up (no deliberate misses,
  no closed-hand pushes, reaches keep the grip): a policy imitates the manner of its play along with
  the task (the adaptation benchmark measures both kinds; README, Benchmarks). `retries` keeps tidy play's
  deliberate misses: a try that lifts after a miss begins by opening the closed fingers, so hindsight
  labels show a policy told to lift how to recover from closing on nothing, and the off-aim try stays play.
- `multitask`: a random scene (Lift, Stack or PickPlaceCan, randomized) and a chain of 3 to 6
  sub-tasks done one after the other; the task text lists the sub-tasks that succeeded, in order.
- `demo`: one robosuite task, kept only if it succeeds (`scenes.succeeded`; a two-armed robot: TwoArmLift,
  both hands together, `adapt.sim.bimanual`). Its scene is dressed the
  way `adapt eval` dresses it (recoloured, scattered objects), so a policy learned from demos is
  evaluated on the distribution it was trained on.
- `corrections`: a learned policy drives the robot for a random while (unrecorded), then the scripted
  demonstrator takes over from wherever the policy left the arm and the object, and what it does from
  there is a `demo` (recorded, kept only on success). Behaviour cloning sees only the states its
  demonstrator visits; these episodes start in the states the policy itself drifts into and show how to
  recover from them (the idea of DAgger, with the demonstrator acting instead of only labelling, so the
  recorded video and actions stay one consistent trajectory).

Recording convention: frame t and state t are observed before command t is executed; action t is
that step expressed in the spec's action space (`adapt.sim.env.spec_action`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from adapt.data.episode import Episode
from adapt.embodiment import EmbodimentSpec
from adapt.sim import bimanual, scripted
from adapt.sim.env import SimEnv, spec_action
from adapt.sim.scenes import SCENES, succeeded
from adapt.sim.scripted import Arm, Script, Style

PLAY_SCENES = ("Stack", "Lift")
"""Where play can happen: robosuite's Stack scene (two cubes; the default) or its Lift scene (one cube)."""
SETTLE = 10
"""Steps recorded after the last sub-task, so an episode does not end mid-motion."""
PUSH_TEXT = {
    "left": "to the left",
    "right": "to the right",
    "forward": "away from the robot",
    "back": "towards the robot",
}
PLACE_TEXT = {
    "left": "on the left of the table",
    "right": "on the right of the table",
    "forward": "far from the robot",
    "back": "close to the robot",
}
"""How task text says the DIRECTIONS of `adapt.sim.scripted` (left and right as the front camera sees them)."""


LEAD_STEPS = (10, 120)
"""Range of control steps the learned policy drives before the demonstrator takes over (`corrections`)."""


class SimPool:
    """One SimEnv per scene, made on first use and kept for the following episodes (making one takes seconds),
    and the learned policy of `corrections`, loaded on first use."""

    def __init__(self, spec: EmbodimentSpec, seed: int, policy: str | None = None):
        self.spec, self.seed, self.policy_path = spec, seed, policy
        self._envs: dict[str, SimEnv] = {}
        self._policy = None

    def policy(self):
        """The learned policy (`adapt.policy.Policy`) that leads `corrections` episodes."""
        if self._policy is None:
            from adapt.policy import Policy

            self._policy = Policy.load(self.policy_path, self.spec.name)
        return self._policy

    def get(self, scene: str) -> SimEnv:
        if scene not in self._envs:
            self._envs[scene] = SimEnv(self.spec, scene, seed=self.seed)
        return self._envs[scene]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def __enter__(self) -> SimPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def simulate(
    pool: SimPool,
    kind: str,
    task: str,
    seed: np.random.SeedSequence,
    max_frames: int,
    hindsight: bool = False,
    play_scene: str = PLAY_SCENES[0],
    calm: bool = False,
    tidy: bool = False,
    retries: bool = False,
) -> Episode | None:
    """One episode of `kind` (at most `max_frames` long); None when a demo did not succeed. Play only:
    `hindsight` labels each frame with the sub-task it belongs to (see the module's docstring),
    `play_scene` is one of PLAY_SCENES, `calm`, `tidy` and `retries` as in the module's docstring."""
    rng = np.random.default_rng(seed)
    scene = str(rng.choice(SCENES)) if kind == "multitask" else play_scene if kind == "play" else task
    sim = pool.get(scene)
    sim.reset(rng, randomize=True)
    play = kind == "play"
    manner = {"calm": calm and play, "tidy": tidy and play, "retries": retries and play}
    style = Style.sample(rng, kind in ("demo", "corrections"), **manner)
    arms = [Arm(sim, rng, style, hand) for hand in range(sim.hands)]
    arm = arms[0]
    if kind == "corrections":
        lead(pool.policy(), sim, task, int(rng.integers(*LEAD_STEPS, endpoint=True)), int(rng.integers(2**31)))
    log: list[list] = []
    if play and len(arms) > 1:
        script = bimanual.play_together(arms, log, task_text("TwoArmLift", _names(arm)), tidy)
    else:
        script = _play(arm, log, tidy) if play else _multitask(arm, log) if kind == "multitask" else _demo(arms, log)
    frames, state, action, segments = record(sim, script, max_frames, log)
    done = [description for description, ok in log if ok]
    if kind == "play":
        text = "play with the " + " and the ".join(t.name for t in sim.things)
        if hindsight:
            labels = [description if ok and description else text for description, ok in log]
            labels.append(text)  # segment -1: before the first sub-task
            return Episode(text, frames, state, action, [labels[s] for s in segments])
    elif kind in ("demo", "corrections"):
        if not done:
            return None
        text = done[0]
    else:
        text = ", then ".join(done) if done else f"try to {log[0][0]}"
    return Episode(text, frames, state, action)


def lead(policy, sim: SimEnv, task: str, steps: int, seed: int) -> None:
    """Let `policy` drive `sim` for `steps` control steps from a fresh episode (nothing is recorded); its
    sampling noise is re-seeded from the episode's seed, so the episode does not depend on the ones before."""
    policy.reset()
    policy.generator.manual_seed(seed)
    text = task_text(task, [t.name for t in sim.things])
    for _ in range(steps):
        sim.step_spec_action(policy.step(sim.render() | {"state": sim.state(), "task": text}))


def replay(sim: SimEnv, seed: np.random.SeedSequence, actions: np.ndarray) -> bool:
    """Re-execute a play or demo episode's recorded spec actions from the scene `simulate` made with `seed`; whether
    the task succeeded at any step (`scenes.succeeded`). `sim` must run the controller `adapt eval` gives the
    spec's action kind, so this proves the actions mean what evaluation will take them to mean."""
    sim.reset(np.random.default_rng(seed), randomize=True)
    success = False
    for action in actions:
        sim.step_spec_action(action)
        success = success or succeeded(sim.env)
    return success


def record(
    sim: SimEnv, script: Script, max_frames: int, log: list[list]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[int]]:
    """Run `script` for at most `max_frames` steps: frames per camera (T, H, W, 3), state and action (T, dim),
    and per frame the index in `log` of the sub-task under way (-1 before the first: the script appends to
    `log` as a sub-task starts, so its last entry is the one that produced the step's command)."""
    frames: dict[str, list[np.ndarray]] = {c.name: [] for c in sim.spec.cameras}
    states, actions, segments = [], [], []
    for command in itertools.islice(script, max_frames):
        for name, frame in sim.render().items():
            frames[name].append(frame)
        states.append(sim.state())
        segments.append(len(log) - 1)
        before = sim.joint_positions()
        sim.step(command)
        actions.append(spec_action(sim.spec, command, before, sim.joint_positions()))
    return {k: np.stack(v) for k, v in frames.items()}, np.stack(states), np.stack(actions), segments


def _play(arm: Arm, log: list[list], tidy: bool = False) -> Script:
    """Endless play: the recorder stops it at the episode's length; `tidy` play never pushes and never
    changes the grip while reaching (those rolls pick something up instead).

    `log` gets [description, succeeded] as each part starts (description None: nothing to name), which is
    what hindsight labels are made of."""
    things = arm.sim.things
    while True:
        thing = things[int(arm.rng.integers(len(things)))]
        others = [t for t in things if t is not thing]
        roll = arm.rng.random()
        if roll < 0.35:
            log.append([None, True])
            yield from scripted.reach(arm, regrip=not tidy)
        elif roll < 0.55 and not tidy and scripted.push_sides(arm, thing):
            side = str(arm.rng.choice(scripted.push_sides(arm, thing)))
            log.append([f"push the {thing.name} {PUSH_TEXT[side]}", False])
            log[-1][1] = yield from scripted.push(arm, thing, side)
        elif roll < 0.9:
            yield from _pick_and_put(arm, thing, others, log, tidy)
        else:
            log.append([None, True])
            yield from arm.hold(int(arm.rng.integers(10, 30)))


def _pick_and_put(arm: Arm, thing, others, log: list[list], tidy: bool = False) -> Script:
    """Play: pick something up, wave it about a little, and put it down somewhere free.

    Hindsight names the try that lifted it "lift the ..."; the misses before it are play, as an annotator
    labels what was achieved (a miss under the task's words teaches a policy to aim beside the cube)."""
    for attempt in range(scripted.ATTEMPTS):
        log.append([task_text("Lift", [thing.name]), False])
        lifted = log[-1][1] = yield from scripted.grasp_attempt(arm, thing, attempt)
        if lifted:
            break
    log.append([None, True])  # what follows (waving it about, putting it down) goes unnamed
    if not lifted:
        yield from scripted.reopen(arm)
        return False
    for _ in range(int(arm.rng.integers(0, 3))):
        yield from scripted.reach(arm, regrip=not tidy)
    xy = arm.spot(thing.radius, others)
    if xy is None:
        xy = arm.sim.position(thing)[:2]
    return (yield from scripted.place(arm, thing, xy, arm.floor))


def _multitask(arm: Arm, log: list[list]) -> Script:
    """A chain of sub-tasks picked one at a time, each suited to the scene as the previous one left it.

    `log` gets [description, succeeded] per sub-task as it starts, so a cut-off episode still says what it tried.
    """
    count = int(arm.rng.integers(1, 3)) if arm.sim.scene == "PickPlaceCan" else int(arm.rng.integers(3, 7))
    for index in range(count):
        description, behaviour = _subtask(arm, last=index == count - 1)
        log.append([description, False])
        log[-1][1] = bool((yield from behaviour))
    yield from arm.hold(SETTLE)
    return any(ok for _, ok in log)


def _subtask(arm: Arm, last: bool) -> tuple[str, Script]:
    """A sub-task for the scene: its description and its behaviour."""
    things, rng = arm.sim.things, arm.rng
    if arm.sim.scene == "PickPlaceCan":
        can = things[0]
        if last:
            return task_text("PickPlaceCan", [can.name]), _to_goal(arm, can)
        return task_text("Lift", [can.name]), scripted.lift(arm, can)
    thing = things[int(rng.integers(len(things)))]
    others = [t for t in things if t is not thing]
    roll = rng.random()
    if others and roll < 0.35:
        return task_text("Stack", [thing.name, others[0].name]), scripted.stack(arm, thing, others[0])
    sides = scripted.push_sides(arm, thing)
    if sides and roll < 0.55:
        side = str(rng.choice(sides))
        return f"push the {thing.name} {PUSH_TEXT[side]}", scripted.push(arm, thing, side)
    if roll < 0.8:
        side = str(rng.choice(list(scripted.DIRECTIONS)))
        return f"put the {thing.name} {PLACE_TEXT[side]}", scripted.move_to(arm, thing, side, others)
    return task_text("Lift", [thing.name]), scripted.lift(arm, thing)


def _to_goal(arm: Arm, thing) -> Script:
    """Carry `thing` to its goal (the can's spot in the target bin, aimed 8 cm short of it towards the robot:
    the far corner of the bin is at the edge of some arms' reach, and robosuite accepts +-10 cm)."""
    if not (yield from scripted.grasp(arm, thing)):
        return False
    goal = np.array(thing.goal)
    towards_robot = (arm.sim.base - goal[:2]) / np.linalg.norm(arm.sim.base - goal[:2])
    yield from scripted.place(arm, thing, goal[:2] + 0.08 * towards_robot, goal[2])
    return succeeded(arm.sim.env)


TASK_TEXT = {
    "Lift": "lift the {0}",
    "Stack": "stack the {0} on the {1}",
    "PickPlaceCan": "put the {0} in the bin",
    "TwoArmLift": "lift the {0} with both arms",
    "TwoArmHandover": "hand the {0} from one arm to the other",
}
"""How the demonstrations word each task, by robosuite task name; evaluation prompts a policy with the same."""


def task_text(task: str, things: list[str]) -> str:
    """The instruction for `task` about the scene's objects (by name, in the scene's order)."""
    return TASK_TEXT[task].format(*things)


def _names(arm: Arm) -> list[str]:
    return [t.name for t in arm.sim.things]


DEMOS: dict[str, Callable[[list[Arm]], tuple[str, Script]]] = {
    "Lift": lambda arms: (task_text("Lift", _names(arms[0])), scripted.lift(arms[0], arms[0].sim.things[0], False)),
    "Stack": lambda arms: (task_text("Stack", _names(arms[0])), scripted.stack(arms[0], *arms[0].sim.things)),
    "PickPlaceCan": lambda arms: (task_text("PickPlaceCan", _names(arms[0])), _to_goal(arms[0], arms[0].sim.things[0])),
    "TwoArmLift": lambda arms: (task_text("TwoArmLift", _names(arms[0])), bimanual.lift_together(arms)),
    "TwoArmHandover": lambda arms: (task_text("TwoArmHandover", _names(arms[0])), bimanual.hand_over(arms)),
}
"""Demo tasks: robosuite task name -> (task text, behaviour of the robot's hands, one `Arm` each). Each scene is
the robosuite task of that name."""


def _demo(arms: list[Arm], log: list[list]) -> Script:
    """The named task, tried again from where things stand if robosuite does not call it a success."""
    sim = arms[0].sim
    for _ in range(2):
        description, behaviour = DEMOS[sim.scene](arms)
        yield from behaviour
        log.append([description, succeeded(sim.env)])
        if log[-1][1]:
            break
    yield from bimanual.together(arms, [arm.hold(SETTLE) for arm in arms])
    return log[-1][1]
