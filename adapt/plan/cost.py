"""Memory per device of a planned training step, line by line, and its step time.

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
from dataclasses import asdict, dataclass

import torch
from torch import nn

from adapt.plan.model import CPU_OVERHEAD_S, GPU_WORKSPACE, PRECISIONS, RATES, Plan, Run, Shape


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


def step_seconds(p: Plan, run: Run | None = None, tflops: float | None = None) -> float:
    """Seconds per optimizer step on each device at `tflops` (default `RATES`)."""
    run = run or Run()
    rate = tflops or RATES[(p.accelerator, PRECISIONS[run.precision].compute)]
    seconds = sum(p.flops_per_sample.values()) * (run.batch_size or p.batch_size) / (rate * 1e12)
    return seconds + CPU_OVERHEAD_S * (p.accelerator == "cpu")
