"""Forward kinematics: our spec-ordered FK against MuJoCo's own pose in a full robosuite scene, and
against a closed-form planar arm loaded from URDF."""

from __future__ import annotations

import numpy as np
import pytest

from adapt.embodiment import load_embodiment
from adapt.embodiment.draft import draft_spec
from adapt.embodiment.kinematics import Kinematics


def _pose_matrix(pos, quat):
    import mujoco

    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, quat)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot.reshape(3, 3), pos
    return out


@pytest.mark.parametrize(("name", "robot"), [("panda", "Panda"), ("ur5e", "UR5e"), ("kinova3", "Kinova3")])
def test_fk_matches_mujoco_pose_in_robosuite_scene(name, robot):
    """robosuite builds the arm into a scene (base mount, gripper, table, prefixed names); MuJoCo's pose
    of the hand body there, expressed in the robot's base frame, must equal our spec-based FK."""
    suite = pytest.importorskip("robosuite")
    env = suite.make("Lift", robots=robot, has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False)
    try:
        env.reset()
        spec = load_embodiment(name)
        kinematics = Kinematics(spec)
        sim, prefix = env.sim, env.robots[0].robot_model.naming_prefix
        qpos_index = [sim.model.get_joint_qpos_addr(prefix + j) for j in spec.joint_names]
        rng = np.random.default_rng(0)
        limits = np.array([j.position for j in spec.joints])
        for _ in range(5):
            q = rng.uniform(np.maximum(limits[:, 0], -3.0), np.minimum(limits[:, 1], 3.0))
            sim.data.qpos[qpos_index] = q
            sim.forward()
            base = sim.model.body_name2id(prefix + "base")
            hand = sim.model.body_name2id(prefix + spec.end_effectors[0])
            world_base = _pose_matrix(sim.data.xpos[base], sim.data.xquat[base])
            world_hand = _pose_matrix(sim.data.xpos[hand], sim.data.xquat[hand])
            expected = np.linalg.inv(world_base) @ world_hand
            got = _pose_matrix(*kinematics.fk(q))
            np.testing.assert_allclose(got, expected, atol=1e-9)
    finally:
        env.close()


def test_fk_of_urdf_planar_arm_matches_closed_form(two_link_urdf, tmp_path):
    spec, _ = draft_spec(str(two_link_urdf), "two_link", tmp_path / "two_link.yaml")
    assert spec.end_effectors == ["tool0"]  # a frame on a fixed joint survives loading
    kinematics = Kinematics(spec)
    for q1, q2 in np.random.default_rng(1).uniform(-2.0, 2.0, size=(6, 2)):
        pos, quat = kinematics.fk(np.array([q1, q2]))
        x = 0.5 * np.cos(q1) + 0.4 * np.cos(q1 + q2)
        y = 0.5 * np.sin(q1) + 0.4 * np.sin(q1 + q2)
        np.testing.assert_allclose(pos, [x, y, 0.1], atol=1e-9)
        yaw = q1 + q2
        np.testing.assert_allclose(abs(quat @ [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]), 1.0, atol=1e-9)


def test_fk_rejects_wrong_joint_count():
    kinematics = Kinematics(load_embodiment("ur5e"))
    with pytest.raises(ValueError, match="expects 6 joint positions"):
        kinematics.fk(np.zeros(7))


def test_fk_of_each_arm_of_a_bimanual_robot_differs():
    spec = load_embodiment("baxter")
    kinematics = Kinematics(spec)
    right, _ = kinematics.fk(np.zeros(14), "right_hand")
    left, _ = kinematics.fk(np.zeros(14), "left_hand")
    assert right[1] < 0 < left[1]  # right arm on -y, left arm on +y
