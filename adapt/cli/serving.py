"""`adapt serve`: an adapted policy for real robots, over openpi's websocket protocol."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from adapt.cli.common import app, err, out, user_errors
from adapt.inference_config import InferenceConfig

FAST = InferenceConfig()
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
@user_errors
def serve_command(
    policy_dir: Annotated[Path, typer.Option("--policy", help="Adapter folder (RUN or RUN/adapter) or checkpoint.")],
    robot: Annotated[str | None, typer.Option(help="Embodiment to serve (default: the adapter's).")] = None,
    base: Annotated[Path | None, typer.Option(help="Base checkpoint (default: the one the adapter recorded).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0: every network; use with --token).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    token: Annotated[
        str | None, typer.Option(envvar="ADAPT_TOKEN", help="Require 'Authorization: Api-Key TOKEN' from clients.")
    ] = None,
    max_sessions: Annotated[int, typer.Option(min=1, help="Robots connected at once.")] = 8,
    max_message_mb: Annotated[float, typer.Option(min=0.01, help="Largest request (MB).")] = 16.0,
    task: Annotated[str, typer.Option(help="Task text for requests without a prompt.")] = "",
    schema: Annotated[bool, typer.Option("--schema", help="Print what clients send and receive, then exit.")] = False,
    protocol: Annotated[
        str,
        typer.Option(
            help="openpi (openpi's websocket policy protocol) or dreamzero (DreamZero's RoboArena form: its robot"
            " and evaluation clients work unchanged)."
        ),
    ] = "openpi",
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps per chunk.")] = FAST.steps,
    video_final_t: Annotated[float, typer.Option(help="Noise level the video branch stops at.")] = FAST.video_final_t,
    execute: Annotated[int, typer.Option(min=1, help="Actions executed per chunk (endpoint step).")] = FAST.execute,
    blend: Annotated[int, typer.Option(min=0, help="Actions blended at chunk boundaries (endpoint step).")] = (
        FAST.blend
    ),
    seed: Annotated[int, typer.Option(help="Seed of each session's sampling noise.")] = 0,
) -> None:
    """Serve a policy to robots: openpi's websocket protocol (msgpack + numpy), one session per connection.

    Clients: openpi_client.websocket_client_policy.WebsocketClientPolicy(host, port, api_key=TOKEN) works
    unchanged; `adapt eval --server ws://HOST:PORT` runs the simulated closed loop through it. GET /healthz
    answers 200 while serving; SIGTERM or Ctrl-C finish the replies in flight, then stop.
    """
    import asyncio

    from adapt.predictor import ChunkPredictor
    from adapt.serving.server import PolicyServer, ServerConfig

    serving = ServerConfig(  # refuses an empty token or an unknown protocol before the model loads
        host, port, token, max_message_mb=max_message_mb, max_sessions=max_sessions, task=task, protocol=protocol
    )
    config = InferenceConfig(steps=steps, video_final_t=video_final_t, execute=execute, blend=blend, seed=seed)
    predictor = ChunkPredictor.load(policy_dir, robot, base, config)
    server = PolicyServer(predictor, serving)
    if schema:
        if protocol == "dreamzero":
            out.print_json(json.dumps({"protocol": "dreamzero", "first frame": server.wire.metadata()}))
            return
        out.print_json(json.dumps({k: server.metadata[k] for k in ("protocol", "embodiment", "request", "reply")}))
        return
    if host not in LOOPBACK and token is None:
        err.print(
            f"[yellow]warning:[/] serving on {host} without --token: anyone who can reach it can command the robot"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    out.print(
        f"serving {predictor.spec.name} from {policy_dir} on ws://{host}:{port} (Ctrl-C to stop)", highlight=False
    )
    asyncio.run(server.run(handle_signals=True))
