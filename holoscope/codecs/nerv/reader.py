"""Opening a .nerv stream (:mod:`.stream`) as a timed :class:`Media` of kind NEURAL_VIDEO.

Opening reads and checks the header, the config and the weights chunk (numpy only: ``holoscope
info`` never imports torch). Frames are ``rgb24`` :class:`VideoFrame` payloads decoded by the
torch decoder in :mod:`.neural.player`, imported on the first frame. An embedding chunk is read
when a frame in it is wanted; a damaged one makes ``frame(i)`` raise :class:`CorruptStream` and
``frames_from`` yield a :class:`FailedFrame` for each of its frames (with one warning), while the
other chunks play.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from typing import Any, Iterator

from holoscope.codecs.nerv import stream
from holoscope.codecs.nerv.config import NervConfig, hnerv_from_shapes, nerv_from_shapes
from holoscope.core.errors import CorruptStream
from holoscope.core.frames import FailedFrame, VideoFrame
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, source_for

log = logging.getLogger("holoscope")

FORMAT_NAME = "nerv"
READER_NAME = "holoscope.nerv"


class NervStream:
    """One open .nerv: header, config, the weights' codes, and embedding chunks on demand."""

    def __init__(self, source: Source | str | os.PathLike | bytes) -> None:
        self.source = source_for(source)
        self.label = self.source.label
        head = self.source.head(stream.FIXED.size)
        if len(head) < stream.FIXED.size:
            raise CorruptStream(f"too short for a .nerv stream ({len(head)} bytes)", path=self.label)
        self.header = stream.parse_header(self.source.head(stream.needed_bytes(head)), self.label)
        self.config = NervConfig.from_json(self.header.config, path=self.label)
        self._check_config()
        size = self.source.size
        if size is not None:
            end = max([self.header.weights.offset + self.header.weights.length]
                      + [c.offset + c.length for c in self.header.chunks])  # fmt: skip
            if end > size:
                raise CorruptStream(f"the file is truncated ({size:,} of {end:,} bytes)", path=self.label)
        raw = stream.read_chunk(self.source, self.header.weights, self.label, "the weights chunk")
        self.weights, self.affine = stream.unpack_weights(raw, self.header)
        self.file_bytes = size
        self._lock = threading.RLock()
        self._embeddings: dict[int, Any] = {}  # chunk index -> float32 [frames, C, h, w], or the error
        self._starts = [c.start for c in self.header.chunks]
        self._decoder: Any = None
        self.info_dict: dict[str, Any] | None = None  # the Media's info, kept up to date

    def _check_config(self) -> None:
        c, h = self.config, self.header
        if c.frame_count != h.frames:
            raise CorruptStream(f"the config has {c.frame_count} frames, the header {h.frames}", path=self.label)
        shapes = {d["name"]: tuple(int(v) for v in d["shape"]) for d in h.tensors}
        if c.family == "hnerv":
            if h.embedding is None:
                raise CorruptStream("an HNeRV stream without embeddings", path=self.label)
            if tuple(int(d) for d in h.embedding["shape"]) != c.embedding_shape():
                raise CorruptStream(f"embeddings of shape {h.embedding['shape']} do not fit the decoder "
                                    f"({list(c.embedding_shape())})", path=self.label)  # fmt: skip
            shapes["embed"] = c.embedding_shape()
            implied = hnerv_from_shapes(shapes, fps=c.fps, activation=c.activation, out=c.output, path=self.label)
        else:
            if h.embedding is not None:
                raise CorruptStream("a NeRV stream with embeddings (NeRV decodes from frame times)", path=self.label)
            implied = nerv_from_shapes(shapes, fps=c.fps, frame_count=c.frame_count, fc_hw=(c.fc_h, c.fc_w),
                                       pe_base=c.pe_base, activation=c.activation, out=c.output, path=self.label)  # fmt: skip
        # The tensors must be the network the config describes: a decoder built from the config
        # alone would otherwise fail (or, worse, half-load) on the first frame.
        if implied != c:
            differ = [f for f in ("height", "width", "fc_dim", "fc_h", "fc_w", "strides", "kernels", "channels",
                                  "head_kernel", "embed_channels", "pe_levels", "stem_dims")
                      if getattr(implied, f) != getattr(c, f)]  # fmt: skip
            raise CorruptStream(f"the weights do not fit the config ({', '.join(differ) or 'the decoder'} differ)",
                                path=self.label)  # fmt: skip

    # -- info -----------------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        return self.header.fps

    @property
    def frame_count(self) -> int:
        return self.header.frames

    def info(self) -> dict[str, Any]:
        c = self.config
        parts = stream.part_sizes(self.header)
        total = self.file_bytes if self.file_bytes is not None else sum(parts.values())
        params = c.parameter_count()
        return {
            "family": c.family,
            "output_size": f"{c.width}x{c.height}",
            "width": c.width,
            "height": c.height,
            "codec": c.family,
            "decode_path": "torch, one frame at a time (CUDA when torch sees one, else CPU)",
            "config": c.to_json(),
            "parameters": params,
            "bits_per_parameter": round(8 * total / params, 4),
            "bpp": round(8 * total / (c.width * c.height * c.frame_count), 6),
            "header_bytes": parts["header"],
            "weights_bytes": parts["weights"],
            "embeddings_bytes": parts["embeddings"],
            "embedding_chunks": len(self.header.chunks),
        }

    # -- frames ---------------------------------------------------------------------------------

    def chunk_of(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index) - 1

    def embeddings(self, chunk: int):
        """Float32 embeddings [frames, C, h, w] of one chunk (cached); CorruptStream if damaged."""
        with self._lock:
            cached = self._embeddings.get(chunk)
            if cached is None:
                entry = self.header.chunks[chunk]
                what = f"embedding chunk {chunk + 1} (frames {entry.start + 1}-{entry.start + entry.frames})"
                try:
                    raw = stream.read_chunk(self.source, entry, self.label, what)
                    cached = stream.unpack_embedding(raw, self.header, entry, self.affine).dequantise()
                except CorruptStream as exc:
                    cached = exc
                self._embeddings[chunk] = cached
        if isinstance(cached, CorruptStream):
            raise cached
        return cached

    def _decode(self, embedding) -> Any:
        with self._lock:
            if self._decoder is None:
                from holoscope.codecs.nerv.neural.player import NervDecoder

                self._decoder = NervDecoder(self.config, self.weights, path=self.label)
                if self.info_dict is not None:  # what actually decodes, once it is known
                    self.info_dict["decode_path"] = f"{self._decoder.path}, one frame at a time"
            return self._decoder.decode(embedding)

    def frame(self, index: int) -> VideoFrame:
        if not 0 <= index < self.frame_count:
            raise IndexError(f"frame {index} is outside 0..{self.frame_count - 1}")
        if self.header.embedding is None:  # NeRV: the frame's time is its input
            rgb = self._decode(index)
        else:
            chunk = self.chunk_of(index)
            rgb = self._decode(self.embeddings(chunk)[index - self.header.chunks[chunk].start])
        return VideoFrame(planes=(rgb,), pixel_format="rgb24", width=self.config.width, height=self.config.height,
                          pts=index / self.fps, index=index, color_range="full")  # fmt: skip

    def frames_from(self, start: int) -> Iterator[VideoFrame | FailedFrame]:
        warned: set[int] = set()
        for index in range(start, self.frame_count):
            try:
                yield self.frame(index)
            except CorruptStream as exc:
                chunk = self.chunk_of(index)
                if chunk not in warned:
                    warned.add(chunk)
                    log.warning("%s; its frames are skipped", exc)  # the error names the file
                yield FailedFrame(index, str(exc))

    def close(self) -> None:
        with self._lock:
            self._decoder = None
            self._embeddings.clear()


def open_nerv(source: Source | str | os.PathLike | bytes) -> Media:
    """Open a .nerv stream as a NEURAL_VIDEO :class:`Media` of rgb24 :class:`VideoFrame`."""
    nerv = NervStream(source)
    nerv.info_dict = nerv.info()
    return Media(
        kind=MediaKind.NEURAL_VIDEO,
        format=FORMAT_NAME,
        reader=READER_NAME,
        frame_count=nerv.frame_count,
        fps=nerv.fps,
        load_frame=nerv.frame,
        path=os.fspath(nerv.label) if isinstance(nerv.label, (str, os.PathLike)) else str(nerv.label),
        info=nerv.info_dict,
        iter_from=nerv.frames_from,
        close=nerv.close,
    )
