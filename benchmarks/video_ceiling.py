"""Where does a base's predicted video lose to copying the last frame? PSNR of the future frames, on held-out
windows, for: the tokenizer's own reconstruction of them (the best any latent predictor can decode to), the
last context frame's latent copied forward and decoded (a predictor that knows no motion, after the
tokenizer), the model's expected future (one denoising step from pure noise: the mean of the futures it
considers likely, which PSNR rewards), its sampled futures (3 and 10 steps), and the last frame copied in
pixels (`adapt eval --open-loop`'s baseline).

Reconstruction far above the pixel copy and the model below the latent copy means the tokenizer leaves room
and the video branch has not learnt the motion.

Run: `.venv/bin/python benchmarks/video_ceiling.py --data DIR` (DIR: held-out episodes of the base's robot,
e.g. `adapt data generate --robot panda --kind demo --task Lift --minutes 1 --seed 77 --out DIR`; about a
minute); results in `benchmarks/results/video_ceiling.json`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import machine, write_report

from adapt.data import LeRobotDataset
from adapt.data.windows import WindowDataset, window_loader
from adapt.evaluate import future_frame_errors, last_frame_copied, psnr
from adapt.predictor import ChunkPredictor


@torch.no_grad()
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "base-small")
    parser.add_argument("--data", type=Path, required=True, help="held-out episodes of the model's robot")
    parser.add_argument("--robot", default=None, help="which of the model's robots (when it has several)")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "video_ceiling.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    predictor = ChunkPredictor.load(args.model, args.robot)
    model, ctx = predictor.model, predictor.model.config.context
    windows = WindowDataset(LeRobotDataset(args.data, predictor.spec), model.config.window(), predictor.stats)
    errors: dict[str, list] = {}
    seen = 0
    for batch in window_loader(windows, batch_size=8, workers=0, shuffle=True, seed=0):
        latents = model.latents(batch["frames"])
        last = latents[:, :, ctx - 1 : ctx].expand_as(latents[:, :, ctx:])
        predicted = {
            "tokenizer reconstruction": model.frames_from_latents(latents[:, :, ctx:]),
            "last latent copied": model.frames_from_latents(last),
            "model, expected future (1 step)": model.frames_from_latents(model.sample(batch, 1)["future"]),
            "model, sampled (3 steps)": model.frames_from_latents(model.sample(batch, 3)["future"]),
            "model, sampled (10 steps)": model.frames_from_latents(model.sample(batch, 10)["future"]),
            "last frame copied (pixels)": last_frame_copied(batch, ctx),
        }
        for name, frames in predicted.items():
            errors.setdefault(name, []).append(future_frame_errors(batch, ctx, frames))
        seen += len(batch["task"])
        if seen >= args.windows:
            break
    scores = {name: psnr(np.concatenate(mse)) for name, mse in errors.items()}
    for name, score in scores.items():
        print(f"{name:34s} {score:5.1f} dB")
    result = {
        "machine": machine(),
        "model": str(args.model),
        "data": str(args.data),
        "windows": seen,
        "psnr_db": scores,
    }
    write_report(args.out, result)
    return result


if __name__ == "__main__":
    main()
