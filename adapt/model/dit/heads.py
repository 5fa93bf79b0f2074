"""Per-embodiment heads: what a new robot adds to the model, sized from its spec.

Each embodiment owns a state encoder, an action encoder and decoder, and a learned embedding that
conditions every backbone block. Nothing is padded to a global maximum dimension: a 7-dim arm and a
16-dim bimanual robot have heads of their own sizes. Video-only embodiments (people) have only the
embedding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapt.data.codec import ActionCodec, shared_dims, state_names
from adapt.embodiment import EmbodimentSpec
from adapt.model.dit.backbone import timestep_embedding


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

    @torch.no_grad()
    def copy_from(self, donor: EmbodimentHeads, spec: EmbodimentSpec, donor_spec: EmbodimentSpec) -> None:
        """Seed these (new) heads from a donor's: hidden layers copied; input/output rows or columns copied
        where the dimension means the same thing (gripper, end-effector deltas), the rest left fresh."""
        self.embedding.copy_(donor.embedding)
        for new, old in [(self.state_encoder, donor.state_encoder), (self.action_encoder, donor.action_encoder)]:
            if new is not None and old is not None:
                new.net[2].load_state_dict(old.net[2].state_dict())
        if self.action_decoder is not None and donor.action_decoder is not None:
            self.action_decoder.net[0].load_state_dict(donor.action_decoder.net[0].state_dict())
        if self.state_encoder is not None and donor.state_encoder is not None:
            for i, j in shared_dims(state_names(spec), state_names(donor_spec)):
                self.state_encoder.net[0].weight[:, i] = donor.state_encoder.net[0].weight[:, j]
        if self.action_encoder is not None and donor.action_encoder is not None:
            d = self.action_encoder.dim
            self.action_encoder.net[0].weight[:, -d:] = donor.action_encoder.net[0].weight[:, -d:]  # time features
            for i, j in shared_dims(ActionCodec(spec).names(), ActionCodec(donor_spec).names()):
                self.action_encoder.net[0].weight[:, i] = donor.action_encoder.net[0].weight[:, j]
                self.action_decoder.net[2].weight[i] = donor.action_decoder.net[2].weight[j]
                self.action_decoder.net[2].bias[i] = donor.action_decoder.net[2].bias[j]
