"""Where does a base's predicted video lose to copying the last frame? On held-out windows, the latent MSE
of each latent predictor and the PSNR and SSIM of the future frames it decodes to, for: the tokenizer's own
reconstruction of them (the best any latent predictor can decode to), the last context frame's latent copied
forward (a predictor that knows no motion), the model's expected future (one denoising step from pure
noise: the mean of the futures it considers likely, which MSE and PSNR reward), its sampled futures (3 and
10 steps), and the last frame copied in pixels (`adapt eval --open-loop`'s baseline).

With `--probe-data DIR` (other episodes of the same robot) also a linear probe: a ridge regression
(scikit-learn) from the context's latents and the state to the future's change from the last latent,
fit on DIR. It says how much of the motion the context predicts at all, and what a predictor that good
decodes to. The model's futures and the probe's are also scored rendered on the last frame (last frame in
pixels + decoded prediction - decoded last latent: the tokenizer's error on what stays still cancels, so
what is left is the predicted motion's own worth against the pixel copy).

Reconstruction far above the pixel copy and the model below the latent copy means the tokenizer leaves room
and the video branch has not learnt the motion.

Run: `.venv/bin/python benchmarks/video_ceiling.py --data DIR` (DIR: held-out episodes of the base's robot,
e.g. `adapt data generate --robot panda --kind demo --task Lift --minutes 1 --seed 77 --out DIR`; about a
minute, a few more with `--probe-data`); results in `benchmarks/results/video_ceiling.json`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import machine, write_report

from adapt.data import LeRobotDataset
from adapt.data.windows import WindowDataset, window_loader
from adapt.evaluate import (
    frame_metrics,
    future_frame_scores,
    future_latent_errors,
    last_frame_copied,
    rendered_on_last_frame,
)
from adapt.predictor import ChunkPredictor


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "base-small")
    parser.add_argument("--data", type=Path, required=True, help="held-out episodes of the model's robot")
    parser.add_argument("--probe-data", type=Path, default=None, help="episodes to fit the linear probe on")
    parser.add_argument("--robot", default=None, help="which of the model's robots (when it has several)")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "video_ceiling.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    predictor = ChunkPredictor.load(args.model, args.robot)
    model, ctx = predictor.model, predictor.model.config.context
    window = model.config.window()

    def windows_of(path: Path) -> WindowDataset:
        return WindowDataset(LeRobotDataset(path, predictor.spec), window, predictor.stats)

    probe = None if args.probe_data is None else _fit_probe(model, windows_of(args.probe_data))
    windows = windows_of(args.data)
    errors: dict[str, list] = {}
    latent_errors: dict[str, list] = {}
    seen = 0
    for batch in window_loader(windows, batch_size=8, workers=0, shuffle=True, seed=0):
        latents = model.latents(batch["frames"])
        last = latents[:, :, ctx - 1 : ctx].expand_as(latents[:, :, ctx:])
        futures = {
            "tokenizer reconstruction": latents[:, :, ctx:],
            "last latent copied": last,
            "model, expected future (1 step)": model.sample(batch, 1)["future"],
            "model, sampled (3 steps)": model.sample(batch, 3)["future"],
            "model, sampled (10 steps)": model.sample(batch, 10)["future"],
        }
        if probe is not None:
            change = probe.predict(_probe_features(batch, latents, ctx))
            futures["linear probe on the context"] = last + torch.from_numpy(change).float().reshape(last.shape)
        predicted = {name: model.frames_from_latents(future) for name, future in futures.items()}
        pixels = last_frame_copied(batch, ctx)
        predicted["last frame copied (pixels)"] = pixels
        still = predicted["last latent copied"]
        for name in [n for n in futures if n.startswith(("model", "linear probe"))]:
            predicted[f"{name}, rendered on the last frame"] = rendered_on_last_frame(pixels, predicted[name], still)
        for name, future in futures.items():
            latent_errors.setdefault(name, []).append(future_latent_errors(batch, future, latents[:, :, ctx:]))
        for name, frames in predicted.items():
            errors.setdefault(name, []).append(future_frame_scores(batch, ctx, frames))
        seen += len(batch["task"])
        if seen >= args.windows:
            break
    scores = {name: frame_metrics(batches) for name, batches in errors.items()}
    latent_mse = {name: float(np.concatenate(mse).mean()) for name, mse in latent_errors.items()}
    for name, score in scores.items():
        latent = f"   latent MSE {latent_mse[name]:.4f}" if name in latent_mse else ""
        print(f"{name:60s} {score['psnr']:6.2f} dB  SSIM {score['ssim']:.4f}{latent}")
    result = {
        "machine": machine(),
        "model": str(args.model),
        "data": str(args.data),
        "probe_data": None if args.probe_data is None else str(args.probe_data),
        "windows": seen,
        "psnr_db": {name: score["psnr"] for name, score in scores.items()},
        "ssim": {name: score["ssim"] for name, score in scores.items()},
        "latent_mse": latent_mse,
    }
    write_report(args.out, result)
    return result


def _probe_features(batch: dict, latents: torch.Tensor, ctx: int) -> np.ndarray:
    """The context's last latent, its change from the one before, and the state, flattened per window."""
    b = latents.shape[0]
    last, before = latents[:, :, ctx - 1], latents[:, :, ctx - 2]
    return torch.cat([last.reshape(b, -1), (last - before).reshape(b, -1), batch["state"].float()], 1).numpy()


@torch.no_grad()
def _fit_probe(model, windows: WindowDataset, count: int = 3000):
    """Ridge regression from `_probe_features` to the future latents' change from the last one, on up to
    `count` windows (the penalty, 100, was the best of 1, 10, 100 and 1,000 on Panda Lift demos)."""
    from sklearn.linear_model import Ridge

    ctx, features, changes, seen = model.config.context, [], [], 0
    for batch in window_loader(windows, batch_size=32, workers=0, shuffle=True, seed=1):
        latents = model.latents(batch["frames"])
        features.append(_probe_features(batch, latents, ctx))
        changes.append((latents[:, :, ctx:] - latents[:, :, ctx - 1 : ctx]).flatten(1).numpy())
        seen += len(features[-1])
        if seen >= count:
            break
    return Ridge(alpha=100.0).fit(np.concatenate(features), np.concatenate(changes))


if __name__ == "__main__":
    main()
