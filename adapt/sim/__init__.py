"""Simulated data (the `sim` extra): robosuite scenes driven by scripted controllers.

`generate` writes play data for a target robot, multitask pretraining data and demos of one task, in
the same LeRobot format as any other dataset. Three things must happen before robosuite is imported,
hence here: MuJoCo renders offscreen on the CPU (OSMesa) unless MUJOCO_GL says otherwise; triton
(torch's compiler backend, which torchvision and timm pull in) is loaded first when installed, because
it and OSMesa's llvmpipe each carry an LLVM and loading triton second kills the process (SIGSEGV);
and robosuite's console chatter (warnings about its optional setup on import, a line per scene made)
is cut down to its errors.
"""

import importlib.util
import logging
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
if os.environ["MUJOCO_GL"] == "osmesa" and importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401
logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)

from adapt.sim.generate import KINDS, generate  # noqa: E402

__all__ = ["KINDS", "generate"]
