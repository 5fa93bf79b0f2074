"""`generate`: simulated datasets (play, multitask, demo, corrections) written in the toolkit's LeRobot format.

One robosuite renderer keeps one CPU core busy, so episodes are simulated in worker processes (one
per core by default). Worker w simulates episodes w, w + W, w + 2W, ... in order and sends each back
through its own pipe; the main process writes them in index order. Each episode is seeded by
(seed, index) alone, so a dataset depends on the seed and not on the number of workers.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import traceback
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapt.data.episode import Episode
from adapt.data.writer import DatasetWriter
from adapt.embodiment import EmbodimentSpec, load_embodiment, spec_from_dict
from adapt.errors import AdaptError, did_you_mean
from adapt.processes import check_spawnable
from adapt.progress import progress_bar
from adapt.sim.env import check_spec
from adapt.sim.episodes import DEMOS, PLAY_SCENES, SimPool, simulate
from adapt.sim.scenes import TWO_ARM_SCENES
from adapt.sim.scripted import check_drivable

log = logging.getLogger(__name__)
KINDS = ("play", "multitask", "demo", "corrections")
PLAY_SECONDS = (20.0, 40.0)
"""Length range of play episodes; a requested duration is cut into episodes drawn from it."""
SHORTEST_SECONDS = 5.0
"""A play remainder shorter than this joins the previous episode instead of making its own."""
MAX_SECONDS = {"multitask": 60.0, "demo": 30.0, "corrections": 30.0}
"""Longest multitask chain and longest demo; they usually end sooner, when their sub-tasks are done."""
MAX_FAILED_DEMOS = 10
"""Give up after this many demos in a row that robosuite does not call a success."""


@dataclass(frozen=True)
class SimulationRequest:
    """Everything a worker needs to simulate its episodes (picklable)."""

    spec: EmbodimentSpec
    kind: str
    task: str
    seed: int
    lengths: tuple[int, ...] | None
    """Frames of each play episode; None for kinds whose episodes end when their script does."""
    max_frames: int
    policy: str | None = None
    """The learned policy that leads `corrections` episodes (a model or adapter folder)."""
    hindsight: bool = False
    """Play: label each frame with the sub-task it belongs to."""
    scene: str = PLAY_SCENES[0]
    """Play: the robosuite scene played in."""
    calm: bool = False
    """Play: move as a demonstration does."""
    tidy: bool = False
    """Play: close the fingers only to pick something up."""
    retries: bool = False
    """Tidy play: still miss first grasps on purpose, and recover."""

    def indices(self, first: int, step: int) -> Iterator[int]:
        """Episode indices first, first + step, ...; endless unless the episode lengths are planned."""
        if self.lengths is None:
            return itertools.count(first, step)
        return iter(range(first, len(self.lengths), step))

    def simulate(self, pool: SimPool, index: int) -> Episode | None:
        """Episode `index`, seeded by (seed, index) alone."""
        frames = self.lengths[index] if self.lengths is not None else self.max_frames
        seed = np.random.SeedSequence(self.seed, spawn_key=(index,))
        manner = {"calm": self.calm, "tidy": self.tidy, "retries": self.retries}
        return simulate(pool, self.kind, self.task, seed, frames, self.hindsight, self.scene, **manner)


def generate(
    robot: str | Path,
    kind: str,
    out_dir: Path,
    *,
    minutes: float | None = None,
    episodes: int | None = None,
    task: str = "Lift",
    seed: int = 0,
    video_only: bool = False,
    progress: bool = False,
    workers: int | None = None,
    policy: str | Path | None = None,
    hindsight: bool = False,
    scene: str | None = None,
    calm: bool = False,
    tidy: bool = False,
    retries: bool = False,
) -> Path:
    """Simulate `robot` (a bundled spec name or a spec YAML) and write a dataset at `out_dir`.

    `kind`: `play` (the target robot's unstructured interaction, cut into 20-40 s episodes totalling
    exactly `minutes`), `multitask` (chains of sub-tasks in Lift, Stack and PickPlaceCan scenes, for
    pretraining), `demo` (robosuite task `task`: Lift, Stack or PickPlaceCan; `task` is ignored by
    play and multitask) or `corrections` (the learned `policy` drives `task` for a while, then the
    demonstrator takes over and is recorded: see `adapt.sim.episodes`). Give either `minutes` or
    `episodes`; only play episodes are cut, so the other kinds reach at least `minutes`. `video_only`
    writes cameras and task text only. `hindsight` (play only) labels each frame with what the arm does
    there ("lift the red cube" while it picks a cube up; see `adapt.sim.episodes`) instead of the episode's
    "play with the ..." throughout; `scene` (play only) is where it plays: Stack (two cubes, the default) or
    Lift (one cube, robosuite's Lift scene); `calm` (play only) moves as a demonstration does (speed 0.5-0.9,
    command noise sd 0-0.03) instead of play's varied pace and noise; `tidy` (play only) closes the fingers
    only to pick something up: no deliberate misses, no closed-hand pushes, reaches keep the grip;
    `retries` (tidy play only) keeps the deliberate misses, so the play shows how to recover from one (see
    `adapt.sim.episodes`). Frames are the spec's cameras; state and action follow the spec
    (see `adapt.sim.env.spec_action` for actions). `workers` defaults to one process per CPU core (at
    most 8); workers are spawned, so a script that calls this with more than one worker needs the
    `if __name__ == "__main__":` guard. Returns the dataset folder.
    """
    spec = load_embodiment(robot)
    request, target = _request(spec, kind, minutes, episodes, task, seed, policy, hindsight, scene, calm, tidy, retries)
    out_spec = _video_view(spec) if video_only else spec
    count = len(request.lengths) if request.lengths is not None else episodes
    workers = max(1, min(workers or min(os.cpu_count() or 1, 8), count or 8))
    written, frames, failed = 0, 0, 0
    with (
        DatasetWriter(Path(out_dir), out_spec) as writer,
        progress_bar("frames", progress) as bar,
        closing(_episodes(request, workers)) as stream,
    ):
        job = bar.add_task(f"{spec.name} {kind}", total=target)
        for episode in stream:
            if episode is None:
                failed += 1
                if failed >= MAX_FAILED_DEMOS:
                    raise AdaptError(
                        f"the scripted '{request.task}' demo failed {failed} times in a row on '{spec.name}'"
                    )
                continue
            failed = 0
            writer.add(
                Episode(episode.task, episode.frames, frame_tasks=episode.frame_tasks) if video_only else episode
            )
            written, frames = written + 1, frames + episode.length
            log.info("episode %d: %d frames, '%s'", written - 1, episode.length, episode.task)
            bar.update(job, advance=episode.length, description=f"{spec.name} {kind}: {written} episodes")
            if written == episodes or (target is not None and request.lengths is None and frames >= target):
                break
    return Path(out_dir)


def _request(
    spec: EmbodimentSpec,
    kind: str,
    minutes: float | None,
    episodes: int | None,
    task: str,
    seed: int,
    policy: str | Path | None = None,
    hindsight: bool = False,
    scene: str | None = None,
    calm: bool = False,
    tidy: bool = False,
    retries: bool = False,
) -> tuple[SimulationRequest, int | None]:
    """Check the request and fix the episode lengths; returns the request and the total frames asked for."""
    if kind not in KINDS:
        raise AdaptError(f"kind {kind!r} is not one of {', '.join(KINDS)}.{did_you_mean(kind, KINDS)}")
    if (minutes is None) == (episodes is None):
        raise AdaptError("give either minutes or episodes (exactly one of them)")
    if (minutes is not None and minutes <= 0) or (episodes is not None and episodes < 1):
        raise AdaptError(f"minutes must be > 0 and episodes >= 1 (got minutes={minutes}, episodes={episodes})")
    check_spec(spec)
    if (kind == "corrections") != (policy is not None):
        raise AdaptError("--kind corrections needs --policy (a model or adapter folder), and only it takes one")
    if hindsight and kind != "play":
        raise AdaptError(f"hindsight labels are for --kind play; {kind} episodes are labelled by their task already")
    if scene is not None and kind != "play":
        raise AdaptError(f"--scene is for --kind play; {kind} episodes take their scene from --task (or choose it)")
    if (calm or tidy) and kind != "play":
        raise AdaptError(f"--calm and --tidy are for --kind play; {kind} episodes move as their script does already")
    if retries and not (tidy and kind == "play"):
        raise AdaptError("--retries is for --kind play --tidy; untidy play misses on purpose already")
    if kind == "corrections":
        check_drivable(spec, "--kind corrections")  # the demonstrator takes over
        if not Path(policy).exists():
            raise AdaptError(f"--policy {policy}: no such model or adapter folder")
    if kind in ("demo", "corrections"):
        task = _named(task, DEMOS, "no scripted demo for task", "Tasks")
    two_arms = len(spec.end_effectors) == 2
    if two_arms and not (kind == "play" or (kind == "demo" and task in TWO_ARM_SCENES)):
        raise AdaptError(
            f"'{spec.name}' has two arms: it is scripted for --kind play and --kind demo --task "
            f"{' or '.join(TWO_ARM_SCENES)} so far"
        )
    if not two_arms and kind in ("demo", "corrections") and task in TWO_ARM_SCENES:
        raise AdaptError(f"--task {task} needs a robot with two arms; '{spec.name}' has one")
    if two_arms and scene is not None and scene != TWO_ARM_SCENES[0]:
        raise AdaptError(f"--scene {scene}: '{spec.name}' has two arms; it plays in {TWO_ARM_SCENES[0]}")
    if two_arms and retries:
        raise AdaptError(f"--retries: '{spec.name}' has two arms, and two-armed play has no deliberate misses")
    fps = spec.action.control_hz
    target = round(minutes * 60 * fps) if minutes is not None else None
    if target == 0:
        raise AdaptError(f"minutes={minutes} is less than one frame at {fps:g} fps")
    lengths = _play_lengths(fps, target, episodes, seed) if kind == "play" else None
    max_frames = round(MAX_SECONDS.get(kind, 0.0) * fps)
    policy = None if policy is None else str(policy)
    if two_arms:
        play_scene = TWO_ARM_SCENES[0]
    else:
        play_scene = _named(scene, PLAY_SCENES, "no play scene", "Scenes") if scene is not None else PLAY_SCENES[0]
    manner = {"calm": calm, "tidy": tidy, "retries": retries}
    request = SimulationRequest(spec, kind, task, seed, lengths, max_frames, policy, hindsight, play_scene, **manner)
    return request, target if target is not None else (sum(lengths) if lengths else None)


def _named(name: str, choices, problem: str, listing: str) -> str:
    """`name` spelt as in `choices`, whatever its case; else an error naming the choices."""
    known = {choice.lower(): choice for choice in choices}
    if name.lower() not in known:
        raise AdaptError(f"{problem} '{name}'.{did_you_mean(name, choices)} {listing}: {', '.join(choices)}")
    return known[name.lower()]


def _play_lengths(fps: float, target: int | None, episodes: int | None, seed: int) -> tuple[int, ...]:
    """Play episode lengths (frames): `episodes` of them, or as many as make exactly `target` frames."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31,)))
    low, high = (round(s * fps) for s in PLAY_SECONDS)
    if episodes is not None:
        return tuple(int(n) for n in rng.integers(low, high + 1, episodes))
    lengths: list[int] = []
    while sum(lengths) < target:
        lengths.append(min(int(rng.integers(low, high + 1)), target - sum(lengths)))
    if len(lengths) > 1 and lengths[-1] < SHORTEST_SECONDS * fps:
        tail = lengths.pop()
        lengths[-1] += tail
    return tuple(lengths)


