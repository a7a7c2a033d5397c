"""INRIA 3D Gaussian Splatting PLY: reader and writer.

Layout: one ``element vertex`` with float properties ``x y z [nx ny nz] f_dc_0..2
f_rest_0..(3M-1) opacity scale_0..2 rot_0..3``; M = (D+1)^2 - 1 for SH degree D and f_rest is
channel-major (all of R, then G, then B). Properties are looked up by name, so extra ones
(normals, comments, custom fields) are ignored and any order works; any numeric type (double
precision, big-endian, ASCII) is converted to float32.

Activations are applied once, here: exp(scale), sigmoid(opacity), normalised quaternions.

Plain coloured point clouds (``x y z red green blue [alpha]``, no splat properties: COLMAP
``points3D.ply``, scanner and photogrammetry exports) are shown as small isotropic splats: σ is
half the median nearest-neighbour spacing (estimated, see :func:`estimate_point_spacing`),
opacity 0.9 (times alpha when present), SH degree 0, identity rotation. That branch is only
taken when the splat properties are absent, so reading splat scenes costs nothing extra.

Reading never trusts the header. :func:`read_ply_header` parses it from at most
:data:`MAX_HEADER` bytes and checks every element's count against the bytes present before
anything is allocated; the vertex element is then budgeted (``core.budget``) and read with one
``np.fromfile`` (binary; one ``readinto`` for a source that is not a local file) or ``np.loadtxt`` over length-limited lines (ASCII). Other elements
(mesh faces, ...) are never read. plyfile is only used to write: it parses list rows and ASCII
in Python, allocating the header's count up front, which a forged header turns into gigabytes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import plyfile

from holoscope.codecs.formats.common import (
    atomic_output,
    check_count,
    colors_to_sh_dc,
    make_cloud,
    mapped_os_errors,
    read_records,
    source_size,
    static_splat_media,
)
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError
from holoscope.core.sources import Source, source_for
from holoscope.core.frames import SplatCloud, sh_coeff_count
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.ply_inria"
REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip
POINT_CLOUD_REQUIRED = ("x", "y", "z", "red", "green", "blue")
POINT_OPACITY = 0.9
POINT_SCALE_FRACTION = 0.5  # splat sigma as a fraction of the median nearest-neighbour spacing
POINT_FALLBACK_SPACING = 0.01  # a single point, or all points at one place: nothing to measure

# Peak memory of a read in multiples of the finished cloud (budget.splat_cloud_bytes), on top of
# the raw vertex records (and their float32 copy and finiteness mask: see _require_memory).
# Measured with tracemalloc on 1M-splat files: splat scenes 0.76-0.79 (SH degree 0-3, with and
# without NaN rows: the records are freed before a subset copies the cloud); coloured point
# clouds 2.84-2.92 (make_cloud's float64 quaternions, the Morton sort of the spacing estimate).
SPLAT_PEAK_FACTOR = 1.2
POINT_PEAK_FACTOR = 3.3


# PLY header ---------------------------------------------------------------------------------

MAX_HEADER = 1 << 20  # real headers take a few KB; anything longer is damage or an attack
_MAX_COUNT_DIGITS = 20  # int() of a longer digit string is slow (and refused past 4300 digits)
_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}  # fmt: skip
_BYTE_ORDER = {"ascii": "=", "binary_little_endian": "<", "binary_big_endian": ">"}
# ASCII rows are lines; a longer line than this per property is damage, never a number.
_ASCII_BYTES_PER_PROPERTY = 256


@dataclass(frozen=True)
class PlyProperty:
    name: str
    type: str  # numpy type without byte order: "f4", "u1" ...
    list_count_type: str | None = None  # list properties: the type of each row's length field


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties)

    @property
    def list_property(self) -> str | None:
        return next((p.name for p in self.properties if p.list_count_type), None)

    def dtype(self, byte_order: str = "<") -> np.dtype:
        """The record type of an element without list properties."""
        return np.dtype([(p.name, byte_order + p.type) for p in self.properties])

    def min_row_bytes(self, ascii: bool) -> int:
        """The fewest bytes a row can take (a list may be empty, but its length is stored)."""
        if ascii:  # every value is at least a digit and a separator; a row is at least a newline
            return max(1, 2 * len(self.properties))
        return sum(np.dtype(p.list_count_type or p.type).itemsize for p in self.properties)


@dataclass(frozen=True)
class PlyHeader:
    format: str  # "ascii", "binary_little_endian" or "binary_big_endian"
    elements: tuple[PlyElement, ...]
    data_offset: int  # where the first element's rows begin
    file_size: int

    @property
    def is_ascii(self) -> bool:
        return self.format == "ascii"

    @property
    def byte_order(self) -> str:
        return _BYTE_ORDER[self.format]

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)

    def binary_offset(self, name: str, path: Path) -> int:
        """Where element ``name`` starts in a binary file (the elements before it need fixed-size rows)."""
        offset = self.data_offset
        for element in self.elements:
            if element.name == name:
                return offset
            if element.list_property:
                raise CorruptStream(
                    f"element '{element.name}' has list properties and comes before '{name}': "
                    "unsupported PLY layout",
                    path=path,
                )  # fmt: skip
            offset += element.count * element.dtype().itemsize
        raise KeyError(name)


def _header_error(message: str, path: Path) -> CorruptStream:
    return CorruptStream(f"bad PLY header ({message})", path=path)


def read_ply_header(fh: BinaryIO, path: Path) -> PlyHeader:
    """Parse and check the header of the open PLY ``fh``, reading at most :data:`MAX_HEADER` bytes.

    Every element's count is checked against the bytes present (its row size for binary rows,
    two bytes per value for ASCII), so that no count from the header can make a reader
    allocate more than the file could hold. Raises :class:`CorruptStream` naming the file.
    """
    with mapped_os_errors(path):
        file_size = source_size(fh, path)
        fh.seek(0)
        head = fh.read(MAX_HEADER)
    return parse_ply_header(head, file_size, path)


def header_complete(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) holds the whole header: the reader of a
    download waits for this before :func:`parse_ply_header`."""
    return any(nl + b"end_header" + nl in head for nl in (b"\r\n", b"\n", b"\r"))


