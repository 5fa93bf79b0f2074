"""A World Action Model as a function: one observation's context in, one safe action chunk out.

`ChunkPredictor` keeps no per-episode state (frame history, planned actions: that is the controller's,
`adapt.policy.Policy`), so one predictor serves any number of robots or sessions, each with its own
controller. It is built once from a loaded model or a folder; LoRA merging and compilation happen
then, not per call. Whatever the network outputs, the chunk it returns stays within the spec's
limits (`ActionCodec.decode_actions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from adapt.adapter import load_adapter, merge, read_meta
from adapt.data.batch import observation_batch
from adapt.data.codec import ActionCodec
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig
from adapt.model import WorldModel, load_model
from adapt.model.dreamzero.rollout import Sampling


@dataclass
class Chunk:
    actions: np.ndarray
    """(chunk, action_dim): absolute commands, de-normalized, within the spec's limits."""
    future: Tensor
    """Predicted future latents (1, cams, future, ...): `model.frames_from_latents` shows them."""


class ChunkPredictor:
    """Action chunks for one embodiment from a model that has heads for it.

    The predictor owns `model`: with `config.merge_lora` it folds LoRA into the backbone in place.
    """

    def __init__(self, model: WorldModel, embodiment: str, config: InferenceConfig = InferenceConfig()):
        if embodiment not in model.heads or model.specs[embodiment].action is None:
            raise AdaptError(f"the model has no action heads for '{embodiment}'; it has {sorted(model.heads)}")
        self.spec: EmbodimentSpec = model.specs[embodiment]
        self.chunk = self.spec.action.chunk
        if config.merge_lora:
            merge(model)
        if config.compile:
            model.backbone.forward_with_cache = torch.compile(model.backbone.forward_with_cache)
        self.model, self.config = model.to(config.device).eval(), config
        self.stats = model.stats.get(embodiment)
        self.codec = ActionCodec(self.spec, self.stats)

    @classmethod
    def load(
        cls, path: Path, embodiment: str | None = None, base: Path | None = None, config=InferenceConfig()
    ) -> ChunkPredictor:
        """From an adapter folder (`RUN/adapter` or `RUN`; base taken from it or `base`) or a model checkpoint
        (`embodiment` may be left out when it has action heads for one robot only)."""
        path = Path(path)
        path = path / "adapter" if (path / "adapter" / "adapt_adapter.json").is_file() else path
        if (path / "adapt_adapter.json").is_file():
            model = load_adapter(path, base)
            embodiment = embodiment or read_meta(path)["target"]
        else:
            model = load_model(path)
            robots = [n for n, s in model.specs.items() if s.action is not None]
            if embodiment is None and len(robots) != 1:
                raise AdaptError(f"{path} has heads for {robots}; choose one with embodiment=")
            embodiment = embodiment or robots[0]
        return cls(model, embodiment, config)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) the model's context frames have."""
        window = self.model.config.window()
        return window.height, window.width

    def start_rollout(self):
        """One robot session's sampling state where the model keeps one across chunks, else None. The dreamzero
        family keeps DreamZero's key/value cache of observed frames (`adapt.model.dreamzero.rollout`); `predict`
        then takes, instead of context frames, the frames observed since its last chunk."""
        if not hasattr(self.model, "rollout"):
            return None
        config = self.config
        sampling = Sampling(steps=config.steps, guidance=config.guidance, video_final_noise=config.video_final_t)
        return self.model.rollout(self.spec.name, sampling)

    @torch.no_grad()
    def predict(
        self,
        frames: np.ndarray,
        context_mask: list[bool],
        state: np.ndarray,
        task: str,
        generator: torch.Generator | None = None,
        rollout=None,
    ) -> Chunk:
        """The chunk for context frames (cams, context, H, W, 3) uint8 at `frame_size` (`context_mask`: which
        exist) and the raw state (state_dim,); within a `rollout` (`start_rollout`), the frames observed since
        its last chunk."""
        config = self.config
        batch = observation_batch(
            frames, context_mask, self.codec.encode_state(state), task, self.spec.name, config.device
        )
        if rollout is not None:
            out = rollout.step(batch, generator)
        else:
            out = self.model.sample(
                batch, config.steps, config.video_final_t, generator=generator, cache=config.cache_context
            )
        actions = self.codec.decode_actions(out["actions"][0].float().cpu().numpy(), state)
        return Chunk(actions, out["future_estimate"])  # a viewable future even when the video stays noisy
