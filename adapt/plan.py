"""Sizing a training run before it starts (`adapt plan`): parameters, trainable parameters, memory per device and
step time of a base x recipe x devices x strategy x precision.

The model is built on the meta device (a 14B base costs nothing) and the recipe applied by finetune's own
`set_trainable` (peft's LoRA works on meta tensors), so the trainable set is the one `adapt finetune` trains.
Memory per device, line by line:

- weights: every parameter at the precision's storage dtype (32-true and bf16-mixed fp32, bf16-true bf16);
- gradients: the trainable parameters, same dtype; optimizer: AdamW's two moments per trainable parameter,
  allocated like the parameter (`zeros_like`: bf16 under bf16-true), nothing else;
- activations: what autograd keeps for backward, counted tensor by tensor from the block code (`_dit_block`,
  `_wan_block`; tests/test_plan.py checks them against autograd's saved tensors); with checkpointing on the
  blocks: each block's input, the inputs all blocks share, and one block recomputed in backward;
- autocast copies (bf16-mixed, not fsdp): autocast casts each weight a matmul uses to bf16 and autograd keeps the
  copy until backward; communication: DDP's gradient buckets (a second copy of the trainable gradients, torch's
  default) on several devices, or FSDP's gathered parameters of two blocks (computing and prefetched);
  workspace: cuBLAS's on a GPU.

The total adds the lines: an upper bound, as gradients appear in backward while activations are freed. It is
what `torch.cuda.max_memory_allocated` counts; a CPU process's RSS is larger by its allocator's slack (up to
~15 % on `base`, benchmarks/plan.py). `fsdp`
divides weights, gradients and AdamW state by the devices, not activations; it assumes each transformer block
is its own FSDP unit, as `adapt finetune --strategy fsdp` wraps them (`adapt.train.fit`). The batch is per
device (Lightning's loaders are per process).

Attention: with a boolean mask PyTorch 2.x runs scaled_dot_product_attention through a fused kernel on both
accelerators (flash attention for CPU; memory-efficient attention on CUDA): it keeps q, k, v, the output, a
log-sum-exp and the mask as a float bias, never batch x heads x L x L scores. `attention="math"` (older torch,
attention dropout) adds the probabilities it keeps.

Step time: 2 x weights x tokens per matmul pass, each linear layer on the tokens it sees (forward; input gradient;
weight gradient where the weight trains: ~6x params x tokens for full training, ~4x for frozen weights), attention
4 x L x keys x dim per layer forward (x3 with backward), and the frozen encoders' forward, at `RATES`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError, did_you_mean
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


@dataclass(frozen=True)
class Shape:
    """What one sample of a training step looks like to the transformer; activations and FLOPs follow it."""

    family: str
    tokens: int
    """Sequence length L at the transformer's input."""
    dim: int
    ffn: int
    heads: int
    depth: int
    output: int
    """Tokens the output head decodes (the noisy video)."""
    text: int = 0
    image: int = 0
    """Cross-attention keys per sample (DreamZero's text and CLIP tokens)."""
    trains: frozenset[str] = frozenset()
    """Linear layers of a block that keep their input for backward (their weight trains, or their LoRA)."""
    lora: frozenset[str] = frozenset()
    rank: int = 0
    conditioning_trains: bool = False
    """The time/context embedders and the per-block modulation train (a full fine-tune)."""
    norm_weights_train: bool = False
    widths: dict[str, int] = field(default_factory=dict)
    """DreamZero's embedder input widths (time features, text, image)."""


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


