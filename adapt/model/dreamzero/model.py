"""The `dreamzero` family: DreamZero's World Action Model behind `adapt.model.protocol.WorldModel`.

Parameters in the protocol's three groups:

- `tokenizer`: DreamZero's frozen encoders (Wan VAE, umT5 text encoder, CLIP image encoder), never trained;
- `shared_modules()`: the DiT (`backbone`, what LoRA adapts) and `shared_registers`, DreamZero's own
  registers padded to 64 state / 32 action dimensions, kept only to seed new heads (`donor="dreamzero"`);
- `heads[name]`: one embodiment's registers, sized from its spec (no padding).

A training window becomes DreamZero's input as its data pipeline builds it: the cameras tiled into a 2 x 2
mosaic by their roles (`mosaic_slots`), the context frame and the future frames encoded by the VAE
(latent frame 0, then one block of `frames_per_block` latent frames), the task as DreamZero's prompt, the
first frame as CLIP features and, for Wan2.1-I2V, as the image condition `y` (a first-frame mask and the
VAE latents of the first frame followed by mid-grey frames) concatenated to the latents. The action chunk
is one block of action tokens, the state one state token. Flow matching follows DreamZero: a shifted
schedule (shift 5) on the 0-1000 scale, one time for latent frame 0 and one per block shared with that
block's actions, velocity targets (noise - data), each frame's and action's error weighted by DreamZero's
bell-shaped weight. Samples without actions (video-only data) carry actions at pure noise and no
action loss. DreamZero has no layout without future video: `action_only` drops the video loss, not the
video tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapt.data.codec import ActionCodec, shared_dims, state_names
from adapt.data.stats import NormStats
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.model.dreamzero.config import DreamZeroConfig
from adapt.model.dreamzero.dit import DreamZeroDiT
from adapt.model.dreamzero.encoder_cache import EncoderCache
from adapt.model.dreamzero.encoders import DreamZeroEncoders, to_unit_range
from adapt.model.dreamzero.registers import DreamZeroHeads
from adapt.model.dreamzero.rollout import DreamZeroRollout, Sampling
from adapt.model.noise import rand, randn
from adapt.model.protocol import Mode, batch_embodiment

DONOR = "dreamzero"
"""`add_embodiment(spec, donor=DONOR)` seeds new heads from the checkpoint's shared registers."""
SLOTS = ["top-left", "top-right", "bottom-left", "bottom-right"]
ROLE_SLOTS = {
    "primary": [0, 2, 3, 1],
    "overhead": [0, 2, 3, 1],
    "egocentric": [0, 2, 3, 1],
    "wrist": [1, 3, 2, 0],
    "secondary": [2, 3, 0, 1],
}
"""Mosaic slots each camera role takes, in order of preference (DreamZero's AgiBot layout: head view top
left, hand views top right and bottom left)."""
SHIFT = 5.0
PROMPT = "A multi-view video shows that a robot {task} The video is split into {views}. The robot {task}"


def mosaic_slots(spec: EmbodimentSpec) -> list[int]:
    """The mosaic slot of each of `spec`'s cameras, chosen by role (never by the cameras' order): primary,
    overhead and egocentric views go top left, wrist views top right then bottom right, secondary views
    bottom left; empty slots stay black. More than four cameras cannot be tiled."""
    if len(spec.cameras) > 4:
        raise AdaptError(
            f"embodiment '{spec.name}': DreamZero tiles at most 4 cameras, the spec has {len(spec.cameras)}"
        )
    taken: list[int] = []
    for camera in spec.cameras:
        taken.append(next(s for s in ROLE_SLOTS[camera.role] if s not in taken))
    return taken


def prompt(task: str, spec: EmbodimentSpec) -> str:
    """DreamZero's prompt template with the views named by role and slot."""
    slots = mosaic_slots(spec)
    named = [
        f"the {SLOTS[s]} view shows the {c.role} camera ({c.name})" for s, c in zip(slots, spec.cameras, strict=True)
    ]
    named += [f"the {SLOTS[s]} view is a black screen" for s in range(4) if s not in slots]
    text = task.strip().lower().rstrip(".") + "."
    return PROMPT.format(task=text, views="four views: " + ", ".join(named))


def sigmas(u: Tensor) -> Tensor:
    """DreamZero's shifted flow schedule: uniform u in [0, 1] -> noise level 5u / (1 + 4u)."""
    return SHIFT * u / (1 + (SHIFT - 1) * u)


