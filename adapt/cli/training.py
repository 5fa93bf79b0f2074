"""`adapt pretrain`, `adapt finetune`, `adapt export`, `adapt recipe ...`: training commands."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapt.cli import run_options as run
from adapt.cli.common import app, out, output_path, user_errors
from adapt.errors import AdaptError
from adapt.train.options import PretrainConfig


@app.command("pretrain")
@user_errors
def pretrain_command(
    data: Annotated[
        list[str], typer.Option(help="Dataset folder, DIR or DIR=SPEC (repeatable; one or more embodiments).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder; the checkpoint lands in OUT/model.", callback=output_path)
    ],
    size: Annotated[str, typer.Option(help="Model preset: tiny, small or base.")] = "small",
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = run.PRETRAINING.steps,
    tokenizer_steps: Annotated[
        int | None,
        typer.Option(min=0, help="First steps that train the tokenizer (default: 400 from scratch, 0 with --init)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per embodiment per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warmup then cosine).")] = 3e-4,
    init: Annotated[
        Path | None,
        typer.Option(help="Continue from this model checkpoint (its size and tokenizer) instead of from scratch."),
    ] = None,
    init_heads: Annotated[
        str,
        typer.Option(
            help="Heads for robots --init has none of start fresh (random) or donor (copied from an --init robot "
            "acting in the same action space: hidden layers, and the state/action dimensions both share by name)."
        ),
    ] = "fresh",
    action_weight: Annotated[float, typer.Option(min=0, help="Weight of the action flow-matching loss.")] = 1.0,
    video_weight: Annotated[float, typer.Option(min=0, help="Weight of the video flow-matching loss.")] = 1.0,
    video_every: Annotated[
        int,
        typer.Option(min=1, help="Video loss on every N-th step only; the others train actions alone (cheaper steps)."),
    ] = 1,
    video_target: Annotated[
        str | None,
        typer.Option(
            help="What the video branch denoises: 'frames' (the future latents) or 'change' (their change from the "
            "last context frame, so that predicting no motion is copying the last frame). Default: the preset's "
            "(frames), or --init's."
        ),
    ] = None,
    video_prediction: Annotated[
        str | None,
        typer.Option(
            help="What the video branch outputs: 'velocity' (the flow's) or 'clean' (the denoised latents, so that "
            "its one-step estimate is the expected future it was fit to). Default: the preset's (velocity), or "
            "--init's; a changed one restarts the video output layer at zero."
        ),
    ] = None,
    video_time_shift: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Shift of the video's flow times towards high noise (Wan's flow shift; 1 = none), where the "
            "future must be inferred from the context. Default: the preset's (1), or --init's.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes per embodiment.")] = 2,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Steps between resumable checkpoints.")
    ] = run.PRETRAINING.checkpoint_every,
    accumulate: Annotated[int, typer.Option(min=1, help="Batches per optimizer step.")] = run.PRETRAINING.accumulate,
    seed: run.Seed = run.DEFAULT.seed,
    accelerator: run.Accelerator = run.DEFAULT.accelerator,
    devices: run.Devices = str(run.DEFAULT.devices),
    strategy: run.Strategy = run.DEFAULT.strategy,
    num_nodes: run.NumNodes = run.DEFAULT.num_nodes,
    resume: run.Resume = run.DEFAULT.resume,
    precision: run.Precision = run.DEFAULT.precision,
    activation_checkpointing: run.ActivationCheckpointing = run.DEFAULT.activation_checkpointing,
    balance: run.Balance = run.DEFAULT.balance,
    wandb: run.Wandb = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT/model.")] = False,
    half: Annotated[bool, typer.Option(help="Store the final weights in float16 (half the file size).")] = False,
) -> None:
    """Pretrain a base World Action Model (video + action flow matching) on one or more embodiments."""
    from adapt.train.pretrain import pretrain

    given = locals()
    options = run.train_options(given)
    config = PretrainConfig(**{f.name: given[f.name] for f in dataclasses.fields(PretrainConfig)})
    path = pretrain(data, out_dir, config, options=options, overwrite=overwrite)
    out.print(f"base model: {path}\nplots: {out_dir / 'loss_curves.png'}, {out_dir / 'predictions.png'}")


@app.command("finetune")
@user_errors
def finetune_command(
    base: Annotated[Path, typer.Option(help="Base model checkpoint folder (from adapt pretrain: RUN/model).")],
    embodiment: Annotated[str, typer.Option(help="Spec name or file of the robot to adapt to.")],
    data: Annotated[
        list[str],
        typer.Option(
            help="Dataset folder, DIR or DIR=SPEC (repeatable): play data + human video, say; data of a robot the "
            "base knows (its own demos) trains the shared LoRA through that robot's frozen heads (rehearsal)."
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder; the adapter lands in OUT/adapter.", callback=output_path)
    ],
    recipe: Annotated[str, typer.Option(help="Bundled recipe name (adapt recipe list) or a recipe YAML file.")] = (
        "play-30min"
    ),
    steps: run.Steps = None,
    checkpoint_every: run.CheckpointEvery = None,
    accumulate: run.Accumulate = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes per embodiment.")] = 2,
    seed: run.Seed = run.DEFAULT.seed,
    accelerator: run.Accelerator = run.DEFAULT.accelerator,
    devices: run.Devices = str(run.DEFAULT.devices),
    strategy: run.Strategy = run.DEFAULT.strategy,
    num_nodes: run.NumNodes = run.DEFAULT.num_nodes,
    resume: run.Resume = run.DEFAULT.resume,
    precision: run.Precision = run.DEFAULT.precision,
    activation_checkpointing: run.ActivationCheckpointing = run.DEFAULT.activation_checkpointing,
    balance: run.Balance = run.DEFAULT.balance,
    wandb: run.Wandb = None,
    init_heads: Annotated[
        str | None,
        typer.Option(
            help="New heads start fresh (random) or donor (copied from the base's robot: hidden layers, and the "
            "state/action dimensions both share by name); default: the recipe's."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT/adapter.")] = False,
    allow_outside_limits: Annotated[
        bool,
        typer.Option(
            help="Train on data whose joint positions lie outside the spec's limits (refused by default: other"
            " units, or another robot; see `adapt data inspect --embodiment`)."
        ),
    ] = False,
    predictions: Annotated[
        bool,
        typer.Option(
            help="After training, sample a few windows into OUT/predictions.png (a real-size DreamZero on a CPU"
            " takes longer over it than over its training steps)."
        ),
    ] = True,
) -> None:
    """Adapt a base model to a robot: new heads + LoRA (per the recipe), trained with Lightning."""
    from typing import get_args

    from adapt.recipe import Recipe, load_recipe
    from adapt.train.finetune import finetune

    chosen = load_recipe(recipe)
    if init_heads is not None:
        choices = get_args(Recipe.model_fields["init_heads"].annotation)  # the recipe field's own values
        if init_heads not in choices:
            raise AdaptError(f"--init-heads {init_heads!r}: choose {' or '.join(choices)}")
        chosen = chosen.model_copy(update={"init_heads": init_heads})
    options = run.train_options(locals())
    report = functools.partial(out.print, highlight=False)
    adapter = finetune(
        base,
        embodiment,
        data,
        chosen,
        out_dir,
        options=options,
        workers=workers,
        overwrite=overwrite,
        allow_outside_limits=allow_outside_limits,
        predictions=predictions,
        report=report,
    )
    plots = [out_dir / "loss_curves.png", *([out_dir / "predictions.png"] if predictions else [])]
    out.print(f"adapter: {adapter}\nplots: {', '.join(map(str, plots))}")


@app.command("export")
@user_errors
def export_command(
    adapter: Annotated[Path, typer.Argument(help="Adapter folder (RUN/adapter) or run folder (RUN).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write.", callback=output_path)],
    format: Annotated[
        str,
        typer.Option(
            help="adapt: a standalone checkpoint, base + adapter with LoRA merged. dreamzero: for a DreamZero base, "
            "the LoRA (peft, DreamZero's module names), registers and metadata.json as DreamZero takes them."
        ),
    ] = "adapt",
    merge: Annotated[bool, typer.Option(help="Fold LoRA into the backbone weights (format adapt; required).")] = True,
    base: Annotated[Path | None, typer.Option(help="Base checkpoint (default: the one the adapter recorded).")] = None,
    overwrite: bool = False,
) -> None:
    """Write an adapted model for use outside this run: a standalone checkpoint, or DreamZero's adapter form."""
    from adapt import provenance
    from adapt.adapter import load_adapter, read_meta
    from adapt.adapter import merge as merge_lora
    from adapt.files import check_apart
    from adapt.model import save_model
    from adapt.model.checkpoint import base_path

    if format not in ("adapt", "dreamzero"):
        raise AdaptError(f"--format {format!r}: choose adapt or dreamzero")
    folder = adapter / "adapter" if (adapter / "adapter").is_dir() else adapter
    recorded = read_meta(folder)["base"] if (folder / "adapt_adapter.json").is_file() else None
    check_apart(out_dir, {"adapter": folder} | ({"base": base_path(base or recorded)} if base or recorded else {}))
    settings = {"adapter": folder, "format": format, "merge": merge}
    if format == "dreamzero":
        from adapt.model.dreamzero.export import export_adapter
        from adapt.model.dreamzero.model import DreamZeroWAM

        meta = read_meta(folder)
        model = load_adapter(folder, base)
        record = provenance.start("export", settings, base=base or meta["base"])
        if not isinstance(model, DreamZeroWAM):
            raise AdaptError(f"{folder}: its base is not a DreamZero checkpoint; --format dreamzero exports those only")
        export_adapter(model, meta["target"], out_dir, base_path(base or meta["base"]), overwrite=overwrite)
        provenance.finish(record, out_dir)
        out.print(f"wrote {out_dir} (DreamZero adapter for {meta['target']})", highlight=False)
        return
    if not merge:
        raise AdaptError("export writes a merged checkpoint; pass --merge (an unmerged adapter is RUN/adapter itself)")
    model = merge_lora(load_adapter(folder, base))
    record = provenance.start("export", settings, base=base or read_meta(folder)["base"])
    save_model(model, out_dir, overwrite=overwrite)
    provenance.finish(record, out_dir)
    out.print(f"wrote {out_dir} (embodiments: {', '.join(model.heads)})", highlight=False)


