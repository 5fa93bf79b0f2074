"""`adapt embodiment ...`: list, show, validate and draft robot specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from adapt.cli.common import err, out, output_path, user_errors
from adapt.errors import AdaptError

embodiment_app = typer.Typer(
    help="Describe robots: list, show, validate and draft embodiment specs.", no_args_is_help=True
)


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
        Path | None, typer.Option("--out", help="Where to write the spec (default: NAME.yaml).", callback=output_path)
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
