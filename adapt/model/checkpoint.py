"""A model checkpoint is a folder anyone can read without unpickling:

    config.json          ModelConfig (its `architecture` picks the implementation), the embodiment
                         names in head order, and the weights' fingerprint
    model.safetensors    every weight (tokenizer, backbone, heads)
    embodiments/<n>.yaml the spec of every embodiment the model has heads for
    stats/<n>.json       the normalization statistics those heads were trained with

It is written into a temp folder and renamed into place, so a killed run never leaves a checkpoint
that loads as valid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from adapt.atomic import atomic_directory
from adapt.data.stats import NormStats
from adapt.embodiment import EmbodimentSpec, load_embodiment, save_embodiment
from adapt.errors import AdaptError
from adapt.files import inside, read_json_object, read_safetensors
from adapt.model.protocol import WorldModel, build_model, parse_config, released_checkpoint

FORMAT = "adapt-wam/1"


def save_model(model: WorldModel, path: Path, *, overwrite: bool = False, half: bool = False) -> Path:
    """Write `model` (with `model.stats`, when set) as a checkpoint folder at `path`.

    `half` stores floating-point weights as float16: half the file (the bundled base must fit in
    the repository); `load_model` casts them back to the model's float32.
    """
    with atomic_directory(path, overwrite) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, tmp / "model.safetensors", metadata={"format": FORMAT})
        config = {
            "format": FORMAT,
            "model": model.config.model_dump(),
            "embodiments": list(model.heads),
            "fingerprint": _hash(tmp / "model.safetensors"),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        write_specs_and_stats(tmp, model.specs.values(), getattr(model, "stats", {}))
    return Path(path)


def write_specs_and_stats(folder: Path, specs, stats: dict[str, NormStats]) -> None:
    """Specs (with description paths made absolute, so they survive the move) and statistics."""
    for spec in specs:
        described = spec.description_path()
        if described is not None and not spec.description.startswith("package://"):
            spec = spec.model_copy(update={"description": str(described)})
        save_embodiment(spec, folder / "embodiments" / f"{spec.name}.yaml")
    for name, value in stats.items():
        value.save(folder / "stats" / f"{name}.json")


def read_specs_and_stats(folder: Path, names: list[str]) -> tuple[list[EmbodimentSpec], dict[str, NormStats]]:
    files = [
        (inside(folder, f"embodiments/{n}.yaml", "embodiments"), inside(folder, f"stats/{n}.json", "embodiments"))
        for n in names
    ]
    specs = [load_embodiment(spec, check_description=False) for spec, _ in files]
    stats = {n: NormStats.load(path) for n, (_, path) in zip(names, files, strict=True) if path.is_file()}
    return specs, stats


def base_path(base: str | Path) -> Path:
    """A checkpoint folder by path, or a bundled base by name (`base-small`, see `adapt/models`): what every
    `--base` and `base=` takes, from any working directory. A path that exists always wins over the name."""
    from adapt.resources import bundled_dir

    path = Path(base)
    if not path.exists() and len(path.parts) == 1:
        bundled = bundled_dir("models") / path.name
        if (bundled / "config.json").is_file():
            return bundled
    return path


def bundled_bases() -> list[str]:
    from adapt.resources import bundled_dir

    return sorted(p.name for p in bundled_dir("models").iterdir() if (p / "config.json").is_file())


def load_model(path: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> WorldModel:
    """Load a checkpoint folder written by `save_model`, or one in the layout a family's project releases them
    in (DreamZero's: `adapt.model.dreamzero.checkpoint`); weights through safetensors only. `dtype`: the
    weights' (bfloat16 for `--precision bf16-true`: a released bf16 checkpoint is then never widened to
    float32 on the way in, half the memory); None: float32."""
    path = base_path(path)
    released = released_checkpoint(path)
    if released is not None:
        return released.load(path, device, dtype)
    config_file, weights = path / "config.json", path / "model.safetensors"
    if not config_file.is_file() or not weights.is_file():
        raise AdaptError(
            f"{path}: not a model checkpoint (needs config.json and model.safetensors); bundled bases by name:"
            f" {', '.join(bundled_bases())}"
        )
    try:
        raw = read_json_object(config_file, "model config")
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
        config = parse_config(raw["model"])
        names = list(raw["embodiments"])
    except (ValueError, KeyError, TypeError) as error:
        raise AdaptError(f"{config_file}: not a valid model config ({error})") from None
    specs, stats = read_specs_and_stats(path, names)
    model = build_model(config, specs)
    try:
        model.load_state_dict(read_safetensors(weights, "model weights", device=str(device)))
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise AdaptError(f"{weights}: cannot load weights (corrupt or from another model?): {error}") from None
    model.stats = stats
    return model.to(device, dtype).eval()


def fingerprint(path: Path) -> str:
    """sha256 of a checkpoint's weights file as it is now: adapters record it and refuse to load on other weights.

    Hashed from the file at every call, never taken from config.json (whose `fingerprint` records the value at
    writing, for `sha256sum` checks): weights copied over a checkpoint must change it. It costs 11 ms for the
    bundled 11 MB base on a 2-core CPU. Released checkpoints of another layout (DreamZero's) are fingerprinted
    by their family's reader."""
    path = base_path(path)
    released = released_checkpoint(path)
    if released is not None:
        return released.fingerprint(path)
    return _hash(inside(path, "model.safetensors", "weights"))


def _hash(weights: Path) -> str:
    if not weights.is_file():
        raise AdaptError(f"{weights}: the checkpoint's weights file is missing")
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
