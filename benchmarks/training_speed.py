"""Is training bound by the model or by video decoding? Steps/s with and without the frame cache.

On one dataset (`--data`, or a 0.5-minute Panda Lift demo set simulated into a temp folder), for
pretraining (every weight of a fresh `small` model trains) and adaptation (`play-30min`: LoRA + new
heads on a base with other heads), measured one configuration after another in this one process:

- model only: forward + backward + AdamW on one batch held in memory (the ceiling);
- decoding: the same step fed by the training DataLoader (`--workers` processes) decoding mp4 windows;
- cached: the same, with frames read from the frame cache (`adapt.data.frame_cache`), as training does.

A loader's first batches are drained untimed (its workers prefetch while nothing consumes them), so
the timed steps are the sustained rate: steps/s = timed steps / their wall time. Reported beside each
loader's steps/s as a fraction of model-only (goal >= 0.8).

Run: `.venv/bin/python benchmarks/training_speed.py` (~10 minutes on 2 cores), `--quick` for a smoke run.
Results: `benchmarks/results/training_speed.json`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from report import machine, write_report

from adapt.data import LeRobotDataset
from adapt.data.codec import compute_stats
from adapt.data.windows import WindowDataset, window_loader
from adapt.embodiment import load_embodiment
from adapt.model import WorldModel, build_model, model_config
from adapt.recipe import load_recipe
from adapt.train.finetune import set_trainable


def make_model(kind: str, size: str, spec, stats) -> WorldModel:
    torch.manual_seed(0)
    model = build_model(model_config(size), [spec])
    model.stats[spec.name] = stats
    if kind == "adaptation":  # the base knows `spec` under another name; the target's heads are new
        donor = spec.model_copy(update={"name": "donor"})
        model.add_embodiment(donor)
        model.add_embodiment(spec)
        set_trainable(model, load_recipe("play-30min"), spec.name, [spec.name])
    model.tokenizer.requires_grad_(False)
    return model.train()


def steps_per_second(model: WorldModel, batches, steps: int, untimed: int) -> float:
    """Sustained training steps/s: `untimed` steps first (warm-up, prefetched batches), then `steps` timed."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(next(batches))["loss"].backward()
        optimizer.step()

    for _ in range(untimed):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def endless(loader):
    while True:
        yield from loader


def repeat(batch: dict):
    while True:
        yield batch


def simulate_data(folder: Path) -> Path:
    from adapt.sim import generate

    return generate("panda", "demo", folder / "panda_lift", minutes=0.5, task="Lift", seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="A Panda dataset (default: simulate 0.5 min of Lift demos).")
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40, help="Timed steps per configuration.")
    parser.add_argument("--quick", action="store_true", help="tiny model, 4 timed steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "training_speed.json")
    args = parser.parse_args()
    if args.quick:
        args.size, args.steps = "tiny", 4
    spec = load_embodiment("panda")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ADAPT_CACHE", str(Path(tmp) / "cache"))  # a cold cache: built here, timed below
        data = args.data or simulate_data(Path(tmp))
        stats = compute_stats([LeRobotDataset(data, spec)])
        window = model_config(args.size).window()
        cached_dataset = LeRobotDataset(data, spec, frame_cache=True)
        start = time.perf_counter()
        cached_dataset.build_frame_cache((window.height, window.width))
        cache_build_s = time.perf_counter() - start
        sources = {"decoding": LeRobotDataset(data, spec), "cached": cached_dataset}
        fixed = next(iter(window_loader(WindowDataset(cached_dataset, window, stats), args.batch_size, 0)))
        untimed = args.workers * 4 + 2  # DataLoader prefetch_factor 4 per worker
        results: dict = {}
        for kind in ("pretraining", "adaptation"):
            rows = results[kind] = {}
            feeds = {"model only": lambda: repeat(fixed)} | {
                name: lambda d=d: endless(
                    window_loader(WindowDataset(d, window, stats), args.batch_size, args.workers, seed=0)
                )
                for name, d in sources.items()
            }
            for name, feed in feeds.items():
                rate = steps_per_second(make_model(kind, args.size, spec, stats), feed(), args.steps, untimed)
                rows[name] = {"steps_per_s": rate, "seconds_per_step": 1 / rate, "timed_steps": args.steps}
            ceiling = rows["model only"]["steps_per_s"]
            for name in sources:
                rows[name]["fraction_of_model_only"] = rows[name]["steps_per_s"] / ceiling
            print(
                f"{kind}: model only {ceiling:.2f} steps/s; decoding {rows['decoding']['steps_per_s']:.2f} "
                f"({rows['decoding']['fraction_of_model_only']:.2f}x); cached {rows['cached']['steps_per_s']:.2f} "
                f"({rows['cached']['fraction_of_model_only']:.2f}x)"
            )
    report = {
        "machine": machine(),
        "size": args.size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "frames_in_dataset": sum(e.length for e in cached_dataset.episodes),
        "cache_build_s": cache_build_s,
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
