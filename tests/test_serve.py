"""`adapt serve`: openpi's own client gets the same actions as the in-process policy; every bad request gets
an error naming the field and the connection (and every other one) keeps being served; tokens, session cap,
health check, reset, graceful shutdown; `adapt eval --server` drives the simulator like `--policy` does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from adapt.embodiment import load_embodiment
from adapt.inference_config import InferenceConfig
from adapt.model import WorldActionModel, model_config, save_model
from adapt.policy import Policy
from adapt.predictor import ChunkPredictor
from adapt.serving.server import PolicyServer, ServerConfig

TOKEN = "s3cret"
CONFIG = InferenceConfig(steps=2, execute=4, blend=2)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(
        WorldActionModel(model_config("tiny"), [load_embodiment("ur5e")]), tmp_path_factory.mktemp("m") / "model"
    )


@pytest.fixture
def server(policy_dir):
    running = PolicyServer(
        ChunkPredictor.load(policy_dir, config=CONFIG),
        ServerConfig(port=0, token=TOKEN, max_message_mb=1.0, max_sessions=3),
    ).start()
    yield running
    running.stop()


def observation(seed: int = 0, spec=None) -> dict:
    spec = spec or load_embodiment("ur5e")
    rng = np.random.default_rng(seed)
    obs = {f"observation/{c.name}": rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}
    obs["observation/state"] = rng.uniform(-0.5, 0.5, spec.state_dim).astype(np.float32)
    obs["prompt"] = "lift the red cube"
    return obs


def in_process(obs: dict, policy_dir: Path) -> np.ndarray:
    policy = Policy(ChunkPredictor.load(policy_dir, config=CONFIG))
    spec = policy.spec
    return policy.act(
        {c.name: obs[f"observation/{c.name}"] for c in spec.cameras}
        | {"state": obs["observation/state"], "task": obs["prompt"]}
    )


def test_openpi_client_gets_the_in_process_chunk(server, policy_dir):
    client = WebsocketClientPolicy("127.0.0.1", server.port, api_key=TOKEN)
    metadata = client.get_server_metadata()
    assert metadata["embodiment"] == "ur5e" and metadata["protocol"] == "openpi-websocket/msgpack-numpy"
    assert metadata["request"]["observation/agentview"]["shape"] == [128, 128, 3]
    obs = observation()
    reply = client.infer(obs)
    spec = load_embodiment("ur5e")
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (spec.action.chunk, spec.action_dim)
    np.testing.assert_allclose(reply["actions"], in_process(obs, policy_dir), atol=1e-6)  # same seed, same chunk
    assert reply["server_timing"]["infer_ms"] > 0
    reply_blocks = client.infer(  # the state as its proprio blocks instead of one vector
        {k: v for k, v in obs.items() if k != "observation/state"}
        | {
            "observation/joint_position": obs["observation/state"][:6],
            "observation/gripper": obs["observation/state"][6:],
        }
    )
    assert reply_blocks["actions"].shape == reply["actions"].shape


def _garbage_array() -> dict:
    return {b"__ndarray__": True, b"data": b"\x00" * 10, b"dtype": "<f4", b"shape": (7,)}


BAD_REQUESTS = {
    "not msgpack": (lambda o: b"\xc1\xc1 definitely not msgpack", "not a msgpack message"),
    "text frame": (lambda o: "hello", "expected a binary msgpack message"),
    "a list, not a map": (lambda o: msgpack.packb([1, 2, 3]), "expected a map of observation keys, got list"),
    "missing camera": (
        lambda o: msgpack_numpy.packb({k: v for k, v in o.items() if k != "observation/agentview"}),
        "missing observation/agentview: uint8 (128, 128, 3)",
    ),
    "extra key": (
        lambda o: msgpack_numpy.packb(o | {"observation/colour": 1}),
        "unknown key(s) ['observation/colour']",
    ),
    "image of the wrong size": (
        lambda o: msgpack_numpy.packb(o | {"observation/agentview": np.zeros((64, 64, 3), np.uint8)}),
        "observation/agentview: expected uint8 (128, 128, 3), got uint8 (64, 64, 3)",
    ),
    "image of the wrong dtype": (
        lambda o: msgpack_numpy.packb(o | {"observation/agentview": np.zeros((128, 128, 3), np.float32)}),
        "observation/agentview: expected uint8 (128, 128, 3), got float32",
    ),
    "NaN in the state": (
        lambda o: msgpack_numpy.packb(o | {"observation/state": np.array([0, np.nan, 0, 0, 0, 0, 0], np.float32)}),
        "observation/state: non-finite values at [1]",
    ),
    "inf in the state": (
        lambda o: msgpack_numpy.packb(o | {"observation/state": np.full(7, np.inf, np.float32)}),
        "observation/state: non-finite values at [0, 1, 2, 3, 4, 5, 6]",
    ),
    "state of the wrong length": (
        lambda o: msgpack_numpy.packb(o | {"observation/state": np.zeros(9, np.float32)}),
        "observation/state: expected float32 (7,), got float32 (9,)",
    ),
    "state as text": (lambda o: msgpack_numpy.packb(o | {"observation/state": "up"}), "expected float32 (7,), got str"),
    "array bytes that do not match the shape": (
        lambda o: msgpack.packb(o | {"observation/state": _garbage_array()}, default=msgpack_numpy.pack_array),
        "does not match its 10 bytes",
    ),
    "prompt not text": (lambda o: msgpack_numpy.packb(o | {"prompt": 3}), "prompt: expected a string, got int"),
    "unknown endpoint": (lambda o: msgpack_numpy.packb(o | {"endpoint": "fly"}), "endpoint: 'fly' is not one of"),
    "oversized message": (
        lambda o: msgpack_numpy.packb(o | {"padding": np.zeros(1_200_000, np.uint8)}),
        "message of 1.2 MB exceeds the server's 1 MB",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_request_gets_an_error_naming_it_and_the_connection_goes_on(case, server, policy_dir):
    build, words = BAD_REQUESTS[case]
    headers = {"Authorization": f"Api-Key {TOKEN}"}
    with connect(f"ws://127.0.0.1:{server.port}", additional_headers=headers, max_size=None) as ws:
        ws.recv()  # metadata
        ws.send(build(observation()))
        reply = ws.recv(30)
        assert isinstance(reply, str) and reply.startswith("bad request: ") and words in reply, reply
        ws.send(msgpack_numpy.packb(observation()))  # the same connection still serves
        assert msgpack_numpy.unpackb(ws.recv(30))["actions"].shape == (16, 7)
    other = WebsocketClientPolicy("127.0.0.1", server.port, api_key=TOKEN)  # and so does a new one
    assert other.infer(observation(1))["actions"].shape == (16, 7)


def test_access_session_cap_health_and_reset(server):
    for key in (None, "wrong"):
        with pytest.raises(InvalidStatus, match="401"):
            WebsocketClientPolicy("127.0.0.1", server.port, api_key=key)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as response:
        assert response.status == 200 and response.read() == b"ok\n"
    clients = [WebsocketClientPolicy("127.0.0.1", server.port, api_key=TOKEN) for _ in range(3)]
    with pytest.raises(InvalidStatus, match="503"):
        WebsocketClientPolicy("127.0.0.1", server.port, api_key=TOKEN)
    assert clients[0].infer({"endpoint": "reset"})["reset"] is True
    first = [clients[1].infer(observation(2) | {"endpoint": "step"}) for _ in range(5)]
    assert [r["plans"] for r in first] == [1, 1, 1, 1, 2]  # execute=4: a new chunk every fourth step
    assert first[0]["predicted_frame"].shape == (32, 32, 3) and "predicted_frame" not in first[1]
    clients[1].infer({"endpoint": "reset"})
    again = clients[1].infer(observation(2) | {"endpoint": "step"})
    assert again["plans"] == 3 and "predicted_frame" in again  # reset dropped the plan: the next step replans


def test_shutdown_finishes_the_reply_in_flight(policy_dir):
    predictor = ChunkPredictor.load(policy_dir, config=CONFIG)
    slow = predictor.predict
    predictor.predict = lambda *a, **k: (time.sleep(1.0), slow(*a, **k))[1]
    running = PolicyServer(predictor, ServerConfig(port=0)).start()
    with connect(f"ws://127.0.0.1:{running.port}", max_size=None) as ws:
        ws.recv()
        ws.send(msgpack_numpy.packb(observation()))
        time.sleep(0.3)
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        reply = ws.recv(30)
        assert msgpack_numpy.unpackb(reply)["actions"].shape == (16, 7)
        stopper.join(30)
    assert not stopper.is_alive()
    with pytest.raises(ConnectionRefusedError):
        connect(f"ws://127.0.0.1:{running.port}", open_timeout=2)


def test_cli_serve_prints_its_schema_and_stops_cleanly_on_sigterm(invoke, policy_dir):
    result = invoke("serve", "--policy", policy_dir, "--schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["request"]["observation/state"] == {"dtype": "float32", "shape": [7]}
    assert schema["reply"]["infer"]["actions"]["shape"] == [16, 7]

    adapt = Path(sys.executable).parent / "adapt"
    process = subprocess.Popen(
        [str(adapt), "serve", "--policy", str(policy_dir), "--port", "18765"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen("http://127.0.0.1:18765/healthz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        client = WebsocketClientPolicy("127.0.0.1", 18765)
        assert client.infer(observation())["actions"].shape == (16, 7)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "observation/state" not in output and "stopped" in output
    assert "infer" in output and " ms" in output  # one log line per request, with its latency


def test_eval_through_the_server_takes_the_in_process_actions(policy_dir, tmp_path):
    pytest.importorskip("robosuite")
    from adapt.serving.client import RemotePolicy
    from adapt.sim.closed_loop import evaluate_closed_loop

    class Recording:
        def __init__(self, policy):
            self.policy, self.actions = policy, []

        def __getattr__(self, name):
            return getattr(self.policy, name)

        def step(self, obs):
            self.actions.append(self.policy.step(obs))
            return self.actions[-1]

    local = Recording(Policy(ChunkPredictor.load(policy_dir, config=CONFIG)))
    evaluate_closed_loop(
        local, "Lift", 1, tmp_path / "local", max_steps=9, seed=3, progress=True
    )  # the plain-line progress too
    running = PolicyServer(ChunkPredictor.load(policy_dir, config=CONFIG), ServerConfig(port=0)).start()
    try:
        remote = Recording(RemotePolicy(f"ws://127.0.0.1:{running.port}"))
        evaluate_closed_loop(remote, "Lift", 1, tmp_path / "remote", max_steps=9, seed=3)
        remote.close()
    finally:
        running.stop()
    np.testing.assert_allclose(np.stack(remote.actions), np.stack(local.actions), atol=1e-6)
    assert len(local.actions) == 9


def test_client_bounds_whatever_a_server_sends():
    """`adapt eval --server` drives servers of other makes (a LeRobot peer, a stock openpi server, a buggy build):
    an action that is not finite, jumps past the velocity limit or has the wrong size must never reach the robot."""
    from websockets.sync.server import serve

    from adapt.serving.client import RemotePolicy

    spec = load_embodiment("ur5e")  # absolute joint targets: bounded by position and velocity from the state
    replies = [np.full(7, np.nan, np.float32), np.full(7, 100.0, np.float32), np.zeros(3, np.float32)]

    def session(connection):
        connection.send(msgpack_numpy.packb({"spec": spec.model_dump(mode="json")}))
        for _, reply in zip(connection, replies, strict=False):
            connection.send(msgpack_numpy.packb({"actions": reply, "plans": 1}))

    with serve(session, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        remote = RemotePolicy(f"ws://127.0.0.1:{server.socket.getsockname()[1]}")
        state = np.array([0.3, -0.2, 0.1, 0.4, -0.5, 0.6, 0.5], np.float32)
        frames = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
        actions = [remote.step(frames | {"state": state}) for _ in replies]
        remote.close()
        server.shutdown()
    np.testing.assert_allclose(actions[0], state, atol=1e-6)  # NaN: hold where it is
    step = np.array([j.velocity for j in spec.joints]) / spec.action.control_hz
    np.testing.assert_allclose(actions[1][:6], state[:6] + step, rtol=1e-5)  # at most one velocity step away
    assert actions[1][6] == spec.gripper.range[1]
    np.testing.assert_allclose(actions[2], state, atol=1e-6)  # three values for seven: hold


def test_abusive_clients_are_cut_off_silent_ones_timed_out_and_refusals_counted_not_logged_each(policy_dir, caplog):
    """Ten misbehaving clients used to be served without limit (a good client's latency rose 3.3x) and logged a line
    per refusal (5.7 MB in 30 s), and eight silent connections could hold every session: a connection is closed
    after `max_bad_requests`, an address that keeps earning refusals then gets 429 even with the right key, a
    silent connection is closed after `idle_timeout_s`, and the log gets counts at shutdown, not a line each."""
    from websockets.exceptions import ConnectionClosed

    config = ServerConfig(port=0, token=TOKEN, max_bad_requests=3, max_refusals=4, idle_timeout_s=1.0)
    running = PolicyServer(ChunkPredictor.load(policy_dir, config=CONFIG), config).start()
    url, headers = f"ws://127.0.0.1:{running.port}", {"Authorization": f"Api-Key {TOKEN}"}
    with caplog.at_level("INFO", logger="adapt.serving.server"):
        try:
            with connect(url, additional_headers=headers, max_size=None) as ws:
                ws.recv()
                for _ in range(3):
                    ws.send(b"\x00")
                    assert ws.recv(10).startswith("bad request")
                ws.send(b"\x00")  # the fourth in a minute
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(10)
                assert closed.value.rcvd.code == 1008
            for _ in range(3):  # with the closure, four refusals for this address
                with pytest.raises(InvalidStatus, match="401"):
                    WebsocketClientPolicy("127.0.0.1", running.port, api_key="wrong")
            with pytest.raises(InvalidStatus, match="429"):
                WebsocketClientPolicy("127.0.0.1", running.port, api_key=TOKEN)
        finally:
            running.stop()
    refusals = [
        r.getMessage() for r in caplog.records if "refused" in r.getMessage() or "bad request" in r.getMessage()
    ]
    assert len(refusals) == 1, refusals  # one summary line
    summary = refusals[0]
    assert "4 bad requests" in summary and "1 connections closed for too many bad requests" in summary
    assert (
        "3 handshakes refused: missing or wrong API key" in summary
        and "1 handshakes refused (429, after a second)" in summary
    )

    quiet = PolicyServer(ChunkPredictor.load(policy_dir, config=CONFIG), ServerConfig(port=0, idle_timeout_s=0.5))
    quiet.start()
    try:
        with connect(f"ws://127.0.0.1:{quiet.port}", max_size=None) as ws:
            ws.recv()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(10)  # nothing sent: closed after half a second
            assert closed.value.rcvd.code == 1001
    finally:
        quiet.stop()


def droid_request(seed: int = 0, session: str = "episode-1") -> dict:
    """What DreamZero's `eval_utils/policy_client.py` sends for the UR5e: DROID keys, a dummy pose, a session id."""
    obs = observation(seed)
    return {
        "observation/exterior_image_0_left": obs["observation/agentview"],
        "observation/wrist_image_left": obs["observation/robot0_eye_in_hand"],
        "observation/joint_position": obs["observation/state"][:6].astype(np.float64),
        "observation/cartesian_position": np.zeros(6),
        "observation/gripper_position": obs["observation/state"][6:].astype(np.float64),
        "prompt": obs["prompt"],
        "session_id": session,
        "endpoint": "infer",
    }


def test_dreamzero_clients_drive_the_server_unchanged(policy_dir):
    """DreamZero's robot and evaluation clients speak its RoboArena form: a PolicyServerConfig first, `endpoint` on
    every request, DROID keys, the bare (N, dim) chunk back, "reset successful", a new session id a new episode.
    The chunk must be the in-process one for the same observation."""
    config = ServerConfig(port=0, protocol="dreamzero")
    running = PolicyServer(ChunkPredictor.load(policy_dir, config=CONFIG), config).start()
    packer = msgpack_numpy.Packer()
    try:
        with connect(f"ws://127.0.0.1:{running.port}", compression=None, max_size=None) as ws:
            first = msgpack_numpy.unpackb(ws.recv(30))
            assert first == {
                "image_resolution": [128, 128],
                "needs_wrist_camera": True,
                "n_external_cameras": 1,
                "needs_stereo_camera": False,
                "needs_session_id": True,
                "action_space": "joint_position",
            }
            ws.send(packer.pack(droid_request()))
            chunk = msgpack_numpy.unpackb(ws.recv(30))
            assert isinstance(chunk, np.ndarray) and chunk.shape == (16, 7)
            np.testing.assert_allclose(chunk, in_process(observation(), policy_dir), atol=1e-6)
            ws.send(packer.pack({"endpoint": "reset"}))
            assert ws.recv(30) == "reset successful"
            bad = droid_request() | {"observation/joint_position": np.zeros(3)}
            ws.send(packer.pack(bad))
            reply = ws.recv(30)
            assert isinstance(reply, str) and "observation/joint_position: expected float32 (6,)" in reply, reply
            ws.send(packer.pack(droid_request(session="episode-2")))  # the connection goes on, a new episode
            assert msgpack_numpy.unpackb(ws.recv(30)).shape == (16, 7)
    finally:
        running.stop()


def test_dreamzero_protocol_refuses_a_spec_it_cannot_carry():
    """A robot whose state holds more than joint positions and a gripper has no DROID keys: refused at start."""
    from adapt.embodiment import spec_from_dict
    from adapt.errors import AdaptError
    from adapt.serving.roboarena import RoboArenaWire

    raw = load_embodiment("ur5e").model_dump(mode="json")
    raw["proprio"] = [{"name": "joint_position", "dim": 6, "unit": "rad"}, {"name": "force", "dim": 1, "unit": "N"}]
    with pytest.raises(AdaptError, match=r"proprio blocks \['joint_position', 'force'\]: serve it with --protocol"):
        RoboArenaWire(spec_from_dict(raw, check_description=False))


def test_eval_client_runs_the_horizon_itself_against_a_stock_openpi_server():
    """A stock openpi server (no adapt spec in its first frame, `infer` only: openpi's own, a LeRobot one) answers
    chunks; the client must execute `execute` actions of each, ask again, and bound each action (a NaN row is held,
    a jump is clipped to a velocity step), and must refuse to guess the robot when none is named."""
    from websockets.sync.server import serve

    from adapt.errors import AdaptError
    from adapt.serving.client import RemotePolicy

    spec = load_embodiment("ur5e")
    state = np.array([0.3, -0.2, 0.1, 0.4, -0.5, 0.6, 0.5], np.float32)
    asked = []

    def session(connection):
        connection.send(msgpack_numpy.packb({"server": "stock openpi"}))  # no spec, no protocol of ours
        for message in connection:
            request = msgpack_numpy.unpackb(message)
            asked.append(sorted(request))
            chunk = np.repeat(state[None], 10, axis=0).astype(np.float32)
            chunk[1] = np.nan
            chunk[2, 0] += 1.0  # a jump of 1 rad in one step
            connection.send(msgpack_numpy.packb({"actions": chunk}))

    with serve(session, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        with pytest.raises(AdaptError, match="does not say what robot it drives: name the robot"):
            RemotePolicy(url)
        remote = RemotePolicy(url, spec=spec, execute=4)
        frames = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
        remote.reset()  # no reset endpoint to call on such a server
        actions = [remote.step(frames | {"state": state, "task": "lift"}) for _ in range(6)]
        remote.close()
        server.shutdown()
    assert remote.plans == 2 and len(asked) == 2  # 4 actions of the first chunk, then a new one
    assert asked[0] == ["observation/agentview", "observation/robot0_eye_in_hand", "observation/state", "prompt"]
    np.testing.assert_allclose(actions[0], state, atol=1e-6)
    np.testing.assert_allclose(actions[1], state, atol=1e-6)  # the NaN row: hold
    assert actions[2][0] == pytest.approx(state[0] + spec.joints[0].velocity / spec.action.control_hz, rel=1e-5)
