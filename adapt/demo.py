"""`adapt demo`: the whole product on one CPU, from nothing but the repository.

Simulate a few minutes of data for a robot the bundled base has never seen (by default a UR5e, 6 joints
and another look, driven like the base's Panda through end-effector deltas), adapt the base to it with the
`task-demos` recipe (LoRA + heads seeded from the Panda's, fewer steps), say what was trained and where the
adapter is, and end with a short closed-loop check of the adapter on robosuite Lift (success, progress, how
the failed episodes failed: never near the cube or grasping beside it, a rollout video).
The data are Lift demonstrations by default: the adaptation benchmark found that the base learns a new
body's Lift from 5 minutes of its demos in 1,500 steps (13 and 12 of 30 episodes in two runs with the
Panda's heads as the start, 4 of 30 with fresh ones) but not from play alone (0 of 30), so play
(`kind="play"`) makes a demo that runs but does not lift. The defaults (3 minutes, 600 steps) keep the demo
under 10 minutes on 2 cores and lift in about a third of the episodes (10 of 30; fresh heads: 4 of 30).
Rerunning reuses the data and resumes training, so an interrupted demo picks up where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adapt.errors import AdaptError
from adapt.resources import bundled_dir

log = logging.getLogger(__name__)
BASE = "base-small"
"""The bundled base checkpoint (models/base-small; README says how it was made)."""


def bundled_base() -> Path:
    path = bundled_dir("models") / BASE
    if not (path / "model.safetensors").is_file():
        raise AdaptError(f"the bundled base model is missing from {path}; reinstall adapt")
    return path


def run_demo(
    out: Path,
    *,
    robot: str = "ur5e_osc",
    kind: str = "demo",
    minutes: float = 3.0,
    steps: int = 600,
    recipe: str = "task-demos",
    base: Path | None = None,
    workers: int = 2,
    check_episodes: int = 3,
    report=log.info,
) -> Path:
    """Generate `kind` data (Lift `demo`s or `play`) for `robot` (unless already there), adapt the base to it
    and run `check_episodes` closed-loop Lift episodes with the adapter (none with 0); returns the adapter."""
    from adapt.policy import Policy
    from adapt.sim import generate
    from adapt.sim.closed_loop import evaluate_closed_loop
    from adapt.train.finetune import finetune
    from adapt.train.options import TrainOptions

    out = Path(out)
    base = Path(base) if base else bundled_base()
    if kind not in ("demo", "play"):
        raise AdaptError(f"demo data kind '{kind}' is neither 'demo' (Lift demonstrations) nor 'play'")
    data = out / f"{robot}_{kind}"
    what = "Lift demonstrations" if kind == "demo" else "play data"
    if (data / "meta" / "info.json").is_file():
        report(f"using the {what} already in {data}")
    else:
        report(f"1/3 simulating {minutes:g} minutes of {robot} {what} (robosuite, scripted) -> {data}")
        generate(robot, kind, data, minutes=minutes, task="Lift", seed=0, progress=True)
    report(f"2/3 adapting {base.name} to {robot} with recipe {recipe} for {steps} steps")
    options = TrainOptions(steps=steps, checkpoint_every=max(steps // 4, 1))
    adapter = finetune(
        base, robot, [str(data)], recipe, out / "run", options=options, workers=workers, overwrite=True, report=report
    )
    if check_episodes:
        report(f"3/3 closed loop: {check_episodes} robosuite Lift episodes with the adapter")
        policy = Policy.load(adapter)
        result = evaluate_closed_loop(policy, "Lift", check_episodes, out / "eval_Lift", seed=1000, progress=True)
        video = out / "eval_Lift" / result.episodes[0].video
        report(f"{result.summary()}\n{result.failures()}\nrollout video: {video}")
    return adapter
