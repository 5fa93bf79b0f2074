"""How a training run is executed, in a module without torch: the CLI takes its option defaults from here
and still answers `--help` at once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass
class TrainOptions:
    """How a run is executed (what is trained is the module's business).

    The run length (`steps`, `checkpoint_every`, `accumulate`) left None is filled by `resolve` from the
    recipe (adaptation) or the pretraining defaults, so a caller that sets only a seed or a device keeps
    the recipe's length and accumulation."""

    steps: int | None = None
    """Optimizer steps (None: the recipe's)."""
    checkpoint_every: int | None = None
    """Steps between resumable checkpoints (run/checkpoints/last.ckpt; None: the recipe's)."""
    accumulate: int | None = None
    """Gradient accumulation: batches per optimizer step (None: the recipe's)."""
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    """Lightning strategy: auto, ddp, ddp_spawn, fsdp, ..."""
    num_nodes: int = 1
    precision: str | None = None
    """None: bf16-mixed on a GPU, 32-true on a CPU."""
    activation_checkpointing: bool = False
    """Recompute the backbone's blocks in the backward pass (FSDP: Lightning's per-block policy)."""
    balance: bool = False
    """Draw each dataset of an embodiment equally often, whatever its length: a minute of task demos beside
    half an hour of play would otherwise be 3 % of the batches."""
    resume: bool = True
    """Continue from run/checkpoints/last.ckpt when it exists."""
    wandb: str | None = None
    """Weights & Biases project to log to as well (needs `wandb` installed and logged in); None: CSV and, when
    installed, TensorBoard only."""
    progress: bool = True
    log_every: int = 10
    callbacks: list = field(default_factory=list)
    """Extra Lightning callbacks (early stopping, custom logging...)."""

    def resolve(self, steps: int, checkpoint_every: int, accumulate: int) -> TrainOptions:
        """These options with every unset run-length field taken from the given defaults."""
        return replace(
            self,
            steps=self.steps or steps,
            checkpoint_every=self.checkpoint_every or checkpoint_every,
            accumulate=self.accumulate or accumulate,
        )


PRETRAINING = TrainOptions(steps=3000, checkpoint_every=200, accumulate=1)
"""A pretraining run's length where its caller sets none (adaptation takes its recipe's)."""


def run_settings(options: TrainOptions) -> dict:
    """The settings of `options` that shape a run's result, as provenance records them."""
    keys = ("steps", "checkpoint_every", "accumulate", "seed", "accelerator", "devices", "strategy", "num_nodes")
    return {key: getattr(options, key) for key in (*keys, "precision", "activation_checkpointing", "balance")}
