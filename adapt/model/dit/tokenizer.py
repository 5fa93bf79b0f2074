"""Frame tokenizer: a small convolutional autoencoder from RGB frames to a latent grid.

It is trained on reconstruction at the start of pretraining and frozen afterwards, so the latents the
transformer learns to predict stay fixed (as a video-diffusion model's VAE is). A Wan VAE can replace
it: what the rest of the model needs is `encode`, `decode` and the latent shape.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapt.model.dit.config import ModelConfig


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(1, cout), nn.SiLU())


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(1, cout), nn.SiLU())


class FrameTokenizer(nn.Module):
    """uint8 frames (..., 3, H, W) <-> latents (..., C, H/8, W/8), scaled to roughly unit variance."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        w, c = config.tokenizer_width, config.latent_channels
        self.encoder = nn.Sequential(
            _down(3, w), _down(w, 2 * w), _down(2 * w, 4 * w), nn.Conv2d(4 * w, c, 3, padding=1)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(c, 4 * w, 3, padding=1),
            _up(4 * w, 2 * w),
            _up(2 * w, w),
            _up(w, w),
            nn.Conv2d(w, 3, 3, padding=1),
        )
        self.register_buffer("latent_scale", torch.ones(()))
        """1 / std of the latents, set once the tokenizer is trained (`calibrate`), as in latent diffusion."""

    def encode(self, frames: Tensor) -> Tensor:
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).float() / 127.5 - 1.0
        z = torch.tanh(self.encoder(x)) * self.latent_scale
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, latents: Tensor) -> Tensor:
        """Latents back to float frames in [-1, 1] (`adapt.model.protocol.to_uint8` makes images of them)."""
        lead = latents.shape[:-3]
        x = self.decoder(latents.reshape(-1, *latents.shape[-3:]) / self.latent_scale)
        return x.reshape(*lead, *x.shape[1:])

    def reconstruction_loss(self, frames: Tensor) -> Tensor:
        frames = frames.reshape(-1, *frames.shape[-3:])
        return torch.nn.functional.mse_loss(self.decode(self.encode(frames)), frames.float() / 127.5 - 1.0)

    @torch.no_grad()
    def calibrate(self, frames: Tensor) -> None:
        """Set `latent_scale` so that latents of `frames` have unit standard deviation."""
        self.latent_scale.fill_(1.0)
        self.latent_scale.fill_(1.0 / self.encode(frames).std().clamp_min(1e-3))
