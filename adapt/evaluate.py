"""Measure a policy: reports of closed-loop episodes (success and progress with confidence intervals;
the episodes themselves run in `adapt.sim.closed_loop`) and open-loop scores on held-out episodes
(action error, predicted-video quality against copying the last frame)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from adapt.atomic import atomic_write_bytes, atomic_write_text
from adapt.data.batch import to_device
from adapt.model.protocol import to_uint8
from adapt.predictor import ChunkPredictor

FAR_M = 0.05
"""A failed episode whose gripper never came this close (m) to the object failed at reaching it."""


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    progress: float
    stages: list[str]
    steps: int
    video: str | None = None
    closest_m: float | None = None
    """Closest the gripper came to the task's first object (m): tells a policy that never reaches the object
    from one that reaches it and fumbles the grasp."""
    empty_grasps: int = 0
    """Times the gripper closed all the way on nothing (a grasp that missed the object)."""


@dataclass
class EvalReport:
    task: str
    robot: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean([e.success for e in self.episodes])) if self.episodes else 0.0

    @property
    def mean_progress(self) -> float:
        return float(np.mean([e.progress for e in self.episodes])) if self.episodes else 0.0

    def success_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(sum(e.success for e in self.episodes), len(self.episodes), confidence)

    def progress_interval(self, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
        """Percentile bootstrap interval of the mean progress (10,000 resamples, seeded: reproducible)."""
        from scipy.stats import bootstrap

        values = np.array([e.progress for e in self.episodes], dtype=float)
        if len(values) < 2 or np.ptp(values) == 0:  # one value, or all equal: no spread to resample
            return (float(values[0]),) * 2 if len(values) else (0.0, 1.0)
        ci = bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=10_000, method="percentile", rng=seed
        ).confidence_interval
        return float(ci.low), float(ci.high)

    def failures(self) -> str:
        """One line on how the failed episodes failed (never near the object, or grasps that missed and whether
        they were tried again) and how many successes came after a missed grasp: a policy that never retries
        fails on its first miss, where one that retries turns some misses into successes."""
        failed = [e for e in self.episodes if not e.success and e.closest_m is not None]
        if not failed:
            return "no failed episodes" if self.episodes else "no episodes"
        far = sum(e.closest_m > FAR_M for e in failed)
        missed = sum(e.empty_grasps > 0 for e in failed)
        once = sum(e.empty_grasps == 1 for e in failed)
        closest = np.median([e.closest_m for e in failed]) * 100
        wins = [e for e in self.episodes if e.success]
        recovered = sum(e.empty_grasps > 0 for e in wins)
        return (
            f"{len(failed)} failed: {far} never came within {FAR_M * 100:.0f} cm of the object, {missed} closed the"
            f" gripper on nothing ({once} once, never again); median closest approach {closest:.1f} cm;"
            f" {recovered} of {len(wins)} successes after a missed grasp"
        )

    def summary(self) -> str:
        """One line: success and progress with their 95 % intervals."""
        (s_lo, s_hi), (p_lo, p_hi) = self.success_interval(), self.progress_interval()
        wins = sum(e.success for e in self.episodes)
        return (
            f"success {wins}/{len(self.episodes)} = {self.success_rate:.2f} (95% CI {s_lo:.2f}-{s_hi:.2f}, Wilson), "
            f"mean progress {self.mean_progress:.2f} (95% CI {p_lo:.2f}-{p_hi:.2f}, bootstrap)"
        )

    def save(self, path: Path) -> None:
        body = asdict(self) | {
            "success_rate": self.success_rate,
            "success_ci95": self.success_interval(),
            "mean_progress": self.mean_progress,
            "progress_ci95": self.progress_interval(),
        }
        atomic_write_text(path, json.dumps(body, indent=2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a success rate (sound at 0 or n successes, unlike the normal one)."""
    from scipy.stats import binomtest

    if trials == 0:
        return 0.0, 1.0
    ci = binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


PICTURED = 3
"""Held-out windows `evaluate_open_loop` pictures."""


