"""What every benchmark writes besides its numbers: the machine it ran on, and the JSON file itself."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
from pathlib import Path

import torch


def machine(device: str = "cpu", **extra) -> dict:
    """Platform, CPU count, torch and its threads, the device, and the load average at the start
    (figures taken while other processes share the CPUs are not comparable)."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "load_average": os.getloadavg(),
        **extra,
    }
    with contextlib.suppress(ImportError):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    return info


def resolve_device(parser: argparse.ArgumentParser, device: str) -> str:
    """`--device`: `auto` is CUDA when torch sees a GPU, else the CPU; CUDA without a GPU is a usage error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    return device


def newcombe_difference(
    p1: float, ci1: tuple[float, float], p2: float, ci2: tuple[float, float]
) -> tuple[float, float, float]:
    """p1 - p2 with its 95 % interval by Newcombe's hybrid score method (the two Wilson intervals combined)."""
    (l1, u1), (l2, u2) = ci1, ci2
    difference = p1 - p2
    low = difference - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5
    high = difference + ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5
    return difference, low, high


def success_difference(ours: dict, theirs: dict) -> tuple[float, float, float]:
    """One task's success rate minus another policy's on it (results with `success_rate` and `success_ci95`), with
    Newcombe's 95 % interval."""
    return newcombe_difference(
        ours["success_rate"], ours["success_ci95"], theirs["success_rate"], theirs["success_ci95"]
    )


def write_report(path: Path, report: dict) -> None:
    """Write `report` as JSON atomically (temp file + rename), with the load average at the end."""
    report["machine"]["load_average_after"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)
    print(f"\nwrote {path}")
