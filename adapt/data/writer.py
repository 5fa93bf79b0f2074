"""Write episodes as a LeRobot v3 dataset, the format users' existing tools read.

Layout (LeRobot codebase v3.0): `meta/info.json`, `meta/tasks.parquet`, `meta/stats.json` (what LeRobot's
training normalises with: mean, std, min, max, count and quantiles per feature, images per channel in [0, 1]),
`meta/episodes/chunk-000/file-000.parquet`, `data/chunk-000/file-000.parquet` (all frames), and one
concatenated mp4 per camera under `videos/observation.images.<camera>/chunk-000/file-000.mp4`; each
episode's span in that video is recorded as from/to timestamps. The dataset is assembled in a
temporary folder and renamed into place, so an interrupted run leaves no dataset that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adapt.data.episode import Episode
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
STATS_PATH = "meta/stats.json"
STATE_KEY, ACTION_KEY = "observation.state", "action"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
"""The quantiles LeRobot's `meta/stats.json` holds (`q01` ... `q99`)."""
IMAGE_STATS_EVERY = 10
"""Image statistics sample every 10th frame and every 4th pixel per axis: per-channel figures need no more."""


def camera_key(camera: str) -> str:
    """LeRobot feature key of a camera stream."""
    return f"observation.images.{camera}"


class DatasetWriter:
    """Append episodes, then `close()` (or leave the `with` block) to publish the dataset at `root`.

    Videos are H.264 (libx264 through PyAV, keyframe every `gop` frames so random access stays cheap).
    """

    def __init__(self, root: Path, spec: EmbodimentSpec, fps: float | None = None, *, crf: int = 18, gop: int = 10):
        self.root = Path(root)
        if self.root.exists():
            raise AdaptError(f"{self.root} already exists; choose a new output folder or delete it")
        self.spec, self.crf, self.gop = spec, crf, gop
        self.fps = fps or spec.cameras[0].fps
        self._tmp = self.root.with_name(f".{self.root.name}.partial")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True)
        self._videos = {
            c.name: VideoStream(
                self._tmp / VIDEO_PATH.format(video_key=camera_key(c.name), chunk_index=0, file_index=0),
                self.fps,
                crf,
                gop,
            )
            for c in spec.cameras
        }
        self._rows: list[pa.Table] = []
        self._pixels: dict[str, list[np.ndarray]] = {c.name: [] for c in spec.cameras}
        self._episodes: list[dict] = []
        self._tasks: dict[str, int] = {}
        self._frames = 0

    def add(self, episode: Episode) -> None:
        """Append one episode; its cameras and dims must match the spec."""
        self._check(episode)
        n, index = episode.length, len(self._episodes)
        for task in episode.tasks:
            self._tasks.setdefault(task, len(self._tasks))
        task_index = np.array([self._tasks[t] for t in episode.frame_tasks or [episode.task] * n], dtype=np.int64)
        columns = frame_columns(n, index, self._frames, task_index, self.fps, episode.state, episode.action)
        self._rows.append(pa.table(columns))
        row = {
            "episode_index": index,
            "tasks": episode.tasks,
            "length": n,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": self._frames,
            "dataset_to_index": self._frames + n,
        }
        for camera, stream in self._videos.items():
            start = stream.frames / self.fps
            stream.write(episode.frames[camera])
            self._pixels[camera].append(episode.frames[camera][::IMAGE_STATS_EVERY, ::4, ::4].reshape(-1, 3))
            key = camera_key(camera)
            row |= {
                f"videos/{key}/chunk_index": 0,
                f"videos/{key}/file_index": 0,
                f"videos/{key}/from_timestamp": start,
                f"videos/{key}/to_timestamp": stream.frames / self.fps,
            }
        self._episodes.append(row)
        self._frames += n

    def close(self) -> Path:
        """Write the metadata and move the finished dataset to `root`."""
        if not self._episodes:
            raise AdaptError(f"{self.root}: no episodes were added")
        for stream in self._videos.values():
            stream.close()
        data_file = self._tmp / DATA_PATH.format(chunk_index=0, file_index=0)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self._rows, promote_options="default"), data_file)
        (self._tmp / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self._episodes), self._tmp / EPISODES_PATH)
        tasks = pa.table({"task_index": list(self._tasks.values()), "task": list(self._tasks)})
        pq.write_table(tasks, self._tmp / "meta" / "tasks.parquet")
        (self._tmp / "meta" / "info.json").write_text(json.dumps(self._info(), indent=2))
        (self._tmp / STATS_PATH).write_text(json.dumps(self._stats()))
        self._tmp.rename(self.root)
        return self.root

    def abort(self) -> None:
        """Drop everything written so far."""
        for stream in self._videos.values():
            stream.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _check(self, episode: Episode) -> None:
        missing = [c.name for c in self.spec.cameras if c.name not in episode.frames]
        if missing:
            raise AdaptError(f"episode '{episode.task}' lacks frames of spec cameras {missing}")
        if episode.frame_tasks is not None and len(episode.frame_tasks) != episode.length:
            raise AdaptError(
                f"episode '{episode.task}' has {episode.length} frames but {len(episode.frame_tasks)} frame tasks"
            )
        for name, dim in (("state", self.spec.state_dim), ("action", self.spec.action_dim)):
            values = getattr(episode, name)
            if self.spec.video_only and values is not None:
                raise AdaptError(f"spec '{self.spec.name}' is video-only; episodes must not carry {name}")
            if not self.spec.video_only and (values is None or values.shape != (episode.length, dim)):
                shape = None if values is None else values.shape
                raise AdaptError(
                    f"episode {name} must have shape ({episode.length}, {dim}) for '{self.spec.name}', got {shape}"
                )

    def _stats(self) -> dict:
        """LeRobot's `meta/stats.json`: per-feature statistics over every frame (images: sampled, per channel)."""
        stats = {}
        table = pa.concat_tables(self._rows, promote_options="default")
        for key in (STATE_KEY, ACTION_KEY):
            if key in table.column_names:
                stats[key] = feature_stats(np.asarray(table[key].to_pylist(), np.float64))
        for camera, pixels in self._pixels.items():
            channels = feature_stats(np.concatenate(pixels).astype(np.float64) / 255)
            stats[camera_key(camera)] = {k: v if k == "count" else [[[c]] for c in v] for k, v in channels.items()} | {
                "count": [self._frames]
            }
        return stats

    def _info(self) -> dict:
        sizes = {name: stream.size for name, stream in self._videos.items() if stream.size is not None}
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.spec.name,
            "total_episodes": len(self._episodes),
            "total_frames": self._frames,
            "total_tasks": len(self._tasks),
            "chunks_size": 1000,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": dataset_features(self.spec, self.fps, sizes),
        }


