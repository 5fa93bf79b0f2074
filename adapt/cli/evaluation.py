"""`adapt eval`: closed loop in simulation, or open loop on held-out episodes; `adapt report`: runs and
evaluations on one page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapt.cli.common import app, out, output_path, user_errors
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig

FAST = InferenceConfig()
EXPERT = "scripted"


@app.command("eval")
@user_errors
def eval_command(
    policy_dir: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Adapter folder (RUN or RUN/adapter) or checkpoint; 'scripted' runs the scripted demonstrator"
            " (privileged simulator state, end-effector robots: a reference and a check of the harness).",
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="robosuite task: Lift, Stack or PickPlaceCan; TwoArmLift for a two-armed robot.")
    ] = "Lift",
    robot: Annotated[str | None, typer.Option(help="Embodiment to control (default: the adapter's).")] = None,
    episodes: Annotated[int, typer.Option(min=1)] = 5,
    max_steps: Annotated[int, typer.Option(min=1, help="Control steps per episode.")] = 200,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Results folder (default: POLICY/eval_TASK).", callback=output_path)
    ] = None,
    open_loop: Annotated[bool, typer.Option(help="Score predictions on held-out episodes instead (--data).")] = False,
    data: Annotated[Path | None, typer.Option(help="Held-out dataset for --open-loop.")] = None,
    base: Annotated[Path | None, typer.Option(help="Base checkpoint (default: the one the adapter recorded).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps per chunk.")] = FAST.steps,
    video_final_t: Annotated[float, typer.Option(help="Noise level the video branch stops at.")] = FAST.video_final_t,
    execute: Annotated[int, typer.Option(min=1, help="Actions executed per chunk.")] = FAST.execute,
    blend: Annotated[int, typer.Option(min=0, help="Actions blended at chunk boundaries.")] = FAST.blend,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the first episode (episode i uses SEED + i) and of the sampling noise;"
            " with --open-loop, of the windows drawn and their noise."
        ),
    ] = 0,
    server: Annotated[
        str | None,
        typer.Option(
            help="Run the closed loop through a policy server at this URL (ws://HOST:PORT) instead of --policy:"
            " `adapt serve`, or any openpi server (then name the robot with --robot; its chunks are executed"
            " --execute actions at a time)."
        ),
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="ADAPT_TOKEN", help="API key for --server.")] = None,
) -> None:
    """Evaluate a policy: success and staged task progress per episode, JSON results and rollout videos."""
    from adapt import provenance
    from adapt.policy import Policy
    from adapt.predictor import ChunkPredictor

    config = InferenceConfig(steps=steps, video_final_t=video_final_t, execute=execute, blend=blend, seed=seed)
    if (policy_dir is None) == (server is None):
        raise AdaptError("give either --policy (evaluate here) or --server (through `adapt serve`), not both")
    if server is not None:
        from adapt.serving.client import RemotePolicy

        if open_loop:
            raise AdaptError("--open-loop scores a model in this process: use --policy")
        from adapt.embodiment import load_embodiment

        spec = load_embodiment(robot) if robot else None  # for a server that does not say which robot it drives
        policy, target = RemotePolicy(server, token, spec=spec, execute=execute), out_dir or Path(f"eval_server_{task}")
    elif str(policy_dir) == EXPERT:
        policy, target = _expert(robot, task, seed, open_loop), out_dir or Path(f"eval_{EXPERT}_{task}")
    else:  # beside the adapter, never inside it (a folder copied as the adapter should hold the adapter only)
        run_dir = policy_dir.parent if (policy_dir / "adapt_adapter.json").is_file() else policy_dir
        target = out_dir or run_dir / ("eval_open_loop" if open_loop else f"eval_{task}")
        predictor = ChunkPredictor.load(policy_dir, robot, base, config)
        if open_loop:
            _open_loop(predictor, data, target, seed)
            return
        policy = Policy(predictor)
    from adapt.sim.closed_loop import evaluate_closed_loop

    table = Table(
        "episode",
        "success",
        "progress",
        "stages",
        "closest cm",
        "empty grasps",
        "steps",
        "video",
        title=f"{policy.spec.name} {task}",
    )
    settings = {"policy": str(server or policy_dir), "robot": policy.spec.name, "task": task, "episodes": episodes}
    settings |= {"max_steps": max_steps, "seed": seed, "inference": vars(config), "base": base}
    record = provenance.start("eval", settings)
    report = evaluate_closed_loop(
        policy,
        task,
        episodes,
        target,
        max_steps=max_steps,
        seed=seed,
        progress=True,
    )
    provenance.finish(record, target, success_rate=report.success_rate, mean_progress=report.mean_progress)
    for i, r in enumerate(report.episodes):
        table.add_row(
            str(i),
            "yes" if r.success else "no",
            f"{r.progress:.2f}",
            " > ".join(r.stages),
            f"{r.closest_m * 100:.1f}",
            str(r.empty_grasps),
            str(r.steps),
            r.video,
        )
    out.print(table)
    out.print(f"{report.summary()}; results: {target / 'results.json'}", highlight=False)
    out.print(report.failures(), highlight=False)
    if server is not None:
        policy.close()


def _open_loop(predictor, data: Path | None, target: Path, seed: int) -> None:
    """Scores predictions on held-out windows, and pictures the first ones' scored futures beside the real ones."""
    from adapt.data import LeRobotDataset
    from adapt.evaluate import evaluate_open_loop

    if data is None:
        raise AdaptError("--open-loop needs --data DIR: a held-out dataset of the robot")
    result = evaluate_open_loop(predictor, LeRobotDataset(data, predictor.spec), target, seed=seed)
    out.print(result, highlight=False)
    out.print(f"results: {target / 'results.json'}; predicted futures: {target / 'predictions.png'}", highlight=False)


def _expert(robot: str | None, task: str, seed: int, open_loop: bool):
    from adapt.embodiment import load_embodiment
    from adapt.sim.expert import ScriptedExpert

    if open_loop:
        raise AdaptError("the scripted demonstrator has no predictions to score: --open-loop needs a model")
    return ScriptedExpert(load_embodiment(robot or "panda"), task, seed)


@app.command("report")
@user_errors
def report_command(
    folders: Annotated[
        list[Path], typer.Argument(help="Run folders (a finetune or pretrain --out) and evaluation folders.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML page to write.", callback=output_path)] = Path(
        "adapt-report.html"
    ),
    videos: Annotated[int, typer.Option(min=0, help="Rollout videos per evaluation (failures and successes).")] = 4,
) -> None:
    """One self-contained HTML page (pictures and videos embedded) of runs and evaluations side by side: how each
    was made, loss curves, predicted-against-real strips, the closed-loop table with its intervals, rollouts."""
    from adapt.report import write_report

    page = write_report(folders, out_file, videos=videos)
    out.print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB); open it in a browser", highlight=False)
