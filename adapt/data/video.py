"""Opening a dataset video with a decoder that can read it.

decord first: fast random access (`get_batch`) for what its bundled FFmpeg decodes (H.264, HEVC,
MPEG-4). What decord cannot open goes to PyAV, whose FFmpeg carries libdav1d: AV1, LeRobot's default
codec since 0.3, and whatever else FFmpeg decodes. Both readers answer the same calls: `len()`,
`get_avg_fps()` and `get_batch(indices).asnumpy()`. A file neither can read is named with the reason: a codec no decoder
here supports, or a damaged file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adapt.errors import AdaptError


def open_video(path: Path):
    """A reader for `path` (decord's VideoReader, or `PyAVReader` where decord cannot open the file)."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise AdaptError(f"{path}: video file listed in the dataset metadata does not exist")
    try:
        return decord.VideoReader(str(path), num_threads=1)
    except Exception as decord_error:  # decord raises DECORDError (or RuntimeError) for what it cannot open
        return PyAVReader(path, decord_error)


class _Frames:
    """What `get_batch` returns, shaped like decord's NDArray (`.asnumpy()`)."""

    def __init__(self, frames: np.ndarray):
        self._frames = frames

    def asnumpy(self) -> np.ndarray:
        return self._frames


class PyAVReader:
    """decord's reader interface over PyAV. Frame i is the frame at presentation time i / fps (the index is
    read from each decoded frame's timestamp). Decoding goes forward from where it stopped; a request more
    than `SEEK_AHEAD` frames ahead or behind seeks to the keyframe before it first, so random access costs
    a keyframe interval, and reading front to back (the frame cache) decodes each frame once."""

    SEEK_AHEAD = 48

    def __init__(self, path: Path, decord_error: Exception | None = None):
        import av

        self.path = Path(path)
        try:
            container = av.open(str(self.path))
        except Exception as error:  # av.error.InvalidDataError and kin
            raise AdaptError(f"{self.path}: not a readable video (damaged, or not a video file): {error}") from None
        with container:
            if not container.streams.video:
                raise AdaptError(f"{self.path}: no video stream in the file")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            try:
                av.codec.Codec(codec, "r")
            except Exception:
                raise AdaptError(
                    f"{self.path}: its video codec '{codec}' is supported neither by decord ({decord_error}) "
                    "nor by this machine's PyAV/FFmpeg; re-encode it to H.264 or AV1"
                ) from None
            self.codec = codec
            self._length = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate
            self._fps = float(rate) if rate else 0.0
            self._ticks_per_frame = float(1 / (rate * stream.time_base)) if rate else None
            self._start = stream.start_time or 0
        if self._length == 0:
            raise AdaptError(f"{self.path}: the {codec} stream holds no frames")
        self._container = self._decoded = None
        self._next = 0

    def __len__(self) -> int:
        return self._length

    def get_avg_fps(self) -> float:
        return self._fps

    def get_batch(self, indices) -> _Frames:
        wanted = sorted(set(int(i) for i in indices))
        if wanted and (wanted[0] < 0 or wanted[-1] >= self._length):
            raise AdaptError(f"{self.path}: frames {wanted[0]}..{wanted[-1]} asked of a {self._length}-frame video")
        found: dict[int, np.ndarray] = {}
        try:
            for index in wanted:
                if self._decoded is None or index < self._next or index - self._next > self.SEEK_AHEAD:
                    self._seek(index)
                while self._next <= index:
                    frame = next(self._decoded)
                    position = self._index_of(frame)
                    self._next = position + 1
                    if position == index:
                        found[index] = frame.to_ndarray(format="rgb24")
                if index not in found:
                    raise AdaptError(f"{self.path}: frame {index} is missing from the {self.codec} stream")
        except StopIteration:
            raise AdaptError(f"{self.path}: the {self.codec} stream ended before frame {wanted[-1]}") from None
        except AdaptError:
            raise
        except Exception as error:  # av.error.* for a damaged stream
            raise AdaptError(f"{self.path}: cannot decode frame {self._next} ({self.codec}): {error}") from None
        return _Frames(np.stack([found[int(i)] for i in indices]))

    def _seek(self, index: int) -> None:
        import av

        if self._container is None:
            self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        if index and self._ticks_per_frame is not None:
            self._container.seek(int(self._start + index * self._ticks_per_frame), stream=stream, backward=True)
        else:
            self._container.seek(self._start, stream=stream, backward=True)
        self._decoded = self._container.decode(stream)
        self._next = 0  # a lower bound until the first frame's timestamp says where decoding resumed

    def _index_of(self, frame) -> int:
        """The frame's index from its timestamp; by count for a stream without a frame rate (which `_seek`
        reads from the start) or a frame without a timestamp."""
        if frame.pts is None or self._ticks_per_frame is None:
            return self._next
        return round((frame.pts - self._start) / self._ticks_per_frame)

    def __del__(self):
        if getattr(self, "_container", None) is not None:
            self._container.close()


def transcode(path: Path, codec: str = "libsvtav1", crf: int = 20) -> None:
    """Re-encode the video at `path` in place with `codec` (SVT-AV1 by default, as LeRobot >= 0.3 writes):
    how tests and benchmarks make the files other tools write."""
    import av

    path = Path(path)
    with av.open(str(path)) as source:
        stream_in = source.streams.video[0]
        rate = stream_in.average_rate
        frames = [frame.to_ndarray(format="rgb24") for frame in source.decode(stream_in)]
    target = path.with_name(f".{path.name}.transcoding.mp4")
    with av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "12"} if codec == "libsvtav1" else {"crf": str(crf)}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    target.replace(path)
