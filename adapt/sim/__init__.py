"""Simulated data (the `sim` extra): robosuite scenes driven by scripted controllers.

`generate` writes play data for a target robot, multitask pretraining data and demos of one task, in
the same LeRobot format as any other dataset. Two things must happen before robosuite is imported,
hence here: MuJoCo renders offscreen on the CPU (OSMesa) unless MUJOCO_GL says otherwise, imported
safely beside torch (`adapt.mujoco_gl`); and robosuite's console chatter (warnings about its optional
setup on import, a line per scene made) is cut down to its errors.
"""

import logging

from adapt.mujoco_gl import import_mujoco

import_mujoco(default_backend="osmesa")
logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)

from adapt.sim.generate import KINDS, generate  # noqa: E402

__all__ = ["KINDS", "generate"]
