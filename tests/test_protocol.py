"""The model seam: checkpoints pick their implementation by name, and the training, adapter and policy
code work with any registered implementation of `WorldModel`.

Catches code that constructs or type-checks the DiT model directly where it should go through
`build_model` (a second implementation would then be silently replaced by the DiT on load)."""

from __future__ import annotations

import numpy as np
import pytest

from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.model import ARCHITECTURES, WorldActionModel, WorldModel, build_model, load_model, model_config, save_model
from adapt.policy import InferenceConfig, Policy
from adapt.predictor import ChunkPredictor


class DoubledActions(WorldActionModel):
    """A second implementation: the DiT WAM whose sampled actions are doubled (distinguishable)."""

    def sample(self, batch, *args, **kwargs):
        out = super().sample(batch, *args, **kwargs)
        return out | {"actions": out["actions"] * 2}


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "doubled", (f"{__name__}:DoubledActions", "adapt.model.config:ModelConfig"))
    return model_config("tiny").model_copy(update={"architecture": "doubled"})


def test_a_checkpoint_loads_as_the_implementation_its_config_names(registered, tmp_path):
    spec = load_embodiment("panda")  # end-effector deltas: an untrained model's actions are not all clipped alike
    model = build_model(registered, [spec])
    assert type(model) is DoubledActions and isinstance(model, WorldModel)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert type(loaded) is DoubledActions
    obs = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    obs["state"] = np.zeros(spec.state_dim, np.float32)
    chunk = Policy(ChunkPredictor(loaded, "panda", InferenceConfig(steps=1))).act(obs)
    plain = WorldActionModel(model_config("tiny"), [spec])  # the same weights, the DiT's own sampling
    plain.load_state_dict(loaded.state_dict())
    plain.stats = loaded.stats
    ordinary = Policy(ChunkPredictor(plain, "panda", InferenceConfig(steps=1))).act(obs)
    assert chunk.shape == (16, 7) and not np.allclose(chunk, ordinary)  # the policy acted through the loaded one


def test_an_unknown_architecture_is_refused_by_name(registered):
    with pytest.raises(AdaptError, match="unknown model architecture 'nope'"):
        build_model(registered.model_copy(update={"architecture": "nope"}))
