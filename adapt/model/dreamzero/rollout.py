"""DreamZero's closed-loop inference: one robot session's key/value cache of observed frames, kept across chunks.

DreamZero serves a policy this way (`WANPolicyHead.lazy_joint_video_action`), and `DreamZeroRollout` does what
it does, step for step:

- A session starts (or starts again) when the task changes, when a call brings a single frame, or when the
  cache holds a full window (`max_blocks` blocks after frame 0). Its first frame (the last one when a call
  brings 4 or 9 frames) becomes latent frame 0: its CLIP features and image condition are kept for the
  session, and its keys and values fill the cache.
- Every later call brings the frames observed while the last chunk ran. They are encoded as one block (the
  session's first frame put in front; 4 frames for a 2-frame block are each repeated), and the block's last
  `frames_per_block` latent frames enter the cache where the prediction was: from then on the model attends
  to what happened, not to what it predicted.
- The new block's video and actions are denoised together against the cache with UniPC (diffusers'
  `UniPCMultistepScheduler`, on DreamZero's shifted schedule), classifier-free guidance on the video with a
  negative prompt (a cache of its own), the video stopping at `video_final_noise`, and, where `dit_steps`
  says so, a step reusing the previous step's prediction instead of running the DiT.

On the tiny model, actions, video and both caches match DreamZero's own code within 1.2e-6 over a six-chunk session
(`tests/fixtures/dreamzero_reference/make_closed_loop.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import UniPCMultistepScheduler
from torch import Tensor

from adapt.errors import AdaptError
from adapt.model.noise import randn

NEGATIVE_PROMPT = (
    "Vibrant colors, overexposed, static, blurry details, text, subtitles, style, artwork, painting, image, still, "
    "grayscale, dull, worst quality, low quality, JPEG artifacts, ugly, mutilated, extra fingers, bad hands, bad "
    "face, deformed, disfigured, mutated limbs, fused fingers, stagnant image, cluttered background, three legs, "
    "many people in the background, walking backwards."
)
"""DreamZero's negative prompt (its data transform's `text_negative`)."""


@dataclass(frozen=True)
class Sampling:
    """How each block is denoised. DreamZero serves with 16 steps, guidance 5, shift 5 and the DiT run at 8 of
    the 16 steps; the defaults here run it at every step without guidance, and `ChunkPredictor` takes steps,
    guidance and the video's final noise from `InferenceConfig`."""

    steps: int = 16
    guidance: float = 1.0
    """Classifier-free guidance of the video (1: none, one DiT pass per step; DreamZero: 5, two passes)."""
    shift: float = 5.0
    video_final_noise: float = 0.0
    """Noise level the video stops at (decoupled inference); actions always reach 0."""
    dit_steps: Sequence[bool] | None = None
    """Which steps run the DiT (the others reuse the last prediction); None: every step."""

    def __post_init__(self):
        if self.steps < 1 or self.guidance < 1 or not 0 <= self.video_final_noise < 1:
            raise AdaptError(f"{self}: steps must be >= 1, guidance >= 1, video_final_noise in [0, 1)")
        if self.dit_steps is not None and (len(self.dit_steps) != self.steps or not self.dit_steps[0]):
            raise AdaptError(f"dit_steps must have one entry per step ({self.steps}) and run the first step")


def _schedulers(sampling: Sampling, device) -> tuple[UniPCMultistepScheduler, UniPCMultistepScheduler]:
    """Video and action schedulers with DreamZero's sigmas: `steps` points from 0.999 down (not 1: its
    scheduler's largest training sigma), shifted, then 0; the video's rescaled to end at `video_final_noise`."""
    schedulers = []
    for final in (sampling.video_final_noise, 0.0):
        scheduler = UniPCMultistepScheduler(
            num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=1.0
        )
        scheduler.set_timesteps(sampling.steps, device=device)
        s = np.linspace(float(np.float32(0.999)), 0.0, sampling.steps + 1)[:-1]
        s = sampling.shift * s / (1 + (sampling.shift - 1) * s)
        sigmas = torch.from_numpy(np.concatenate([s, [0.0]]).astype(np.float32)).to(device)
        if final:
            sigmas = sigmas * (sigmas[0].item() - final) / sigmas[0].item() + final
        scheduler.sigmas = sigmas
        scheduler.timesteps = (sigmas[:-1] * 1000).to(torch.int64)
        scheduler.set_begin_index(0)
        schedulers.append(scheduler)
    return schedulers[0], schedulers[1]


