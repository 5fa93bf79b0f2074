"""Checkpoints and adapters written by earlier versions keep loading and acting the same.

Catches a change to the checkpoint or adapter format, to parameter names (a renamed module would
leave weights unloaded or refused), to the codec or to sampling that silently changes what an
existing adapter commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapt.inference_config import InferenceConfig
from adapt.policy import Policy

FIXTURE = Path(__file__).parent / "fixtures" / "earlier_format"


def observation(spec) -> dict:
    """The observation `make.py.txt` used: seeded random frames, every joint at the middle of its range."""
    rng = np.random.default_rng(1)
    obs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}
    joints = [(j.position[0] + j.position[1]) / 2 for j in spec.joints]
    obs["state"] = np.array((joints + [0.0] * spec.state_dim)[: spec.state_dim], np.float32)
    obs["task"] = "lift the red cube"
    return obs


@pytest.mark.parametrize(("name", "robot"), [("base", "panda"), ("adapter", "ur5e")])
def test_a_base_and_an_adapter_of_the_earlier_format_give_the_same_chunk(name, robot):
    expected = np.load(FIXTURE / "expected_chunks.npz")[name]
    policy = Policy.load(FIXTURE / name, robot, base=FIXTURE / "base", config=InferenceConfig(steps=2))
    chunk = policy.act(observation(policy.spec))
    np.testing.assert_allclose(chunk, expected, rtol=0, atol=1e-5)


def test_a_link_leaving_the_adapter_is_named_and_followed(tmp_path, caplog):
    """The Hugging Face cache links each file of a download into its blob store, so a link that leaves the folder
    is legitimate but must not pass unseen: the warning names where the weights really come from."""
    import shutil

    adapter = Path(shutil.copytree(FIXTURE / "adapter", tmp_path / "adapter"))
    elsewhere = tmp_path / "blobs" / "heads"
    elsewhere.parent.mkdir()
    (adapter / "heads.safetensors").rename(elsewhere)
    (adapter / "heads.safetensors").symlink_to(elsewhere)
    expected = np.load(FIXTURE / "expected_chunks.npz")["adapter"]
    with caplog.at_level("WARNING"):
        policy = Policy.load(adapter, "ur5e", base=FIXTURE / "base", config=InferenceConfig(steps=2))
    assert f"is a link to {elsewhere}" in caplog.text
    np.testing.assert_allclose(policy.act(observation(policy.spec)), expected, rtol=0, atol=1e-5)


def test_an_adapter_whose_recorded_base_moved_finds_the_bundled_base_by_its_weights(tmp_path, monkeypatch):
    """Adapters record their base's path; a bundled base renamed, or an adapter made on another machine, must still
    load on the bundled base whose weights it was made on, and act as before (and on no other base)."""
    import json
    import shutil

    import adapt.resources

    models = tmp_path / "bundled_models"
    shutil.copytree(FIXTURE / "base", models / "renamed-base")
    monkeypatch.setattr(adapt.resources, "bundled_dir", lambda kind: models)
    adapter = Path(shutil.copytree(FIXTURE / "adapter", tmp_path / "adapter"))
    meta = json.loads((adapter / "adapt_adapter.json").read_text())
    (adapter / "adapt_adapter.json").write_text(json.dumps(meta | {"base": "/gone/models/old-name"}))
    policy = Policy.load(adapter, "ur5e", config=InferenceConfig(steps=2))
    expected = np.load(FIXTURE / "expected_chunks.npz")["adapter"]
    np.testing.assert_allclose(policy.act(observation(policy.spec)), expected, rtol=0, atol=1e-5)
    (adapter / "adapt_adapter.json").write_text(json.dumps(meta | {"base": "/gone/x", "base_fingerprint": "0" * 64}))
    with pytest.raises(Exception, match="/gone/x is not here"):
        Policy.load(adapter, "ur5e", config=InferenceConfig(steps=2))
