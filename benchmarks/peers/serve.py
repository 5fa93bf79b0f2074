"""A LeRobot policy behind `adapt serve`'s wire protocol, so `adapt eval --server` drives it in adapt's closed loop.

Runs in the peers' own environment (`benchmarks/peers/setup.sh`: LeRobot and its numpy 2), never in adapt's:
the two meet only over a loopback websocket. The policy is loaded as LeRobot loads it for its own evaluation
(`from_pretrained` plus the pre/post-processors saved beside it) and each control step is answered as
`lerobot-eval` answers it: `select_action` on the observation, LeRobot's own action queue deciding when a new
chunk is planned (ACT: every `n_action_steps`, Diffusion Policy: every `n_action_steps` from its
`n_obs_steps` history). Endpoints: `step` (one action), `infer` (the whole chunk, `predict_action_chunk`) and
`reset` (a new episode: the queues emptied).

Wire format: openpi's msgpack-numpy (`openpi_client.msgpack_numpy`, as openpi's own server speaks it); the first
frame is metadata carrying the embodiment spec, as `adapt serve` sends it. Each planning call's latency is
written to `--timing` when the server stops (SIGTERM or SIGINT).

    python benchmarks/peers/serve.py --checkpoint RUN/checkpoints/last/pretrained_model --spec spec.json --port 8765
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from openpi_client import msgpack_numpy
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

log = logging.getLogger("peer-server")


class PeerPolicy:
    """One LeRobot checkpoint answering one robot's steps; records how long each planned chunk took."""

    def __init__(self, checkpoint: Path, spec: dict):
        config = json.loads((checkpoint / "config.json").read_text())
        self.kind = config["type"]
        self.policy = get_policy_class(self.kind).from_pretrained(str(checkpoint))
        self.policy.eval()
        device = {"device": "cpu"}
        self.preprocess, self.postprocess = make_pre_post_processors(
            self.policy.config,
            pretrained_path=str(checkpoint),
            preprocessor_overrides={"device_processor": device},
            postprocessor_overrides={"device_processor": device},
        )
        self.cameras = [c["name"] for c in spec["cameras"]]
        self.plans, self.plan_ms = 0, []
        self.parameters = sum(p.numel() for p in self.policy.parameters())

    def batch(self, request: dict) -> dict:
        """The request as LeRobot's evaluation presents an observation: float CHW images in [0, 1], batch of 1."""
        batch = {}
        for camera in self.cameras:
            frame = torch.from_numpy(np.ascontiguousarray(request[f"observation/{camera}"]))
            batch[f"observation.images.{camera}"] = frame.permute(2, 0, 1)[None].float() / 255
        batch["observation.state"] = torch.from_numpy(np.asarray(request["observation/state"], np.float32))[None]
        batch["task"] = [str(request.get("prompt", ""))]
        return self.preprocess(batch)

    def queued(self) -> int:
        """Actions LeRobot's policy still holds from its last chunk (0: the next call plans a new one)."""
        queue = getattr(self.policy, "_action_queue", None)
        if queue is None:
            queue = self.policy._queues["action"]
        return len(queue)

    @torch.inference_mode()
    def step(self, request: dict) -> dict:
        batch = self.batch(request)
        planning = self.queued() == 0
        start = time.perf_counter()
        action = self.policy.select_action(batch)
        if planning:
            self.plans += 1
            self.plan_ms.append(1000 * (time.perf_counter() - start))
        action = self.postprocess(action)
        return {"actions": action[0].numpy().astype(np.float32), "plans": self.plans}

    @torch.inference_mode()
    def infer(self, request: dict) -> dict:
        batch = self.batch(request)
        start = time.perf_counter()
        chunk = self.policy.predict_action_chunk(batch)
        self.plan_ms.append(1000 * (time.perf_counter() - start))
        actions = torch.stack([self.postprocess(chunk[:, i]) for i in range(chunk.shape[1])], dim=1)
        return {"actions": actions[0].numpy().astype(np.float32)}

    def reset(self) -> dict:
        self.policy.reset()
        return {"reset": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a LeRobot pretrained_model folder")
    parser.add_argument("--spec", type=Path, required=True, help="the embodiment spec as JSON (sent as metadata)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timing", type=Path, help="write each planning call's latency (ms) here on exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    spec = json.loads(args.spec.read_text())
    peer = PeerPolicy(args.checkpoint, spec)
    metadata = {
        "protocol": "openpi-websocket/msgpack-numpy",
        "embodiment": spec["name"],
        "spec": spec,
        "peer": {"policy": peer.kind, "checkpoint": str(args.checkpoint), "parameters": peer.parameters},
    }
    endpoints = {"step": peer.step, "infer": peer.infer, "reset": lambda _: peer.reset()}

    def session(connection) -> None:
        connection.send(msgpack_numpy.packb(metadata))
        try:
            for message in connection:
                start = time.perf_counter()
                try:
                    request = msgpack_numpy.unpackb(message)
                    reply = endpoints[request.get("endpoint", "infer")](request)
                except Exception as error:  # the client sees it as openpi's text-frame error; the server goes on
                    log.exception("request failed")
                    connection.send(f"bad request: {type(error).__name__}: {error}")
                    continue
                reply["server_timing"] = {"infer_ms": 1000 * (time.perf_counter() - start)}
                connection.send(msgpack_numpy.packb(reply))
        except ConnectionClosed:
            pass

    with serve(session, args.host, args.port, compression=None, max_size=None) as server:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.info("serving %s (%d parameters) on ws://%s:%d", peer.kind, peer.parameters, args.host, args.port)
        stop.wait()
        server.shutdown()
    if args.timing:
        median = statistics.median(peer.plan_ms) if peer.plan_ms else None
        summary = {"plans": len(peer.plan_ms), "median_plan_ms": median, "plan_ms": peer.plan_ms}
        args.timing.write_text(json.dumps(summary | {"parameters": peer.parameters, "policy": peer.kind}))


if __name__ == "__main__":
    main()