def loss_weight(t: Tensor) -> Tensor:
    """DreamZero's per-time loss weight over its 1000 training times (mean 1 over the table), at times t
    on the 0-1000 scale."""
    table_t = sigmas(torch.linspace(1, 0, 1001, dtype=torch.float64)[:-1]) * 1000
    y = torch.exp(-2 * ((table_t - 500) / 1000) ** 2)
    y = y - y.min()
    table = y * (1000 / y.sum())
    nearest = (t.double()[..., None] - table_t.to(t.device)).abs().argmin(-1)
    return table.to(t.device)[nearest].float()


class DreamZeroWAM(nn.Module):
    """DreamZero's DiT, its frozen encoders and per-embodiment registers."""

    def __init__(self, config: DreamZeroConfig, specs: list[EmbodimentSpec] = ()):
        super().__init__()
        self.config = config
        self.tokenizer = DreamZeroEncoders(config).requires_grad_(False)
        self.backbone = DreamZeroDiT(config)
        self.shared_registers = DreamZeroHeads.shared(config)
        self.heads = nn.ModuleDict()
        self.specs: dict[str, EmbodimentSpec] = {}
        self.stats: dict[str, NormStats] = {}
        self.encoder_cache: EncoderCache | None = None
        """Set for a loaded checkpoint (keyed by its fingerprint): training encodes each input once."""
        self.donor_names: dict[str, list[str]] = {"state": [], "action": []}
        """Names of the shared registers' state and action dimensions (from the checkpoint's metadata.json),
        which `add_embodiment(..., donor="dreamzero")` matches the new robot's names against."""
        for spec in specs:
            self.add_embodiment(spec)

    def shared_modules(self) -> dict[str, nn.Module | nn.Parameter]:
        return {"backbone": self.backbone, "shared_registers": self.shared_registers}

    def add_embodiment(self, spec: EmbodimentSpec, donor: str | None = None) -> DreamZeroHeads:
        """Registers sized from `spec`; with `donor="dreamzero"` seeded from the checkpoint's shared registers
        (hidden layers whole, the rows of dimensions named alike), with another embodiment's name from its."""
        if not spec.action or not spec.state_dim:
            raise AdaptError(f"embodiment '{spec.name}': the dreamzero family needs state and actions in the spec")
        mosaic_slots(spec)
        heads = DreamZeroHeads.for_spec(spec, self.config).to(self.shared_registers.state_encoder.layer1.W.device)
        if donor == DONOR:
            heads.copy_rows(
                self.shared_registers,
                shared_dims(state_names(spec), self.donor_names["state"]),
                shared_dims(ActionCodec(spec).names(), self.donor_names["action"]),
            )
        elif donor is not None:
            if donor not in self.heads or donor == spec.name:
                raise AdaptError(
                    f"donor '{donor}' is not '{DONOR}' or another embodiment of the model ({sorted(self.heads)})"
                )
            known = self.specs[donor]
            heads.copy_rows(
                self.heads[donor],
                shared_dims(state_names(spec), state_names(known)),
                shared_dims(ActionCodec(spec).names(), ActionCodec(known).names()),
            )
        self.heads[spec.name] = heads
        self.specs[spec.name] = spec
        return heads

    @staticmethod
    def prompt(task: str, spec: EmbodimentSpec) -> str:
        """DreamZero's prompt for `task` on `spec` (the module's `prompt`, for code that holds only the model)."""
        return prompt(task, spec)

    def rollout(self, embodiment: str, sampling: Sampling | None = None) -> DreamZeroRollout:
        """A robot session's closed-loop state (DreamZero's KV cache of observed frames) for `embodiment`."""
        return DreamZeroRollout(self, self.heads[embodiment], sampling or Sampling(), self.specs[embodiment])

    # -- video ---------------------------------------------------------------------------------------

    def _mosaic(self, frames: Tensor, spec: EmbodimentSpec) -> Tensor:
        """(B, cams, T, 3, H, W) uint8 -> (B, T, 3, 2H, 2W) uint8, cameras in their role's slots."""
        b, _, t, c, h, w = frames.shape
        out = frames.new_zeros(b, t, c, 2 * h, 2 * w)
        for camera, slot in enumerate(mosaic_slots(spec)):
            row, col = divmod(slot, 2)
            out[..., row * h : (row + 1) * h, col * w : (col + 1) * w] = frames[:, camera]
        return out

    def _views(self, mosaic: Tensor, spec: EmbodimentSpec) -> Tensor:
        """Inverse of `_mosaic` for decoded frames: (B, T, 3, 2H, 2W) -> (B, cams, T, 3, H, W)."""
        h, w = mosaic.shape[-2] // 2, mosaic.shape[-1] // 2
        views = []
        for slot in mosaic_slots(spec):
            row, col = divmod(slot, 2)
            views.append(mosaic[..., row * h : (row + 1) * h, col * w : (col + 1) * w])
        return torch.stack(views, dim=1)

    def latents(self, frames: Tensor, spec: EmbodimentSpec | None = None) -> Tensor:
        """uint8 frames (B, cams, T, 3, H, W), T = 1 + 4k -> VAE latents of the mosaic (B, z, 1 + k, h, w)."""
        spec = spec or next(iter(self.specs.values()))
        with torch.no_grad():
            return self.tokenizer.encode_video(self._mosaic(frames, spec))

    def frames_from_latents(self, latents: Tensor, spec: EmbodimentSpec | None = None) -> Tensor:
        """The observed latent frame followed by predicted ones (B, z, 1 + F, h, w), as `sample` returns them
        (Wan's causal VAE decodes a block only after the frame before it) -> the predicted frames in [-1, 1]
        per camera (B, cams, 4F, 3, H, W)."""
        spec = spec or next(iter(self.specs.values()))
        with torch.no_grad():
            return self._views(self.tokenizer.decode_video(latents)[:, 1:], spec)

    def _encoded(self, kind: str, keys: list, encode, cached: bool) -> Tensor:
        """`encode(indices)` of every key, through the encoder cache when `cached` and the model has one (a
        loaded checkpoint, in training: a robot's live frames are never seen twice)."""
        if not cached or self.encoder_cache is None:
            return encode(list(range(len(keys))))
        return self.encoder_cache.get(kind, keys, encode).to(self.backbone.scale_shift_table.device)

    def _video_latents(self, mosaic: Tensor, cached: bool = False) -> Tensor:
        with torch.no_grad():
            return self._encoded("video", list(mosaic), lambda i: self.tokenizer.encode_video(mosaic[i]), cached)

    def _condition(self, first: Tensor, latents: Tensor, cached: bool = False) -> Tensor:
        """The image condition concatenated to `latents` (B, z, F, h, w) for a mosaic first frame (B, 3, H', W')
        uint8. Wan2.1-I2V: a 4-channel mask of latent frame 0 and the VAE latents of the first frame followed
        by frames of zeros in [-1, 1] (B, 4 + z, F, h, w); Wan2.2-TI2V has none (0 channels)."""
        b, _, frames, h, w = latents.shape
        if self.config.model_type != "i2v":
            return latents.new_zeros(b, 0, frames, h, w)

        def encode(indices: list[int]) -> Tensor:
            video = torch.zeros(
                len(indices), 1 + (frames - 1) * self.config.vae_stride[0], *first.shape[1:], device=first.device
            )
            video[:, 0] = to_unit_range(first[indices])
            return self.tokenizer.encode_video(video)

        with torch.no_grad():
            z = self._encoded(f"condition-{frames}", list(first), encode, cached)
        mask = torch.zeros(b, 4, frames, h, w, device=z.device)
        mask[:, :, 0] = 1
        return torch.cat([mask, z], dim=1)

    def _context(self, batch: dict, spec: EmbodimentSpec, first: Tensor, cached: bool = False) -> Tensor:
        prompts = [prompt(t, spec) for t in batch["task"]]
        with torch.no_grad():
            text = self._encoded("text", prompts, lambda i: self.tokenizer.encode_text([prompts[j] for j in i]), cached)
            image = self._encoded("image", list(first), lambda i: self.tokenizer.encode_image(first[i]), cached)
        return self.backbone.context(text, image)

    # -- training and sampling -----------------------------------------------------------------------

    def loss(self, batch: dict, mode: Mode = "joint", generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """DreamZero's teacher-forced flow-matching losses of one window batch."""
        spec, heads = batch_embodiment(self, batch)
        mosaic = self._mosaic(batch["frames"], spec)
        x0 = self._video_latents(mosaic, cached=True)  # (B, z, F, h, w)
        b, _, frames = x0.shape[:3]
        device = x0.device
        y = self._condition(mosaic[:, 0], x0, cached=True)
        u = rand((b, 2), generator, device)
        sigma = sigmas(u)  # frame 0, then the block
        sigma_frames = torch.cat([sigma[:, :1], sigma[:, 1:].expand(b, frames - 1)], dim=1)
        noise = randn(x0.shape, generator, device)
        s = sigma_frames[:, None, :, None, None]
        xt = (1 - s) * x0 + s * noise
        has_action = batch["has_action"].bool() & (mode != "video_only")
        actions = batch["action"].float()
        action_noise = randn(actions.shape, generator, device)
        sigma_action = torch.where(has_action, sigma[:, 1], torch.ones_like(sigma[:, 1]))[:, None, None]
        noisy_actions = (1 - sigma_action) * actions + sigma_action * action_noise
        t_action = (sigma_action[:, :, 0] * 1000).expand(b, actions.shape[1])
        state = batch["state"].float()[:, None]
        tokens = heads.action_encoder(noisy_actions, t_action)
        velocity, hidden = self.backbone(
            torch.cat([xt, y], 1),
            torch.cat([x0, y], 1),
            sigma_frames * 1000,
            tokens,
            t_action,
            heads.state_encoder(state),
            self._context(batch, spec, mosaic[:, 0], cached=True),
        )
        zero = x0.new_zeros(())
        losses = {"video": zero, "action": zero}
        if mode != "action_only":
            error = (velocity - (noise - x0)).pow(2).mean(dim=(1, 3, 4)) * loss_weight(sigma_frames * 1000)
            losses["video"] = error.mean()
        if mode != "video_only" and bool(has_action.any()):
            error = (heads.action_decoder(hidden) - (action_noise - actions)).pow(2).mean(-1)
            error = error * loss_weight(t_action)
            keep = (batch["action_mask"] & has_action[:, None]).float()
            losses["action"] = (error * keep).sum() / keep.sum().clamp_min(1.0)
        losses["loss"] = losses["video"] + losses["action"]
        return losses

    @torch.no_grad()
    def sample(
        self,
        batch: dict,
        steps: int = 10,
        video_final_t: float = 0.0,
        mode: Mode = "joint",
        generator: torch.Generator | None = None,
        cache: bool = True,
    ) -> dict[str, Tensor]:
        """Actions (normalized) and the future block's latents from one observation: the observed frame is
        encoded once into the DiT's key/value cache (DreamZero's inference; `cache` is always on), then
        `steps` Euler steps on the shifted schedule denoise the block's video and actions together, the
        video stopping at noise level `video_final_t` (decoupled inference) while actions reach 0. `future`
        and `future_estimate` lead with the observed latent frame, which decoding the block needs."""
        spec, heads = batch_embodiment(self, batch)
        c = self.config
        mosaic = self._mosaic(batch["frames"][:, :, -1:], spec)
        observed = self.tokenizer.encode_video(mosaic)  # (B, z, 1, h, w)
        b, device = observed.shape[0], observed.device
        block = observed.new_zeros(b, c.out_dim, 1 + c.frames_per_block, *observed.shape[3:])
        y = self._condition(mosaic[:, 0], block)
        context = self._context(batch, spec, mosaic[:, 0])
        kv = self.backbone.encode_clean(torch.cat([observed, y[:, :, :1]], 1), context, 0)
        future = randn((b, c.out_dim, c.frames_per_block, *observed.shape[3:]), generator, device)
        actions = randn((b, spec.action.chunk, spec.action_dim), generator, device)
        states = heads.state_encoder(batch["state"].float()[:, None])
        grid = sigmas(torch.linspace(1, 0, steps + 1, device=device))
        video_grid = video_final_t + (1 - video_final_t) * grid
        estimate = future
        for k in range(steps):
            tv, ta = video_grid[k].expand(b, c.frames_per_block) * 1000, grid[k].expand(b, actions.shape[1]) * 1000
            velocity, hidden = self.backbone.denoise(
                torch.cat([future, y[:, :, 1:]], 1),
                tv,
                heads.action_encoder(actions, ta),
                ta,
                states,
                context,
                kv,
                1,
                0,
            )
            estimate = future - video_grid[k] * velocity
            future = future + (video_grid[k + 1] - video_grid[k]) * velocity
            actions = actions + (grid[k + 1] - grid[k]) * heads.action_decoder(hidden)
        return {
            "actions": actions,
            "future": torch.cat([observed, future], dim=2),
            "future_estimate": torch.cat([observed, estimate], dim=2),
        }
