"""What the rest of `adapt` needs from a World Action Model, and the registry of implementations.

Training, adaptation, adapters, policies and evaluation use a model only through `WorldModel`, so another
family of models (DreamZero's Wan2.1 backbone beside our DiT) is one package under `adapt/model/` and one
`Family` line in `ARCHITECTURES`: its implementation, its config, its presets and, where its checkpoints come
in another project's layout, the module that recognises and reads them. Checkpoints of ours name their
architecture in `config.json` (`FamilyConfig.architecture`) and `build_model` picks it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from adapt.data.stats import NormStats
from adapt.data.window_config import WindowConfig
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError

Mode = Literal["joint", "action_only", "video_only"]
"""What a loss or a sample covers: video and actions, actions only (a VLA-style baseline), video only."""


class FamilyConfig(BaseModel):
    """What every family's config is: named by its preset and architecture, frozen, and able to say the window
    of frames, state and actions its model trains on (`window`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: str = "custom"
    """Preset name this config came from (informational)."""
    architecture: str
    """The family (`ARCHITECTURES`) whose model the config builds."""

    def window(self, idle_threshold: float | None = None) -> WindowConfig:
        raise NotImplementedError


@dataclass(frozen=True)
class Family:
    """A family of models, by where its parts live (`module:NAME`, imported when first used): the class
    implementing `WorldModel`, its pydantic config, its presets (`{name: config}`) and, for checkpoints
    released in another project's layout, a module with `recognises(folder)`, `read_config(folder)`,
    `load(folder, device, dtype)` and `fingerprint(folder)`, and the module that counts what a training sample costs
    its transformer for `adapt plan` (`adapt.model.footprint`)."""

    model: str
    config: str
    presets: str
    checkpoints: str | None = None
    footprint: str | None = None


ARCHITECTURES = {
    "wam-dit": Family(
        "adapt.model.dit.wam:WorldActionModel",
        "adapt.model.dit.config:ModelConfig",
        "adapt.model.dit.config:PRESETS",
        footprint="adapt.model.dit.footprint",
    ),
    "dreamzero": Family(
        "adapt.model.dreamzero.model:DreamZeroWAM",
        "adapt.model.dreamzero.config:DreamZeroConfig",
        "adapt.model.dreamzero.config:DREAMZERO_PRESETS",
        "adapt.model.dreamzero.checkpoint",
        "adapt.model.dreamzero.footprint",
    ),
}
"""Architecture name -> its `Family`."""


@runtime_checkable
class WorldModel(Protocol):
    """A torch module that jointly denoises future video and action chunks, with per-embodiment heads.

    Parameters fall into three groups the adaptation code relies on: `tokenizer` (frames <-> latents;
    trained only at the start of pretraining, frozen after), `shared_modules()` (what every embodiment
    uses; a full fine-tune trains it, LoRA adapts `backbone` inside it) and `heads[name]` (one
    embodiment's own). Every parameter belongs to exactly one group.
    """

    config: FamilyConfig
    specs: dict[str, EmbodimentSpec]
    """The spec of every embodiment the model has heads for."""
    stats: dict[str, NormStats]
    """Normalization statistics per embodiment, saved with the model and used at inference."""
    heads: nn.ModuleDict
    tokenizer: nn.Module
    """Has `reconstruction_loss(frames)` and `calibrate(frames)` (the tokenizer phase of pretraining)."""
    backbone: nn.Module
    """The transformer LoRA wraps; `backbone.lora_targets` names its projection groups."""

    def shared_modules(self) -> dict[str, nn.Module | nn.Parameter]:
        """Everything shared by all embodiments except the tokenizer, by attribute name."""
        ...

    def add_embodiment(self, spec: EmbodimentSpec, donor: str | None = None) -> nn.Module:
        """Fresh heads for `spec` (replacing any of that name), seeded from embodiment `donor`'s when given."""
        ...

    def loss(self, batch: dict, mode: Mode = "joint", generator=None) -> dict[str, Tensor]:
        """Flow-matching losses (`video`, `action`, `loss`) of one collated `adapt.data.batch` batch."""
        ...

    def sample(self, batch: dict, steps: int = 10, video_final_t: float = 0.0, mode: Mode = "joint",
               generator=None, cache: bool = True) -> dict[str, Tensor]:  # fmt: skip
        """Denoised `actions` (normalized), `future` latents and `future_estimate` from an observation batch,
        the clean context encoded once and cached across steps when `cache`."""
        ...

    def latents(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, cams, T, 3, H, W) -> the latents `sample` predicts."""
        ...

    def frames_from_latents(self, latents: Tensor) -> Tensor:
        """Latents back to frames in [-1, 1] (B, cams, T, 3, H, W)."""
        ...


def batch_embodiment(model: WorldModel, batch: dict) -> tuple[EmbodimentSpec, nn.Module]:
    """The spec and heads of the one embodiment a batch holds (batches never mix embodiments: heads differ
    in size); a mixed batch or an embodiment the model has no heads for is named."""
    names = set(batch["embodiment"])
    if len(names) != 1:
        raise AdaptError(f"a batch must hold one embodiment, got {sorted(names)} (use one loader per embodiment)")
    name = names.pop()
    if name not in model.heads:
        raise AdaptError(f"the model has no heads for embodiment '{name}'; it knows {sorted(model.heads)}")
    return model.specs[name], model.heads[name]


def _architecture(name: str, part: str):
    family = ARCHITECTURES.get(name)
    if family is None:
        raise AdaptError(f"unknown model architecture '{name}'; known: {', '.join(ARCHITECTURES)}")
    return _imported(getattr(family, part))


def _imported(where: str):
    module, attribute = where.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_model(config: FamilyConfig, specs: list[EmbodimentSpec] = ()) -> WorldModel:
    """A fresh model of `config.architecture` with heads for `specs`."""
    return _architecture(config.architecture, "model")(config, list(specs))


def parse_config(raw: dict) -> FamilyConfig:
    """A checkpoint's model config, validated by its architecture's config class (`wam-dit` when unnamed)."""
    return _architecture(raw.get("architecture", "wam-dit"), "config").model_validate(raw)


def presets() -> dict[str, FamilyConfig]:
    """Every family's presets by name."""
    return {name: config for family in ARCHITECTURES.values() for name, config in _imported(family.presets).items()}


def released_checkpoint(folder: Path) -> ModuleType | None:
    """The reader of the family whose released layout `folder` is in (DreamZero's, say), or None: ours or nothing."""
    for family in ARCHITECTURES.values():
        if family.checkpoints is not None:
            reader = importlib.import_module(family.checkpoints)
            if reader.recognises(Path(folder)):
                return reader
    return None


def family_footprint(architecture: str) -> ModuleType:
    """The `adapt.model.footprint` module of a family, for `adapt plan`; a family without one is named."""
    family = ARCHITECTURES.get(architecture)
    if family is None:
        raise AdaptError(f"unknown model architecture '{architecture}'; known: {', '.join(ARCHITECTURES)}")
    if family.footprint is None:
        raise AdaptError(f"model architecture '{architecture}' cannot be planned: its family has no footprint module")
    return importlib.import_module(family.footprint)


def to_uint8(frames: Tensor) -> Tensor:
    """Frames in [-1, 1] (as every family's `frames_from_latents` returns them) to uint8 (..., H, W, 3)."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)
