"""The vendor's story through the CLI: list and show bundled robots, draft a spec from a robot
description, validate it; and the CLI stays light enough to answer at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
