"""A World Action Model as a robot controller: observations in, safe absolute actions out.

`Policy.act(observation)` returns one de-normalized chunk clipped to the spec's limits (computed by
the stateless `adapt.predictor.ChunkPredictor`); `Policy.step` runs receding-horizon control on top
of it: it executes `execute` actions of each chunk, blends the
first `blend` actions of a new chunk with what the old one still planned (no stutter at chunk
boundaries), and with `async_next` computes the next chunk while the current one executes.
Whatever the network outputs, a command never leaves the spec's position and velocity limits; a
non-finite output becomes a hold-position action, with a warning.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from adapt.data.resize import resize_frames
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig
from adapt.observation import Observation, check_observation
from adapt.predictor import ChunkPredictor


class Controller(Protocol):
    """What drives a robot through a closed loop (`adapt.sim.closed_loop`): `Policy`, the server client
    (`adapt.serving.client.RemotePolicy`) and the scripted expert (`adapt.sim.expert.ScriptedExpert`)."""

    spec: EmbodimentSpec
    plans: int
    """Chunks planned so far: a change tells the loop to redraw the predicted frame."""

    def bind(self, sim) -> None:
        """Called once with the simulation; only a privileged controller (the scripted expert) reads it."""

    def reset(self) -> None:
        """A new episode."""

    def step(self, observation: dict) -> np.ndarray:
        """The next action (action_dim,) for an observation (camera frames by name, `state`, `task`)."""

    def predicted_frame(self) -> np.ndarray | None:
        """The latest plan's predicted future frame (uint8), or None when there is none."""


