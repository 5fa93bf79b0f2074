"""`adapt pretrain`: train a base World Action Model from scratch on one or more embodiments' data."""

from __future__ import annotations

import logging
from pathlib import Path

from adapt.errors import AdaptError
from adapt.model import WorldActionModel, model_config, save_model
from adapt.train.data import DataSource, make_loaders, open_sources, statistics
from adapt.train.fit import TrainOptions, fit
from adapt.train.module import WAMModule
from adapt.train.plots import plot_losses, plot_predictions

log = logging.getLogger(__name__)


def pretrain(
    data: list[str | DataSource],
    out: Path,
    *,
    size: str = "small",
    batch_size: int = 16,
    lr: float = 3e-4,
    tokenizer_steps: int = 300,
    workers: int = 2,
    options: TrainOptions | None = None,
    overwrite: bool = False,
    half: bool = False,
) -> Path:
    """Pretrain on `data` (dataset folders, `DIR` or `DIR=SPEC`) into the run folder `out`.

    The model checkpoint lands in `out/model` (see `adapt.model.checkpoint`); `out` also holds
    Lightning checkpoints (resume), CSV logs, `loss_curves.png` and `predictions.png`. `half`
    stores the final weights in float16 (see `save_model`).
    """
    options = options or TrainOptions()
    out = Path(out)
    if (out / "model").exists() and not overwrite:
        raise AdaptError(f"{out / 'model'} already exists; choose another --out or pass --overwrite")
    if tokenizer_steps >= options.steps:
        raise AdaptError(f"tokenizer steps ({tokenizer_steps}) must be fewer than training steps ({options.steps})")
    config = model_config(size)
    grouped = open_sources([s if isinstance(s, DataSource) else DataSource.parse(s) for s in data])
    stats = statistics(grouped)
    loaders = make_loaders(grouped, stats, config.window(), batch_size, workers, options.seed)
    model = WorldActionModel(config, [datasets[0].spec for datasets in grouped.values()])
    model.stats = stats
    log.info("model %s: %.2fM parameters, embodiments %s", size, _millions(model), ", ".join(grouped))
    module = WAMModule(model, lr=lr, tokenizer_steps=tokenizer_steps)
    trainer = fit(module, loaders, out, options)
    if trainer.is_global_zero:
        save_model(model.cpu(), out / "model", overwrite=overwrite, half=half)
        write_plots(model, loaders, out)
    return out / "model"


def write_plots(model: WorldActionModel, loaders: dict, out: Path) -> None:
    plot_losses(out / "logs", out / "loss_curves.png")
    batch = next(iter(next(iter(loaders.values()))))
    plot_predictions(model, batch, out / "predictions.png")


def _millions(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6
