"""World Action Models: the seam every family implements (`protocol`), checkpoints, and the families: `dit`
(ours) and `dreamzero`."""

from adapt.model.checkpoint import fingerprint, load_model, save_model
from adapt.model.dit.config import PRESETS, ModelConfig, model_config
from adapt.model.dit.wam import WorldActionModel
from adapt.model.protocol import ARCHITECTURES, WorldModel, build_model

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
