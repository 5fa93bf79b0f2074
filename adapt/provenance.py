"""How a training run, an evaluation or an export was made, in one file beside its outputs: `provenance.json`.

It holds the command line, the resolved settings (the steps actually run, not a recipe's default), each dataset
with a fingerprint of its metadata, the base with the fingerprint of its weights, the seed, the versions of the
packages that shaped the result, the machine, and when it started and ended. An adapter's model card
(`README.md`, where peft leaves a blank template) is written from it, so a folder copied elsewhere still says
what robot, data and training made it.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from adapt.atomic import atomic_write_text

PROVENANCE = "provenance.json"
PACKAGES = ("adapt", "torch", "lightning", "peft", "numpy", "mujoco", "robosuite", "decord", "av")


def start(kind: str, settings: dict[str, Any], data: list[Path] = (), base: Path | None = None) -> dict[str, Any]:
    """The record of a `kind` (finetune, pretrain, eval, export) begun now; `finish` completes and writes it."""
    from adapt.model.checkpoint import base_path, fingerprint

    record: dict[str, Any] = {
        "kind": kind,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "cwd": os.getcwd(),
        "settings": _plain(settings),
        "data": [{"path": str(Path(d).resolve()), "fingerprint": data_fingerprint(Path(d))} for d in data],
        "versions": versions(),
        "machine": machine(),
        "started": _now(),
        "_start": time.monotonic(),
    }
    if base is not None:
        record["base"] = {"path": str(base_path(base).resolve()), "fingerprint": fingerprint(base)}
    return record


def finish(record: dict[str, Any], *folders: Path, **outcome: Any) -> dict[str, Any]:
    """Stamp the end (and `outcome`: steps reached, results) and write `provenance.json` in each of `folders`."""
    done = {k: v for k, v in record.items() if not k.startswith("_")}
    done |= {"ended": _now(), "wall_s": round(time.monotonic() - record["_start"], 1), **_plain(outcome)}
    for folder in folders:
        atomic_write_text(Path(folder) / PROVENANCE, json.dumps(done, indent=2))
    return done


def _training_minutes(record: dict[str, Any]) -> str:
    """The last command's wall time, and the training time of every attempt when the run was resumed."""
    wall = f"{record.get('wall_s', 0) / 60:.1f} min"
    training = record.get("training_s")
    if training is None or training <= record.get("wall_s", 0):  # not resumed: training is within this command
        return wall
    return f"{wall}; {training / 60:.1f} min of training over every attempt, the run having been resumed"


def data_fingerprint(root: Path) -> str:
    """sha256 of a dataset's metadata files (info, episodes, tasks, stats) and of its data and video files' names
    and sizes: changes when episodes are added, removed or re-recorded, without reading the videos."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(root).as_posix()
        digest.update(f"{relative}:{file.stat().st_size}\n".encode())
        if relative.startswith("meta/"):
            digest.update(file.read_bytes())
    return digest.hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "gpus": gpus, "host": platform.node()}


def model_card(record: dict[str, Any], evaluation: dict[str, Any] | None = None) -> str:
    """The adapter's README.md: what it is, what made it and how to use it, from its provenance."""
    settings, base = record["settings"], record.get("base", {})
    recipe = settings.get("recipe", {})
    names = [f"`{Path(d['path']).name}`" for d in record["data"]]
    lines = [
        f"# adapt adapter: {settings.get('embodiment', '?')} from {Path(base.get('path', '?')).name}",
        "",
        f"A LoRA adapter and new state/action heads made by `adapt finetune` (recipe `{recipe.get('name', '?')}`),",
        "in PEFT's format plus adapt's own files (`adapt_adapter.json`, `heads.safetensors`, specs and statistics).",
        "",
        "| | |",
        "|---|---|",
        f"| robot | `{settings.get('embodiment', '?')}` |",
        f"| base | `{base.get('path', '?')}` (weights sha256 `{base.get('fingerprint', '?')[:16]}...`) |",
        f"| recipe | `{recipe.get('name', '?')}`: {recipe.get('description', '')} |",
        f"| steps | {settings.get('steps', '?')} at batch {recipe.get('batch_size', '?')} |",
        f"| seed | {settings.get('seed')} |",
        f"| data | {', '.join(names)} |",
        f"| trained | {record['started']} to {record.get('ended', '?')} ({_training_minutes(record)}) |",
        f"| machine | {record['machine']['platform']}, {record['machine']['cpus']} CPUs, "
        f"GPUs: {', '.join(record['machine']['gpus']) or 'none'} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in record['versions'].items())} |",
    ]
    if evaluation:
        lines += [f"| evaluation | {evaluation} |"]
    lines += [
        "",
        "Use it:",
        "",
        "```",
        "adapt eval --policy THIS_FOLDER --task Lift --episodes 10",
        "adapt serve --policy THIS_FOLDER",
        "adapt export THIS_FOLDER --merge --out merged",
        "```",
        "",
        f"Command: `{' '.join(record['command'])}` (in `{record['cwd']}`); everything else is in `{PROVENANCE}`.",
    ]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: paths as strings, pydantic models and dataclasses as dicts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
