"""Noise for flow matching, drawn from an optional generator (seeded sampling and tests) on any device."""

from __future__ import annotations

import torch
from torch import Tensor


def randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Standard normal noise; with `generator`, drawn on the generator's device and moved to `device`."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def rand(shape, generator: torch.Generator | None, device) -> Tensor:
    """Uniform noise in [0, 1), as `randn`."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)
