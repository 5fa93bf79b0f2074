"""Loading and validating embodiment specs: YAML in, a checked `EmbodimentSpec` out, or one error listing
every problem (structure first, then cross-field rules, then the robot description through MuJoCo)."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from adapt.embodiment.spec import EE_DELTA_DIM, EmbodimentSpec
from adapt.errors import AdaptError, InvalidFileError, Problem, did_you_mean
from adapt.files import read_yaml
from adapt.resources import bundled_files


def load_embodiment(name_or_path: str | Path, *, check_description: bool = True) -> EmbodimentSpec:
    """Load and fully validate a spec by bundled name (`panda`) or path to a YAML file.

    Raises `InvalidFileError` listing every problem, or `AdaptError` when the file cannot be found.
    """
    path = _find_spec_file(name_or_path)
    try:
        raw = read_yaml(path, "embodiment spec")
    except yaml.YAMLError as err:
        raise InvalidFileError(path, [Problem("", f"not valid YAML: {err}")]) from None
    if not isinstance(raw, dict):
        raise InvalidFileError(path, [Problem("", "expected a mapping of spec fields at the top level")])
    return spec_from_dict(raw, source=path, check_description=check_description)


def spec_from_dict(
    raw: dict[str, Any], *, source: Path | None = None, check_description: bool = True
) -> EmbodimentSpec:
    """Validate plain data as a spec; `source` anchors relative description paths and error messages."""
    try:
        spec = EmbodimentSpec.model_validate(raw)
    except ValidationError as err:
        raise InvalidFileError(source, [_pydantic_problem(e) for e in err.errors()]) from None
    spec._source = source.resolve() if source is not None else None
    problems = _check_rules(spec)
    composable = not any(p.field.startswith("mounts") for p in problems)  # copies that cannot be told apart
    if check_description and not spec.video_only and spec.description is not None and composable:
        from adapt.embodiment.kinematics import check_against_description  # MuJoCo: load it only when needed

        problems += check_against_description(spec)
    if problems:
        raise InvalidFileError(source, problems)
    return spec


def save_embodiment(spec: EmbodimentSpec, path: Path, header: str = "") -> None:
    """Write a spec as YAML atomically (temp file + rename), with an optional comment header."""
    from adapt.atomic import atomic_write_text

    body = yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False, default_flow_style=None, width=100)
    atomic_write_text(path, header + body)


def bundled_embodiments() -> dict[str, Path]:
    """Specs shipped with adapt, by name."""
    return bundled_files("embodiments")


def _find_spec_file(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise AdaptError(f"{path}: embodiment spec file not found")
        return path
    bundled = bundled_embodiments()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise AdaptError(
        f"'{name_or_path}' is neither a spec file nor a bundled embodiment."
        f"{did_you_mean(str(name_or_path), bundled)} Bundled: {', '.join(bundled)}"
    )


def _pydantic_problem(error: dict[str, Any]) -> Problem:
    """Turn one pydantic error into a Problem with a dotted field path and a fix the user can apply."""
    loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        return Problem(field, f"unknown field.{did_you_mean(str(loc[-1]), allowed)} Allowed here: {', '.join(allowed)}")
    if kind == "missing":
        return Problem(field, "required field is missing; add it")
    if kind == "literal_error":
        return Problem(field, f"{reprlib.repr(error['input'])} is not allowed; use one of {error['ctx']['expected']}")
    return Problem(field, f"{error['msg']} (got {reprlib.repr(error['input'])})")  # bounded: inputs may be huge


def _fields_at(loc: list[Any]) -> list[str]:
    """Field names of the spec model reached by walking `loc` (skipping list indices)."""
    model: type[BaseModel] = EmbodimentSpec
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        candidates += [a for c in candidates for a in getattr(c, "__args__", ())]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return list(model.model_fields)


def _check_rules(spec: EmbodimentSpec) -> list[Problem]:
    """Cross-field rules that pydantic's per-field checks cannot express."""
    problems = _duplicates("joints", spec.joint_names) + _duplicates("cameras", [c.name for c in spec.cameras])
    problems += _duplicates("proprio", [p.name for p in spec.proprio])
    if spec.video_only:
        for field in ("description", "end_effector", "gripper", "action"):
            if getattr(spec, field) is not None:
                problems.append(Problem(field, "a video_only spec has no robot; remove this field"))
        for field in ("joints", "proprio"):
            if getattr(spec, field):
                problems.append(Problem(field, "a video_only spec has no robot; remove this field"))
        return problems
    for field in ("description", "end_effector", "action"):
        if getattr(spec, field) is None:
            problems.append(Problem(field, "required unless video_only: true; add it"))
    if not spec.joints:
        problems.append(Problem("joints", "required unless video_only: true; list the actuated joints in order"))
    problems += _check_mounts(spec)
    if not spec.proprio:
        problems.append(Problem("proprio", "required unless video_only: true; list the state fields"))
    if spec.action is not None and spec.end_effector is not None and spec.joints:
        expected = spec.expected_action_dim()
        if spec.action.dim != expected:
            problems.append(Problem("action.dim", _action_dim_hint(spec, expected)))
        if spec.action.relative and spec.action.kind != "joint_position":
            problems.append(Problem("action.relative", "only joint_position actions can be made relative"))
    for i, field in enumerate(spec.proprio):
        if field.name in ("joint_position", "joint_velocity") and field.dim != len(spec.joints):
            problems.append(Problem(f"proprio[{i}].dim", f"is {field.dim}; set it to {len(spec.joints)} (joints)"))
    return problems


def _action_dim_hint(spec: EmbodimentSpec, expected: int) -> str:
    assert spec.action is not None
    gripper = spec.gripper.dim if spec.gripper else 0
    if spec.action.kind == "ee_delta":
        arm = f"{len(spec.end_effectors)} end effector(s) x {EE_DELTA_DIM}"
    else:
        arm = f"{len(spec.joints)} joints"
    needs = f"{spec.action.kind} needs {arm} + {gripper} gripper = {expected}"
    return f"is {spec.action.dim} but {needs}; set it to {expected}"


def _check_mounts(spec: EmbodimentSpec) -> list[Problem]:
    """A robot of copies of one arm: one copy per end effector, and every joint and frame in one copy."""
    if not spec.mounts:
        return []
    problems = [
        Problem(f"mounts[{i}]", f"duplicate prefix '{prefix}'; each copy needs its own")
        for i, prefix in enumerate(spec.mounts)
        if prefix in spec.mounts[:i]
    ]
    if len(spec.mounts) != len(spec.end_effectors):
        problems.append(
            Problem("mounts", f"has {len(spec.mounts)} copies; give one per end effector ({len(spec.end_effectors)})")
        )
    for field, names in (("joints", spec.joint_names), ("end_effector", spec.end_effectors)):
        for i, name in enumerate(names):
            if not any(name.startswith(prefix) for prefix in spec.mounts):
                where = f"{field}[{i}]" if field == "joints" or len(names) > 1 else field
                problems.append(Problem(where, f"'{name}' carries no mount prefix ({', '.join(spec.mounts)})"))
    return problems


def _duplicates(field: str, names: list[str]) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for i, name in enumerate(names):
        if name in seen:
            problems.append(
                Problem(f"{field}[{i}].name", f"duplicate name '{name}' (also {field}[{seen[name]}]); rename one")
            )
        seen.setdefault(name, i)
    return problems
