"""Specs: every bundled one is valid and agrees with its robot description; every kind of bad input
gets one error naming the file and the field, with exit status 2."""

from __future__ import annotations

import copy

import pytest

from adapt.embodiment import bundled_embodiments, load_embodiment
from adapt.embodiment.kinematics import description_joints, load_description
from adapt.errors import AdaptError, InvalidFileError

BUNDLED = sorted(bundled_embodiments())


def test_bundled_set_covers_the_robots_we_promise():
    assert {"panda", "sawyer", "iiwa", "ur5e", "kinova3", "jaco", "baxter", "human"} <= set(BUNDLED)


@pytest.mark.parametrize("name", [n for n in BUNDLED if n.endswith("_osc")])
def test_end_effector_variant_is_its_robot_in_the_pandas_action_space(name):
    """`X_osc` is X driven by end-effector deltas: same joints, limits, cameras and state, the Panda's actions
    (a two-armed robot: the Panda's per arm, and a wrist camera per arm). Catches a copy that drifted from its
    robot's spec (a limit fixed in one file only) or kept joint actions."""
    variant, robot = load_embodiment(name), load_embodiment(name.removesuffix("_osc"))
    arms = len(variant.end_effectors)
    panda = load_embodiment("panda").action
    assert variant.action == panda.model_copy(update={"dim": arms * panda.dim})
    assert variant.cameras[: len(robot.cameras)] == robot.cameras
    assert [c.role for c in variant.cameras].count("wrist") == arms
    same = {"name", "action", "cameras"}
    assert variant.model_dump(exclude=same) == robot.model_dump(exclude=same)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_spec_is_valid_and_limits_agree_with_description(name):
    spec = load_embodiment(name)
    if spec.video_only:
        assert spec.state_dim == 0 and spec.action_dim == 0 and spec.cameras
        return
    assert spec.action_dim == spec.expected_action_dim()
    joints = description_joints(load_description(spec.description_path(), spec.mounts))
    for joint in spec.joints:
        described = joints[joint.name]
        if described.limited:
            assert joint.position == pytest.approx(described.range, abs=1e-6), joint.name


def test_a_robot_of_mounted_copies_is_each_copy_the_arm_it_copies():
    """`bimanual_panda` is two Pandas: each copy's joints, limits and end-effector pose are the single Panda's, and
    moving one copy leaves the other's hand where it was. Catches copies sharing names (one arm described
    twice), a copy left unprefixed, or the second copy's joints driving the first's frame."""
    import numpy as np

    from adapt.embodiment.kinematics import Kinematics

    pair, panda = load_embodiment("bimanual_panda"), load_embodiment("panda")
    assert [j.model_copy(update={"name": j.name.removeprefix("left_")}) for j in pair.joints[7:]] == panda.joints
    assert pair.action_dim == 2 * 6 + 2 and pair.gripper.dim == 2
    q = np.linspace(-0.5, 0.5, 7)
    one, two = Kinematics(panda), Kinematics(pair)
    still = two.fk(np.r_[q, q], "left_right_hand")
    for i, frame in enumerate(pair.end_effectors):
        moved = np.r_[q, q] + np.r_[np.full(7, 0.3 * (i == 0)), np.full(7, 0.3 * (i == 1))]
        np.testing.assert_allclose(two.fk(moved, frame)[0], one.fk(q + 0.3)[0], atol=1e-9)
    np.testing.assert_allclose(two.fk(np.r_[q + 0.3, q], "left_right_hand")[0], still[0], atol=1e-12)


def test_baxter_is_bimanual():
    spec = load_embodiment("baxter")
    assert len(spec.joints) == 14 and spec.end_effectors == ["right_hand", "left_hand"]
    assert spec.gripper.dim == 2 and spec.action_dim == 16


def _broken(raw: dict, edit) -> dict:
    raw = copy.deepcopy(raw)
    edit(raw)
    return raw


def _set(path, value):
    def edit(raw):
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


