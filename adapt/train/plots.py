"""What a training run leaves to look at: loss curves and predicted vs real future frames (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from adapt.model.protocol import WorldModel


def read_metrics(logs: Path) -> list[dict[str, str]]:
    """Rows of every attempt's CSV log (`logs/version_N/metrics.csv`, one per start or resume), in order.

    A resumed attempt continues the step count; where a killed attempt logged steps past its last
    checkpoint, the attempt that redid them wins.
    """
    attempts = sorted(Path(logs).glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    rows: list[dict[str, str]] = []
    for metrics in attempts:
        with open(metrics) as f:
            new = list(csv.DictReader(f))
        first = min((int(r["step"]) for r in new), default=None)
        rows = [r for r in rows if first is None or int(r["step"]) < first] + new
    return rows


def plot_losses(logs: Path, out: Path) -> Path | None:
    """Every `*loss*` column of Lightning's CSV logs (all attempts) against the step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(logs)
    if not rows:
        return None
    columns = sorted({c for r in rows for c in r if "loss" in c and "/" not in c})
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


def sample_windows(loader, rows: int = 3) -> dict:
    """`rows` windows spread over `loader`'s dataset, batched in this process. Drawing a batch from the loader
    itself after training restarts its workers' epoch (each prefetching whole batches): seconds of decoding
    for three windows."""
    import numpy as np
    from torch.utils.data import default_collate

    dataset = loader.dataset
    indices = np.linspace(0, len(dataset) - 1, min(rows, len(dataset))).round().astype(int)
    return default_collate([dataset[int(i)] for i in indices])


@torch.no_grad()
def plot_predictions(model: WorldModel, batch: dict, out: Path, steps: int = 10, rows: int = 3) -> Path:
    """Samples the first `rows` windows' futures (`steps` denoising steps) and draws them as
    `save_prediction_strips` does."""
    from adapt.evaluate import last_frame_copied, rendered_on_last_frame, save_prediction_strips

    model.eval()
    batch = {k: v[:rows] for k, v in batch.items()}
    ctx = model.config.context
    future = model.sample(batch, steps=steps)["future"]
    predicted = model.frames_from_latents(future)  # (B, cams, fut, 3, H, W)
    last = model.latents(batch["frames"])[:, :, ctx - 1 : ctx]
    drawn = rendered_on_last_frame(
        last_frame_copied(batch, ctx), predicted, model.frames_from_latents(last.expand_as(future))
    )
    return save_prediction_strips(batch["frames"], predicted, drawn, ctx, out)
