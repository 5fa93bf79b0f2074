#!/usr/bin/env bash
# The peers' environment: LeRobot (ACT, Diffusion Policy) in a virtual environment of its own, beside adapt's.
# LeRobot 0.4.4 is the last line that runs on Python 3.11; it pulls numpy 2, which cannot live beside
# robosuite's numpy < 2, so the two meet only over a loopback websocket (benchmarks/peers/serve.py).
# About 8 GB (torch 2.10 with its CUDA libraries) and a few minutes.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q lerobot==0.4.4 websockets
# openpi's msgpack-numpy wire format; its numpy<2 pin is for its own tests (the module runs on numpy 2)
.venv/bin/pip install -q --no-deps openpi-client==0.1.2 msgpack
.venv/bin/python -c "import lerobot, torch, numpy; print('lerobot', lerobot.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
