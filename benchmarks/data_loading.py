"""Data-loading throughput: the training DataLoader against raw decoding of the same frames by the same decoder.

Three numbers answer "does decoding keep training fed, and how fast can we make data":

- frames/s and batches/s of `window_loader` (N spawned workers) on a LeRobot v3 dataset;
- frames/s of plain `decord.VideoReader(path, num_threads=1).get_batch(...).asnumpy()` on the very
  same frame indices of the very same windows, once in this process (1 proc) and once spread over N
  worker processes of a DataLoader whose items do nothing else (equal parallelism), and the ratio
  loader / raw at equal workers (target >= 0.8);
- minutes of simulated robot data per minute of wall time (`adapt.sim.generate`), when it is installed.

"Frames" are the frames a window delivers (cameras x (context + future)), counted the same way on
every side; repeated (padded) indices are decoded once everywhere, as the reader does. Warm-up
batches and worker start-up are excluded from throughput and worker start-up is reported on its own.
Each throughput is the median of `--repeats` consecutive runs of `--batches` batches.

Run: `.venv/bin/python benchmarks/data_loading.py` (a few minutes on 2 cores), `--quick` for a smoke run,
`--data DIR` to measure an existing dataset instead of the synthetic one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import decord
import numpy as np
import torch
from report import machine, write_report
from torch.utils.data import DataLoader, Dataset

from adapt.data import DatasetWriter, Episode, LeRobotDataset
from adapt.data.video import transcode
from adapt.data.window_config import WindowConfig
from adapt.data.windows import WindowDataset, window_loader
from adapt.embodiment import EmbodimentSpec, load_embodiment

TARGET_RATIO = 0.8
EPISODE_SECONDS = 30.0
PREFETCH = 4
"""window_loader's prefetch_factor; the raw multi-process baseline uses the same."""

# -- synthetic dataset ------------------------------------------------------------------------------------