def parse_ply_header(head: bytes, file_size: int, path: Path | str) -> PlyHeader:
    """The header in ``head`` (the first bytes of a file of ``file_size`` bytes), checked as
    :func:`read_ply_header` says."""
    head = head[:MAX_HEADER]
    newline = next((nl for nl in (b"\r\n", b"\n", b"\r") if head.startswith(b"ply" + nl)), None)
    if newline is None:
        raise CorruptStream("not a PLY file (no 'ply' magic)", path=path)
    end = head.find(newline + b"end_header" + newline)
    if end < 0:
        if len(head) >= MAX_HEADER:
            raise _header_error(f"no end_header in the first {MAX_HEADER >> 20} MiB", path)
        raise _header_error("no end_header: the file ends inside the header", path)
    data_offset = end + 2 * len(newline) + len(b"end_header")
    # latin-1 decodes any byte: comments may hold anything; keywords and numbers are checked.
    lines = head[: end + len(newline)].decode("latin-1").split(newline.decode())[1:]
    fmt, elements = _parse_header_lines(lines, path)
    header = PlyHeader(fmt, tuple(elements), data_offset, max(file_size, data_offset))
    _check_sizes(header, path)
    return header


def _parse_header_lines(lines: list[str], path: Path) -> tuple[str, list[PlyElement]]:
    fmt: str | None = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    seen: dict[str, set[str]] = {}  # element name -> its property names
    for line in lines:
        words = line.split()
        shown = line.strip()[:80]
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if fmt is not None or elements:
                raise _header_error(f"misplaced format line {shown!r}", path)
            if len(words) != 3 or words[1] not in _BYTE_ORDER or words[2] != "1.0":
                raise _header_error(f"unknown format {shown!r}", path)
            fmt = words[1]
        elif words[0] == "element":
            if fmt is None:
                raise _header_error("element before the format line", path)
            count = words[2] if len(words) == 3 else ""
            if not (count.isascii() and count.isdigit() and len(count) <= _MAX_COUNT_DIGITS):
                raise _header_error(f"bad element line {shown!r}: the count must be a whole number", path)
            if words[1] in seen:  # sets, not scans: a 1 MiB header holds ~80,000 names
                raise _header_error(f"element '{words[1]}' declared twice", path)
            seen[words[1]] = set()
            elements.append((words[1], int(count), []))
        elif words[0] == "property":
            if not elements:
                raise _header_error("property before any element", path)
            if len(words) == 5 and words[1] == "list" and words[2] in _TYPES and words[3] in _TYPES:
                if _TYPES[words[2]][0] not in "iu":
                    raise _header_error(f"list length type must be an integer: {shown!r}", path)
                prop = PlyProperty(words[4], _TYPES[words[3]], _TYPES[words[2]])
            elif len(words) == 3 and words[1] in _TYPES:
                prop = PlyProperty(words[2], _TYPES[words[1]])
            else:
                raise _header_error(f"bad property line {shown!r}", path)
            if prop.name in seen[elements[-1][0]]:
                raise _header_error(f"property '{prop.name}' declared twice", path)
            seen[elements[-1][0]].add(prop.name)
            elements[-1][2].append(prop)
        else:
            raise _header_error(f"unexpected line {shown!r}", path)
    if fmt is None:
        raise _header_error("no format line", path)
    return fmt, [PlyElement(name, count, tuple(props)) for name, count, props in elements]


