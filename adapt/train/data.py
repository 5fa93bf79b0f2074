"""Training data for one or more embodiments: datasets, their statistics and one loader per embodiment.

Batches hold one embodiment each (heads differ in size, nothing is padded); Lightning's
`CombinedLoader` draws one batch from every embodiment's loader per step, so a step always trains
every embodiment, and under DDP it gives each loader a distributed sampler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adapt.data import FeatureMap, LeRobotDataset
from adapt.data.codec import compute_stats
from adapt.data.reader import read_info
from adapt.data.stats import NormStats
from adapt.data.window_config import WindowConfig
from adapt.data.windows import WindowDataset, window_loader
from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError

log = logging.getLogger(__name__)


@dataclass
class DataSource:
    """A dataset folder and the embodiment it was recorded with."""

    path: Path
    spec: EmbodimentSpec

    @classmethod
    def parse(cls, text: str, default: EmbodimentSpec | None = None) -> DataSource:
        """`DIR=SPEC` (a spec name or file) or `DIR`: the embodiment is the dataset's `robot_type`, read as
        `default` when that is its name (the spec a user adapts to need not be bundled)."""
        path, _, spec = text.partition("=")
        path = Path(path)
        if spec:
            return cls(path, load_embodiment(spec))
        robot = read_info(path).get("robot_type")
        if default is not None and robot in (None, default.name):
            return cls(path, default)
        if not robot:
            raise AdaptError(f"{path / 'meta' / 'info.json'}: no robot_type; name the embodiment as {path}=SPEC")
        return cls(path, load_embodiment(robot))


def open_sources(sources: list[DataSource], skip_bad: bool = False) -> dict[str, list[LeRobotDataset]]:
    """Open every dataset, grouped by embodiment name; frames come from the frame cache (decoded once)."""
    grouped: dict[str, list[LeRobotDataset]] = {}
    for source in sources:
        dataset = LeRobotDataset(source.path, source.spec, FeatureMap(), skip_bad=skip_bad, frame_cache=True)
        grouped.setdefault(source.spec.name, []).append(dataset)
    return grouped


def statistics(grouped: dict[str, list[LeRobotDataset]]) -> dict[str, NormStats]:
    """Normalization statistics per embodiment over all of its datasets."""
    return {name: compute_stats(datasets) for name, datasets in grouped.items()}


def make_loaders(
    grouped: dict[str, list[LeRobotDataset]],
    stats: dict[str, NormStats],
    window: WindowConfig,
    batch_size: int,
    workers: int,
    seed: int,
    skip_bad: bool = False,
    balance: bool = False,
) -> dict:
    """One shuffled window loader per embodiment (its datasets concatenated).

    With `balance` each of an embodiment's datasets is drawn equally often whatever its length (see
    `TrainOptions.balance`). Datasets opened with the frame cache are decoded into it here, once, before
    worker processes start.
    """
    from torch.utils.data import ConcatDataset

    loaders = {}
    for name, datasets in grouped.items():
        for dataset in datasets:
            if dataset.frame_cache:
                log.info("%s: frames at %dx%d into the frame cache", dataset.root, window.height, window.width)
                dataset.build_frame_cache((window.height, window.width))
        windows = [WindowDataset(d, window, stats.get(name), skip_bad=skip_bad) for d in datasets]
        weights = [1.0 / len(w) for w in windows for _ in range(len(w))] if balance and len(windows) > 1 else None
        loaders[name] = window_loader(ConcatDataset(windows), batch_size, workers, seed=seed, weights=weights)
    return loaders
