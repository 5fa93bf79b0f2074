"""DreamZero's own policy client against `adapt serve --protocol dreamzero`: the proof that robot code written for
DreamZero's server drives an adapt policy unchanged.

DreamZero's `eval_utils/policy_client.py` (its RoboArena client, `WebsocketClientPolicy`) is imported from a
DreamZero checkout, in an interpreter of its own that has what that file imports (openpi-client, websockets,
typing_extensions: the peers' environment, `benchmarks/peers/setup.sh`, has them); adapt never imports it. The
client connects, reads the server's `PolicyServerConfig`, sends DROID-style `infer` requests for two episodes
(session ids) and a `reset`, and the session is written down: what was sent, what came back, and whether each
chunk is finite, of the spec's shape and within its bounds.

Run: `.venv/bin/python benchmarks/dreamzero_client.py --dreamzero PATH/TO/dreamzero` (a checkout of
github.com/dreamzero0/dreamzero; about a minute). Results: `benchmarks/results/dreamzero_client.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from report import machine, write_report

from adapt.embodiment import load_embodiment

ROOT = Path(__file__).resolve().parents[1]
CLIENT = """
import json, sys, uuid
import numpy as np
from eval_utils.policy_client import WebsocketClientPolicy  # DreamZero's own client

port, height, width, joints, bounds = json.loads(sys.argv[1])
client = WebsocketClientPolicy(host="127.0.0.1", port=port)
log = {"server_config": client.get_server_metadata(), "requests": []}
rng = np.random.default_rng(0)
for session in (str(uuid.uuid4()), str(uuid.uuid4())):
    for step in range(2):
        request = {
            "observation/exterior_image_0_left": rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
            "observation/wrist_image_left": rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
            "observation/joint_position": rng.uniform(-0.5, 0.5, joints),
            "observation/cartesian_position": np.zeros(6),
            "observation/gripper_position": np.array([0.0]),
            "prompt": "lift the red cube",
            "session_id": session,
        }
        chunk = np.asarray(client.infer(request))
        low, high = np.array(bounds).T
        log["requests"].append({
            "session": session[:8],
            "sent": {k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in request.items()},
            "got_shape": list(chunk.shape), "got_dtype": str(chunk.dtype),
            "finite": bool(np.isfinite(chunk).all()),
            "within_spec_bounds": bool(((chunk >= low) & (chunk <= high)).all()),
            "first_action": [round(float(x), 4) for x in chunk[0]],
        })
log["reset_reply"] = client.reset({})
print(json.dumps(log))
"""


def action_bounds(spec) -> list[list[float]]:
    """[low, high] of every action dimension the spec allows: joint limits for joint positions, the servo's
    [-1, 1] for end-effector deltas, a velocity step for joint deltas; the gripper's range."""
    kind, grip = spec.action.kind, list(spec.gripper.range) if spec.gripper else []
    if kind == "joint_position":
        arm = [list(j.position) for j in spec.joints]
    elif kind == "joint_delta":
        arm = [[-j.velocity / spec.action.control_hz, j.velocity / spec.action.control_hz] for j in spec.joints]
    else:
        arm = [[-1.0, 1.0]] * (spec.action_dim - (spec.gripper.dim if spec.gripper else 0))
    return arm + [grip] * (spec.gripper.dim if spec.gripper else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dreamzero", type=Path, required=True, help="a checkout of DreamZero (its eval_utils/)")
    parser.add_argument("--python", type=Path, default=ROOT / "benchmarks" / "peers" / ".venv" / "bin" / "python")
    parser.add_argument("--policy", type=Path, default=ROOT / "models" / "base-small")
    parser.add_argument("--robot", default="panda", help="a robot acting in joint positions or deltas of a base")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dreamzero_client.json")
    args = parser.parse_args()
    if not (args.dreamzero / "eval_utils" / "policy_client.py").is_file():
        parser.error(f"--dreamzero {args.dreamzero}: no eval_utils/policy_client.py there")
    spec = load_embodiment(args.robot)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapt = ROOT / ".venv" / "bin" / "adapt"
    command = [str(adapt), "serve", "--policy", str(args.policy), "--robot", args.robot, "--protocol", "dreamzero"]
    server = subprocess.Popen([*command, "--port", str(port), "--steps", "2"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"adapt serve did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(0.5)
        camera = spec.cameras[0]
        given = json.dumps([port, camera.height, camera.width, len(spec.joints), action_bounds(spec)])
        env = os.environ | {"PYTHONPATH": str(args.dreamzero.resolve())}
        done = subprocess.run([str(args.python), "-c", CLIENT, given], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"DreamZero's client failed:\n{done.stderr[-3000:]}")
    finally:
        server.terminate()
        server.wait(30)
    session = json.loads(done.stdout.strip().splitlines()[-1])
    commit = subprocess.run(["git", "-C", str(args.dreamzero), "rev-parse", "HEAD"], capture_output=True, text=True)
    report = {"machine": machine(), "dreamzero_commit": commit.stdout.strip() or None, "robot": args.robot}
    report |= {"policy": str(args.policy), "session": session}
    write_report(args.out, report)
    print(json.dumps(session, indent=1)[:3000])


if __name__ == "__main__":
    sys.exit(main())
