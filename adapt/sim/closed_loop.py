"""Closed-loop evaluation in robosuite: a policy drives a simulated robot through a task's episodes;
each is scored by robosuite's success check (TwoArmLift's pot also level: `scenes.succeeded`) and by staged
task progress, and recorded as a video with the model's predicted future beside every camera of the spec. The
scenes, task wording and controller are the ones the simulated demonstrations use (`adapt.sim.episodes`,
`adapt.sim.env.controller_for`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapt.data.writer import VideoStream
from adapt.errors import AdaptError
from adapt.evaluate import EpisodeResult, EvalReport
from adapt.progress import progress_bar
from adapt.sim.env import SimEnv, controller_for
from adapt.sim.episodes import task_text
from adapt.sim.scenes import hammer_handle, handles, succeeded

if TYPE_CHECKING:
    from adapt.policy import Controller

STAGES = {
    "Lift": ("reach", "grasp", "lift", "hold"),
    "Stack": ("reach", "grasp", "stack"),
    "PickPlaceCan": ("reach", "grasp", "place"),
    "TwoArmLift": ("reach", "grasp", "lift", "hold"),
    "TwoArmHandover": ("reach", "grasp", "lift", "hand over"),
}
"""Task progress: the fraction of these stages reached (each needs the ones before it). TwoArmLift's reach and
grasp need both hands, each at its handle of the pot; TwoArmHandover's are the first hand's, at the hammer's handle
and holding the hammer (robosuite's contact check), its lift robosuite's 10 cm."""
REACH_DISTANCE = 0.03
"""Gripper-to-object distance (m) that counts as reached."""
LIFT_HEIGHT = 0.04
"""Height above the table (m) robosuite's Lift counts as lifted."""
HOLD_STEPS = 10
"""Control steps the object must stay lifted for the Lift task's last stage."""
CLOSED_EMPTY = 0.95
"""Gripper state (-1 open, 1 closed on nothing) past which a closing gripper holds nothing."""


def evaluate_closed_loop(
    policy: Controller,
    task: str,
    episodes: int,
    out: Path,
    *,
    max_steps: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> EvalReport:
    """Run `episodes` robosuite episodes of `task`; writes results.json and one mp4 per episode in `out`.

    With `progress` a bar counts control steps and each finished episode prints its progress."""
    if task not in STAGES:
        raise AdaptError(f"task '{task}': closed-loop evaluation knows {', '.join(STAGES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = EvalReport(task, policy.spec.name)
    with (
        SimEnv(policy.spec, task, seed, controller=controller_for(policy.spec)) as sim,
        progress_bar("steps", progress) as bar,
    ):
        policy.bind(sim)  # a privileged controller (the scripted expert) reads the simulation itself
        for episode in range(episodes):
            steps = bar.add_task(f"{task} episode {episode + 1}/{episodes}", total=max_steps)
            video = out / f"episode_{episode:03d}.mp4"
            result = _rollout(policy, sim, task, seed + episode, max_steps, video, partial(bar.advance, steps))
            bar.update(steps, completed=max_steps, visible=False)
            if progress:
                bar.print(f"episode {episode + 1} (seed {result.seed}): progress {result.progress:.2f}")
            report.episodes.append(result)
    report.save(out / "results.json")
    return report


def _rollout(
    policy: Controller, sim, task: str, seed: int, max_steps: int, video_path: Path, stepped=lambda: None
) -> EpisodeResult:
    policy.reset()
    sim.reset(np.random.default_rng(seed), randomize=True)
    tracker = _StageTracker(task, sim)
    text = task_text(task, [thing.name for thing in sim.things])
    video = VideoStream(video_path, policy.spec.cameras[0].fps, crf=23, gop=30)
    prediction = None
    try:
        for step in range(max_steps):  # noqa: B007 (the count is reported)
            frames = sim.render()
            plans = policy.plans
            action = policy.step(frames | {"state": sim.state(), "task": text})
            if policy.plans != plans or prediction is None:
                prediction = _predicted_frame(policy, frames[policy.spec.cameras[0].name].shape[:2])
            video.write(np.concatenate([*(frames[c.name] for c in policy.spec.cameras), prediction], axis=1)[None])
            sim.step_spec_action(action)
            stepped()
            held = task in ("Lift", "TwoArmLift")  # done once held, not at the first lifted step
            if tracker.update() and not held:
                break
            if held and tracker.reached == len(STAGES[task]):
                break
    finally:
        video.close()
    return EpisodeResult(
        seed,
        tracker.success,
        tracker.progress,
        tracker.stages,
        step + 1,
        video_path.name,
        closest_m=round(tracker.closest, 4),
        empty_grasps=tracker.empty_grasps,
    )


def _predicted_frame(policy: Controller, size: tuple[int, int]) -> np.ndarray:
    """The model's last predicted future frame (first camera, first future step), at the camera's size;
    black for a policy without one (the scripted expert, or before the first plan)."""
    from adapt.data.resize import resize_frames

    frame = policy.predicted_frame()
    if frame is None:
        return np.zeros((*size, 3), np.uint8)
    return resize_frames(frame[None], size)[0]


class _StageTracker:
    """Which stages of the task an episode has reached so far, and how close it came to the object."""

    def __init__(self, task: str, sim):
        self.task, self.sim, self.reached, self.held, self.success = task, sim, 0, 0, False
        self.closest, self.empty_grasps = float("inf"), 0
        self._empty = [sim.gripper(hand) >= CLOSED_EMPTY for hand in range(sim.hands)]
        thing = sim.things[0]
        self.rest = sim.position(thing)[2]
        self.floor = self.rest - thing.bottom

    @property
    def stages(self) -> list[str]:
        return list(STAGES[self.task][: self.reached])

    @property
    def progress(self) -> float:
        return self.reached / len(STAGES[self.task])

    def update(self) -> bool:
        """Advance the stages; returns whether the task succeeded (`scenes.succeeded`)."""
        sim, thing = self.sim, self.sim.things[0]
        if self.task == "TwoArmLift":
            targets = [at for at, _ in handles(sim.env)]
        elif self.task == "TwoArmHandover":  # the first hand's nearest point of the handle
            centre, towards, length = hammer_handle(sim.env)
            along = np.clip((sim.eef(0)[0] - centre) @ towards, -length / 2, length / 2)
            targets = [centre + along * towards]
        else:
            targets = [sim.position(thing)]
        distances = [float(np.linalg.norm(sim.eef(hand)[0] - at)) for hand, at in enumerate(targets)]
        distance = max(distances)  # the hand farthest from its target
        self.closest = min(self.closest, distance)
        empty = [sim.gripper(hand) >= CLOSED_EMPTY for hand in range(sim.hands)]
        self.empty_grasps += sum(now and not before for now, before in zip(empty, self._empty, strict=True))
        self._empty = empty
        if self.task == "TwoArmLift":  # both hands closed on their handle: the fingers stopped before closing
            held = all(d < REACH_DISTANCE and -0.5 < sim.gripper(h) < CLOSED_EMPTY for h, d in enumerate(distances))
        elif self.task == "TwoArmHandover":
            first_holds, _, height, table = sim.env._get_task_info()
            held = bool(first_holds)
        else:
            held = sim.holds(thing, self.floor)
        success = succeeded(sim.env)
        stages = [distance < REACH_DISTANCE, held]
        if self.task == "TwoArmHandover":
            stages += [height - table > sim.env.height_threshold, success]
        elif self.task in ("Lift", "TwoArmLift"):
            # Lift's cube 4 cm up; TwoArmLift's pot 10 cm up and within 30 degrees of level (`succeeded`)
            lifted = success if self.task == "TwoArmLift" else sim.position(thing)[2] > self.rest + LIFT_HEIGHT
            self.held = self.held + 1 if lifted else 0
            stages += [lifted, self.held >= HOLD_STEPS]
        else:
            stages += [success]
        reached = 0
        for ok in stages:
            if not ok and reached >= self.reached:
                break
            reached += 1
        self.reached = max(self.reached, reached)
        self.success = self.success or success
        return success
