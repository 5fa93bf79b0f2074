"""What one training sample costs a family's transformer: the seam between the families and `adapt plan`.

Each family (`adapt.model.protocol.Family.footprint`) names a module that knows its own block code and provides:

- `training_shape(model, spec, mode) -> (tokens, Shape)`: tokens per sample by part (with a `total`) and the
  `Shape` the memory and FLOP counts follow;
- `block_kept(shape, batch, attention) -> Counter`, `outside_kept(shape, batch) -> Counter`: the elements autograd
  keeps for backward in one transformer block and outside the blocks, by tag (`c`: compute dtype, bf16 under
  autocast; `f`: fp32 under autocast (norms); `x`: fp32 always; `ac`: bf16 under autocast only);
- `checkpointed_shared(shape, batch) -> (Counter, mask)`: under activation checkpointing, what every block shares
  (kept once) and the attention mask's elements;
- `encoder_flops(model, spec) -> float`: the frozen encoders' forward FLOPs for one sample;
- `streamed_encoders(model) -> (int, int)`: encoder parameters left in the checkpoint's files while training and
  the most of them read at one time (a cache miss), or (0, 0) when the encoders are resident;
- `MATMULS`: the module types whose weights autocast casts to bf16 (their weight is `weight`, or `W`);
- `FLOAT32_BLOCKS_ON_CPU`: whether bf16 blocks compute in float32 on a CPU without bf16 units (a float32 copy of
  a block's weights while it runs, float32 activations inside it).

`adapt.plan` adds these up; a new family brings its own module and `plan` needs no change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def cpu_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); without, torch's bf16 matmuls and their
    backward run reference kernels, far slower than float32."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


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
