"""`adapt demo`: the whole product on one CPU, from nothing but the repository.

Simulate a few minutes of play data for a robot the bundled base has never seen (UR5e: 6 joints and
absolute joint targets, where the base knows a Panda driven by end-effector deltas), adapt the base
to it with the `play-30min` recipe (fewer steps), say what was trained and where the adapter is, and
end with a short closed-loop check of the adapter on robosuite Lift (success, progress, a rollout video).
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
    robot: str = "ur5e",
    minutes: float = 3.0,
    steps: int = 300,
    recipe: str = "play-30min",
    base: Path | None = None,
    workers: int = 2,
    check_episodes: int = 3,
    report=log.info,
) -> Path:
    """Generate play data for `robot` (unless already there), adapt the base to it and run
    `check_episodes` closed-loop Lift episodes with the adapter (none with 0); returns the adapter."""
    from adapt.policy import Policy
    from adapt.sim import generate
    from adapt.sim.closed_loop import evaluate_closed_loop
    from adapt.train.finetune import finetune
    from adapt.train.options import TrainOptions

    out = Path(out)
    base = Path(base) if base else bundled_base()
    data = out / f"{robot}_play"
    if (data / "meta" / "info.json").is_file():
        report(f"using the play data already in {data}")
    else:
        report(f"1/3 simulating {minutes:g} minutes of {robot} play data (robosuite, scripted) -> {data}")
        generate(robot, "play", data, minutes=minutes, seed=0, progress=True)
    report(f"2/3 adapting {base.name} to {robot} with recipe {recipe} for {steps} steps")
    options = TrainOptions(steps=steps, checkpoint_every=max(steps // 4, 1))
    adapter = finetune(
        base, robot, [str(data)], recipe, out / "run", options=options, workers=workers, overwrite=True, report=report
    )
    if check_episodes:
        report(f"3/3 closed loop: {check_episodes} robosuite Lift episodes with the adapter")
        policy = Policy.load(adapter)
        result = evaluate_closed_loop(policy, "Lift", check_episodes, out / "eval_Lift", seed=1000, progress=True)
        report(f"{result.summary()}\nrollout video: {out / 'eval_Lift' / result.episodes[0].video}")
    return adapter
