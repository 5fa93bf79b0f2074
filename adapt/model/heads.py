"""Per-embodiment heads: what a new robot adds to the model, sized from its spec.

Each embodiment owns a state encoder, an action encoder and decoder, and a learned embedding that
conditions every backbone block. Nothing is padded to a global maximum dimension: a 7-dim arm and a
16-dim bimanual robot have heads of their own sizes. Video-only embodiments (people) have only the
embedding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapt.embodiment import EmbodimentSpec
from adapt.model.backbone import timestep_embedding


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.SiLU(), nn.Linear(hidden, cout))


class StateEncoder(nn.Module):
    """Normalized state (B, state_dim) -> one token (B, 1, D)."""

    def __init__(self, state_dim: int, dim: int):
        super().__init__()
        self.net = _mlp(state_dim, dim, dim)

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state)[:, None]


class ActionEncoder(nn.Module):
    """Noisy normalized action chunk (B, chunk, action_dim) + flow time (B,) -> tokens (B, chunk, D)."""

    def __init__(self, action_dim: int, chunk: int, dim: int):
        super().__init__()
        self.dim = dim
        self.net = _mlp(action_dim + dim, dim, dim)
        self.position = nn.Parameter(torch.randn(chunk, dim) * 0.02)

    def forward(self, actions: Tensor, t: Tensor) -> Tensor:
        time = timestep_embedding(t, self.dim)[:, None].expand(-1, actions.shape[1], -1)
        return self.net(torch.cat([actions, time], dim=-1)) + self.position[: actions.shape[1]]


class ActionDecoder(nn.Module):
    """Backbone tokens (B, chunk, D) -> flow velocity of the actions (B, chunk, action_dim)."""

    def __init__(self, dim: int, action_dim: int):
        super().__init__()
        self.net = _mlp(dim, dim, action_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.net(tokens)


class EmbodimentHeads(nn.Module):
    """Everything specific to one embodiment."""

    def __init__(self, spec: EmbodimentSpec, dim: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(dim) * 0.02)
        self.state_encoder = StateEncoder(spec.state_dim, dim) if spec.state_dim else None
        self.action_encoder = ActionEncoder(spec.action_dim, spec.action.chunk, dim) if spec.action else None
        self.action_decoder = ActionDecoder(dim, spec.action_dim) if spec.action else None
