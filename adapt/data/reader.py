"""Read LeRobot datasets (codebase v2.0, v2.1 and v3.0) against an embodiment spec.

Parquet columns are read once with pyarrow and kept in memory (30 minutes at 20 Hz is ~36k rows);
frames are decoded on demand (`adapt.data.video`: decord's random access, PyAV for AV1 and whatever
decord cannot open), or read from the frame cache.
Every problem with the files is an `AdaptError` naming the file, episode and column; with
`skip_bad=True` the episode is skipped instead, and the skip is counted in `skipped`.
"""

from __future__ import annotations

import json
import logging
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapt.data.resize import resize_frames
from adapt.data.video import open_video
from adapt.data.writer import ACTION_KEY, STATE_KEY, camera_key
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError, InvalidFileError, Problem
from adapt.files import inside, read_json_object, read_text

log = logging.getLogger(__name__)
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")


class FeatureMap(BaseModel):
    """Which dataset feature feeds which spec input, where the names differ from the defaults.

    Defaults: camera `c` <- `observation.images.c`, state <- `observation.state`, action <- `action`.
    """

    model_config = ConfigDict(extra="forbid")
    cameras: dict[str, str] = {}
    """Spec camera name -> dataset video key."""
    state: str = STATE_KEY
    action: str = ACTION_KEY


