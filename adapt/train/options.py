"""How a training run is executed, in a module without torch: the CLI takes its option defaults from here
and still answers `--help` at once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


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


@dataclass(frozen=True)
class PretrainConfig:
    """What a pretraining run trains: the model it starts from, its batches and its losses (how the run executes
    is `TrainOptions`)."""

    size: str = "small"
    """Model preset of a model trained from scratch."""
    init: Path | None = None
    """Continue from this model checkpoint (its size and trained tokenizer) instead of from scratch."""
    init_heads: str = "fresh"
    """Heads for robots `init` lacks: `fresh` (random) or `donor` (copied from an `init` robot acting in the same
    action space)."""
    batch_size: int = 16
    """Windows per embodiment per step."""
    lr: float = 3e-4
    tokenizer_steps: int | None = None
    """First steps that train the tokenizer (None: 400 from scratch, 0 with `init`)."""
    workers: int = 2
    """Data loader processes per embodiment."""
    video_weight: float = 1.0
    action_weight: float = 1.0
    """Weights of the video and action flow-matching losses."""
    video_every: int = 1
    """The video loss on every N-th step only; the others train actions alone (`WAMModule.mode_at`)."""
    video_target: str | None = None
    video_prediction: str | None = None
    video_time_shift: float | None = None
    """What the video branch denoises and outputs, and at which noise levels (`ModelConfig`; None: the preset's,
    or `init`'s)."""
    half: bool = False
    """Store the final weights in float16 (`save_model`)."""


PRETRAINING = TrainOptions(steps=3000, checkpoint_every=200, accumulate=1)
"""A pretraining run's length where its caller sets none (adaptation takes its recipe's)."""


def run_settings(options: TrainOptions) -> dict:
    """The settings of `options` that shape a run's result, as provenance records them."""
    keys = ("steps", "checkpoint_every", "accumulate", "seed", "accelerator", "devices", "strategy", "num_nodes")
    return {key: getattr(options, key) for key in (*keys, "precision", "activation_checkpointing", "balance")}
