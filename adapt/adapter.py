"""The adapter folder: what an adaptation produces, and the only thing a policy needs beside the base.

    adapter_config.json, adapter_model.safetensors   LoRA, in peft's own format (when the recipe has LoRA)
    heads.safetensors                                every other trained weight: the new embodiment's heads
                                                     (and the backbone, for a full fine-tune)
    embodiments/<n>.yaml, stats/<n>.json             specs and the normalization statistics used in training
    recipe.yaml                                      the recipe that made it
    adapt_adapter.json                               format, base path and base fingerprint, target embodiment

It is written into a temp folder and renamed into place; loading it over a base whose weights differ
from the fingerprint is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from adapt.atomic import atomic_directory
from adapt.errors import AdaptError
from adapt.files import inside, read_json_object, read_safetensors
from adapt.lora import load_lora
from adapt.model import WorldModel, fingerprint, load_model
from adapt.model.checkpoint import base_path, bundled_bases, read_specs_and_stats, write_specs_and_stats
from adapt.recipe import Recipe, save_recipe

FORMAT = "adapt-adapter/1"
META = "adapt_adapter.json"


def save_adapter(
    model: WorldModel,
    folder: Path,
    *,
    base: Path,
    target: str,
    new_embodiments: list[str],
    recipe: Recipe,
    overwrite: bool = False,
) -> Path:
    """Write the trained part of `model` (LoRA + trainable weights) as an adapter folder."""
    trained = {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n
    }
    used = [name for name in model.specs if name in new_embodiments or name == target]
    with atomic_directory(folder, overwrite) as tmp:
        if hasattr(model.backbone, "peft_config"):
            model.backbone.save_pretrained(str(tmp))
        save_file(trained, tmp / "heads.safetensors", metadata={"format": FORMAT})
        write_specs_and_stats(
            tmp, [model.specs[n] for n in used], {n: model.stats[n] for n in used if n in model.stats}
        )
        save_recipe(recipe, tmp / "recipe.yaml")
        meta = {
            "format": FORMAT,
            "base": str(base_path(base).resolve()),
            "base_fingerprint": fingerprint(base),
            "target": target,
            "new_embodiments": new_embodiments,
            "embodiments": used,
        }
        (tmp / META).write_text(json.dumps(meta, indent=2))
    return Path(folder)


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        raise AdaptError(f"{folder}: not an adapter folder (no {META}); an interrupted run leaves none")
    try:
        meta = read_json_object(path, "adapter description")
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        missing = [key for key in ("base", "base_fingerprint", "target") if not isinstance(meta.get(key), str)]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return meta
    except (ValueError, TypeError) as error:
        raise AdaptError(f"{path}: not a valid adapter description ({error})") from None


def load_adapter(folder: Path, base: Path | None = None, device: str = "cpu") -> WorldModel:
    """The base model (from `base`, default: the path the adapter recorded) with the adapter applied."""
    folder = Path(folder)
    meta = read_meta(folder)
    base = base_path(base or meta["base"])
    if not (base / "config.json").is_file():  # moved or renamed, or made on another machine: a bundled base?
        base = _bundled_with(meta["base_fingerprint"]) or base
    if not (base / "config.json").is_file():
        raise AdaptError(
            f"{folder}: its base model {base} is not here (an adapter copied from another machine?); "
            "pass the base it was trained on with --base (Python: base=...)"
        )
    if fingerprint(base) != meta["base_fingerprint"]:
        raise AdaptError(
            f"{folder} was trained on another base than {base} (weights fingerprint differs); "
            "load it with the base it was made from"
        )
    model = load_model(base)
    specs, stats = read_specs_and_stats(folder, meta["embodiments"])
    for spec in specs:
        if spec.name in meta["new_embodiments"]:
            model.add_embodiment(spec)
    model.stats.update(stats)
    if (folder / "adapter_config.json").is_file():
        model.backbone = load_lora(model.backbone, folder)
    weights = read_safetensors(inside(folder, "heads.safetensors", "heads"), "adapter heads")
    missing = set(weights) - {n for n, _ in model.named_parameters()}
    if missing:
        raise AdaptError(f"{folder / 'heads.safetensors'}: weights the model does not have: {sorted(missing)[:5]}")
    model.load_state_dict(weights, strict=False)
    return model.to(device).eval()


def _bundled_with(weights_fingerprint: str) -> Path | None:
    """The bundled base whose weights have this fingerprint, if one does."""
    from adapt.resources import bundled_dir

    for name in bundled_bases():
        if fingerprint(bundled_dir("models") / name) == weights_fingerprint:
            return bundled_dir("models") / name
    return None


def merge(model: WorldModel) -> WorldModel:
    """Fold LoRA into the backbone weights (zero inference overhead); a no-op without LoRA."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.backbone = model.backbone.merge_and_unload()
    return model
