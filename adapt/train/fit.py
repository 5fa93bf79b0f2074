"""Run a `WAMModule` through a Lightning Trainer: progress bar, CSV logs, periodic checkpoints, resume,
and multi-device strategies (DDP, FSDP) passed straight to Lightning."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.exceptions import SIGTERMException

from adapt.atomic import atomic_write_bytes
from adapt.errors import AdaptError, Interrupted
from adapt.lora import unwrapped
from adapt.progress import progress_log
from adapt.train.module import WAMModule
from adapt.train.options import TrainOptions

log = logging.getLogger(__name__)


class _NothingToActOn(logging.Filter):
    """Drops Lightning's advertisements ("Tip: ... try installing ...") and its "GPU available: False"
    lines: a run's output is our progress and results, and what a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("\N{ELECTRIC LIGHT BULB}") or re.match(r"\w+ available: False", message))


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NothingToActOn())


class StepProgressBar(RichProgressBar):
    """Rich progress that names the run's step budget: runs here are bounded by steps, not epochs,
    and Lightning's own description would read 'Epoch 0/-2'."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"epoch {current_epoch} from step {self.trainer.global_step} of {self.trainer.max_steps}"

    def get_metrics(self, trainer, pl_module) -> dict:
        return {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}


class ProgressLines(L.Callback):
    """Progress as plain log lines, for output that is a file (nohup, SLURM) where a live bar is either silent
    or a wall of redraws: one line at most every `every_s` seconds and at the end, with the step, the losses
    shown in the bar, the rate and the time left."""

    def __init__(self, every_s: float = 60.0):
        self.every_s, self._start, self._last, self._first_step = every_s, 0.0, 0.0, 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer, *args) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s or trainer.global_step >= trainer.max_steps:
            self._last = now
            done = trainer.global_step - self._first_step
            rate = done / max(now - self._start, 1e-9)
            left = (trainer.max_steps - trainer.global_step) / rate / 60 if rate > 0 else float("nan")
            losses = ", ".join(
                f"{k} {float(v):.4f}" for k, v in trainer.progress_bar_metrics.items() if k.endswith("loss")
            )
            progress_log.info(
                "step %d/%d: %s; %.2f steps/s, %.1f min left",
                trainer.global_step,
                trainer.max_steps,
                losses or "no loss yet",
                rate,
                left,
            )


class TrainingClock(L.Callback):
    """Training time summed over a run's attempts, kept in its checkpoints: a run stopped and resumed reports what
    training from its first step to its last took (each attempt up to the checkpoint the next one resumed from),
    not only its last attempt's time. Read it with `training_time` (a trainer) or `checkpoint_training_time`."""

    def __init__(self):
        self.before_s, self._since = 0.0, None

    def on_train_start(self, trainer, pl_module) -> None:
        self._since = time.monotonic()

    def elapsed_s(self) -> float:
        return self.before_s + (time.monotonic() - self._since if self._since is not None else 0.0)

    def state_dict(self) -> dict:
        return {"training_s": self.elapsed_s()}

    def load_state_dict(self, state: dict) -> None:
        self.before_s = float(state["training_s"])


def training_time(trainer: L.Trainer) -> float:
    """Seconds of training a `fit` run took, resumed attempts included."""
    return next(c for c in trainer.callbacks if isinstance(c, TrainingClock)).elapsed_s()


