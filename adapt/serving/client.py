"""The robot side of `adapt serve`, as `adapt eval --server` uses it: a `Policy` stand-in that asks the
server for every action (endpoint `step`), so the server's controller runs the receding horizon exactly
as the in-process policy does. Any openpi client works against the server too; this one adds `step`,
`reset` and the predicted frame.

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
from adapt.embodiment import spec_from_dict
from adapt.errors import AdaptError
from adapt.serving import protocol

log = logging.getLogger(__name__)


class RemotePolicy:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Api-Key {token}"} if token else None
        self._stack = contextlib.ExitStack()  # websockets wants its connection used as a context manager
        try:
            self._connection = self._stack.enter_context(
                connect(url, additional_headers=headers, compression=None, max_size=None, open_timeout=timeout)
            )
            self.metadata = protocol.unpack(self._connection.recv(timeout))
        except (OSError, TimeoutError, WebSocketException) as error:
            raise AdaptError(f"cannot reach the policy server at {url}: {error}") from None
        self.spec = spec_from_dict(self.metadata["spec"], check_description=False)
        self.codec = ActionCodec(self.spec)
        self.timeout = timeout
        self.plans = 0
        self._frame: np.ndarray | None = None

    def reset(self) -> None:
        self._ask({"endpoint": "reset"})
        self.plans, self._frame = 0, None

    def step(self, observation: dict) -> np.ndarray:
        """The next action for an in-process style observation (camera frames by name, `state`, `task`)."""
        request = {f"observation/{c.name}": observation[c.name] for c in self.spec.cameras}
        request["observation/state"] = np.asarray(observation["state"], np.float32)
        if "task" in observation:
            request["prompt"] = observation["task"]
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
        return protocol.unpack(reply)
