"""Recipes: what an adaptation trains, on which data, with which losses, for how long. A recipe is data
(a YAML file in `recipes/`, or a `Recipe` built in Python); `adapt finetune` and `adapt.finetune` take
either."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from adapt.errors import AdaptError, InvalidFileError, Problem, did_you_mean
from adapt.files import read_yaml
from adapt.resources import bundled_files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSettings(_Strict):
    """LoRA on the backbone (peft)."""

    rank: PositiveInt = 4
    alpha: PositiveFloat = 8.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    targets: list[str] = ["attention", "mlp"]
    """Backbone groups (`attention`, `mlp`) or module-name suffixes (e.g. `attn.qkv`)."""


class Recipe(_Strict):
    """One way to adapt a base model to an embodiment."""

    name: str
    description: str = ""
    data: Literal["play", "video_only", "mixed"] = "play"
    """What the data must hold: `play` needs actions; `video_only` uses frames only; `mixed` takes both."""
    lora: LoraSettings | None = LoraSettings()
    """LoRA on the backbone; None leaves the backbone frozen (or fully trained with `train_backbone`)."""
    train_heads: bool = True
    """Train the target embodiment's heads (created fresh when the base has none)."""
    train_backbone: bool = False
    """Full fine-tune: every backbone weight trains (no LoRA)."""
    init_heads: Literal["fresh", "donor"] = "fresh"
    """New heads start random, or copied from a donor embodiment of the base (`donor`)."""
    donor: str | None = None
    """Embodiment of the base whose heads seed new ones (default: the first one the base has)."""
    video_loss: bool = True
    action_loss: bool = True
    steps: PositiveInt = 1500
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(50, ge=0)
    accumulate: PositiveInt = 1
    checkpoint_every: PositiveInt = 200
    idle_threshold: float | None = None
    """Drop windows in which the state moves less than this (see `WindowConfig`)."""

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if not (self.video_loss or self.action_loss):
            raise ValueError("video_loss and action_loss are both off: nothing to learn")
        if self.train_backbone and self.lora is not None:
            raise ValueError("train_backbone (full fine-tune) and lora exclude each other; set lora: null")
        if not (self.lora or self.train_heads or self.train_backbone):
            raise ValueError("nothing trains: enable lora, train_heads or train_backbone")
        if self.data == "video_only" and self.action_loss:
            raise ValueError("data video_only has no actions: set action_loss: false")
        return self

    @property
    def mode(self) -> str:
        """The model's loss mode (see `WorldModel.loss`)."""
        if not self.video_loss:
            return "action_only"
        return "joint" if self.action_loss else "video_only"


def bundled_recipes() -> dict[str, Path]:
    return bundled_files("recipes")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A bundled recipe by name (`play-30min`) or a YAML file; every problem is reported at once."""
    path = Path(name_or_path)
    if not path.is_file():
        recipes = bundled_recipes()
        if str(name_or_path) not in recipes:
            raise AdaptError(
                f"no recipe '{name_or_path}': not a file, and not one of the bundled {', '.join(recipes)}."
                + did_you_mean(str(name_or_path), recipes)
            )
        path = recipes[str(name_or_path)]
    try:
        raw = read_yaml(path, "recipe")
        return Recipe.model_validate(raw if isinstance(raw, dict) else {})
    except yaml.YAMLError as error:
        raise AdaptError(f"{path}: not valid YAML: {error}") from None
    except ValidationError as error:
        raise InvalidFileError(path, [_problem(e) for e in error.errors()]) from None


def save_recipe(recipe: Recipe, path: Path) -> None:
    from adapt.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))


def _problem(error: dict) -> Problem:
    field = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        return Problem(field, "unknown field; see `adapt recipe show play-30min` for the fields a recipe has")
    return Problem(field, error["msg"])