class Policy:
    """Closed-loop control of one robot in one session: frame history, receding horizon, blending and
    asynchronous planning around a stateless `ChunkPredictor` (which several policies may share)."""

    def __init__(self, predictor: ChunkPredictor, task: str = ""):
        self.predictor, self.task = predictor, task
        self.spec, self.config, self.chunk = predictor.spec, predictor.config, predictor.chunk
        if self.config.execute < 1 or self.config.blend < 0:
            raise AdaptError("InferenceConfig: execute must be >= 1 and blend >= 0")
        if self.config.execute > self.chunk:
            raise AdaptError(f"InferenceConfig.execute ({self.config.execute}) exceeds the chunk length ({self.chunk})")
        self.generator = torch.Generator(self.config.device).manual_seed(self.config.seed)
        self._pool = ThreadPoolExecutor(max_workers=1) if self.config.async_next else None
        self.plans = 0
        """Chunks computed so far (for monitoring replanning)."""
        self.last_future = None
        """The latest chunk's predicted future latents (see `Chunk.future`)."""
        self.reset()

    @classmethod
    def load(
        cls, path: Path, embodiment: str | None = None, base: Path | None = None, config=InferenceConfig(), task=""
    ) -> Policy:
        """A policy around `ChunkPredictor.load(path, embodiment, base, config)`."""
        return cls(ChunkPredictor.load(path, embodiment, base, config), task)

    def reset(self) -> None:
        """Forget the frame history and planned actions (a new episode)."""
        model_config = self.predictor.model.config
        self.rollout = self.predictor.start_rollout()
        """The model's own state across the episode's chunks, where it keeps one (the dreamzero family)."""
        span = (model_config.context - 1) * model_config.stride + 1
        if self.rollout is not None:  # every frame since the last plan
            span = max(span, self.config.execute + 1)
        self.history: dict[str, deque] = {c.name: deque(maxlen=span) for c in self.spec.cameras}
        self.queue: list[np.ndarray] = []
        self.since_plan = 0
        self.unsent = 0
        """Observations recorded since a rollout last took frames (`_observed`)."""
        self._pending: Future | None = None

    # -- one chunk -------------------------------------------------------------------------------------

    def act(self, observation: dict) -> np.ndarray:
        """The action chunk (chunk, action_dim) for `observation`: absolute, de-normalized, within limits.

        `observation` holds a uint8 (H, W, 3) frame of the spec's size per spec camera name, the state as
        `state` or as its proprio blocks by name, and optionally `task`. An observation that breaks any of
        that (a missing camera, a wrong size, a non-finite state value) is refused with an `AdaptError`
        and leaves the session as it was: no command is made from it.
        """
        state, task = self._observe(observation)
        return self._plan(self._context(), state, task)

    def _observe(self, observation: dict | Observation) -> tuple[np.ndarray, str]:
        """Check the whole observation (`adapt.observation`), then record its frames; returns the state and the
        task."""
        checked = check_observation(observation, self.spec)
        for name, frame in checked.frames.items():
            self.history[name].append(resize_frames(frame[None], self.predictor.frame_size)[0])
        self.unsent += 1
        return checked.state, checked.task or self.task

    def _context(self) -> tuple[np.ndarray, list[bool]]:
        """Context frames (cams, context, S, S, 3) every `stride` steps back from now, and which exist; within a
        rollout, the frames observed since the last plan (`_observed`)."""
        if self.rollout is not None:
            return self._observed()
        cfg, frames = self.predictor.model.config, []
        for camera in self.spec.cameras:
            history = list(self.history[camera.name])
            picks = [len(history) - 1 - cfg.stride * k for k in range(cfg.context - 1, -1, -1)]
            frames.append(np.stack([history[max(i, 0)] for i in picks]))
        return np.stack(frames), [i >= 0 for i in picks]

    def _observed(self) -> tuple[np.ndarray, list[bool]]:
        """What a rollout takes: the current frame on an episode's first plan, then the frames observed since it
        last took frames (with `step`, those of the executed actions; with `act`, those of the calls since) as one
        block of video (`4 * frames_per_block` frames ending now, each of them the latest
        frame at or before its time: fewer frames are repeated, as DreamZero repeats a short call's)."""
        if self.rollout.start == 0:
            picks = [-1]
        else:
            seen = min(max(self.unsent, 1), len(next(iter(self.history.values()))))
            block = 4 * self.predictor.model.config.frames_per_block
            picks = [-1 - (block - 1 - i) * seen // block for i in range(block)]
        self.unsent = 0
        frames = np.stack([np.stack([self.history[c.name][i] for i in picks]) for c in self.spec.cameras])
        return frames, [True] * len(picks)

    @torch.no_grad()
    def predicted_frame(self) -> np.ndarray | None:
        """The last plan's predicted future frame (first camera, first future step), uint8 at the model's
        resolution; None before the first plan."""
        from adapt.model.protocol import to_uint8

        if self.last_future is None:
            return None
        frames = self.predictor.model.frames_from_latents(self.last_future[:1])
        return to_uint8(frames[:, :1, :1])[0, 0, 0].cpu().numpy()

    def _plan(self, context: tuple[np.ndarray, list[bool]], state: np.ndarray, task: str) -> np.ndarray:
        chunk = self.predictor.predict(*context, state, task, self.generator, self.rollout)
        self.plans += 1
        self.last_future = chunk.future
        return chunk.actions

    # -- receding horizon --------------------------------------------------------------------------------

    def step(self, observation: dict) -> np.ndarray:
        """The next single action (action_dim,): replans every `execute` steps, blending chunk boundaries."""
        state, task = self._observe(observation)
        lead = max(1, self.config.execute // 2)
        if self._pool is not None and self._pending is None and self.since_plan == self.config.execute - lead:
            self._pending = self._pool.submit(self._plan, self._context(), state, task)
        if not self.queue or self.since_plan >= self.config.execute:
            if self._pending is not None:  # computed `lead` steps ago: those actions are already past
                chunk, self._pending = self._pending.result()[lead:], None
            else:
                chunk = self._plan(self._context(), state, task)
            self.queue = blend(self.queue, list(chunk), self.config.blend)
            self.since_plan = 0
        self.since_plan += 1
        # blending two plans that each respect the limits can still step too far: bound it from `state`
        return self.predictor.codec.clip(self.queue.pop(0)[None], state)[0]

    def bind(self, sim) -> None:
        """Nothing to read: a learned policy sees only its observations."""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def blend(old: list[np.ndarray], new: list[np.ndarray], steps: int) -> list[np.ndarray]:
    """The new chunk, its first `steps` actions cross-faded from what the old chunk still planned."""
    out = list(new)
    for i in range(min(steps, len(old), len(new))):
        w = (i + 1) / (steps + 1)
        out[i] = w * new[i] + (1 - w) * old[i]
    return out
