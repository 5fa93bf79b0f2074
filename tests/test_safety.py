"""The safety property, end to end through `Policy`: whatever the network outputs and whatever the
observation holds, a command that reaches the robot is finite and within the spec's limits, or there
is no command (an `AdaptError`) — for every bundled robot spec and every action kind.

Size: 7 robots x 4 action kinds = 28 cases, each with 5 adversarial network outputs x 2 states, each
state through `act` (a 16-action chunk) and 4 `step`s, and 3 refused observations: 5,600 commands
checked. Catches a decode path that lets NaN or an out-of-range value through, a blend of two chunks
that steps further than the velocity limit, and a policy that turns a NaN in the measured state into
a command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_codec import KINDS, ROBOTS, state_within_limits, variant

from adapt.data.codec import ActionCodec
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig
from adapt.model import build_model, model_config
from adapt.policy import Policy
from adapt.predictor import ChunkPredictor

OUTPUTS = {
    "huge": lambda rng, shape: np.full(shape, 1e9),
    "huge negative": lambda rng, shape: np.full(shape, -1e9),
    "wild": lambda rng, shape: rng.normal(0, 1e4, shape),
    "alternating": lambda rng, shape: np.where(np.arange(shape[1])[:, None] % 2, 1e6, -1e6) * np.ones(shape),
    "nan and inf": lambda rng, shape: np.where(rng.random(shape) < 0.2, np.nan, np.inf),
}


class Adversary:
    """A tiny model whose sampled actions are replaced by `output(rng, shape)` (settable)."""

    def __init__(self, spec, rng):
        torch.manual_seed(0)
        self.model, self.rng, self.output = build_model(model_config("tiny"), [spec]), rng, OUTPUTS["wild"]
        real = self.model.sample

        def sample(*args, **kwargs):
            out = real(*args, **kwargs)
            actions = self.output(self.rng, tuple(out["actions"].shape))
            return out | {"actions": torch.as_tensor(actions, dtype=torch.float32)}

        self.model.sample = sample
        self.predictor = ChunkPredictor(self.model, spec.name, InferenceConfig(steps=1, execute=2, blend=2))


def frames(spec, rng) -> dict:
    return {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}


def assert_safe(codec: ActionCodec, commands: np.ndarray, state: np.ndarray) -> None:
    """Finite, gripper in range, joints in range and (from the measured state) within a velocity step."""
    spec = codec.spec
    assert np.isfinite(commands).all()
    if codec.gripper is not None:
        low, high = sorted(spec.gripper.range)
        assert (commands[:, codec.gripper] >= low - 1e-6).all() and (commands[:, codec.gripper] <= high + 1e-6).all()
    if codec.kind == "ee_delta":  # no statistics: bounded to the controller's [-1, 1]
        assert (np.abs(commands[:, codec.arm]) <= 1.0 + 1e-6).all()
        return
    first = commands[0, codec.arm] if codec.kind == "joint_position" else state[codec.joints] + commands[0, codec.arm]
    assert (first >= codec.lower - 1e-5).all() and (first <= codec.upper + 1e-5).all()
    assert (np.abs(first - state[codec.joints]) <= codec.max_step + 1e-5).all()


@pytest.mark.parametrize(("kind", "relative"), KINDS)
@pytest.mark.parametrize("robot", ROBOTS)
def test_no_unsafe_command_whatever_the_network_or_the_observation_does(robot, kind, relative):
    spec = variant(robot, kind, relative)
    rng = np.random.default_rng(abs(hash((robot, kind, relative))) % 2**32)
    codec, adversary = ActionCodec(spec), Adversary(spec, rng)
    for name, output in OUTPUTS.items():
        adversary.output = output
        policy = Policy(adversary.predictor)
        for _ in range(2):
            state = state_within_limits(codec, rng).astype(np.float32)
            chunk = policy.act(frames(spec, rng) | {"state": state})
            assert chunk.shape == (spec.action.chunk, spec.action_dim), name
            assert_safe(codec, chunk, state)
            for _ in range(4):  # receding horizon, blended chunk boundaries included (the robot stays put)
                assert_safe(codec, policy.step(frames(spec, rng) | {"state": state})[None], state)
    adversary.output = OUTPUTS["wild"]
    policy = Policy(adversary.predictor)
    good = state_within_limits(codec, rng).astype(np.float32)
    for broken in (np.nan, np.inf, -np.inf):
        state = good.copy()
        state[int(rng.integers(len(state)))] = broken
        with pytest.raises(AdaptError, match=r"state: non-finite values at \[\d+\]; no command"):
            policy.step(frames(spec, rng) | {"state": state})
    assert policy.plans == 0