class DatasetInfo(BaseModel):
    """The fields of `meta/info.json` this reader relies on (LeRobot writes more; they are kept)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    codebase_version: str
    fps: float = Field(gt=0, le=1000)
    features: dict[str, dict]
    data_path: str
    video_path: str | None = None


def read_info(root: Path) -> dict:
    """`meta/info.json` of the dataset at `root`, checked: a missing or malformed field is named."""
    info_path = Path(root) / "meta" / "info.json"
    if not info_path.is_file():
        raise AdaptError(f"{root}: not a LeRobot dataset (missing meta/info.json)")
    raw = read_json_object(info_path, "dataset metadata")
    try:
        return DatasetInfo.model_validate(raw).model_dump()
    except ValidationError as error:
        problems = [
            Problem(".".join(map(str, e["loc"])), f"{e['msg']} (got {e.get('input')!r})") for e in error.errors()
        ]
        raise InvalidFileError(info_path, problems) from None


@dataclass
class EpisodeData:
    """One readable episode: its arrays in memory and where its frames are in which video."""

    index: int
    task: str
    length: int
    state: np.ndarray | None
    action: np.ndarray | None
    videos: dict[str, tuple[Path, int]] = field(default_factory=dict)
    """Spec camera name -> (mp4 file, index of the episode's first frame in that file)."""
    frame_tasks: np.ndarray | None = None
    """The task text of each frame, where the episode's frames are labelled with more than one (hindsight
    labels of play); None: `task` throughout."""

    def task_at(self, frame: int) -> str:
        """What the episode is doing at `frame` (the text a window starting there is conditioned on)."""
        return self.task if self.frame_tasks is None else str(self.frame_tasks[frame])

    @property
    def tasks(self) -> list[str]:
        """Every task text of the episode, `task` first, then in order of first appearance."""
        return list(dict.fromkeys([self.task, *([] if self.frame_tasks is None else self.frame_tasks.tolist())]))


class LeRobotDataset:
    """Episodes of a LeRobot dataset folder, mapped onto `spec`'s cameras, state and action."""

    def __init__(
        self,
        root: Path,
        spec: EmbodimentSpec,
        mapping: FeatureMap | None = None,
        *,
        skip_bad: bool = False,
        frame_cache: bool = False,
    ):
        """`frame_cache`: read frames from `adapt.data.frame_cache` (each video decoded once, at the first
        size asked for) instead of decoding them on every call; training turns it on."""
        self.root, self.spec, self.mapping = Path(root), spec, mapping or FeatureMap()
        self.frame_cache = frame_cache
        self.info = read_info(self.root)
        self.version = self.info["codebase_version"]
        if self.version not in SUPPORTED_VERSIONS:
            raise AdaptError(
                f"{self.root / 'meta' / 'info.json'}: codebase_version {self.version!r} "
                f"is not one of {SUPPORTED_VERSIONS}"
            )
        self.fps = float(self.info["fps"])
        self._order: dict[str, np.ndarray] = {}
        """GEAR datasets (DreamZero, GR00T): column indices of the spec's state/action parts, by sub-key name."""
        if (self.root / "meta" / "modality.json").is_file() and not spec.video_only:
            from adapt.data.gear_layout import read_modality

            self._order = read_modality(self.root, spec)
        self.camera_keys = self._map_cameras()
        features = self.info["features"]
        self.has_state = self.mapping.state in features and not spec.video_only
        self.has_action = self.mapping.action in features and not spec.video_only
        self.skipped: list[tuple[int, str]] = []
        self.episodes: list[EpisodeData] = []
        for episode in self._read_episodes():
            try:
                self._check(episode)
            except AdaptError as error:
                if not skip_bad:
                    raise
                self.skipped.append((episode.index, str(error)))
                log.warning("skipping %s", error)
                continue
            self.episodes.append(episode)
        if not self.episodes:
            raise AdaptError(f"{self.root}: no usable episodes ({len(self.skipped)} skipped)")

    @property
    def tasks(self) -> list[str]:
        return sorted({task for e in self.episodes for task in e.tasks})

    def frames(self, episode: EpisodeData, camera: str, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """uint8 frames (n, H, W, 3) of `camera` at episode frame `indices`, resized to `size` (H, W)."""
        path, first = episode.videos[camera]
        if self.frame_cache:
            return np.asarray(self._cached(path, size)[np.asarray(indices) + first])  # indexing copies
        reader = self._reader(path)
        # decord's get_batch fails on repeated indices (padding repeats frames): decode each once, in order
        unique, inverse = np.unique(np.asarray(indices), return_inverse=True)
        try:
            frames = reader.get_batch(list(unique + first)).asnumpy()
        except Exception as error:  # decord raises its own DECORDError for damaged streams
            raise AdaptError(f"{path}: cannot decode frames of episode {episode.index}: {error}") from None
        return resize_frames(frames, size)[inverse]

    # -- layout ---------------------------------------------------------------------------------------

    def _map_cameras(self) -> dict[str, str]:
        features = self.info["features"]
        videos = [k for k, v in features.items() if v.get("dtype") in ("video", "image")]
        unknown = set(self.mapping.cameras) - {c.name for c in self.spec.cameras}
        if unknown:
            raise AdaptError(f"camera mapping names {sorted(unknown)}, which spec '{self.spec.name}' does not have")
        keys = {c.name: self.mapping.cameras.get(c.name, camera_key(c.name)) for c in self.spec.cameras}
        missing = {name: key for name, key in keys.items() if key not in videos}
        if missing:
            raise AdaptError(
                f"{self.root}: spec '{self.spec.name}' needs cameras {missing} (spec name: dataset key) but the "
                f"dataset's video keys are {videos}; map them with FeatureMap(cameras={{...}}) / --camera NAME=KEY"
            )
        unused = sorted(set(videos) - set(keys.values()))
        if unused:
            log.warning("%s: dataset cameras %s are not used by spec '%s'", self.root, unused, self.spec.name)
        return keys

    def _read_episodes(self) -> list[EpisodeData]:
        if self.version == "v3.0":
            return self._read_v3()
        return self._read_v2()

    def _read_v3(self) -> list[EpisodeData]:
        files = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise AdaptError(
                f"{self.root}: a v3.0 dataset lists its episodes in meta/episodes/*.parquet, and there are none"
            )
        meta = pq.ParquetDataset(files).read().to_pylist()
        tables: dict[Path, dict] = {}
        episodes = []
        for row in self._rows(meta, self.root / "meta" / "episodes"):
            data_file = self._inside(
                "data_path", chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            if data_file not in tables:
                tables[data_file] = self._columns(data_file)
            columns = tables[data_file]
            rows = columns["index"]
            span = (rows >= row["dataset_from_index"]) & (rows < row["dataset_to_index"])
            episode = self._episode(row["episode_index"], row["tasks"][0], int(span.sum()), columns, span, data_file)
            for camera, key in self.camera_keys.items():
                video = self._inside(
                    "video_path",
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
                episode.videos[camera] = (video, round(row[f"videos/{key}/from_timestamp"] * self.camera_fps(key)))
            episodes.append(episode)
        return episodes

    def _read_v2(self) -> list[EpisodeData]:
        listing = self.root / "meta" / "episodes.jsonl"
        if not listing.is_file():
            raise AdaptError(
                f"{self.root}: a {self.version} dataset lists its episodes in meta/episodes.jsonl, which is missing"
            )
        rows = []
        for number, line in enumerate(read_text(listing, "episode listing").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise AdaptError(f"{listing}: line {number} is not valid JSON ({error.msg})") from None
        chunk = self.info.get("chunks_size", 1000)
        episodes = []
        for row in self._rows(rows, listing):
            index = row["episode_index"]
            data_file = self._inside("data_path", episode_chunk=index // chunk, episode_index=index)
            columns = self._columns(data_file)
            span = np.ones(len(columns["index"]), dtype=bool)
            episode = self._episode(index, row["tasks"][0], int(span.sum()), columns, span, data_file)
            for camera, key in self.camera_keys.items():
                video = self._inside("video_path", episode_chunk=index // chunk, video_key=key, episode_index=index)
                episode.videos[camera] = (video, 0)
            episodes.append(episode)
        return episodes

    def _inside(self, template: str, **fields) -> Path:
        """The file that info.json's `template` (data_path, video_path) names for `fields`, inside the dataset."""
        try:
            relative = self.info[template].format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            known = ", ".join("{" + k + "}" for k in fields)
            raise AdaptError(
                f"{self.root / 'meta' / 'info.json'}: {template} {self.info[template]!r} cannot be filled in"
                f" ({error!r}); its placeholders may be {known}"
            ) from None
        return inside(self.root, relative, f"meta/info.json {template}")

    @staticmethod
    def _rows(rows: list[dict], source: Path) -> list[dict]:
        """Episode rows sorted by index; a row without the fields every reader needs is named, with the field."""
        for number, row in enumerate(rows):
            if not isinstance(row.get("episode_index"), int):
                raise AdaptError(f"{source}: episode row {number} has no integer 'episode_index'")
            tasks = row.get("tasks")
            if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
                raise AdaptError(
                    f"{source}: episode {row['episode_index']} has 'tasks' {reprlib.repr(tasks)}; every episode needs"
                    " a list of its task texts, the first its main task"
                )
        return sorted(rows, key=lambda r: r["episode_index"])

    def _columns(self, path: Path) -> dict[str, np.ndarray]:
        """Needed parquet columns as numpy; a missing file or column is an error naming it."""
        if not path.is_file():
            raise AdaptError(f"{path}: data file listed in the dataset metadata does not exist")
        try:
            table = pq.read_table(path)
        except Exception as error:
            raise AdaptError(f"{path}: unreadable parquet file: {error}") from None
        needed = ["index"] + [self.mapping.state] * self.has_state + [self.mapping.action] * self.has_action
        needed += ["task_index"] * ("task_index" in table.column_names)  # LeRobot writes it; others may not
        absent = [c for c in needed if c not in table.column_names]
        if absent:
            raise AdaptError(f"{path}: missing column(s) {absent}; columns present: {table.column_names}")
        return {c: _to_numpy(table.column(c)) for c in needed}

    def _episode(self, index, task, length, columns, span, data_file) -> EpisodeData:
        arrays = {}
        for name, key, has, dim in (
            ("state", self.mapping.state, self.has_state, self.spec.state_dim),
            ("action", self.mapping.action, self.has_action, self.spec.action_dim),
        ):
            values = columns[key][span].astype(np.float32) if has else None
            if values is not None and (values.ndim != 2 or values.shape[1] != dim):
                raise AdaptError(
                    f"{data_file}: column '{key}' has {values.shape[1:]} dims per step but spec "
                    f"'{self.spec.name}' has {name} dim {dim}"
                )
            if values is not None and name in self._order:
                values = values[:, self._order[name]]
            arrays[name] = values
        episode = EpisodeData(index, task, length, arrays["state"], arrays["action"])
        indices = columns["task_index"][span] if "task_index" in columns else np.zeros(0, int)
        if len(np.unique(indices)) > 1:
            texts = self._task_texts()
            unknown = sorted(set(indices.tolist()) - set(texts))
            if unknown:
                raise AdaptError(f"{data_file}: episode {index} has task_index {unknown}, which the tasks table lacks")
            episode.frame_tasks = np.array([texts[i] for i in indices.tolist()], dtype=object)
        return episode

    def _task_texts(self) -> dict[int, str]:
        """task_index -> task text, from `meta/tasks.parquet` (v3.0) or `meta/tasks.jsonl` (v2); read once."""
        if "_texts" not in self.__dict__:
            if self.version == "v3.0":
                path = self.root / "meta" / "tasks.parquet"
                if not path.is_file():
                    raise AdaptError(f"{path}: missing; episodes label frames with several tasks by task_index")
                table = pq.read_table(path).to_pydict()
                text = "task" if "task" in table else "__index_level_0__"  # LeRobot keeps the text as the index
                if text not in table or "task_index" not in table:
                    raise AdaptError(f"{path}: needs columns task_index and task, has {sorted(table)}")
                rows = zip(table["task_index"], table[text], strict=True)
            else:
                path = self.root / "meta" / "tasks.jsonl"
                lines = [line for line in read_text(path, "task listing").splitlines() if line.strip()]
                try:
                    rows = [(row["task_index"], row["task"]) for row in map(json.loads, lines)]
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise AdaptError(f"{path}: each line needs task_index and task ({error})") from None
            self._texts = {int(i): str(t) for i, t in rows}
        return self._texts

    def camera_fps(self, key: str) -> float:
        """Frame rate of the video stream `key` (LeRobot records it per stream; else the dataset's)."""
        return float(self.info["features"][key].get("info", {}).get("video.fps", self.fps))

    def recorded_size(self, camera: str) -> tuple[int, int]:
        """(height, width) the dataset's video of spec camera `camera` was recorded at (info.json's shape)."""
        height, width = self.info["features"][self.camera_keys[camera]]["shape"][:2]
        return int(height), int(width)

    # -- checks and decoding -----------------------------------------------------------------------------

    def _check(self, episode: EpisodeData) -> None:
        """Values finite and every video long enough; run once per episode when the dataset opens."""
        for name in ("state", "action"):
            values = getattr(episode, name)
            if values is not None and not np.isfinite(values).all():
                step, dim = np.argwhere(~np.isfinite(values))[0]
                raise AdaptError(f"{self.root}: episode {episode.index} {name} has NaN/inf at step {step}, dim {dim}")
        for path, first in episode.videos.values():
            frames = self._count_frames(path)
            if first + episode.length > frames:
                raise AdaptError(
                    f"{path}: episode {episode.index} needs frames {first}..{first + episode.length - 1}"
                    f" but the video has {frames} (truncated?)"
                )

    def _count_frames(self, path: Path) -> int:
        cache = self.__dict__.setdefault("_frame_counts", {})
        if path not in cache:
            cache[path] = len(open_video(path))
        return cache[path]

    def _reader(self, path: Path):
        """Video readers (`adapt.data.video.open_video`), opened lazily per process: a decord reader inherited
        through fork (DataLoader workers) shares decoder threads with its parent and deadlocks, so each
        process opens its own."""
        if self.__dict__.get("_readers_pid") != os.getpid():
            self._readers, self._readers_pid = {}, os.getpid()
        readers = self._readers
        if path not in readers:
            readers[path] = open_video(path)
        return readers[path]

    def _cached(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        """The memory-mapped frames of `path` at `size`, built on first use (see `adapt.data.frame_cache`)."""
        from adapt.data.frame_cache import cached_frames

        maps = self.__dict__.setdefault("_frame_maps", {})
        if (path, size) not in maps:
            try:
                maps[path, size] = cached_frames(path, tuple(size), lambda: self._reader(path))
            except AdaptError:
                raise
            except Exception as error:  # decord's own DECORDError for damaged streams
                raise AdaptError(f"{path}: cannot decode frames into the frame cache: {error}") from None
        return maps[path, size]

    def build_frame_cache(self, size: tuple[int, int]) -> None:
        """Decode every video of the dataset into the frame cache now (once, before worker processes start)."""
        for path in sorted({video for e in self.episodes for video, _ in e.videos.values()}):
            self._cached(path, size)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_readers", "_readers_pid", "_frame_maps")}


def _to_numpy(column) -> np.ndarray:
    """A parquet column as numpy: scalars as (n,), fixed or variable lists as (n, d)."""
    import pyarrow as pa

    column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), -1) if len(column) else values.reshape(0, 0)
    return column.to_numpy(zero_copy_only=False)
