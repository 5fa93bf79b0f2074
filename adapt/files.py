"""Reading the files users hand us (specs, recipes, dataset metadata, checkpoint and adapter
descriptions) and checking where outputs will go: every failure is an `AdaptError` naming the path and
what to do, raised before any heavy work starts.

Writes are in `adapt.atomic`; this module is the other half of the file boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError


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
