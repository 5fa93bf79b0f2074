"""What one training sample costs our DiT (`adapt.model.footprint` says what each function returns); the counts
follow `DiTBlock.forward`, and tests/test_plan.py checks them against autograd's saved tensors."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import torch
from torch import nn

from adapt.embodiment import EmbodimentSpec
from adapt.lora import unwrapped
from adapt.model.footprint import Shape

MATMULS = (nn.Linear, nn.Conv3d)


def training_shape(model: nn.Module, spec: EmbodimentSpec, mode: str) -> tuple[dict[str, int], Shape]:
    """[context video | state | task | future video | actions], as benchmarks/model.py counts them."""
    c, cams = model.config, len(spec.cameras)
    tokens = {
        "context video": cams * c.context * c.tokens_per_frame,
        "state": 1,
        "task": c.text_len,
        "future video": 0 if mode == "action_only" else cams * c.future * c.tokens_per_frame,
        "actions": spec.action.chunk if spec.action and mode != "video_only" else 0,
    }
    total = sum(tokens.values())
    modulation = unwrapped(model.backbone).blocks[0].modulation.weight.requires_grad
    shape = Shape(c.architecture, total, c.dim, int(c.dim * c.mlp_ratio), c.heads, c.depth, tokens["future video"])
    return {**tokens, "total": total}, replace(shape, conditioning_trains=modulation)


def block_kept(s: Shape, b: int, attention: str) -> Counter:
    """Elements `DiTBlock.forward` keeps for backward by tag. t = B L D, m = B L ffn, n = B L, a = B heads L."""
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


def outside_kept(s: Shape, b: int) -> Counter:
    """The final norm/modulation and output projection."""
    t, out = b * s.tokens * s.dim, b * s.output * s.dim
    return Counter(f=2 * t + 2 * b * s.tokens, c=t + out * s.conditioning_trains)


def checkpointed_shared(s: Shape, b: int) -> tuple[Counter, int]:
    """Nothing but the (B, 1, L, L) mask is shared by the blocks."""
    return Counter(), b * s.tokens**2


def encoder_flops(model: nn.Module, spec: EmbodimentSpec) -> float:
    """The tokenizer's encoder on every camera's context and future frames."""
    from torch.utils.flop_counter import FlopCounterMode

    c, encoders = model.config, model.tokenizer
    with torch.device(next(encoders.parameters()).device), torch.no_grad(), FlopCounterMode(display=False) as counter:
        frames = torch.zeros(1, len(spec.cameras), c.context + c.future, 3, c.image_size, c.image_size)
        encoders.encode(frames.to(torch.uint8))
    return float(counter.get_total_flops())


FLOAT32_BLOCKS_ON_CPU = False
"""Blocks compute in their weights' dtype everywhere (a small model: bf16 is a GPU choice)."""


def streamed_encoders(model: nn.Module) -> tuple[int, int]:
    """The frame tokenizer is small and always resident (counted with the weights)."""
    return 0, 0