def _check_sizes(header: PlyHeader, path: Path) -> None:
    """Refuse counts that need more bytes than the file holds, element by element in file order."""
    available = header.file_size - header.data_offset
    # ASCII: the last row may lack its newline.
    slack = 1 if header.is_ascii else 0
    needed = 0
    for element in header.elements:
        needed += element.count * element.min_row_bytes(header.is_ascii)
        if needed > available + slack:
            raise CorruptStream(
                f"header promises {element.count:,} '{element.name}' rows: at least {needed:,} bytes of data, "
                f"but only {available:,} are present: truncated",
                path=path,
            )


def read_element(fh: BinaryIO, header: PlyHeader, name: str, path: Path) -> np.ndarray:
    """All rows of element ``name`` (no list properties) as a structured array.

    The caller has checked the count against the budget; the sizes were checked by
    :func:`read_ply_header`, and a file that shrinks meanwhile is caught here.
    """
    element = header.element(name)
    assert element is not None and element.list_property is None
    if header.is_ascii:
        return _read_ascii_rows(fh, header, element, path)
    offset = header.binary_offset(name, path)
    with mapped_os_errors(path):
        fh.seek(offset)
        rows = read_records(fh, element.dtype(header.byte_order), element.count)
    if len(rows) != element.count:
        raise CorruptStream(f"truncated PLY data in element '{name}'", path=path)
    return rows


def _read_ascii_rows(fh: BinaryIO, header: PlyHeader, element: PlyElement, path: Path) -> np.ndarray:
    """An ASCII element's rows (one per line, after the lines of the elements before it), parsed
    by numpy's C reader rather than value by value in Python."""
    before = 0
    for other in header.elements:
        if other is element:
            break
        before += other.count
    limit = 64 + _ASCII_BYTES_PER_PROPERTY * len(element.properties)
    try:
        with mapped_os_errors(path), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            fh.seek(header.data_offset)
            _skip_lines(fh, before, path)
            rows = np.loadtxt(_ascii_lines(fh, element.count, limit, path), dtype=element.dtype("="),
                              comments=None, ndmin=1)  # fmt: skip
    except HoloscopeError:  # an OSError mapped above, or from _ascii_lines / _skip_lines: worded
        raise
    except (ValueError, OverflowError, TypeError) as exc:
        detail = str(exc)[:160]  # numpy quotes the bad token, which may be long
        raise CorruptStream(f"damaged ASCII PLY data in element '{element.name}' ({detail})", path=path) from exc
    if len(rows) != element.count:
        raise CorruptStream(
            f"truncated ASCII PLY data: {len(rows):,} of {element.count:,} '{element.name}' rows", path=path
        )
    return rows


def _ascii_lines(fh: BinaryIO, count: int, limit: int, path: Path) -> Iterator[str]:
    """Up to ``count`` lines, none longer than ``limit`` bytes (one huge line must not fill memory)."""
    for _ in range(count):
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            raise CorruptStream(f"damaged ASCII PLY data: a line longer than {limit:,} bytes", path=path)
        yield line.decode("latin-1")


