"""Few-shot adaptation of a base model to an embodiment: `adapt finetune` and `adapt.finetune` are this.

Order of work: everything that can be wrong with the inputs (base, spec, data, recipe, output folder)
is checked before any training starts; then heads are created, LoRA is added, the trainable set is
printed, Lightning trains, and the adapter folder appears atomically at RUN/adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from adapt import provenance
from adapt.adapter import save_adapter
from adapt.atomic import atomic_write_text
from adapt.data.stats import NormStats
from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError
from adapt.files import check_apart, check_output_path
from adapt.lora import add_lora
from adapt.model import WorldModel, load_model
from adapt.model.checkpoint import base_path
from adapt.recipe import Recipe, load_recipe
from adapt.train.data import DataSource, make_loaders, open_sources, statistics
from adapt.train.fit import check_options, fit, seed_run, training_time
from adapt.train.module import WAMModule
from adapt.train.options import TrainOptions, run_settings
from adapt.train.plots import plot_losses, plot_predictions, sample_windows
from adapt.train.run_lock import run_lock

log = logging.getLogger(__name__)
STATS_TOLERANCE = 0.5
"""Warn when new data's mean moves more than this many base standard deviations (or std by 2x)."""


def finetune(
    base: Path,
    embodiment: str | Path | EmbodimentSpec,
    data: list[str | DataSource],
    recipe: str | Path | Recipe,
    out: Path,
    *,
    options: TrainOptions | None = None,
    workers: int = 2,
    overwrite: bool = False,
    allow_outside_limits: bool = False,
    predictions: bool = True,
    report=log.info,
) -> Path:
    """Adapt `base` to `embodiment` on `data` with `recipe`; returns the adapter folder (RUN/adapter).

    `data` entries are dataset folders (`DIR`: embodiment from the dataset; `DIR=SPEC`: named). Datasets
    of the target embodiment need actions unless the recipe is video-only; datasets of other
    embodiments (human video, say) train the video branch. `options` left unset (steps,
    checkpoint_every, accumulate) take the recipe's. Target data whose joint positions lie outside the spec's
    limits (`adapt.data.inspect.limit_violations`) is refused unless `allow_outside_limits`. `predictions`: after
    training, sample a few windows into RUN/predictions.png (RUN/loss_curves.png is always drawn).
    """
    out = Path(out)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    spec = embodiment if isinstance(embodiment, EmbodimentSpec) else load_embodiment(embodiment)
    options = (options or TrainOptions()).resolve(recipe.steps, recipe.checkpoint_every, recipe.accumulate)
    if (out / "adapter").exists() and not overwrite:
        raise AdaptError(f"{out / 'adapter'} already exists; choose another --out or pass --overwrite")
    check_output_path(out)
    check_options(options)
    sources = [s if isinstance(s, DataSource) else DataSource.parse(s, default=spec) for s in data]
    check_apart(out, {"base": base_path(base), **{f"dataset {s.path}": s.path for s in sources}})
    model = load_model(base, dtype=torch.bfloat16 if options.precision == "bf16-true" else None)
    grouped = open_sources(sources)
    _check_data(recipe, spec, grouped, model)
    if not allow_outside_limits:
        _check_limits(grouped.get(spec.name, []))
    stats = _statistics(model, grouped, report)
    seed_run(options)
    new = _add_heads(model, recipe, spec, grouped)
    model.stats.update(stats)
    set_trainable(model, recipe, spec.name, new)
    trainable, total = _count(model)
    report(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    window = model.config.window(recipe.idle_threshold)
    loaders = make_loaders(
        grouped, model.stats, window, recipe.batch_size, workers, options.seed, balance=options.balance
    )
    model.train()
    recipe = recipe.model_copy(  # what runs, so the adapter's recipe.yaml says it
        update={"steps": options.steps, "checkpoint_every": options.checkpoint_every, "accumulate": options.accumulate}
    )
    record = provenance.start(
        "finetune",
        {"embodiment": spec.name, "recipe": recipe, **run_settings(options), "workers": workers},
        [source.path for source in sources],
        base,
    )
    module = WAMModule(
        model,
        mode=recipe.mode,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_steps,
        video_weight=float(recipe.video_loss),
        action_weight=float(recipe.action_loss),
        save_frozen=False,
    )
    with run_lock(out):
        trainer = fit(module, loaders, out, options)
        if trainer.interrupted:
            raise AdaptError(f"training was interrupted; rerun the same command to resume from {out / 'checkpoints'}")
        adapter = out / "adapter"
        if trainer.is_global_zero:
            model = model.cpu().eval()
            save_adapter(
                model, adapter, base=base, target=spec.name, new_embodiments=new, recipe=recipe, overwrite=overwrite
            )
            done = provenance.finish(
                record, out, adapter, steps_reached=trainer.global_step, training_s=round(training_time(trainer), 1)
            )
            atomic_write_text(adapter / "README.md", provenance.model_card(done))
            plot_losses(out / "logs", out / "loss_curves.png")
            if predictions:
                loader = loaders[spec.name if spec.name in loaders else next(iter(loaders))]
                plot_predictions(model, sample_windows(loader), out / "predictions.png")
    return adapter


def _check_data(recipe: Recipe, spec: EmbodimentSpec, grouped: dict, model: WorldModel) -> None:
    """Refuse, before training, data the recipe cannot use."""
    if spec.name not in grouped and recipe.data != "video_only":
        raise AdaptError(f"no dataset of embodiment '{spec.name}' given; recipe '{recipe.name}' trains on its data")
    for datasets in grouped.values():
        for dataset in datasets:
            if recipe.data == "play" and not dataset.has_action:
                raise AdaptError(
                    f"{dataset.root}: has no actions, but recipe '{recipe.name}' needs actions (data: play); "
                    "use the video-only or mixed recipe for demos without actions"
                )
    if recipe.data == "mixed" and not any(d.has_action for ds in grouped.values() for d in ds):
        raise AdaptError(f"recipe '{recipe.name}' mixes play data and video demos, but no dataset has actions")
    if recipe.data == "video_only" and spec.name not in model.heads:
        raise AdaptError(
            f"recipe '{recipe.name}' trains no heads, but the base has none for '{spec.name}' (it knows "
            f"{', '.join(model.heads)}); adapt with play data first (play-30min), then add video-only demos"
        )


def _check_limits(datasets: list) -> None:
    """Refuse target data recorded beyond the spec's joint limits: a policy trained on it is clipped at inference."""
    from adapt.data.inspect import limit_violations

    for dataset in datasets:
        found = limit_violations(dataset)
        if found:
            raise AdaptError(
                f"{dataset.root}: " + "; ".join(found) + ". Fix the data's units or the spec, or pass"
                " --allow-outside-limits (Python: allow_outside_limits=True) to train on it as it is"
            )


def _statistics(model: WorldModel, grouped: dict, report) -> dict[str, NormStats]:
    """New data's statistics for new heads; the base's for heads it already has (warning when they differ)."""
    stats = statistics({n: d for n, d in grouped.items() if any(x.has_state for x in d)})
    for name, new in list(stats.items()):
        if name in model.stats:
            _compare(name, model.stats[name], new, report)
            stats[name] = model.stats[name]
    return stats


def _compare(name: str, base: NormStats, new: NormStats, report) -> None:
    for field in ("state", "action"):
        old, fresh = getattr(base, field), getattr(new, field)
        if old is None or fresh is None:
            continue
        shift = np.abs(fresh.mean - old.mean) / np.maximum(old.std, 1e-6)
        ratio = fresh.std / np.maximum(old.std, 1e-6)
        bad = np.flatnonzero((shift > STATS_TOLERANCE) | (ratio > 2) | (ratio < 0.5))
        if len(bad):
            report(
                f"warning: {name} {field} statistics of the new data differ from the base's in dims "
                f"{bad.tolist()} (mean shift {np.round(shift[bad], 2).tolist()} std, std ratio "
                f"{np.round(ratio[bad], 2).tolist()}); the base's statistics are used — check units and joint order"
            )


def _add_heads(model: WorldModel, recipe: Recipe, spec: EmbodimentSpec, grouped: dict) -> list[str]:
    """Heads for every embodiment of the data the base does not know; returns their names."""
    new = []
    for name, datasets in grouped.items():
        if name in model.heads:
            continue
        donor = None
        if name == spec.name and recipe.init_heads == "donor":
            donor = recipe.donor or next(iter(n for n in model.heads if n != name), None)
        model.add_embodiment(datasets[0].spec, donor=donor)
        new.append(name)
    return new


def set_trainable(model: WorldModel, recipe: Recipe, target: str, new: list[str]) -> None:
    """Freeze everything, then unfreeze what `recipe` trains: LoRA (added here), the model's shared
    modules (full fine-tune), the target's heads, and the heads of other new embodiments. The tokenizer
    and the heads the base already had for other robots stay frozen."""
    model.requires_grad_(False)
    if recipe.lora is not None:
        model.backbone = add_lora(model.backbone, recipe.lora)
    if recipe.train_backbone:
        for part in model.shared_modules().values():
            part.requires_grad_(True)
    for name in model.heads:
        if (name == target and recipe.train_heads) or (name in new and name != target):
            model.heads[name].requires_grad_(True)


def _count(model: WorldModel) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
