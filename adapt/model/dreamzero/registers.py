"""DreamZero's action and state registers, sized per embodiment from its spec.

DreamZero encodes state and actions with GR00T's "category-specific" MLPs: weights `W` (categories, in,
out) and biases `b` (categories, out), one slot per embodiment, in practice one slot (`max_num_embodiments
= 1`) and every robot padded to 64 state and 32 action dimensions. Here each embodiment owns registers of
its own sizes (no padding); the single category slot is kept in the parameter shapes so a DreamZero
checkpoint's shared registers load as they are (`state_encoder.layer1.W` [1, 64, 1024], ...) and an
adapter's registers export in DreamZero's layout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from adapt.embodiment import EmbodimentSpec
from adapt.model.dreamzero.config import DreamZeroConfig


class CategorySpecificLinear(nn.Module):
    """x (B, T, in) -> (B, T, out) through the one category slot: `x @ W[0] + b[0]`."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.W = nn.Parameter(0.02 * torch.randn(1, cin, cout))
        self.b = nn.Parameter(torch.zeros(1, cout))

    def forward(self, x: Tensor) -> Tensor:
        return x.to(self.W.dtype) @ self.W[0] + self.b[0]


class CategorySpecificMLP(nn.Module):
    """layer2(relu(layer1(x))): DreamZero's state encoder and action decoder."""

    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        self.layer1 = CategorySpecificLinear(cin, hidden)
        self.layer2 = CategorySpecificLinear(hidden, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer2(torch.relu(self.layer1(x)))


def action_time_features(t: Tensor, dim: int) -> Tensor:
    """GR00T's `SinusoidalPositionalEncoding`: [sin, cos] of t * exp(-i ln(10000) / half), float32."""
    half = dim // 2
    freqs = torch.exp(-torch.arange(half, dtype=torch.float32, device=t.device) * (math.log(10_000.0) / half))
    angles = t.float()[..., None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class ActionEncoder(nn.Module):
    """Noisy actions (B, T, A) and their flow times (B, T) on the 0-1000 scale -> tokens (B, T, D):
    W3(swish(W2([W1(a), time features])))."""

    def __init__(self, action_dim: int, dim: int):
        super().__init__()
        self.W1 = CategorySpecificLinear(action_dim, dim)
        self.W2 = CategorySpecificLinear(2 * dim, dim)
        self.W3 = CategorySpecificLinear(dim, dim)

    def forward(self, actions: Tensor, t: Tensor) -> Tensor:
        a = self.W1(actions)
        x = self.W2(torch.cat([a, action_time_features(t, a.shape[-1]).to(a.dtype)], dim=-1))
        return self.W3(x * torch.sigmoid(x))


class DreamZeroHeads(nn.Module):
    """One embodiment's registers: state encoder, action encoder, action decoder (what a new robot adds)."""

    def __init__(self, state_dim: int, action_dim: int, config: DreamZeroConfig):
        super().__init__()
        d, hidden = config.dim, config.register_hidden
        self.action_dim = action_dim
        self.state_encoder = CategorySpecificMLP(state_dim, hidden, d)
        self.action_encoder = ActionEncoder(action_dim, d)
        self.action_decoder = CategorySpecificMLP(d, hidden, action_dim)

    @classmethod
    def for_spec(cls, spec: EmbodimentSpec, config: DreamZeroConfig) -> DreamZeroHeads:
        return cls(spec.state_dim, spec.action_dim, config)

    @classmethod
    def shared(cls, config: DreamZeroConfig) -> DreamZeroHeads:
        """DreamZero's own padded registers (max_state_dim x max_action_dim), as its checkpoints hold them."""
        return cls(config.max_state_dim, config.max_action_dim, config)

    @torch.no_grad()
    def copy_rows(self, donor: DreamZeroHeads, state_rows: list[tuple[int, int]], action_rows: list[tuple[int, int]]):
        """Seed from DreamZero's shared registers: hidden layers copied whole; the input rows of the state
        encoder and action encoder and the output columns of the action decoder copied for the (ours,
        donor's) dimension pairs given, the rest left fresh."""
        self.state_encoder.layer2.load_state_dict(donor.state_encoder.layer2.state_dict())
        self.action_encoder.W2.load_state_dict(donor.action_encoder.W2.state_dict())
        self.action_encoder.W3.load_state_dict(donor.action_encoder.W3.state_dict())
        self.action_encoder.W1.b.copy_(donor.action_encoder.W1.b)
        self.action_decoder.layer1.load_state_dict(donor.action_decoder.layer1.state_dict())
        self.state_encoder.layer1.b.copy_(donor.state_encoder.layer1.b)
        for ours, theirs in state_rows:
            self.state_encoder.layer1.W[:, ours] = donor.state_encoder.layer1.W[:, theirs]
        for ours, theirs in action_rows:
            self.action_encoder.W1.W[:, ours] = donor.action_encoder.W1.W[:, theirs]
            self.action_decoder.layer2.W[:, :, ours] = donor.action_decoder.layer2.W[:, :, theirs]
            self.action_decoder.layer2.b[:, ours] = donor.action_decoder.layer2.b[:, theirs]
