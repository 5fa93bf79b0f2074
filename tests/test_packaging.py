"""Packaging contracts: every package is listed, bundled files ship in the wheel, and CI runs exactly
the README's commands."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "adapt").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_wheel_ships_bundled_embodiments_recipes_and_models(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("adapt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in (ROOT / "embodiments").glob("*.yaml"):
        assert f"adapt/bundled/embodiments/{spec.name}" in names
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        assert f"adapt/bundled/recipes/{recipe.name}" in names
    model_files = [p for p in (ROOT / "models").rglob("*") if p.is_file() and p.suffix not in (".md", ".sh")]
    assert model_files
    for path in model_files:
        assert f"adapt/bundled/models/{path.relative_to(ROOT / 'models').as_posix()}" in names


def test_ci_runs_the_readme_setup_and_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def _adapt_imports() -> dict[str, set[str]]:
    """adapt module -> the adapt modules it imports (in functions and under TYPE_CHECKING too: a type-only import
    is still knowledge that flows that way)."""
    import ast

    root = Path(__file__).resolve().parent.parent
    modules = {}
    for path in (root / "adapt").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        found, stack = set(), [ast.parse(path.read_text())]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adapt"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
            stack.extend(ast.iter_child_nodes(node))
        # a package and its own modules are one unit (an __init__ re-exports what its modules define)
        graph[name] = {m for m in found if m in modules and not (m.startswith(name + ".") or name.startswith(m + "."))}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A path that comes back to where it started in `graph` (node -> the nodes it uses), or None."""
    done, path = set(), []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for dependency in sorted(graph.get(node, ())):
            found = visit(dependency)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    return next((found for node in sorted(graph) if (found := visit(node))), None)


def test_no_import_cycles_inside_adapt():
    """Catches two modules that need each other (e.g. statistics <-> windows, spec <-> kinematics): a sign
    that knowledge lives in the wrong place, and a trap for whoever imports one of them first."""
    cycle = _cycle(_adapt_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycles_between_adapts_packages():
    """The same at the level of adapt's packages and top modules (`adapt.data`, `adapt.sim`, `adapt.policy`):
    each uses only those below it. Catches a module of a lower package reaching up into a higher one without a
    module cycle (robomimic conversion in `adapt.data` calling `adapt.sim`'s simulator, which reads `adapt.data`)."""
    graph: dict[str, set[str]] = {}
    for module, imports in _adapt_imports().items():
        unit = ".".join(module.split(".")[:2])
        graph.setdefault(unit, set()).update(".".join(m.split(".")[:2]) for m in imports)
    cycle = _cycle({unit: used - {unit} for unit, used in graph.items()})
    assert cycle is None, "packages in a circle: " + " -> ".join(cycle)
