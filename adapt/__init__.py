"""adapt: few-shot cross-embodiment adaptation of World Action Models.

The CLI (`adapt ...`) is a thin shell over these functions. Importing `adapt` stays light (no torch):
the training and model entry points below load on first use.
"""

from __future__ import annotations

import importlib

from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError

__version__ = "0.1.0"

_LAZY = {
    "finetune": "adapt.train.finetune",
    "pretrain": "adapt.train.pretrain",
    "Recipe": "adapt.recipe",
    "LoraSettings": "adapt.recipe",
    "load_recipe": "adapt.recipe",
    "load_model": "adapt.model",
    "build_model": "adapt.model",
    "WorldModel": "adapt.model",
    "load_adapter": "adapt.adapter",
    "TrainOptions": "adapt.train.options",
    "PretrainConfig": "adapt.train.options",
    "Policy": "adapt.policy",
    "ChunkPredictor": "adapt.predictor",
    "InferenceConfig": "adapt.inference_config",
}
__all__ = ["AdaptError", "EmbodimentSpec", "load_embodiment", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adapt' has no attribute {name!r}")
