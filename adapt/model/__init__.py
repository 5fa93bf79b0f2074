"""The World Action Model: frame tokenizer, shared transformer backbone, per-embodiment heads."""

from adapt.model.checkpoint import fingerprint, load_model, save_model
from adapt.model.config import PRESETS, ModelConfig, model_config
from adapt.model.protocol import ARCHITECTURES, WorldModel, build_model
from adapt.model.wam import WorldActionModel

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "ModelConfig",
    "WorldActionModel",
    "WorldModel",
    "build_model",
    "fingerprint",
    "load_model",
    "model_config",
    "save_model",
]
