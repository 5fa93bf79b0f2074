"""The vendor's story through the CLI: list and show bundled robots, draft a spec from a robot
description, validate it; and the CLI stays light enough to answer at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapt.embodiment import bundled_embodiments, load_embodiment
from adapt.resources import resolve_package_path

UR5E_XML = "package://robosuite/models/assets/robots/ur5e/robot.xml"


def test_list_names_every_bundled_spec(invoke):
    result = invoke("embodiment", "list")
    assert result.exit_code == 0, result.output
    for name in bundled_embodiments():
        assert name in result.output


def test_show_prints_joints_limits_cameras_and_action(invoke):
    result = invoke("embodiment", "show", "panda")
    assert result.exit_code == 0, result.output
    for text in ("joint4", "-3.0718", "2.175", "agentview", "wrist", "ee_delta", "chunks of 16"):
        assert text in result.output


def test_show_video_only(invoke):
    result = invoke("embodiment", "show", "human")
    assert result.exit_code == 0 and "video only" in result.output


def test_validate_all_bundled_specs(invoke):
    result = invoke("embodiment", "validate", *bundled_embodiments().values())
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") == len(bundled_embodiments())


def test_new_from_robosuite_ur5e_file_writes_valid_spec(invoke, tmp_path):
    out = tmp_path / "specs" / "my_ur5e.yaml"
    xml = resolve_package_path(UR5E_XML)
    result = invoke("embodiment", "new", "--from", xml, "--name", "my_ur5e", "--out", out)
    assert result.exit_code == 0, result.output
    assert invoke("embodiment", "validate", out).exit_code == 0
    spec = load_embodiment(out)
    assert spec.joint_names == load_embodiment("ur5e").joint_names
    assert spec.end_effectors == ["right_hand"] and spec.action_dim == 7
    assert not yaml.safe_load(out.read_text())["description"].startswith("/")  # relative to the spec file
    assert "# Embodiment spec drafted" in out.read_text()


def test_new_takes_urdf_velocity_limits(invoke, two_link_urdf, tmp_path):
    out = tmp_path / "arm.yaml"
    assert invoke("embodiment", "new", "--from", two_link_urdf, "--name", "arm", "--out", out).exit_code == 0
    spec = load_embodiment(out)
    assert [j.velocity for j in spec.joints] == [1.5, 3.0]
    assert [j.position for j in spec.joints] == [(-2.0, 2.0), (-2.5, 2.5)]


def test_new_refuses_to_overwrite_and_writes_nothing_on_bad_input(invoke, tmp_path):
    out = tmp_path / "x.yaml"
    out.write_text("keep me")
    result = invoke("embodiment", "new", "--from", resolve_package_path(UR5E_XML), "--name", "x", "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert out.read_text() == "keep me"

    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody>")
    target = tmp_path / "y.yaml"
    result = invoke("embodiment", "new", "--from", broken, "--name", "y", "--out", target)
    assert result.exit_code == 2 and "could not load" in result.stderr
    assert not target.exists() and not list(tmp_path.glob(".y.yaml*"))

    result = invoke(
        "embodiment", "new", "--from", resolve_package_path(UR5E_XML), "--name", "Bad Name", "--out", target
    )
    assert result.exit_code == 2 and "name" in result.stderr and not target.exists()


def test_cli_imports_no_heavy_packages():
    """`adapt --help` and `adapt embodiment ...` must not pay for torch/lightning/peft/timm imports."""
    code = (
        "import sys; from typer.testing import CliRunner; from adapt.cli import app; "
        "r = CliRunner().invoke(app, ['embodiment', 'show', 'panda']); assert r.exit_code == 0, r.output; "
        "heavy = {'torch', 'lightning', 'peft', 'timm', 'diffusers', 'robosuite'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_end_in_one_line_never_a_traceback(invoke, tmp_path, monkeypatch):
    """Catches an operating-system error or a bug escaping as a Python traceback: an --out under a regular
    file is named with exit 2; an unexpected error prints one line and writes its traceback to a report
    file (exit 1); `--debug` lets it propagate."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = invoke("embodiment", "new", "--from", UR5E_XML, "--name", "arm", "--out", blocker / "arm.yaml")
    assert result.exit_code == 2 and str(blocker) in result.output and "Traceback" not in result.output
    assert not (tmp_path / "arm.yaml").exists()

    import adapt.embodiment.draft

    def broken(*args, **kwargs):
        raise RuntimeError("boom inside drafting")

    monkeypatch.setattr(adapt.embodiment.draft, "draft_spec", broken)
    result = invoke("embodiment", "new", "--from", UR5E_XML, "--name", "arm", "--out", tmp_path / "arm.yaml")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "unexpected RuntimeError: boom inside drafting" in result.output
    report = Path(result.output.split("full report: ")[1].split(";")[0])
    assert "raise RuntimeError" in report.read_text()
    result = invoke("--debug", "embodiment", "new", "--from", UR5E_XML, "--name", "arm", "--out", tmp_path / "arm.yaml")
    assert isinstance(result.exception, RuntimeError)