@dataclass
class Memory:
    """Bytes per device, one line per cause."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    autocast_copies: float
    communication: float
    workspace: float

    @property
    def total(self) -> float:
        return sum(asdict(self).values())


# -- the model on the meta device -----------------------------------------------------------------------------


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
    from adapt.model import PRESETS, build_model
    from adapt.model.checkpoint import read_specs_and_stats
    from adapt.model.dreamzero import checkpoint as dreamzero
    from adapt.model.dreamzero.config import DREAMZERO_PRESETS
    from adapt.model.protocol import parse_config

    name, folder, presets = str(base), Path(base), {**PRESETS, **DREAMZERO_PRESETS}
    with torch.device("meta"):
        if name in presets:
            return build_model(presets[name]), name
        if dreamzero.is_dreamzero(folder):
            return build_model(dreamzero.read_config(folder)), name
        if (folder / "config.json").is_file():
            from adapt.files import read_json_object

            raw = read_json_object(folder / "config.json", "model config")
            try:
                config, names = parse_config(raw["model"]), list(raw["embodiments"])
            except (KeyError, TypeError, ValueError) as error:
                raise AdaptError(f"{folder / 'config.json'}: not a valid model config ({error})") from None
            return build_model(config, read_specs_and_stats(folder, names)[0]), name
    raise AdaptError(
        f"unknown base '{name}': not a preset ({', '.join(presets)}) and not a checkpoint folder with a config.json."
        + did_you_mean(name, presets)
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
    dit = _unwrap(model.backbone)
    block = dit.blocks[0]
    family = getattr(model.config, "architecture", "wam-dit")
    tokens, shape = (_dreamzero_shape if family == "dreamzero" else _dit_shape)(model, spec, mode)
    shape = replace(shape, **_linears_keeping_input(block), rank=rank)
    keys = shape.tokens + shape.text + shape.image
    flops = {
        "linear layers": _linear_flops(block, shape) * shape.depth,
        "attention": 12 * shape.tokens * keys * shape.dim * shape.depth,
        "frozen encoders": _encoder_flops(model, spec),
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
        matmul_weights=_matmul_weights(model, dit),
        block_parameters=sum(p.numel() for p in block.parameters()),
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


def _unwrap(backbone: nn.Module) -> nn.Module:
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


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


def _matmul_weights(model: nn.Module, dit: nn.Module) -> int:
    """Weights of matmuls whose input needs a gradient (in the blocks, but for projections of a frozen context)
    or whose weight trains: what autocast keeps a bf16 copy of."""
    from adapt.model.dreamzero.registers import CategorySpecificLinear

    frozen_context = not any(p.requires_grad for p in getattr(dit, "condition_embedder", nn.Identity()).parameters())
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv3d | CategorySpecificLinear) and not name.startswith("tokenizer"):
            weight = module.weight if hasattr(module, "weight") else module.W
            if weight.requires_grad or (".blocks." in name and not (frozen_context and _context_side(name))):
                total += weight.numel()
    return total


def _context_side(name: str) -> bool:
    return any(part in name for part in ("attn2.to_k", "attn2.to_v", "attn2.add_k_proj", "attn2.add_v_proj"))


def _dit_shape(model: nn.Module, spec: EmbodimentSpec, mode: str) -> tuple[dict[str, int], Shape]:
    """Our DiT: [context video | state | task | future video | actions], as benchmarks/model.py counts them."""
    c, cams = model.config, len(spec.cameras)
    tokens = {
        "context video": cams * c.context * c.tokens_per_frame,
        "state": 1,
        "task": c.text_len,
        "future video": 0 if mode == "action_only" else cams * c.future * c.tokens_per_frame,
        "actions": spec.action.chunk if spec.action and mode != "video_only" else 0,
    }
    total = sum(tokens.values())
    modulation = _unwrap(model.backbone).blocks[0].modulation.weight.requires_grad
    shape = Shape("wam-dit", total, c.dim, int(c.dim * c.mlp_ratio), c.heads, c.depth, tokens["future video"])
    return {**tokens, "total": total}, replace(shape, conditioning_trains=modulation)


def _dreamzero_shape(model: nn.Module, spec: EmbodimentSpec, mode: str) -> tuple[dict[str, int], Shape]:
    """DreamZero: clean and noisy video tokens of 1 + frames_per_block latent frames, the action chunk, a state
    token; cross-attention to text_len text and image_tokens CLIP keys."""
    c, block = model.config, _unwrap(model.backbone).blocks[0]
    video = (1 + c.frames_per_block) * c.frame_tokens
    tokens = {"clean video": video, "noisy video": video, "actions": spec.action.chunk, "state": 1}
    total = sum(tokens.values())
    shape = Shape(
        "dreamzero",
        total,
        c.dim,
        c.ffn_dim,
        c.num_heads,
        c.num_layers,
        video,
        text=c.text_len,
        image=c.image_tokens,
        conditioning_trains=block.scale_shift_table.requires_grad,
        norm_weights_train=block.attn1.norm_q.weight.requires_grad,
        widths={"freq": c.freq_dim, "text": c.text_dim, "image": c.image_dim},
    )
    return {**tokens, "total": total, "cross-attention keys": c.text_len + c.image_tokens}, shape


# -- activations ------------------------------------------------------------------------------------------------


def _dit_block(s: Shape, b: int, attention: str) -> Counter:
    """Elements our `DiTBlock.forward` keeps for backward by tag (c: compute dtype, f: fp32 under autocast, x: fp32
    always, ac: bf16 under autocast only). t = B L D, m = B L ffn, n = B L, a = B heads L."""
    t, m, n, a = b * s.tokens * s.dim, b * s.tokens * s.ffn, b * s.tokens, b * s.heads * s.tokens
    kept = Counter(f=4 * t + 4 * n + 4 * a, x=a)  # norm1/norm2 inputs (the residual) and outputs, their mean/rstd;
    # q/k-norm statistics; the attention's log-sum-exp
    kept["c"] = 16 * t + m + b * s.tokens**2  # (1 + scale) x2, the 6-way modulation (the gates keep it), qkv
    # output (3), normed q and k, attention output, proj and MLP outputs (the gated adds keep them), fc1 output
    # (GELU keeps it), the (B, 1, L, L) boolean mask as a float bias
    kept["c"] += t * len(s.trains & {"attn.qkv", "attn.proj", "mlp.fc1"}) + m * ("mlp.fc2" in s.trains)
    kept["c"] += n * s.rank * len(s.lora)  # LoRA's rank-r hidden states
    if attention == "math":  # keeps the probabilities instead of the output, the mask and the log-sum-exp
        kept.update(c=b * s.heads * s.tokens**2 - b * s.tokens**2 - t, x=-a)
    return kept


def _wan_block(s: Shape, b: int, attention: str) -> Counter:
    """Elements `DreamZeroBlock.forward` (diffusers' Wan block, residual arithmetic in fp32) keeps for backward.
    T = B text D, i = B image D: what the context-side projections (attn2 to_k/to_v/add_k/add_v) see."""
    t, m, n, a = b * s.tokens * s.dim, b * s.tokens * s.ffn, b * s.tokens, b * s.heads * s.tokens
    T, i, trains = b * s.text * s.dim, b * s.image * s.dim, s.trains
    kept = Counter(x=11 * t + 6 * n + 3 * a, f=3 * t + 3 * n)  # x.float() into norm1/2/3, (1 + scale), (1 + c_scale),
    # the (B, L, 6, D) modulation sum (the gates keep it), norm statistics, 3 log-sum-exps; to_q and to_k outputs
    # of self-attention and to_q of cross-attention (RMS-normed)
    kept["c"] = 7 * t + m + 2 * T + 2 * i + s.tokens**2  # rotated q, k, v; self-attention output; normed cross q,
    # its two outputs; ffn hidden (GELU keeps it); text and image k, v; the (L, L) mask as a float bias
    qkv = len(trains & {"attn1.to_q", "attn1.to_k", "attn1.to_v"})
    kept["c"] += t * (bool(qkv) + ("attn1.to_out.0" in trains) + ("attn2.to_q" in trains))
    kept["c"] += t * (("attn2.to_out.0" in trains) + ("ffn.net.0.proj" in trains)) + m * ("ffn.net.2" in trains)
    kept["c"] += T * (("attn2.to_k" in trains) + ("attn2.to_v" in trains))
    kept["f"] += T * ("attn2.to_k" in trains)  # its output, RMS-normed, needs a gradient now
    kept["ac"] = t * max(qkv - 1, 0)  # the residual stream is fp32 (the registers' biases promote it), so autocast
    # casts the block input to bf16 once per projection
    kept["c"] += sum(b * (s.text if name in ("attn2.to_k", "attn2.to_v") else s.tokens) * s.rank for name in s.lora)
    if s.conditioning_trains:  # norm1/norm3 outputs and the gated outputs, for the modulation's gradient
        kept.update(x=3 * t, c=t)
    if "attn2.add_k_proj" in trains:
        kept.update(c=2 * i, f=i)  # image slices copied into add_k_proj/add_v_proj; add_k_proj's output, RMS-normed
    if s.norm_weights_train:  # RMSNorm keeps its normalised output when its weight trains
        kept.update(f=3 * t + T + i * ("attn2.add_k_proj" in trains))
    if attention == "math":  # keeps the probabilities instead of the 3 outputs, the mask and the log-sum-exps
        kept.update(c=b * s.heads * s.tokens * (s.tokens + s.text + s.image) - s.tokens**2 - 3 * t, x=-3 * a)
    return kept


def _outside_blocks(s: Shape, b: int) -> Counter:
    """The final norm/modulation and output projection; in DreamZero's full fine-tune also the time, text and image
    embedders."""
    t, out = b * s.tokens * s.dim, b * s.output * s.dim
    if s.family != "dreamzero":
        return Counter(f=2 * t + 2 * b * s.tokens, c=t + out * s.conditioning_trains)
    kept = Counter(x=t + out)
    if s.conditioning_trains:
        w = s.widths
        kept.update(x=b * s.tokens * w["freq"] + 4 * t + b * s.image * (w["image"] + s.dim))  # + FP32LayerNorm inputs
        kept["c"] = 3 * b * s.image * w["image"] + b * s.text * (w["text"] + 2 * s.dim)
    return kept


def activation_parts(p: Plan, run: Run | None = None) -> dict[str, float]:
    """Bytes autograd keeps at the peak of a step (the end of forward): `block` (one block's), `blocks` (all, or
    under checkpointing their inputs, what they share and one recomputed block), `outside`, `total`."""
    run = run or Run()
    prec, s, b = PRECISIONS[run.precision], p.shape, run.batch_size or p.batch_size
    size = {"c": prec.compute, "f": prec.norm, "x": 4, "ac": 2 * prec.autocast}

    def nbytes(kept: Counter) -> float:
        return sum(size[tag] * count for tag, count in kept.items())

    block = nbytes((_wan_block if s.family == "dreamzero" else _dit_block)(s, b, p.attention))
    blocks = s.depth * block
    if run.checkpointing:  # each block keeps its input (the residual stream: fp32 under autocast in both families);
        # all share the boolean mask and, in DreamZero, e0 (B, L, 6, D) and the context; one block is recomputed
        t = b * s.tokens * s.dim
        shared = Counter(c=6 * t + b * (s.text + s.image) * s.dim) if s.family == "dreamzero" else Counter()
        mask = s.tokens**2 * (1 if s.family == "dreamzero" else b)
        blocks = s.depth * nbytes(Counter(f=t)) + nbytes(shared) + mask + block
    outside = nbytes(_outside_blocks(s, b))
    return {"block": block, "blocks": blocks, "outside": outside, "total": blocks + outside}


def saved_for_backward(run, model: nn.Module) -> int:
    """Bytes of the distinct tensors autograd saves while `run()` executes, parameters excluded: what
    `activation_parts` plus autocast copies estimates, measured."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(seen.values())


# -- memory, time, verdicts -------------------------------------------------------------------------------------


def memory(p: Plan, run: Run | None = None) -> Memory:
    """Bytes per device of one training step, by cause (see the module docstring)."""
    run = run or Run()
    prec = PRECISIONS[run.precision]
    sharded = run.strategy == "fsdp" and run.devices > 1
    shard, trainable = run.devices if sharded else 1, p.trainable * prec.storage
    communication = 2 * p.block_parameters * prec.compute if sharded else trainable * (run.devices > 1)
    return Memory(
        weights=p.parameters["total"] * prec.storage / shard,
        gradients=trainable / shard,
        optimizer=2 * trainable / shard,
        activations=activation_parts(p, run)["total"],
        autocast_copies=2 * p.matmul_weights * (prec.autocast and not sharded),
        communication=communication,
        workspace=GPU_WORKSPACE * (p.accelerator == "gpu"),
    )


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


def _encoder_flops(model: nn.Module, spec: EmbodimentSpec) -> float:
    """Forward FLOPs of the frozen encoders for one sample, counted by FlopCounterMode (on meta tensors in a plan)."""
    from torch.utils.flop_counter import FlopCounterMode

    c, encoders = model.config, model.tokenizer
    with torch.device(next(encoders.parameters()).device), torch.no_grad(), FlopCounterMode(display=False) as counter:
        if getattr(c, "architecture", "wam-dit") != "dreamzero":
            frames = torch.zeros(1, len(spec.cameras), c.context + c.future, 3, c.image_size, c.image_size)
            encoders.encode(frames.to(torch.uint8))
            return float(counter.get_total_flops())
        video = torch.zeros(1, 1 + c.future, 3, 2 * c.view_height, 2 * c.view_width, dtype=torch.uint8)
        for _ in range(2 if c.model_type == "i2v" else 1):  # Wan2.1-I2V also encodes the first-frame condition
            encoders.encode_video(video)
        side = encoders.image_encoder.config.image_size
        encoders.image_encoder(pixel_values=torch.zeros(1, 3, side, side), output_hidden_states=True)
    text = encoders.text_encoder  # umT5 (no meta-device forward): 2 x (weights - embedding table) x tokens
    weights = sum(p.numel() for p in text.parameters()) - text.get_input_embeddings().weight.numel()
    return float(counter.get_total_flops()) + 2 * weights * c.text_len


def step_seconds(p: Plan, run: Run | None = None, tflops: float | None = None) -> float:
    """Seconds per optimizer step on each device at `tflops` (default `RATES`)."""
    run = run or Run()
    rate = tflops or RATES[(p.accelerator, PRECISIONS[run.precision].compute)]
    seconds = sum(p.flops_per_sample.values()) * (run.batch_size or p.batch_size) / (rate * 1e12)
    return seconds + CPU_OVERHEAD_S * (p.accelerator == "cpu")


def fits(m: Memory, gpu_memory_gib: float) -> bool:
    return m.total <= USABLE * gpu_memory_gib * GIB


@dataclass
class Verdict:
    devices: int
    fits: bool
    """With or without checkpointing."""
    text: str
    would_fit: list[str]


def verdict(p: Plan, run: Run, gpu_memory_gib: float) -> Verdict:
    """Whether `run` fits devices of `gpu_memory_gib`, with or without checkpointing, and if not, what would."""
    plain, ckpt = memory(p, replace(run, checkpointing=False)), memory(p, replace(run, checkpointing=True))
    head = f"{run.devices} device{'s' * (run.devices > 1)}: "
    usable = f"{USABLE * gpu_memory_gib:.0f} GiB usable of {gpu_memory_gib:g}"
    if fits(plain, gpu_memory_gib):
        return Verdict(run.devices, True, head + f"fits, {plain.total / GIB:.1f} GiB per device ({usable})", [])
    if fits(ckpt, gpu_memory_gib):
        text = f"fits with activation checkpointing, {ckpt.total / GIB:.1f} GiB per device ({plain.total / GIB:.0f}"
        return Verdict(run.devices, True, head + text + f" without; {usable})", [])
    found = suggestions(p, run, gpu_memory_gib)
    text = f"does not fit, {plain.total / GIB:,.0f} GiB per device, {ckpt.total / GIB:,.0f} with checkpointing "
    ways = "; or ".join(found) or "nothing up to 64 devices and batch 1"
    return Verdict(run.devices, False, head + text + f"({usable}); would fit: {ways}", found)


def suggestions(p: Plan, run: Run, gpu_memory_gib: float, limit: int = 3) -> list[str]:
    """Changes that make `run` fit: fsdp on as many or more devices (up to 64), bf16-true, checkpointing, a smaller
    batch. Per set of changes the fewest devices, then the largest batch; the fewest changes first."""
    batch = run.batch_size or p.batch_size
    best: dict[frozenset, tuple] = {}
    for candidate in _candidates(run, batch):
        changed = {
            "fsdp": (candidate.strategy, candidate.devices) != (run.strategy, run.devices),
            "precision": candidate.precision != run.precision,
            "checkpointing": candidate.checkpointing and not run.checkpointing,
            "batch": candidate.batch_size != batch,
        }
        knobs = frozenset(k for k, v in changed.items() if v)
        total = memory(p, candidate).total
        key = (len(knobs), candidate.devices, -candidate.batch_size, total)
        if knobs and total <= USABLE * gpu_memory_gib * GIB and (knobs not in best or key < best[knobs][0]):
            best[knobs] = (key, candidate, knobs)
    return [_describe(c, knobs) + f" ({key[3] / GIB:.0f} GiB)" for key, c, knobs in sorted(best.values())[:limit]]


def _candidates(run: Run, batch: int):
    devices = [(run.strategy, run.devices)] + [
        ("fsdp", d)
        for d in (2**k for k in range(1, 7))
        if d >= run.devices and (run.strategy, d) != ("fsdp", run.devices)
    ]
    for strategy, d in devices:
        for precision in dict.fromkeys([run.precision, "bf16-true"]):
            for ckpt in dict.fromkeys([run.checkpointing, True]):
                for b in dict.fromkeys(batch // 2**k for k in range(12) if batch // 2**k > 0):
                    yield Run(d, strategy, precision, ckpt, b)


def _describe(c: Run, knobs: frozenset) -> str:
    text = {
        "fsdp": f"fsdp on {c.devices} devices",
        "precision": c.precision,
        "checkpointing": "activation checkpointing",
    }
    return " + ".join([text[k] for k in text if k in knobs] + [f"batch {c.batch_size}"] * ("batch" in knobs))


def report(
    p: Plan,
    devices: list[int],
    strategy: str,
    precision: str,
    gpu_memory_gib: float = 80.0,
    tflops: float | None = None,
) -> dict:
    """The plan as plain data (`adapt plan --json`): parameters, tokens, step time, memory per device in GiB with
    and without checkpointing for each device count, and a verdict per device count."""
    runs = [Run(d, strategy, precision, ckpt) for d in devices for ckpt in (False, True)]
    rows = []
    for run in runs:
        m = memory(p, run)
        lines = {k: v / GIB for k, v in asdict(m).items()}
        rows.append(
            {
                "devices": run.devices,
                "checkpointing": run.checkpointing,
                **lines,
                "total": m.total / GIB,
                "fits": fits(m, gpu_memory_gib),
            }
        )
    step = {part: f * p.batch_size for part, f in p.flops_per_sample.items()}
    rate = tflops or RATES[(p.accelerator, PRECISIONS[precision].compute)]
    return {
        **{k: getattr(p, k) for k in ("base", "recipe", "embodiment", "accelerator", "attention", "batch_size")},
        "strategy": strategy,
        "precision": precision,
        "parameters": {**p.parameters, "trainable": p.trainable},
        "tokens_per_sample": p.tokens,
        "step": {
            "flops": sum(step.values()),
            "flops_by_part": step,
            "tflops_per_device": rate,
            "seconds": step_seconds(p, runs[0], tflops),
        },
        "gpu_memory_gib": gpu_memory_gib,
        "usable_fraction": USABLE,
        "memory_gib": rows,
        "verdicts": [asdict(verdict(p, run, gpu_memory_gib)) for run in runs[::2]],
    }


def check_options(**given: str | None) -> None:
    """Refuse an unknown strategy, precision, accelerator or attention kernel, naming the choices."""
    choices = {"strategy": STRATEGIES, "precision": PRECISIONS, "accelerator": ACCELERATORS, "attention": ATTENTION}
    for what, value in given.items():
        if value is not None and value not in choices[what]:
            options = ", ".join(choices[what])
            raise AdaptError(f"unknown {what} '{value}'; choose one of {options}." + did_you_mean(value, choices[what]))
