"""Import MuJoCo so that it can live beside torch in one process, whatever MUJOCO_GL says.

Root cause of a crash this prevents: with MUJOCO_GL=osmesa, importing mujoco loads libOSMesa, which
links the system's libLLVM (Mesa's llvmpipe); with MUJOCO_GL=egl the same happens at the first
render, when EGL loads Mesa's driver. triton (torch's compiler backend, imported by torchvision and
so by timm) ships libtriton.so with its own LLVM built in. Loaded second, libtriton's static
initializers bind to the already-loaded libLLVM's symbols (ELF symbol interposition) and mix two
LLVM versions' internals: a segmentation fault inside `import triton`. Loaded first, triton's LLVM
is resolved within itself and Mesa's loads beside it without harm. So every MuJoCo import in adapt
goes through here and, when a Mesa backend is in use, imports triton first.
"""

from __future__ import annotations

import importlib.util
import os

MESA_BACKENDS = ("osmesa", "egl")


def import_mujoco(default_backend: str | None = None):
    """The `mujoco` module, imported after triton when MUJOCO_GL names a Mesa backend; `default_backend`
    sets MUJOCO_GL when the user has not (simulation renders offscreen on a CPU with osmesa)."""
    if default_backend is not None:
        os.environ.setdefault("MUJOCO_GL", default_backend)
    if os.environ.get("MUJOCO_GL", "").lower() in MESA_BACKENDS and importlib.util.find_spec("triton"):
        import triton  # noqa: F401

    import mujoco

    return mujoco
