"""Where bundled files live, and how `package://` references in specs resolve.

Bundled `embodiments/` and `recipes/` sit at the top of the repository. A wheel carries them as
`adapt/bundled/<kind>/` (see pyproject.toml); a source checkout or editable install reads them in place.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from adapt.errors import AdaptError

PACKAGE_SCHEME = "package://"
_PACKAGE_ROOT = Path(__file__).resolve().parent


def bundled_dir(kind: str) -> Path:
    """The folder of bundled `kind` files (embodiments, recipes or models), installed or in a checkout."""
    for candidate in (_PACKAGE_ROOT / "bundled" / kind, _PACKAGE_ROOT.parent / kind):
        if candidate.is_dir():
            return candidate
    raise AdaptError(f"bundled folder '{kind}' not found next to the adapt package; reinstall adapt")


def bundled_files(kind: str) -> dict[str, Path]:
    """Bundled YAML files of `kind` by name (file stem), sorted."""
    return {p.stem: p for p in sorted(bundled_dir(kind).glob("*.yaml"))}


def resolve_package_path(reference: str) -> Path:
    """`package://robosuite/models/x.xml` -> the file inside the installed Python package.

    Like ROS's `package://` but for Python packages; the package is located without being imported
    (importing robosuite alone takes seconds).
    """
    rest = reference[len(PACKAGE_SCHEME) :]
    package, _, inner = rest.partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        hint = " (install it with: pip install 'adapt[sim]')" if package == "robosuite" else ""
        raise AdaptError(f"'{reference}': Python package '{package}' is not installed{hint}")
    return Path(next(iter(spec.submodule_search_locations))) / inner
