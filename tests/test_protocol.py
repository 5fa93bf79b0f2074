"""The model seam: checkpoints pick their implementation by name, and the training, adapter and policy
code work with any registered implementation of `WorldModel`.

Catches code that constructs or type-checks the DiT model directly where it should go through
`build_model` (a second implementation would then be silently replaced by the DiT on load)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.model import ARCHITECTURES, WorldActionModel, WorldModel, build_model, load_model, model_config, save_model
from adapt.model.protocol import Family
from adapt.policy import InferenceConfig, Policy
from adapt.predictor import ChunkPredictor


class DoubledActions(WorldActionModel):
    """A second implementation: the DiT WAM whose sampled actions are doubled (distinguishable)."""

    def sample(self, batch, *args, **kwargs):
        out = super().sample(batch, *args, **kwargs)
        return out | {"actions": out["actions"] * 2}


NO_PRESETS: dict = {}
DOUBLED_PRESETS = {"doubled-tiny": model_config("tiny").model_copy(update={"architecture": "doubled"})}


def recognises(folder):
    """A released layout of the third family below: a folder with `released.txt`."""
    return (folder / "released.txt").is_file()


def read_config(folder):
    return DOUBLED_PRESETS["doubled-tiny"]


def load(folder, device="cpu", dtype=None):
    model = build_model(read_config(folder), [load_embodiment("panda")])
    return model.to(device, dtype) if dtype else model.to(device)


def fingerprint(folder):
    return "released-" + (folder / "released.txt").read_text()


@pytest.fixture
def registered(monkeypatch):
    family = Family(f"{__name__}:DoubledActions", "adapt.model.dit.config:ModelConfig", f"{__name__}:NO_PRESETS")
    monkeypatch.setitem(ARCHITECTURES, "doubled", family)
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


def test_a_third_family_is_one_registry_line_its_presets_and_released_checkpoints_found_everywhere(
    monkeypatch, tmp_path
):
    """A family whose project releases checkpoints in a layout of its own (as DreamZero does) is loaded,
    fingerprinted and planned through its registry line alone. Bugs caught: a loader, fingerprint or planner
    that special-cases a family by name (a new family's checkpoints would be refused as "not a model
    checkpoint", or an adapter on one would record the wrong fingerprint)."""
    from adapt.model.checkpoint import fingerprint as fingerprint_of
    from adapt.plan.cost import memory
    from adapt.plan.model import meta_model, plan

    family = Family(
        f"{__name__}:DoubledActions",
        "adapt.model.dit.config:ModelConfig",
        f"{__name__}:DOUBLED_PRESETS",
        __name__,
        "adapt.model.dit.footprint",
    )
    monkeypatch.setitem(ARCHITECTURES, "doubled", family)
    released = tmp_path / "released"
    released.mkdir()
    (released / "released.txt").write_text("v1")
    assert type(load_model(released)) is DoubledActions
    assert fingerprint_of(released) == "released-v1"
    model, _ = meta_model(released, load_embodiment("panda"))
    assert type(model) is DoubledActions
    model, name = meta_model("doubled-tiny", load_embodiment("panda"))
    assert type(model) is DoubledActions and name == "doubled-tiny"
    planned, ours = plan("doubled-tiny", "play-30min", "panda"), plan("tiny", "play-30min", "panda")
    assert planned.shape.family == "doubled" and planned.tokens == ours.tokens  # its own footprint module, found
    assert memory(planned).total == memory(ours).total  # through its registry line (a DiT inside)
    monkeypatch.setitem(ARCHITECTURES, "doubled", replace(family, footprint=None))
    with pytest.raises(AdaptError, match="'doubled' cannot be planned"):
        plan("doubled-tiny", "play-30min", "panda")