def synthetic_frames(rng: np.random.Generator, length: int, size: tuple[int, int], motion: float) -> np.ndarray:
    """uint8 (T, H, W, 3): a textured scene seen by a slowly wandering camera, two moving objects and a
    light that drifts, so H.264 has real motion and texture to code (constant frames would flatter decode).
    `motion` scales how far the camera pans (a wrist camera moves more than a fixed one)."""
    h, w = size
    coarse = torch.from_numpy(rng.uniform(30, 220, (1, 3, h // 8, w // 8)).astype(np.float32))
    texture = torch.nn.functional.interpolate(coarse, size=(2 * h, 2 * w), mode="bicubic", align_corners=False)
    texture = texture[0].permute(1, 2, 0).numpy() + rng.normal(0, 10, (2 * h, 2 * w, 1)).astype(np.float32)
    t = np.arange(length) / 20.0
    phase = rng.uniform(0, 2 * np.pi, 6)
    dy = ((0.5 + 0.45 * motion * np.sin(0.3 * t + phase[0])) * h).astype(int)
    dx = ((0.5 + 0.45 * motion * np.sin(0.23 * t + phase[1])) * w).astype(int)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    colors = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    frames = np.empty((length, h, w, 3), np.uint8)
    for i in range(length):
        frame = texture[dy[i] : dy[i] + h, dx[i] : dx[i] + w].copy()
        for k in range(2):  # an "arm" blob and a "cube" blob on Lissajous paths
            cy = h * (0.5 + 0.35 * np.sin((0.7 + 0.4 * k) * t[i] + phase[2 + k]))
            cx = w * (0.5 + 0.35 * np.sin((0.5 + 0.3 * k) * t[i] + phase[4 + k]))
            inside = np.clip(1.0 - np.hypot(yy - cy, xx - cx) / (0.12 * h * (1 + k)), 0, 1)[..., None]
            frame = frame * (1 - inside) + colors[k] * inside
        frame *= 0.85 + 0.15 * np.sin(0.1 * t[i] + phase[0])
        frames[i] = np.clip(frame, 0, 255)
    return frames


def synthetic_episode(spec: EmbodimentSpec, length: int, seed: int) -> Episode:
    """ur5e-shaped episode: textured moving frames per camera, smooth joint trajectories as state and action."""
    rng = np.random.default_rng(seed)
    frames = {
        c.name: synthetic_frames(rng, length, (c.height, c.width), motion=1.0 if c.role == "wrist" else 0.3)
        for c in spec.cameras
    }
    if spec.video_only:
        return Episode("synthetic task", frames)
    walk = np.cumsum(rng.normal(0, 0.01, (length + 1, spec.state_dim)), axis=0).astype(np.float32)
    return Episode("synthetic task", frames, walk[:-1], walk[1:, : spec.action_dim].copy())


def build_dataset(root: Path, spec: EmbodimentSpec, minutes: float, episode_seconds: float) -> float:
    """Write about `minutes` of synthetic data at `root`; returns the seconds it took."""
    fps = spec.cameras[0].fps
    episodes = max(1, math.ceil(minutes * 60 / episode_seconds))
    length = round(minutes * 60 * fps / episodes)
    start = time.perf_counter()
    with DatasetWriter(root, spec) as writer:
        for seed in range(episodes):
            writer.add(synthetic_episode(spec, length, seed))
    return time.perf_counter() - start


# -- what each window decodes ---------------------------------------------------------------------------


def loader_order(loader: DataLoader) -> list[list[int]]:
    """The batches of window indices the next `iter(loader)` will fetch, without consuming the generator.

    A DataLoader iterator draws its workers' base seed from the generator before the sampler's permutation;
    we replay that (the first batch is checked against the loader's in `check_same_order`)."""
    state = loader.generator.get_state()
    torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
    order = list(loader.batch_sampler)
    loader.generator.set_state(state)
    return order


def frame_requests(windows: WindowDataset, i: int) -> list[tuple[str, list[int]]]:
    """(mp4 path, absolute frame indices) per camera for window `i`, as `WindowDataset.__getitem__` and
    `LeRobotDataset.frames` compute them: unique, sorted indices offset by the episode's first frame."""
    episode, rows = windows.dataset.episodes[windows.index[i][0]], windows.frame_rows(i)
    requests = []
    for camera in windows.spec.cameras:
        path, first = episode.videos[camera.name]
        requests.append((str(path), [int(r) for r in np.unique(rows) + first]))
    return requests


def check_same_order(windows: WindowDataset, batch: dict, indices: list[int]) -> bool:
    """Whether a loader batch holds the windows we predicted (compared on state and action, which are cheap)."""
    expected = [windows[i] for i in indices]
    return all(torch.equal(batch[key], torch.stack([item[key] for item in expected])) for key in ("state", "action"))


class RawDecode(Dataset):
    """Items that only decode: get_batch(...).asnumpy() of a window's frames, returning how many it delivers."""

    def __init__(self, requests: dict[int, list[tuple[str, list[int]]]], frames_per_window: int):
        self.requests, self.frames_per_window = requests, frames_per_window
        self.readers: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, i: int) -> int:
        from adapt.data.video import open_video  # decord, or PyAV for what decord cannot open (AV1)

        for path, indices in self.requests[i]:
            if path not in self.readers:
                self.readers[path] = open_video(Path(path))
            self.readers[path].get_batch(indices).asnumpy()
        return self.frames_per_window

    def __getstate__(self) -> dict:
        return {"requests": self.requests, "frames_per_window": self.frames_per_window, "readers": {}}


def sum_counts(counts: list[int]) -> int:
    return sum(counts)


# -- measurements --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
    """Which batches of the loader's order are warm-up, skipped and timed; every source sees all of `used`."""

    warmup: list[list[int]]
    rounds: list[tuple[list[list[int]], list[list[int]]]]
    """Per repeat: (batches consumed untimed, so prefetched ones do not count; batches timed)."""

    @property
    def used(self) -> list[list[int]]:
        return self.warmup + [b for skip, timed in self.rounds for b in skip + timed]


def make_plan(order: list[list[int]], warmup: int, skip: int, batches: int, repeats: int) -> Plan:
    batches = min(batches, (len(order) - warmup) // repeats - skip)
    if batches < 1:
        raise SystemExit(f"the dataset has {len(order)} batches: too few for warm-up, {repeats} repeats and prefetch")
    rounds, at = [], warmup
    for _ in range(repeats):
        rounds.append((order[at : at + skip], order[at + skip : at + skip + batches]))
        at += skip + batches
    return Plan(order[:warmup], rounds)


def in_process(fetch, plan: Plan) -> Iterator:
    """Batches of `fetch(window index)` in this process, warmed up (readers opened, caches hot)."""

    def batches():
        for batch in plan.used:
            yield [fetch(i) for i in batch]

    it = batches()
    for _ in plan.warmup:
        next(it)
    return it


def started(loader: DataLoader, plan: Plan, on_first=None) -> tuple[Iterator, float]:
    """A loader's iterator past warm-up, and the seconds to its first batch (worker spawn and first decode)."""
    start = time.perf_counter()
    it = iter(loader)
    first = next(it)
    seconds = time.perf_counter() - start
    if on_first is not None:
        on_first(first)
    for _ in plan.warmup[1:]:
        next(it)
    return it, seconds


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc); NaN where that is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_meter(it: Iterator):
    """Cumulative CPU seconds spent producing `it`'s batches: this process plus the loader's workers, if any."""
    pids = [w.pid for w in getattr(it, "_workers", [])]  # DataLoader internals: its worker processes
    return lambda: time.process_time() + sum(process_cpu_seconds(pid) for pid in pids)


def wait_until_idle(pids: list[int], quiet_s: float = 0.3, timeout_s: float = 60.0) -> None:
    """Block until these processes use no CPU for `quiet_s`: a loader whose timed run just ended keeps its
    workers decoding the batches it had asked for ahead, and that work must not land in the next source's
    timing (it once cost the loader, timed right after the raw workers, ~15% of its throughput)."""
    deadline = time.perf_counter() + timeout_s
    last = sum(process_cpu_seconds(pid) for pid in pids)
    while time.perf_counter() < deadline:
        time.sleep(quiet_s)
        now = sum(process_cpu_seconds(pid) for pid in pids)
        if now == last:
            return
        last = now


def time_interleaved(streams: dict[str, Iterator], plan: Plan, frames_per_window: int) -> dict[str, list[dict]]:
    """Repeat r of every source runs back to back with repeat r of the others, so load from other processes
    on the machine hits them alike. Before each timed run, every source's workers are let go idle (their
    prefetch queues full), and the timed source's prefetched batches are consumed untimed, so each is timed
    in steady state with the CPUs to itself. CPU seconds (this process + the source's workers) give a
    throughput per busy core that other load on the machine barely changes."""
    runs: dict[str, list[dict]] = {name: [] for name in streams}
    meters = {name: cpu_meter(it) for name, it in streams.items()}
    workers = [w.pid for it in streams.values() for w in getattr(it, "_workers", [])]
    for skip, timed in plan.rounds:
        frames = sum(len(b) for b in timed) * frames_per_window
        for name, it in streams.items():
            wait_until_idle(workers)
            for _ in skip:
                next(it)
            wall, cpu = time.perf_counter(), meters[name]()
            for _ in timed:
                next(it)
            wall, cpu = time.perf_counter() - wall, meters[name]() - cpu
            runs[name].append(
                {
                    "seconds": wall,
                    "cpu_s": cpu,
                    "batches_per_s": len(timed) / wall,
                    "frames_per_s": frames / wall,
                    "frames_per_cpu_s": frames / cpu,
                }
            )
    return runs


def summarize(runs: list[dict], **extra) -> dict:
    return {
        "frames_per_s": statistics.median(r["frames_per_s"] for r in runs),
        "batches_per_s": statistics.median(r["batches_per_s"] for r in runs),
        "frames_per_cpu_s": statistics.median(r["frames_per_cpu_s"] for r in runs),
        "runs": runs,
        **extra,
    }


def measure_loading(windows: WindowDataset, args) -> dict:
    cfg = windows.config
    frames_per_window = len(windows.spec.cameras) * (cfg.context + cfg.future)
    loader = window_loader(windows, batch_size=args.batch_size, workers=args.workers)
    order = loader_order(loader)
    plan = make_plan(order, max(4, 2 * args.workers), args.workers * PREFETCH, args.batches, args.repeats)
    requests = {i: frame_requests(windows, i) for batch in plan.used for i in batch}
    raw_loader = DataLoader(
        RawDecode(requests, frames_per_window),
        batch_sampler=plan.used,
        collate_fn=sum_counts,
        num_workers=args.workers,
        multiprocessing_context="spawn",
        persistent_workers=True,
        prefetch_factor=PREFETCH,
    )
    print(f"starting {args.workers} raw-decode workers, warming up ...", flush=True)
    raw_workers, raw_start = started(raw_loader, plan)
    torch.set_num_threads(1)  # the in-process WindowDataset resizes as a DataLoader worker does
    streams = {"raw_1proc": in_process(RawDecode(requests, frames_per_window).__getitem__, plan)}
    streams["windows_1proc"] = in_process(windows.__getitem__, plan)
    print(f"starting window_loader with {args.workers} workers, warming up ...", flush=True)
    same = {}
    streams["raw_workers"] = raw_workers
    streams["loader"], loader_start = started(
        loader, plan, on_first=lambda batch: same.update(ok=check_same_order(windows, batch, order[0]))
    )
    timed = len(plan.rounds[0][1])
    print(f"timing {args.repeats} x {timed} batches of each, interleaved ...", flush=True)
    runs = time_interleaved(streams, plan, frames_per_window)
    del streams  # shuts the persistent workers down
    results = {
        "frames_per_window": frames_per_window,
        "warmup_batches": len(plan.warmup),
        "untimed_batches_per_run": len(plan.rounds[0][0]),
        "timed_batches_per_run": timed,
        "raw_1proc": summarize(runs["raw_1proc"]),
        "windows_1proc": summarize(runs["windows_1proc"]),
        "raw_workers": summarize(runs["raw_workers"], workers=args.workers, worker_start_s=raw_start),
        "loader": summarize(
            runs["loader"], workers=args.workers, worker_start_s=loader_start, same_windows_as_raw=same["ok"]
        ),
    }
    for unit in ("frames_per_s", "frames_per_cpu_s"):
        fps = {name: results[name][unit] for name in runs}
        suffix = "" if unit == "frames_per_s" else "_per_cpu"
        results[f"ratio_loader_vs_raw_workers{suffix}"] = fps["loader"] / fps["raw_workers"]
        results[f"ratio_loader_vs_raw_1proc{suffix}"] = fps["loader"] / fps["raw_1proc"]
        results[f"ratio_windows_vs_raw_1proc{suffix}"] = fps["windows_1proc"] / fps["raw_1proc"]
    results["meets_target"] = results["ratio_loader_vs_raw_workers"] >= TARGET_RATIO
    return results


def measure_sim(out_dir: Path, minutes: float) -> dict:
    """Wall time of `adapt.sim.generate("ur5e", "play", ...)`, or why it was skipped."""
    start = time.perf_counter()
    try:
        from adapt.sim import generate
    except Exception as error:  # not installed yet, robosuite missing, no GL ...
        return {"skipped": f"adapt.sim does not import: {type(error).__name__}: {error}"}
    import_s = time.perf_counter() - start
    print(f"simulating {minutes} min of ur5e play data ...", flush=True)
    start = time.perf_counter()
    path = Path(generate("ur5e", "play", out_dir / "sim", minutes=minutes))
    seconds = time.perf_counter() - start
    info_path = path / "meta" / "info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        frames, fps = info["total_frames"], info["fps"]
    else:
        fps = load_embodiment("ur5e").cameras[0].fps
        frames = round(minutes * 60 * fps)
    simulated = frames / fps / 60
    return {
        "requested_minutes": minutes,
        "simulated_minutes": simulated,
        "frames": frames,
        "wall_s": seconds,
        "import_s": import_s,
        "sim_minutes_per_wall_minute": simulated / (seconds / 60),
        "frames_per_s": frames / seconds,
    }


# -- report ---------------------------------------------------------------------------------------------


def print_table(report: dict) -> None:
    load, workers = report["loading"], report["config"]["workers"]
    rows = [
        ("raw get_batch (same decoder), 1 process", load["raw_1proc"], None),
        ("WindowDataset[i], 1 process (0 workers)", load["windows_1proc"], None),
        (f"raw get_batch (same decoder), {workers} worker processes", load["raw_workers"], load["raw_workers"]),
        (f"window_loader, {workers} workers", load["loader"], load["loader"]),
    ]
    print(f"\n{'':48} {'frames/s':>9} {'batches/s':>9} {'frames/cpu-s':>12} {'worker start':>12}")
    for name, r, started in rows:
        start = f"{started['worker_start_s']:.2f} s" if started else ""
        print(f"{name:48} {r['frames_per_s']:9.0f} {r['batches_per_s']:9.2f} {r['frames_per_cpu_s']:12.0f} {start:>12}")
    verdict = "meets" if load["meets_target"] else "BELOW"
    print(f"\n{'ratio':34} {'wall':>6} {'per cpu-s':>10}")
    for label, key in (
        (f"loader / raw, {workers} workers each", "ratio_loader_vs_raw_workers"),
        ("loader / raw 1 process", "ratio_loader_vs_raw_1proc"),
        ("WindowDataset / raw, 1 process", "ratio_windows_vs_raw_1proc"),
    ):
        print(f"{label:34} {load[key]:6.2f} {load[key + '_per_cpu']:10.2f}")
    print(f"target: loader / raw at equal workers >= {TARGET_RATIO} (wall): {verdict}")
    if not load["loader"]["same_windows_as_raw"]:
        print("note: the loader's first batch differed from the predicted windows (same distribution, not same order)")
    busy = max(report["machine"]["load_average"][0], os.getloadavg()[0])
    if busy > report["machine"]["cpu_count"]:
        print(f"note: load average {busy:.1f} on {report['machine']['cpu_count']} CPUs; other processes shared them")
    sim = report["sim"]
    if "skipped" in sim:
        print(f"sim: skipped ({sim['skipped']})")
    else:
        print(
            f"sim: {sim['simulated_minutes']:.2f} simulated min in {sim['wall_s']:.1f} s = "
            f"{sim['sim_minutes_per_wall_minute']:.2f} sim min / wall min, {sim['frames_per_s']:.1f} frames/s"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="synthetic data to build (30 s episodes)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="loader workers, and raw-decode processes to compare")
    p.add_argument("--batches", type=int, default=40, help="timed batches per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument("--data", type=Path, help="existing LeRobot dataset instead of the synthetic one")
    p.add_argument("--embodiment", help="spec of --data (default: its robot_type, else ur5e)")
    p.add_argument("--sim-minutes", type=float, default=0.25, help="simulated data to generate; 0 skips")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_loading.json")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 min of data, few batches, tiny sim")
    p.add_argument(
        "--codec", choices=["h264", "av1"], default="h264", help="re-encode the synthetic videos (av1: PyAV)"
    )
    args = p.parse_args(argv)
    args.episode_seconds = EPISODE_SECONDS
    if args.quick:
        args.minutes, args.batches, args.repeats, args.episode_seconds = 1.0, 5, 2, 15.0
        args.sim_minutes = min(args.sim_minutes, 0.05)
    if args.codec == "av1" and args.out == p.get_default("out"):
        args.out = args.out.with_name("data_loading-av1.json")
    if args.workers < 1:
        p.error("--workers must be >= 1 (the comparison is between worker processes)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host = machine("cpu", decord=decord.__version__)
    with tempfile.TemporaryDirectory(prefix="adapt-bench-") as tmp:
        if args.data:
            info = json.loads((args.data / "meta" / "info.json").read_text())
            spec = load_embodiment(args.embodiment or info.get("robot_type") or "ur5e")
            root, build_s = args.data, None
        else:
            spec = load_embodiment(args.embodiment or "ur5e")
            root = Path(tmp) / "synthetic"
            print(f"building {args.minutes} min of synthetic {spec.name} data ...", flush=True)
            build_s = build_dataset(root, spec, args.minutes, args.episode_seconds)
            if args.codec == "av1":
                print("re-encoding the videos to AV1 (SVT-AV1) ...", flush=True)
                for video in sorted(root.rglob("*.mp4")):
                    transcode(video)
        dataset = LeRobotDataset(root, spec)
        windows = WindowDataset(dataset, WindowConfig())
        loading = measure_loading(windows, args)
        sim = measure_sim(Path(tmp), args.sim_minutes) if args.sim_minutes > 0 else {"skipped": "--sim-minutes 0"}
    report = {
        "machine": host,
        "config": {
            "embodiment": spec.name,
            "data": str(args.data) if args.data else "synthetic",
            "codec": args.codec,
            "minutes": sum(e.length for e in dataset.episodes) / dataset.fps / 60,
            "episodes": len(dataset.episodes),
            "windows": len(windows),
            "window": dataclasses.asdict(windows.config),
            "cameras": [f"{c.name} {c.height}x{c.width}@{c.fps}" for c in spec.cameras],
            "batch_size": args.batch_size,
            "workers": args.workers,
            "batches": args.batches,
            "repeats": args.repeats,
            "quick": args.quick,
            "dataset_build_s": build_s,
            "command": " ".join(sys.argv),
        },
        "loading": loading,
        "sim": sim,
    }
    print_table(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
