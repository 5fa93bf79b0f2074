"""Turn a folder of mp4 files (people or another robot doing a task) into a video-only dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adapt.data.episode import Episode
from adapt.data.resize import resize_frames
from adapt.data.video import open_video
from adapt.data.writer import DatasetWriter
from adapt.embodiment import EmbodimentSpec
from adapt.errors import AdaptError
from adapt.progress import track

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def import_videos(
    folder: Path, spec: EmbodimentSpec, task: str, out: Path, *, skip_bad: bool = False, progress: bool = False
) -> tuple[Path, list[str]]:
    """One episode per video file, sorted by name, decoded at the spec camera's resolution and resampled
    to its fps. `spec` must be video-only with one camera. Returns the dataset and the skipped files."""
    if not spec.video_only or len(spec.cameras) != 1:
        raise AdaptError(f"import-videos needs a video-only spec with one camera; '{spec.name}' is not")
    if not Path(folder).is_dir():
        raise AdaptError(f"{folder}: not a folder (import-videos reads every video file in a folder)")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise AdaptError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    camera = spec.cameras[0]
    skipped = []
    with DatasetWriter(out, spec) as writer:
        for path in track(files, "importing videos", progress):
            try:
                reader = open_video(path)  # decord, or PyAV for AV1 and what decord cannot open
                step = reader.get_avg_fps() / camera.fps
                indices = np.arange(0, len(reader), step).round().astype(int).clip(0, len(reader) - 1)
                frames = resize_frames(reader.get_batch(list(indices)).asnumpy(), (camera.height, camera.width))
            except Exception as error:  # AdaptError from open_video, DECORDError for damaged streams
                if not skip_bad:
                    raise AdaptError(f"{path}: not a readable video ({error}); pass --skip-bad to skip it") from None
                skipped.append(f"{path.name}: {error}")
                continue
            writer.add(Episode(task=task, frames={camera.name: frames}))
    return out, skipped
