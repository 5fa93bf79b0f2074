"""Transformer backbones: the shared part of the World Action Model that LoRA adapts.

A backbone maps a token sequence to a token sequence under per-token conditioning. The World Action
Model gives every token a *type* (clean observation, noisy video, noisy action) and one conditioning
vector per type and sample (flow time + embodiment); blocks modulate their norms with it (adaLN, as
in DiT). Any module that honours `Backbone.forward` and names its LoRA targets can stand in: a Wan2.1
transformer (diffusers' `WanTransformer3DModel` blocks: `attn1.to_q/to_k/to_v/to_out.0`,
`ffn.net.0.proj`, `ffn.net.2`) is the road to real Wan / DreamZero weights as a base.
"""

from __future__ import annotations

import torch
from timm.layers import Attention, Mlp
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from adapt.model.dit.config import ModelConfig

LORA_TARGETS = {
    "attention": ["attn.qkv", "attn.proj"],
    "mlp": ["mlp.fc1", "mlp.fc2"],
}
"""Named groups of the DiT backbone's projections that recipes can put LoRA on."""


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


def _per_token(modulation: nn.Linear, cond: Tensor, types: Tensor) -> Tensor:
    """Modulation of each token from its type's conditioning vector: cond (B, K, D) -> (B, N, out).

    `index_select`, not `[:, types]`: the same gather, ~8x faster on the CPU (a tenth of a sampling step)."""
    return modulation(nn.functional.silu(cond)).index_select(1, types)


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP (timm layers) with adaptive LayerNorm shift/scale/gate per token type."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads=heads, qkv_bias=True, qk_norm=True, norm_layer=nn.LayerNorm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=lambda: nn.GELU(approximate="tanh"))
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)  # each block starts as the identity (DiT's adaLN-Zero)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, cond: Tensor, types: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, N, D); cond (B, K, D), one vector per token type; types (N,) in [0, K); mask (B, 1, N, N)."""
        mod = _per_token(self.modulation, cond, types)  # (B, N, 6D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        x = x + gate1 * self.attn(_modulate(self.norm1(x), shift1, scale1), attn_mask=mask)
        return x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2))

    def forward_cached(
        self, x: Tensor, cond: Tensor, types: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Like `forward`, for tokens that also attend to `past` keys/values (cached from an earlier call);
        returns the new tokens and this call's own keys/values. Same weights (LoRA included) as `forward`.
        A None `mask` lets every token see every key (the attention kernel's fastest path)."""
        mod = _per_token(self.modulation, cond, types)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        h = _modulate(self.norm1(x), shift1, scale1)
        attn, (b, n, _) = self.attn, x.shape
        q, k, v = attn.qkv(h).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        out = nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        out = attn.proj(attn.norm(out.transpose(1, 2).reshape(b, n, -1)))
        x = x + gate1 * out
        return x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2)), (k, v)


class DiTBackbone(nn.Module):
    """A stack of `DiTBlock`s and a final modulated norm."""

    lora_targets = LORA_TARGETS
    block_type = DiTBlock
    """The unit FSDP wraps and activation checkpointing recomputes."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dim = config.dim
        self.gradient_checkpointing = False
        """Recompute each block in the backward pass instead of keeping its activations (training only)."""
        self.blocks = nn.ModuleList(DiTBlock(config.dim, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(config.dim, 2 * config.dim)
        nn.init.zeros_(self.final_modulation.weight)
        nn.init.zeros_(self.final_modulation.bias)

    def forward(self, x: Tensor, cond: Tensor, types: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, cond, types, mask, use_reentrant=False)
            else:
                x = block(x, cond, types, mask)
        return self._final(x, cond, types)

    def cache(self, x: Tensor, cond: Tensor, types: Tensor, mask: Tensor | None) -> list[tuple[Tensor, Tensor]]:
        """Per-block keys/values of tokens that attend only among themselves (the clean prefix), computed
        once and reused by `forward_with_cache` at every sampling step."""
        cache = []
        for block in self.blocks:
            x, kv = block.forward_cached(x, cond, types, mask, None)
            cache.append(kv)
        return cache

    def forward_with_cache(
        self, x: Tensor, cond: Tensor, types: Tensor, mask: Tensor | None, cache: list[tuple[Tensor, Tensor]]
    ) -> Tensor:
        """Tokens `x` attending to the cached prefix and to each other; `mask` is (B, 1, N, N_cached + N)
        or None (all see all)."""
        for block, past in zip(self.blocks, cache, strict=True):
            x, _ = block.forward_cached(x, cond, types, mask, past)
        return self._final(x, cond, types)

    def _final(self, x: Tensor, cond: Tensor, types: Tensor) -> Tensor:
        shift, scale = _per_token(self.final_modulation, cond, types).chunk(2, dim=-1)
        return _modulate(self.norm(x), shift, scale)


BACKBONES: dict[str, type[nn.Module]] = {"dit": DiTBackbone}


def build_backbone(config: ModelConfig) -> nn.Module:
    return BACKBONES[config.backbone](config)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of flow times t in [0, 1] (scaled by 1000, as diffusion models do): (..., dim)."""
    half = dim // 2
    freqs = torch.exp(
        -torch.arange(half, device=t.device, dtype=torch.float32) * (torch.log(torch.tensor(max_period)) / half)
    )
    angles = t.float()[..., None] * 1000.0 * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
