"""The embodiment spec: one YAML file that says everything the toolkit needs to know about a robot.

Model heads are sized from it, data is checked against it, policies clip to its limits. A spec is
validated in one pass that collects every problem (structure first, then cross-field rules, then the
robot description itself) and raises a single `InvalidFileError` naming the file and each field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from adapt.resources import PACKAGE_SCHEME, resolve_package_path

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
CameraRole = Literal["primary", "secondary", "wrist", "overhead", "egocentric"]
ActionKind = Literal["joint_position", "joint_delta", "ee_delta"]
EE_DELTA_DIM = 6
"""An end-effector delta per arm: xyz translation + axis-angle rotation, in the units the robot's
Cartesian controller takes. Our simulated robots use robosuite's OSC_POSE input, [-1, 1] per axis
(the controller scales it to at most 5 cm and 0.5 rad per step), so recorded actions replay as is."""


class _Strict(BaseModel):
    """Unknown fields are errors, and so is any NaN or infinity: every number in a spec is finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_POSITION = 50.0
"""|limit| bound (rad or m): about eight turns either way, more than any real joint's range."""
MAX_VELOCITY = 50.0
"""Joint speed bound (rad/s or m/s): industrial arms move at a few rad/s."""


class Joint(_Strict):
    """One actuated joint, in the order states and actions list them."""

    name: str
    """Joint name exactly as in the robot description."""
    position: tuple[Annotated[float, Field(ge=-MAX_POSITION, le=MAX_POSITION)], ...]
    """Allowed position range [lower, upper] in rad (m for prismatic), within +-50; must lie within the
    description's."""
    velocity: Annotated[float, Field(gt=0, le=MAX_VELOCITY)]
    """Maximum speed in rad/s (m/s for prismatic), at most 50; robot descriptions rarely carry it, so the
    spec does."""

    @field_validator("position")
    @classmethod
    def _ordered(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 2:
            raise ValueError(f"needs [lower, upper], got {len(value)} values")
        if value[0] >= value[1]:
            raise ValueError(f"lower limit {value[0]} must be below upper limit {value[1]}")
        return value


class Gripper(_Strict):
    """The gripper command appended after the joint (or end-effector) part of the action and state."""

    kind: Literal["parallel", "suction", "dexterous"]
    dim: PositiveInt = 1
    """Command dimensions (1 for a parallel gripper; per hand for bimanual robots)."""
    range: tuple[float, float] = (-1.0, 1.0)
    """Command range [open, closed] as the controller takes it."""


class Camera(_Strict):
    """A camera stream; datasets must supply every camera the spec names."""

    name: str
    role: CameraRole
    """What the model may assume about the view: `primary` (scene), `wrist`, `egocentric` (a human's head)..."""
    height: Annotated[int, Field(gt=0, le=8192)]
    width: Annotated[int, Field(gt=0, le=8192)]
    fps: Annotated[float, Field(gt=0, le=1000)]


class ProprioField(_Strict):
    """A block of the proprioceptive state vector; the blocks concatenate in the listed order."""

    name: str
    dim: PositiveInt
    unit: str
    """Unit of the values, for people reading data (rad, m, m/s, normalized, ...)."""


class ActionSpace(_Strict):
    """What the policy outputs and how often."""

    kind: ActionKind
    """joint_position: absolute joint targets; joint_delta: joint increments; ee_delta: end-effector twists."""
    dim: PositiveInt
    """Total action dimensions: joints (or 6 per end effector for ee_delta) + gripper dims."""
    control_hz: Annotated[float, Field(gt=0, le=2000)]
    """Rate at which actions are executed (Hz, at most 2000)."""
    chunk: Annotated[int, Field(gt=0, le=1024)]
    """Actions predicted per model call (the action horizon, at most 1024)."""
    relative: bool = False
    """Train on actions relative to the current state and convert back at inference (joint_position only)."""


class EmbodimentSpec(_Strict):
    """A robot (or a video-only source such as a human) as the toolkit sees it."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    """Identifier used as the key of this embodiment's model heads; lowercase letters, digits, '_' and '-'."""
    video_only: bool = False
    """A source with cameras but no state or actions (human video, another robot's recordings)."""
    description: str | None = None
    """MJCF or URDF file, relative to this spec file, or `package://<python package>/<path>`."""
    joints: list[Joint] = []
    end_effector: str | list[str] | None = None
    """Body or site name of the end-effector frame; one per arm for bimanual robots."""
    mounts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$")]] = []
    """A robot made of copies of one arm (two Pandas as one bimanual robot): the prefix each copy's joints and
    frames carry, one per copy, in the order of `end_effector`. `description` is then the one arm, and
    `joints` and `end_effector` name each copy's parts with its prefix (`right_joint1`, `left_right_hand`)."""
    gripper: Gripper | None = None
    cameras: Annotated[list[Camera], Field(min_length=1)]
    proprio: list[ProprioField] = []
    action: ActionSpace | None = None
    normalization: Literal["mean_std", "quantile"] = "mean_std"
    """How state and actions are normalized: z-score, or the q01/q99 range mapped to [-1, 1]."""

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The YAML file this spec was loaded from (None when built in Python)."""
        return self._source

    @property
    def end_effectors(self) -> list[str]:
        if self.end_effector is None:
            return []
        return [self.end_effector] if isinstance(self.end_effector, str) else list(self.end_effector)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def state_dim(self) -> int:
        """Length of the proprioceptive state vector (0 for video-only sources)."""
        return sum(p.dim for p in self.proprio)

    def proprio_slice(self, name: str) -> slice | None:
        """Where the proprio block `name` (e.g. `joint_position`, `gripper`) sits in the state vector."""
        start = 0
        for block in self.proprio:
            if block.name == name:
                return slice(start, start + block.dim)
            start += block.dim
        return None

    @property
    def action_dim(self) -> int:
        """Length of one action (0 for video-only sources)."""
        return self.action.dim if self.action else 0

    def expected_action_dim(self) -> int:
        """Action length implied by the joints, end effectors and gripper for this action kind."""
        assert self.action is not None
        arm = EE_DELTA_DIM * len(self.end_effectors) if self.action.kind == "ee_delta" else len(self.joints)
        return arm + (self.gripper.dim if self.gripper else 0)

    def description_path(self) -> Path | None:
        """The robot description file on disk, resolved against the spec file's folder."""
        if self.description is None:
            return None
        if self.description.startswith(PACKAGE_SCHEME):
            return resolve_package_path(self.description)
        path = Path(self.description)
        if not path.is_absolute() and self._source is not None:
            path = Path(os.path.normpath(self._source.parent / path))  # lexical: the folder may not exist yet
        return path

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain data for YAML (fields left unset are omitted)."""
        return self.model_dump(mode="json", exclude_none=True)