def checkpoint_training_time(checkpoints: Path) -> float:
    """Seconds of training the checkpoint a rerun would resume from holds (0 with none, or one older than the
    clock): what a resumed run adds its own time to."""
    resume = resume_point(Path(checkpoints)) if Path(checkpoints).is_dir() else None
    if resume is None:
        return 0.0
    state = torch.load(resume, map_location="cpu", weights_only=True, mmap=True).get("callbacks", {})
    return float(state.get(TrainingClock.__qualname__, {}).get("training_s", 0.0))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their target, synced, then renamed over it: a kill or a full disk leaves
    the previous checkpoint whole. (Lightning's own save writes a temp file in the system temp folder and
    moves it; onto another disk that move is a copy that a kill can cut short.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by AtomicCheckpointIO")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())


def _progress() -> L.Callback:
    """A live bar on a terminal; plain periodic lines when the output is a file."""
    return StepProgressBar(leave=True) if sys.stderr.isatty() else ProgressLines()


def loggers(run_dir: Path, options: TrainOptions) -> list:
    """CSV logs always (`logs/version_N`: one per attempt, none overwritten); TensorBoard's beside them when it is
    installed (`tensorboard --logdir RUN/logs`); Weights & Biases when a project is named (`--wandb PROJECT`)."""
    import importlib.util

    found: list = [CSVLogger(run_dir, name="logs")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        found.append(TensorBoardLogger(run_dir, name="logs", version=found[0].version, default_hp_metric=False))
    if options.wandb is not None:
        if importlib.util.find_spec("wandb") is None:
            raise AdaptError(f"--wandb {options.wandb}: Weights & Biases is not installed (pip install wandb)")
        from lightning.pytorch.loggers import WandbLogger

        found.append(WandbLogger(project=options.wandb, save_dir=str(run_dir)))
    return found


def check_options(options: TrainOptions) -> None:
    """Refuse Lightning options this machine cannot honour before any data or weights are loaded: an
    accelerator it lacks, more CPU processes than it has cores, an unknown strategy or precision.

    Lightning checks accelerator, strategy and precision when a Trainer is built (no process starts then),
    so a throwaway one is built; CPU devices are counted here because Lightning would start one process
    per device, however many cores there are."""
    try:
        trainer = L.Trainer(
            accelerator=options.accelerator,
            devices=options.devices,
            strategy=options.strategy,
            num_nodes=options.num_nodes,
            precision=_precision(options),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except Exception as error:  # Lightning raises MisconfigurationException, ValueError, RuntimeError
        raise AdaptError(
            f"Lightning cannot run with --accelerator {options.accelerator} --devices {options.devices} "
            f"--strategy {options.strategy} --precision {_precision(options)}: {error}"
        ) from None
    cores = os.cpu_count() or 1
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cores:
        raise AdaptError(
            f"--devices {options.devices} would start {trainer.num_devices} training processes on "
            f"{cores} CPU cores; use at most {cores}"
        )


def _strategy(module: WAMModule, options: TrainOptions):
    """Lightning's strategy, with the backbone's blocks as FSDP's wrapping (and, when asked, checkpointing)
    units; other strategies recompute blocks through the backbone's own `gradient_checkpointing` switch."""
    backbone = module.model.backbone
    block = getattr(backbone, "block_type", None)
    if options.strategy == "fsdp" and block is not None:
        from lightning.pytorch.strategies import FSDPStrategy

        checkpointed = {block} if options.activation_checkpointing else None
        return FSDPStrategy(auto_wrap_policy={block}, activation_checkpointing_policy=checkpointed)
    if options.activation_checkpointing:
        base = unwrapped(backbone)
        if not hasattr(base, "gradient_checkpointing"):
            raise AdaptError(f"{type(base).__name__} cannot recompute its blocks (no gradient_checkpointing)")
        base.gradient_checkpointing = True
    return options.strategy


def _precision(options: TrainOptions) -> str:
    """The run's precision: as asked, else bf16-mixed on a GPU and 32-true on a CPU."""
    return options.precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true")


def _interrupted(trainer: L.Trainer, checkpoints: Path, terminated: bool) -> Interrupted:
    """One line for a run stopped by a signal: which, at which step, the checkpoint a rerun continues from."""
    signum = signal.SIGTERM if terminated else signal.SIGINT
    last = resume_point(checkpoints)
    stopped = f"training stopped by {signum.name} at step {trainer.global_step}"
    if last is None:
        return Interrupted(f"{stopped}, before its first checkpoint; rerun the same command to start again", signum)
    return Interrupted(f"{stopped}; rerun the same command to resume from {last}", signum)


def resume_point(checkpoints: Path) -> Path | None:
    """The checkpoint a rerun continues from: `last.ckpt`, or when it is damaged (a kill while it was
    copied, a full disk) the newest intact checkpoint beside it, with a warning naming the damaged one.
    None when there is none; an `AdaptError` when every one there is damaged."""
    for leftover in checkpoints.glob(".*.ckpt.*.tmp"):  # a write that was killed (see AtomicCheckpointIO)
        leftover.unlink()
    last = checkpoints / "last.ckpt"
    if not last.is_file():
        return None
    others = sorted(
        (p for p in checkpoints.glob("*.ckpt") if p != last and p.is_file()), key=lambda p: p.stat().st_mtime
    )
    damaged = []
    for candidate in [last, *reversed(others)]:
        try:  # mmap: reads the archive's index, not the tensors
            torch.load(candidate, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # torch raises RuntimeError/EOFError/pickle errors for damaged archives
            damaged.append(f"{candidate.name} ({str(error).splitlines()[0][:80]})")
            continue
        if damaged:
            log.warning("damaged checkpoint(s) %s; resuming from %s", ", ".join(damaged), candidate)
        return candidate
    raise AdaptError(
        f"{checkpoints}: every checkpoint is damaged ({', '.join(damaged)}); "
        "pass --no-resume to start this run afresh (the folder is kept; remove it to reclaim the space)"
    )


def seed_run(options: TrainOptions) -> None:
    """Seed Python, NumPy, torch and the loader workers from `options.seed`. Called before a run draws new
    weights (fresh heads, LoRA, a model from scratch) and again as training starts, so that one seed makes
    one run (seeded only as training started, two runs of one benchmark condition began from different heads
    and LoRA weights; they lifted in 8 and in 1 of 30 episodes)."""
    L.seed_everything(options.seed, workers=True, verbose=False)


def fit(module: WAMModule, loaders: dict, run_dir: Path, options: TrainOptions) -> L.Trainer:
    """Train until `options.steps` (resolved: see `TrainOptions.resolve`); returns the trainer (its
    `is_global_zero` says who writes outputs)."""
    if None in (options.steps, options.checkpoint_every, options.accumulate):
        raise ValueError(f"unresolved run length in {options}; call TrainOptions.resolve first")
    seed_run(options)
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    trainer = L.Trainer(
        max_steps=options.steps,
        accelerator=options.accelerator,
        devices=options.devices,
        strategy=_strategy(module, options),
        num_nodes=options.num_nodes,
        precision=_precision(options),
        accumulate_grad_batches=options.accumulate,
        gradient_clip_val=1.0,
        logger=loggers(run_dir, options),
        callbacks=[
            ModelCheckpoint(checkpoints, every_n_train_steps=options.checkpoint_every, save_last=True, save_top_k=1),
            TrainingClock(),
            *([_progress()] if options.progress else []),
            *options.callbacks,
        ],
        enable_progress_bar=options.progress and sys.stderr.isatty(),
        enable_model_summary=False,
        log_every_n_steps=max(1, min(options.log_every, options.steps // 20)),
        num_sanity_val_steps=0,
        limit_val_batches=0,
        plugins=[AtomicCheckpointIO()],
    )
    last = checkpoints / "last.ckpt"
    resume = resume_point(checkpoints) if options.resume else None
    if resume:
        log.info("resuming from %s", resume)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`max_epochs` was not set.*")
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # resuming
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")  # Lightning on torch 2.14
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # frozen encoders stay in eval
        try:
            trainer.fit(module, CombinedLoader(loaders, mode="max_size_cycle"), ckpt_path=resume, weights_only=True)
        except SystemExit as stop:  # how Lightning ends a run stopped by Ctrl-C (exit 1) or SIGTERM
            raise _interrupted(trainer, checkpoints, isinstance(stop, SIGTERMException)) from None
        except RuntimeError as error:  # a SIGTERM to the process group ends the loader's workers too
            if "DataLoader worker" not in str(error) or not trainer._signal_connector.received_sigterm:
                raise
            raise _interrupted(trainer, checkpoints, terminated=True) from None
    if not trainer.interrupted:  # the final state, so a longer rerun continues from the end
        trainer.save_checkpoint(last, weights_only=False)  # a full, resumable checkpoint
    return trainer
