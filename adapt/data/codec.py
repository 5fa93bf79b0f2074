"""What an embodiment's states and actions mean, in one place: the model's encoding and the robot's commands.

An `ActionCodec` is built from a spec and (optionally) its normalisation statistics. Training windows,
statistics, the policy, evaluation and fine-tuning all call it, so that the action layout (arm then
gripper; 6 values per end effector for `ee_delta`), the relative <-> absolute conversion,
normalisation, holding still and clipping to the spec's limits are written once, and encoding and
decoding are each other's inverse by construction.

    encode_actions(actions, state) = normalize(relative(actions, state))        (training)
    decode_actions(model, state)   = clip(absolute(unnormalize(model), state))  (inference)

`decode_actions` is the safety boundary: whatever the model outputs, what it returns is finite and
within the spec's position, velocity and gripper limits; a non-finite chunk becomes "hold position".
"""

from __future__ import annotations

import logging
import re

import numpy as np

from adapt.data.stats import FieldStats, NormStats
from adapt.embodiment import EmbodimentSpec
from adapt.embodiment.spec import EE_DELTA_DIM
from adapt.errors import AdaptError

log = logging.getLogger(__name__)


class ActionCodec:
    """Encoding of one embodiment's states and actions for the model, and decoding back to commands."""

    def __init__(self, spec: EmbodimentSpec, stats: NormStats | None = None):
        if spec.action is None:
            raise AdaptError(f"'{spec.name}' is video-only: it has no actions to encode")
        self.spec, self.stats = spec, stats
        self.kind = spec.action.kind
        gripper = spec.gripper.dim if spec.gripper else 0
        self.arm = slice(0, spec.action_dim - gripper)
        """Where the arm's part of an action sits (joints, or 6 per end effector)."""
        self.gripper = slice(spec.action_dim - gripper, spec.action_dim) if gripper else None
        self.joints = spec.proprio_slice("joint_position")
        """Where the joint positions sit in the state vector (None when the state has none)."""
        self.gripper_state = spec.proprio_slice("gripper")
        self.relative = spec.action.relative
        if self.relative and self.joints is None:
            raise AdaptError(f"spec '{spec.name}': relative actions need a 'joint_position' proprio field")
        # float32 limits rounded inwards: commands are float32, and a limit rounded outwards lets one
        # through that is 1e-7 beyond the spec
        self.lower = _float32_inwards(np.array([j.position[0] for j in spec.joints]), up=True)
        self.upper = _float32_inwards(np.array([j.position[1] for j in spec.joints]), up=False)
        self.max_step = np.array([j.velocity for j in spec.joints]) / spec.action.control_hz
        """Largest joint move per control step (velocity limit x dt)."""

    # -- what each dimension is ------------------------------------------------------------------------

    def names(self) -> list[str]:
        """What each action dimension means, comparable across robots: joints are robot-specific (named
        with the robot), grippers and end-effector deltas are not. On a robot with several arms each one
        gripper, the second arm's are named `hand1:...` (`shared_dims` lets a one-armed donor seed both)."""
        arm, own = self.arm.stop, f"{self.spec.name}:{self.kind}"
        per_hand = bool(hands(self.spec))
        if self.kind == "ee_delta":
            body = [_on_hand(i // EE_DELTA_DIM, f"ee_delta[{i % EE_DELTA_DIM}]") for i in range(arm)]
        else:
            body = [f"{own}[{i}]" for i in range(arm)]
        grippers = self.spec.action_dim - arm
        return body + [_on_hand(i, "gripper[0]") if per_hand else f"gripper[{i}]" for i in range(grippers)]

    # -- relative <-> absolute (unnormalised) -----------------------------------------------------------

    def to_relative(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Actions as the model learns them: joint targets minus the current joints when `relative: true`.
        `state` broadcasts against `actions` (one state for a chunk, or one per step)."""
        if not self.relative:
            return actions
        out = np.array(actions, copy=True)
        out[..., self.arm] -= state[..., self.joints]
        return out

    def to_absolute(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Inverse of `to_relative`."""
        if not self.relative:
            return actions
        out = np.array(actions, copy=True)
        out[..., self.arm] += state[..., self.joints]
        return out

    # -- the model's side ---------------------------------------------------------------------------------

    def encode_state(self, state: np.ndarray) -> np.ndarray:
        if self.stats is None or self.stats.state is None:
            return np.asarray(state, np.float32)
        return self.stats.normalize(state, "state").astype(np.float32)

    def encode_actions(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Recorded absolute actions (chunk, dim) at `state` -> the model's (relative, normalised) actions."""
        model = self.to_relative(actions, state)
        if self.stats is not None and self.stats.action is not None:
            model = self.stats.normalize(model, "action")
        return model.astype(np.float32)

    def unnormalize_actions(self, model: np.ndarray) -> np.ndarray:
        """The model's actions in the actions' own units (still relative when the spec says so)."""
        if self.stats is None or self.stats.action is None:
            return model
        return self.stats.unnormalize(model, "action")

    def decode_actions(self, model: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The model's actions (chunk, dim) at `state` -> absolute commands within the spec's limits.

        A non-finite `state` is refused (there is no safe command relative to an unknown position)."""
        self.check_state(state)
        model = np.asarray(model, dtype=np.float64)
        if not np.isfinite(model).all():
            log.warning("the model produced non-finite actions; holding position for this chunk")
            return np.repeat(self.hold(state)[None], len(model), axis=0)
        return self.clip(self.to_absolute(self.unnormalize_actions(model), state), state)

    # -- the robot's side --------------------------------------------------------------------------------

    @staticmethod
    def check_state(state: np.ndarray) -> None:
        """Refuse a measured state with NaN or infinite values: no command can be made relative to it."""
        if not np.isfinite(state).all():
            raise AdaptError(f"state values {np.flatnonzero(~np.isfinite(state)).tolist()} are not finite; no command")

    def hold(self, state: np.ndarray) -> np.ndarray:
        """The action that keeps the robot where it is (and its gripper as it is)."""
        action = np.zeros(self.spec.action_dim, np.float32)
        if self.kind == "joint_position" and self.joints is not None:
            action[self.arm] = np.clip(state[self.joints], self.lower, self.upper)
        if self.gripper is not None and self.gripper_state is not None:
            low, high = sorted(self.spec.gripper.range)
            action[self.gripper] = np.clip(state[self.gripper_state][: self.spec.gripper.dim], low, high)
        return action

    def clip(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Bound a chunk (chunk, dim) of absolute actions by the spec, step by step from `state`.

        - joint_position: each target within the joint's range and at most velocity x dt from the
          previous target (the current joint positions for the first).
        - joint_delta: each delta at most velocity x dt, and the position it leads to within range.
        - ee_delta: no joint-space bound without inverse kinematics, so the arm part is bounded to the
          training data's range (q01..q99 widened by half its width each side), or to [-1, 1] without stats.
        - gripper: within the gripper's command range.
        """
        out = np.array(actions, dtype=np.float32, copy=True)
        arm = self.arm
        if self.kind in ("joint_position", "joint_delta"):
            previous = np.clip(state[self.joints], self.lower, self.upper) if self.joints is not None else None
            for t in range(len(out)):
                if self.kind == "joint_position":
                    target = out[t, arm]
                    if previous is not None:
                        target = np.clip(target, previous - self.max_step, previous + self.max_step)
                    out[t, arm] = previous = np.clip(target, self.lower, self.upper)
                else:
                    delta = np.clip(out[t, arm], -self.max_step, self.max_step)
                    if previous is not None:
                        reached = np.clip(previous + delta, self.lower, self.upper)
                        delta, previous = reached - previous, reached
                    out[t, arm] = delta
        elif self.stats is not None and self.stats.action is not None:
            q01, q99 = self.stats.action.q01[arm], self.stats.action.q99[arm]
            out[:, arm] = np.clip(out[:, arm], q01 - (q99 - q01) / 2, q99 + (q99 - q01) / 2)
        else:
            out[:, arm] = np.clip(out[:, arm], -1.0, 1.0)
        if self.gripper is not None:
            low, high = sorted(self.spec.gripper.range)
            out[:, self.gripper] = np.clip(out[:, self.gripper], low, high)
        return out

    def split(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One action's arm part and gripper part (empty when the robot has no gripper)."""
        gripper = action[self.gripper] if self.gripper is not None else action[:0]
        return action[self.arm], gripper


def state_names(spec: EmbodimentSpec) -> list[str]:
    """What each state dimension means, comparable across robots as `ActionCodec.names` is."""
    names, arms = [], len(hands(spec))
    for block in spec.proprio:
        if block.name.startswith("joint"):
            names += [f"{spec.name}:{block.name}[{i}]" for i in range(block.dim)]
        elif block.name == "gripper" and arms == block.dim:
            names += [_on_hand(i, "gripper[0]") for i in range(block.dim)]
        else:
            names += [f"{block.name}[{i}]" for i in range(block.dim)]
    return names


def shared_dims(names: list[str], donor_names: list[str]) -> list[tuple[int, int]]:
    """(i, j) pairs where dimension i of one embodiment is named as dimension j of a donor (by `state_names`
    or `ActionCodec.names`): the dimensions a donor's head can seed. A dimension of another arm than the first
    (`hand1:ee_delta[0]`) that the donor lacks is seeded from the donor's first arm (`ee_delta[0]`): a
    one-armed donor's head seeds each arm of a two-armed robot."""
    index = {n: j for j, n in enumerate(donor_names)}
    pairs = []
    for i, name in enumerate(names):
        meaning = name if name in index else re.sub(r"^hand\d+:", "", name)
        if meaning in index:
            pairs.append((i, index[meaning]))
    return pairs


def hands(spec: EmbodimentSpec) -> list[str]:
    """The end effectors of a robot with several arms and one gripper dimension each, in the spec's order; none
    for one arm, or grippers of other sizes. Their dimensions are named (and exported to GEAR) arm by arm."""
    arms = spec.end_effectors
    return arms if len(arms) > 1 and spec.gripper is not None and spec.gripper.dim == len(arms) else []


def _on_hand(hand: int, name: str) -> str:
    return name if hand == 0 else f"hand{hand}:{name}"


def _float32_inwards(values: np.ndarray, up: bool) -> np.ndarray:
    """`values` as float32, each moved one step towards +inf (`up`) or -inf where rounding went the other way."""
    rounded = values.astype(np.float32)
    outside = rounded < values if up else rounded > values
    return np.where(outside, np.nextafter(rounded, np.float32(np.inf if up else -np.inf)), rounded)


def compute_stats(datasets) -> NormStats:
    """Statistics of the state and action of one `LeRobotDataset` or a list of them (one embodiment);
    actions as the model sees them: relative to the current state when the spec says `relative: true`."""
    datasets = datasets if isinstance(datasets, list) else [datasets]
    spec = datasets[0].spec
    episodes = [e for d in datasets for e in d.episodes]
    state = [e.state for e in episodes if e.state is not None]
    # relative actions are taken against the state at a chunk's start: cover the chunk's first and last offset
    offsets = {0, spec.action.chunk - 1} if spec.action and spec.action.relative else {0}
    codec = ActionCodec(spec) if spec.action else None
    action = [
        codec.to_relative(e.action[k:], e.state[: e.length - k])
        for e in episodes
        if e.action is not None
        for k in offsets
        if k < e.length
    ]
    return NormStats(
        spec.normalization, FieldStats.fit(state) if state else None, FieldStats.fit(action) if action else None
    )
