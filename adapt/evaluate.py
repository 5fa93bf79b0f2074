"""Measure a policy: closed loop in robosuite (success, staged task progress, rollout videos with the
model's predicted future beside the camera) or open loop on held-out episodes (action and video error)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from adapt.atomic import atomic_write_text
from adapt.data.writer import VideoStream
from adapt.errors import AdaptError
from adapt.policy import Policy
from adapt.progress import progress_bar

if TYPE_CHECKING:
    from adapt.sim.expert import ScriptedExpert

STAGES = {
    "Lift": ("reach", "grasp", "lift", "hold"),
    "Stack": ("reach", "grasp", "stack"),
    "PickPlaceCan": ("reach", "grasp", "place"),
}
"""Task progress: the fraction of these stages reached (each needs the ones before it)."""
REACH_DISTANCE = 0.03
"""Gripper-to-object distance (m) that counts as reached."""
LIFT_HEIGHT = 0.04
"""Height above the table (m) robosuite's Lift counts as lifted."""
HOLD_STEPS = 10
"""Control steps the object must stay lifted for the Lift task's last stage."""


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    progress: float
    stages: list[str]
    steps: int
    video: str | None = None


@dataclass
class EvalReport:
    task: str
    robot: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean([e.success for e in self.episodes])) if self.episodes else 0.0

    @property
    def mean_progress(self) -> float:
        return float(np.mean([e.progress for e in self.episodes])) if self.episodes else 0.0

    def success_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(sum(e.success for e in self.episodes), len(self.episodes), confidence)

    def progress_interval(self, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
        """Percentile bootstrap interval of the mean progress (10,000 resamples, seeded: reproducible)."""
        from scipy.stats import bootstrap

        values = np.array([e.progress for e in self.episodes], dtype=float)
        if len(values) < 2 or np.ptp(values) == 0:  # one value, or all equal: no spread to resample
            return (float(values[0]),) * 2 if len(values) else (0.0, 1.0)
        ci = bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=10_000, method="percentile", rng=seed
        ).confidence_interval
        return float(ci.low), float(ci.high)

    def summary(self) -> str:
        """One line: success and progress with their 95 % intervals."""
        (s_lo, s_hi), (p_lo, p_hi) = self.success_interval(), self.progress_interval()
        wins = sum(e.success for e in self.episodes)
        return (
            f"success {wins}/{len(self.episodes)} = {self.success_rate:.2f} (95% CI {s_lo:.2f}-{s_hi:.2f}, Wilson), "
            f"mean progress {self.mean_progress:.2f} (95% CI {p_lo:.2f}-{p_hi:.2f}, bootstrap)"
        )

    def save(self, path: Path) -> None:
        body = asdict(self) | {
            "success_rate": self.success_rate,
            "success_ci95": self.success_interval(),
            "mean_progress": self.mean_progress,
            "progress_ci95": self.progress_interval(),
        }
        atomic_write_text(path, json.dumps(body, indent=2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a success rate (sound at 0 or n successes, unlike the normal one)."""
    from scipy.stats import binomtest

    if trials == 0:
        return 0.0, 1.0
    ci = binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def evaluate_closed_loop(
    policy: Policy | ScriptedExpert,
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
    from adapt.sim.env import SimEnv

    if task not in STAGES:
        raise AdaptError(f"task '{task}': closed-loop evaluation knows {', '.join(STAGES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = EvalReport(task, policy.spec.name)
    with (
        SimEnv(policy.spec, task, seed, controller=controller_for(policy.spec)) as sim,
        progress_bar("steps", progress) as bar,
    ):
        if hasattr(policy, "bind"):  # a privileged policy (adapt.sim.expert) reads the simulation itself
            policy.bind(sim)
        for episode in range(episodes):
            steps = bar.add_task(f"{task} episode {episode + 1}/{episodes}", total=max_steps)
            video = out / f"episode_{episode:03d}.mp4"
            result = _rollout(policy, sim, task, seed + episode, max_steps, video, partial(bar.advance, steps))
            bar.update(steps, completed=max_steps, visible=False)
            if progress:
                bar.console.print(f"episode {episode + 1} (seed {result.seed}): progress {result.progress:.2f}")
            report.episodes.append(result)
    report.save(out / "results.json")
    return report


def task_text(task: str, things: list[str]) -> str:
    """The instruction, worded as the simulated demonstrations word it (see adapt.sim.episodes)."""
    if task == "Stack":
        return f"stack the {things[0]} on the {things[1]}"
    if task == "PickPlaceCan":
        return f"put the {things[0]} in the bin"
    return f"lift the {things[0]}"


def controller_for(spec) -> str:
    """robosuite controller that executes the spec's action kind."""
    return "osc" if spec.action.kind == "ee_delta" else "joint"


def _rollout(
    policy: Policy, sim, task: str, seed: int, max_steps: int, video_path: Path, stepped=lambda: None
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
            video.write(np.concatenate([frames[policy.spec.cameras[0].name], prediction], axis=1)[None])
            sim.step_spec_action(action)
            stepped()
            if tracker.update() and task != "Lift":
                break
            if task == "Lift" and tracker.reached == len(STAGES[task]):
                break
    finally:
        video.close()
    return EpisodeResult(seed, tracker.success, tracker.progress, tracker.stages, step + 1, video_path.name)


@torch.no_grad()
def _predicted_frame(policy: Policy, size: tuple[int, int]) -> np.ndarray:
    """The model's last predicted future frame (first camera, first future step), at the camera's size."""
    from adapt.data.resize import resize_frames
    from adapt.model.tokenizer import to_uint8

    future = getattr(policy, "last_future", None)
    if future is None:
        return np.zeros((*size, 3), np.uint8)
    frame = to_uint8(policy.model.frames_from_latents(future[:1, :1, :1]))[0, 0, 0].cpu().numpy()
    return resize_frames(frame[None], size)[0]


class _StageTracker:
    """Which stages of the task an episode has reached so far."""

    def __init__(self, task: str, sim):
        self.task, self.sim, self.reached, self.held, self.success = task, sim, 0, 0, False
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
        """Advance the stages; returns robosuite's own success flag."""
        sim, thing = self.sim, self.sim.things[0]
        gripper = sim.eef()[0]
        stages = [np.linalg.norm(gripper - sim.position(thing)) < REACH_DISTANCE, sim.holds(thing, self.floor)]
        success = bool(sim.env._check_success())
        if self.task == "Lift":
            lifted = sim.position(thing)[2] > self.rest + LIFT_HEIGHT
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


@torch.no_grad()
def evaluate_open_loop(policy: Policy, dataset, out: Path, *, windows: int = 64, seed: int = 0) -> dict:
    """Action error (MSE, de-normalized units, per dimension) and predicted-video quality on held-out episodes.

    Video: the predicted future frames, decoded, against the real ones as PSNR (dB, frames in [-1, 1]),
    beside the baseline of a world model that predicts nothing: the last context frame copied forward.
    """
    from adapt.data.windows import WindowDataset, window_loader

    model, spec = policy.model, policy.spec
    data = WindowDataset(dataset, model.config.window(), policy.stats)
    loader = window_loader(data, batch_size=8, workers=0, shuffle=True, seed=seed)
    action_errors, video_errors, frame_errors, copy_errors, seen = [], [], [], [], 0
    ctx = model.config.context
    for batch in loader:
        batch = {k: v.to(policy.config.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        sample = model.sample(batch, policy.config.steps, 0.0, cache=policy.config.cache_context)
        target = model.latents(batch["frames"])[:, :, ctx:]
        video_errors.append(((sample["future"] - target) ** 2).mean().item())
        future = batch["frames"][:, :, ctx:].float() / 127.5 - 1.0  # (B, cams, fut, 3, H, W)
        imagined = model.frames_from_latents(sample["future"]).clamp(-1, 1)
        copied = (batch["frames"][:, :, ctx - 1 : ctx].float() / 127.5 - 1.0).expand_as(future)
        keep = batch["future_mask"][:, None, :].expand(future.shape[:3])
        frame_errors.append(((imagined - future) ** 2).mean(dim=(3, 4, 5))[keep].cpu().numpy())
        copy_errors.append(((copied - future) ** 2).mean(dim=(3, 4, 5))[keep].cpu().numpy())
        if batch["has_action"].any():
            predicted = sample["actions"].cpu().numpy()
            real = batch["action"].cpu().numpy()
            predicted, real = (policy.codec.unnormalize_actions(a) for a in (predicted, real))
            mask = batch["action_mask"].cpu().numpy()
            action_errors.append(((predicted - real) ** 2)[mask].mean(axis=0))
        seen += len(batch["task"])
        if seen >= windows:
            break
    result = {
        "robot": spec.name,
        "windows": seen,
        "video_latent_mse": float(np.mean(video_errors)),
        "video_psnr": _psnr(np.concatenate(frame_errors)),
        "copy_last_frame_psnr": _psnr(np.concatenate(copy_errors)),
        "action_mse": float(np.mean(action_errors)) if action_errors else None,
        "action_mse_per_dim": np.mean(action_errors, axis=0).tolist() if action_errors else None,
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out) / "results.json", json.dumps(result, indent=2))
    return result


def _psnr(mse_per_frame: np.ndarray) -> float:
    """Mean PSNR (dB) over frames, from each frame's MSE on the [-1, 1] scale (peak-to-peak 2)."""
    return float(np.mean(10 * np.log10(4.0 / np.maximum(mse_per_frame, 1e-10))))
