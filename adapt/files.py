"""Reading the files users hand us (specs, recipes, dataset metadata, checkpoint and adapter
descriptions) and checking where outputs will go: every failure is an `AdaptError` naming the path and
what to do, raised before any heavy work starts.

Writes are in `adapt.atomic`; this module is the other half of the file boundary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from adapt.errors import AdaptError

log = logging.getLogger(__name__)

MAX_YAML_BYTES = 1 << 20
"""Largest spec or recipe read (1 MiB; the bundled ones are under 4 KiB)."""
MAX_YAML_ALIASES = 16
"""YAML alias references allowed in one file: enough to reuse a camera block, too few for an alias bomb
(nine levels of nine aliases each expand to a billion nodes that validation, and any message quoting the
input, would walk in full)."""


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of `path`; a file in another encoding is named with the offending byte's place."""
    path = Path(path)
    if path.is_dir():
        raise AdaptError(f"{path}: is a folder, expected a {what}")
    if not path.exists():
        raise AdaptError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise AdaptError(
            f"{path}: the {what} is not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from None


def read_yaml(path: Path, what: str = "YAML file") -> Any:
    """The parsed YAML of `path`, bounded in size and in alias references; raises `yaml.YAMLError` (callers
    name the file and field) for text that is not YAML or that the bounds refuse."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_YAML_BYTES:
        raise AdaptError(f"{path}: the {what} is {path.stat().st_size:,} bytes; at most {MAX_YAML_BYTES:,} are read")
    return yaml.load(read_text(path, what), Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing more than `MAX_YAML_ALIASES` alias references."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                line = self.peek_event().start_mark.line + 1
                raise yaml.YAMLError(
                    f"more than {MAX_YAML_ALIASES} alias references (*name), the last on line {line}: refused, as"
                    " an alias bomb would be; write the values out"
                )
        return super().compose_node(parent, index)


def inside(folder: Path, relative: str, field: str) -> Path:
    """`folder / relative` for a path built from a file's contents (a name in metadata, a path template),
    refused, naming `field`, when the name itself leads out of `folder` (absolute, or through `..`). A symlink
    there that leads elsewhere is followed with a warning naming its target: the Hugging Face cache links every
    file of a downloaded model or dataset into its blob store."""
    folder = Path(folder)
    for pure in (PurePosixPath(relative), PureWindowsPath(relative)):
        if pure.is_absolute() or pure.drive or ".." in pure.parts:
            raise AdaptError(f"{folder}: {field} names {relative!r}, outside the folder; names there must stay inside")
    path = folder / relative
    if path.exists() and not path.resolve().is_relative_to(folder.resolve()):
        log.warning("%s is a link to %s, outside %s", path, path.resolve(), folder)
    return path


def read_safetensors(path: Path, what: str, device: str = "cpu") -> dict:
    """The tensors of a safetensors file; a damaged one (cut short, not safetensors) is named as such."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise AdaptError(f"{path}: the {what} file is missing")
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError) as error:
        raise AdaptError(f"{path}: the {what} file is damaged ({error}); restore or re-create it") from None


def check_apart(out: Path, inputs: dict[str, Path | str], option: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside one of `inputs` (what -> path), whatever `--overwrite`
    says: writing it could delete or bury the input (an export onto its own adapter, a run into its base)."""
    target = Path(out).resolve()
    for what, path in inputs.items():
        source = Path(path).resolve()
        if target == source or target.is_relative_to(source) or source.is_relative_to(target):
            where = "is" if target == source else "lies inside" if target.is_relative_to(source) else "contains"
            raise AdaptError(f"{option} {out} {where} the {what} {path}; choose an {option} apart from it")


def read_json(path: Path, what: str = "JSON file") -> Any:
    """The parsed JSON of `path`; invalid JSON is named with its line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise AdaptError(f"{path}: the {what} is not valid JSON ({error.msg}, {where})") from None


def read_json_object(path: Path, what: str = "JSON file") -> dict[str, Any]:
    """`read_json` for files whose top level must be an object (every metadata file we read)."""
    raw = read_json(path, what)
    if not isinstance(raw, dict):
        raise AdaptError(f"{path}: the {what} must hold a JSON object at the top level, found {type(raw).__name__}")
    return raw


def check_output_path(path: Path, option: str = "--out") -> Path:
    """Refuse an output path that cannot be created because one of its parents is a file. Called before
    anything loads, so the mistake costs no time (an existing output is each command's own question)."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir() and parent != path:
                raise AdaptError(f"{path}: {parent} is a file, not a folder; choose another {option}")
            break
    return path
