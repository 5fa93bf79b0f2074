"""adapt against what a user would train instead: LeRobot's ACT and Diffusion Policy on the same data, same closed loop.

A robotics engineer with a new robot and a few minutes of demonstrations would train ACT or Diffusion Policy with
LeRobot rather than adapt a WAM. This benchmark trains LeRobot's own implementations (`lerobot` 0.4.4 in its own
environment: `benchmarks/peers/setup.sh`) on exactly the LeRobot v3 datasets `benchmarks/adaptation.py` trains
adapt on, and evaluates them in adapt's closed loop (`adapt.sim.closed_loop`: same seeds, scenes, controller,
success and progress), next to the adaptation rows of `benchmarks/results/adaptation.json`.

Route: each trained peer is served by `benchmarks/peers/serve.py` (peers' environment, LeRobot's `select_action`
with its own action queue, as `lerobot-eval` runs it) over `adapt serve`'s websocket protocol, and driven by
`adapt eval --server`'s client (`RemotePolicy`, which bounds every action by the spec as it does for any server).

Peers' settings: LeRobot's defaults (`lerobot-train`: batch 8, the policy's optimizer preset and schedule,
100,000 steps), changed only where the data or this machine requires it (`PEER_SETTINGS`, each with its
reason). Budgets: `walltime` rows train for the training wall time of the adaptation row they face (then the
last checkpoint saved within it is evaluated); `converged` rows until their own validation loss on held-out
demos flattens (`train_peer`), which takes hours here (ACT about 1.4 s a step, Diffusion Policy about 6).

Resumable: a peer's training continues from its last checkpoint (and its wall time so far) when rerun; each
finished row is written to `benchmarks/results/peers.json` as it finishes and skipped on a rerun, and
`peers.md` (the report) is generated from it.

Run: `bash benchmarks/peers/setup.sh` once, then `.venv/bin/python benchmarks/peers.py [--only NAME...]`
(`walltime` rows: about 21 minutes of training and 10-35 of evaluation each on 2 CPU cores; `converged` rows:
up to `CONVERGED_MAX_HOURS` each); `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from adaptation import RESULTS, dataset
from report import machine, newcombe_difference, success_difference, write_report

from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.evaluate import EvalReport
from adapt.sim.closed_loop import evaluate_closed_loop

PEERS_DIR = Path(__file__).parent / "peers"
PEERS_PYTHON = PEERS_DIR / ".venv" / "bin" / "python"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
"""The peers' environment for LeRobot's processes: nothing is fetched from the Hugging Face Hub."""
TARGET = "ur5e_osc"
PEER_SETTINGS = {
    "act": {
        "policy.pretrained_backbone_weights": (
            "null",
            "LeRobot's default starts the ResNet-18 from ImageNet weights; nothing can be downloaded here, so it is"
            " trained from scratch, as adapt's base was",
        ),
        "policy.chunk_size": ("40", "LeRobot's 100 actions are 2 s at ALOHA's 50 Hz; 2 s at this robot's 20 Hz"),
        "policy.n_action_steps": ("40", "the whole chunk executed, as LeRobot's default does"),
    },
    "diffusion": {
        "policy.crop_shape": (
            "[112,112]",
            "LeRobot's 84 x 84 random crop is made for 96 px images; the same 7/8 of 128 px",
        ),
        "policy.noise_scheduler_type": (
            "DDIM",
            "sampling only (training's noise and loss are DDPM's, same betas): LeRobot's 100 DDPM steps take 19.6 s"
            " a chunk on this CPU, 8.5 minutes a 200-step episode",
        ),
        "policy.num_inference_steps": ("10", "10 DDIM steps, as Diffusion Policy's authors sample for speed"),
    },
}
"""Per peer: LeRobot option -> (value, why it differs from LeRobot's default)."""
COMMON_SETTINGS = {
    "num_workers": ("2", "this machine has 2 cores (LeRobot's default: 4 workers)"),
    "dataset.video_backend": (
        "pyav",
        "LeRobot's default torchcodec needs FFmpeg libraries Debian does not ship in the expected version",
    ),
    "policy.device": ("cpu", "no GPU"),
    "eval_freq": ("0", "evaluation is adapt's closed loop, not a gym environment"),
}
SAVE_EVERY = {"act": 100, "diffusion": 30}
"""Checkpoint spacing in steps for `walltime` rows: about a tenth of a 21-minute budget at each peer's speed here."""
VALIDATE_EVERY = {"act": 1000, "diffusion": 250}
"""Checkpoint (and validation) spacing in steps for `converged` rows: about 25 minutes at each peer's speed here,
or `VALIDATE_PASSES` passes over the data where that comes sooner (`validation_spacing`)."""
VALIDATE_PASSES, BATCH = 1.32, 8
"""Passes over the training frames between validations at LeRobot's batch of 8: the 5-minute demos' 1,000 ACT
steps (6,069 frames), so that a minute of demos is validated as often per pass, not once per 7 passes."""
FLAT_GAIN, FLAT_PATIENCE = 0.02, 3
"""A `converged` row stops once 3 validations in a row have not improved on the best before them by 2 %."""
CONVERGED_MAX_HOURS = 12.0
"""Wall-time cap of a `converged` row."""
HELD_OUT = {"kind": "demo", "minutes": 2.0, "seed": 6, "task": "Lift"}
"""Held-out episodes of the row's robot for `converged` rows' validation loss (another seed than any training
data)."""
UR5E = {"robot": TARGET, "eval_seed": 5000, "episodes": 30}
PANDA = {"robot": "panda", "eval_seed": 1000, "episodes": 50}
PAIR = {"robot": "bimanual_panda", "eval_seed": 5000, "episodes": 30, "task": "TwoArmLift"}
"""Where a row's peer is evaluated (on Lift unless it names its `task`): the adaptation benchmark's UR5e seeds, the
base's Panda seeds, the two-armed benchmark's seeds (`adaptation.py --conditions bimanual`: run the row with that
benchmark's `--data-work`, `--adaptation` and `--out`)."""
LIFT_DEMOS = {"kind": "demo", "minutes": 5.0, "seed": 4, "task": "Lift"}
CALM_TIDY_PLAY = {"kind": "play", "minutes": 30.0, "seed": 1, "hindsight": True, "scene": "Lift"} | {
    "calm": True,
    "tidy": True,
}
ROWS = [
    *(
        {**UR5E, "name": f"{peer}/lift-demos/{budget}", "peer": peer, "data": LIFT_DEMOS, "budget": budget}
        | {"versus": "play-30min-donor/lift-demos"}
        for budget in ("walltime", "converged")
        for peer in ("act", "diffusion")
    ),
    *(
        {**UR5E, "name": f"{peer}/1min-lift-demos/converged", "peer": peer, "budget": "converged"}
        | {"data": LIFT_DEMOS | {"minutes": 1.0}, "versus": "play-30min-donor/1min-lift-demos"}
        for peer in ("act", "diffusion")
    ),
    {**UR5E, "name": "act/1min-lift-demos-seed1/converged", "peer": "act", "budget": "converged", "train_seed": 1}
    | {"data": LIFT_DEMOS | {"minutes": 1.0}, "versus": "play-30min-donor/1min-lift-demos-seed1"},
    *(
        {**UR5E, "name": f"{peer}/lift-frames-of-play/converged", "peer": peer, "budget": "converged"}
        | {"data": CALM_TIDY_PLAY | {"select": "lift"}}
        | {"versus": "play-30min-donor/30min-lift-hindsight-calm-tidy"}
        for peer in ("act", "diffusion")
    ),
    *(
        {**PANDA, "name": f"{peer}/panda-lift-demos/converged", "peer": peer, "budget": "converged"}
        | {"data": LIFT_DEMOS | {"minutes": 15.0, "seed": 21}, "versus": "base-small"}
        for peer in ("act", "diffusion")
    ),
    {**PAIR, "name": "act/twoarmlift-demos/walltime", "peer": "act", "budget": "walltime"}
    | {"data": LIFT_DEMOS | {"task": "TwoArmLift"}, "versus": "play-30min-donor/twoarmlift-demos"},
]
"""Each row: a peer, the robot and evaluation seeds, the data (`adaptation.dataset` arguments; `select`: only the
frames whose hindsight label contains it, cut out with `adapt data select`, what a user would train a policy
without language on), the adapt row it faces (`versus`: a row of `adaptation.json`, or `base-small`: the bundled
base on its own Panda, trained on those demos among others; ACT, built for the two-armed ALOHA, faces the
two-armed benchmark's row) and its training budget (`walltime`: the adaptation
row's training wall time; `converged`: until the validation loss flattens, see `train_peer`)."""


def settings(peer: str) -> dict[str, tuple[str, str]]:
    """Every LeRobot option this benchmark sets for `peer`, with why it differs from LeRobot's default."""
    return COMMON_SETTINGS | PEER_SETTINGS[peer]


def train_peer(row: dict, data: Path, held_out: Path | None, run: Path, budget_s: float, quick: bool) -> dict:
    """Train with `lerobot-train`; returns the checkpoint to evaluate, its step and wall time, what LeRobot read of
    the data and (`converged` rows) the validation losses and the CPU time of the run.

    `walltime` rows train until `budget_s` of wall time has passed and take the last checkpoint saved within it.
    `converged` rows stop at each checkpoint to measure the validation loss on `held_out` episodes
    (`peers/validate.py`) and go on until it has not improved on its best by `FLAT_GAIN` for `FLAT_PATIENCE`
    checkpoints in a row (or `budget_s` passes); they take the last checkpoint. A stopped run resumes from its
    last checkpoint with the wall time that checkpoint had taken (what came after it is lost, and redone)."""
    progress_file, out = run / "progress.json", run / "train"
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else {}
    converged = row["budget"] == "converged"
    every = 2 if quick else validation_spacing(row["peer"], data) if converged else SAVE_EVERY[row["peer"]]
    while not progress.get("done"):
        argv = [f"--{k}={v}" for k, (v, _) in settings(row["peer"]).items()]
        last = out / "checkpoints" / "last"
        if last.exists() and str(int(last.resolve().name)) in progress.get("saved", {}):
            progress["wall_s"] = progress["saved"][str(int(last.resolve().name))]
            argv = ["--resume=true", f"--config_path={last / 'pretrained_model' / 'train_config.json'}"]
        else:
            shutil.rmtree(out, ignore_errors=True)
            progress = {"wall_s": 0.0, "saved": {}, "validation": {}}
            argv += [f"--policy.type={row['peer']}", f"--dataset.repo_id=local/{data.name}"]
            argv += [f"--dataset.root={data.resolve()}", "--policy.push_to_hub=false", "--wandb.enable=false"]
            argv += [f"--save_freq={every}", "--log_freq=50", f"--output_dir={out}"]
            argv += [f"--seed={row['train_seed']}"] if "train_seed" in row else []  # LeRobot's default: 1000
        run.mkdir(parents=True, exist_ok=True)
        _run_until(argv, out, run / "train.log", progress, progress_file, budget_s, stop_at_checkpoint=converged)
        if converged:
            for step in progress["saved"]:
                if step not in progress["validation"]:
                    progress["validation"][step] = validation_loss(out / "checkpoints" / f"{int(step):06d}", held_out)
        progress["done"] = not converged or flattened(progress["validation"]) or progress["wall_s"] >= budget_s
        progress_file.write_text(json.dumps(progress))
    within = {int(step): wall for step, wall in progress["saved"].items() if wall <= budget_s or converged}
    if not within:
        raise AdaptError(f"{row['name']}: no checkpoint was saved within {budget_s:.0f} s; lower SAVE_EVERY")
    step = max(within)
    log = (run / "train.log").read_text()
    read = {k: int(v) for k, v in re.findall(r"dataset\.(num_frames|num_episodes)=(\d+)", log)}
    checkpoint = out / "checkpoints" / f"{step:06d}" / "pretrained_model"
    result = {"checkpoint": str(checkpoint), "steps": step, "train_wall_s": within[step], "lerobot_read": read}
    if converged:  # the CPU time of the whole run (walltime rows stop mid-way between checkpoints: wall time only)
        result["train_cpu_s"] = progress["cpu_s"]
    return result | ({"validation": progress["validation"]} if converged else {})


def validation_spacing(peer: str, data: Path) -> int:
    """Steps between a `converged` row's checkpoints: `VALIDATE_EVERY`, or `VALIDATE_PASSES` over `data` if fewer."""
    frames = json.loads((data / "meta" / "info.json").read_text())["total_frames"]
    return min(VALIDATE_EVERY[peer], max(round(VALIDATE_PASSES * frames / BATCH), 50))


def flattened(validation: dict[str, float]) -> bool:
    """The last `FLAT_PATIENCE` validation losses improved on the best before them by less than `FLAT_GAIN`."""
    losses = [validation[k] for k in sorted(validation, key=int)]
    if len(losses) <= FLAT_PATIENCE:
        return False
    best_before = min(losses[:-FLAT_PATIENCE])
    return min(losses[-FLAT_PATIENCE:]) > best_before * (1 - FLAT_GAIN)


def validation_loss(checkpoint: Path, held_out: Path) -> float:
    command = [str(PEERS_PYTHON), str(PEERS_DIR / "validate.py"), "--checkpoint", str(checkpoint / "pretrained_model")]
    env = os.environ | OFFLINE
    done = subprocess.run([*command, "--data", str(held_out.resolve())], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise AdaptError(f"validation of {checkpoint} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["loss"]


def _run_until(
    argv: list[str],
    out: Path,
    log: Path,
    progress: dict,
    progress_file: Path,
    budget_s: float,
    stop_at_checkpoint: bool = False,
) -> None:
    """Run `lerobot-train` (appending to `log`) until the wall time so far reaches `budget_s`, training ends or
    (`stop_at_checkpoint`) a new checkpoint is saved, noting when each checkpoint appears in `progress` (saved to
    `progress_file` as it goes) and adding the CPU time it took (its data workers' included) to `progress["cpu_s"]`:
    the CPU hours reported, true whatever else shares the machine."""
    env = os.environ | OFFLINE
    cpu_before = _children_cpu_s()
    command = [str(PEERS_PYTHON), "-m", "lerobot.scripts.lerobot_train", *argv]
    start, before, known = time.monotonic(), progress["wall_s"], len(progress["saved"])
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(command)}\n")
        sink.flush()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            while process.poll() is None and progress["wall_s"] < budget_s:
                time.sleep(2)
                progress["wall_s"] = before + time.monotonic() - start
                _note_checkpoints(out, progress)
                progress_file.write_text(json.dumps(progress))
                if stop_at_checkpoint and len(progress["saved"]) > known:
                    break
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        progress["cpu_s"] = progress.get("cpu_s", 0.0) + _children_cpu_s() - cpu_before
        progress_file.write_text(json.dumps(progress))
    if process.returncode not in (0, -signal.SIGINT, 1) and not progress["saved"]:
        raise AdaptError(f"lerobot-train failed (exit {process.returncode}); see {log}")


def _children_cpu_s() -> float:
    """User and system CPU seconds of every child process waited for so far (and of their children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _note_checkpoints(out: Path, progress: dict) -> None:
    """Record the wall time at which each finished checkpoint was first seen; delete all but the newest two.
    A checkpoint is finished once LeRobot points `last` at it (it writes the step number first and the optimizer
    state after: a run stopped between the two leaves a checkpoint that cannot resume)."""
    last = out / "checkpoints" / "last"
    if not last.exists():
        return
    newest = int(last.resolve().name)
    steps = sorted(int(p.name) for p in last.parent.glob("[0-9]*") if int(p.name) <= newest)
    for step in steps:
        progress["saved"].setdefault(str(step), progress["wall_s"])
    for step in steps[:-2]:
        shutil.rmtree(last.parent / f"{step:06d}")


def evaluate_peer(checkpoint: Path, run: Path, row: dict, episodes: int) -> dict:
    """Serve the checkpoint from the peers' environment and run adapt's closed loop against it on the row's
    robot and seeds."""
    spec_file = run / "spec.json"
    spec_file.write_text(json.dumps(load_embodiment(row["robot"]).model_dump(mode="json")))
    port, timing = _free_port(), run / "timing.json"
    command = [
        str(PEERS_PYTHON),
        str(PEERS_DIR / "serve.py"),
        "--checkpoint",
        str(checkpoint),
        "--spec",
        str(spec_file),
    ]
    command += ["--port", str(port), "--timing", str(timing)]
    with (run / "serve.log").open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        remote = _connect(f"ws://127.0.0.1:{port}", server, run / "serve.log")
        seed, task = row["eval_seed"], task_of(row)
        report = evaluate_closed_loop(remote, task, episodes, run / f"eval_{task}", seed=seed, progress=True)
        remote.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    served = json.loads(timing.read_text())
    return {
        task: lift_result(report),
        "parameters": served["parameters"],
        "median_plan_ms": served["median_plan_ms"],
        "plans": served["plans"],
    }


def task_of(row: dict) -> str:
    """The task a row is evaluated on (rows that name none: Lift)."""
    return row.get("task", "Lift")


def lift_result(report: EvalReport) -> dict:
    return {
        "success_rate": report.success_rate,
        "success_ci95": list(report.success_interval()),
        "mean_progress": report.mean_progress,
        "progress_ci95": list(report.progress_interval()),
        "median_closest_cm": 100 * statistics.median(e.closest_m for e in report.episodes),
        "empty_grasps_per_episode": float(np.mean([e.empty_grasps for e in report.episodes])),
        "failures": report.failures(),
    }


def _connect(url: str, server: subprocess.Popen, log: Path, timeout: float = 300):
    from adapt.serving.client import RemotePolicy

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AdaptError(f"the peer server exited ({server.returncode}); see {log}")
        try:
            return RemotePolicy(url, timeout=120)
        except AdaptError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulated(work: Path, robot: str, what: dict, quick: bool) -> Path:
    """The adaptation benchmark's dataset of `robot` described by `what` (`adaptation.dataset`'s arguments), or
    (`select`) the frames of it labelled with that text, cut out as `adapt data select` does."""
    what = dict(what, minutes=0.2) if quick else dict(what)
    kind, minutes, seed, select = what.pop("kind"), what.pop("minutes"), what.pop("seed"), what.pop("select", None)
    source = dataset(work, robot, kind, minutes, seed=seed, **what)
    if select is None:
        return source
    from adapt.data import LeRobotDataset
    from adapt.data.select import select_task

    cut = source.with_name(f"{source.name}_{select}-frames")
    if not (cut / "meta" / "info.json").is_file():
        select_task(LeRobotDataset(source, load_embodiment(robot)), select, cut, min_frames=2 if quick else 20)
    return cut


def adapt_latency(versus: dict, robot: str, data: Path, run: Path, task: str, calls: int = 20) -> dict:
    """Median time of one chunk from adapt's policy of `versus` on live observations of `robot` in `task`, on this
    machine in this run, and its parameter count. For an adaptation row the weights do not change the time, so
    the adapter is the row's recipe on the row's data after one step at learning rate 0; for the base, the base."""
    from adaptation import recipe

    from adapt.policy import Policy
    from adapt.predictor import ChunkPredictor
    from adapt.resources import bundled_dir
    from adapt.sim.env import SimEnv, controller_for
    from adapt.sim.episodes import task_text
    from adapt.train.finetune import finetune
    from adapt.train.options import TrainOptions

    base = bundled_dir("models") / "base-small"
    if "recipe" in versus:
        untrained = recipe(versus["recipe"]).model_copy(update={"lr": 0.0})
        options = TrainOptions(steps=1, checkpoint_every=1, progress=False)
        base = finetune(base, robot, [str(data)], untrained, run, options=options, overwrite=True)
    predictor = ChunkPredictor.load(base, robot)
    policy = Policy(predictor)
    times = []
    with SimEnv(policy.spec, task, 0, controller=controller_for(policy.spec)) as sim:
        sim.reset(np.random.default_rng(0), randomize=True)
        text = task_text(task, [t.name for t in sim.things])
        for _ in range(calls + 2):
            observation = sim.render() | {"state": sim.state(), "task": text}
            start = time.perf_counter()
            policy.act(observation)
            times.append(1000 * (time.perf_counter() - start))
    parameters = sum(p.numel() for p in predictor.model.parameters())
    return {"median_plan_ms": statistics.median(times[2:]), "parameters": parameters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, help="episodes per evaluation (default: the row's, 30 or 50)")
    parser.add_argument("--adaptation", type=Path, default=RESULTS / "adaptation.json")
    parser.add_argument("--work", type=Path, default=Path("runs/peers"))
    parser.add_argument("--data-work", type=Path, default=Path("runs/adaptation"), help="adaptation.py's --work")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="0.2 min of data, a 60 s budget, 1 episode")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these rows only")
    parser.add_argument(
        "--max-hours",
        type=float,
        default=CONVERGED_MAX_HOURS,
        help="wall-time cap of a converged row: it stops at its first checkpoint past the cap and is evaluated there"
        " (the report says where the validation loss had not flattened)",
    )
    args = parser.parse_args()
    if not PEERS_PYTHON.is_file():
        parser.error(f"no peers' environment at {PEERS_PYTHON}: run `bash benchmarks/peers/setup.sh` first")
    if args.quick:
        args.episodes, args.work, args.out = 1, args.work.with_name(args.work.name + "-quick"), args.out / "quick"
    unknown = set(args.only or []) - {row["name"] for row in ROWS}
    if unknown:
        parser.error(f"--only: no rows named {sorted(unknown)}; rows: {', '.join(row['name'] for row in ROWS)}")
    adaptation = adaptation_rows(args.adaptation)
    path = args.out / "peers.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    results, measured = previous.get("results", []), previous.get("adapt", {})
    for row in ROWS:
        if args.only and row["name"] not in args.only:
            continue
        if any(r["name"] == row["name"] for r in results):
            print(f"{row['name']}: done earlier, skipped")
            continue
        data = simulated(args.data_work, row["robot"], row["data"], args.quick)
        converged = row["budget"] == "converged"
        held_out = simulated(args.data_work, row["robot"], HELD_OUT, args.quick) if converged else None
        if args.quick:
            budget = 60.0
        elif row["budget"] == "walltime":
            budget = adaptation[row["versus"]]["train_wall_s"]
        else:
            budget = args.max_hours * 3600
        run = args.work / row["name"].replace("/", "_")
        print(f"{row['name']}: training ({row['budget']}, at most {budget:.0f} s of wall time) on {data}")
        trained = train_peer(row, data, held_out, run, budget, args.quick)
        print(f"{row['name']}: {trained['steps']} steps in {trained['train_wall_s']:.0f} s; evaluating")
        episodes = args.episodes or row["episodes"]
        result = {**row, "data": str(data), "budget_s": budget, "episodes": episodes, **trained}
        result["settings"] = {k: {"value": v, "why": why} for k, (v, why) in settings(row["peer"]).items()}
        result |= evaluate_peer(Path(trained["checkpoint"]), run, row, episodes)
        results = [*results, result]
        print(f"{row['name']}: {task_of(row)} success {result[task_of(row)]['success_rate']:.2f}")
        write_report(path, {"machine": machine(), "results": results, "adapt": measured})
    for row in ROWS:  # adapt's side of each row faced: its time per chunk, measured here like the peers'
        versus = row["versus"]
        if versus not in measured and any(r["versus"] == versus for r in results):
            data = next(r["data"] for r in results if r["versus"] == versus)
            run = args.work / "adapt-latency"
            measured[versus] = adapt_latency(adaptation[versus], row["robot"], Path(data), run, task_of(row))
            write_report(path, {"machine": machine(), "results": results, "adapt": measured})
    print(table(results, adaptation, measured))
    write_markdown(args.out / "peers.md", json.loads(path.read_text()), adaptation)


def write_markdown(path: Path, report: dict, adaptation: dict) -> None:
    """The report users read, generated from the JSON so that it cannot disagree with it."""
    results, measured = report["results"], report["adapt"]
    defined = {row["name"]: row for row in ROWS}  # where each row is evaluated (older results do not say)
    where = dict.fromkeys(
        f"{row['robot']} {task_of(row)}: {r['episodes']} episodes from seed {row['eval_seed']}"
        for r in results
        for row in [defined.get(r["name"], r)]
    )
    lines = [
        "# adapt against LeRobot's ACT and Diffusion Policy",
        "",
        "Generated by `benchmarks/peers.py` from `peers.json` and `adaptation.json`; do not edit. adapt's closed loop",
        f"for every row ({'; '.join(where)}); Wilson 95 % intervals; adapt minus the best peer with Newcombe's"
        " interval. Times per chunk are medians on the machine below, in one run.",
        "",
        table(results, adaptation, measured, report["machine"]["cpu_count"]),
        "",
        *pooled_table(results, adaptation),
        "How each policy failed:",
        "",
    ]
    lines += [f"- {r['name']}: {r[task_of(r)]['failures']}" for r in results]
    lines += ["", "LeRobot settings that differ from its defaults (everything else is LeRobot 0.4.4's default):", ""]
    for peer in dict.fromkeys(r["peer"] for r in results):
        lines += [f"- {peer}: " + "; ".join(f"`--{k}={v}` ({why})" for k, (v, why) in settings(peer).items())]
    lines += ["", "What LeRobot read of each dataset (its own training log):", ""]
    lines += [f"- {r['name']}: `{Path(r['data']).name}`, {r['lerobot_read']}" for r in results]
    lines += [
        "",
        "Reproduce: `bash benchmarks/peers/setup.sh`, then `.venv/bin/python benchmarks/peers.py`",
        "(the adaptation rows: `.venv/bin/python benchmarks/adaptation.py --only NAME`).",
        "",
        f"Machine: {json.dumps(report['machine'])}",
    ]
    path.write_text("\n".join(lines) + "\n")


def adaptation_rows(path: Path) -> dict[str, dict]:
    """The adaptation benchmark's results by name, each with the steps it trained, and `base-small`: the bundled
    base measured on its own Panda (`results/base-small/panda_lift_eval.json`, with its lineage's training)."""
    benchmark = json.loads(path.read_text())
    steps, episodes = benchmark["settings"]["steps"], benchmark["settings"]["episodes"]
    rows = {r["name"]: r | {"steps": r.get("steps", steps), "episodes": episodes} for r in benchmark["results"]}
    base = json.loads((RESULTS / "base-small" / "panda_lift_eval.json").read_text())
    rows["base-small"] = {"Lift": base, **base["training"]}
    return rows


def table(results: list[dict], adaptation: dict, measured: dict, cores: int = 2) -> str:
    """Markdown: each adaptation row faced, its peers, and adapt minus the best peer (Newcombe's 95 % interval);
    CPU hours are the training processes' CPU time where it was measured, else training wall time x `cores`
    (the machine's, every core busy)."""
    lines = [
        "| data | policy | success (95% CI) | progress | closest cm | train min (CPU h) | steps | parameters "
        "| ms per chunk | adapt minus best peer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for versus in dict.fromkeys(r["versus"] for r in results):
        ours, peers = adaptation[versus], [r for r in results if r["versus"] == versus]
        task = task_of(peers[0])
        best = max(peers, key=lambda r: r[task]["success_rate"])
        margin = success_difference(ours[task], best[task])
        ours = ours | measured.get(versus, {})
        robot = peers[0].get("robot", TARGET)  # rows measured before rows named their robot were UR5e rows
        adapt = (f"adapt `{versus}`", ours, ours["steps"], ours.get("parameters", 0))
        rows = [adapt, *((f"{r['peer']} ({r['name'].split('/')[-1]})", r, r["steps"], r["parameters"]) for r in peers)]
        for i, (name, r, steps, parameters) in enumerate(rows):
            lift = r[task]
            closest = f"{lift['median_closest_cm']:.1f}" if "median_closest_cm" in lift else "-"
            ms = f"{r['median_plan_ms']:.0f}" if "median_plan_ms" in r else "-"
            versus_best = f"{margin[0]:+.2f} ({margin[1]:+.2f} to {margin[2]:+.2f})" if i == 0 else ""
            low, high = lift["success_ci95"]
            cpu_h = r.get("train_cpu_s", r["train_wall_s"] * cores) / 3600
            if r.get("validation") and not flattened(r["validation"]):
                steps = f"{steps} (validation loss still falling: stopped at the time cap)"
            lines.append(
                f"| {f'{robot} {task}: {versus}' if i == 0 else ''} | {name}"
                f" | {lift['success_rate']:.2f} ({low:.2f}-{high:.2f})"
                f" | {lift['mean_progress']:.2f} | {closest} | {r['train_wall_s'] / 60:.0f}"
                f" ({cpu_h:.1f}) | {steps} | {parameters:,}"
                f" | {ms} | {versus_best} |"
            )
    return "\n".join(lines)


SEED = re.compile(r"-seed\d+")
"""A training seed's suffix in a row's name: rows that differ only by it are runs of one condition."""


def pooled_table(results: list[dict], adaptation: dict) -> list[str]:
    """Markdown lines: for each condition trained from more than one seed, adapt against each peer trained as
    often, every run's episodes pooled (Wilson), and adapt minus the best pooled peer (Newcombe). The runs are
    evaluated on the same scenes, so the pooled episodes are not independent draws of the scene; what pooling
    averages out is the training run's luck."""
    by_condition: dict[str, list[dict]] = {}
    for r in results:
        by_condition.setdefault(SEED.sub("", r["versus"]), []).append(r)
    lines = []
    for condition, rows in by_condition.items():
        runs = list(dict.fromkeys(r["versus"] for r in rows))
        by_peer: dict[str, list[dict]] = {}
        for r in rows:
            by_peer.setdefault(SEED.sub("", r["name"]), []).append(r)
        by_peer = {name: peer for name, peer in by_peer.items() if len(peer) == len(runs)}
        if len(runs) < 2 or not by_peer:
            continue
        task = task_of(rows[0])
        ours = pooled_success([adaptation[v] for v in runs], task)
        peers = {name: pooled_success(peer, task) for name, peer in by_peer.items()}
        best = max(peers, key=lambda name: peers[name][0])
        margin = newcombe_difference(ours[0], ours[2], peers[best][0], peers[best][2])
        if not lines:
            lines = [
                "Pooled over training runs (each run evaluated on the same scenes):",
                "",
                "| data | runs each | adapt | best peer | adapt minus best peer |",
                "|---|---|---|---|---|",
            ]
        lines.append(
            f"| {condition} | {len(runs)} | {pooled_text(ours)} | {best}: {pooled_text(peers[best])}"
            f" | {margin[0]:+.2f} ({margin[1]:+.2f} to {margin[2]:+.2f}) |"
        )
    return [*lines, ""] if lines else []


def pooled_success(runs: list[dict], task: str) -> tuple[float, str, tuple[float, float]]:
    """The success rate of every run's episodes together, `k/n`, and its Wilson interval."""
    from adapt.evaluate import wilson_interval

    successes = sum(round(r[task]["success_rate"] * r["episodes"]) for r in runs)
    episodes = sum(r["episodes"] for r in runs)
    return successes / episodes, f"{successes}/{episodes}", wilson_interval(successes, episodes)


def pooled_text(pooled: tuple[float, str, tuple[float, float]]) -> str:
    rate, count, (low, high) = pooled
    return f"{count} = {rate:.2f} ({low:.2f}-{high:.2f})"


if __name__ == "__main__":
    sys.exit(main())
