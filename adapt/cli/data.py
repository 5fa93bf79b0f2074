"""`adapt data ...`: inspect, statistics, video import, simulated data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from adapt.cli.common import err, out, output_path, user_errors
from adapt.errors import AdaptError

data_app = typer.Typer(
    help="Datasets: inspect, statistics, export, import videos, cut one task out of play, generate simulated data.",
    no_args_is_help=True,
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
        verdict = "fits" if not report.problems else f"{len(report.problems)} episode(s) do not fit"
        if report.outside_limits:
            verdict = f"{len(report.outside_limits)} joint record(s) outside the spec's limits"
        if report.mismatches and not report.problems:
            verdict = f"fits, with {len(report.mismatches)} camera difference(s)"
        table.add_row("spec", f"{report.spec}: {verdict}")
    out.print(table)
    for mismatch in report.mismatches:
        err.print(f"[yellow]warning:[/] {escape(mismatch)}", soft_wrap=True)
    for problem in report.problems + report.outside_limits:
        err.print(f"[yellow]problem:[/] {escape(problem)}", soft_wrap=True)
    out.print(f"contact sheet: {sheet}", highlight=False)
    if report.problems or report.outside_limits:
        raise typer.Exit(2)


@data_app.command("stats")
@user_errors
def data_stats(
    path: Annotated[Path, typer.Argument(help="LeRobot dataset folder.")],
    embodiment: Annotated[str, typer.Option(help="Spec name or file.")],
    camera: CameraOption = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write the JSON (default: PATH/meta/adapt_stats.json).", callback=output_path
        ),
    ] = None,
    skip_bad: Annotated[bool, typer.Option(help="Skip episodes that do not fit the spec, and count them.")] = False,
) -> None:
    """Per-dimension mean/std and q01/q99 of state and action, saved as JSON."""
    from adapt.data import LeRobotDataset
    from adapt.data.codec import compute_stats
    from adapt.embodiment import load_embodiment

    dataset = LeRobotDataset(path, load_embodiment(embodiment), _feature_map(camera), skip_bad=skip_bad)
    stats = compute_stats(dataset)
    target = out_file or path / "meta" / "adapt_stats.json"
    stats.save(target)
    _report_skipped(dataset.skipped)
    out.print(f"statistics of {len(dataset.episodes)} episodes ({stats.mode}) -> {target}", highlight=False)


@data_app.command("export")
@user_errors
def data_export(
    path: Annotated[Path, typer.Argument(help="Dataset folder (any LeRobot layout adapt reads).")],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Dataset folder (gear) or .hdf5 file (robomimic) to create.", callback=output_path),
    ],
    layout: Annotated[
        str, typer.Option("--format", help="Target layout: gear (DreamZero / GR00T LeRobot v2.1) or robomimic (HDF5).")
    ] = "gear",
    embodiment: Annotated[str | None, typer.Option(help="Spec name or file (default: the dataset's robot).")] = None,
    tag: Annotated[
        str | None, typer.Option(help="Embodiment tag for meta/embodiment.json (default: spec name).")
    ] = None,
    camera: CameraOption = None,
) -> None:
    """Write a dataset in another project's layout: gear = LeRobot v2.1 with modality.json, embodiment.json,
    stats.json and relative_stats_dreamzero.json, derived from the embodiment spec; robomimic = one HDF5 file as
    robosuite and robomimic write them (end-effector-delta specs)."""
    from adapt.data import LeRobotDataset
    from adapt.data.gear import export_gear
    from adapt.data.reader import read_info
    from adapt.embodiment import load_embodiment

    if layout not in ("gear", "robomimic"):
        raise AdaptError(f"--format {layout!r}: the layouts adapt writes are: gear, robomimic")
    if layout == "robomimic" and out_dir.exists():
        raise AdaptError(f"{out_dir} already exists; choose a new output file or delete it")
    robot = embodiment or read_info(path).get("robot_type")
    if not robot:
        raise AdaptError(f"{path}: the dataset names no robot (robot_type); pass --embodiment")
    dataset = LeRobotDataset(path, load_embodiment(robot), _feature_map(camera))
    if layout == "robomimic":
        from adapt.sim.robomimic import export_robomimic

        export_robomimic(dataset, out_dir)
        out.print(f"wrote {out_dir} (robomimic HDF5): {len(dataset.episodes)} demos", highlight=False)
        return
    export_gear(dataset, out_dir, tag)
    out.print(f"wrote {out_dir} (GEAR, LeRobot v2.1): {len(dataset.episodes)} episodes", highlight=False)


@data_app.command("import-videos")
@user_errors
def data_import_videos(
    folder: Annotated[Path, typer.Argument(help="Folder of video files, one episode each.")],
    task: Annotated[str, typer.Option(help="What the videos show, e.g. 'put the cup in the sink'.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.", callback=output_path)],
    embodiment: Annotated[str, typer.Option(help="A video-only spec (one camera).")] = "human",
    skip_bad: Annotated[bool, typer.Option(help="Skip unreadable videos, and count them.")] = False,
) -> None:
    """Turn a folder of demo videos (no actions) into a video-only LeRobot dataset."""
    from adapt.data.video_folder import import_videos
    from adapt.embodiment import load_embodiment

    _, skipped = import_videos(folder, load_embodiment(embodiment), task, out_dir, skip_bad=skip_bad, progress=True)
    _report_skipped(skipped)
    out.print(f"wrote {out_dir}", highlight=False)


@data_app.command("import")
@user_errors
def data_import(
    file: Annotated[Path, typer.Argument(help="A robomimic / robosuite HDF5 file (data/demo_N).")],
    embodiment: Annotated[str, typer.Option(help="Spec of the robot that recorded it (e.g. panda).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.", callback=output_path)],
    layout: Annotated[str, typer.Option("--format", help="Source format: robomimic.")] = "robomimic",
    task: Annotated[
        str | None, typer.Option(help="Task text of every demo (default: the file's environment name).")
    ] = None,
    camera: Annotated[
        list[str] | None,
        typer.Option("--camera", help="Map a spec camera to an obs key: NAME=KEY (default NAME_image; repeatable)."),
    ] = None,
    flip: Annotated[
        bool,
        typer.Option(help="Turn images upright (robosuite renders them bottom row first, as robomimic keeps them)."),
    ] = True,
) -> None:
    """Import demonstrations recorded elsewhere as a LeRobot dataset of a spec: robomimic's HDF5 (robosuite,
    robomimic and MimicGen datasets), with the state and actions adapt's own simulated data would have."""
    from adapt.embodiment import load_embodiment
    from adapt.sim.robomimic import import_robomimic

    if layout != "robomimic":
        raise AdaptError(
            f"--format {layout!r}: the formats adapt imports are: robomimic (LeRobot datasets are read as they are)"
        )
    if not file.is_file():
        raise AdaptError(f"{file}: no such file")
    cameras = _feature_map(camera).cameras
    _, demos = import_robomimic(
        file, load_embodiment(embodiment), out_dir, cameras=cameras, flip=flip, task=task, progress=True
    )
    out.print(f"wrote {out_dir}: {demos} demos", highlight=False)


