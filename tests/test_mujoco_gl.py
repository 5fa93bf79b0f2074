"""MuJoCo and torch in one process, with MUJOCO_GL set to each Mesa backend, in whichever order a user's
program imports them (each case in a fresh interpreter: the crash this guards against is a segfault).

Catches an entry point that imports MuJoCo without `adapt.mujoco_gl` (triton loaded after Mesa's LLVM
kills the process: see that module's docstring)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

MUJOCO_FIRST = """
import numpy as np
from adapt.embodiment import load_embodiment
load_embodiment("panda")  # checks the spec against its MJCF: MuJoCo (and with osmesa, Mesa) loads first
import adapt.sim  # the simulator's import as well
import mujoco  # a render: EGL loads Mesa (and its LLVM) only now
scene = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
mujoco.Renderer(scene, 16, 16).render()
from adapt.model import build_model, model_config
from adapt.policy import InferenceConfig, Policy
from adapt.predictor import ChunkPredictor
spec = load_embodiment("panda")
policy = Policy(ChunkPredictor(build_model(model_config("tiny"), [spec]), "panda", InferenceConfig(steps=1)))
obs = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
chunk = policy.act(obs | {"state": np.zeros(spec.state_dim, np.float32)})
print("chunk", chunk.shape)
"""


@pytest.mark.parametrize("backend", ["osmesa", "egl"])
def test_mujoco_then_torch_models_with_a_mesa_backend_do_not_crash(backend):
    # a fresh user's environment: no rendering settings but the backend (MuJoCo sets PYOPENGL_PLATFORM)
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = backend
    done = subprocess.run([sys.executable, "-c", MUJOCO_FIRST], env=env, capture_output=True, text=True, timeout=300)
    if backend == "egl" and done.returncode > 0:  # an error exit, not a crash: this machine cannot do EGL
        pytest.skip(f"no EGL rendering here: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "chunk (16, 7)" in done.stdout


WITHOUT_OSMESA = """
import ctypes.util, os
real = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "OSMesa" else real(name)  # a machine without libosmesa6
os.environ["MUJOCO_GL"] = "osmesa"
from adapt.embodiment import load_embodiment
print("spec", load_embodiment("panda").name)  # checked against its MJCF through MuJoCo: no rendering needed
from adapt.errors import AdaptError
try:
    import adapt.sim
except AdaptError as error:
    print("refused:", error)
"""


def test_a_missing_mesa_library_is_named_with_its_install_command_and_only_where_rendering_needs_it():
    """Without libOSMesa, every command touching MuJoCo ended in "unexpected AttributeError: 'NoneType' object has
    no attribute 'glGetError'"; spec checks render nothing and must work, simulation must say what to install."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_OSMESA], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "spec panda" in done.stdout
    assert "refused: MUJOCO_GL=osmesa renders with libOSMesa, which is not installed" in done.stdout
    assert "apt-get install -y --no-install-recommends libosmesa6" in done.stdout
