"""Frames to the model's resolution: one resize for training windows, the frame cache and the policy, so a
robot's camera frames are scaled exactly as the training frames were."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of uint8 (n, H, W, 3) frames. Done here, not by decord's own
    `VideoReader(height=, width=)`: that scaler returns wrongly sized buffers for some widths (16, 24, 48)."""
    if frames.shape[1:3] == tuple(size):
        return frames

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