recipe_app = typer.Typer(help="Training recipes: list and show.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("list")
@user_errors
def recipe_list() -> None:
    """Bundled recipes and what they train."""
    from adapt.recipe import bundled_recipes, load_recipe

    table = Table("name", "data", "trains", "losses", "steps")
    for name in bundled_recipes():
        r = load_recipe(name)
        trains = [
            f"LoRA r{r.lora.rank}" if r.lora else "",
            "heads" if r.train_heads else "",
            "backbone" * r.train_backbone,
        ]
        losses = [x for x, on in (("video", r.video_loss), ("action", r.action_loss)) if on]
        table.add_row(name, r.data, " + ".join(t for t in trains if t), "+".join(losses), str(r.steps))
    out.print(table)


@recipe_app.command("show")
@user_errors
def recipe_show(name: Annotated[str, typer.Argument(help="Bundled recipe name or YAML file.")]) -> None:
    """Every field of a recipe (a starting point for your own YAML)."""
    import yaml

    from adapt.recipe import load_recipe

    out.print(yaml.safe_dump(load_recipe(name).model_dump(mode="json"), sort_keys=False), highlight=False)


@app.command("demo")
@user_errors
def demo_command(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Work folder for the data and the run.", callback=output_path)
    ] = Path("adapt-demo"),
    robot: Annotated[str, typer.Option(help="Robot to adapt to (a bundled single-arm spec).")] = "ur5e_osc",
    kind: Annotated[
        str, typer.Option(help="Data to simulate: 'demo' (Lift demonstrations) or 'play' (runs, but does not lift).")
    ] = "demo",
    minutes: Annotated[float, typer.Option(help="Minutes of data to simulate.")] = 3.0,
    steps: Annotated[int, typer.Option(min=1, help="Adaptation steps.")] = 600,
    recipe: Annotated[str, typer.Option(help="Recipe name or file.")] = "task-demos",
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 2,
    check_episodes: Annotated[
        int, typer.Option(min=0, help="Closed-loop Lift episodes run with the adapter at the end (0: none).")
    ] = 3,
) -> None:
    """The main job on its defaults: simulate a few minutes of Lift demonstrations by a new robot, adapt the
    bundled base to it, and watch the adapter act in a few closed-loop episodes."""
    import time

    from adapt.demo import run_demo

    start = time.perf_counter()
    report = functools.partial(out.print, highlight=False)
    adapter = run_demo(
        out_dir,
        robot=robot,
        kind=kind,
        minutes=minutes,
        steps=steps,
        recipe=recipe,
        workers=workers,
        check_episodes=check_episodes,
        report=report,
    )
    minutes_taken = (time.perf_counter() - start) / 60
    out.print(
        f"\ndone in {minutes_taken:.1f} min. adapter: {adapter}\n"
        f"  evaluate it:  adapt eval --policy {adapter} --task Lift --episodes 2\n"
        f"  merge it:     adapt export {adapter} --merge --out {out_dir / 'merged'}",
        highlight=False,
    )