def _skip_lines(fh: BinaryIO, count: int, path: Path) -> None:
    """Move past ``count`` lines (the rows of ASCII elements before the one wanted), a block at a time."""
    while count:
        start = fh.tell()
        block = fh.read(1 << 20)
        if not block:
            raise CorruptStream("truncated ASCII PLY data", path=path)
        ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
        if len(ends) >= count:
            fh.seek(start + int(ends[count - 1]) + 1)
            return
        count -= len(ends)


# Reading ------------------------------------------------------------------------------------


def _groups(rest_count: int) -> list[list[str]]:
    """The properties read together, each group becoming one [N, k] block of the matrix."""
    return [["x", "y", "z"], ["f_dc_0", "f_dc_1", "f_dc_2"], ["opacity"], ["scale_0", "scale_1", "scale_2"],
            ["rot_0", "rot_1", "rot_2", "rot_3"], [f"f_rest_{i}" for i in range(3 * rest_count)]]  # fmt: skip


def _viewable(dtype: np.dtype, rest_count: int) -> bool:
    """All-float32 records with each group's properties side by side (the INRIA layout): the
    float matrix is then a zero-copy view of the records."""
    fields = dtype.names or ()
    if not (all(dtype[f] == np.dtype("<f4") for f in fields) and dtype.itemsize == 4 * len(fields)):
        return False
    at = {f: i for i, f in enumerate(fields)}
    return all([at[n] for n in g] == list(range(at[g[0]], at[g[0]] + len(g))) for g in _groups(rest_count) if g)


def _float_matrix(data: np.ndarray, rest_count: int) -> tuple[np.ndarray, dict[str, int]]:
    """A float32 [N, F] matrix holding the splat properties plus the column of each name.

    For the INRIA layout this is a zero-copy view of the records; other layouts (doubles,
    big-endian, mixed types, shuffled order) are converted once, column by column.
    """
    if _viewable(data.dtype, rest_count):
        fields = data.dtype.names or ()
        return data.view("<f4").reshape(len(data), len(fields)), {f: i for i, f in enumerate(fields)}
    names = [n for group in _groups(rest_count) for n in group]
    out = np.empty((len(data), len(names)), np.float32)
    for j, name in enumerate(names):
        out[:, j] = data[name]
    return out, {n: j for j, n in enumerate(names)}


def _columns(matrix: np.ndarray, column: dict[str, int], names: list[str]) -> np.ndarray:
    """[N, len(names)] adjacent columns (see _viewable) as a strided view."""
    return matrix[:, column[names[0]] : column[names[0]] + len(names)]


def _sh_degree_from_fields(fields: tuple[str, ...], path: Path) -> int:
    rest = sum(1 for f in fields if f.startswith("f_rest_"))
    for degree in range(4):
        if 3 * (sh_coeff_count(degree) - 1) == rest:
            if any(f"f_rest_{i}" not in fields for i in range(rest)):
                raise CorruptStream(f"the {rest} f_rest properties are not f_rest_0..f_rest_{rest - 1}", path=path)
            return degree
    raise CorruptStream(f"{rest} f_rest properties do not match any SH degree 0-3", path=path)


def _require_memory(records: np.dtype, n: int, degree: int, point_cloud: bool, path: Path) -> None:
    """The decode budget for ``n`` vertex rows of type ``records``: the rows themselves (and their
    float32 copy, unless viewed) on top of the reader's peak over the finished cloud (see
    SPLAT_PEAK_FACTOR)."""
    if point_cloud:
        budget.require_splats(n, 0, path=path, peak_factor=POINT_PEAK_FACTOR, extra=n * records.itemsize)
        return
    rest_count = sh_coeff_count(degree) - 1
    viewed = _viewable(records, rest_count)
    columns = len(records.names or ()) if viewed else sum(len(g) for g in _groups(rest_count))
    matrix = 0 if viewed else 4 * n * columns
    # plus a bool per matrix cell: the one-pass finiteness test
    extra = n * records.itemsize + matrix + n * columns
    budget.require_splats(n, degree, path=path, peak_factor=SPLAT_PEAK_FACTOR, extra=extra)


