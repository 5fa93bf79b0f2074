"""The wire format of `adapt serve`: openpi's websocket policy protocol.

Messages are msgpack maps whose numpy arrays travel as openpi's `msgpack_numpy` encodes them (a map with
`__ndarray__`, `data`, `dtype`, `shape`), so `openpi_client.websocket_client_policy.WebsocketClientPolicy`
talks to the server unchanged. On connect the server sends its metadata (the schema below); then each
binary message is an observation and each reply an action map; an error is a text frame (the openpi
client raises it). `endpoint` selects what a request does: `infer` (default, openpi: the action chunk),
`step` (one action of the server-side receding horizon, as `adapt eval --server` uses) or `reset`
(RoboArena's form: a new episode for this connection).

Observation keys come from the embodiment spec: `observation/<camera>` uint8 (H, W, 3) per camera, the
state as `observation/state` (state_dim,) or per proprio block `observation/<block>`, and an optional
`prompt`. Unpacking accepts only numeric arrays whose bytes match their shape: nothing is unpickled.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.observation import Observation, check_observation

PROTOCOL = "openpi-websocket/msgpack-numpy"
ENDPOINTS = ("infer", "step", "reset")
NUMERIC_KINDS = "biuf"
"""numpy dtype kinds a request may carry: bool, signed and unsigned integers, floats."""


class BadRequest(AdaptError):
    """A request the server refuses; its message names the field and what was expected."""


def _pack_array(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"cannot send a {obj.dtype} array")
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack_array(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        try:
            dtype, shape = np.dtype(obj[b"dtype"]), tuple(int(n) for n in obj[b"shape"])
            data = obj[b"data"]
        except (KeyError, TypeError, ValueError) as error:
            raise BadRequest(f"malformed array ({error})") from None
        if dtype.kind not in NUMERIC_KINDS:
            raise BadRequest(f"arrays must be numeric; got dtype {dtype}")
        if any(n < 0 for n in shape) or math.prod(shape) * dtype.itemsize != len(data):
            raise BadRequest(f"array of shape {shape} and dtype {dtype} does not match its {len(data)} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # writable, owned by the request
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def pack(message: dict) -> bytes:
    return msgpack.packb(message, default=_pack_array)


def unpack(data: bytes, max_depth: int = 8, mapping: bool = True) -> dict:
    """A request as a dict with numpy arrays; anything else is a `BadRequest` saying what it is (with `mapping`
    False, any message: a reply may be a bare array)."""
    if not isinstance(data, bytes | bytearray):
        raise BadRequest("expected a binary msgpack message, got a text frame")
    try:
        message = msgpack.unpackb(data, object_hook=_unpack_array, max_bin_len=len(data), strict_map_key=False)
    except BadRequest:
        raise
    except Exception as error:  # msgpack raises ExtraData, FormatError, StackError, ValueError...
        raise BadRequest(f"not a msgpack message ({type(error).__name__}: {error or 'invalid bytes'})") from None
    if mapping and not isinstance(message, dict):
        raise BadRequest(f"expected a map of observation keys, got {type(message).__name__}")
    return message


def schema(spec: EmbodimentSpec, frame_size: tuple[int, int]) -> dict:
    """What a client sends and gets back, for `adapt serve --schema` and the metadata sent on connect."""
    state = {"observation/state": {"dtype": "float32", "shape": [spec.state_dim]}}
    blocks = {f"observation/{p.name}": {"dtype": "float32", "shape": [p.dim], "unit": p.unit} for p in spec.proprio}
    return {
        "protocol": PROTOCOL,
        "embodiment": spec.name,
        "request": {
            **{
                f"observation/{c.name}": {"dtype": "uint8", "shape": [c.height, c.width, 3], "role": c.role}
                for c in spec.cameras
            },
            "state": "observation/state, or every proprio block below",
            **state,
            **blocks,
            "prompt": {"dtype": "str", "optional": True, "note": "task text (default: the server's --task)"},
            "endpoint": {"dtype": "str", "optional": True, "choices": list(ENDPOINTS), "default": "infer"},
        },
        "reply": {
            "infer": {
                "actions": {
                    "dtype": "float32",
                    "shape": [spec.action.chunk, spec.action_dim],
                    "note": f"absolute {spec.action.kind} commands, clipped to the spec's limits",
                },
            },
            "step": {
                "actions": {"dtype": "float32", "shape": [spec.action_dim], "note": "the next action"},
                "plans": {"dtype": "int", "note": "chunks planned so far in this session"},
                "predicted_frame": {
                    "dtype": "uint8",
                    "shape": [*frame_size, 3],
                    "optional": True,
                    "note": "the model's predicted future of the first camera, sent when a new chunk was planned",
                },
            },
            "reset": {"reset": {"dtype": "bool"}},
            "every reply": {"server_timing": {"infer_ms": "float"}},
            "error": "a text frame naming the field and what was expected; the connection stays open",
        },
    }


def observation(message: dict, spec: EmbodimentSpec) -> Observation:
    """The policy observation of a request: keys other than the schema's are named, the rest is renamed
    (`observation/<name>` -> `<name>`, `prompt` -> `task`) and checked by `adapt.observation` under the wire's
    names: every missing key, wrong dtype, shape or non-finite value is named."""
    known = {f"observation/{c.name}" for c in spec.cameras} | {"observation/state", "prompt", "endpoint"}
    known |= {f"observation/{p.name}" for p in spec.proprio}
    extra = sorted(str(k) for k in message if k not in known)
    if extra:
        raise BadRequest(f"unknown key(s) {extra}; expected {sorted(known)} (see `adapt serve --schema`)")
    renamed = {k.removeprefix("observation/"): v for k, v in message.items() if k.startswith("observation/")}
    if "prompt" in message:
        renamed["task"] = message["prompt"]
    try:
        return check_observation(renamed, spec, key=lambda name: "prompt" if name == "task" else f"observation/{name}")
    except AdaptError as error:
        raise BadRequest(str(error)) from None


def endpoint(message: dict) -> str:
    name = message.get("endpoint", "infer")
    if name not in ENDPOINTS:
        raise BadRequest(f"endpoint: {name!r} is not one of {list(ENDPOINTS)}")
    return name


class OpenpiWire:
    """openpi's request and reply forms (see the module's docstring), as the server calls every protocol."""

    name = "openpi"

    def __init__(self, spec: EmbodimentSpec, metadata: dict):
        self.spec, self._metadata = spec, metadata

    def metadata(self) -> dict:
        return self._metadata

    def endpoint(self, request: dict) -> str:
        return endpoint(request)

    def observation(self, request: dict) -> tuple[Observation, None]:
        return observation(request, self.spec), None

    def reply(self, name: str, result: dict) -> bytes:
        return pack(result)