def _video_view(spec: EmbodimentSpec) -> EmbodimentSpec:
    """The spec's cameras as a video-only spec of the same name: what a video-only dataset holds."""
    cameras = [c.model_dump() for c in spec.cameras]
    return spec_from_dict({"name": spec.name, "video_only": True, "cameras": cameras})


def _episodes(request: SimulationRequest, workers: int) -> Iterator[Episode | None]:
    """Episodes in index order (None for a failed demo), simulated here or in `workers` processes."""
    if workers == 1:
        with SimPool(request.spec, request.seed, request.policy) as pool:
            for index in request.indices(0, 1):
                yield request.simulate(pool, index)
        return
    check_spawnable(workers)
    context = multiprocessing.get_context("spawn")  # a forked renderer would share the parent's GL state
    pipes, processes = [], []
    try:
        for worker in range(workers):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(request, worker, workers, send), daemon=True)
            process.start()
            send.close()
            pipes.append(receive)
            processes.append(process)
        for index in request.indices(0, 1):
            try:
                result = pipes[index % workers].recv()
            except EOFError:
                raise RuntimeError(
                    f"simulation worker {index % workers} exited without sending episode {index}"
                ) from None
            if isinstance(result, _Failure):
                raise AdaptError(result.message) if result.user_error else RuntimeError(result.message)
            yield result
        for process in processes:
            process.join(timeout=60)  # let them close their renderers
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # unneeded episodes still in progress
            process.join()


@dataclass(frozen=True)
class _Failure:
    """An exception in a worker, sent back to be raised in the main process."""

    message: str
    user_error: bool


def _worker(request: SimulationRequest, worker: int, workers: int, pipe) -> None:
    """Simulate this worker's share of the episodes and send them; the main process stops us when it has enough."""
    os.environ.setdefault("LP_NUM_THREADS", "1")  # one rendering thread per process; the processes share the cores
    if request.policy is not None:
        import torch

        torch.set_num_threads(1)  # likewise for the policy's inference
    try:
        with SimPool(request.spec, request.seed, request.policy) as pool:
            for index in request.indices(worker, workers):
                pipe.send(request.simulate(pool, index))
    except AdaptError as error:
        pipe.send(_Failure(str(error), user_error=True))
    except Exception:
        pipe.send(_Failure(traceback.format_exc(), user_error=False))
    finally:
        pipe.close()
