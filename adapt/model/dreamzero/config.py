"""The DreamZero family's architecture: a Wan2.1/Wan2.2 video DiT with action and state registers.

Numbers follow DreamZero's published configs (`dreamzero0/dreamzero`,
`configs/model/dreamzero/action_head/wan_flow_matching_action_tf.yaml` and `..._wan22.yaml`):

| | dreamzero-14b (Wan2.1-I2V-14B) | dreamzero-5b (Wan2.2-TI2V-5B) |
| --- | --- | --- |
| dim / ffn_dim | 5120 / 13824 | 3072 / 14336 |
| layers / heads | 40 / 40 | 30 / 24 |
| in_dim / out_dim | 36 / 16 | 48 / 48 |
| video latent | 16 channels, 8x spatial | 48 channels, 16x spatial |

Both keep DreamZero's image cross-attention (`k_img`, `v_img`) and CLIP projection, a text context of
512 umT5 tokens (4096 wide) and, per block of `frames_per_block` latent frames, `actions_per_block`
action tokens and `states_per_block` state tokens. `dreamzero-tiny` has the same layout at test size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, PositiveInt, model_validator

from adapt.data.window_config import WindowConfig
from adapt.model.protocol import FamilyConfig


class DreamZeroConfig(FamilyConfig):
    """Architecture, register layout and window shape of a DreamZero World Action Model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: Literal["dreamzero"] = "dreamzero"
    model_type: Literal["i2v", "ti2v"] = "i2v"
    """Wan variant: `i2v` (Wan2.1-I2V: the first frame's latent and mask are concatenated to the input,
    `in_dim = 2 * out_dim + 4`) or `ti2v` (Wan2.2-TI2V: no concatenation, `in_dim = out_dim`)."""
    dim: PositiveInt = 64
    ffn_dim: PositiveInt = 128
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 2
    in_dim: PositiveInt = 12
    out_dim: PositiveInt = 4
    """Video latent channels (the VAE's z_dim)."""
    text_dim: PositiveInt = 32
    """Width of the text encoder's output (umT5-XXL: 4096)."""
    text_len: PositiveInt = 8
    """Text tokens in the cross-attention context (DreamZero: 512)."""
    image_dim: PositiveInt = 1280
    """Width of the CLIP image features (ViT-H/14: 1280)."""
    image_tokens: PositiveInt = 257
    """CLIP tokens in the cross-attention context, before the text (ViT-H/14 at 224 px: 257)."""
    freq_dim: PositiveInt = 256
    """Sinusoidal features of the flow time."""
    eps: float = Field(1e-6, gt=0)
    patch: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 2, 2)
    register_hidden: PositiveInt = 32
    """Hidden width of the state encoder and action decoder MLPs (DreamZero: 1024)."""
    max_state_dim: PositiveInt = 16
    """State width of DreamZero's shared head (64): a checkpoint's pretrained registers are this wide."""
    max_action_dim: PositiveInt = 8
    """Action width of DreamZero's shared head (32)."""
    frames_per_block: PositiveInt = 2
    """Latent frames per block (DreamZero: 2): a block is one action chunk's worth of video."""
    actions_per_block: PositiveInt = 3
    """Action tokens per block (DreamZero: 24)."""
    states_per_block: PositiveInt = 1
    max_blocks: PositiveInt = 2
    """Blocks a clean block may look back on (DreamZero's max_chunk_size: 4)."""
    view_height: PositiveInt = 16
    view_width: PositiveInt = 24
    """Each camera view's size in the mosaic (DreamZero: 176 x 320); the mosaic is 2 x 2 views."""
    vae_stride: tuple[PositiveInt, PositiveInt] = (4, 8)
    """Temporal and spatial compression of the video VAE (Wan2.1: 4, 8; Wan2.2: 4, 16)."""
    context: PositiveInt = 1
    """Observed frames per camera (the first latent frame)."""
    stride: PositiveInt = 3
    """Control steps between video frames (DreamZero samples every third frame)."""

    @model_validator(mode="after")
    def _shapes(self) -> DreamZeroConfig:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} must be a multiple of num_heads {self.num_heads}")
        expected = 2 * self.out_dim + 4 if self.model_type == "i2v" else self.out_dim
        if self.in_dim != expected:
            raise ValueError(f"in_dim {self.in_dim} must be {expected} for model_type {self.model_type}")
        side = self.vae_stride[1] * self.patch[1]
        if (2 * self.view_height) % side or (2 * self.view_width) % side:
            raise ValueError(f"the 2 x 2 mosaic's sides must be multiples of {side}")
        return self

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def frame_tokens(self) -> int:
        """Video tokens per latent frame of the mosaic (DreamZero's frame_seqlen: 880 for 14B)."""
        s, p = self.vae_stride[1], self.patch
        return (2 * self.view_height // s // p[1]) * (2 * self.view_width // s // p[2])

    @property
    def future(self) -> int:
        """Video frames after the observed one: one block of latent frames, each `vae_stride[0]` frames."""
        return self.frames_per_block * self.vae_stride[0]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) each camera's frames are resized to."""
        return self.view_height, self.view_width

    def window(self, idle_threshold: float | None = None) -> WindowConfig:
        return WindowConfig(
            context=self.context,
            future=self.future,
            stride=self.stride,
            height=self.view_height,
            width=self.view_width,
            idle_threshold=idle_threshold,
        )


_WAN = {"text_dim": 4096, "text_len": 512, "register_hidden": 1024, "max_state_dim": 64, "max_action_dim": 32}
_LAYOUT = {"actions_per_block": 24, "max_blocks": 4, "view_height": 176, "view_width": 320}

DREAMZERO_PRESETS: dict[str, DreamZeroConfig] = {
    "dreamzero-tiny": DreamZeroConfig(size="dreamzero-tiny"),
    "dreamzero-14b": DreamZeroConfig(
        size="dreamzero-14b",
        dim=5120,
        ffn_dim=13824,
        num_layers=40,
        num_heads=40,
        in_dim=36,
        out_dim=16,
        **_WAN,
        **_LAYOUT,
    ),
    "dreamzero-5b": DreamZeroConfig(
        size="dreamzero-5b",
        model_type="ti2v",
        dim=3072,
        ffn_dim=14336,
        num_layers=30,
        num_heads=24,
        in_dim=48,
        out_dim=48,
        vae_stride=(4, 16),
        **_WAN,
        **{**_LAYOUT, "view_height": 80, "view_width": 160},
    ),
}
"""The 5B's head resizes DreamZero's 352 x 640 mosaic to 160 x 320 (`target_video_height/width`)."""
