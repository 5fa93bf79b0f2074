"""DreamZero's policy-server protocol (the RoboArena form its `eval_utils/policy_server.py` speaks), so that robot
code and evaluation harnesses written for DreamZero's server drive an `adapt` policy unchanged
(`adapt serve --protocol dreamzero`).

The wire is openpi's msgpack-numpy over a websocket, with DreamZero's conventions: on connect the server sends a
`PolicyServerConfig` map (`image_resolution`, `needs_wrist_camera`, `n_external_cameras`, `needs_stereo_camera`,
`needs_session_id`, `action_space`); every request carries `endpoint`, `infer` or `reset`. An `infer` request holds
DROID-style keys, `observation/exterior_image_{i}_left` (the spec's cameras that are not wrist cameras, in spec
order), `observation/wrist_image_left`, `observation/joint_position`, `observation/gripper_position`, `prompt`,
`session_id`, and is answered with the action chunk itself: an (N, action_dim) float32 array (DreamZero's DROID
robot: (N, 8), seven joints and the gripper), absolute and within the spec's limits. `reset` is answered with the
text "reset successful", as DreamZero's server does; a new `session_id` also starts a new episode. Bad requests
get a text frame naming the field (DreamZero's client raises it) and the connection stays open.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.observation import Observation
from adapt.serving import protocol

PROTOCOL = "dreamzero-roboarena/msgpack-numpy"
ACTION_SPACES = {"joint_position": "joint_position", "joint_delta": "joint_velocity", "ee_delta": "cartesian_velocity"}
"""The spec's action kind -> the `action_space` DreamZero's config names for it."""
IGNORED = ("observation/cartesian_position", "observation/wrist_image_right")
"""Keys DreamZero's clients send that an adapt policy does not read (a dummy pose, a stereo view)."""


class RoboArenaWire:
    """DreamZero's request and reply forms for one spec: robots with joint positions and a gripper as their state
    (every proprio block other than those has no DROID key), one wrist camera at most, two others at most."""

    name = "dreamzero"

    def __init__(self, spec: EmbodimentSpec):
        blocks = [p.name for p in spec.proprio]
        if blocks not in (["joint_position"], ["joint_position", "gripper"]):
            raise AdaptError(
                f"--protocol dreamzero sends joint_position and gripper_position as the state; spec '{spec.name}' has"
                f" proprio blocks {blocks}: serve it with --protocol openpi"
            )
        wrist = [c for c in spec.cameras if c.role == "wrist"]
        external = [c for c in spec.cameras if c.role != "wrist"]
        sizes = {(c.height, c.width) for c in spec.cameras}
        if len(wrist) > 1 or len(external) > 2 or len(sizes) != 1:
            raise AdaptError(
                f"--protocol dreamzero carries at most one wrist and two other cameras, all of one size; spec"
                f" '{spec.name}' has {len(wrist)} wrist and {len(external)} others of sizes {sorted(sizes)}"
            )
        self.spec = spec
        self.cameras = {f"observation/exterior_image_{i}_left": c.name for i, c in enumerate(external)}
        if wrist:
            self.cameras["observation/wrist_image_left"] = wrist[0].name
        self.size = next(iter(sizes))

    def metadata(self) -> dict[str, Any]:
        """DreamZero's `PolicyServerConfig`, as its server sends it first."""
        return {
            "image_resolution": list(self.size),
            "needs_wrist_camera": "observation/wrist_image_left" in self.cameras,
            "n_external_cameras": sum(key.startswith("observation/exterior") for key in self.cameras),
            "needs_stereo_camera": False,
            "needs_session_id": True,
            "action_space": ACTION_SPACES[self.spec.action.kind],
        }

    def endpoint(self, request: dict) -> str:
        name = request.get("endpoint")
        if name not in ("infer", "reset"):
            raise protocol.BadRequest(f"endpoint: {name!r}; DreamZero's protocol has 'infer' and 'reset'")
        return name

    def observation(self, request: dict) -> tuple[Observation, Any]:
        """The Policy observation of an `infer` request (checked by the openpi form's rules), and its session id."""
        known = {*self.cameras, "observation/joint_position", "observation/gripper_position", "prompt"}
        known |= {"endpoint", "session_id", *IGNORED}
        extra = sorted(str(k) for k in request if k not in known)
        if extra:
            raise protocol.BadRequest(
                f"unknown key(s) {extra}; DreamZero's form for '{self.spec.name}' is {sorted(known)}"
            )
        converted = {f"observation/{name}": request[key] for key, name in self.cameras.items() if key in request}
        for key, block in (
            ("observation/joint_position", "joint_position"),
            ("observation/gripper_position", "gripper"),
        ):
            if key in request:
                converted[f"observation/{block}"] = np.asarray(request[key]).reshape(-1)
        if "prompt" in request:
            converted["prompt"] = request["prompt"]
        missing = sorted({*self.cameras} - set(request))
        if missing:
            raise protocol.BadRequest(f"missing {missing}: uint8 ({self.size[0]}, {self.size[1]}, 3) frames")
        session = request.get("session_id")
        try:
            return protocol.observation(converted, self.spec), None if session is None else str(session)
        except protocol.BadRequest as error:  # said in the client's own key names
            message = str(error)
            theirs = {f"observation/{name}": key for key, name in self.cameras.items()}
            theirs |= {"observation/gripper": "observation/gripper_position", "observation/state": "the state"}
            for ours in sorted(theirs, key=len, reverse=True):
                message = message.replace(f"{ours}:", f"{theirs[ours]}:").replace(f"{ours} ", f"{theirs[ours]} ")
            raise protocol.BadRequest(message) from None

    def reply(self, name: str, result: dict) -> bytes | str:
        if name == "reset":
            return "reset successful"
        return protocol.pack(np.asarray(result["actions"], np.float32))
