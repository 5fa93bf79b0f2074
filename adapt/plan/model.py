"""The model of a plan on the meta device: parameters by part, the trainable set, tokens per sample, the
linear layers that keep their input for backward and the FLOPs of one sample.

The model is built on the meta device (a 14B base costs nothing) and the recipe applied by finetune's own
`set_trainable` (peft's LoRA works on meta tensors), so the trainable set is the one `adapt finetune` trains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError, did_you_mean
from adapt.lora import unwrapped
from adapt.model.footprint import Shape, cpu_bf16_units
from adapt.model.protocol import family_footprint
from adapt.recipe import Recipe, load_recipe

GIB = 2**30


@dataclass(frozen=True)
class Precision:
    """Bytes per element of each kind of tensor under a Lightning precision."""

    storage: int
    """Parameters, gradients, AdamW moments."""
    compute: int
    """Tag `c`: matmul inputs and outputs (bf16 under autocast)."""
    norm: int
    """Tag `f`: tensors of ops autocast runs in fp32 (norms)."""
    autocast: bool


PRECISIONS = {
    "32-true": Precision(4, 4, 4, False),
    "bf16-mixed": Precision(4, 2, 4, True),
    "bf16-true": Precision(2, 2, 2, False),
}
STRATEGIES = ("ddp", "fsdp")
ACCELERATORS = ("cpu", "gpu")
ATTENTION = ("fused", "math")
RATES = {("gpu", 2): 400.0, ("gpu", 4): 27.0, ("cpu", 2): 0.123, ("cpu", 4): 0.123}
"""Achievable TFLOP/s per device by (accelerator, compute bytes). GPU: ~40 % of an H100/H200's dense peak (989
TFLOP/s bf16; 67 fp32, torch leaving TF32 matmuls off). CPU: fitted, with `CPU_OVERHEAD_S` per step, to the fp32
training steps of tiny/small/base measured on the project's 2-core CPU (benchmarks/results/model.json;
`benchmarks/plan.py` refits it); that CPU has no bf16 units, so bf16 gets the fp32 rate."""
CPU_OVERHEAD_S = 0.052
GPU_WORKSPACE = 32 * 2**20
"""cuBLAS workspaces PyTorch allocates in its caching allocator at the first matmul (35 MiB measured on an H100)."""
USABLE = 0.9
"""Share of the device memory a run may fill; the rest is for the CUDA context, NCCL and fragmentation."""


@dataclass(frozen=True)
class Run:
    """How a training step is executed: what `memory` and `verdict` vary."""

    devices: int = 1
    strategy: str = "ddp"
    precision: str = "bf16-mixed"
    checkpointing: bool = False
    """Activation checkpointing on the transformer blocks."""
    batch_size: int | None = None
    """Windows per device; None: the plan's (the recipe's)."""

    def __post_init__(self):
        check_options(strategy=self.strategy, precision=self.precision)
        if self.devices < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise AdaptError(f"devices {self.devices} and batch size {self.batch_size} must be at least 1")


@dataclass
class Plan:
    """Everything about a run that does not depend on devices, strategy or precision."""

    base: str
    recipe: str
    embodiment: str
    accelerator: str
    attention: str
    batch_size: int
    parameters: dict[str, int]
    trainable: int
    tokens: dict[str, int]
    shape: Shape
    flops_per_sample: dict[str, float]
    matmul_weights: int
    """Weights autocast casts and keeps for backward (bf16-mixed)."""
    block_parameters: int
    streamed_parameters: int = 0
    """Frozen encoder parameters that stay in the base's files (not among the resident weights)."""
    streamed_piece: int = 0
    """The most of them resident at one time: while an encoder runs, on an encoder-cache miss."""
    float32_blocks: bool = False
    """bf16 blocks compute in float32 here: the family does so on a CPU without bf16 units, and this is one."""


def plan(
    base: str | Path,
    recipe: str | Path | Recipe = "play-30min",
    embodiment: str | Path | EmbodimentSpec = "ur5e",
    *,
    batch_size: int | None = None,
    accelerator: str = "gpu",
    attention: str = "fused",
) -> Plan:
    """The plan of adapting `base` (a preset name or a checkpoint folder) to `embodiment` with `recipe`."""
    from adapt.train.finetune import set_trainable

    check_options(accelerator=accelerator, attention=attention)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if not isinstance(embodiment, EmbodimentSpec):
        embodiment = load_embodiment(embodiment, check_description=False)
    model, label = meta_model(base, embodiment)
    new = [] if embodiment.name in model.heads else [embodiment.name]
    with torch.device("meta"):
        if new:
            model.add_embodiment(embodiment)
        set_trainable(model, recipe, embodiment.name, new)
    rank = recipe.lora.rank if recipe.lora else 0
    p = plan_model(model, embodiment, recipe.mode, batch_size or recipe.batch_size, accelerator, attention, rank)
    return replace(p, base=label, recipe=recipe.name)


def meta_model(base: str | Path, spec: EmbodimentSpec) -> tuple[nn.Module, str]:
    """The base on the meta device, from a preset name or a checkpoint folder's config (no weights read)."""
    from adapt.model import build_model
    from adapt.model.checkpoint import base_path, read_specs_and_stats
    from adapt.model.protocol import parse_config, presets, released_checkpoint

    name, folder, known = str(base), base_path(base), presets()
    with torch.device("meta"):
        if name in known:
            return build_model(known[name]), name
        released = released_checkpoint(folder)
        if released is not None:
            return build_model(released.read_config(folder)), name
        if (folder / "config.json").is_file():
            from adapt.files import read_json_object

            raw = read_json_object(folder / "config.json", "model config")
            try:
                config, names = parse_config(raw["model"]), list(raw["embodiments"])
            except (KeyError, TypeError, ValueError) as error:
                raise AdaptError(f"{folder / 'config.json'}: not a valid model config ({error})") from None
            return build_model(config, read_specs_and_stats(folder, names)[0]), name
    raise AdaptError(
        f"unknown base '{name}': not a preset ({', '.join(known)}) and not a checkpoint folder with a config.json."
        + did_you_mean(name, known)
    )