def read_ply(path: Source | str | Path | bytes) -> SplatCloud:
    """Read an INRIA PLY into an activated :class:`SplatCloud`.

    Splats with NaN or infinite values are dropped with a warning (and counted in
    ``metadata['dropped_nonfinite']``) instead of poisoning bounds and sorting.
    """
    source = source_for(path)
    path = source.label
    with source.open() as fh:
        header = read_ply_header(fh, path)
        vertex = header.element("vertex")
        if vertex is None:
            raise CorruptStream("no 'vertex' element: not a Gaussian splat PLY", path=path)
        if vertex.list_property:
            raise CorruptStream(
                f"vertex property '{vertex.list_property}' is a list: not a splat or point-cloud PLY", path=path
            )
        fields = vertex.names
        point_cloud, degree = vertex_kind(vertex, path)
        n = check_count(vertex.count, path=path, what="splats")
        if n == 0:
            raise EmptyMedia(f"the PLY holds zero {'points' if point_cloud else 'splats'}", path=path)
        _require_memory(vertex.dtype(header.byte_order), n, degree, point_cloud, path)
        data = read_element(fh, header, "vertex", path)
    if point_cloud:
        return _read_point_cloud(data, fields, path)
    matrix, column = _float_matrix(data, sh_coeff_count(degree) - 1)
    del data  # from here the records live on only as the matrix's base, if it is a view
    cloud, finite = _activate(matrix, column, sh_coeff_count(degree) - 1, path)
    del matrix  # free the records before a subset copies the cloud
    dropped = 0
    if finite is not None:
        dropped = n - int(np.count_nonzero(finite))
        cloud = cloud.subset(finite)
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, n)
    cloud.metadata.update({"dropped_nonfinite": dropped, "file_sh_degree": degree, "ply_properties": len(fields)})
    return cloud


def vertex_kind(vertex: PlyElement, path: Path | str) -> tuple[bool, int]:
    """(point cloud?, SH degree) of a vertex element; neither splats nor coloured points is
    :class:`CorruptStream`."""
    fields = vertex.names
    missing = [name for name in REQUIRED if name not in fields]
    point_cloud = bool(missing) and all(name in fields for name in POINT_CLOUD_REQUIRED)
    if missing and not point_cloud:
        raise CorruptStream(f"not a 3D Gaussian splat PLY: missing vertex properties {', '.join(missing)}", path=path)
    return point_cloud, 0 if point_cloud else _sh_degree_from_fields(fields, path)


def decode_splat_rows(data: np.ndarray, degree: int, path: Path | str) -> tuple[SplatCloud, int]:
    """Splat vertex rows -> (activated cloud, rows dropped as non-finite), as :func:`read_ply`
    decodes them. Each row is decoded on its own, so rows decoded in pieces
    (``codecs/progressive.py``) give the same arrays as the whole element; all rows non-finite
    is :class:`EmptyMedia`."""
    n = len(data)
    matrix, column = _float_matrix(data, sh_coeff_count(degree) - 1)
    cloud, finite = _activate(matrix, column, sh_coeff_count(degree) - 1, path)
    if finite is None:
        return cloud, 0
    return cloud.subset(finite), n - int(np.count_nonzero(finite))


def _activate(matrix: np.ndarray, column: dict[str, int], rest_count: int,
              path: Path) -> tuple[SplatCloud, np.ndarray | None]:  # fmt: skip
    """Raw PLY columns -> activated cloud, and the rows to keep (None: all are finite)."""
    n = len(matrix)
    means = np.array(_columns(matrix, column, ["x", "y", "z"]), np.float32)
    dc = _columns(matrix, column, ["f_dc_0", "f_dc_1", "f_dc_2"])
    raw_opacity = _columns(matrix, column, ["opacity"])[:, 0]
    log_scales = _columns(matrix, column, ["scale_0", "scale_1", "scale_2"])
    quats = np.array(_columns(matrix, column, ["rot_0", "rot_1", "rot_2", "rot_3"]), np.float32)
    rest = _columns(matrix, column, [f"f_rest_{i}" for i in range(3 * rest_count)]) if rest_count else None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scales = np.exp(log_scales, dtype=np.float32)
        opacities = (1.0 / (1.0 + np.exp(-raw_opacity))).astype(np.float32)
        # One vectorised pass over everything settles the common all-finite case; the per-row
        # mask is only built when something is off.
        if np.isfinite(matrix).all() and np.isfinite(scales).all():
            finite = None
        else:
            finite = np.isfinite(means).all(axis=1) & np.isfinite(scales).all(axis=1) & np.isfinite(quats).all(axis=1)
            finite &= np.isfinite(dc).all(axis=1) & np.isfinite(raw_opacity)
            if rest is not None:
                finite &= np.isfinite(rest).all(axis=1)
            if finite.all():  # only ignored properties (normals ...) were not finite
                finite = None
            elif not finite.any():  # the same words as common.make_cloud
                raise EmptyMedia(f"all {n:,} splats hold non-finite values (NaN or infinity)", path=path)
        # A zero quaternion carries no rotation: treat it as the identity instead of NaN.
        norms = np.sqrt(np.einsum("ij,ij->i", quats, quats))[:, None]
        zero = norms[:, 0] == 0
        quats /= np.where(zero[:, None], 1, norms)
        quats[zero] = (1, 0, 0, 0)
    sh = np.empty((n, rest_count + 1, 3), np.float32)
    sh[:, 0] = dc
    if rest is not None:
        # f_rest is channel-major: [R coeffs..., G coeffs..., B coeffs...].
        sh[:, 1:] = rest.reshape(n, 3, rest_count).transpose(0, 2, 1)
    return SplatCloud(means=means, scales=scales, quats=quats, opacities=opacities, sh=sh), finite


