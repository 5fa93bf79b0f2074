"""The `adapt` command line: a thin shell over the Python API.

Heavy packages (torch, lightning, peft, timm) are imported inside the commands that need them, so
`adapt --help` and `adapt embodiment ...` answer in a fraction of a second. Bad input ends in one
message naming the file and field, and exit status 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapt.errors import AdaptError

app = typer.Typer(
    help="Adapt a World Action Model to a new robot: specs, data, LoRA fine-tuning, policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
embodiment_app = typer.Typer(
    help="Describe robots: list, show, validate and draft embodiment specs.", no_args_is_help=True
)
app.add_typer(embodiment_app, name="embodiment")
data_app = typer.Typer(
    help="Datasets: inspect, statistics, import videos, generate simulated data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def user_errors(command: F) -> F:
    """Print AdaptError without a traceback and exit with status 2 (bad input)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AdaptError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@embodiment_app.command("list")
@user_errors
def embodiment_list() -> None:
    """List the embodiment specs bundled with adapt."""
    from adapt.embodiment import bundled_embodiments, load_embodiment

    table = Table("name", "joints", "state", "action", "cameras")
    for name in bundled_embodiments():
        spec = load_embodiment(name, check_description=False)
        action = (
            f"{spec.action.kind} x{spec.action.dim} @ {spec.action.control_hz:g} Hz"
            if spec.action
            else "none (video only)"
        )
        cameras = ", ".join(f"{c.name}({c.role})" for c in spec.cameras)
        table.add_row(name, str(len(spec.joints)), str(spec.state_dim), action, cameras)
    out.print(table)


@embodiment_app.command("show")
@user_errors
def embodiment_show(
    name_or_path: Annotated[str, typer.Argument(help="Bundled name (e.g. panda) or a spec YAML.")],
) -> None:
    """Show a spec as tables: joints and limits, end effector, gripper, cameras, state, action space."""
    from adapt.embodiment import load_embodiment

    spec = load_embodiment(name_or_path)
    out.print(f"[bold]{spec.name}[/]  ({spec.source})")
    if spec.video_only:
        out.print("video only: cameras and task text, no state or actions")
    else:
        out.print(f"description: {spec.description}  ->  {spec.description_path()}")
        joints = Table("#", "joint", "lower", "upper", "max velocity", title="joints")
        for i, j in enumerate(spec.joints):
            joints.add_row(str(i), j.name, f"{j.position[0]:.4f}", f"{j.position[1]:.4f}", f"{j.velocity:g}")
        out.print(joints)
        out.print(f"end effector: {', '.join(spec.end_effectors)}")
        if spec.gripper:
            g = spec.gripper
            out.print(f"gripper: {g.kind}, {g.dim} dim, range [{g.range[0]:g}, {g.range[1]:g}]")
    cameras = Table("camera", "role", "height", "width", "fps", title="cameras")
    for c in spec.cameras:
        cameras.add_row(c.name, c.role, str(c.height), str(c.width), f"{c.fps:g}")
    out.print(cameras)
    if spec.proprio:
        proprio = Table("state field", "dim", "unit", title=f"state ({spec.state_dim} dims)")
        for p in spec.proprio:
            proprio.add_row(p.name, str(p.dim), p.unit)
        out.print(proprio)
    if spec.action:
        a = spec.action
        relative = ", relative to state" if a.relative else ""
        out.print(f"action: {a.kind}{relative}, {a.dim} dims, {a.control_hz:g} Hz, chunks of {a.chunk}")
    out.print(f"normalization: {spec.normalization}")