def plan_model(
    model: nn.Module,
    spec: EmbodimentSpec,
    mode: str,
    batch_size: int,
    accelerator: str = "gpu",
    attention: str = "fused",
    rank: int = 0,
) -> Plan:
    """The plan of training `model` (its `requires_grad` flags set, LoRA of `rank` added) on `spec`'s batches in
    loss `mode`; works on meta and real models alike."""
    check_options(accelerator=accelerator, attention=attention)
    dit = unwrapped(model.backbone)
    block = dit.blocks[0]
    footprint = family_footprint(model.config.architecture)
    tokens, shape = footprint.training_shape(model, spec, mode)
    shape = replace(shape, **_linears_keeping_input(block), rank=rank)
    keys = shape.tokens + shape.text + shape.image
    streamed = footprint.streamed_encoders(model)
    flops = {
        "linear layers": _linear_flops(block, shape) * shape.depth,
        "attention": 12 * shape.tokens * keys * shape.dim * shape.depth,
        "frozen encoders": footprint.encoder_flops(model, spec),
    }
    return Plan(
        base="custom",
        recipe="custom",
        embodiment=spec.name,
        accelerator=accelerator,
        attention=attention,
        batch_size=batch_size,
        parameters=_parameter_parts(model),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        tokens=tokens,
        shape=shape,
        flops_per_sample=flops,
        matmul_weights=_matmul_weights(model, dit, footprint.MATMULS),
        block_parameters=sum(p.numel() for p in block.parameters()),
        streamed_parameters=streamed[0],
        streamed_piece=streamed[1],
        float32_blocks=accelerator == "cpu" and footprint.FLOAT32_BLOCKS_ON_CPU and not cpu_bf16_units(),
    )


def _parameter_parts(model: nn.Module) -> dict[str, int]:
    """Parameters by part: the frozen tokenizer/encoders, the backbone, its LoRA, the heads, the other shared ones."""
    parts = Counter()
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        parts["lora" if "lora_" in name else part if part in ("tokenizer", "backbone", "heads") else "other"] += (
            p.numel()
        )
    return {"total": sum(parts.values()), **parts}


def _linears_keeping_input(block: nn.Module) -> dict[str, frozenset[str]]:
    """Names (within a block) of the linear layers that keep their input for backward, and of the LoRA ones."""
    trains, lora = set(), set()
    for name, module in block.named_modules():
        if name.endswith(".base_layer"):
            parent = name.removesuffix(".base_layer")
            lora.add(parent)
            if any(p.requires_grad for p in block.get_submodule(parent).parameters()):
                trains.add(parent)
        elif isinstance(module, nn.Linear) and ".lora_" not in name and module.weight.requires_grad:
            trains.add(name)
    return {"trains": frozenset(trains), "lora": frozenset(lora)}


def _matmul_weights(model: nn.Module, dit: nn.Module, matmuls: tuple[type, ...]) -> int:
    """Weights of `matmuls` modules whose input needs a gradient (in the blocks, but for projections of a frozen
    context) or whose weight trains: what autocast keeps a bf16 copy of."""
    frozen_context = not any(p.requires_grad for p in getattr(dit, "condition_embedder", nn.Identity()).parameters())
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, matmuls) and not name.startswith("tokenizer"):
            weight = module.weight if hasattr(module, "weight") else module.W
            if weight.requires_grad or (".blocks." in name and not (frozen_context and _context_side(name))):
                total += weight.numel()
    return total


def _context_side(name: str) -> bool:
    return any(part in name for part in ("attn2.to_k", "attn2.to_v", "attn2.add_k_proj", "attn2.add_v_proj"))


def _linear_flops(block: nn.Module, s: Shape) -> float:
    """Forward + backward FLOPs of one block's linear layers for one sample: 2 x weights x tokens per pass
    (forward; input gradient unless the input is a frozen context; weight gradient where the weight trains)."""
    total = 0.0
    for name, module in block.named_modules():
        if isinstance(module, nn.Linear):
            owner = name.removesuffix(".base_layer").split(".lora_")[0]
            tokens = s.text if owner in ("attn2.to_k", "attn2.to_v") else s.image if "add_" in owner else s.tokens
            tokens = 3 if owner == "modulation" else tokens  # our DiT modulates from 3 vectors, then gathers
            frozen_input = not s.conditioning_trains and _context_side(owner) and ".lora_B" not in name
            total += 2 * module.weight.numel() * tokens * (2 - frozen_input + module.weight.requires_grad)
    return total


def check_options(**given: str | None) -> None:
    """Refuse an unknown strategy, precision, accelerator or attention kernel, naming the choices."""
    choices = {"strategy": STRATEGIES, "precision": PRECISIONS, "accelerator": ACCELERATORS, "attention": ATTENTION}
    for what, value in given.items():
        if value is not None and value not in choices[what]:
            options = ", ".join(choices[what])
            raise AdaptError(f"unknown {what} '{value}'; choose one of {options}." + did_you_mean(value, choices[what]))