@torch.no_grad()
def evaluate_open_loop(predictor: ChunkPredictor, dataset, out: Path, *, windows: int = 64, seed: int = 0) -> dict:
    """Action error (MSE, de-normalized units, per dimension) and predicted-video quality on held-out episodes.

    Video, as latent MSE and as PSNR (dB, frames in [-1, 1]) and SSIM of the decoded frames against the real
    ones: the sampled future (the inference config's steps), the expected future (one step from pure noise:
    the mean of the futures the model considers likely, the point prediction MSE and PSNR reward), and the
    baseline of a world model that predicts nothing, the last context frame copied forward (its latent, and
    its pixels). The model's futures are also scored rendered on the last frame (`*_on_last_frame_*`): the
    observed frame plus the decoded predicted change, so the tokenizer's error on what stays still cancels
    and what is scored is the predicted motion against the pixel copy. `seed` draws the windows and the
    sampling noise, so a rerun scores the same futures. The first windows' scored futures are pictured in
    `out/predictions.png` (`save_prediction_strips`).
    """
    from adapt.data.windows import WindowDataset, window_loader

    model, spec, config = predictor.model, predictor.spec, predictor.config
    data = WindowDataset(dataset, model.config.window(), predictor.stats)
    loader = window_loader(data, batch_size=8, workers=0, shuffle=True, seed=seed)
    latent_errors: dict[str, list] = {"video": [], "expected_video": [], "copy_last": []}
    frame_scores: dict[str, list] = {}
    action_errors, seen = [], 0
    ctx = model.config.context
    generator = torch.Generator(config.device).manual_seed(seed)
    for batch in loader:
        batch = to_device(batch, config.device)
        sample = model.sample(batch, config.steps, 0.0, generator=generator, cache=config.cache_context)
        latents = model.latents(batch["frames"])
        target, last = latents[:, :, ctx:], latents[:, :, ctx - 1 : ctx]
        futures = {  # named as their scores are
            "video": sample["future"],
            "expected_video": model.sample(batch, 1, 0.0, generator=generator, cache=config.cache_context)["future"],
        }
        pixels = last_frame_copied(batch, ctx)
        still = model.frames_from_latents(last.expand_as(futures["expected_video"]))
        frames = {"copy_last_frame": pixels}
        for name, future in futures.items():
            predicted = future[:, :, -target.shape[2] :]  # a family may lead with the observed frame
            latent_errors[name].append(future_latent_errors(batch, predicted, target))
            decoded = model.frames_from_latents(future)
            frames[name], frames[f"{name}_on_last_frame"] = decoded, rendered_on_last_frame(pixels, decoded, still)
        latent_errors["copy_last"].append(future_latent_errors(batch, last, target))
        if not seen:
            pictured = (batch["frames"], frames["video"], frames["video_on_last_frame"])
            save_prediction_strips(*(t[:PICTURED] for t in pictured), ctx, Path(out) / "predictions.png")
        for name, predicted_frames in frames.items():
            frame_scores.setdefault(name, []).append(future_frame_scores(batch, ctx, predicted_frames))
        if batch["has_action"].any():
            predicted = sample["actions"].cpu().numpy()
            real = batch["action"].cpu().numpy()
            predicted, real = (predictor.codec.unnormalize_actions(a) for a in (predicted, real))
            mask = batch["action_mask"].cpu().numpy()
            action_errors.append(((predicted - real) ** 2)[mask].mean(axis=0))
        seen += len(batch["task"])
        if seen >= windows:
            break
    result = {
        "robot": spec.name,
        "windows": seen,
        **{f"{name}_latent_mse": float(np.concatenate(errors).mean()) for name, errors in latent_errors.items()},
        **{
            f"{name}_{metric}": value
            for name, scores in frame_scores.items()
            for metric, value in frame_metrics(scores).items()
        },
        "action_mse": float(np.mean(action_errors)) if action_errors else None,
        "action_mse_per_dim": np.mean(action_errors, axis=0).tolist() if action_errors else None,
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out) / "results.json", json.dumps(result, indent=2))
    return result


