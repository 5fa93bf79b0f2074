"""The World Action Model: joint flow matching of future video latents and action chunks.

Sequence per sample, in this order:

    [context video | state | task words]  [noisy future video | noisy action chunk]
     clean prefix                           noisy suffix

Clean tokens attend only to clean tokens, so their encoding does not depend on the noise and can be
cached across sampling steps; noisy tokens attend to everything. Video and actions get independent
flow times (Unified World Models): a sample without actions has its action tokens hidden from every
other token and its action loss masked, so video-only data trains the video branch and leaves the
action heads untouched. `action_only` drops the future-video tokens (a VLA-style baseline on the same
backbone).

Flow convention: x_t = (1 - t) x_0 + t noise, t = 1 is pure noise, the network predicts the velocity
noise - x_0, and sampling integrates from t = 1 down to 0 (or, for video, down to `video_final_t`). With
`config.video_target == "change"` the video's x_0 is the future latents minus the last context latent, and
sampling adds that latent back. With `config.video_prediction == "clean"` the video output is x_0 itself,
trained on its squared error, and sampling turns it into the velocity (x_t - x_0) / t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import torch
from torch import Tensor, nn

from adapt.data.stats import NormStats
from adapt.embodiment import EmbodimentSpec
from adapt.embodiment.spec import CameraRole
from adapt.errors import AdaptError
from adapt.model.dit.backbone import build_backbone, timestep_embedding
from adapt.model.dit.config import ModelConfig
from adapt.model.dit.heads import EmbodimentHeads
from adapt.model.dit.text import HashedTextEncoder
from adapt.model.dit.tokenizer import FrameTokenizer
from adapt.model.noise import randn
from adapt.model.protocol import Mode, batch_embodiment

CLEAN, VIDEO, ACTION = 0, 1, 2
ROLES = list(get_args(CameraRole))


@dataclass
class Prefix:
    """The encoded clean part of a batch (what sampling steps share)."""

    tokens: Tensor  # (B, Nc, D)
    valid: Tensor  # (B, Nc) bool: keys that exist
    heads: EmbodimentHeads
    spec: EmbodimentSpec
    cameras: int

    def without_hidden(self) -> Prefix:
        """A one-sample prefix with its hidden tokens (padded context frames and task words) dropped rather
        than masked: the same attention result (positions are in the tokens, hidden keys count for
        nothing), with fewer tokens and, when the noisy tokens all exist too, no mask at all."""
        if self.tokens.shape[0] != 1:
            raise ValueError("only a one-sample prefix can drop its hidden tokens")
        keep = self.valid[0]
        return Prefix(self.tokens[:, keep], self.valid[:, keep], self.heads, self.spec, self.cameras)


class WorldActionModel(nn.Module):
    """Frame tokenizer + shared backbone + per-embodiment heads: the `wam-dit` implementation of
    `adapt.model.protocol.WorldModel`."""

    def __init__(self, config: ModelConfig, specs: list[EmbodimentSpec] = ()):
        super().__init__()
        self.config, d = config, config.dim
        self.tokenizer = FrameTokenizer(config)
        self.text = HashedTextEncoder(config.text_vocab, config.text_len, d)
        self.backbone = build_backbone(config)
        self.video_in = nn.Linear(config.patch_dim, d)
        self.video_out = nn.Linear(d, config.patch_dim)
        nn.init.zeros_(self.video_out.weight)
        nn.init.zeros_(self.video_out.bias)
        self.spatial_position = nn.Parameter(torch.randn(config.tokens_per_frame, d) * 0.02)
        self.frame_position = nn.Parameter(torch.randn(config.context + config.future, d) * 0.02)
        self.camera_role = nn.Embedding(len(ROLES), d)
        self.no_state = nn.Parameter(torch.zeros(d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.heads = nn.ModuleDict()
        self.specs: dict[str, EmbodimentSpec] = {}
        self.stats: dict[str, NormStats] = {}
        """Normalization statistics per embodiment, saved with the checkpoint and used at inference."""
        for spec in specs:
            self.add_embodiment(spec)

    def add_embodiment(self, spec: EmbodimentSpec, donor: str | None = None) -> EmbodimentHeads:
        """Create fresh heads for `spec` (replacing any of the same name), seeded from `donor`'s heads
        where a dimension means the same thing (see `EmbodimentHeads.copy_from`)."""
        if donor is not None and (donor not in self.heads or donor == spec.name):
            raise AdaptError(f"donor '{donor}' is not another embodiment of the model (it has {sorted(self.heads)})")
        heads = EmbodimentHeads(spec, self.config.dim).to(self.no_state.device)
        if donor is not None:
            heads.copy_from(self.heads[donor], spec, self.specs[donor])
        self.heads[spec.name] = heads
        self.specs[spec.name] = spec
        return heads

    def shared_modules(self) -> dict[str, nn.Module | nn.Parameter]:
        """Everything every embodiment uses except the tokenizer: what a full fine-tune trains."""
        names = ["backbone", "text", "video_in", "video_out", "time_mlp", "camera_role"]
        names += ["spatial_position", "frame_position", "no_state"]
        return {name: getattr(self, name) for name in names}

    # -- video latents ------------------------------------------------------------------------------

    def latents(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, cams, T, 3, H, W) -> latent patches (B, cams, T, P, patch_dim); no gradient."""
        with torch.no_grad():
            z = self.tokenizer.encode(frames)  # (B, cams, T, C, h, w)
        p = self.config.patch
        *lead, c, h, w = z.shape
        n = len(lead)
        z = z.reshape(*lead, c, h // p, p, w // p, p).permute(*range(n), n + 1, n + 3, n, n + 2, n + 4)
        return z.reshape(*lead, (h // p) * (w // p), c * p * p)

    def frames_from_latents(self, patches: Tensor) -> Tensor:
        """Inverse of `latents` through the decoder: float frames in [-1, 1] (B, cams, T, 3, H, W)."""
        p, c = self.config.patch, self.config.latent_channels
        side = self.config.image_size // 8 // p
        *lead, _, _ = patches.shape
        n = len(lead)
        z = patches.reshape(*lead, side, side, c, p, p).permute(*range(n), n + 2, n, n + 3, n + 1, n + 4)
        return self.tokenizer.decode(z.reshape(*lead, c, side * p, side * p))

    def _video_tokens(self, patches: Tensor, spec: EmbodimentSpec, frame_offset: int) -> Tensor:
        """Latent patches (B, cams, T, P, patch_dim) -> tokens (B, cams*T*P, D) with positions and roles."""
        b, cams, t, p, _ = patches.shape
        roles = torch.tensor([ROLES.index(c.role) for c in spec.cameras], device=patches.device)
        x = (
            self.video_in(patches)
            + self.spatial_position
            + self.frame_position[frame_offset : frame_offset + t, None]
            + self.camera_role(roles)[:, None, None]
        )
        return x.reshape(b, cams * t * p, -1)

    # -- the two halves of a forward pass ----------------------------------------------------------

    def encode_prefix(self, batch: dict, context: Tensor) -> Prefix:
        """Clean tokens: context latents (B, cams, ctx, P, patch_dim), state, task."""
        spec, heads = batch_embodiment(self, batch)
        b, cams, ctx, p, _ = context.shape
        video = self._video_tokens(context, spec, 0)
        video_valid = batch["context_mask"][:, None, :, None].expand(b, cams, ctx, p).reshape(b, -1)
        state = self.no_state.expand(b, 1, -1)
        if heads.state_encoder is not None:
            has = batch["has_state"][:, None, None]
            state = torch.where(has, heads.state_encoder(batch["state"].float()), state)
        text, text_valid = self.text(list(batch["task"]))
        tokens = torch.cat([video, state, text], dim=1)
        valid = torch.cat([video_valid, torch.ones(b, 1, dtype=torch.bool, device=video.device), text_valid], 1)
        return Prefix(tokens, valid, heads, spec, cams)

    def velocity(
        self,
        prefix: Prefix,
        future: Tensor | None,
        t_video: Tensor,
        actions: Tensor | None,
        t_action: Tensor,
        has_action: Tensor | None = None,
        cache: list | None = None,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Velocities for noisy future patches (B, cams, fut, P, patch_dim) and noisy actions (B, chunk, A).

        Either may be None (not predicted). `has_action` (B,) hides the action tokens of samples without
        actions from every other token. With `cache` (from `prefix_cache`) only the noisy tokens are
        computed, attending to the cached prefix: the same result for less work at every sampling step.
        """
        heads, b = prefix.heads, prefix.tokens.shape[0]
        parts, types, valid = [], [], []
        if future is not None:
            tokens = self._video_tokens(future, prefix.spec, self.config.context)
            parts.append(tokens)
            types += [VIDEO] * tokens.shape[1]
            valid.append(torch.ones(b, tokens.shape[1], dtype=torch.bool, device=tokens.device))
        if actions is not None:
            tokens = heads.action_encoder(actions, t_action)
            parts.append(tokens)
            types += [ACTION] * tokens.shape[1]
            keep = has_action if has_action is not None else torch.ones(b, dtype=torch.bool, device=tokens.device)
            valid.append(keep[:, None].expand(b, tokens.shape[1]))
        cond = self._conditions(heads, t_video, t_action)
        n_clean = prefix.tokens.shape[1]
        if cache is None:
            x = torch.cat([prefix.tokens, *parts], dim=1)
            types = torch.tensor([CLEAN] * n_clean + types, device=x.device)
            keys = torch.cat([prefix.valid, *valid], dim=1)
            # keys must exist; clean queries see only clean keys; a token always sees itself
            clean = types == CLEAN
            mask = keys[:, None, :] & (~clean[:, None] | clean[None, :])[None]
            x = self.backbone(x, cond, types, _with_self(mask, 0))[:, n_clean:]
        else:
            x = torch.cat(parts, dim=1)
            keys = torch.cat([prefix.valid, *valid], dim=1)
            mask = _with_self(keys[:, None, :].expand(b, x.shape[1], -1), n_clean)
            x = self.backbone.forward_with_cache(x, cond, torch.tensor(types, device=x.device), mask, cache)
        n_video = 0 if future is None else future[:, :, :, :, 0].numel() // b
        video_v = None if future is None else self.video_out(x[:, :n_video]).reshape(future.shape)
        action_v = None if actions is None else heads.action_decoder(x[:, n_video:])
        return video_v, action_v

    def prefix_cache(self, prefix: Prefix) -> list:
        """Per-block keys/values of the clean prefix, for `velocity(..., cache=...)`."""
        b, n = prefix.valid.shape
        cond = self._conditions(prefix.heads, *(torch.zeros(b, device=prefix.tokens.device),) * 2)
        mask = _with_self(prefix.valid[:, None, :].expand(b, n, n), 0)
        types = torch.full((n,), CLEAN, device=prefix.tokens.device)
        return self.backbone.cache(prefix.tokens, cond, types, mask)

    def _conditions(self, heads: EmbodimentHeads, t_video: Tensor, t_action: Tensor) -> Tensor:
        """(B, 3, D): one conditioning vector per token type (clean, video, action)."""
        d = self.config.dim
        base = heads.embedding.expand(t_video.shape[0], d)
        tv = self.time_mlp(timestep_embedding(t_video, d))
        ta = self.time_mlp(timestep_embedding(t_action, d))
        return torch.stack([base, base + tv, base + ta], dim=1)

    # -- training and sampling ---------------------------------------------------------------------

    def loss(self, batch: dict, mode: Mode = "joint", generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Flow-matching losses of one batch (a window dict from `adapt.data.windows`, collated)."""
        spec, heads = batch_embodiment(self, batch)
        ctx = self.config.context
        use_video = mode != "action_only"
        # An action-only step never looks at the future frames: tokenizing only the context takes the
        # tokenizer's share of such a step from about a third to a tenth on a CPU.
        patches = self.latents(batch["frames"] if use_video else batch["frames"][:, :, :ctx])
        prefix = self.encode_prefix(batch, patches[:, :, :ctx])
        b, device = patches.shape[0], patches.device
        has_action = batch["has_action"].bool() & (mode != "video_only")
        use_action = heads.action_encoder is not None and bool(has_action.any())
        t_video, t_action = _flow_times(b, generator, device), _flow_times(b, generator, device)
        t_video = _shifted(t_video, self.config.video_time_shift)
        t_action = torch.where(has_action, t_action, torch.ones_like(t_action))
        future = noisy_future = noisy_actions = None
        if use_video:
            future = patches[:, :, ctx:] - self._video_anchor(patches[:, :, :ctx])
            video_noise = randn(future.shape, generator, device)
            noisy_future = _interpolate(future, video_noise, t_video)
        if use_action:
            actions = batch["action"].float()
            action_noise = randn(actions.shape, generator, device)
            noisy_actions = _interpolate(actions, action_noise, t_action)
        video_v, action_v = self.velocity(prefix, noisy_future, t_video, noisy_actions, t_action, has_action)
        zero = patches.new_zeros(())
        losses = {"video": zero, "action": zero}
        if use_video:
            target = future if self.config.video_prediction == "clean" else video_noise - future
            error = (video_v - target).pow(2).mean(dim=(1, 3, 4))  # (B, fut)
            losses["video"] = _masked_mean(error, batch["future_mask"])
        if use_action:
            error = (action_v - (action_noise - actions)).pow(2).mean(dim=-1)  # (B, chunk)
            losses["action"] = _masked_mean(error, batch["action_mask"] & has_action[:, None])
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
        """Denoise an action chunk (normalized, model space) and future video latents from the context.

        `batch` needs frames (context frames at least), context_mask, state, has_state, task, embodiment.
        With `video_final_t` > 0 the video stops partly noisy while actions are fully denoised (DreamZero's
        decoupled inference: fewer useful steps spent on pixels the controller does not need). With
        `cache` the clean prefix is run through the backbone once and reused by every step (exact: clean
        tokens never attend to noisy ones).

        Returns the actions, the future latents where sampling stopped (noise level `video_final_t`) and
        `future_estimate`, the clean future the last step's velocity points to (x_t - t v): what to show
        a person when the video is left noisy; with `video_final_t` 0 it equals `future`.
        """
        spec, heads = batch_embodiment(self, batch)
        ctx, fut = self.config.context, self.config.future
        patches = self.latents(batch["frames"][:, :, :ctx])
        prefix = self.encode_prefix(batch, patches)
        b, device = patches.shape[0], patches.device
        if b == 1:  # a robot's single observation needs no padding
            prefix = prefix.without_hidden()
        kv = self.prefix_cache(prefix) if cache else None
        future = None
        if mode != "action_only":
            future = randn((*patches.shape[:2], fut, *patches.shape[3:]), generator, device)
        actions = None
        if heads.action_encoder is not None and mode != "video_only":
            actions = randn((b, spec.action.chunk, spec.action_dim), generator, device)
        estimate = future
        for k in range(steps):
            ta, ta_next = 1 - k / steps, 1 - (k + 1) / steps
            tv, tv_next = (
                video_final_t + (1 - video_final_t) * _shifted(1 - s / steps, self.config.video_time_shift)
                for s in (k, k + 1)
            )
            video_v, action_v = self.velocity(
                prefix,
                future,
                torch.full((b,), tv, device=device),
                actions,
                torch.full((b,), ta, device=device),
                cache=kv,
            )
            if future is not None:
                if self.config.video_prediction == "clean":
                    video_v = (future - video_v) / tv  # tv > 0 before the last step ends
                estimate = future - tv * video_v
                future = future - (tv - tv_next) * video_v
            if actions is not None:
                actions = actions - (ta - ta_next) * action_v
        if future is not None:
            anchor = self._video_anchor(patches)
            future, estimate = future + anchor, estimate + anchor
        return {"actions": actions, "future": future, "future_estimate": estimate}

    def _video_anchor(self, context: Tensor) -> Tensor | float:
        """What the video branch's x_0 is measured from: the last context latent (B, cams, 1, P, patch_dim)
        for `video_target` "change", nothing for "frames"."""
        return context[:, :, -1:] if self.config.video_target == "change" else 0.0


def _flow_times(n: int, generator: torch.Generator | None, device) -> Tensor:
    """Logit-normal flow times (Stable Diffusion 3): more training signal at intermediate noise."""
    return torch.sigmoid(randn((n,), generator, device))


def _shifted(t, shift: float):
    """Flow time `t` (a float or a tensor) moved towards 1 by `shift` > 1 (0 and 1 stay put)."""
    return shift * t / (1 + (shift - 1) * t)


def _interpolate(x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    t = t.reshape(-1, *([1] * (x.dim() - 1)))
    return (1 - t) * x + t * noise


def _with_self(mask: Tensor, offset: int) -> Tensor | None:
    """(B, Nq, Nk) key mask -> (B, 1, Nq, Nk) where query i also sees key offset + i (never an empty row);
    None when every query sees every key (attention's unmasked kernel is the faster one)."""
    if mask.all():
        return None
    nq, nk = mask.shape[1:]
    eye = torch.zeros(nq, nk, dtype=torch.bool, device=mask.device)
    eye[torch.arange(nq), offset + torch.arange(nq)] = True
    return (mask | eye)[:, None]


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)
