"""PlayCanvas "compressed PLY" reader (splat-formats.md §3.3).

Layout: a binary PLY with three elements.

- ``chunk`` (C = ceil(N / 256) rows, one per run of 256 splats): float ``min_x min_y min_z max_x
  max_y max_z min_scale_x.. max_scale_z`` and optionally ``min_r min_g min_b max_r max_g max_b``.
- ``vertex`` (N rows): uint ``packed_position packed_rotation packed_scale packed_color``.
- optional ``sh`` (N rows): uchar ``f_rest_0 .. f_rest_{9|24|44}``, channel-major as in INRIA PLY.

Decoding (all vectorised, in blocks of whole chunks spread over a few threads):

- position and log-scale: 11/10/11-bit unorms (x at bits 31-21, y 20-11, z 10-0) lerped between
  the splat's chunk bounds; scale bounds are clamped to ±20 first, then exp gives linear σ.
- colour: 8888 (r 31-24, g 23-16, b 15-8, a 7-0); rgb lerped by the chunk colour bounds when
  present, then f_dc = (c − 0.5) / C0; the alpha byte is already sigmoid(opacity).
- rotation: "smallest three": bits 31-30 = index of the largest component in w,x,y,z order, the
  other three in ascending index order at 29-20, 19-10, 9-0, each (unorm10 − 0.5)·√2; the largest
  is sqrt(1 − Σ²).
- SH byte v: n = 0 (v = 0), 1 (v = 255), else (v + 0.5) / 256; coefficient = (n − 0.5)·8.

The source is opened once (a local file through ``core.files.open_regular``: a FIFO or device
is refused, never waited on); ``ply_inria.read_ply_header`` parses the header from at most 1 MiB and checks every
element's count against the bytes present; the chunk, vertex and sh counts are checked against
each other and the decode budget before anything is allocated. Each block's rows of an element
are then read with one ``readinto`` at their offset, and decoded straight into the output arrays.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np

from holoscope.codecs.formats.common import check_count, mapped_os_errors, static_splat_media
from holoscope.codecs.formats.ply_inria import PlyHeader, read_ply_header
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia
from holoscope.core.sources import Source, source_for
from holoscope.core.frames import SH_C0, SplatCloud, sh_coeff_count
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.ply_compressed"
FORMAT_NAME = "compressed-ply"
CHUNK_SIZE = 256
SCALE_CLAMP = 20.0

CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")  # fmt: skip
CHUNK_COLOUR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
# f_rest count per SH degree (3 channels x ((d+1)^2 - 1) coefficients).
SH_REST = {3 * (sh_coeff_count(d) - 1): d for d in (1, 2, 3)}
# The sh element as writers lay it out: f_rest_0.. as consecutive uchars, nothing else.
_PLAIN_SH = {rest: np.dtype([(f"f_rest_{i}", "u1") for i in range(rest)]) for rest in SH_REST}

# n(v) then (n - 0.5) * 8 for every byte value (the reference; _sh_rest computes it in place).
_SH_LUT = np.array(
    [((0.0 if v == 0 else 1.0 if v == 255 else (v + 0.5) / 256.0) - 0.5) * 8.0 for v in range(256)], np.float32
)


def _load(source: Source) -> tuple[BinaryIO, PlyHeader]:
    """Open the file and parse its header: the open file (the caller closes it) and the header.

    Refuses what a compressed PLY never has and plyfile-style readers would load row by row:
    ASCII data and list properties.
    """
    path = source.label
    fh = source.open()
    try:
        header = read_ply_header(fh, path)
        if header.is_ascii:
            raise CorruptStream(f"a compressed PLY must be binary, not '{header.format}'", path=path)
        for element in header.elements:
            if element.list_property:
                raise CorruptStream(
                    f"a compressed PLY has no list properties (element '{element.name}' has "
                    f"'{element.list_property}')",
                    path=path,
                )  # fmt: skip
        return fh, header
    except BaseException:
        fh.close()
        raise


def _element_rows(fh: BinaryIO, lock: threading.Lock, header: PlyHeader, name: str,
                  path: Path) -> Callable[[int, int], np.ndarray]:  # fmt: skip
    """A reader of one element's records: rows(start, stop) -> in-memory structured array.

    Each call is one read of just those rows at their offset (the header check has made sure
    the element fits in the file), so that row blocks can be read, and decoded while hot in the
    CPU caches, on several threads at once; ``lock`` (one per file) covers the seek and the read.
    """
    element = header.element(name)
    assert element is not None
    dtype = element.dtype(header.byte_order)
    offset = header.binary_offset(name, path)

    def rows(start: int, stop: int) -> np.ndarray:
        records = np.empty(stop - start, dtype)
        buffer = records.view(np.uint8).reshape(-1)
        with mapped_os_errors(path), lock:
            fh.seek(offset + start * dtype.itemsize)
            got = fh.readinto(buffer)
        if got != buffer.nbytes:  # the file shrank after its header was checked
            raise CorruptStream(f"truncated PLY data in element '{name}'", path=path)
        return records

    return rows


def _require_memory(n: int, degree: int, chunk_bytes: int, path: Path) -> None:
    """The decode budget: the cloud (twice when non-finite splats are dropped: a subset copies
    it), the chunk records and their bounds, and each worker's block of temporaries."""
    workers = min(-(-n // _BLOCK), _worker_count())
    extra = 2 * chunk_bytes + workers * _BLOCK * _BLOCK_BYTES_PER_SPLAT
    budget.require_splats(n, degree, path=path, peak_factor=PEAK_FACTOR, extra=extra)


def _require(fields: tuple[str, ...], names: tuple[str, ...], element: str, path: Path) -> None:
    missing = [n for n in names if n not in fields]
    if missing:
        raise CorruptStream(
            f"not a compressed PLY: element '{element}' lacks properties {', '.join(missing)}", path=path
        )


class _Fields:
    """The (shift, width) unorm fields of a packed word, as [F, 1] columns for stacked decoding."""

    def __init__(self, *fields: tuple[int, int]) -> None:
        self.shifts = np.array([[shift] for shift, _ in fields], np.uint32)
        self.masks = np.array([[(1 << width) - 1] for _, width in fields], np.uint32)
        self.scales = (1.0 / self.masks).astype(np.float32)


_FIELDS_111011 = _Fields((21, 11), (11, 10), (0, 11))
_FIELDS_101010 = _Fields((20, 10), (10, 10), (0, 10))
_FIELDS_8888 = _Fields((24, 8), (16, 8), (8, 8), (0, 8))

# Splats decoded per task: whole chunks, so that each chunk's bounds broadcast over its 256
# splats, and few enough that a task's temporaries stay in the CPU caches. Tasks run on a few
# threads: numpy releases the GIL in every ufunc and copy used here, and the tasks write
# disjoint rows of the output arrays.
_BLOCK = 64 * CHUNK_SIZE
_MAX_WORKERS = 16
# The decode budget (see _require_memory): the finished cloud times PEAK_FACTOR, plus per worker
# _BLOCK splats of temporaries at this many bytes each. Measured with tracemalloc on 1M-splat
# files: 2.0x the cloud plus ~1 % when a non-finite chunk is dropped (subset copies the cloud),
# 1.0x otherwise; block temporaries 110-160 bytes per splat (SH degree 0-3).
PEAK_FACTOR = 2.2
_BLOCK_BYTES_PER_SPLAT = 256
# Chunk bounds up to this magnitude cannot overflow float32 in the lerp or the DC scaling.
_SAFE_BOUND = 1e30


def _worker_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_WORKERS))


