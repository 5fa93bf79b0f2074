"""What a training run leaves to look at: loss curves and predicted vs real future frames (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from adapt.model.tokenizer import to_uint8
from adapt.model.wam import WorldActionModel


def plot_losses(metrics_csv: Path, out: Path) -> Path | None:
    """Every `*loss*` column of Lightning's CSV log against the step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not Path(metrics_csv).is_file():
        return None
    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0] if rows else {}) if "loss" in c and "/" not in c]
    fig, ax = plt.subplots(figsize=(7, 4))
    for column in columns:
        points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
        if points:
            ax.plot(*zip(*points, strict=True), label=column)
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="training losses")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


@torch.no_grad()
def plot_predictions(model: WorldActionModel, batch: dict, out: Path, steps: int = 10, rows: int = 3) -> Path:
    """A strip per sample: context | real future | predicted future (first camera)."""
    from PIL import Image

    model.eval()
    batch = {k: v[:rows] for k, v in batch.items()}
    predicted = model.frames_from_latents(model.sample(batch, steps=steps)["future"])  # (B, cams, fut, 3, H, W)
    ctx = model.config.context
    real = batch["frames"][:, 0].cpu()  # (B, T, 3, H, W) uint8
    fake = to_uint8(predicted[:, 0]).cpu()  # (B, fut, H, W, 3)
    lines = []
    for i in range(len(real)):
        frames = [f.permute(1, 2, 0).numpy() for f in real[i]]
        gap = np.full_like(frames[0][:, :4], 255)
        lines.append(np.concatenate([*frames[:ctx], gap, *frames[ctx:], gap, *fake[i].numpy()], axis=1))
    Image.fromarray(np.concatenate(lines, axis=0)).save(out)
    return out
