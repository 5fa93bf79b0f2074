"""Shared fixtures: a CLI runner and helpers that write specs (good and broken) into tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapt.cli import app
from adapt.embodiment import bundled_embodiments

TWO_LINK_URDF = """<?xml version="1.0"?>
<robot name="two_link">
  <link name="base_link"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="link1">
    <inertial><origin xyz="0.25 0 0"/><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>
    <visual><geometry><mesh filename="package://two_link_description/meshes/link1.stl"/></geometry></visual>
  </link>
  <link name="link2"><inertial><origin xyz="0.2 0 0"/><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tool0"/>
  <joint name="shoulder" type="revolute">
    <parent link="base_link"/><child link="link1"/><origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-2.0" upper="2.0" velocity="1.5" effort="10"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="link1"/><child link="link2"/><origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.5" upper="2.5" velocity="3.0" effort="10"/>
  </joint>
  <joint name="tool_fixed" type="fixed"><parent link="link2"/><child link="tool0"/><origin xyz="0.4 0 0"/></joint>
</robot>
"""
"""A planar 2-link arm (lengths 0.5 m and 0.4 m, 0.1 m above the base) with an analytic FK; its mesh
points into a ROS package we do not have, as vendors' URDFs often do."""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Run `adapt ARGS...` in-process; returns the click Result (exit_code, output, stderr)."""

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture
def panda_raw() -> dict:
    """The bundled panda spec as plain data (its description is a package:// reference, valid anywhere)."""
    return yaml.safe_load(bundled_embodiments()["panda"].read_text())


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec dict to tmp_path/NAME.yaml and return the path."""

    def write(raw: dict, name: str = "spec") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture
def two_link_urdf(tmp_path) -> Path:
    path = tmp_path / "two_link.urdf"
    path.write_text(TWO_LINK_URDF)
    return path
