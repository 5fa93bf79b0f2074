"""The policy: limits hold whatever the network says, chunks execute on schedule, boundaries blend."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from adapt.data.codec import ActionCodec
from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.model import build_model, model_config, save_model
from adapt.policy import InferenceConfig, Policy, blend
from adapt.predictor import ChunkPredictor


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(model_config("tiny"), [load_embodiment("ur5e"), load_embodiment("panda")])


def observation(spec, rng, q=None):
    obs = {c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}
    state = np.zeros(spec.state_dim, np.float32)
    state[: len(spec.joints)] = q if q is not None else rng.uniform(-1, 1, len(spec.joints))
    return obs | {"state": state, "task": "lift the cube"}


def adversarial(model, monkeypatch, values):
    real = model.sample

    def sample(*args, **kwargs):
        out = real(*args, **kwargs)
        return out | {"actions": torch.as_tensor(values(out["actions"].shape), dtype=torch.float32)}

    monkeypatch.setattr(model, "sample", sample)


def test_joint_targets_stay_within_position_and_velocity_limits_for_adversarial_outputs(model, monkeypatch):
    spec, rng = model.specs["ur5e"], np.random.default_rng(0)
    policy = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=1)))
    lo, hi = (np.array([j.position[i] for j in spec.joints]) for i in (0, 1))
    step = np.array([j.velocity for j in spec.joints]) / spec.action.control_hz
    for values in (
        lambda shape: np.full(shape, 1e9),
        lambda shape: -np.full(shape, 1e9),
        lambda shape: rng.normal(0, 1e4, shape),
        lambda shape: np.where(np.arange(shape[1])[:, None] % 2, 1e6, -1e6) * np.ones(shape),
    ):
        adversarial(model, monkeypatch, values)
        obs = observation(spec, rng)
        chunk = policy.act(obs)
        joints = np.concatenate([obs["state"][None, :6], chunk[:, :6]])
        assert chunk.shape == (16, 7)
        assert (chunk[:, :6] >= lo).all() and (chunk[:, :6] <= hi).all()
        assert (np.abs(np.diff(joints, axis=0)) <= step + 1e-6).all()
        assert (np.abs(chunk[:, 6]) <= 1).all()
        monkeypatch.undo()


def test_non_finite_outputs_hold_position_with_a_warning(model, monkeypatch, caplog):
    spec, rng = model.specs["ur5e"], np.random.default_rng(1)
    adversarial(model, monkeypatch, lambda shape: np.where(np.arange(shape[-1]) == 2, np.nan, 0.0) * np.ones(shape))
    obs = observation(spec, rng)
    obs["state"][6] = 0.5  # gripper half closed
    with caplog.at_level(logging.WARNING):
        chunk = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=1))).act(obs)
    assert "non-finite" in caplog.text
    np.testing.assert_allclose(chunk, np.repeat(obs["state"][None], 16, axis=0))


def test_end_effector_deltas_and_gripper_are_bounded(model, monkeypatch):
    spec = model.specs["panda"]
    adversarial(model, monkeypatch, lambda shape: np.full(shape, 50.0))
    chunk = Policy(ChunkPredictor(model, "panda", InferenceConfig(steps=1))).act(
        observation(spec, np.random.default_rng(2))
    )
    assert np.abs(chunk).max() <= 1.0


def test_receding_horizon_replans_every_execute_steps_and_async_plans_ahead(model):
    spec, rng = model.specs["ur5e"], np.random.default_rng(3)
    sync = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=1, execute=4, blend=2)))
    actions = [sync.step(observation(spec, rng, q=np.zeros(6))) for _ in range(12)]
    assert sync.plans == 3 and len(actions) == 12 and actions[0].shape == (7,)
    ahead = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=1, execute=4, async_next=True)))
    for t in range(3):
        ahead.step(observation(spec, rng, q=np.zeros(6)))
        assert (ahead._pending is not None) == (t == 2)  # next chunk started 2 steps before it is due
    ahead.step(observation(spec, rng, q=np.zeros(6)))
    ahead.step(observation(spec, rng, q=np.zeros(6)))
    assert ahead.plans == 2 and ahead._pending is None
    ahead.close()


def test_blending_cross_fades_from_the_old_plan_to_the_new():
    old = [np.full(2, 0.0)] * 6
    new = [np.full(2, 1.0)] * 8
    out = blend(old, new, 3)
    np.testing.assert_allclose([a[0] for a in out], [0.25, 0.5, 0.75, 1, 1, 1, 1, 1])


def test_clip_to_limits_for_deltas_bounds_the_reached_position():
    spec = load_embodiment("iiwa")
    state = np.zeros(spec.state_dim, np.float32)
    state[0] = spec.joints[0].position[1] - 0.001  # at the upper limit
    chunk = ActionCodec(spec).clip(np.full((3, spec.action_dim), 5.0), state)
    assert chunk[0, 0] == pytest.approx(0.001, abs=1e-5) and chunk[1, 0] == 0


def test_bad_observations_and_loading(model, tmp_path):
    policy = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=1)))
    obs = observation(model.specs["ur5e"], np.random.default_rng(4))
    with pytest.raises(AdaptError, match=r"missing agentview: uint8 \(128, 128, 3\)"):
        policy.act({k: v for k, v in obs.items() if k != "agentview"})
    with pytest.raises(AdaptError, match=r"state: expected float32 \(7,\), got float64 \(3,\)"):
        policy.act(obs | {"state": np.zeros(3)})
    with pytest.raises(AdaptError, match=r"agentview: expected uint8 \(128, 128, 3\), got uint8 \(48, 40, 3\)"):
        policy.act(obs | {"agentview": np.zeros((48, 40, 3), np.uint8)})
    with pytest.raises(AdaptError, match=r"state: expected float32 \(7,\), got <U1 \(7,\)"):
        policy.act(obs | {"state": ["a"] * 7})
    assert all(len(h) == 0 for h in policy.history.values())  # refused observations leave no frames behind
    save_model(model, tmp_path / "ckpt")
    with pytest.raises(AdaptError, match="choose one with embodiment="):
        Policy.load(tmp_path / "ckpt")
    loaded = Policy.load(tmp_path / "ckpt", embodiment="ur5e", config=InferenceConfig(steps=1))
    assert loaded.act(obs).shape == (16, 7)


def test_tasks_in_other_scripts_condition_the_actions(model):
    """Task text outside [a-z0-9] (Chinese, Arabic, accented words) became the padding token alone: the policy
    was conditioned on nothing and nobody was told. Each script's words must reach the model and move the chunk."""
    import copy

    spec = load_embodiment("panda")  # end-effector deltas: unclipped within [-1, 1], so a change shows
    active = copy.deepcopy(model)  # adaLN-zero blocks are the identity at initialisation: nothing reads the task
    with torch.no_grad():
        for parameter in active.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    encoder = active.text
    tasks = ["lift the cube", "把红色方块举起来", "ارفع المكعب الأحمر", "soulève le cube", "soulève le cubé"]
    assert all(encoder.ids(t) != [0] for t in tasks)
    assert encoder.ids("soule\u0300ve") == encoder.ids("soul\u00e8ve")  # decomposed and composed accents agree
    predictor = ChunkPredictor(active, "panda", InferenceConfig(steps=2))
    chunks = []
    for task in tasks:
        policy = Policy(predictor)
        chunks.append(policy.act(observation(spec, np.random.default_rng(0)) | {"task": task}))
    for i in range(len(chunks)):
        for j in range(i):
            assert not np.allclose(chunks[i], chunks[j]), (tasks[i], tasks[j])


def test_one_observation_check_for_policy_and_server_names_each_problem_in_the_callers_terms():
    """`check_observation` is the one check: state whole or by proprio blocks (a one-number block may be a plain
    number), the server's names through `key`. Bugs caught: blocks concatenated out of the spec's order; a
    boolean taken as a gripper value; a wire's key names lost in its messages."""
    from adapt.observation import check_observation

    spec = load_embodiment("panda")
    frames = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    joints = np.arange(7, dtype=np.float32)
    checked = check_observation(frames | {"joint_position": joints, "gripper": 0.5}, spec)
    np.testing.assert_array_equal(checked.state, np.r_[joints, 0.5].astype(np.float32))
    with pytest.raises(AdaptError, match=r"gripper: expected float32 \(1,\), got bool"):
        check_observation(frames | {"joint_position": joints, "gripper": True}, spec)
    with pytest.raises(AdaptError, match=r"observation/state: non-finite values at \[2\]"):
        check_observation(
            frames | {"state": np.r_[joints, 0.5] * [1, 1, np.nan, 1, 1, 1, 1, 1]}, spec, key="observation/{}".format
        )
