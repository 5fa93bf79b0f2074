"""`adapt serve`: a policy server for real robots, over openpi's websocket protocol (`adapt.serving.protocol`).

One stateless `ChunkPredictor` serves every connection; each connection is one robot's session with its
own `Policy` controller (frame history, receding horizon, blending, noise seed). Inference runs in a
worker thread, one call at a time (the predictor holds one model), so the event loop keeps answering
other clients, health checks and errors while a chunk is computed; a slow or dead client only ever
blocks its own connection. Bad requests get a text-frame error and the connection stays open.

Access: binds 127.0.0.1 unless told otherwise; with a token every client must send
`Authorization: Api-Key TOKEN` (what `openpi_client` sends for `api_key=`); a cap on message size and on
sessions. `GET /healthz` answers 200 for a supervisor. SIGTERM/SIGINT stop accepting connections, let
in-flight replies finish, then close.

Abuse: a connection that keeps sending bad requests is closed (1008) after `max_bad_requests` in a minute; an
address whose handshakes keep being refused (wrong key, no session free) or whose connections keep being closed
for abuse gets 429 without further work for a while; a connection silent for `idle_timeout_s` is closed (1001),
so silent clients cannot hold every session. Refusals are counted and logged as one summary line every
`LOG_EVERY_S` seconds, not a line each, so a hostile client cannot fill the disk or the event loop with logging.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from adapt.errors import AdaptError
from adapt.observation import Observation
from adapt.policy import Policy
from adapt.predictor import ChunkPredictor
from adapt.serving import protocol
from adapt.serving.roboarena import RoboArenaWire

log = logging.getLogger(__name__)

WINDOW_S = 60.0
"""The span over which bad requests (per connection) and refusals (per address) are counted."""
PROTOCOLS = ("openpi", "dreamzero")
"""The wire forms `adapt serve` speaks (`ServerConfig.protocol`)."""
TARPIT_S = 1.0
"""How long an abusive address waits for its 429: its retries cost the server a sleeping coroutine, not work."""
LOG_EVERY_S = 10.0
"""Refusals and bad requests are summarised in one log line at most this often."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Interface to bind; 127.0.0.1 keeps the server to this machine."""
    port: int = 8000
    token: str | None = None
    """Required `Authorization: Api-Key TOKEN` header (None: no authentication)."""
    max_message_mb: float = 16.0
    """Largest request accepted with a reply; twice this closes the connection (1009)."""
    max_sessions: int = 8
    task: str = ""
    """Task text for requests without a `prompt`."""
    protocol: str = "openpi"
    """The wire form: `openpi` (openpi's websocket policy protocol) or `dreamzero` (DreamZero's RoboArena form)."""
    max_bad_requests: int = 20
    """Bad requests a connection may send in a minute before it is closed (1008)."""
    max_refusals: int = 20
    """Refused handshakes and abuse closures an address may earn in a minute before it gets 429 (`TARPIT_S` late)."""
    idle_timeout_s: float = 300.0
    """A connection that sends nothing for this long is closed (1001): a robot asks every control step."""

    def __post_init__(self) -> None:
        """Refused here, before any model loads: a token no client could send, a protocol there is none of."""
        if self.token is not None and not self.token.strip():
            raise AdaptError("--token is empty (or ADAPT_TOKEN is set to nothing): no client could use the server")
        if self.protocol not in PROTOCOLS:
            raise AdaptError(f"--protocol {self.protocol!r}: choose {' or '.join(PROTOCOLS)}")


