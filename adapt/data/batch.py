"""The batches a World Action Model trains and samples on, typed and built here and nowhere else:
training windows (`make_window`, collated by the DataLoader) and one robot observation (`observation_batch`)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch
from torch import Tensor


class Window(TypedDict):
    """One training sample. Collated, every tensor gains a leading batch dimension and the strings
    become lists: the `batch` that `WorldModel.loss` takes."""

    frames: Tensor
    """(cams, context + future, 3, H, W) uint8: the context frames up to now, then the future ones."""
    context_mask: Tensor
    """(context,) bool: which context frames exist (not before the episode's start)."""
    future_mask: Tensor
    """(future,) bool: which future frames exist (not after the episode's end)."""
    state: Tensor
    """(state_dim,) float32, normalized (`ActionCodec.encode_state`); zeros when there is none."""
    has_state: Tensor
    action: Tensor
    """(chunk, action_dim) float32 in model space (`ActionCodec.encode_actions`); zeros when there is none."""
    action_mask: Tensor
    """(chunk,) bool: which actions exist."""
    has_action: Tensor
    task: str
    embodiment: str


class Observation(TypedDict):
    """What `WorldModel.sample` needs: a batch of one robot observation (B = 1)."""

    frames: Tensor
    """(1, cams, context, 3, H, W) uint8."""
    context_mask: Tensor
    state: Tensor
    has_state: Tensor
    task: list[str]
    embodiment: list[str]


def make_window(
    frames: np.ndarray,
    context_mask: np.ndarray,
    future_mask: np.ndarray,
    state: np.ndarray | None,
    action: np.ndarray | None,
    action_mask: np.ndarray,
    task: str,
    embodiment: str,
    shapes: tuple[int, int, int],
) -> Window:
    """A window from frames (cams, T, H, W, 3) uint8 and encoded state/action (None: absent; `shapes` =
    (state_dim, chunk, action_dim) sizes the zeros that stand in for them)."""
    state_dim, chunk, action_dim = shapes
    return {
        "frames": torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 1, 4, 2, 3).contiguous(),
        "context_mask": torch.as_tensor(context_mask, dtype=torch.bool),
        "future_mask": torch.as_tensor(future_mask, dtype=torch.bool),
        "state": torch.as_tensor(np.zeros(state_dim) if state is None else state, dtype=torch.float32),
        "has_state": torch.tensor(state is not None),
        "action": torch.as_tensor(np.zeros((chunk, action_dim)) if action is None else action, dtype=torch.float32),
        "action_mask": torch.as_tensor(action_mask, dtype=torch.bool),
        "has_action": torch.tensor(action is not None),
        "task": task,
        "embodiment": embodiment,
    }


def observation_batch(
    frames: np.ndarray, context_mask: list[bool], state: np.ndarray, task: str, embodiment: str, device="cpu"
) -> Observation:
    """One observation: context frames (cams, context, H, W, 3) uint8 and the normalized state."""
    return {
        "frames": torch.from_numpy(np.ascontiguousarray(frames[None])).permute(0, 1, 2, 5, 3, 4).to(device),
        "context_mask": torch.tensor([context_mask], device=device),
        "state": torch.as_tensor(state, dtype=torch.float32, device=device)[None],
        "has_state": torch.tensor([True], device=device),
        "task": [task],
        "embodiment": [embodiment],
    }


def to_device(batch: dict, device) -> dict:
    """A collated batch with its tensors on `device` (strings stay)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
