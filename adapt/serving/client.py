"""The robot side of a policy server, as `adapt eval --server` uses it: a `Policy` stand-in.

Against `adapt serve` it asks for every action (endpoint `step`), so the server's controller runs the receding
horizon exactly as the in-process policy does. Against any other openpi server (one whose first frame carries no
adapt spec: a stock openpi or LeRobot server), it runs the horizon itself: it asks `infer` for a chunk, executes
its first `execute` actions, then asks again (chunk mode; the robot's spec is given, since such a server does not
send one). Any openpi client works against `adapt serve` too; this one adds `step`, `reset` and the predicted frame.

The server is not trusted with the robot: every action it sends is bounded here by the spec's limits
(`ActionCodec.clip`, from the measured state), and a reply that is not a finite action of the spec's size
becomes "hold position", so a server of another make (a LeRobot peer, a buggy build) cannot command
more than the spec allows."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from adapt.data.codec import ActionCodec
from adapt.embodiment import EmbodimentSpec, spec_from_dict
from adapt.errors import AdaptError
from adapt.serving import protocol

log = logging.getLogger(__name__)


class RemotePolicy:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 60.0,
        spec: EmbodimentSpec | None = None,
        execute: int | None = None,
    ):
        """`spec`: the robot, for servers that do not send one (then chunk mode); `execute`: actions executed per
        chunk in chunk mode (default: all)."""
        headers = {"Authorization": f"Api-Key {token}"} if token else None
        self._stack = contextlib.ExitStack()  # websockets wants its connection used as a context manager
        try:
            self._connection = self._stack.enter_context(
                connect(url, additional_headers=headers, compression=None, max_size=None, open_timeout=timeout)
            )
            self.metadata = protocol.unpack(self._connection.recv(timeout))
        except (OSError, TimeoutError, WebSocketException) as error:
            raise AdaptError(f"cannot reach the policy server at {url}: {error}") from None
        self.chunked = self.metadata.get("protocol") != protocol.PROTOCOL or "spec" not in self.metadata
        if spec is None and "spec" not in self.metadata:
            self.close()
            raise AdaptError(f"the server at {url} does not say what robot it drives: name the robot (--robot)")
        self.spec = spec or spec_from_dict(self.metadata["spec"], check_description=False)
        self.codec = ActionCodec(self.spec)
        self.timeout, self.execute = timeout, execute
        self.plans = 0
        self._frame: np.ndarray | None = None
        self._queue: list[np.ndarray] = []

    def reset(self) -> None:
        if not self.chunked:  # a stock openpi server has no reset endpoint: a new episode is a fresh queue
            self._ask({"endpoint": "reset"})
        self.plans, self._frame, self._queue = 0, None, []

    def step(self, observation: dict) -> np.ndarray:
        """The next action for an in-process style observation (camera frames by name, `state`, `task`)."""
        request = {f"observation/{c.name}": observation[c.name] for c in self.spec.cameras}
        request["observation/state"] = np.asarray(observation["state"], np.float32)
        if "task" in observation:
            request["prompt"] = observation["task"]
        if self.chunked:
            if not self._queue:
                reply = self._ask(request)
                chunk = np.asarray(reply.get("actions") if isinstance(reply, dict) else reply, dtype=object)
                rows = list(chunk) if chunk.ndim == 2 else [chunk]  # anything else is held, by `_bounded`
                self._queue = rows[: self.execute] or [None]
                self.plans += 1
            return self._bounded(self._queue.pop(0), request["observation/state"])
        reply = self._ask({**request, "endpoint": "step"})
        self.plans = int(reply["plans"])
        if "predicted_frame" in reply:
            self._frame = reply["predicted_frame"]
        return self._bounded(reply["actions"], request["observation/state"])

    def _bounded(self, action, state: np.ndarray) -> np.ndarray:
        """The server's action within the spec's limits; hold position for anything but a finite action."""
        try:
            action = np.asarray(action, np.float64).reshape(self.spec.action_dim)
        except (TypeError, ValueError):
            action = np.full(self.spec.action_dim, np.nan)
        if not np.isfinite(action).all():
            log.warning("the policy server sent no finite action of size %d; holding position", self.spec.action_dim)
            return self.codec.hold(state)
        return self.codec.clip(action[None], state)[0]

    def predicted_frame(self) -> np.ndarray | None:
        return self._frame

    def bind(self, sim) -> None:
        """Nothing to read: the server sees only the observations sent."""

    def close(self) -> None:
        self._stack.close()

    def _ask(self, request: dict) -> dict:
        try:
            self._connection.send(protocol.pack(request))
            reply = self._connection.recv(self.timeout)
        except (TimeoutError, WebSocketException) as error:
            raise AdaptError(f"the policy server stopped answering: {error}") from None
        if isinstance(reply, str):
            raise AdaptError(f"the policy server refused the request: {reply}")
        return protocol.unpack(reply, mapping=False)
