"""The Lightning run options `adapt pretrain` and `adapt finetune` share, declared once, with their
defaults taken from `TrainOptions` (as `adapt eval` takes its own from `InferenceConfig`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from adapt.train.options import PRETRAINING, TrainOptions

DEFAULT = TrainOptions()
__all__ = ["DEFAULT", "PRETRAINING", "train_options"]
Steps = Annotated[int | None, typer.Option(min=1, help="Optimizer steps (default: the recipe's).")]
CheckpointEvery = Annotated[
    int | None, typer.Option(min=1, help="Steps between resumable checkpoints (default: the recipe's).")
]
Accumulate = Annotated[int | None, typer.Option(min=1, help="Batches per optimizer step (default: the recipe's).")]
Seed = Annotated[int, typer.Option(help="Seed of initialisation, data order and noise.")]
Accelerator = Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu, gpu.")]
Devices = Annotated[str, typer.Option(help="Lightning devices per node: 1, 2, auto...")]
Strategy = Annotated[str, typer.Option(help="Lightning strategy: auto, ddp, fsdp...")]
NumNodes = Annotated[int, typer.Option(min=1, help="Nodes (multi-node DDP/FSDP through Lightning).")]
Balance = Annotated[
    bool,
    typer.Option(
        help="Draw each dataset of a robot equally often whatever its length (a minute of task demos beside half "
        "an hour of play, say); default: in proportion to length."
    ),
]
Resume = Annotated[bool, typer.Option(help="Continue from OUT/checkpoints/last.ckpt when present.")]
Precision = Annotated[
    str | None, typer.Option(help="Lightning precision: 32-true, bf16-mixed, bf16-true (default: bf16-mixed on a GPU).")
]
Wandb = Annotated[
    str | None,
    typer.Option(help="Also log to this Weights & Biases project (needs wandb installed and logged in)."),
]
ActivationCheckpointing = Annotated[
    bool, typer.Option(help="Recompute each transformer block in the backward pass: less memory, ~1/3 more compute.")
]


def train_options(given: dict) -> TrainOptions:
    """The run options among a command's parameters (`locals()` of `adapt pretrain` or `adapt finetune`), as given;
    run-length fields left None are resolved by the training entry point."""
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    options = {name: value for name, value in given.items() if name in fields}
    devices = str(options.get("devices", DEFAULT.devices))
    return TrainOptions(**options | {"devices": int(devices) if devices.isdigit() else devices})
