"""One config type for every model size, and the registry of named presets.

Larger sizes only change numbers here: the code path is the same from `tiny` (tests) to `base` (GPU).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, PositiveInt, model_validator

from adapt.data.window_config import WindowConfig
from adapt.errors import AdaptError
from adapt.model.protocol import FamilyConfig


class ModelConfig(FamilyConfig):
    """Architecture and window shape of a `wam-dit` World Action Model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = "wam-dit"
    """Model implementation (`adapt.model.protocol.ARCHITECTURES`): `wam-dit`, or a registered variant of it."""
    backbone: Literal["dit"] = "dit"
    """Backbone implementation (`adapt.model.dit.backbone.BACKBONES`)."""
    image_size: PositiveInt = 32
    """Frames are resized to image_size x image_size before tokenizing."""
    latent_channels: PositiveInt = 8
    """Channels of the frame tokenizer's latent grid (image_size / 8 on a side)."""
    tokenizer_width: PositiveInt = 32
    """Channels of the tokenizer's first convolution (doubling at each of 3 downsamplings)."""
    patch: PositiveInt = 1
    """Latent patch side: a video token is patch x patch latent cells."""
    dim: PositiveInt = 128
    """Transformer width."""
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    mlp_ratio: float = Field(4.0, gt=0)
    text_vocab: PositiveInt = 4096
    """Hash buckets of the task-text encoder."""
    text_len: PositiveInt = 12
    """Task words kept (the rest are cut)."""
    context: PositiveInt = 2
    """Frames up to and including now, per camera."""
    future: PositiveInt = 4
    """Future frames predicted, per camera."""
    stride: PositiveInt = 4
    """Control steps between frames."""
    video_target: Literal["frames", "change"] = "frames"
    """What the video branch denoises: the future latents themselves, or their change from the last context
    latent. With `change` the zero prediction is "nothing moves" (the last frame copied), so the branch has
    only the motion left to learn; with `frames` it must also learn to reproduce the scene."""
    video_prediction: Literal["velocity", "clean"] = "velocity"
    """What the video branch outputs: the flow velocity (noise - x_0), or x_0 itself (the velocity then
    follows from the noisy input). A small network outputting the velocity at high noise must pass the noise
    through exactly, and what it gets wrong lands in the predicted frames; outputting x_0, its zero output
    is x_0 = 0 (with the change target: the last frame copied) and its one-step estimate is what its loss
    fits, the expected future."""
    video_time_shift: float = Field(1.0, gt=0)
    """Shift s of the video's flow times, t -> s t / (1 + (s - 1) t), in training and sampling (Wan's flow
    shift). s > 1 spends more of both at high noise, where the noisy frames say little and the future must
    be inferred from the context: where a world model's prediction is made."""

    @model_validator(mode="after")
    def _shapes(self) -> ModelConfig:
        if self.image_size % (8 * self.patch):
            raise ValueError(f"image_size {self.image_size} must be a multiple of 8 x patch ({8 * self.patch})")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be a multiple of heads {self.heads}")
        return self

    @property
    def tokens_per_frame(self) -> int:
        return (self.image_size // 8 // self.patch) ** 2

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch**2

    def window(self, idle_threshold: float | None = None) -> WindowConfig:
        """The training windows this model consumes."""
        return WindowConfig(
            context=self.context,
            future=self.future,
            stride=self.stride,
            height=self.image_size,
            width=self.image_size,
            idle_threshold=idle_threshold,
        )


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        size="tiny", image_size=32, latent_channels=8, tokenizer_width=16, patch=1, dim=64, depth=2, heads=2
    ),
    "small": ModelConfig(
        size="small", image_size=64, latent_channels=8, tokenizer_width=32, patch=2, dim=192, depth=6, heads=6
    ),
    "base": ModelConfig(
        size="base", image_size=128, latent_channels=16, tokenizer_width=64, patch=2, dim=512, depth=12, heads=8
    ),
}
"""tiny: tests (0.57M parameters with two embodiments). small: the CPU demo (5.6M). base: a GPU (64M)."""


def model_config(size: str) -> ModelConfig:
    """The preset called `size`."""
    if size not in PRESETS:
        raise AdaptError(f"unknown model size '{size}'; choose one of {', '.join(PRESETS)}")
    return PRESETS[size]
