"""Import MuJoCo so that it can live beside torch in one process, whatever MUJOCO_GL says.

Root cause of a crash this prevents: with MUJOCO_GL=osmesa, importing mujoco loads libOSMesa, which
links the system's libLLVM (Mesa's llvmpipe); with MUJOCO_GL=egl the same happens at the first
render, when EGL loads Mesa's driver. triton (torch's compiler backend, imported by torchvision and
so by timm) ships libtriton.so with its own LLVM built in. Loaded second, libtriton's static
initializers bind to the already-loaded libLLVM's symbols (ELF symbol interposition) and mix two
LLVM versions' internals: a segmentation fault inside `import triton`. Loaded first, triton's LLVM
is resolved within itself and Mesa's loads beside it without harm. So every MuJoCo import in adapt
goes through here and, when a Mesa backend is in use, imports triton first.

A Mesa backend whose library is not installed (a machine that skipped the README's `apt-get` line) ended in
"AttributeError: 'NoneType' object has no attribute 'glGetError'" deep in PyOpenGL: simulation now names the
library and the command that installs it, and what renders nothing (kinematics) imports MuJoCo without it.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os

from adapt.errors import AdaptError

MESA_BACKENDS = {"osmesa": ("OSMesa", "libosmesa6"), "egl": ("EGL", "libegl1 libgl1-mesa-dri")}
"""MUJOCO_GL value -> (the library it loads, the Debian packages that install it)."""


def import_mujoco(default_backend: str | None = None, render: bool = True):
    """The `mujoco` module, imported after triton when MUJOCO_GL names a Mesa backend; `default_backend`
    sets MUJOCO_GL when the user has not (simulation renders offscreen on a CPU with osmesa). Without the
    backend's library, `render` code gets an `AdaptError` naming it; other code gets MuJoCo without rendering."""
    if default_backend is not None:
        os.environ.setdefault("MUJOCO_GL", default_backend)
    backend = os.environ.get("MUJOCO_GL", "").lower()
    if backend in MESA_BACKENDS:
        library, packages = MESA_BACKENDS[backend]
        if ctypes.util.find_library(library) is None:
            if render:
                raise AdaptError(
                    f"MUJOCO_GL={backend} renders with lib{library}, which is not installed: run"
                    f" `apt-get install -y --no-install-recommends {packages}` (Debian, Ubuntu), or set MUJOCO_GL to"
                    f" a backend this machine has ({', '.join(b for b in MESA_BACKENDS if b != backend)}, glfw)"
                )
            return _without_rendering()
        if importlib.util.find_spec("triton"):
            import triton  # noqa: F401

    import mujoco

    return mujoco


def _without_rendering():
    """MuJoCo imported with its GL context disabled (MUJOCO_GL is restored for whatever renders later)."""
    saved = os.environ["MUJOCO_GL"]
    os.environ["MUJOCO_GL"] = "disable"
    try:
        import mujoco
    finally:
        os.environ["MUJOCO_GL"] = saved
    return mujoco