@data_app.command("select")
@user_errors
def data_select(
    path: Annotated[Path, typer.Argument(help="LeRobot dataset folder with per-frame task labels (hindsight play).")],
    embodiment: Annotated[str, typer.Option(help="Spec name or file of the dataset's robot.")],
    task: Annotated[str, typer.Option(help="Keep frames whose label contains this text (any case), e.g. 'lift'.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.", callback=output_path)],
    min_frames: Annotated[int, typer.Option(min=2, help="Drop runs of matching frames shorter than this.")] = 20,
    camera: CameraOption = None,
) -> None:
    """Cut the frames of one task out of labelled play into a dataset of their own, one episode per run of
    consecutive matching frames: what a policy that takes no instruction (ACT, Diffusion Policy) trains on."""
    from adapt.data import LeRobotDataset
    from adapt.data.select import select_task
    from adapt.embodiment import load_embodiment

    dataset = LeRobotDataset(path, load_embodiment(embodiment), _feature_map(camera))
    _, episodes = select_task(dataset, task, out_dir, min_frames=min_frames, progress=True)
    out.print(f"wrote {out_dir}: {episodes} episodes labelled {task!r}", highlight=False)


@data_app.command("generate")
@user_errors
def data_generate(
    robot: Annotated[str, typer.Option(help="Bundled robot spec, e.g. ur5e.")],
    kind: Annotated[
        str,
        typer.Option(
            help="play (target robot), multitask (pretraining), demo (one task) or corrections (--policy drives"
            " --task for a while, then the scripted demonstrator takes over and is recorded)."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create.", callback=output_path)],
    minutes: Annotated[float | None, typer.Option(help="Amount of data to generate.")] = None,
    episodes: Annotated[int | None, typer.Option(help="Number of episodes (instead of --minutes).")] = None,
    task: Annotated[
        str,
        typer.Option(
            help="robosuite task for --kind demo and corrections: Lift, Stack, PickPlaceCan; TwoArmLift for a "
            "two-armed robot (baxter_osc)."
        ),
    ] = "Lift",
    video_only: Annotated[bool, typer.Option(help="Write cameras only (no state, no actions).")] = False,
    seed: int = 0,
    policy: Annotated[
        Path | None, typer.Option(help="Model or adapter folder that leads --kind corrections episodes.")
    ] = None,
    hindsight: Annotated[
        bool,
        typer.Option(
            help="--kind play: label each frame with what the arm does there ('lift the red cube' during the try"
            " that picks a cube up, 'push the ...' while it pushes), as an annotator would afterwards, instead of 'play"
            " with the ...' throughout; a policy then learns those tasks from play."
        ),
    ] = False,
    scene: Annotated[
        str | None,
        typer.Option(
            help="--kind play: the robosuite scene played in, Stack (two cubes; the default) or Lift (one cube)."
        ),
    ] = None,
    calm: Annotated[
        bool,
        typer.Option(
            help="--kind play: move as a demonstration does (brisk, little command noise) instead of play's varied"
            " pace and noise."
        ),
    ] = False,
    tidy: Annotated[
        bool,
        typer.Option(
            help="--kind play: close the fingers only to pick something up (no deliberate misses, no closed-hand"
            " pushes, reaches keep the grip): a policy imitates the manner of its play along with the task."
        ),
    ] = False,
    retries: Annotated[
        bool,
        typer.Option(
            help="--kind play --tidy: keep play's deliberate misses of a first grasp, so the play shows the recovery"
            " (with --hindsight the try after a miss, from reopening the fingers, is labelled with the task)."
        ),
    ] = False,
) -> None:
    """Simulate data in robosuite with scripted controllers (needs the `sim` extra)."""
    try:
        from adapt.sim import generate
    except ImportError as error:
        raise AdaptError(f"simulation needs the sim extra: pip install 'adapt[sim]' ({error})") from None
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
        policy=policy,
        hindsight=hindsight,
        scene=scene,
        calm=calm,
        tidy=tidy,
        retries=retries,
    )
    out.print(f"wrote {path}", highlight=False)


def _report_skipped(skipped: list) -> None:
    if skipped:
        err.print(f"[yellow]skipped {len(skipped)}:[/]", soft_wrap=True)
        for item in skipped:
            err.print(f"  - {escape(str(item))}", soft_wrap=True)