def future_latent_errors(batch: dict, predicted: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Each real future frame's latent MSE of `predicted` against `target` (B, cams, future, patches, dim;
    `predicted` may have one frame, broadcast over the future); padding frames are left out, as the training
    loss and the PSNR leave them out (a padded frame repeats the episode's last one, which flatters the copy)."""
    error = ((predicted - target) ** 2).mean(dim=(3, 4))
    keep = batch["future_mask"][:, None, :].expand(error.shape)
    return error[keep].cpu().numpy()


def future_frame_scores(batch: dict, context: int, frames: torch.Tensor) -> dict[str, np.ndarray]:
    """Each real future frame's MSE (on the [-1, 1] scale) and SSIM of `frames` (B, cams, future, 3, H, W),
    clamped to [-1, 1], against the batch's frames after its `context` ones; padding frames are left out."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    future = batch["frames"][:, :, context:].float() / 127.5 - 1.0
    keep = batch["future_mask"][:, None, :].expand(future.shape[:3])
    frames = frames.clamp(-1, 1)
    similarity = ssim(frames[keep], future[keep], data_range=2.0, reduction="none")
    return {"mse": ((frames - future) ** 2)[keep].mean(dim=(1, 2, 3)).cpu().numpy(), "ssim": similarity.cpu().numpy()}


def frame_metrics(scores: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean PSNR and SSIM over the frames of `future_frame_scores`' batches."""
    mse = np.concatenate([s["mse"] for s in scores])
    return {"psnr": psnr(mse), "ssim": float(np.concatenate([s["ssim"] for s in scores]).mean())}


def rendered_on_last_frame(pixels: torch.Tensor, predicted: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
    """A latent prediction rendered as the observed last frame plus its decoded change: `pixels` (the last
    frame repeated) + `predicted` (its decoded frames) - `still` (the last latent copied, decoded). Where the
    prediction keeps the last latent the result is the last frame itself, so the tokenizer's blur of what
    stays still cancels and only the predicted motion differs from the pixel copy."""
    return pixels + predicted - still


def last_frame_copied(batch: dict, context: int) -> torch.Tensor:
    """The baseline world model that predicts nothing: the last context frame, on the [-1, 1] scale, repeated
    over the future (B, cams, future, 3, H, W)."""
    frames = batch["frames"]
    last = frames[:, :, context - 1 : context].float() / 127.5 - 1.0
    return last.expand(-1, -1, frames.shape[2] - context, -1, -1, -1)


def psnr(mse_per_frame: np.ndarray) -> float:
    """Mean PSNR (dB) over frames, from each frame's MSE on the [-1, 1] scale (peak-to-peak 2)."""
    return float(np.mean(10 * np.log10(4.0 / np.maximum(mse_per_frame, 1e-10))))


def save_prediction_strips(
    frames: torch.Tensor, predicted: torch.Tensor, drawn: torch.Tensor, context: int, out: Path
) -> Path:
    """A strip per window (first camera): context | real future | predicted future as decoded | the same
    prediction drawn on the last context frame (that frame plus the decoded change: the tokenizer's blur of
    what stays still cancels, so the arm and the object stay sharp and only the predicted motion shows).

    `frames` are the windows' real frames (B, cams, T, 3, H, W, uint8); `predicted` and `drawn` their
    futures (B, cams, future, 3, H, W, on the [-1, 1] scale). Written atomically as a PNG."""
    import io

    from PIL import Image

    real = frames[:, 0].cpu()  # (B, T, 3, H, W) uint8
    fake, fake_drawn = (to_uint8(f[:, 0]).cpu() for f in (predicted, drawn))  # (B, fut, H, W, 3)
    lines = []
    for i in range(len(real)):
        shown = [f.permute(1, 2, 0).numpy() for f in real[i]]
        gap = np.full_like(shown[0][:, :4], 255)
        strips = [*shown[:context], gap, *shown[context:], gap, *fake[i].numpy(), gap, *fake_drawn[i].numpy()]
        lines.append(np.concatenate(strips, axis=1))
    png = io.BytesIO()
    Image.fromarray(np.concatenate(lines, axis=0)).save(png, format="PNG")
    atomic_write_bytes(out, png.getvalue())
    return out