# Coloured point clouds --------------------------------------------------------------------


def _unit_colours(columns: list[np.ndarray]) -> np.ndarray:
    """Colour channels -> [N, len(columns)] in [0, 1].

    Integer channels are divided by their type's maximum (uchar / 255, ushort / 65535); float
    channels are taken as stored, unless their values (all of them together) reach beyond 2:
    then they are 0..255 floats, as a few exporters write, and are divided by 255.
    """
    out = np.empty((len(columns[0]), len(columns)), np.float32)
    peak = 0.0
    for column in columns:
        if column.dtype.kind == "f":
            finite = column[np.isfinite(column)]
            peak = max(peak, float(finite.max()) if finite.size else 0.0)
    float_scale = np.float32(1 / 255) if peak > 2.0 else np.float32(1)
    for j, column in enumerate(columns):
        if column.dtype.kind in "ui":
            out[:, j] = column.astype(np.float32) * np.float32(1 / np.iinfo(column.dtype).max)
        else:
            out[:, j] = column.astype(np.float32) * float_scale
    with np.errstate(invalid="ignore"):
        return np.clip(out, 0, 1, out=out)


def _read_point_cloud(data: np.ndarray, fields: tuple[str, ...], path: Path) -> SplatCloud:
    """``x y z red green blue [alpha]`` vertices -> small isotropic splats (see the module doc)."""
    n = len(data)
    if n == 0:
        raise EmptyMedia("the PLY holds zero points", path=path)
    try:
        means = np.empty((n, 3), np.float32)
        for j, axis in enumerate("xyz"):
            means[:, j] = data[axis]
        rgb = _unit_colours([np.asarray(data[c]) for c in ("red", "green", "blue")])
        alpha = _unit_colours([np.asarray(data["alpha"])])[:, 0] if "alpha" in fields else np.float32(1)
    except (ValueError, TypeError) as exc:
        raise CorruptStream(f"damaged point cloud PLY data ({exc})", path=path) from exc
    finite = np.isfinite(means).all(axis=1)
    spacing = estimate_point_spacing(means[finite]) if finite.any() else POINT_FALLBACK_SPACING
    sigma = np.float32(POINT_SCALE_FRACTION * spacing)
    scales = np.full((n, 3), sigma, np.float32)
    quats = np.zeros((n, 4), np.float32)
    quats[:, 0] = 1
    opacities = np.broadcast_to(np.float32(POINT_OPACITY) * alpha, (n,)).astype(np.float32)
    sh = colors_to_sh_dc(rgb)[:, None, :]
    # All points non-finite: make_cloud's EmptyMedia ("all N splats hold non-finite values").
    cloud = make_cloud(means, scales, quats, opacities, sh, path=path,
                       format_info={"point_cloud": True, "point_spacing": float(spacing)})  # fmt: skip
    dropped = cloud.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d points with NaN or infinite values", path, dropped, n)
    cloud.metadata.update({"point_cloud": True, "file_sh_degree": 0, "ply_properties": len(fields)})
    return cloud


