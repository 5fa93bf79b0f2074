"""An adapted DreamZero model as a DreamZero user takes it back (`adapt export --format dreamzero`):

    adapter_config.json, adapter_model.safetensors   the LoRA in peft's format, on DreamZero's own module names
                                                     (`blocks.{i}.self_attn.q`, `cross_attn.o`, `ffn.0`, ...;
                                                     targets `q, k, v, o, ffn.0, ffn.2` as DreamZero's own LoRA)
    registers.safetensors                            the robot's state/action registers under DreamZero's keys
                                                     (`action_head.model.state_encoder.layer1.W`, ...), padded
                                                     to the checkpoint's 64 state / 32 action dimensions with
                                                     zero rows and columns, which DreamZero's zero-padded inputs
                                                     make exact
    experiment_cfg/metadata.json                     the robot's statistics and modalities under its name as the
                                                     embodiment tag, in DreamZero's `DatasetMetadata` form
    dreamzero_adapter.json                           base folder and fingerprint, embodiment, LoRA settings, and
                                                     `dreamzero_config`: the values DreamZero's config must hold
                                                     for this robot (`dreamzero_settings`)

`peft.PeftModel.from_pretrained(dreamzero_dit, folder)` applies the LoRA to DreamZero's `CausalWanModel`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from adapt.atomic import atomic_directory
from adapt.data.gear_layout import action_layout, state_layout
from adapt.errors import AdaptError
from adapt.model.dreamzero.keys import DIT, to_dreamzero
from adapt.model.dreamzero.model import DreamZeroWAM

LORA_TARGETS = ["q", "k", "v", "o", "ffn.0", "ffn.2"]
PEFT_PREFIX = "base_model.model."


def export_adapter(model: DreamZeroWAM, embodiment: str, folder: Path, base: Path, *, overwrite: bool = False) -> Path:
    """Write `model`'s LoRA and `embodiment`'s registers and statistics in DreamZero's form (see the module)."""
    from peft import get_peft_model_state_dict

    from adapt.model import fingerprint

    if not hasattr(model.backbone, "peft_config"):
        raise AdaptError("the model has no LoRA to export (adapt it with a LoRA recipe such as play-30min)")
    if embodiment not in model.heads or embodiment not in model.stats:
        raise AdaptError(f"the model has no trained heads and statistics for '{embodiment}' ({sorted(model.heads)})")
    config = model.config
    lora = {}
    for name, tensor in get_peft_model_state_dict(model.backbone).items():
        theirs = to_dreamzero("backbone." + name.removeprefix(PEFT_PREFIX))
        if theirs is None:
            raise AdaptError(f"LoRA weight {name} has no DreamZero name")
        lora[PEFT_PREFIX + theirs.removeprefix(DIT)] = tensor.detach().cpu().contiguous()
    settings = model.backbone.peft_config["default"]
    peft_config = {
        "peft_type": "LORA", "task_type": None, "r": settings.r, "lora_alpha": settings.lora_alpha,
        "lora_dropout": settings.lora_dropout, "bias": "none", "target_modules": LORA_TARGETS,
        "base_model_name_or_path": str(Path(base).resolve()), "inference_mode": True,
    }  # fmt: skip
    registers = {}
    for name, tensor in model.heads[embodiment].state_dict().items():
        registers[DIT + name] = _padded(name, tensor, config.max_state_dim, config.max_action_dim)
    with atomic_directory(folder, overwrite) as tmp:
        save_file(lora, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(peft_config, indent=2))
        save_file(registers, tmp / "registers.safetensors")
        (tmp / "experiment_cfg").mkdir()
        metadata = {embodiment: _metadata(model, embodiment)}
        (tmp / "experiment_cfg" / "metadata.json").write_text(json.dumps(metadata, indent=2))
        provenance = {
            "base": str(Path(base).resolve()),
            "base_fingerprint": fingerprint(base),
            "embodiment": embodiment,
            "lora": {"r": settings.r, "alpha": settings.lora_alpha, "targets": LORA_TARGETS},
            "dreamzero_config": dreamzero_settings(model, embodiment),
        }
        (tmp / "dreamzero_adapter.json").write_text(json.dumps(provenance, indent=2))
    return Path(folder)


def dreamzero_settings(model: DreamZeroWAM, embodiment: str) -> dict:
    """What DreamZero's config must say for the exported robot: one block of the robot's action chunk (adapt
    trains `spec.action.chunk` action tokens per block: DreamZero's `action_horizon` and the DiT's
    `num_action_per_block`), one state token, and projector 0 (DreamZero's registers hold one embodiment;
    the exported ones replace the checkpoint's)."""
    chunk = model.specs[embodiment].action.chunk
    return {"action_horizon": chunk, "num_action_per_block": chunk, "num_state_per_block": 1, "projector_index": 0}


def _padded(name: str, tensor: torch.Tensor, state_dim: int, action_dim: int) -> torch.Tensor:
    """A register weight zero-padded to DreamZero's shared widths: input rows of the state encoder and action
    encoder's first layers, output columns of the action decoder's last layer."""
    tensor = tensor.detach().cpu()
    if name == "state_encoder.layer1.W":
        return _pad(tensor, 1, state_dim)
    if name == "action_encoder.W1.W":
        return _pad(tensor, 1, action_dim)
    if name == "action_decoder.layer2.W":
        return _pad(tensor, 2, action_dim)
    if name == "action_decoder.layer2.b":
        return _pad(tensor, 1, action_dim)
    return tensor.contiguous()


def _pad(tensor: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    if tensor.shape[dim] > size:
        raise AdaptError(f"the robot has {tensor.shape[dim]} dimensions where DreamZero's registers take {size}")
    shape = list(tensor.shape)
    shape[dim] = size - tensor.shape[dim]
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=dim).contiguous()


def _metadata(model: DreamZeroWAM, embodiment: str) -> dict:
    """DreamZero's `DatasetMetadata` for the robot: statistics per state/action sub-key (mean, std, q01, q99;
    min and max hold the q01/q99 range, as adapt keeps no absolute extremes and DreamZero normalises with
    q01/q99) and the sub-keys' shapes; cameras at the model's per-view size."""
    spec, stats = model.specs[embodiment], model.stats[embodiment]
    statistics, modalities = {}, {}
    for part, layout, field in [
        ("state", state_layout(spec), stats.state),
        ("action", action_layout(spec), stats.action),
    ]:
        statistics[part], modalities[part] = {}, {}
        for key, (a, b) in layout.items():
            values = {k: np.asarray(getattr(field, k))[a:b].tolist() for k in ("mean", "std", "q01", "q99")}
            statistics[part][key] = {**values, "min": values["q01"], "max": values["q99"]}
            modalities[part][key] = {"absolute": True, "rotation_type": None, "shape": [b - a], "continuous": True}
    height, width = model.config.frame_size
    modalities["video"] = {c.name: {"resolution": [width, height], "channels": 3, "fps": c.fps} for c in spec.cameras}
    return {"statistics": statistics, "modalities": modalities, "embodiment_tag": embodiment}
