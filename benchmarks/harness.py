"""Proof of the layers under a learned policy: replay of recorded demos, and the scripted expert in `adapt eval`.

- Replay: per robot and task, `--episodes` scripted demos are simulated exactly as `adapt data generate
  --kind demo` makes them (randomized scenes, OSC scripts), then their recorded spec actions are
  re-executed from the same scene through the controller `adapt eval` uses for that action kind (Panda,
  each of Baxter's arms and each of the two Pandas: OSC end-effector deltas; UR5e: absolute joint targets). A
  success means the recorded actions, their timing and their absolute/relative meaning reproduce the demo under
  evaluation's controller. `demos_succeeded / demos_tried` is the scripted demonstrator's own rate.
- Expert through the harness: the scripted demonstrator (`adapt eval --policy scripted`) run by
  `evaluate_closed_loop` on fresh evaluation seeds: the harness lets a competent controller succeed.

Run: `.venv/bin/python benchmarks/harness.py [--only ROBOT...] [--task TASK...]` (about 10 minutes on 2 cores for
the single-arm rows, as long again for each two-armed one), `--quick` for a smoke run. Results:
`benchmarks/results/harness.json` (rows not run are kept). Targets: every replay rate >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from report import machine, write_report

from adapt.embodiment import load_embodiment
from adapt.evaluate import wilson_interval
from adapt.sim.closed_loop import evaluate_closed_loop
from adapt.sim.env import SimEnv, controller_for
from adapt.sim.episodes import SimPool, replay, simulate
from adapt.sim.expert import ScriptedExpert

MAX_FRAMES, SEED = 600, 1000
MAX_STEPS = {"Lift": 200, "TwoArmLift": 400, "TwoArmHandover": 400}
"""Control steps per expert episode (`adapt eval --max-steps`): two arms move slower."""
TWO_ARMED = [(robot, task) for robot in ("baxter_osc", "bimanual_panda") for task in ("TwoArmLift", "TwoArmHandover")]
REPLAY = [("panda", "Lift"), ("ur5e", "Lift"), *TWO_ARMED]
EXPERT = [("panda", "Lift"), *TWO_ARMED]
"""(robot, task) of each row."""


def replay_rate(robot: str, task: str, episodes: int) -> dict:
    spec = load_embodiment(robot)
    seeds = [np.random.SeedSequence(SEED, spawn_key=(i,)) for i in range(episodes)]
    with SimPool(spec, SEED) as pool:
        demos = [(seed, simulate(pool, "demo", task, seed, MAX_FRAMES)) for seed in seeds]
    kept = [(seed, demo) for seed, demo in demos if demo is not None]
    with SimEnv(spec, task, SEED, controller=controller_for(spec)) as sim:
        replayed = [replay(sim, seed, demo.action) for seed, demo in kept]
    return {
        "robot": robot,
        "task": task,
        "controller": controller_for(spec),
        "demos_succeeded": len(kept),
        "demos_tried": episodes,
        "replay_successes": int(sum(replayed)),
        "replay_rate": sum(replayed) / len(replayed),
        "replay_rate_ci95": list(wilson_interval(sum(replayed), len(replayed))),
    }


def expert_rate(robot: str, task: str, episodes: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        expert = ScriptedExpert(load_embodiment(robot), task)
        report = evaluate_closed_loop(expert, task, episodes, Path(out), max_steps=MAX_STEPS[task])
    return {
        "robot": robot,
        "task": task,
        "episodes": episodes,
        "success_rate": report.success_rate,
        "success_ci95": list(report.success_interval()),
        "mean_progress": report.mean_progress,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40, help="Demos replayed per robot and expert episodes.")
    parser.add_argument("--quick", action="store_true", help="3 episodes each (smoke run).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "harness.json")
    robots = sorted({robot for robot, _ in REPLAY})
    parser.add_argument("--only", nargs="+", choices=robots, help="run these robots' rows only")
    parser.add_argument("--task", nargs="+", help="run these tasks' rows only")
    args = parser.parse_args()
    episodes = 3 if args.quick else args.episodes

    def chosen(robot: str, task: str) -> bool:
        return (args.only is None or robot in args.only) and (args.task is None or task in args.task)

    old = json.loads(args.out.read_text()) if args.out.is_file() and not args.quick else {}
    kept = {part: [r for r in old.get(part, []) if not chosen(r["robot"], r["task"])] for part in ("replay", "expert")}
    report = {"machine": machine(), **kept}
    for robot, task in (row for row in REPLAY if chosen(*row)):
        start = time.perf_counter()
        result = replay_rate(robot, task, episodes) | {"wall_s": round(time.perf_counter() - start, 1)}
        print(
            f"replay {robot} {task}: {result['replay_successes']}/{result['demos_succeeded']} demos succeed"
            f" again (the demonstrator succeeded in {result['demos_succeeded']}/{episodes})"
        )
        report["replay"].append(result)
    for robot, task in (row for row in EXPERT if chosen(*row)):
        start = time.perf_counter()
        result = expert_rate(robot, task, episodes) | {"wall_s": round(time.perf_counter() - start, 1)}
        print(f"expert through adapt eval ({robot} {task}): success {result['success_rate']:.2f}")
        report["expert"].append(result)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