def _urdf(name: str, joints: list[tuple[str, str, str, str]]) -> str:
    """A URDF from (joint, type, parent link, child link) rows; `mimic:` before a name adds a <mimic>."""
    links = {"base_link"} | {c for *_, c in joints} | {p for _, _, p, _ in joints}
    inertial = (
        '<inertial><mass value="0.5"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>'
    )
    body = [f'<link name="{link}">{inertial}</link>' for link in sorted(links)]
    for joint, kind, parent, child in joints:
        mimic = joint.startswith("mimic:")
        joint = joint.removeprefix("mimic:")
        limit = '<limit lower="-1.5" upper="1.5" velocity="2.0" effort="10"/>' if kind != "fixed" else ""
        body.append(
            f'<joint name="{joint}" type="{kind}"><parent link="{parent}"/><child link="{child}"/>'
            f'<origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>{limit}'
            + ('<mimic joint="finger_joint1"/>' if mimic else "")
            + "</joint>"
        )
    return f'<?xml version="1.0"?><robot name="{name}">{"".join(body)}</robot>'


def _chain(prefix: str, count: int, parent: str) -> list[tuple[str, str, str, str]]:
    rows, link = [], parent
    for i in range(1, count + 1):
        rows.append((f"{prefix}joint{i}", "revolute", link, f"{prefix}link{i}"))
        link = f"{prefix}link{i}"
    return rows


VENDOR_URDFS = {
    "7-joint arm with fingers": (
        _chain("", 7, "base_link")
        + [
            ("hand_joint", "fixed", "link7", "hand"),
            ("finger_joint1", "prismatic", "hand", "leftfinger"),
            ("mimic:finger_joint2", "prismatic", "hand", "rightfinger"),
            ("tip_joint", "fixed", "leftfinger", "left_fingertip"),
        ],
        [
            (
                ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "joint7"],
                "hand",
                ["finger_joint1", "finger_joint2"],
            )
        ],
        {},
    ),
    "small arm with a jaw": (
        _chain("", 5, "base_link")
        + [("gripper", "revolute", "link5", "moving_jaw"), ("tcp", "fixed", "link5", "tcp_link")],
        [(["joint1", "joint2", "joint3", "joint4", "joint5"], "tcp_link", ["gripper"])],
        {},
    ),
    "bimanual with a torso and a head": (
        [("torso_joint", "revolute", "base_link", "torso"), ("head_pan", "revolute", "torso", "head")]
        + [("display_joint", "fixed", "head", "display")]
        + _chain("left_", 7, "torso")
        + [
            ("left_hand_joint", "fixed", "left_link7", "left_hand"),
            ("left_finger", "prismatic", "left_hand", "left_tip"),
        ]
        + _chain("right_", 7, "torso")
        + [
            ("right_hand_joint", "fixed", "right_link7", "right_hand"),
            ("right_finger", "prismatic", "right_hand", "right_tip"),
        ],
        [
            ([f"left_joint{i}" for i in range(1, 8)], "left_hand", ["left_finger"]),
            ([f"right_joint{i}" for i in range(1, 8)], "right_hand", ["right_finger"]),
        ],
        {"torso_joint": "shared by several chains", "head_pan": "on a short chain"},
    ),
}


@pytest.mark.parametrize("case", VENDOR_URDFS)
def test_new_tells_arms_grippers_and_other_joints_apart(case, invoke, tmp_path):
    """Finger, jaw and mimic joints go to the gripper, never the arm; a finger tip or a display is never an
    end effector; a head and a shared torso are listed as left out; the header says how each was read."""
    rows, arms, left_out = VENDOR_URDFS[case]
    urdf = tmp_path / "robot.urdf"
    urdf.write_text(_urdf("robot", rows))
    out = tmp_path / "robot.yaml"
    result = invoke("embodiment", "new", "--from", urdf, "--name", "robot", "--out", out)
    assert result.exit_code == 0, result.output
    spec = load_embodiment(out)
    assert spec.joint_names == [j for joints, _, _ in arms for j in joints]
    assert spec.end_effectors == [end for _, end, _ in arms]
    assert spec.gripper.dim == len(arms) and spec.state_dim == len(spec.joint_names) + len(arms)
    header = " ".join(line.strip("# ") for line in out.read_text().splitlines() if line.startswith("#"))
    for i, (joints, end, gripper) in enumerate(arms, 1):
        assert f"arm {i}: {', '.join(joints)} -> end effector {end}; gripper: {', '.join(gripper)}" in header
    for joint, why in left_out.items():
        assert f"left out: {joint} ({why}" in header


def test_new_drafts_a_description_with_bad_inertias_and_names_its_continuous_joints(invoke, tmp_path):
    """Tiago's and PR2's URDFs stopped the draft at "inertia must have positive eigenvalues" although only their
    kinematics is needed; a continuous joint silently became +-2 pi. The draft loads and its header says so."""
    from conftest import TWO_LINK_URDF

    urdf = TWO_LINK_URDF.replace('<inertia ixx="0.01"', '<inertia ixx="-0.01"', 2)  # base_link's and link1's
    urdf = urdf.replace('name="elbow" type="revolute"', 'name="elbow" type="continuous"')
    urdf = urdf.replace('<limit lower="-2.5" upper="2.5" velocity="3.0"', '<limit velocity="3.0"')  # as URDFs write it
    (tmp_path / "odd.urdf").write_text(urdf)
    out = tmp_path / "odd.yaml"
    result = invoke("embodiment", "new", "--from", tmp_path / "odd.urdf", "--name", "odd", "--out", out)
    assert result.exit_code == 0, result.output
    assert "# - joints elbow: continuous (no limits) in the file" in " ".join(out.read_text().split())
    assert [j.position for j in load_embodiment(out).joints] == [(-2.0, 2.0), (-6.2832, 6.2832)]
    assert invoke("embodiment", "validate", out).exit_code == 0
