"""Memory per device of a planned training step, line by line, and its step time.

- weights: every parameter at the precision's storage dtype (32-true and bf16-mixed fp32, bf16-true bf16), but
  for encoders that stay in the base's files (DreamZero's); encoders: the most of those read at one time (on an
  encoder-cache miss; 0 once the cache holds every input, but a plan cannot know that), float32 on a CPU;
- gradients: the trainable parameters, same dtype; optimizer: AdamW's two moments per trainable parameter,
  allocated like the parameter (`zeros_like`: bf16 under bf16-true), nothing else;
- activations: what autograd keeps for backward, counted tensor by tensor from each family's block code (its
  `adapt.model.footprint` module; tests/test_plan.py checks them against autograd's saved tensors); with
  checkpointing on the blocks: each block's input, the inputs all blocks share, and one block recomputed in
  backward;
- autocast copies (bf16-mixed, not fsdp): autocast casts each weight a matmul uses to bf16 and autograd keeps the
  copy until backward; float32 block (bf16-true on a CPU without bf16 units, families that upcast): the float32
  copy of a block's weights it computes with, one block's under checkpointing (every block's without), and the
  activations inside blocks in float32; communication: DDP's gradient buckets (a second copy of the trainable
  gradients, torch's default) on several devices, or FSDP's gathered parameters of two blocks (computing and
  prefetched); workspace: cuBLAS's on a GPU.

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

from adapt.model.protocol import family_footprint
from adapt.plan.model import CPU_OVERHEAD_S, GPU_WORKSPACE, PRECISIONS, RATES, Plan, Run


@dataclass
class Memory:
    """Bytes per device, one line per cause."""

    weights: float
    encoders: float
    gradients: float
    optimizer: float
    activations: float
    autocast_copies: float
    float32_block: float
    communication: float
    workspace: float

    @property
    def total(self) -> float:
        return sum(asdict(self).values())


def activation_parts(p: Plan, run: Run | None = None) -> dict[str, float]:
    """Bytes autograd keeps at the peak of a step (the end of forward): `block` (one block's), `blocks` (all, or
    under checkpointing their inputs, what they share and one recomputed block), `outside`, `total`."""
    run = run or Run()
    prec, s, b = PRECISIONS[run.precision], p.shape, run.batch_size or p.batch_size
    size = {"c": 4 if upcasts(p, run) else prec.compute, "f": prec.norm, "x": 4, "ac": 2 * prec.autocast}

    def nbytes(kept: Counter) -> float:
        return sum(size[tag] * count for tag, count in kept.items())

    footprint = family_footprint(s.family)
    block = nbytes(footprint.block_kept(s, b, p.attention))
    blocks = s.depth * block
    if run.checkpointing:  # each block keeps its input (the residual stream: fp32 under autocast in both families),
        # what the blocks share once, and one block is recomputed
        shared, mask = footprint.checkpointed_shared(s, b)
        blocks = s.depth * nbytes(Counter(f=b * s.tokens * s.dim)) + nbytes(shared) + mask + block
    outside = nbytes(footprint.outside_kept(s, b))
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
        weights=(p.parameters["total"] - p.streamed_parameters) * prec.storage / shard,
        encoders=p.streamed_piece * (4 if p.accelerator == "cpu" else prec.storage),  # float32 on a CPU (streamed.py)
        gradients=trainable / shard,
        optimizer=2 * trainable / shard,
        activations=activation_parts(p, run)["total"],
        autocast_copies=2 * p.matmul_weights * (prec.autocast and not sharded),
        float32_block=4 * p.block_parameters * (1 if run.checkpointing else p.shape.depth) * upcasts(p, run),
        communication=communication,
        workspace=GPU_WORKSPACE * (p.accelerator == "gpu"),
    )


def upcasts(p: Plan, run: Run) -> bool:
    """Whether the blocks of this run compute in float32 from bf16 weights (`Plan.float32_blocks`, bf16-true)."""
    return p.float32_blocks and PRECISIONS[run.precision].storage == 2


def step_seconds(p: Plan, run: Run | None = None, tflops: float | None = None) -> float:
    """Seconds per optimizer step on each device at `tflops` (default `RATES`)."""
    run = run or Run()
    rate = tflops or RATES[(p.accelerator, PRECISIONS[run.precision].compute)]
    seconds = sum(p.flops_per_sample.values()) * (run.batch_size or p.batch_size) / (rate * 1e12)
    return seconds + CPU_OVERHEAD_S * (p.accelerator == "cpu")
