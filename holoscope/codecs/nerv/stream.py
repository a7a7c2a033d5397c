"""The .nerv stream: a neural video's decoder weights and per-frame embeddings, quantised and
entropy-coded, readable from its start before the rest has arrived. Numpy and zstandard
only: torch is needed to decode frames, not to read or write the stream.

Layout (integers little-endian)::

    0   4   magic b"HSNV"
    4   2   version (1)
    6   2   flags (0)
    8   4   header length H
    12  4   CRC-32 of the H header bytes
    16  H   header: zstd-compressed UTF-8 JSON (below)
    ..      the weights chunk, then the embedding chunks in frame order

Header: ``{"format": "holoscope-nerv", "version": 1, "config": {...the decoder's architecture,
validated by its family's reader...}, "fps", "frames", "weights": {"offset", "length",
"crc32", "raw", "tensors": [{"name", "shape", "bits", "axis", "min_dtype"}]}, "embedding":
{"shape", "bits", "axis", "min_dtype", "chunks": [{"start", "frames", "offset", "length",
"crc32", "raw"}]}}``. ``embedding`` is null for a decoder that takes no embeddings (NeRV: each
frame is decoded from its time alone), and then there are no embedding chunks. A chunk is a zstd frame; decompressed it is, per tensor in order, its
codes (uint8 for up to 8 bits, else uint16 little-endian) followed by its min and scale arrays
(``min_dtype``: float16 or float32; shaped like the tensor with ``axis`` kept and every other
dimension 1, or scalars when ``axis`` is null; ``axis`` may also list several kept axes, as
HNeRV's own quantiser reduces one axis and keeps the others). An embedding chunk holds the codes of its
frames only; the embedding's min and scale (shared by all frames, as HNeRV's quantiser makes
them) end the weights chunk. Values are ``min + scale * code`` (in float32).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

from holoscope.codecs import framing
from holoscope.core.errors import CorruptStream, InvalidArgument

MAGIC = b"HSNV"
VERSION = 1
FORMAT_NAME = "holoscope-nerv"
FIXED = framing.FIXED
MAX_HEADER_BYTES = 4 << 20
MAX_HEADER_JSON = 32 << 20
MAX_CHUNK_RAW = 1 << 31  # a decompressed chunk; the decode budget still applies on top
DEFAULT_CHUNK_FRAMES = 30
ZSTD_LEVEL = 19


@dataclass(frozen=True)
class QuantTensor:
    """A tensor as integer codes with an affine map: ``value = minimum + scale * code``."""

    codes: np.ndarray  # uint8 / uint16, the tensor's shape
    bits: int
    minimum: np.ndarray  # float16 / float32, broadcastable to codes
    scale: np.ndarray
    axis: int | tuple[int, ...] | None  # the axis (or axes) min/scale keep (None: one pair for the tensor)

    def dequantise(self) -> np.ndarray:
        return (self.minimum.astype(np.float32) + self.scale.astype(np.float32) * self.codes).astype(np.float32)


def quantise(tensor: np.ndarray, bits: int, *, axes: tuple[int, ...] | None = None) -> QuantTensor:
    """Uniform affine quantisation to ``bits`` bits, HNeRV's rule: one min/scale for the whole
    tensor (float32), or per slice along one axis (float16) when that keeps fewer than 2% as many
    pairs as values; the candidate with the lowest mean absolute error wins. A constant tensor
    gets scale 0 (no NaN codes)."""
    if not 1 <= bits <= 16:
        raise InvalidArgument(f"quantisation takes 1..16 bits, got {bits}")
    t = np.asarray(tensor, np.float32)
    top = (1 << bits) - 1
    candidates: list[tuple[int | None, np.dtype]] = [(None, np.dtype(np.float32))]
    for axis in range(t.ndim) if axes is None else axes:
        if t.shape[axis] < 0.02 * t.size:
            candidates.append((axis, np.dtype(np.float16)))
    best: tuple[float, QuantTensor] | None = None
    for axis, dtype in candidates:
        reduce = tuple(i for i in range(t.ndim) if i != axis)
        lo = t.min(axis=reduce, keepdims=True) if axis is not None else np.array(t.min(), np.float32)
        hi = t.max(axis=reduce, keepdims=True) if axis is not None else np.array(t.max(), np.float32)
        lo, scale = lo.astype(dtype), ((hi - lo) / top).astype(dtype)
        lo32, scale32 = lo.astype(np.float32), scale.astype(np.float32)
        safe = np.where(scale32 > 0, scale32, 1)
        codes = np.clip(np.rint((t - lo32) / safe), 0, top).astype(np.uint8 if bits <= 8 else np.uint16)
        q = QuantTensor(codes, bits, lo, scale, axis)
        error = float(np.mean(np.abs(q.dequantise() - t))) if t.size else 0.0
        if best is None or error < best[0]:
            best = (error, q)
    assert best is not None
    return best[1]


def kept_axes(axis: int | list | tuple | None) -> tuple[int, ...]:
    """The axes min/scale keep, as a tuple (an ``axis`` field is an int, a list of them or null)."""
    if axis is None:
        return ()
    return tuple(int(a) for a in axis) if isinstance(axis, (list, tuple)) else (int(axis),)


def _code_bytes(q: QuantTensor) -> bytes:
    return q.codes.astype("<u2" if q.bits > 8 else np.uint8, copy=False).tobytes()


def _affine_bytes(q: QuantTensor) -> bytes:
    dtype = "<f2" if q.minimum.dtype == np.float16 else "<f4"
    return np.asarray(q.minimum, dtype).tobytes() + np.asarray(q.scale, dtype).tobytes()


def _describe(name: str, q: QuantTensor) -> dict:
    return {"name": name, "shape": list(q.codes.shape), "bits": q.bits,
            "axis": list(q.axis) if isinstance(q.axis, tuple) else q.axis,
            "min_dtype": "float16" if q.minimum.dtype == np.float16 else "float32"}  # fmt: skip


def write_nerv(path: Any, config: dict, weights: dict[str, QuantTensor], embedding: QuantTensor | None, *,
               fps: float, frames: int | None = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> int:  # fmt: skip
    """Write a .nerv stream (published atomically); returns its size in bytes. ``embedding``
    is quantised with one min/scale shared by all frames (axis None or not 0); ``None`` for a
    decoder without embeddings (NeRV), whose frame count is then ``frames``."""
    if embedding is not None:
        if 0 in kept_axes(embedding.axis):
            raise InvalidArgument("per-frame embedding ranges are not supported: quantise along another axis")
        if frames is not None and frames != embedding.codes.shape[0]:
            raise InvalidArgument(f"{frames} frames, but embeddings for {embedding.codes.shape[0]}")
        frames = int(embedding.codes.shape[0])
    if frames is None or frames < 1 or not 0 < fps <= 1000:
        raise InvalidArgument("a neural video needs at least one frame and 0 < fps <= 1000")
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    raw_weights = b"".join(_code_bytes(q) + _affine_bytes(q) for q in weights.values())
    if embedding is not None:
        raw_weights += _affine_bytes(embedding)
    chunks = [compressor.compress(raw_weights)]
    spans = []
    for start in range(0, frames if embedding is not None else 0, max(1, chunk_frames)):
        stop = min(frames, start + max(1, chunk_frames))
        raw = _code_bytes(QuantTensor(embedding.codes[start:stop], embedding.bits, embedding.minimum,
                                      embedding.scale, embedding.axis))  # fmt: skip
        chunks.append(compressor.compress(raw))
        spans.append((start, stop - start, len(raw)))
    header = {"format": FORMAT_NAME, "version": VERSION, "config": config, "fps": fps, "frames": frames,
              "weights": {"tensors": [_describe(n, q) for n, q in weights.items()], "raw": len(raw_weights)},
              "embedding": {**_describe("embedding", embedding), "chunks": []} if embedding is not None else None}  # fmt: skip
    data_start = 0
    for _ in range(8):  # offsets live in the header, whose size depends on them: iterate
        offset = data_start or 0
        header["weights"].update({"offset": offset, "length": len(chunks[0]), "crc32": zlib.crc32(chunks[0])})
        offset += len(chunks[0])
        if embedding is not None:
            header["embedding"]["chunks"] = []
        for (start, count, raw), chunk in zip(spans, chunks[1:]):
            header["embedding"]["chunks"].append({"start": start, "frames": count, "offset": offset,
                                                  "length": len(chunk), "crc32": zlib.crc32(chunk), "raw": raw})  # fmt: skip
            offset += len(chunk)
        blob = framing.pack(MAGIC, VERSION, header)
        if data_start and len(blob) <= data_start:
            break
        data_start = len(blob) + 64
    blob += bytes(data_start - len(blob))
    return framing.write_atomically(path, [blob, *chunks])


@dataclass(frozen=True)
class ChunkEntry:
    start: int
    frames: int
    offset: int
    length: int
    crc32: int
    raw: int


@dataclass
class NervHeader:
    config: dict
    fps: float
    frames: int
    tensors: list[dict]
    weights: ChunkEntry
    embedding: dict | None  # None: a decoder without embeddings (NeRV)
    chunks: list[ChunkEntry]
    data_start: int


def _int(value: Any, lo: int, hi: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer within {lo}..{hi}, got {value!r}")
    return value


def _tensor_bytes(desc: dict, frames: int | None = None) -> tuple[int, int]:
    """(code bytes, min+scale bytes) of a described tensor (``frames`` codes rows for an embedding chunk)."""
    shape = [int(d) for d in desc["shape"]]
    if frames is not None:
        shape[0] = frames
    count = int(np.prod(shape)) if shape else 1
    width = 2 if int(desc["bits"]) > 8 else 1
    pairs = int(np.prod([int(desc["shape"][a]) for a in kept_axes(desc["axis"])]))
    return count * width, 2 * pairs * (2 if desc["min_dtype"] == "float16" else 4)


def _check_tensor(desc: Any, where: str) -> dict:
    if not isinstance(desc, dict) or not isinstance(desc.get("name"), str):
        raise ValueError(f"{where}: a tensor entry needs a name")
    shape = desc.get("shape")
    if not isinstance(shape, list) or not 0 < len(shape) <= 6:
        raise ValueError(f"{where} {desc['name']}: bad shape {shape!r}")
    for d in shape:
        _int(d, 1, 1 << 24, f"{where} {desc['name']} dimension")
    if int(np.prod([float(d) for d in shape])) > 1 << 31:
        raise ValueError(f"{where} {desc['name']}: {shape} is beyond any decoder")
    _int(desc.get("bits"), 1, 16, f"{where} {desc['name']} bits")
    axis = desc.get("axis")
    if isinstance(axis, list):
        if not axis or len(set(map(repr, axis))) != len(axis):
            raise ValueError(f"{where} {desc['name']}: axis lists must name distinct axes")
        for a in axis:
            _int(a, 0, len(shape) - 1, f"{where} {desc['name']} axis")
    elif axis is not None:
        _int(axis, 0, len(shape) - 1, f"{where} {desc['name']} axis")
    if desc.get("min_dtype") not in ("float16", "float32"):
        raise ValueError(f"{where} {desc['name']}: min_dtype must be float16 or float32")
    return desc


def _chunk(data: Any, what: str) -> ChunkEntry:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be an object")
    return ChunkEntry(_int(data.get("start", 0), 0, 1 << 30, f"{what} start"),
                      _int(data.get("frames", 0), 0, 1 << 30, f"{what} frames"),
                      _int(data.get("offset"), FIXED.size, 1 << 40, f"{what} offset"),
                      _int(data.get("length"), 1, 1 << 34, f"{what} length"),
                      _int(data.get("crc32"), 0, 0xFFFFFFFF, f"{what} crc32"),
                      _int(data.get("raw"), 0, MAX_CHUNK_RAW, f"{what} raw size"))  # fmt: skip


def parse_header(head: bytes, label: Any) -> NervHeader:
    """The validated header of a .nerv from its first bytes (see :func:`needed_bytes`)."""
    data, end = framing.unpack(head, magic=MAGIC, version=VERSION, kind="neural-video",
                               max_header=MAX_HEADER_BYTES, max_json=MAX_HEADER_JSON, label=label)  # fmt: skip
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or data.get("version") != VERSION:
            raise ValueError("not a holoscope neural-video header")
        fps = data.get("fps")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 1000:
            raise ValueError(f"fps must be within 0..1000, got {fps!r}")
        frames = _int(data.get("frames"), 1, 10_000_000, "frames")
        if not isinstance(data.get("config"), dict):
            raise ValueError("config must be an object")
        weights = data.get("weights")
        if not isinstance(weights, dict) or not isinstance(weights.get("tensors"), list):
            raise ValueError("weights must list their tensors")
        tensors = [_check_tensor(t, "weights") for t in weights["tensors"]]
        embedding = data.get("embedding", {})
        raw = sum(sum(_tensor_bytes(t)) for t in tensors)
        if embedding is not None:
            embedding = _check_tensor(embedding, "embedding")
            if int(embedding["shape"][0]) != frames:
                raise ValueError(f"the embedding has {embedding['shape'][0]} frames, the header says {frames}")
            if 0 in kept_axes(embedding["axis"]):
                raise ValueError("per-frame embedding ranges are not supported")
            raw += _tensor_bytes(embedding)[1]
        weights_chunk = _chunk(weights, "the weights chunk")
        if weights_chunk.raw != raw:
            raise ValueError(f"the weights chunk holds {weights_chunk.raw:,} bytes, its tensors need {raw:,}")
        listed = (embedding.get("chunks") or []) if embedding is not None else []
        chunks = [_chunk(c, f"embedding chunk {i + 1}") for i, c in enumerate(listed)]
        expected = 0 if embedding is not None else frames
        for i, c in enumerate(chunks):
            if c.start != expected or c.frames < 1:
                raise ValueError(f"embedding chunk {i + 1} covers frames {c.start}..{c.start + c.frames - 1}, "
                                 f"expected to start at {expected}")  # fmt: skip
            if c.raw != _tensor_bytes(embedding, c.frames)[0]:
                raise ValueError(f"embedding chunk {i + 1} holds {c.raw:,} bytes, its {c.frames} frames need more or less")
            expected += c.frames
        if expected != frames:
            raise ValueError(f"the embedding chunks cover {expected} frames, the header says {frames}")
    except (ValueError, KeyError, TypeError, RecursionError, zstandard.ZstdError, UnicodeDecodeError) as exc:
        raise CorruptStream(f"bad header: {exc}", path=label) from exc
    if weights_chunk.offset < end:
        raise CorruptStream("the weights chunk overlaps the header", path=label)
    return NervHeader(data["config"], float(fps), frames, tensors, weights_chunk, embedding, chunks, weights_chunk.offset)


def needed_bytes(head: bytes) -> int:
    return framing.needed_bytes(head, MAX_HEADER_BYTES)


def read_chunk(source: Any, entry: ChunkEntry, label: Any, what: str) -> bytes:
    """A chunk's decompressed bytes, checked (length, CRC-32, size)."""
    data = source.read_range(entry.offset, entry.length)
    if len(data) != entry.length:
        raise CorruptStream(f"{what} is cut off ({len(data):,} of {entry.length:,} bytes)", path=label)
    if zlib.crc32(data) != entry.crc32:
        raise CorruptStream(f"{what} is damaged (checksum mismatch)", path=label)
    try:
        raw = zstandard.ZstdDecompressor().stream_reader(data).read(entry.raw + 1)
    except zstandard.ZstdError as exc:
        raise CorruptStream(f"{what} does not decompress: {exc}", path=label) from exc
    if len(raw) != entry.raw:
        raise CorruptStream(f"{what} holds {len(raw):,} bytes, the header says {entry.raw:,}", path=label)
    return raw