class VideoStream:
    """One growing H.264 file; frames of successive episodes are appended back to back."""

    def __init__(self, path: Path, fps: float, crf: int, gop: int):
        self.path, self.fps, self.crf, self.gop = path, fps, crf, gop
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._container = self._stream = None

    def write(self, frames: np.ndarray) -> None:
        import av

        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise AdaptError(
                f"{self.path.parent.name}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream("libx264", rate=round(self.fps))
            self.size = frames.shape[1:3]
            self._stream.height, self._stream.width = self.size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "g": str(self.gop), "preset": "veryfast"}
        if frames.shape[1:3] != self.size:
            raise AdaptError(
                f"{self.path.parent.name}: frame size {frames.shape[1:3]} differs from earlier {self.size}"
            )
        for frame in frames:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                self._container.mux(packet)
        self.frames += len(frames)

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None


def frame_columns(
    length: int,
    index: int,
    first_row: int,
    task_index: int | np.ndarray,
    fps: float,
    state: np.ndarray | None = None,
    action: np.ndarray | None = None,
) -> dict[str, pa.Array]:
    """The parquet columns of one episode (`length` frames), as LeRobot lays them out (v2 and v3 alike);
    `task_index` is the whole episode's or one per frame."""
    columns = {
        "timestamp": pa.array(np.arange(length, dtype=np.float32) / np.float32(fps)),
        "frame_index": pa.array(np.arange(length, dtype=np.int64)),
        "episode_index": pa.array(np.full(length, index, dtype=np.int64)),
        "index": pa.array(np.arange(first_row, first_row + length, dtype=np.int64)),
        "task_index": pa.array(np.broadcast_to(np.asarray(task_index, dtype=np.int64), length).copy()),
    }
    for key, values in ((STATE_KEY, state), (ACTION_KEY, action)):
        if values is not None:
            flat = pa.array(values.astype(np.float32).ravel())
            columns[key] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
    return columns


def feature_stats(values: np.ndarray) -> dict[str, list]:
    """mean, std, min, max, count and LeRobot's quantiles of (N, D) values, per dimension, as JSON lists."""
    stats = {
        "mean": values.mean(0),
        "std": values.std(0),
        "min": values.min(0),
        "max": values.max(0),
        "count": np.array([len(values)]),
    }
    stats |= {f"q{round(q * 100):02d}": np.quantile(values, q, axis=0) for q in QUANTILES}
    return {k: v.tolist() for k, v in stats.items()}


def dataset_features(spec: EmbodimentSpec, fps: float, sizes: dict[str, tuple[int, int]] | None = None) -> dict:
    """`info.json` features of a dataset of `spec` (cameras at `sizes`, default the spec's), LeRobot style."""
    features: dict[str, dict] = {}
    for camera in spec.cameras:
        height, width = (sizes or {}).get(camera.name) or (camera.height, camera.width)
        features[camera_key(camera.name)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.fps": fps,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.height": height,
                "video.width": width,
                "has_audio": False,
            },
        }
    if not spec.video_only:
        features[STATE_KEY] = {
            "dtype": "float32",
            "shape": [spec.state_dim],
            "names": [f"{p.name}_{i}" for p in spec.proprio for i in range(p.dim)],
        }
        features[ACTION_KEY] = {"dtype": "float32", "shape": [spec.action_dim], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    return features
