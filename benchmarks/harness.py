"""Proof of the layers under a learned policy: replay of recorded demos, and the scripted expert in `adapt eval`.

- Replay: per robot, `--episodes` scripted Lift demos are simulated exactly as `adapt data generate
  --kind demo` makes them (randomized scenes, OSC scripts), then their recorded spec actions are
  re-executed from the same scene through the controller `adapt eval` uses for that action kind
  (Panda: OSC end-effector deltas; UR5e: absolute joint targets). A success means the recorded actions,
  their timing and their absolute/relative meaning reproduce the demo under evaluation's controller.
- Expert through the harness: the scripted demonstrator (`adapt eval --policy scripted`) run by
  `evaluate_closed_loop` on fresh evaluation seeds: the harness lets a competent controller succeed.

Run: `.venv/bin/python benchmarks/harness.py` (about 10 minutes on 2 cores), `--quick` for a smoke run.
Results: `benchmarks/results/harness.json`. Targets: every rate >= 0.95.
"""

from __future__ import annotations

import argparse
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

TASK, MAX_FRAMES, SEED = "Lift", 600, 1000


def replay_rate(robot: str, episodes: int) -> dict:
    spec = load_embodiment(robot)
    seeds = [np.random.SeedSequence(SEED, spawn_key=(i,)) for i in range(episodes)]
    with SimPool(spec, SEED) as pool:
        demos = [(seed, simulate(pool, "demo", TASK, seed, MAX_FRAMES)) for seed in seeds]
    kept = [(seed, demo) for seed, demo in demos if demo is not None]
    with SimEnv(spec, TASK, SEED, controller=controller_for(spec)) as sim:
        replayed = [replay(sim, seed, demo.action) for seed, demo in kept]
    return {
        "robot": robot,
        "controller": controller_for(spec),
        "demos_succeeded": len(kept),
        "demos_tried": episodes,
        "replay_successes": int(sum(replayed)),
        "replay_rate": sum(replayed) / len(replayed),
        "replay_rate_ci95": list(wilson_interval(sum(replayed), len(replayed))),
    }


def expert_rate(episodes: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        report = evaluate_closed_loop(ScriptedExpert(load_embodiment("panda"), TASK), TASK, episodes, Path(out))
    return {
        "robot": "panda",
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
    args = parser.parse_args()
    episodes = 3 if args.quick else args.episodes
    report = {"machine": machine(), "task": TASK, "replay": [], "expert": None}
    for robot in ("panda", "ur5e"):
        start = time.perf_counter()
        result = replay_rate(robot, episodes) | {"wall_s": round(time.perf_counter() - start, 1)}
        print(f"replay {robot}: {result['replay_successes']}/{result['demos_succeeded']} demos succeed again")
        report["replay"].append(result)
    start = time.perf_counter()
    report["expert"] = expert_rate(episodes) | {"wall_s": round(time.perf_counter() - start, 1)}
    print(f"expert through adapt eval (panda): success {report['expert']['success_rate']:.2f}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
