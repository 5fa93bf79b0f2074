"""`adapt pretrain`: train a base World Action Model from scratch on one or more embodiments' data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import get_args

from pydantic import ValidationError
from torch import nn

from adapt import provenance
from adapt.errors import AdaptError
from adapt.files import check_apart, check_output_path
from adapt.model import ModelConfig, WorldModel, build_model, load_model, model_config, save_model
from adapt.train.data import DataSource, make_loaders, open_sources, statistics
from adapt.train.fit import check_options, fit, seed_run, training_time
from adapt.train.module import WAMModule
from adapt.train.options import PRETRAINING, PretrainConfig, TrainOptions, run_settings
from adapt.train.plots import plot_losses, plot_predictions, sample_windows
from adapt.train.run_lock import run_lock

log = logging.getLogger(__name__)


def pretrain(
    data: list[str | DataSource],
    out: Path,
    config: PretrainConfig | None = None,
    *,
    options: TrainOptions | None = None,
    overwrite: bool = False,
) -> Path:
    """Pretrain on `data` (dataset folders, `DIR` or `DIR=SPEC`) into the run folder `out`: what is trained as
    `config` says, run as `options` say (`TrainOptions`; unset run length: `PRETRAINING`'s).

    The model checkpoint lands in `out/model` (see `adapt.model.checkpoint`); `out` also holds
    Lightning checkpoints (resume), CSV logs, `loss_curves.png` and `predictions.png`.

    `config.init` continues pretraining from a model checkpoint, e.g. with other data or loss weights, so a base
    can be continued under other video settings; heads for robots it lacks start fresh, or (`init_heads="donor"`)
    copied from one of its robots acting in the same action space.
    """
    options = (options or TrainOptions()).resolve(
        PRETRAINING.steps, PRETRAINING.checkpoint_every, PRETRAINING.accumulate
    )
    c, out = config or PretrainConfig(), Path(out)
    if (out / "model").exists() and not overwrite:
        raise AdaptError(f"{out / 'model'} already exists; choose another --out or pass --overwrite")
    tokenizer_steps = c.tokenizer_steps if c.tokenizer_steps is not None else 0 if c.init else 400
    if tokenizer_steps >= options.steps:
        raise AdaptError(f"tokenizer steps ({tokenizer_steps}) must be fewer than training steps ({options.steps})")
    if c.init_heads not in ("fresh", "donor"):
        raise AdaptError(f"--init-heads {c.init_heads!r}: choose fresh or donor")
    if c.init_heads == "donor" and c.init is None:
        raise AdaptError("--init-heads donor copies heads of the --init model; give --init, or start fresh")
    if c.init is None:
        model_config(c.size)  # an unknown size is named before the data is read
    video = {key: getattr(c, key) for key in ("video_target", "video_prediction", "video_time_shift")}
    _with_video(ModelConfig(), video)  # an unknown choice is named before the data is read
    check_output_path(out)
    check_options(options)
    sources = [s if isinstance(s, DataSource) else DataSource.parse(s) for s in data]
    inputs = {f"dataset {s.path}": s.path for s in sources} | ({"--init checkpoint": Path(c.init)} if c.init else {})
    check_apart(out, inputs)
    grouped = open_sources(sources)
    stats = statistics(grouped)
    seed_run(options)
    model = _initial_model(c.init, c.size, [datasets[0].spec for datasets in grouped.values()], video, c.init_heads)
    model.stats = {**model.stats, **stats}
    loaders = make_loaders(
        grouped, stats, model.config.window(), c.batch_size, c.workers, options.seed, balance=options.balance
    )
    log.info("model %s: %.2fM parameters, embodiments %s", model.config.size, _millions(model), ", ".join(grouped))
    module = WAMModule(
        model,
        lr=c.lr,
        tokenizer_steps=tokenizer_steps,
        video_weight=c.video_weight,
        action_weight=c.action_weight,
        video_every=c.video_every,
    )
    settings = {"size": model.config.size, "batch_size": c.batch_size, "lr": c.lr, "tokenizer_steps": tokenizer_steps}
    settings |= {"video_weight": c.video_weight, "action_weight": c.action_weight, "video_every": c.video_every}
    settings |= {"init": c.init, "init_heads": c.init_heads, "half": c.half, "workers": c.workers}
    settings |= run_settings(options)
    record = provenance.start(
        "pretrain", settings, [dataset.root for datasets in grouped.values() for dataset in datasets]
    )
    with run_lock(out):
        trainer = fit(module, loaders, out, options)
        if trainer.is_global_zero:
            save_model(model.cpu(), out / "model", overwrite=overwrite, half=c.half)
            provenance.finish(
                record,
                out,
                out / "model",
                steps_reached=trainer.global_step,
                training_s=round(training_time(trainer), 1),
            )
            write_plots(model, loaders, out)
    return out / "model"


def _initial_model(init: Path | None, size: str, specs: list, video: dict, init_heads: str = "fresh") -> WorldModel:
    """A fresh model of preset `size`, or the checkpoint `init` with heads added for embodiments it lacks
    (heads it has are kept only when the spec is the same robot: same state and action sizes), fresh or seeded
    from a robot of `init` acting in the same action space (`init_heads`). `video` holds the video settings asked
    for (`ModelConfig`'s `video_*` fields; None: not asked), which replace the preset's or init's."""
    if init is None:
        return build_model(_with_video(model_config(size), video), specs)
    model = load_model(Path(init)).train()
    config = _with_video(model.config, video)
    if config is not model.config:  # settings were asked for (a family without them was refused)
        if config.video_prediction != model.config.video_prediction:
            nn.init.zeros_(model.video_out.weight)  # it output the other quantity: restart at x_0 = 0 / v = 0
            nn.init.zeros_(model.video_out.bias)
        model.config = config
    donors = {s.action.kind: name for name, s in model.specs.items() if s.action is not None}  # of init itself
    for spec in specs:
        known = model.specs.get(spec.name)
        if known is None or (known.state_dim, known.action_dim) != (spec.state_dim, spec.action_dim):
            donor = donors.get(spec.action.kind) if init_heads == "donor" and spec.action is not None else None
            if donor is not None:
                log.info("heads of %s seeded from %s's", spec.name, donor)
            model.add_embodiment(spec, donor=None if donor == spec.name else donor)
    return model


def _with_video(config, video: dict):
    """`config` with the video settings asked for in `video` (`config` itself when none is); an unknown
    choice, or a model family without such settings, is a user error that names the option."""
    asked = {key: value for key, value in video.items() if value is not None}
    if not asked:
        return config
    fields = type(config).model_fields
    for key, value in asked.items():
        if key not in fields:
            raise AdaptError(f"--{key.replace('_', '-')} does not apply to '{config.architecture}' models")
        choices = get_args(fields[key].annotation)
        if choices and value not in choices:
            raise AdaptError(f"unknown {key.replace('_', ' ')} '{value}'; choose one of {', '.join(choices)}")
    try:
        return type(config).model_validate({**config.model_dump(), **asked})
    except ValidationError as error:
        raise AdaptError(f"invalid video settings {asked}: {error.errors()[0]['msg']}") from None


def write_plots(model: WorldModel, loaders: dict, out: Path) -> None:
    plot_losses(out / "logs", out / "loss_curves.png")
    plot_predictions(model, sample_windows(next(iter(loaders.values()))), out / "predictions.png")


def _millions(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6