class PolicyServer:
    """Serves `predictor` to robots; `run()` until stopped, or `start()` in a background thread."""

    def __init__(self, predictor: ChunkPredictor, config: ServerConfig = ServerConfig()):
        self.predictor, self.config = predictor, config
        self.metadata = {
            **protocol.schema(predictor.spec, predictor.frame_size),
            "spec": predictor.spec.model_dump(mode="json"),
            "model": {"size": predictor.model.config.size, "inference": vars(predictor.config)},
        }
        if config.protocol == "dreamzero":
            self.wire = RoboArenaWire(predictor.spec)
        else:
            self.wire = protocol.OpenpiWire(predictor.spec, self.metadata)
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapt-inference")
        self._sessions: set[ServerConnection] = set()
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._server: Server | None = None
        self._stopping: asyncio.Event | None = None
        self._refusals: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._tally: collections.Counter = collections.Counter()
        self._last_summary = time.monotonic()
        self.port: int | None = None
        """The bound port (useful with port 0: any free port)."""

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def run(self, ready: threading.Event | None = None, handle_signals: bool = False) -> None:
        """Serve until `stop()` (or SIGTERM/SIGINT with `handle_signals`); in-flight replies finish first."""
        self._stopping, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        limit = int(self.config.max_message_mb * 2**20)
        async with serve(
            self._session,
            self.config.host,
            self.config.port,
            process_request=self._admit,
            max_size=2 * limit,
            compression=None,
        ) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            if handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, self._stopping.set)
            log.info("serving %s on ws://%s:%d", self.predictor.spec.name, self.config.host, self.port)
            if ready is not None:
                ready.set()
            await self._stopping.wait()
            server.close(close_connections=False)  # no new connections
            await self._idle.wait()  # in-flight replies are sent
            for connection in list(self._sessions):
                await connection.close(1001, "server shutting down")
            await server.wait_closed()
        self._summarise()
        self._inference.shutdown(wait=True)
        log.info("stopped")

    def start(self) -> PolicyServer:
        """Run in a background thread (tests, benchmarks, notebooks); returns once it accepts connections."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self.run(ready),), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise AdaptError("the policy server did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop a server started with `start()` and wait for it."""
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(30)

    # -- connections ----------------------------------------------------------------------------------------

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Health checks, abusive addresses, authentication and the session cap, answered before the websocket
        handshake."""
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        address = _host(connection)
        if self._abusive(address):  # answered late: a client hammering handshakes is slowed to one a second
            self._note("handshakes refused (429, after a second) from abusive addresses")
            await asyncio.sleep(TARPIT_S)
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "too many refused requests; wait a minute\n")
        if self.config.token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Api-Key {self.config.token}".encode()):
                self._refuse(address, "handshakes refused: missing or wrong API key")
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
        if len(self._sessions) >= self.config.max_sessions or self._stopping.is_set():
            self._refuse(address, "handshakes refused: no session free or shutting down")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many sessions or shutting down\n")
        return None

    def _abusive(self, address: str) -> bool:
        times, now = self._refusals[address], time.monotonic()
        while times and now - times[0] > WINDOW_S:
            times.popleft()
        if not times:
            del self._refusals[address]
        return len(times) >= self.config.max_refusals

    def _refuse(self, address: str, what: str) -> None:
        self._refusals[address].append(time.monotonic())
        self._note(what)

    def _note(self, what: str) -> None:
        """Count one refusal; log the counts as one line when `LOG_EVERY_S` has passed since the last."""
        self._tally[what] += 1
        if time.monotonic() - self._last_summary >= LOG_EVERY_S:
            self._summarise()

    def _summarise(self) -> None:
        now = time.monotonic()
        if self._tally:
            summary = "; ".join(f"{count} {kind}" for kind, count in self._tally.items())
            log.warning("in the last %.0f s: %s", now - self._last_summary, summary)
        self._tally.clear()
        self._last_summary = now

    async def _session(self, connection: ServerConnection) -> None:
        self._sessions.add(connection)
        policy = Policy(self.predictor, self.config.task)
        peer = connection.remote_address
        log.info("session opened: %s", peer)
        bad: collections.deque = collections.deque()
        episode = {"session": None}  # the client's session id, where its protocol sends one
        try:
            await connection.send(protocol.pack(self.wire.metadata()))
            while True:
                try:
                    message = await asyncio.wait_for(connection.recv(), self.config.idle_timeout_s)
                except TimeoutError:
                    self._note(f"connections closed after {self.config.idle_timeout_s:g} s silent")
                    await connection.close(1001, "idle for too long")
                    break
                reply = await self._answer(policy, message, peer, episode)
                if isinstance(reply, str) and reply.startswith("bad request") and self._too_many(bad):
                    self._refuse(_host(connection), "connections closed for too many bad requests")
                    await connection.close(1008, "too many bad requests")
                    break
                await connection.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(connection)
            log.info("session closed: %s", peer)

    def _too_many(self, bad: collections.deque) -> bool:
        """Count one bad request of a connection; True once it has sent `max_bad_requests` in `WINDOW_S`."""
        now = time.monotonic()
        bad.append(now)
        while now - bad[0] > WINDOW_S:
            bad.popleft()
        return len(bad) > self.config.max_bad_requests

    async def _answer(self, policy: Policy, message: bytes | str, peer, episode: dict) -> bytes | str:
        """The packed reply to one request, or the text of its error (the connection stays open). A new session id
        in `episode` starts a new episode."""
        start = time.perf_counter()
        name = "?"
        try:
            if isinstance(message, bytes) and len(message) > self.config.max_message_mb * 2**20:
                raise protocol.BadRequest(
                    f"message of {len(message) / 2**20:.1f} MB exceeds the server's {self.config.max_message_mb:g} MB"
                )
            request = protocol.unpack(message)
            name = self.wire.endpoint(request)
            if name == "reset":
                policy.reset()
                result: dict = {"reset": True}
            else:
                observation, session = self.wire.observation(request)
                if session is not None and session != episode["session"]:
                    policy.reset()
                    episode["session"] = session
                result = await self._infer(policy, name, observation)
            result["server_timing"] = {"infer_ms": 1000 * (time.perf_counter() - start)}
            log.info("%s %s %.1f ms", peer, name, result["server_timing"]["infer_ms"])
            return self.wire.reply(name, result)
        except AdaptError as error:  # BadRequest, or an observation the policy refuses
            log.debug("%s %s refused in %.1f ms: %s", peer, name, 1000 * (time.perf_counter() - start), error)
            self._note("bad requests")
            return f"bad request: {error}"
        except Exception as error:  # a bug of ours: reported to this client, logged in full, the server goes on
            log.exception("%s %s failed", peer, name)
            return f"internal error: {type(error).__name__}: {error}"

    async def _infer(self, policy: Policy, name: str, observation: Observation) -> dict:
        self._in_flight += 1
        self._idle.clear()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._inference, _compute, policy, name, observation)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()


def _host(connection: ServerConnection) -> str:
    address = connection.remote_address
    return str(address[0]) if address else "?"


def _compute(policy: Policy, name: str, observation: Observation) -> dict:
    """Runs in the inference thread: `infer` -> the chunk; `step` -> the next action (and the predicted frame
    when a new chunk was planned)."""
    if name == "infer":
        return {"actions": policy.act(observation).astype(np.float32)}
    plans = policy.plans
    result = {"actions": policy.step(observation).astype(np.float32), "plans": policy.plans}
    if policy.plans != plans:
        result["predicted_frame"] = policy.predicted_frame()
    return result
