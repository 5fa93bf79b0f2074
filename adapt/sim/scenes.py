"""The objects of the robosuite scenes we script, and how an episode re-dresses them.

robosuite places its cubes within a few centimetres of the table centre and always paints them the
same; pretraining and play data need more variety than that, so `randomize_things` scatters them over
the reachable part of the table and gives each a distinct flat color (named in the task text).
Demos keep robosuite's own layout (`default_things`), the distribution its benchmarks evaluate on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCENES = ("Lift", "Stack", "PickPlaceCan")
"""robosuite tasks with single-arm scripts here; PickPlaceCan has bins instead of an open table."""
TWO_ARM_SCENES = ("TwoArmLift", "TwoArmHandover")
"""robosuite tasks for a two-armed robot: one hand per handle of TwoArmLift's pot; TwoArmHandover's hammer picked
up by the first hand and handed to the second."""
COLORS = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.92, 0.8, 0.12),
    "orange": (0.95, 0.5, 0.1),
    "purple": (0.55, 0.2, 0.7),
}
SCATTER = ((-0.12, 0.12), (-0.2, 0.2))
"""x and y ranges (m) around the table centre where randomized objects land: reachable by every arm."""
GAP = 0.05
"""Minimum free space (m) between scattered objects, so a gripper fits between them."""


@dataclass(frozen=True)
class Thing:
    """An object scripts act on, with the sizes they need to approach, grasp and set it down."""

    name: str
    """What task text calls it ("red cube", "can")."""
    body: int
    """MuJoCo body id (its position is the object's centre)."""
    bottom: float
    """Distance (m) from the centre down to the bottom: the centre height above a surface it rests on."""
    top: float
    """Distance (m) from the centre up to the top."""
    radius: float
    """Horizontal half-extent (m)."""
    goal: tuple[float, float, float] | None = None
    """Where the scene's task wants it (the can's spot in the target bin), else None."""


def default_things(env, scene: str) -> list[Thing]:
    """The scene's objects as robosuite placed and painted them."""
    if scene == "Lift":
        return [_thing(env, env.cube, "red cube")]
    if scene == "Stack":
        return [_thing(env, env.cubeA, "red cube"), _thing(env, env.cubeB, "green cube")]
    if scene == "TwoArmLift":
        return [_thing(env, env.pot, "pot")]
    if scene == "TwoArmHandover":
        return [_thing(env, env.hammer, "hammer")]
    can = env.objects[env.object_id]
    return [_thing(env, can, "can", goal=tuple(env.target_bin_placements[env.object_id]))]


def randomize_things(env, scene: str, rng: np.random.Generator) -> list[Thing]:
    """Recolor and scatter the cubes of Lift and Stack (call after `env.reset()`); the can, the pot and the hammer
    keep robosuite's placement (robosuite turns the pot and the hammer at random)."""
    if scene in ("PickPlaceCan", *TWO_ARM_SCENES):
        return default_things(env, scene)
    objects = [env.cube] if scene == "Lift" else [env.cubeA, env.cubeB]
    colors = rng.choice(list(COLORS), size=len(objects), replace=False)
    model, data = env.sim.model, env.sim.data
    placed: list[tuple[np.ndarray, float]] = []
    things = []
    for obj, color in zip(objects, colors, strict=True):
        for name in obj.visual_geoms:
            geom = model.geom_name2id(name)
            model.geom_matid[geom] = -1  # the wood texture would tint every color
            model.geom_rgba[geom] = (*COLORS[color], 1.0)
        xy = _free_spot(rng, obj.horizontal_radius, placed)
        placed.append((xy, obj.horizontal_radius))
        centre = np.r_[env.table_offset[:2] + xy, env.table_offset[2] - obj.bottom_offset[2] + 0.002]
        yaw = rng.uniform(-np.pi, np.pi)
        data.set_joint_qpos(obj.joints[0], np.r_[centre, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        things.append(_thing(env, obj, f"{color} cube"))
    env.sim.forward()
    return things


def handles(env) -> list[tuple[np.ndarray, np.ndarray]]:
    """TwoArmLift's pot handles, one per hand, the one on the robot's right (lower world y) first: the world
    position of each grip bar's centre and the bar's horizontal direction. robosuite turns the pot by up to 60
    degrees, so its handle0 is sometimes on the left: a right hand sent there reaches across the other arm."""
    sim, out = env.sim, []
    for site, geoms in ((env.handle0_site_id, env.pot.handle0_geoms), (env.handle1_site_id, env.pot.handle1_geoms)):
        bar = sim.data.geom_xmat[sim.model.geom_name2id(geoms[0])].reshape(3, 3)[:, 0] * [1.0, 1.0, 0.0]
        out.append((sim.data.site_xpos[site].copy(), bar / np.linalg.norm(bar)))
    return sorted(out, key=lambda handle: handle[0][1])


LEVEL = np.cos(np.radians(30))
"""The least cosine between TwoArmLift's pot axis and the vertical for a lift: robosuite rewards a lift only within
30 degrees of level, while its success check (the pot's bottom 10 cm above the table) also passes for a pot that
one hand has tipped up by its handle."""


def succeeded(env) -> bool:
    """Whether the robosuite task is done as it is meant: robosuite's success check, and for TwoArmLift the pot
    within 30 degrees of level as well (its reward's condition: a pot tipped up by one hand is not lifted)."""
    if not env._check_success():
        return False
    if type(env).__name__ == "TwoArmLift":
        from robosuite.utils.transform_utils import quat2mat

        return bool(quat2mat(env._pot_quat)[2, 2] >= LEVEL)
    return True


def hammer_handle(env) -> tuple[np.ndarray, np.ndarray, float]:
    """TwoArmHandover's hammer handle: the world position of its centre, its horizontal direction from the butt
    towards the head, and its length (m)."""
    data, model = env.sim.data, env.sim.model
    centre = data.geom_xpos[env.hammer_handle_geom_id].copy()
    towards = (data.geom_xpos[model.geom_name2id(env.hammer.head_geoms[0])] - centre) * [1.0, 1.0, 0.0]
    return centre, towards / np.linalg.norm(towards), float(env.hammer.handle_length)


def table_centre(env) -> np.ndarray:
    """World xy of the middle of the workspace: the table's centre, or midway between PickPlace's bins."""
    if hasattr(env, "table_offset"):
        return np.array(env.table_offset[:2], dtype=float)
    return (env.bin1_pos[:2] + env.bin2_pos[:2]) / 2.0


def _free_spot(rng: np.random.Generator, radius: float, placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A table spot (relative to its centre) at least GAP away from the objects already placed."""
    while True:
        xy = np.array([rng.uniform(*SCATTER[0]), rng.uniform(*SCATTER[1])])
        if all(np.linalg.norm(xy - other) > radius + r + GAP for other, r in placed):
            return xy


def _thing(env, obj, name: str, goal: tuple[float, float, float] | None = None) -> Thing:
    body = env.sim.model.body_name2id(obj.root_body)
    return Thing(name, body, -float(obj.bottom_offset[2]), float(obj.top_offset[2]), obj.horizontal_radius, goal)