def _sh_codes(records: np.ndarray, sh_rest: int) -> np.ndarray:
    """The sh element's records as [N, sh_rest] bytes in f_rest order.

    A plain element (exactly the uchar properties f_rest_0.. in order, as every writer emits it)
    is already that array in memory: viewed, not copied. Any other layout is gathered by name.
    """
    if records.dtype == _PLAIN_SH[sh_rest] and records.flags.c_contiguous:
        return records.view(np.uint8).reshape(len(records), sh_rest)
    codes = np.empty((len(records), sh_rest), np.uint8)
    for i in range(sh_rest):
        codes[:, i] = records[f"f_rest_{i}"]
    return codes


class _ChunkBounds:
    """Per-chunk lerp bounds as [3, C] float32 arrays, and which chunks are safe (see _SAFE_BOUND)."""

    def __init__(self, chunks: np.ndarray, has_colour: bool) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # double bounds may overflow float32: inf
            self.pos_lo = _bounds(chunks, ["min_x", "min_y", "min_z"])
            self.pos_hi = _bounds(chunks, ["max_x", "max_y", "max_z"])
            lo = _bounds(chunks, ["min_scale_x", "min_scale_y", "min_scale_z"])
            hi = _bounds(chunks, ["max_scale_x", "max_scale_y", "max_scale_z"])
            self.scale_lo = np.clip(lo, -SCALE_CLAMP, SCALE_CLAMP)
            self.scale_hi = np.clip(hi, -SCALE_CLAMP, SCALE_CLAMP)
            self.colour_lo = _bounds(chunks, ["min_r", "min_g", "min_b"]) if has_colour else None
            self.colour_hi = _bounds(chunks, ["max_r", "max_g", "max_b"]) if has_colour else None
            every = [self.pos_lo, self.pos_hi, self.scale_lo, self.scale_hi]
            if has_colour:
                every += [self.colour_lo, self.colour_hi]
            # NaN compares False: a NaN bound makes its chunk unsafe (a clamped infinite scale
            # bound does not).
            self.safe = (np.abs(np.concatenate(every)) <= _SAFE_BOUND).all(axis=0)


