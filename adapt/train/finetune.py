"""Few-shot adaptation of a base model to an embodiment: `adapt finetune` and `adapt.finetune` are this.

Order of work: everything that can be wrong with the inputs (base, spec, data, recipe, output folder)
is checked before any training starts; then heads are created, LoRA is added, the trainable set is
printed, Lightning trains, and the adapter folder appears atomically at RUN/adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from adapt.adapter import save_adapter
from adapt.data.codec import ActionCodec, state_names
from adapt.data.stats import NormStats
from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError
from adapt.lora import add_lora
from adapt.model import WorldActionModel, load_model
from adapt.model.heads import EmbodimentHeads
from adapt.recipe import Recipe, load_recipe
from adapt.train.data import DataSource, make_loaders, open_sources, statistics
from adapt.train.fit import TrainOptions, fit
from adapt.train.module import WAMModule
from adapt.train.plots import plot_losses, plot_predictions

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
    report=log.info,
) -> Path:
    """Adapt `base` to `embodiment` on `data` with `recipe`; returns the adapter folder (RUN/adapter).

    `data` entries are dataset folders (`DIR`: embodiment from the dataset; `DIR=SPEC`: named). Datasets
    of the target embodiment need actions unless the recipe is video-only; datasets of other
    embodiments (human video, say) train the video branch. `options.steps`/`checkpoint_every`/
    `accumulate` default to the recipe's.
    """
    out = Path(out)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    spec = embodiment if isinstance(embodiment, EmbodimentSpec) else load_embodiment(embodiment)
    options = options or TrainOptions(
        steps=recipe.steps, checkpoint_every=recipe.checkpoint_every, accumulate=recipe.accumulate
    )
    if (out / "adapter").exists() and not overwrite:
        raise AdaptError(f"{out / 'adapter'} already exists; choose another --out or pass --overwrite")
    model = load_model(base)
    sources = [s if isinstance(s, DataSource) else DataSource.parse(s, default=spec) for s in data]
    grouped = open_sources(sources)
    _check_data(recipe, spec, grouped, model)
    stats = _statistics(model, grouped, report)
    new = _add_heads(model, recipe, spec, grouped)
    model.stats.update(stats)
    _set_trainable(model, recipe, spec.name, new)
    trainable, total = _count(model)
    report(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    window = model.config.window(recipe.idle_threshold)
    loaders = make_loaders(grouped, model.stats, window, recipe.batch_size, workers, options.seed)
    model.train()
    module = WAMModule(
        model,
        mode=recipe.mode,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_steps,
        video_weight=float(recipe.video_loss),
        action_weight=float(recipe.action_loss),
    )
    trainer = fit(module, loaders, out, options)
    if trainer.interrupted:
        raise AdaptError(f"training was interrupted; rerun the same command to resume from {out / 'checkpoints'}")
    adapter = out / "adapter"
    if trainer.is_global_zero:
        model = model.cpu().eval()
        save_adapter(
            model, adapter, base=base, target=spec.name, new_embodiments=new, recipe=recipe, overwrite=overwrite
        )
        plot_losses(out / "logs", out / "loss_curves.png")
        plot_predictions(
            model,
            next(iter(loaders[spec.name if spec.name in loaders else next(iter(loaders))])),
            out / "predictions.png",
        )
    return adapter


def _check_data(recipe: Recipe, spec: EmbodimentSpec, grouped: dict, model: WorldActionModel) -> None:
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


def _statistics(model: WorldActionModel, grouped: dict, report) -> dict[str, NormStats]:
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


def _add_heads(model: WorldActionModel, recipe: Recipe, spec: EmbodimentSpec, grouped: dict) -> list[str]:
    """Heads for every embodiment of the data the base does not know; returns their names."""
    new = []
    for name, datasets in grouped.items():
        if name in model.heads:
            continue
        heads = model.add_embodiment(datasets[0].spec)
        if name == spec.name and recipe.init_heads == "donor":
            donor = recipe.donor or next(iter(n for n in model.heads if n != name), None)
            if donor not in model.heads or donor == name:
                raise AdaptError(f"recipe '{recipe.name}': donor '{donor}' is not an embodiment of the base")
            copy_from_donor(heads, model.heads[donor], datasets[0].spec, model.specs[donor])
        new.append(name)
    return new


def _set_trainable(model: WorldActionModel, recipe: Recipe, target: str, new: list[str]) -> None:
    model.requires_grad_(False)
    if recipe.lora is not None:
        model.backbone = add_lora(model.backbone, recipe.lora)
    if recipe.train_backbone:
        for part in (model.backbone, model.video_in, model.video_out, model.time_mlp, model.text):
            part.requires_grad_(True)
        for p in (model.spatial_position, model.frame_position, model.no_state):
            p.requires_grad_(True)
    for name in model.heads:
        if (name == target and recipe.train_heads) or (name in new and name != target):
            model.heads[name].requires_grad_(True)


def _count(model: WorldActionModel) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def copy_from_donor(heads: EmbodimentHeads, donor: EmbodimentHeads, spec: EmbodimentSpec, donor_spec) -> None:
    """Seed new heads from a donor's: hidden layers copied; input/output rows or columns copied where
    the dimension means the same thing (gripper, end-effector deltas), the rest left fresh."""
    import torch

    with torch.no_grad():
        heads.embedding.copy_(donor.embedding)
        pairs = [(heads.state_encoder, donor.state_encoder), (heads.action_encoder, donor.action_encoder)]
        for new, old in pairs:
            if new is not None and old is not None:
                new.net[2].load_state_dict(old.net[2].state_dict())
        if heads.action_decoder is not None and donor.action_decoder is not None:
            heads.action_decoder.net[0].load_state_dict(donor.action_decoder.net[0].state_dict())
        maps = {
            "state": _shared_dims(state_names(spec), state_names(donor_spec)),
            "action": _shared_dims(*(ActionCodec(s).names() if s.action else [] for s in (spec, donor_spec))),
        }
        if heads.state_encoder is not None and donor.state_encoder is not None:
            for i, j in maps["state"]:
                heads.state_encoder.net[0].weight[:, i] = donor.state_encoder.net[0].weight[:, j]
        if heads.action_encoder is not None and donor.action_encoder is not None:
            d = heads.action_encoder.dim
            heads.action_encoder.net[0].weight[:, -d:] = donor.action_encoder.net[0].weight[:, -d:]  # time features
            for i, j in maps["action"]:
                heads.action_encoder.net[0].weight[:, i] = donor.action_encoder.net[0].weight[:, j]
                heads.action_decoder.net[2].weight[i] = donor.action_decoder.net[2].weight[j]
                heads.action_decoder.net[2].bias[i] = donor.action_decoder.net[2].bias[j]


def _shared_dims(names: list[str], donor_names: list[str]) -> list[tuple[int, int]]:
    index = {n: j for j, n in enumerate(donor_names)}
    return [(i, index[n]) for i, n in enumerate(names) if n in index]
