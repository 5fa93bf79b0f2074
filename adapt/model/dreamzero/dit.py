"""DreamZero's video DiT: Wan2.1/Wan2.2 transformer blocks over video tokens plus action and state registers.

The modules are diffusers' Wan modules (`WanTransformerBlock`, `WanTimeTextImageEmbedding`,
`WanRotaryPosEmbed`), so a Wan or DreamZero checkpoint loads through diffusers' own key names
(`adapt.model.dreamzero.keys` maps DreamZero's original names onto them). The forward passes are ours,
because DreamZero's differ from a plain Wan forward in three ways diffusers' block forward cannot express:

- **Per-token flow times.** Every token carries its own time (clean context 0, each noisy video frame its
  block's time, each action token its own); the shared time embedding turns each into adaLN modulation.
- **A block-causal attention pattern over registers** (training, teacher-forced): the sequence is
  `[clean video | noisy video | action tokens | state tokens]`, where a block is `frames_per_block` latent
  frames with `actions_per_block` action tokens and `states_per_block` state tokens. Clean frames attend
  causally by block; a noisy block and its actions attend to the clean frames before it, to themselves
  and to their block's state; a state token attends only to itself (`attention_mask`).
- **Registers with 1-D RoPE** over the whole head dimension, counted from 0 for actions and for states,
  beside 3-D RoPE (frame, row, column) for video, clean and noisy halves at the same positions.

At inference the clean observed frames are encoded once into per-layer keys/values (`encode_clean`) and
each denoising step runs only the current block's noisy video, action and state tokens against them,
with no mask among the current block's tokens (`denoise`), as DreamZero's KV-cached inference does.

On a CPU without bf16 units, bf16 weights are stored in bf16 but each block computes in float32
(`blocks_compute_in_float32`): torch runs bf16 matmuls and their backward there through reference kernels,
and a dreamzero-5b adaptation step did not finish in 40 minutes (benchmarks/dreamzero_real_size.py).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanRotaryPosEmbed,
    WanTimeTextImageEmbedding,
    WanTransformerBlock,
)
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from adapt.model.dreamzero.config import DreamZeroConfig
from adapt.model.footprint import cpu_bf16_units

LORA_TARGETS = {
    "attention": [f"{a}.{p}" for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out.0")],
    "mlp": ["ffn.net.0.proj", "ffn.net.2"],
}
"""DreamZero's LoRA targets (`q, k, v, o, ffn.0, ffn.2` of self- and cross-attention) in diffusers' names."""

REGISTER_POSITIONS = 10_240
"""Rows of the register RoPE table (DreamZero: `rope_params(1024 * 10, head_dim)`)."""


def sinusoid(t: Tensor, dim: int) -> Tensor:
    """Wan's flow-time features: [cos, sin] of t * 10000^(-i/half), in float64 as Wan computes them."""
    half = dim // 2
    freqs = torch.pow(10_000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = t.to(torch.float64)[..., None] * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def blocks_compute_in_float32(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether blocks stored in `dtype` on `device` compute in float32: bf16 on a CPU without bf16 units
    (`cpu_bf16_units`), where float32 is the fast path."""
    return device.type == "cpu" and dtype == torch.bfloat16 and not cpu_bf16_units()


def _in_float32(block: nn.Module, *args):
    """`block(*args)` with the block's weights and the floating inputs upcast to float32 for the call and the
    results cast back to the input's dtype. The casts are differentiable (LoRA weights get their gradients),
    and the float32 copies live only while the block runs, or, under activation checkpointing, while its
    recomputation is differentiated: one block's worth at a time."""
    dtype = args[0].dtype

    def up(t):
        if isinstance(t, tuple):
            return tuple(up(u) for u in t)
        return t.float() if isinstance(t, Tensor) and t.is_floating_point() else t

    named = itertools.chain(block.named_parameters(), block.named_buffers())
    state = {name: t.float() for name, t in named if t.is_floating_point()}
    x, kv = torch.func.functional_call(block, state, up(args))
    return x.to(dtype), tuple(t.to(dtype) for t in kv)


@functools.cache
def _video_rope(head_dim: int) -> WanRotaryPosEmbed:
    """diffusers' Wan 3-D RoPE tables (frame, row, column parts of the head dimension), built once on the CPU:
    constants, so not module state (a model built on the meta device and loaded by assignment has none to
    rebuild)."""
    with torch.device("cpu"):
        return WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=1024)


@functools.cache
def _register_rope(head_dim: int) -> tuple[Tensor, Tensor]:
    """cos/sin (REGISTER_POSITIONS, head_dim) of the registers' 1-D RoPE, computed once on the CPU in float64
    (as DreamZero's `rope_params`) and kept in float32: every forward and denoising step indexes it."""
    with torch.device("cpu"):
        cos, sin = get_1d_rotary_pos_embed(
            head_dim, REGISTER_POSITIONS, use_real=True, repeat_interleave_real=True, freqs_dtype=torch.float64
        )
    return cos.float(), sin.float()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """RoPE on adjacent channel pairs: x (B, H, L, hd); cos/sin (L, hd), each frequency repeated twice."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[:, 0::2], sin[:, 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).type_as(x)


class DreamZeroBlock(WanTransformerBlock):
    """diffusers' Wan block (same parameters, so same checkpoint keys) with DreamZero's forward: per-token
    modulation, an attention mask, RoPE from the caller, cached keys/values, and the CLIP/text split of the
    context by count. Its own module, so FSDP wraps it and activation checkpointing recomputes it."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, text_len: int):
        super().__init__(dim, ffn_dim, num_heads, cross_attn_norm=True, eps=eps, added_kv_proj_dim=dim)
        self.text_len = text_len

    def forward(self, x: Tensor, context: Tensor, e0: Tensor, rope, mask: Tensor | None = None, past=None):
        """x (B, L, D) with per-token modulation e0 (B, L, 6, D); the residual arithmetic in float32.
        Returns the new tokens and this call's keys/values (for a cache)."""
        shift, scale, gate, c_shift, c_scale, c_gate = (
            m.squeeze(2) for m in (self.scale_shift_table.unsqueeze(0) + e0.float()).chunk(6, dim=2)
        )
        h = (self.norm1(x.float()) * (1 + scale) + shift).type_as(x)
        out, kv = self._self_attention(h, rope, mask, past)
        x = (x.float() + out * gate).type_as(x)
        x = x + self._cross_attention(self.norm2(x.float()).type_as(x), context)
        h = (self.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
        return (x.float() + self.ffn(h).float() * c_gate).type_as(x), kv

    def _self_attention(self, h: Tensor, rope, mask: Tensor | None, past=None):
        """Multi-head self-attention with q/k RMS norm and RoPE; `past` (k, v) are keys/values the tokens
        also attend to (cached clean frames, already rotated). Returns the output and this call's k, v."""
        attn = self.attn1
        heads = attn.heads
        q = attn.norm_q(attn.to_q(h)).unflatten(2, (heads, -1)).transpose(1, 2)
        k = attn.norm_k(attn.to_k(h)).unflatten(2, (heads, -1)).transpose(1, 2)
        v = attn.to_v(h).unflatten(2, (heads, -1)).transpose(1, 2)
        q, k = _rotate(q, *rope), _rotate(k, *rope)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        out = nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return attn.to_out[0](out.transpose(1, 2).flatten(2)), (k, v)

    def _cross_attention(self, h: Tensor, context: Tensor) -> Tensor:
        """Attention to the text tokens plus, for image-conditioned models, to the CLIP tokens that lead the
        context (split by count: diffusers' processor assumes 512 text tokens)."""
        attn = self.attn2
        heads = attn.heads
        image_tokens = max(context.shape[1] - self.text_len, 0)
        image, text = context[:, :image_tokens], context[:, image_tokens:]

        def split(x: Tensor) -> Tensor:
            return x.unflatten(2, (heads, -1)).transpose(1, 2)

        q = split(attn.norm_q(attn.to_q(h)))
        out = nn.functional.scaled_dot_product_attention(q, split(attn.norm_k(attn.to_k(text))), split(attn.to_v(text)))
        if image_tokens:
            k_img, v_img = split(attn.norm_added_k(attn.add_k_proj(image))), split(attn.add_v_proj(image))
            out = out + nn.functional.scaled_dot_product_attention(q, k_img, v_img)
        return attn.to_out[0](out.transpose(1, 2).flatten(2))


class DreamZeroDiT(nn.Module):
    """The transformer LoRA adapts; registers' encoders and decoders live in the embodiment heads."""

    lora_targets = LORA_TARGETS
    block_type = DreamZeroBlock
    """The unit FSDP wraps and activation checkpointing recomputes."""

    def __init__(self, config: DreamZeroConfig):
        super().__init__()
        self.arch, d = config, config.dim
        self.patch_embedding = nn.Conv3d(config.in_dim, d, kernel_size=config.patch, stride=config.patch)
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=d, time_freq_dim=config.freq_dim, time_proj_dim=6 * d, text_embed_dim=config.text_dim,
            image_embed_dim=config.image_dim,
        )  # fmt: skip
        self.blocks = nn.ModuleList(
            DreamZeroBlock(d, config.ffn_dim, config.num_heads, config.eps, config.text_len)
            for _ in range(config.num_layers)
        )
        self.gradient_checkpointing = False
        """Recompute each block in the backward pass instead of keeping its activations (training only)."""
        self.norm_out = FP32LayerNorm(d, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(d, config.out_dim * math.prod(config.patch))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, d) / d**0.5)

    def _block(self, block: nn.Module, *args):
        """One block's call, in float32 where `blocks_compute_in_float32` says so for the weights' dtype."""
        if blocks_compute_in_float32(self.dtype, args[0].device):
            return _in_float32(block, *args)
        return block(*args)

    # -- embeddings ---------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (bfloat16 under `--precision bf16-true`): inputs are cast to it on the way in."""
        return self.patch_embedding.weight.dtype

    def context(self, text: Tensor, image: Tensor | None) -> Tensor:
        """Cross-attention context: [projected CLIP tokens | projected text tokens] (B, 257 + text_len, D)."""
        embedder, dtype = self.condition_embedder, self.dtype
        context = embedder.text_embedder(text.to(dtype))
        if image is not None:
            context = torch.cat([embedder.image_embedder(image.to(dtype)), context], dim=1)
        return context

    def patchify(self, latents: Tensor) -> Tensor:
        """(B, in_dim, F, h, w) -> tokens (B, F * h/2 * w/2, D), frame-major."""
        return self.patch_embedding(latents.to(self.dtype)).flatten(2).transpose(1, 2)

    def times(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token flow times (B, L) on Wan's 0-1000 scale -> (time embedding (B, L, D) for the output
        head, block modulation (B, L, 6, D))."""
        embedder = self.condition_embedder
        e = embedder.time_embedder(sinusoid(t, self.arch.freq_dim).to(self.dtype))
        return e, embedder.time_proj(embedder.act_fn(e)).unflatten(-1, (6, -1))

    def video_positions(self, frames: int, h: int, w: int, first: int = 0) -> tuple[Tensor, Tensor]:
        """cos/sin (frames * h * w, hd) of 3-D RoPE for latent frames first..first+frames-1 of h x w tokens."""
        rope = _video_rope(self.arch.head_dim)
        split = [rope.t_dim, rope.h_dim, rope.w_dim]
        parts = []
        for table in (rope.freqs_cos, rope.freqs_sin):
            ft, fh, fw = table.split(split, dim=1)
            grid = [
                ft[first : first + frames].view(frames, 1, 1, -1).expand(frames, h, w, -1),
                fh[:h].view(1, h, 1, -1).expand(frames, h, w, -1),
                fw[:w].view(1, 1, w, -1).expand(frames, h, w, -1),
            ]
            parts.append(torch.cat(grid, dim=-1).reshape(frames * h * w, -1).float())
        return parts[0], parts[1]

    def register_positions(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos/sin (n, hd) of 1-D RoPE over the whole head dimension at the given register positions."""
        cos, sin = _register_rope(self.arch.head_dim)
        return cos[positions.cpu()].to(positions.device), sin[positions.cpu()].to(positions.device)

    def _video_out(self, x: Tensor, e: Tensor, frames: int, h: int, w: int) -> Tensor:
        """Noisy video tokens (B, frames*h*w, D) -> velocity (B, out_dim, frames, 2h, 2w)."""
        shift, scale = (self.scale_shift_table.unsqueeze(0) + e.unsqueeze(2)).chunk(2, dim=2)
        x = self.proj_out((self.norm_out(x.float()) * (1 + scale.squeeze(2)) + shift.squeeze(2)).type_as(x))
        pt, ph, pw = self.arch.patch
        x = x.reshape(x.shape[0], frames, h, w, pt, ph, pw, -1)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # -- training ------------------------------------------------------------------------------------

    def attention_mask(self, frames: int, frame_tokens: int, actions: int, states: int, device=None) -> Tensor:
        """The teacher-forced pattern (L, L) bool over [clean | noisy | actions | states] (True = attend).

        Blocks: latent frame 0 alone, then blocks of `frames_per_block` frames, each with its share of the
        action and state tokens. Clean frame 0 and noisy frame 0 see only themselves; clean block i sees
        clean frame 0 and clean frames back to `max_blocks` blocks before it, through its own end; noisy
        block i, its action and state tokens' queries: noisy block i and its actions see clean frame 0, the
        clean blocks before i, noisy block i, action block i and state block i; a state token sees itself.
        """
        c, fs = self.arch, frame_tokens
        blocks = (frames - 1) // c.frames_per_block
        bs, apb, spb = c.frames_per_block * fs, actions // max(blocks, 1), states // max(blocks, 1)
        video = frames * fs
        n = 2 * video + actions + states
        mask = torch.zeros(n, n, dtype=torch.bool, device=device)
        mask[:fs, :fs] = True
        mask[video : video + fs, video : video + fs] = True
        window = (c.max_blocks * c.frames_per_block + 1) * fs
        for i in range(blocks):
            start, end = fs + i * bs, fs + (i + 1) * bs
            mask[start:end, :fs] = True
            mask[start:end, max(fs, end - window) : end] = True
            noisy = slice(video + start, video + end)
            act = slice(2 * video + i * apb, 2 * video + (i + 1) * apb)
            state = slice(2 * video + actions + i * spb, 2 * video + actions + (i + 1) * spb)
            for query in (noisy, act):
                mask[query, :start] = True
                for key in (noisy, act, state):
                    mask[query, key] = True
            mask[state, state] = True
        return mask

    def forward(
        self,
        noisy: Tensor,
        clean: Tensor,
        t_video: Tensor,
        actions: Tensor,
        t_action: Tensor,
        states: Tensor,
        context: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced training forward.

        noisy, clean: DiT inputs (B, in_dim, F, H, W) (latents with the image condition concatenated for
        i2v); t_video (B, F) flow times per latent frame on the 0-1000 scale; actions (B, Na, D) and
        states (B, Ns, D) register tokens from the embodiment's encoders; t_action (B, Na); context from
        `context`. Returns the video velocity (B, out_dim, F, H, W) and the action tokens' last hidden
        states (B, Na, D) for the embodiment's action decoder.
        """
        b, _, frames, height, width = noisy.shape
        h, w = height // self.arch.patch[1], width // self.arch.patch[2]
        fs, na, ns = h * w, actions.shape[1], states.shape[1]
        x = torch.cat([self.patchify(clean), self.patchify(noisy), actions, states], dim=1)
        t_state = t_action[:, :: max(na // max(ns, 1), 1)][:, :ns]
        t = torch.cat(
            [torch.zeros(b, frames * fs, device=x.device), t_video.repeat_interleave(fs, dim=1), t_action, t_state],
            dim=1,
        )
        e, e0 = self.times(t)
        video_cos, video_sin = self.video_positions(frames, h, w)
        act_cos, act_sin = self.register_positions(torch.arange(na, device=x.device))
        st_cos, st_sin = self.register_positions(torch.arange(ns, device=x.device))
        rope = (
            torch.cat([video_cos, video_cos, act_cos, st_cos]).to(x.device),
            torch.cat([video_sin, video_sin, act_sin, st_sin]).to(x.device),
        )
        mask = self.attention_mask(frames, fs, na, ns, x.device)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x, _ = checkpoint(self._block, block, x, context, e0, rope, mask, use_reentrant=False)
            else:
                x, _ = self._block(block, x, context, e0, rope, mask)
        video = frames * fs
        velocity = self._video_out(x[:, video : 2 * video], e[:, video : 2 * video], frames, h, w)
        return velocity, x[:, 2 * video : 2 * video + na]

    # -- inference -----------------------------------------------------------------------------------

    def encode_clean(self, clean: Tensor, context: Tensor, first_frame: int, past: list | None = None) -> list:
        """Keys/values per layer of observed (clean, t = 0) latent frames `first_frame`..., appended to `past`
        and cut to the attention window (DreamZero's KV cache holds only real observed frames)."""
        b, _, frames, height, width = clean.shape
        h, w = height // self.arch.patch[1], width // self.arch.patch[2]
        x = self.patchify(clean)
        _, e0 = self.times(torch.zeros(b, x.shape[1], device=x.device))
        rope = tuple(r.to(x.device) for r in self.video_positions(frames, h, w, first_frame))
        window = self._window(h * w)
        cache = []
        for i, block in enumerate(self.blocks):
            kv_past = None if past is None else _last(past[i], window - x.shape[1])
            x, kv = self._block(block, x, context, e0, rope, None, kv_past)
            if kv_past is not None:
                kv = (torch.cat([kv_past[0], kv[0]], 2), torch.cat([kv_past[1], kv[1]], 2))
            cache.append(_last(kv, window))
        return cache

    def _window(self, frame_tokens: int) -> int:
        """Video tokens a token may attend to at inference: `max_blocks` blocks and frame 0 (DreamZero's
        max_attention_size)."""
        return (self.arch.max_blocks * self.arch.frames_per_block + 1) * frame_tokens

    def denoise(
        self,
        noisy: Tensor,
        t_video: Tensor,
        actions: Tensor,
        t_action: Tensor,
        states: Tensor,
        context: Tensor,
        cache: list,
        first_frame: int,
        block: int,
    ) -> tuple[Tensor, Tensor]:
        """One denoising step of block `block` (latent frames from `first_frame`) against the cached clean
        frames: the current block's tokens see the cache and each other, unmasked. Returns the video
        velocity and the action tokens' hidden states, as `forward`."""
        b, _, frames, height, width = noisy.shape
        h, w = height // self.arch.patch[1], width // self.arch.patch[2]
        na, ns = actions.shape[1], states.shape[1]
        x = torch.cat([self.patchify(noisy), actions, states], dim=1)
        t = torch.cat([t_video.repeat_interleave(h * w, dim=1), t_action, t_action[:, :1].expand(b, ns)], dim=1)
        e, e0 = self.times(t)
        video_cos, video_sin = self.video_positions(frames, h, w, first_frame)
        act_cos, act_sin = self.register_positions(torch.arange(block * na, (block + 1) * na, device=x.device))
        st_cos, st_sin = self.register_positions(torch.arange(block * ns, (block + 1) * ns, device=x.device))
        rope = (
            torch.cat([video_cos.to(x.device), act_cos, st_cos]),
            torch.cat([video_sin.to(x.device), act_sin, st_sin]),
        )
        keep = self._window(h * w) - frames * h * w  # cached and new video keys together fill the window
        for layer, past in zip(self.blocks, cache, strict=True):
            x, _ = self._block(layer, x, context, e0, rope, None, _last(past, keep))
        video = frames * h * w
        return self._video_out(x[:, :video], e[:, :video], frames, h, w), x[:, video : video + na]


def _last(kv: tuple[Tensor, Tensor], n: int) -> tuple[Tensor, Tensor]:
    """The last `n` cached keys and values (none when n <= 0)."""
    start = min(max(kv[0].shape[2] - n, 0), kv[0].shape[2])
    return kv[0][:, :, start:], kv[1][:, :, start:]
