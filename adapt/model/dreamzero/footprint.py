"""What one training sample costs DreamZero's Wan DiT (`adapt.model.footprint` says what each function returns);
the counts follow `DreamZeroBlock.forward` (diffusers' Wan block, residual arithmetic in fp32), and
tests/test_plan.py checks them against autograd's saved tensors."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from adapt.embodiment import EmbodimentSpec
from adapt.lora import unwrapped
from adapt.model.dreamzero.registers import CategorySpecificLinear
from adapt.model.footprint import Shape

MATMULS = (nn.Linear, nn.Conv3d, CategorySpecificLinear)


def training_shape(model: nn.Module, spec: EmbodimentSpec, mode: str) -> tuple[dict[str, int], Shape]:
    """Clean and noisy video tokens of 1 + frames_per_block latent frames, the action chunk, a state token;
    cross-attention to text_len text and image_tokens CLIP keys."""
    c, block = model.config, unwrapped(model.backbone).blocks[0]
    video = (1 + c.frames_per_block) * c.frame_tokens
    tokens = {"clean video": video, "noisy video": video, "actions": spec.action.chunk, "state": 1}
    total = sum(tokens.values())
    shape = Shape(
        c.architecture,
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


def block_kept(s: Shape, b: int, attention: str) -> Counter:
    """Elements `DreamZeroBlock.forward` keeps for backward by tag. t = B L D, m = B L ffn, n = B L,
    a = B heads L, T = B text D, i = B image D: what the context-side projections (attn2 to_k/to_v/add_k/add_v)
    see."""
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


def outside_kept(s: Shape, b: int) -> Counter:
    """The final norm/modulation and output projection; in a full fine-tune also the time, text and image
    embedders."""
    t, out = b * s.tokens * s.dim, b * s.output * s.dim
    kept = Counter(x=t + out)
    if s.conditioning_trains:
        w = s.widths
        kept.update(x=b * s.tokens * w["freq"] + 4 * t + b * s.image * (w["image"] + s.dim))  # + FP32LayerNorm inputs
        kept["c"] = 3 * b * s.image * w["image"] + b * s.text * (w["text"] + 2 * s.dim)
    return kept


def checkpointed_shared(s: Shape, b: int) -> tuple[Counter, int]:
    """e0 (B, L, 6, D) and the text and image context, and one (L, L) mask for the whole batch."""
    return Counter(c=6 * b * s.tokens * s.dim + b * (s.text + s.image) * s.dim), s.tokens**2


def encoder_flops(model: nn.Module, spec: EmbodimentSpec) -> float:
    """The VAE on the context and future frames (twice for Wan2.1-I2V: it also encodes the first-frame
    condition), CLIP on one image and umT5 on the prompt."""
    from torch.utils.flop_counter import FlopCounterMode

    c, encoders = model.config, model.tokenizer
    with torch.device(next(encoders.parameters()).device), torch.no_grad(), FlopCounterMode(display=False) as counter:
        video = torch.zeros(1, 1 + c.future, 3, 2 * c.view_height, 2 * c.view_width, dtype=torch.uint8)
        for _ in range(2 if c.model_type == "i2v" else 1):
            encoders.encode_video(video)
        side = encoders.image_encoder.config.image_size
        encoders.image_encoder(pixel_values=torch.zeros(1, 3, side, side), output_hidden_states=True)
    text = encoders.text_encoder  # umT5 (no meta-device forward): 2 x (weights - embedding table) x tokens
    weights = sum(p.numel() for p in text.parameters()) - text.get_input_embeddings().weight.numel()
    return float(counter.get_total_flops()) + 2 * weights * c.text_len


FLOAT32_BLOCKS_ON_CPU = True
"""bf16 blocks compute in float32 on a CPU without bf16 units (`dit.blocks_compute_in_float32`)."""


def streamed_encoders(model: nn.Module) -> tuple[int, int]:
    """A released checkpoint's encoders stay in its files (`adapt.model.dreamzero.streamed`): all their
    parameters, and the largest of the VAE whole, CLIP whole and one umT5 piece (its token embedding)."""
    from adapt.model.dreamzero.streamed import pieces

    encoders = model.tokenizer
    largest = max(sum(p.numel() for p in m.parameters()) for m in pieces(encoders))
    return sum(p.numel() for p in encoders.parameters()), largest
