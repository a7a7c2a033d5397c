"""PlayCanvas "compressed PLY" reader (splat-formats.md §3.3).

Layout: a binary PLY with three elements.

- ``chunk`` (C = ceil(N / 256) rows, one per run of 256 splats): float ``min_x min_y min_z max_x
  max_y max_z min_scale_x.. max_scale_z`` and optionally ``min_r min_g min_b max_r max_g max_b``.
- ``vertex`` (N rows): uint ``packed_position packed_rotation packed_scale packed_color``.
- optional ``sh`` (N rows): uchar ``f_rest_0 .. f_rest_{9|24|44}``, channel-major as in INRIA PLY.

Decoding (all vectorised, one pass per field):

- position and log-scale: 11/10/11-bit unorms (x at bits 31-21, y 20-11, z 10-0) lerped between
  the splat's chunk bounds; scale bounds are clamped to ±20 first, then exp gives linear σ.
- colour: 8888 (r 31-24, g 23-16, b 15-8, a 7-0); rgb lerped by the chunk colour bounds when
  present, then f_dc = (c − 0.5) / C0; the alpha byte is already sigmoid(opacity).
- rotation: "smallest three": bits 31-30 = index of the largest component in w,x,y,z order, the
  other three in ascending index order at 29-20, 19-10, 9-0, each (unorm10 − 0.5)·√2; the largest
  is sqrt(1 − Σ²).
- SH byte v: n = 0 (v = 0), 1 (v = 255), else (v + 0.5) / 256; coefficient = (n − 0.5)·8.

plyfile parses the header and checks that every element fits in the file (binary elements are
memory-mapped, never allocated from a header count); the element bytes are then read with one
``np.fromfile`` each.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import plyfile

from holoscope.codecs.formats.common import check_count, colors_to_sh_dc, make_cloud, static_splat_media
from holoscope.core.errors import CorruptStream, EmptyMedia, SourceNotFound
from holoscope.core.frames import SplatCloud, sh_coeff_count
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.ply_compressed"
FORMAT_NAME = "compressed-ply"
CHUNK_SIZE = 256
SCALE_CLAMP = 20.0
_MAX_HEADER = 1 << 20

CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")  # fmt: skip
CHUNK_COLOUR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
# f_rest count per SH degree (3 channels x ((d+1)^2 - 1) coefficients).
SH_REST = {3 * (sh_coeff_count(d) - 1): d for d in (1, 2, 3)}

# n(v) then (n - 0.5) * 8 for every byte value: one table lookup per SH byte.
_SH_LUT = np.array(
    [((0.0 if v == 0 else 1.0 if v == 255 else (v + 0.5) / 256.0) - 0.5) * 8.0 for v in range(256)], np.float32
)


def _load(path: Path) -> plyfile.PlyData:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError as exc:
        raise SourceNotFound("no such file", path=path) from exc
    except IsADirectoryError as exc:
        raise CorruptStream("is a directory, not a compressed PLY file", path=path) from exc
    except OSError as exc:
        raise CorruptStream(f"cannot read ({exc.strerror or exc})", path=path) from exc
    if not head.startswith((b"ply\n", b"ply\r\n")):
        raise CorruptStream("not a PLY file (no 'ply' magic)", path=path)
    _precheck_header(path)
    try:
        ply = plyfile.PlyData.read(str(path), mmap="r")
    except plyfile.PlyHeaderParseError as exc:
        raise CorruptStream(f"bad PLY header ({exc})", path=path) from exc
    except (plyfile.PlyParseError, ValueError, EOFError, OverflowError, TypeError, UnicodeDecodeError) as exc:
        raise CorruptStream(f"truncated or damaged PLY data ({exc})", path=path) from exc
    except MemoryError as exc:
        raise CorruptStream("the header declares more PLY data than can be loaded", path=path) from exc
    except OSError as exc:
        raise CorruptStream(f"cannot read PLY ({exc})", path=path) from exc
    return ply


def _precheck_header(path: Path) -> None:
    """Refuse, before plyfile reads any data, the layouts it would load row by row in Python.

    plyfile memory-maps binary elements without list properties and checks their size against
    the file first; for ASCII data or list properties it instead allocates the header's count and
    parses rows one at a time. A compressed PLY never has either, so both are refused here.
    """
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER)
    end = head.find(b"end_header")
    if end < 0:
        raise CorruptStream("bad PLY header (no end_header in the first 1 MiB)", path=path)
    for raw in head[:end].splitlines():
        words = raw.split()
        if words[:1] == [b"format"] and words[1:2] not in ([b"binary_little_endian"], [b"binary_big_endian"]):
            kind = words[1].decode("ascii", "replace") if len(words) > 1 else "?"
            raise CorruptStream(f"a compressed PLY must be binary, not '{kind}'", path=path)
        if words[:2] == [b"property", b"list"]:
            raise CorruptStream("a compressed PLY has no list properties", path=path)


def _element_records(ply: plyfile.PlyData, name: str, path: Path) -> np.ndarray:
    """The records of one element as an in-memory structured array (one sequential read)."""
    data = ply[name].data
    if isinstance(data, np.memmap) and data.size:
        try:
            return np.fromfile(path, dtype=data.dtype, count=data.size, offset=data.offset)
        except (OSError, ValueError) as exc:
            raise CorruptStream(f"truncated or damaged PLY data ({exc})", path=path) from exc
    return np.asarray(data)


def _require(fields: tuple[str, ...], names: tuple[str, ...], element: str, path: Path) -> None:
    missing = [n for n in names if n not in fields]
    if missing:
        raise CorruptStream(
            f"not a compressed PLY: element '{element}' lacks properties {', '.join(missing)}", path=path
        )


# (shift, width) of each field in a packed word.
_FIELDS_111011 = ((21, 11), (11, 10), (0, 11))
_FIELDS_101010 = ((20, 10), (10, 10), (0, 10))
_FIELDS_8888 = ((24, 8), (16, 8), (8, 8), (0, 8))


def _unorm(words: np.ndarray, shift: int, width: int) -> np.ndarray:
    """One unorm field of [M] uint32 words -> [M] float32 in [0, 1].

    Kept one-dimensional on purpose: numpy's broadcast shifts ([M, 1] >> [F]) run ~20x slower.
    """
    mask = (1 << width) - 1
    return ((words >> np.uint32(shift)) & np.uint32(mask)).astype(np.float32) * np.float32(1.0 / mask)


def _lerp_fields(words: np.ndarray, fields, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """[C*256] words -> [n, F]: field f lerped between its chunk bounds lo[:, f], hi[:, f].

    Bounds broadcast over each chunk's 256 splats ([C, 1] against [C, 256]); nothing per-splat
    is built for them.
    """
    n_chunks = len(lo)
    out = np.empty((n, len(fields)), np.float32)
    for f, (shift, width) in enumerate(fields):
        t = _unorm(words, shift, width).reshape(n_chunks, CHUNK_SIZE)
        out[:, f] = (lo[:, f, None] * (np.float32(1) - t) + hi[:, f, None] * t).reshape(-1)[:n]
    return out


def _bounds(chunks: np.ndarray, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(chunks[name], np.float32) for name in names], axis=1)


def read_compressed_ply(path: str | Path) -> SplatCloud:
    """Read a PlayCanvas compressed PLY into an activated :class:`SplatCloud`."""
    path = Path(path)
    ply = _load(path)
    names = [e.name for e in ply.elements]
    for element in ("chunk", "vertex"):
        if element not in names:
            raise CorruptStream(f"not a compressed PLY: no '{element}' element", path=path)

    # plyfile has already refused elements that overrun the file (without allocating them); this
    # repeats the check with holoscope's own limits and messages before anything is decoded.
    file_bytes = path.stat().st_size
    chunk_bytes = ply["chunk"].dtype().itemsize
    n_chunks = check_count(ply["chunk"].count, path=path, available=file_bytes, bytes_each=chunk_bytes, what="chunks")
    vertex_bytes = ply["vertex"].dtype().itemsize
    n = check_count(ply["vertex"].count, path=path, available=file_bytes - n_chunks * chunk_bytes,
                    bytes_each=vertex_bytes, what="splats")  # fmt: skip
    needed = -(-n // CHUNK_SIZE)
    if n_chunks != needed:
        raise CorruptStream(
            f"{n:,} splats need {needed:,} chunks of {CHUNK_SIZE}, but the file has {n_chunks:,}", path=path
        )

    chunk_fields = tuple(p.name for p in ply["chunk"].properties)
    vertex_props = {p.name: p for p in ply["vertex"].properties}
    _require(chunk_fields, CHUNK_BOUNDS, "chunk", path)
    _require(tuple(vertex_props), PACKED, "vertex", path)
    for name in PACKED:
        if vertex_props[name].val_dtype not in ("u4", "i4"):
            raise CorruptStream(f"vertex property {name} is not a 32-bit integer", path=path)
    colour_present = [c in chunk_fields for c in CHUNK_COLOUR]
    if any(colour_present) and not all(colour_present):
        missing = [c for c, p in zip(CHUNK_COLOUR, colour_present) if not p]
        raise CorruptStream(f"chunk colour bounds incomplete: missing {', '.join(missing)}", path=path)
    has_colour_bounds = all(colour_present)

    sh_rest = 0
    if "sh" in names:
        sh_el = ply["sh"]
        sh_props = {p.name: p for p in sh_el.properties}
        sh_rest = len(sh_props)
        if sh_rest not in SH_REST:
            raise CorruptStream(f"{sh_rest} SH properties do not match SH degree 1-3 (9, 24 or 45)", path=path)
        _require(tuple(sh_props), tuple(f"f_rest_{i}" for i in range(sh_rest)), "sh", path)
        if any(p.val_dtype not in ("u1",) for p in sh_props.values()):
            raise CorruptStream("SH properties must be uchar", path=path)
        if sh_el.count != n:
            raise CorruptStream(f"the sh element holds {sh_el.count:,} rows for {n:,} splats", path=path)
    degree = SH_REST.get(sh_rest, 0)

    if n == 0:
        raise EmptyMedia("the file holds zero splats", path=path)

    chunks = _element_records(ply, "chunk", path)
    vertices = _element_records(ply, "vertex", path)
    means, log_scales, quats, opacities, dc = _decode(chunks, vertices, n, has_colour_bounds)

    rest_count = sh_coeff_count(degree) - 1
    sh = np.empty((n, rest_count + 1, 3), np.float32)
    sh[:, 0] = dc
    if degree:
        sh_records = _element_records(ply, "sh", path)
        raw = np.empty((n, sh_rest), np.uint8)
        for i in range(sh_rest):
            raw[:, i] = sh_records[f"f_rest_{i}"]
        # Channel-major [R coeffs, G coeffs, B coeffs] -> coefficient-major, colour innermost.
        sh[:, 1:] = _SH_LUT[raw].reshape(n, 3, rest_count).transpose(0, 2, 1)

    with np.errstate(over="ignore", invalid="ignore"):
        scales = np.exp(log_scales, dtype=np.float32)
    result = make_cloud(means, scales, quats, opacities, sh, path=path,
                        format_info={"chunks": n_chunks, "sh_degree": degree})  # fmt: skip
    dropped = result.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, n)
    return result


def _decode(chunks: np.ndarray, vertices: np.ndarray, n: int, has_colour_bounds: bool):
    """Packed vertex words + chunk bounds -> means, log-scales, quats (w first), opacities, f_dc.

    The words are padded to whole chunks so that every per-chunk bound broadcasts over its 256
    splats; the padding is cut off again.
    """
    n_chunks = len(chunks)
    padded = n_chunks * CHUNK_SIZE
    words = {}
    for name in PACKED:
        column = np.zeros(padded, np.uint32)
        column[:n] = vertices[name]
        words[name] = column

    with np.errstate(over="ignore", invalid="ignore"):
        lo = _bounds(chunks, ["min_x", "min_y", "min_z"])
        hi = _bounds(chunks, ["max_x", "max_y", "max_z"])
        means = _lerp_fields(words["packed_position"], _FIELDS_111011, lo, hi, n)

        lo = np.clip(_bounds(chunks, ["min_scale_x", "min_scale_y", "min_scale_z"]), -SCALE_CLAMP, SCALE_CLAMP)
        hi = np.clip(_bounds(chunks, ["max_scale_x", "max_scale_y", "max_scale_z"]), -SCALE_CLAMP, SCALE_CLAMP)
        log_scales = _lerp_fields(words["packed_scale"], _FIELDS_111011, lo, hi, n)

        colour = words["packed_color"]
        if has_colour_bounds:
            lo = _bounds(chunks, ["min_r", "min_g", "min_b"])
            hi = _bounds(chunks, ["max_r", "max_g", "max_b"])
            rgb = _lerp_fields(colour, _FIELDS_8888[:3], lo, hi, n)
        else:
            rgb = np.stack([_unorm(colour[:n], shift, width) for shift, width in _FIELDS_8888[:3]], axis=1)
        opacities = _unorm(colour[:n], 0, 8)
        dc = colors_to_sh_dc(rgb)

    # Smallest three: the 2-bit index names the largest of w,x,y,z; a, b, c fill the other
    # slots in ascending order: [m a b c], [a m b c], [a b m c] or [a b c m].
    rot = words["packed_rotation"][:n]
    root2 = np.float32(math.sqrt(2.0))
    a, b, c = ((_unorm(rot, shift, width) - np.float32(0.5)) * root2 for shift, width in _FIELDS_101010)
    m = np.sqrt(np.maximum(np.float32(0), np.float32(1) - (a * a + b * b + c * c)))
    largest = rot >> np.uint32(30)
    quats = np.empty((n, 4), np.float32)
    quats[:, 0] = np.where(largest == 0, m, a)
    quats[:, 1] = np.where(largest == 0, a, np.where(largest == 1, m, b))
    quats[:, 2] = np.where(largest <= 1, b, np.where(largest == 2, m, c))
    quats[:, 3] = np.where(largest == 3, m, c)
    return means, log_scales, quats, opacities, dc


def open_compressed_ply(path: Path) -> Media:
    cloud = read_compressed_ply(path)
    return static_splat_media(cloud, path=path, fmt=FORMAT_NAME, reader=READER_NAME)