def _bounds(chunks: np.ndarray, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(chunks[name], np.float32) for name in names])


def _unorms(words: np.ndarray, fields: _Fields) -> np.ndarray:
    """[M] uint32 words -> [F, M] float32 unorms in [0, 1], one row per field.

    Fields are stacked on the first axis so that each step is one numpy call over all of them,
    with the long axis innermost ([M, 1] >> [F] would run ~20x slower).
    """
    bits = words >> fields.shifts
    bits &= fields.masks
    t = np.empty(bits.shape, np.float32)
    np.copyto(t, bits, casting="unsafe")  # exact: at most 11 bits
    t *= fields.scales
    return t


def _lerp(t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[F, C*256] unorms -> lo * (1 - t) + hi * t, with bounds lo, hi [F, C] per chunk.

    The bounds broadcast over each chunk's 256 splats ([F, C, 1] against [F, C, 256]); nothing
    per splat is built for them. Works in place on t where it can.
    """
    t = t.reshape(*lo.shape, CHUNK_SIZE)
    low = np.float32(1) - t
    low *= lo[:, :, None]
    t *= hi[:, :, None]
    t += low
    return t.reshape(len(lo), -1)


def _put_columns(out: np.ndarray, stacked: np.ndarray) -> None:
    """out[:, f] = stacked[f] (a strided write per column beats one transposed copy)."""
    rows = len(out)
    for f in range(out.shape[1]):
        out[:, f] = stacked[f, :rows]


def read_compressed_ply(path: Source | str | Path | bytes) -> SplatCloud:
    """Read a PlayCanvas compressed PLY into an activated :class:`SplatCloud`."""
    source = source_for(path)
    fh, header = _load(source)
    with fh:
        return _decode(fh, header, source.label)


def _decode(fh: BinaryIO, header: PlyHeader, path: Path) -> SplatCloud:
    chunk_el, vertex_el, sh_el = header.element("chunk"), header.element("vertex"), header.element("sh")
    if chunk_el is None or vertex_el is None:
        missing = "chunk" if chunk_el is None else "vertex"
        raise CorruptStream(f"not a compressed PLY: no '{missing}' element", path=path)

    # read_ply_header has refused counts whose rows overrun the file; these are the format's own
    # rules: one chunk per 256 splats (no more, no fewer), one sh row per splat.
    n_chunks = check_count(chunk_el.count, path=path, what="chunks")
    n = check_count(vertex_el.count, path=path, what="splats")
    needed = -(-n // CHUNK_SIZE)
    if n_chunks != needed:
        raise CorruptStream(
            f"{n:,} splats need {needed:,} chunks of {CHUNK_SIZE}, but the file has {n_chunks:,}", path=path
        )

    chunk_fields = chunk_el.names
    vertex_props = {p.name: p for p in vertex_el.properties}
    _require(chunk_fields, CHUNK_BOUNDS, "chunk", path)
    _require(tuple(vertex_props), PACKED, "vertex", path)
    for name in PACKED:
        if vertex_props[name].type not in ("u4", "i4"):
            raise CorruptStream(f"vertex property {name} is not a 32-bit integer", path=path)
    colour_present = [c in chunk_fields for c in CHUNK_COLOUR]
    if any(colour_present) and not all(colour_present):
        missing = [c for c, p in zip(CHUNK_COLOUR, colour_present) if not p]
        raise CorruptStream(f"chunk colour bounds incomplete: missing {', '.join(missing)}", path=path)
    has_colour_bounds = all(colour_present)

    sh_rest = 0
    if sh_el is not None:
        sh_rest = len(sh_el.properties)
        if sh_rest not in SH_REST:
            raise CorruptStream(f"{sh_rest} SH properties do not match SH degree 1-3 (9, 24 or 45)", path=path)
        _require(sh_el.names, tuple(f"f_rest_{i}" for i in range(sh_rest)), "sh", path)
        if any(p.type != "u1" for p in sh_el.properties):
            raise CorruptStream("SH properties must be uchar", path=path)
        if sh_el.count != n:
            raise CorruptStream(f"the sh element holds {sh_el.count:,} rows for {n:,} splats", path=path)
    degree = SH_REST.get(sh_rest, 0)

    if n == 0:
        raise EmptyMedia("the file holds zero splats", path=path)
    _require_memory(n, degree, n_chunks * chunk_el.dtype().itemsize, path)

    lock = threading.Lock()
    bounds = _ChunkBounds(_element_rows(fh, lock, header, "chunk", path)(0, n_chunks), has_colour_bounds)
    vertex_rows = _element_rows(fh, lock, header, "vertex", path)
    sh_rows = _element_rows(fh, lock, header, "sh", path) if degree else None

    means = np.empty((n, 3), np.float32)
    scales = np.empty((n, 3), np.float32)
    quats = np.empty((n, 4), np.float32)
    opacities = np.empty(n, np.float32)
    sh = np.empty((n, sh_coeff_count(degree), 3), np.float32)

    def decode(start: int) -> None:
        stop = min(n, start + _BLOCK)
        codes = _sh_codes(sh_rows(start, stop), sh_rest) if sh_rows else None
        rows = slice(start, stop)
        _decode_rows(vertex_rows(start, stop), codes, bounds, start, stop,
                     means[rows], scales[rows], quats[rows], opacities[rows], sh[rows])  # fmt: skip

    starts = range(0, n, _BLOCK)
    workers = min(len(starts), _worker_count())
    if workers <= 1:
        for start in starts:
            decode(start)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="holoscope-cply") as pool:
            list(pool.map(decode, starts))  # re-raises a block's exception here

    # The canonical cloud, built here rather than through common.make_cloud, which would spend
    # about half of the read re-checking what holds by construction:
    # - quats are unit (to float32 rounding): the largest component is sqrt(1 - a² - b² - c²),
    #   and words whose a² + b² + c² exceeds 1 (damaged data only) are scaled to unit length;
    # - opacities are unorms in [0, 1]; the SH rest terms lie in [-4, 4] (_SH_LUT);
    # - means, scales and the DC term are finite wherever the splat's chunk bounds are finite and
    #   at most _SAFE_BOUND in magnitude: the lerp and the DC scaling cannot overflow, and the
    #   scale bounds are clamped to ±20 before exp.
    # So only when some chunk fails that test are the splats checked one by one; those that are
    # not finite are dropped and counted, as make_cloud does.
    cloud = SplatCloud(means=means, scales=scales, quats=quats, opacities=opacities, sh=sh)
    dropped = 0
    if not bounds.safe.all():
        finite = np.isfinite(means).all(axis=1) & np.isfinite(scales).all(axis=1) & np.isfinite(sh[:, 0]).all(axis=1)
        dropped = int(n - np.count_nonzero(finite))
        if dropped == n:  # the same words as common.make_cloud
            raise EmptyMedia(f"all {n:,} splats hold non-finite values (NaN or infinity)", path=path)
        if dropped:
            cloud = cloud.subset(finite)
    cloud.metadata["dropped_nonfinite"] = dropped
    cloud.metadata["format_info"] = {"chunks": n_chunks, "sh_degree": degree}
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, n)
    return cloud


def _decode_rows(vertices: np.ndarray, codes: np.ndarray | None, bounds: _ChunkBounds, start: int, stop: int,
                 means: np.ndarray, scales: np.ndarray, quats: np.ndarray, opacities: np.ndarray,
                 sh: np.ndarray) -> None:  # fmt: skip
    """Decode splats start..stop (start on a chunk boundary) into the given row slices.

    vertices and codes hold just those rows (vertex records; SH bytes or None). The packed words
    are copied into uint32 rows padded to whole chunks, so that every chunk bound broadcasts
    over its 256 splats; the padding is cut off again.
    """
    rows = stop - start
    first, last = start // CHUNK_SIZE, -(-stop // CHUNK_SIZE)
    words = np.empty((len(PACKED), (last - first) * CHUNK_SIZE), np.uint32)
    for i, name in enumerate(PACKED):
        words[i, :rows] = vertices[name]
    words[:, rows:] = 0
    position, rotation, scale, colour = words
    chunk = slice(first, last)

    # np.errstate is per thread: set here, in the worker, not around the pool.
    with np.errstate(over="ignore", invalid="ignore"):
        if codes is not None:
            _sh_rest(codes, sh)  # first: it scales the whole block, DC slots included
        _put_columns(means, _lerp(_unorms(position, _FIELDS_111011), bounds.pos_lo[:, chunk], bounds.pos_hi[:, chunk]))
        log_scales = _lerp(_unorms(scale, _FIELDS_111011), bounds.scale_lo[:, chunk], bounds.scale_hi[:, chunk])
        _put_columns(scales, np.exp(log_scales, out=log_scales))

        rgba = _unorms(colour, _FIELDS_8888)  # the alpha byte is already sigmoid(opacity)
        opacities[:] = rgba[3, :rows]
        rgb = rgba[:3]
        if bounds.colour_lo is not None:
            rgb = _lerp(rgb, bounds.colour_lo[:, chunk], bounds.colour_hi[:, chunk])
        rgb -= np.float32(0.5)  # f_dc as common.colors_to_sh_dc, in place
        rgb /= np.float32(SH_C0)
        _put_columns(sh[:, 0], rgb)

    _smallest_three(rotation[:rows], quats)


def _sh_rest(codes: np.ndarray, sh: np.ndarray) -> None:
    """[B, 3R] channel-major SH bytes -> sh[:, 1:] (coefficient-major, colour innermost).

    Every byte v in 1..254 decodes to ((v + 0.5) / 256 - 0.5) * 8 = v / 32 - 255 / 64, exactly in
    float32, so the bytes are cast straight into place (one strided copy per colour channel) and
    the block is scaled in one contiguous pass; the two end codes (0 -> -4, 255 -> +4, _SH_LUT)
    are patched afterwards, only when the block holds any. The DC slots of the block are scaled
    too (whatever they hold) and must be written after this.
    """
    rest = sh.shape[1] - 1
    for c in range(3):
        np.copyto(sh[:, 1:, c], codes[:, c * rest : (c + 1) * rest], casting="unsafe")
    flat = sh.reshape(-1)  # a row block of a C-contiguous array: a view, never a copy
    flat *= np.float32(1 / 32)
    flat -= np.float32(255 / 64)
    for code, present in ((0, codes.min() == 0), (255, codes.max() == 255)):
        if present:
            row, col = np.nonzero(codes == code)
            sh[row, 1 + col % rest, col // rest] = _SH_LUT[code]


_SLOTS = np.arange(4, dtype=np.uint32)[:, None]


def _smallest_three(rot: np.ndarray, quats: np.ndarray) -> None:
    """[B] packed rotation words -> quats [B, 4] (w first), unit length.

    Smallest three: the 2-bit index names the largest of w,x,y,z; a, b, c fill the other slots
    in ascending order: [m a b c], [a m b c], [a b m c] or [a b c m].
    """
    abc = _unorms(rot, _FIELDS_101010)
    abc -= np.float32(0.5)
    abc *= np.float32(math.sqrt(2.0))
    squares = np.square(abc).sum(axis=0)  # a² + b² + c²
    m = np.float32(1) - squares
    np.maximum(m, np.float32(0), out=m)
    np.sqrt(m, out=m)
    # A packer writes the three smallest components of a unit quaternion (a² + b² + c² <= 3/4).
    # Damaged words can reach 3/2 with m = 0: scale those to unit length (the others by 1).
    if squares.max() > 1:
        abc /= np.sqrt(np.maximum(squares, np.float32(1)))
    # Slot j holds m where the index is j, the j-th small component where the index is above j
    # and the (j-1)-th where it is below. Selected by multiplying with 0/1 masks and adding,
    # which is exact here (all values finite, products with 1 unchanged, sums with ±0 unchanged)
    # and ~3x faster than np.where, which branches per element and mispredicts on these indices.
    largest = rot >> np.uint32(30)
    slots = m * (largest == _SLOTS)
    slots[:3] += abc * (largest > _SLOTS[:3])
    slots[1:] += abc * (largest < _SLOTS[1:])
    _put_columns(quats, slots)


def open_compressed_ply(source: Source) -> Media:
    cloud = read_compressed_ply(source)
    return static_splat_media(cloud, source=source, fmt=FORMAT_NAME, reader=READER_NAME)