def _part1by2(x: np.ndarray) -> np.ndarray:
    """Spread the low 21 bits of uint64 ``x`` to every third bit (Morton interleave)."""
    x = x & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):  # fmt: skip
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def estimate_point_spacing(points: np.ndarray, *, window: int = 8, samples: int = 1 << 16) -> float:
    """Median distance from a point to its nearest distinct neighbour, estimated without a KD-tree.

    The points are sorted along a 63-bit Morton (Z-order) curve; for up to ``samples`` evenly
    spread positions in that order, the nearest of the ``window`` points on either side stands
    in for the true nearest neighbour. Z-order keeps most true neighbours within a few places,
    so the median lands within ~20 % above the exact value (checked against a KD-tree on
    volumes, surfaces, lines, grids, clusters and far outliers); it works for surfaces as well
    as volumes, unlike a bounding-box-volume estimate. Cost: one argsort of N uint64 keys.
    Coincident points are skipped (the distance to a duplicate is not a spacing).
    """
    p = np.asarray(points, np.float32)
    n = len(p)
    if n < 2:
        return POINT_FALLBACK_SPACING
    lo = p.min(axis=0).astype(np.float64)
    extent = float((p.max(axis=0).astype(np.float64) - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        return POINT_FALLBACK_SPACING
    # Temporaries are dropped as soon as they are used: this runs on every point of the cloud.
    with np.errstate(over="ignore", invalid="ignore"):  # extents near the float32 limits: order only
        cells = (p - lo.astype(np.float32)) * np.float32((2**21 - 1) / extent)
        np.clip(cells, 0, 2**21 - 1, out=cells)
        q = np.nan_to_num(cells, copy=False, nan=0.0).astype(np.uint64)
        del cells
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << np.uint64(1)) | (_part1by2(q[:, 2]) << np.uint64(2))
    del q
    order = np.argsort(code)
    del code
    at = np.unique(np.linspace(0, n - 1, min(n, samples)).astype(np.int64))
    centre = p[order[at]].astype(np.float64)
    best = np.full(len(at), np.inf)
    for k in range(-window, window + 1):
        if k == 0:
            continue
        other = p[order[np.clip(at + k, 0, n - 1)]].astype(np.float64)
        other -= centre
        d = np.sqrt(np.einsum("ij,ij->i", other, other))
        np.minimum(best, np.where(d > 0, d, np.inf), out=best)
    best = best[np.isfinite(best)]
    if best.size == 0:
        return POINT_FALLBACK_SPACING
    return float(np.median(best))


def open_ply(source: Source) -> Media:
    cloud = read_ply(source)
    return static_splat_media(cloud, source=source, fmt="ply", reader=READER_NAME)


def ply_dtype(sh_degree: int) -> np.dtype:
    rest = 3 * (sh_coeff_count(sh_degree) - 1)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return np.dtype([(n, "<f4") for n in names])


def write_ply(cloud: SplatCloud, path: str | Path) -> None:
    """Write the canonical INRIA layout (binary little-endian, float32, zero normals).

    Written to a temporary file first and renamed, so a failure never leaves a partial PLY.
    """
    path = Path(path)
    n, degree = cloud.count, cloud.sh_degree
    rest = sh_coeff_count(degree) - 1
    flat = np.zeros((n, ply_dtype(degree).itemsize // 4), np.float32)
    flat[:, 0:3] = cloud.means
    flat[:, 6:9] = cloud.sh[:, 0]
    if rest:
        flat[:, 9 : 9 + 3 * rest] = cloud.sh[:, 1:].transpose(0, 2, 1).reshape(n, 3 * rest)
    o = 9 + 3 * rest
    with np.errstate(divide="ignore"):
        eps = 1e-7
        op = np.clip(cloud.opacities.astype(np.float64), eps, 1 - eps)
        flat[:, o] = np.log(op / (1 - op))
        flat[:, o + 1 : o + 4] = np.log(np.maximum(cloud.scales, 1e-30))
    flat[:, o + 4 : o + 8] = cloud.quats
    records = flat.view(ply_dtype(degree)).reshape(n)
    element = plyfile.PlyElement.describe(records, "vertex")
    with atomic_output(path) as fh:
        plyfile.PlyData([element], byte_order="<").write(fh)
