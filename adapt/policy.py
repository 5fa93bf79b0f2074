"""A World Action Model as a robot controller: observations in, safe absolute action chunks out.

`Policy.act(observation)` returns one de-normalized chunk clipped to the spec's limits; `Policy.step`
runs receding-horizon control on top of it: it executes `execute` actions of each chunk, blends the
first `blend` actions of a new chunk with what the old one still planned (no stutter at chunk
boundaries), and with `async_next` computes the next chunk while the current one executes.
Whatever the network outputs, a command never leaves the spec's position and velocity limits; a
non-finite output becomes a hold-position action, with a warning.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from adapt.data.codec import ActionCodec
from adapt.data.resize import resize_frames
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig


class Policy:
    """Closed-loop control of one embodiment with a model that has heads for it."""

    def __init__(self, model, embodiment: str, config: InferenceConfig = InferenceConfig(), task: str = ""):
        if embodiment not in model.heads or model.specs[embodiment].action is None:
            raise AdaptError(f"the model has no action heads for '{embodiment}'; it has {sorted(model.heads)}")
        if config.execute < 1 or config.blend < 0:
            raise AdaptError("InferenceConfig: execute must be >= 1 and blend >= 0")
        self.model, self.config, self.task = model.to(config.device).eval(), config, task
        self.spec: EmbodimentSpec = model.specs[embodiment]
        self.stats = model.stats.get(embodiment)
        self.codec = ActionCodec(self.spec, self.stats)
        self.chunk = self.spec.action.chunk
        if config.execute > self.chunk:
            raise AdaptError(f"InferenceConfig.execute ({config.execute}) exceeds the chunk length ({self.chunk})")
        self.generator = torch.Generator(config.device).manual_seed(config.seed)
        self._pool = ThreadPoolExecutor(max_workers=1) if config.async_next else None
        self.plans = 0
        """Chunks computed so far (for monitoring replanning)."""
        self.reset()

    @classmethod
    def load(
        cls, path: Path, embodiment: str | None = None, base: Path | None = None, config=InferenceConfig(), task=""
    ) -> Policy:
        """From an adapter folder (`RUN/adapter`, base taken from it or `base`) or a model checkpoint."""
        from adapt.adapter import load_adapter, merge
        from adapt.model import load_model

        path = Path(path)
        path = path / "adapter" if (path / "adapter" / "adapt_adapter.json").is_file() else path
        if (path / "adapt_adapter.json").is_file():
            model = load_adapter(path, base)
            embodiment = embodiment or json.loads((path / "adapt_adapter.json").read_text())["target"]
        else:
            model = load_model(path)
            robots = [n for n, s in model.specs.items() if s.action is not None]
            if embodiment is None and len(robots) != 1:
                raise AdaptError(f"{path} has heads for {robots}; choose one with embodiment=")
            embodiment = embodiment or robots[0]
        if config.merge_lora:
            merge(model)
        if config.compile:
            model.backbone.forward_with_cache = torch.compile(model.backbone.forward_with_cache)
        return cls(model, embodiment, config, task)

    def reset(self) -> None:
        """Forget the frame history and planned actions (a new episode)."""
        span = (self.model.config.context - 1) * self.model.config.stride + 1
        self.history: dict[str, deque] = {c.name: deque(maxlen=span) for c in self.spec.cameras}
        self.queue: list[np.ndarray] = []
        self.since_plan = 0
        self._pending: Future | None = None

    # -- one chunk -------------------------------------------------------------------------------------

    def act(self, observation: dict) -> np.ndarray:
        """The action chunk (chunk, action_dim) for `observation`: absolute, de-normalized, within limits.

        `observation` holds a uint8 (H, W, 3) frame per spec camera name, the state as `state` or as its
        proprio blocks by name, and optionally `task`.
        """
        self._record(observation)
        return self._plan(self._context(), self._state(observation), observation.get("task", self.task))

    def _record(self, observation: dict) -> None:
        size = (self.model.config.image_size,) * 2
        for camera in self.spec.cameras:
            if camera.name not in observation:
                raise AdaptError(f"observation has no frame for camera '{camera.name}' (has {sorted(observation)})")
            frame = np.asarray(observation[camera.name])
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
                raise AdaptError(f"camera '{camera.name}': expected uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            self.history[camera.name].append(resize_frames(frame[None], size)[0])

    def _state(self, observation: dict) -> np.ndarray:
        if "state" in observation:
            state = np.asarray(observation["state"], np.float32).reshape(-1)
        else:
            missing = [p.name for p in self.spec.proprio if p.name not in observation]
            if missing:
                raise AdaptError(f"observation lacks 'state' and proprio fields {missing}")
            state = np.concatenate([np.asarray(observation[p.name], np.float32).reshape(-1) for p in self.spec.proprio])
        if state.shape != (self.spec.state_dim,):
            raise AdaptError(f"state has {state.shape[0]} values; spec '{self.spec.name}' has {self.spec.state_dim}")
        return state

    def _context(self) -> tuple[np.ndarray, list[bool]]:
        """Context frames (cams, context, S, S, 3) every `stride` steps back from now, and which exist."""
        cfg, frames = self.model.config, []
        for camera in self.spec.cameras:
            history = list(self.history[camera.name])
            picks = [len(history) - 1 - cfg.stride * k for k in range(cfg.context - 1, -1, -1)]
            frames.append(np.stack([history[max(i, 0)] for i in picks]))
        return np.stack(frames), [i >= 0 for i in picks]

    @torch.no_grad()
    def _plan(self, context: tuple[np.ndarray, list[bool]], state: np.ndarray, task: str) -> np.ndarray:
        config, device = self.config, self.config.device
        frames, mask = context
        normalized = self.codec.encode_state(state)
        batch = {
            "frames": torch.from_numpy(frames[None]).permute(0, 1, 2, 5, 3, 4).to(device),
            "context_mask": torch.tensor([mask], device=device),
            "state": torch.as_tensor(normalized, dtype=torch.float32, device=device)[None],
            "has_state": torch.tensor([True], device=device),
            "task": [task],
            "embodiment": [self.spec.name],
        }
        out = self.model.sample(
            batch, config.steps, config.video_final_t, generator=self.generator, cache=config.cache_context
        )
        self.plans += 1
        self.last_future = out["future_estimate"]  # a viewable future even when the video stays noisy
        return self.codec.decode_actions(out["actions"][0].float().cpu().numpy(), state)

    # -- receding horizon --------------------------------------------------------------------------------

    def step(self, observation: dict) -> np.ndarray:
        """The next single action (action_dim,): replans every `execute` steps, blending chunk boundaries."""
        self._record(observation)
        state, task = self._state(observation), observation.get("task", self.task)
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
        return self.queue.pop(0)

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