@embodiment_app.command("validate")
@user_errors
def embodiment_validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec YAML files to check against their robot descriptions.")],
) -> None:
    """Validate specs (fields, cross-field rules, joints and limits against the robot description)."""
    from adapt.embodiment import load_embodiment

    failed = 0
    for path in paths:
        try:
            spec = load_embodiment(path)
        except AdaptError as error:
            failed += 1
            err.print(f"[red]FAIL[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            continue
        out.print(
            f"[green]ok[/]   {path}: {spec.name}, {len(spec.joints)} joints, "
            f"state {spec.state_dim}, action {spec.action_dim}",
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(2)


@embodiment_app.command("new")
@user_errors
def embodiment_new(
    description: Annotated[str, typer.Option("--from", help="MJCF or URDF file, or package://<pkg>/<path>.")],
    name: Annotated[str, typer.Option(help="Name of the new embodiment (lowercase, digits, _ or -).")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the spec (default: NAME.yaml).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Draft a complete, valid spec from a robot description; then edit cameras, gripper and rates."""
    from adapt.embodiment import save_embodiment
    from adapt.embodiment.draft import draft_spec

    out_file = out_file or Path(f"{name}.yaml")
    if out_file.exists() and not overwrite:
        raise AdaptError(f"{out_file} already exists; pass --overwrite to replace it")
    spec, header = draft_spec(description, name, out_file)
    save_embodiment(spec, out_file, header)
    out.print(
        f"wrote {out_file}: {len(spec.joints)} joints, end effector {spec.end_effectors}. "
        "Edit the fields listed at its top, then run `adapt embodiment validate`.",
        highlight=False,
        soft_wrap=True,
    )


CameraOption = Annotated[
    list[str] | None,
    typer.Option("--camera", help="Map a spec camera to a dataset video key: NAME=KEY (repeatable)."),
]


def _feature_map(cameras: list[str] | None):
    from adapt.data import FeatureMap

    pairs = {}
    for item in cameras or []:
        name, sep, key = item.partition("=")
        if not sep or not name or not key:
            raise AdaptError(f"--camera {item!r}: expected NAME=KEY, e.g. agentview=observation.images.front")
        pairs[name] = key
    return FeatureMap(cameras=pairs)


@data_app.command("inspect")
@user_errors
def data_inspect(
    path: Annotated[Path, typer.Argument(help="LeRobot dataset folder (v2.0, v2.1 or v3.0).")],
    embodiment: Annotated[str | None, typer.Option(help="Spec name or file to check the data against.")] = None,
    camera: CameraOption = None,
    contact_sheet: Annotated[
        Path | None, typer.Option(help="PNG of frames from a few episodes (default: ./DATASET_contact_sheet.png).")
    ] = None,
) -> None:
    """Episodes, minutes, fps, cameras, dims, tasks and problems; saves a contact sheet of frames."""
    from adapt.data.inspect import inspect_dataset
    from adapt.embodiment import load_embodiment

    spec = load_embodiment(embodiment) if embodiment else None
    sheet = contact_sheet or Path(f"{path.resolve().name}_contact_sheet.png")
    report = inspect_dataset(path, spec, _feature_map(camera), contact_sheet=sheet)
    table = Table("", "", title=f"{path} (LeRobot {report.version})", show_header=False)
    table.add_row("episodes", str(report.episodes))
    table.add_row("duration", f"{report.minutes:.2f} min ({report.frames} frames at {report.fps:g} fps)")
    table.add_row("cameras", ", ".join(f"{k} {h}x{w}" for k, (h, w) in report.cameras.items()))
    table.add_row("state dim", "missing (video only)" if report.state_dim is None else str(report.state_dim))
    table.add_row("action dim", "missing (video only)" if report.action_dim is None else str(report.action_dim))
    table.add_row(
        "tasks",
        "\n".join(report.tasks[:10]) + (f"\n... {len(report.tasks) - 10} more" if len(report.tasks) > 10 else ""),
    )
    if report.spec:
        table.add_row(
            "spec",
            f"{report.spec}: " + ("fits" if not report.problems else f"{len(report.problems)} episode(s) do not fit"),
        )
    out.print(table)
    for problem in report.problems:
        err.print(f"[yellow]problem:[/] {escape(problem)}", soft_wrap=True)
    out.print(f"contact sheet: {sheet}", highlight=False)
    if report.problems:
        raise typer.Exit(2)


@data_app.command("stats")
@user_errors
def data_stats(
    path: Annotated[Path, typer.Argument(help="LeRobot dataset folder.")],
    embodiment: Annotated[str, typer.Option(help="Spec name or file.")],
    camera: CameraOption = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the JSON (default: PATH/meta/adapt_stats.json).")
    ] = None,
    skip_bad: Annotated[bool, typer.Option(help="Skip episodes that do not fit the spec, and count them.")] = False,
) -> None:
    """Per-dimension mean/std and q01/q99 of state and action, saved as JSON."""
    from adapt.data import LeRobotDataset
    from adapt.data.stats import compute_stats
    from adapt.embodiment import load_embodiment

    dataset = LeRobotDataset(path, load_embodiment(embodiment), _feature_map(camera), skip_bad=skip_bad)
    stats = compute_stats(dataset)
    target = out_file or path / "meta" / "adapt_stats.json"
    stats.save(target)
    _report_skipped(dataset.skipped)
    out.print(f"statistics of {len(dataset.episodes)} episodes ({stats.mode}) -> {target}", highlight=False)


@data_app.command("import-videos")
@user_errors
def data_import_videos(
    folder: Annotated[Path, typer.Argument(help="Folder of video files, one episode each.")],
    task: Annotated[str, typer.Option(help="What the videos show, e.g. 'put the cup in the sink'.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.")],
    embodiment: Annotated[str, typer.Option(help="A video-only spec (one camera).")] = "human",
    skip_bad: Annotated[bool, typer.Option(help="Skip unreadable videos, and count them.")] = False,
) -> None:
    """Turn a folder of demo videos (no actions) into a video-only LeRobot dataset."""
    from adapt.data.video_folder import import_videos
    from adapt.embodiment import load_embodiment

    _, skipped = import_videos(folder, load_embodiment(embodiment), task, out_dir, skip_bad=skip_bad, progress=True)
    _report_skipped(skipped)
    out.print(f"wrote {out_dir}", highlight=False)


@data_app.command("generate")
@user_errors
def data_generate(
    robot: Annotated[str, typer.Option(help="Bundled robot spec, e.g. ur5e.")],
    kind: Annotated[str, typer.Option(help="play (target robot), multitask (pretraining) or demo (one task).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.")],
    minutes: Annotated[float | None, typer.Option(help="Amount of data to generate.")] = None,
    episodes: Annotated[int | None, typer.Option(help="Number of episodes (instead of --minutes).")] = None,
    task: Annotated[str, typer.Option(help="robosuite task for --kind demo.")] = "Lift",
    video_only: Annotated[bool, typer.Option(help="Write cameras only (no state, no actions).")] = False,
    seed: int = 0,
) -> None:
    """Simulate data in robosuite with scripted controllers (needs the `sim` extra)."""
    try:
        from adapt.sim import generate
    except ImportError as error:
        raise AdaptError(f"simulation needs the sim extra: pip install 'adapt[sim]' ({error})") from None
    if kind not in ("play", "multitask", "demo"):
        raise AdaptError(f"--kind {kind!r}: use play, multitask or demo")
    path = generate(
        robot,
        kind,
        out_dir,
        minutes=minutes,
        episodes=episodes,
        task=task,
        seed=seed,
        video_only=video_only,
        progress=True,
    )
    out.print(f"wrote {path}", highlight=False)


@app.command("pretrain")
@user_errors
def pretrain_command(
    data: Annotated[
        list[str], typer.Option(help="Dataset folder, DIR or DIR=SPEC (repeatable; one or more embodiments).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder; the checkpoint lands in OUT/model.")],
    size: Annotated[str, typer.Option(help="Model preset: tiny, small or base.")] = "small",
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 3000,
    tokenizer_steps: Annotated[int, typer.Option(min=0, help="First steps that train the frame tokenizer.")] = 400,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per embodiment per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warmup then cosine).")] = 3e-4,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes per embodiment.")] = 2,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between resumable checkpoints.")] = 200,
    seed: int = 0,
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu, gpu.")] = "auto",
    devices: Annotated[str, typer.Option(help="Lightning devices: 1, 2, auto...")] = "1",
    strategy: Annotated[str, typer.Option(help="Lightning strategy: auto, ddp, fsdp...")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoints/last.ckpt when present.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT/model.")] = False,
) -> None:
    """Pretrain a base World Action Model (video + action flow matching) on one or more embodiments."""
    from adapt.train.fit import TrainOptions
    from adapt.train.pretrain import pretrain

    options = TrainOptions(
        steps=steps,
        checkpoint_every=checkpoint_every,
        seed=seed,
        accelerator=accelerator,
        devices=int(devices) if devices.isdigit() else devices,
        strategy=strategy,
        resume=resume,
    )
    path = pretrain(
        data,
        out_dir,
        size=size,
        batch_size=batch_size,
        lr=lr,
        tokenizer_steps=tokenizer_steps,
        workers=workers,
        options=options,
        overwrite=overwrite,
    )
    out.print(f"base model: {path}\nplots: {out_dir / 'loss_curves.png'}, {out_dir / 'predictions.png'}")


def _report_skipped(skipped: list) -> None:
    if skipped:
        err.print(f"[yellow]skipped {len(skipped)}:[/]", soft_wrap=True)
        for item in skipped:
            err.print(f"  - {escape(str(item))}", soft_wrap=True)


if __name__ == "__main__":
    app()