class DreamZeroRollout:
    """One session of a DreamZero model with one embodiment's heads: `step` (or `next_chunk`) per chunk, in
    order. `DreamZeroWAM.rollout` makes one per robot session."""

    def __init__(self, model, heads, sampling: Sampling = Sampling(), spec=None):
        self.model, self.heads, self.sampling, self.spec = model, heads, sampling, spec
        c = model.config
        self.chunk = spec.action.chunk if spec is not None else c.actions_per_block
        """Action tokens per block: the spec's chunk, as in training (DreamZero's action_horizon)."""
        self.fpb, self.window = c.frames_per_block, c.max_blocks * c.frames_per_block + 1
        """Latent frames per block; latent frames one session holds (DreamZero's local_attn_size)."""
        self.start = 0
        """The latent frame the next block starts at (DreamZero's current_start_frame); 0: a new session."""
        self.task: str | None = None
        self.contexts: list[Tensor] = []
        """Cross-attention context per prompt: the task's, then with guidance the negative prompt's."""
        self.caches: list[list] = []
        """Keys/values per layer of the session's observed frames, per prompt."""
        self.observed: Tensor | None = None
        """The latest observed latent frames."""
        self.ys: Tensor | None = None
        """The session's image condition over its whole window (B, 4 + z or 0, window, h, w)."""

    @torch.no_grad()
    def step(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """`WorldModel.sample`'s answer within the session: `batch` is one observation (`observation_batch`)
        whose frames are those observed since the last call (one on a session's first call). `future` leads
        with the latest observed latent frame, which decoding the block needs."""
        mosaic = self.model._mosaic(batch["frames"], self.spec)
        text = self.model.prompt(batch["task"][0], self.spec)
        actions, latents = self.next_chunk(mosaic, batch["state"], text, generator)
        future = torch.cat([self.observed[:, :, -1:], latents[:, :, -self.fpb :]], 2)
        return {"actions": actions, "future": future, "future_estimate": future}

    @torch.no_grad()
    def next_chunk(
        self, video: Tensor, state: Tensor, prompt: str, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Normalized actions (B, chunk, action_dim) and the block's video latents (B, z, F, h, w), led by latent
        frame 0 on a session's first chunk, from the mosaic frames observed since the last call (B, T, 3, H, W)
        uint8 (T: 1, 4 or 8 for 2-frame blocks, or 9), the normalized state (B, state_dim) and the prompt."""
        model, backbone, fpb = self.model, self.model.backbone, self.fpb
        frames = video.shape[1]
        if prompt != self.task or frames == 1 or self.start >= self.window:
            self.task, self.start = prompt, 0
        if self.start == 0:
            first = video[:, -1] if frames in (4, 9) else video[:, 0]
            observed = self._begin(first, prompt)
        else:
            observed = model.tokenizer.encode_video(self._as_block(video))[:, :, -fpb:]
            y = self._y(self.start - fpb)
            for i, context in enumerate(self.contexts):
                self.caches[i] = backbone.encode_clean(
                    torch.cat([observed, y], 1), context, self.start - fpb, self.caches[i]
                )
        self.observed = observed
        actions, latents = self._denoise(state, generator, observed)
        if self.start == 1:
            latents = torch.cat([observed, latents], 2)
        self.start += fpb
        return actions, latents

    def _begin(self, first: Tensor, prompt: str) -> Tensor:
        """A new session from its first frame (B, 3, H, W): condition, contexts, frame 0 in the caches."""
        model, c = self.model, self.model.config
        tokens = model.tokenizer
        h, w = (side // c.vae_stride[1] for side in first.shape[-2:])
        self.ys = model._condition(first, first.new_zeros(first.shape[0], c.out_dim, self.window, h, w).float())
        image = tokens.encode_image(first)
        prompts = [prompt] + ([NEGATIVE_PROMPT] if self.sampling.guidance != 1 else [])
        self.contexts = [model.backbone.context(tokens.encode_text([p] * first.shape[0]), image) for p in prompts]
        latent = self.ys[:, 4:, :1] if c.model_type == "i2v" else tokens.encode_video(first[:, None])
        clean = torch.cat([latent, self._y(0, 1)], 1)
        self.caches = [model.backbone.encode_clean(clean, context, 0) for context in self.contexts]
        self.start = 1
        return latent

    def _y(self, first: int, frames: int | None = None) -> Tensor:
        """The image condition of latent frames `first`... (the last block's when the window is passed)."""
        frames = frames or self.fpb
        if first + frames > self.ys.shape[2]:
            return self.ys[:, :, -frames:]
        return self.ys[:, :, first : first + frames]

    def _as_block(self, video: Tensor) -> Tensor:
        """Observed frames as one block's video: the first frame in front, DreamZero's repeat of short calls."""
        frames, block = video.shape[1], 4 * self.fpb
        if (frames - 1) // 4 == self.fpb:
            return video
        if frames // 4 != self.fpb:
            if frames < 4 or self.fpb % (frames // 4):
                raise AdaptError(
                    f"{frames} observed frames cannot make a block of {block} frames: send 1, 4, {block} or {block + 1}"
                )
            video = video.repeat_interleave(self.fpb // (frames // 4), dim=1)
        return torch.cat([video[:, :1], video], dim=1)

    def _denoise(self, state: Tensor, generator, observed: Tensor) -> tuple[Tensor, Tensor]:
        model, heads, sampling, fpb = self.model, self.heads, self.sampling, self.fpb
        b, device = observed.shape[0], observed.device
        latents = randn((b, model.config.out_dim, fpb, *observed.shape[3:]), generator, device)
        actions = randn((b, self.chunk, heads.action_dim), generator, device)
        video_scheduler, action_scheduler = _schedulers(sampling, device)
        states = heads.state_encoder(state.float()[:, None])
        y, block = self._y(self.start), (self.start - 1) // fpb
        previous = None
        for k in range(sampling.steps):
            tv = video_scheduler.timesteps[k].float().expand(b, fpb)
            ta = action_scheduler.timesteps[k].float().expand(b, actions.shape[1])
            if sampling.dit_steps is None or sampling.dit_steps[k] or previous is None:
                noisy, tokens = torch.cat([latents, y], 1), heads.action_encoder(actions, ta)
                outputs = [
                    model.backbone.denoise(noisy, tv, tokens, ta, states, context, cache, self.start, block)
                    for context, cache in zip(self.contexts, self.caches, strict=True)
                ]
                video_velocity, hidden = outputs[0]  # actions follow the task's prompt only
                if len(outputs) > 1:  # guidance: away from the negative prompt's video prediction
                    video_velocity = outputs[1][0] + sampling.guidance * (video_velocity - outputs[1][0])
                previous = video_velocity, heads.action_decoder(hidden)
            video_velocity, action_velocity = previous
            latents = video_scheduler.step(video_velocity, tv[0, 0], latents, return_dict=False)[0]
            actions = action_scheduler.step(action_velocity, ta[0, 0], actions, return_dict=False)[0]
        return actions, latents
