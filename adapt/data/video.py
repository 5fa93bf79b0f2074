"""Opening a dataset video with a decoder that can read it.

decord first: fast random access (`get_batch`) for what its bundled FFmpeg decodes (H.264, HEVC,
MPEG-4). What decord cannot open goes to PyAV, whose FFmpeg carries libdav1d: AV1, LeRobot's default
codec since 0.3, and whatever else FFmpeg decodes. Both readers answer the same two calls, `len()` and
`get_batch(indices).asnumpy()`. A file neither can read is named with the reason: a codec no decoder
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
    """decord's reader interface over PyAV. Frames are decoded in order and kept decoding forward, so reading a
    video front to back (the frame cache does) decodes each frame once; asking for an earlier frame reopens
    the file. Frame i is the i-th frame in presentation order."""

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
        self._container = None
        self._decoded = None
        self._next = 0
        if self._length == 0:
            raise AdaptError(f"{self.path}: the {codec} stream holds no frames")

    def __len__(self) -> int:
        return self._length

    def get_batch(self, indices) -> _Frames:
        wanted = sorted(set(int(i) for i in indices))
        if wanted and (wanted[0] < 0 or wanted[-1] >= self._length):
            raise AdaptError(f"{self.path}: frames {wanted[0]}..{wanted[-1]} asked of a {self._length}-frame video")
        found: dict[int, np.ndarray] = {}
        if wanted and wanted[0] < self._next:
            self._restart()
        try:
            for index in wanted:
                while self._next <= index:
                    frame = next(self._frames())
                    if self._next == index:
                        found[index] = frame.to_ndarray(format="rgb24")
                    self._next += 1
        except StopIteration:
            raise AdaptError(
                f"{self.path}: the {self.codec} stream ended after {self._next} of {self._length} frames"
            ) from None
        except AdaptError:
            raise
        except Exception as error:  # av.error.* for a damaged stream
            raise AdaptError(f"{self.path}: cannot decode frame {self._next} ({self.codec}): {error}") from None
        return _Frames(np.stack([found[int(i)] for i in indices]))

    def _frames(self):
        if self._decoded is None:
            import av

            self._container = av.open(str(self.path))
            self._decoded = self._container.decode(video=0)
        return self._decoded

    def _restart(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._decoded = None
        self._next = 0

    def __del__(self):
        if self._container is not None:
            self._container.close()
