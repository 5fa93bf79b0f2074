"""The action codec: encoding for the model and decoding to commands are inverses, and decoding is the
safety boundary (finite, within the spec's limits) — for every bundled robot spec and every action kind."""

from __future__ import annotations

import numpy as np
import pytest

from adapt.data.codec import ActionCodec
from adapt.data.stats import FieldStats, NormStats
from adapt.embodiment import bundled_embodiments, load_embodiment, spec_from_dict

ROBOTS = [name for name in bundled_embodiments() if not load_embodiment(name).video_only]
KINDS = [("joint_position", False), ("joint_position", True), ("joint_delta", False), ("ee_delta", False)]


def variant(name: str, kind: str, relative: bool):
    """The bundled spec `name` acting in `kind` (action dim sized for it)."""
    spec = load_embodiment(name)
    gripper = spec.gripper.dim if spec.gripper else 0
    arm = 6 * len(spec.end_effectors) if kind == "ee_delta" else len(spec.joints)
    action = spec.action.model_dump() | {"kind": kind, "relative": relative, "dim": arm + gripper}
    return spec_from_dict(spec.model_dump() | {"action": action}, source=spec.source)


def valid_chunk(codec: ActionCodec, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A chunk of absolute actions that obeys every limit the codec enforces (so clipping changes nothing)."""
    spec, n = codec.spec, codec.spec.action.chunk
    out = np.zeros((n, spec.action_dim))
    previous = state[codec.joints].astype(float)
    for t in range(n):
        if codec.kind == "ee_delta":
            out[t, codec.arm] = rng.uniform(-0.4, 0.4, codec.arm.stop)
        else:
            step = rng.uniform(-0.9, 0.9, len(previous)) * codec.max_step
            reached = np.clip(previous + step, codec.lower, codec.upper)
            out[t, codec.arm] = reached if codec.kind == "joint_position" else reached - previous
            previous = reached
        if codec.gripper is not None:
            out[t, codec.gripper] = rng.uniform(*sorted(spec.gripper.range))
    return out


def state_within_limits(codec: ActionCodec, rng: np.random.Generator) -> np.ndarray:
    state = rng.normal(size=codec.spec.state_dim)
    state[codec.joints] = rng.uniform(codec.lower, codec.upper)
    return state


def statistics(codec: ActionCodec, rng: np.random.Generator, mode: str) -> NormStats:
    """Statistics of plausible data (relative when the spec says so), as compute_stats would give."""
    states = np.stack([state_within_limits(codec, rng) for _ in range(64)])
    chunks = [codec.to_relative(valid_chunk(codec, s, rng), s) for s in states[:8]]
    return NormStats(mode, FieldStats.fit([states]), FieldStats.fit(chunks))


@pytest.mark.parametrize("mode", ["mean_std", "quantile"])
@pytest.mark.parametrize(("kind", "relative"), KINDS)
@pytest.mark.parametrize("robot", ROBOTS)
def test_decode_inverts_encode_within_limits(robot, kind, relative, mode):
    """Catches an encode/decode pair that disagree (relative offset applied once, normalisation inverted
    with the other field's statistics, a gripper treated as a joint) for any robot or action kind."""
    rng = np.random.default_rng(hash((robot, kind, relative, mode)) % 2**32)
    codec = ActionCodec(variant(robot, kind, relative))
    codec = ActionCodec(codec.spec, statistics(codec, rng, mode))
    for _ in range(5):
        state = state_within_limits(codec, rng)
        actions = valid_chunk(codec, state, rng)
        decoded = codec.decode_actions(codec.encode_actions(actions, state), state)
        np.testing.assert_allclose(decoded, actions, atol=2e-4)


@pytest.mark.parametrize(("kind", "relative"), KINDS)
@pytest.mark.parametrize("robot", ROBOTS)
def test_decoded_actions_never_leave_the_limits(robot, kind, relative):
    """Whatever the network outputs (huge, tiny, NaN, inf), a command is finite and within the spec's
    position range, velocity per step and gripper range. Catches a clip that misses a joint, the
    gripper, or lets a first step jump from where the robot is."""
    rng = np.random.default_rng(7)
    codec = ActionCodec(variant(robot, kind, relative))
    codec = ActionCodec(codec.spec, statistics(codec, rng, "mean_std"))
    chunk = codec.spec.action.chunk
    outputs = [rng.normal(0, 100, (chunk, codec.spec.action_dim)), np.full((chunk, codec.spec.action_dim), -1e9)]
    broken = rng.normal(size=(chunk, codec.spec.action_dim))
    broken[3, 0], broken[5, -1] = np.nan, np.inf
    for output in [*outputs, broken]:
        state = state_within_limits(codec, rng)
        decoded = codec.decode_actions(output, state)
        assert decoded.shape == output.shape and np.isfinite(decoded).all()
        if codec.gripper is not None:
            low, high = sorted(codec.spec.gripper.range)
            assert (decoded[:, codec.gripper] >= low).all() and (decoded[:, codec.gripper] <= high).all()
        if codec.kind == "ee_delta":
            continue
        positions = (
            decoded[:, codec.arm]
            if codec.kind == "joint_position"
            else state[codec.joints] + np.cumsum(decoded[:, codec.arm], axis=0)
        )
        assert (positions >= codec.lower - 1e-5).all() and (positions <= codec.upper + 1e-5).all()
        steps = np.diff(np.vstack([state[codec.joints], positions]), axis=0)
        assert (np.abs(steps) <= codec.max_step + 1e-5).all()


def test_non_finite_output_holds_position():
    """Catches a fallback that copies the broken chunk or drops the gripper's current opening."""
    codec = ActionCodec(load_embodiment("ur5e"))
    state = np.r_[np.linspace(-1, 1, 6), 0.5].astype(np.float32)
    decoded = codec.decode_actions(np.full((16, 7), np.nan), state)
    np.testing.assert_allclose(decoded, np.repeat(state[None], 16, axis=0), atol=1e-6)


def test_names_say_what_dimensions_mean():
    """Catches names that would let a donor's joint columns seed another robot's joints, or keep the Panda from
    seeding every action dimension of a UR5e that acts in the same end-effector deltas."""
    assert ActionCodec(load_embodiment("panda")).names()[:1] == ["ee_delta[0]"]
    assert ActionCodec(load_embodiment("ur5e")).names() == [f"ur5e:joint_position[{i}]" for i in range(6)] + [
        "gripper[0]"
    ]
    assert ActionCodec(load_embodiment("ur5e_osc")).names() == ActionCodec(load_embodiment("panda")).names()