def _take(raw: bytes, at: int, desc: dict, frames: int | None = None) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in desc["shape"]]
    if frames is not None:
        shape[0] = frames
    dtype = np.dtype("<u2") if int(desc["bits"]) > 8 else np.dtype(np.uint8)
    count = int(np.prod(shape))
    codes = np.frombuffer(raw, dtype, count, at).reshape(shape)
    return codes, at + count * dtype.itemsize


def _affine(raw: bytes, at: int, desc: dict) -> tuple[np.ndarray, np.ndarray, int]:
    dtype = np.dtype("<f2") if desc["min_dtype"] == "float16" else np.dtype("<f4")
    axis = desc["axis"]
    shape = [1] * len(desc["shape"])
    for a in kept_axes(axis):
        shape[a] = int(desc["shape"][a])
    count = int(np.prod(shape))
    lo = np.frombuffer(raw, dtype, count, at).reshape(shape if axis is not None else ())
    scale = np.frombuffer(raw, dtype, count, at + count * dtype.itemsize).reshape(shape if axis is not None else ())
    return lo, scale, at + 2 * count * dtype.itemsize


def _axis(value: Any) -> int | tuple[int, ...] | None:
    return tuple(value) if isinstance(value, list) else value


def unpack_weights(raw: bytes, header: NervHeader) -> tuple[dict[str, QuantTensor], tuple[np.ndarray, np.ndarray] | None]:
    """The weights chunk as quantised tensors, plus the embedding's min and scale (None
    without embeddings)."""
    at, out = 0, {}
    for desc in header.tensors:
        codes, at = _take(raw, at, desc)
        lo, scale, at = _affine(raw, at, desc)
        out[desc["name"]] = QuantTensor(codes, int(desc["bits"]), lo, scale, _axis(desc["axis"]))
    if header.embedding is None:
        return out, None
    lo, scale, at = _affine(raw, at, header.embedding)
    return out, (lo, scale)


def unpack_embedding(raw: bytes, header: NervHeader, entry: ChunkEntry, affine: tuple[np.ndarray, np.ndarray]) -> QuantTensor:
    codes, _ = _take(raw, 0, header.embedding, entry.frames)
    return QuantTensor(codes, int(header.embedding["bits"]), affine[0], affine[1], _axis(header.embedding["axis"]))


def part_sizes(header: NervHeader) -> dict[str, int]:
    """Bytes of each part as stored: header, weights, embeddings."""
    return {"header": header.data_start, "weights": header.weights.length,
            "embeddings": sum(c.length for c in header.chunks)}  # fmt: skip