BAD_INPUTS = {
    "unknown field": (_set(["cameras", 0, "fpss"], 20), "cameras[0].fpss", "Did you mean 'fps'?"),
    "missing field": (lambda r: r["cameras"][0].pop("height"), "cameras[0].height", "missing"),
    "missing description file": (_set(["description"], "nowhere/robot.xml"), "description", "not found"),
    "description does not parse": (_set(["description"], "garbage.xml"), "description", "could not load"),
    "joint absent from description": (_set(["joints", 2, "name"], "joint33"), "joints[2].name", "Did you mean"),
    "limits wider than description": (_set(["joints", 0, "position"], [-3.5, 2.0]), "joints[0].position", "wider"),
    "duplicate camera": (_set(["cameras", 1, "name"], "agentview"), "cameras[1].name", "duplicate"),
    "duplicate joint": (_set(["joints", 1, "name"], "joint1"), "joints[1].name", "duplicate"),
    "zero fps": (_set(["cameras", 0, "fps"], 0), "cameras[0].fps", "greater than 0"),
    "negative control rate": (_set(["action", "control_hz"], -5), "action.control_hz", "greater than 0"),
    "action dim inconsistent": (_set(["action", "dim"], 9), "action.dim", "set it to 7"),
    "unknown action kind": (_set(["action", "kind"], "torque"), "action.kind", "joint_position"),
    "inverted limits": (_set(["joints", 0, "position"], [1.0, -1.0]), "joints[0].position", "below"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_spec_gets_one_clear_error(case, panda_raw, write_spec, invoke, tmp_path):
    edit, field, words = BAD_INPUTS[case]
    (tmp_path / "garbage.xml").write_text("<mujoco><worldbody><body name='a'></worldbody></mujoco>")
    raw = _broken(panda_raw, edit)
    path = write_spec(raw, "broken")
    with pytest.raises(InvalidFileError) as caught:
        load_embodiment(path)
    message = str(caught.value)
    assert str(path) in message and field in message and words in message, message

    result = invoke("embodiment", "validate", path)
    assert result.exit_code == 2
    assert field in result.stderr and "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (_set(["mounts"], ["right_"]), "mounts", "give one per end effector (2)"),
        (_set(["joints", 8, "name"], "joint2"), "joints[8]", "'joint2' carries no mount prefix"),
        (_set(["mounts"], ["right_", "right_"]), "mounts[1]", "duplicate"),
    ],
)
def test_bad_mounts_get_one_clear_error(edit, field, words, write_spec):
    """A robot of copies with a copy too few, a joint of no copy, or one copy named twice: the file and the field
    in the error, never MuJoCo's own message about a body it could not attach."""
    import yaml

    raw = _broken(yaml.safe_load(bundled_embodiments()["bimanual_panda"].read_text()), edit)
    with pytest.raises(InvalidFileError) as caught:
        load_embodiment(write_spec(raw, "pair"))
    assert field in {p.field for p in caught.value.problems} and words in str(caught.value), str(caught.value)


def test_all_problems_reported_in_one_pass(panda_raw, write_spec):
    raw = _broken(panda_raw, _set(["cameras", 0, "fps"], 0))
    raw["cameras"][1]["width"] = -1
    raw["colour"] = "red"
    with pytest.raises(InvalidFileError) as caught:
        load_embodiment(write_spec(raw))
    assert {p.field for p in caught.value.problems} == {"cameras[0].fps", "cameras[1].width", "colour"}


def test_video_only_spec_rejects_robot_fields(write_spec):
    raw = {
        "name": "cam",
        "video_only": True,
        "cameras": [{"name": "c", "role": "primary", "height": 8, "width": 8, "fps": 10}],
        "action": {"kind": "joint_position", "dim": 1, "control_hz": 10, "chunk": 4},
    }
    with pytest.raises(InvalidFileError, match="action: a video_only spec has no robot"):
        load_embodiment(write_spec(raw))


def test_robot_spec_requires_robot_fields(write_spec):
    raw = {"name": "arm", "cameras": [{"name": "c", "role": "primary", "height": 8, "width": 8, "fps": 10}]}
    with pytest.raises(InvalidFileError) as caught:
        load_embodiment(write_spec(raw))
    assert {"description", "end_effector", "action", "joints", "proprio"} <= {p.field for p in caught.value.problems}


def test_unknown_bundled_name_suggests_close_match():
    with pytest.raises(AdaptError, match="Did you mean 'panda'"):
        load_embodiment("pand")
