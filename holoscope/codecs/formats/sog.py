"""PlayCanvas SOG, versions 1 and 2: reader and (v2) writer (splat-formats.md §3.4).

A SOG scene is ``meta.json`` plus 8-bit RGBA lossless WebP images, either bundled in a ZIP
(``.sog``, members at the root or under one folder) or unbundled in a folder. Splat i lives at
pixel (i % W, i // W) of every per-splat image.

v2 (``"version": 2``):

- means: ``means_l`` / ``means_u`` hold the low / high byte of a 16-bit value per axis (rgb);
  v = lerp(mins, maxs, u / 65535) is in log space, x = sign(v)·(e^|v| − 1) inverts
  sign(x)·ln(|x| + 1).
- scales: rgb index a 256-entry codebook of log σ; sh0: rgb index a 256-entry codebook of f_dc,
  alpha is sigmoid(opacity)·255.
- quats: "smallest three": alpha = 252 + index of the largest component (w, x, y, z order), rgb
  the other three in ascending index order, each (p / 255·2 − 1) / √2; the largest is
  sqrt(1 − Σ²), positive.
- shN: label = r + 256·g of ``shN_labels``; palette entry L, coefficient j is pixel
  (L % 64·coeffs + j, L // 64) of ``shN_centroids`` (64·coeffs pixels wide, coeffs = 3/8/15 for
  1/2/3 bands), whose rgb index the shN codebook for R, G, B.

v1 (no ``version``): the count is ``means.shape[0]``; scales and sh0 are per-channel 8-bit lerps
between ``mins`` / ``maxs`` (log σ; f_dc, and the sh0 alpha lerps to the opacity *logit*); shN
pixels are lerps between scalar mins / maxs and the band count follows from the centroid width
(192 / 512 / 960 → 1 / 2 / 3). means and quats decode as in v2.

Why no new dependency for WebP: PyAV (already required for video) ships FFmpeg's native ``webp``
decoder, which decodes lossless VP8L into an ``argb`` frame, and FFmpeg's ``libwebp`` encoder
with ``lossless=1`` (VP8L from the BGRA pixels, no YUV conversion). Pixels are read straight
from the frame plane (honouring its line size), so no colour conversion touches them. The tests
compare every decoded wave image with Pillow's libwebp decoder when Pillow happens to be
importable; the writer decodes every image it encodes and refuses to write on any difference.
One libwebp quirk shows through FFmpeg: without ``config.exact`` (which FFmpeg does not expose)
the RGB of pixels with alpha 0 is replaced by 0. Only sh0 carries a data alpha that may be 0
(opacity below 0.5/255); the writer stores colour index 0 for those invisible splats itself, so
what it encodes is exactly what decodes.

Safety: every member is read with a size limit derived from the splat count (declared sizes are
checked before reading, actual sizes while reading, so a ZIP bomb stops at the limit). Before any
pixel is decoded, every image's VP8L header is read and checked against meta.json (per-splat
images hold the count in at most :data:`SPARE_ROWS` rows more than it needs, the shN centroid
image is exactly as wide as its bands need and no taller than its palette), and the decode
budget (:mod:`holoscope.core.budget`) is asked for every decoded picture plus the cloud. Members
of an unbundled folder are opened as regular files only, without blocking, and may not be links
that lead out of the folder. Damaged input of any kind raises a one-line holoscope error
(:class:`CorruptStream` for bad contents).
"""

from __future__ import annotations

import json
import logging
import lzma
import math
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from holoscope.codecs.formats.common import (
    MAX_SPLATS,
    atomic_output,
    check_count,
    make_cloud,
    require_nonempty,
    sigmoid,
    source_size,
    static_splat_media,
)
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, InvalidArgument, OutputError, SourceNotFound
from holoscope.core.files import os_error
from holoscope.core.sources import FileSource, Source, source_for
from holoscope.core.frames import SplatCloud, sh_coeff_count
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.sog"
FORMAT_NAME = "sog"

META_NAME = "meta.json"
# A v2 meta.json is ~10 KB (three 256-entry codebooks). JSON can cost ~20 times its size in
# Python objects (`[[],[],...]`), so 1 MB keeps json.loads to tens of megabytes.
MAX_META_BYTES = 1 << 20
MAX_WEBP_SIDE = 16383  # the WebP format limit is 16384; the SOG writer keeps to 16383
MAX_PALETTE = 1 << 16  # shN labels are 16-bit
# Rows a per-splat image may hold beyond ceil(count / width): splat-transform and holoscope pad
# the height to a multiple of 4 (at most 3 spare rows), PlayCanvas' sogs writes exact squares.
SPARE_ROWS = 4
# Peak memory of a decode, in units of the finished cloud, on top of the decoded pictures and
# the compressed members: measured (peak RSS) 2.24 for 1M splats without SH (the float64 means
# temporaries dominate), 2.04 for 1M splats with SH degree 3.
PEAK_FACTOR = 2.5
# A SOG zip lists about ten members; zipfile builds a ZipInfo (~600 bytes) for every entry of the
# central directory before anything can be checked, so a huge directory is refused first.
MAX_ZIP_DIRECTORY = 1 << 20
SH_COEFFS = {1: 3, 2: 8, 3: 15}  # non-DC coefficients per channel for 1/2/3 bands
V1_BANDS_BY_WIDTH = {64 * c: b for b, c in SH_COEFFS.items()}  # 192/512/960 -> 1/2/3
_SQRT1_2 = 1.0 / math.sqrt(2.0)
# Positions of the three stored components for each "largest" index (w, x, y, z order).
_QUAT_SLOTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], np.intp)

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
               NotImplementedError, zlib.error, lzma.LZMAError, struct.error, OverflowError, KeyError,
               IndexError, UnicodeDecodeError)  # fmt: skip


# WebP through PyAV ---------------------------------------------------------------------------


def webp_dimensions(data: bytes, *, name: str = "image", path: Path | str | None = None) -> tuple[int, int]:
    """(width, height) from the RIFF/VP8L header, without decoding a pixel.

    Lossy (VP8) and animated WebP are rejected: SOG images must be lossless.
    """
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CorruptStream(f"{name} is not a WebP image (no RIFF/WEBP header)", path=path)
    pos, end = 12, len(data)
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        payload = data[pos + 8 : pos + 8 + size]
        if fourcc == b"VP8L":
            if len(payload) < 5 or payload[0] != 0x2F:
                raise CorruptStream(f"{name}: damaged VP8L header", path=path)
            bits = int.from_bytes(payload[1:5], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if fourcc == b"VP8 ":
            raise CorruptStream(f"{name} is a lossy WebP; SOG images must be lossless", path=path)
        if fourcc in (b"ANIM", b"ANMF"):
            raise CorruptStream(f"{name} is an animated WebP; SOG images are single frames", path=path)
        pos += 8 + size + (size & 1)
    raise CorruptStream(f"{name}: no VP8L image data in the WebP", path=path)


def decode_webp_rgba(data: bytes, *, name: str = "image", path: Path | str | None = None,
                     max_pixels: int | None = None) -> np.ndarray:  # fmt: skip
    """Decode a lossless WebP into a uint8 [H, W, 4] RGBA array, bit-exactly.

    The dimensions are checked against ``max_pixels`` before decoding (a tiny file may declare
    16384 x 16384 pixels). FFmpeg's decoder returns VP8L as ``argb`` (bytes A, R, G, B); the
    plane is read directly, row by row through its line size.
    """
    import av

    width, height = webp_dimensions(data, name=name, path=path)
    if max_pixels is not None and width * height > max_pixels:
        raise CorruptStream(
            f"{name} declares {width}x{height} pixels, more than the {max_pixels:,} the splat count allows",
            path=path,
        )
    try:
        ctx = av.codec.CodecContext.create("webp", "r")
        frames = list(ctx.decode(av.Packet(data)))
        if not frames:
            frames = list(ctx.decode(None))
    except (av.FFmpegError, ValueError, EOFError, OSError, MemoryError) as exc:
        raise CorruptStream(f"{name}: damaged WebP ({exc})", path=path) from exc
    if not frames:
        raise CorruptStream(f"{name}: the WebP holds no picture", path=path)
    frame = frames[0]
    if frame.format.name != "argb":
        raise CorruptStream(f"{name} decodes to {frame.format.name}, not lossless RGBA", path=path)
    if (frame.width, frame.height) != (width, height):
        raise CorruptStream(f"{name}: header says {width}x{height}, picture is {frame.width}x{frame.height}", path=path)
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)
    argb = rows[:, : width * 4].reshape(height, width, 4)
    return np.ascontiguousarray(argb[..., [1, 2, 3, 0]])


def encode_webp_lossless(rgba: np.ndarray, *, level: int = 4) -> bytes:
    """Encode a uint8 [H, W, 4] RGBA array as a lossless (VP8L) WebP through FFmpeg's libwebp.

    ``level`` is libwebp's method (0 fast .. 6 small). Pixels with alpha 0 come back with RGB 0
    (libwebp without ``exact``); callers that care must store such pixels that way.
    """
    import av

    rgba = np.asarray(rgba, np.uint8)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise InvalidArgument(f"expected an [H, W, 4] uint8 image, got {rgba.shape}")
    height, width = rgba.shape[:2]
    if not (1 <= width <= MAX_WEBP_SIDE + 1 and 1 <= height <= MAX_WEBP_SIDE + 1):
        raise InvalidArgument(f"{width}x{height} is beyond the WebP size limit (16384 x 16384)")
    try:
        ctx = av.codec.CodecContext.create("libwebp", "w")
    except (av.FFmpegError, ValueError) as exc:  # pragma: no cover - FFmpeg built without libwebp
        raise OutputError(f"this FFmpeg has no libwebp encoder ({exc})") from exc
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "bgra"
    ctx.options = {"lossless": "1", "compression_level": str(int(level)), "quality": "75"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]), format="bgra")
    packets = list(ctx.encode(frame)) + list(ctx.encode(None))
    data = b"".join(bytes(p) for p in packets)
    if data[8:16] != b"WEBPVP8L":
        raise OutputError("libwebp did not produce a lossless (VP8L) WebP")
    return data


# Reading -------------------------------------------------------------------------------------


def _member_name(name: Any, where: str, path: Path | str | None) -> str:
    """A file name from meta.json: relative, no '..', no backslashes (no escaping the folder)."""
    if not isinstance(name, str) or not name or len(name) > 1024 or "\x00" in name or "\\" in name:
        raise CorruptStream(f"meta.json {where}: bad file name {name!r}", path=path)
    pure = PurePosixPath(name)
    if not pure.parts or pure.is_absolute() or ".." in pure.parts or ":" in pure.parts[0]:
        raise CorruptStream(f"meta.json {where}: file name {name!r} points outside the SOG", path=path)
    return str(pure)


def _check_zip_directory(fh: Any, path: Path) -> None:
    """Refuse a central directory far larger than a SOG's before zipfile parses it."""
    try:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - (22 + 0xFFFF)))  # the end record and its comment
        tail = fh.read()
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or pos + 22 > len(tail):
            return  # not a zip (or a damaged one): zipfile says so
        (directory,) = struct.unpack_from("<I", tail, pos + 12)
        locator = pos - 20
        if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":  # zip64: zipfile uses its record
            (record_at,) = struct.unpack_from("<Q", tail, locator + 8)
            fh.seek(min(record_at, size))
            record = fh.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                directory = max(directory, struct.unpack_from("<Q", record, 40)[0])
    except OSError as exc:
        raise os_error(exc, path) from exc
    finally:
        fh.seek(0)
    if directory > MAX_ZIP_DIRECTORY:
        raise CorruptStream(f"the zip's directory takes {directory:,} bytes; a SOG lists about ten members", path=path)


def _require_member(name: str, size: int, held: int, path: Path) -> None:
    # Members are read whole before the decode is budgeted (their headers give the sizes).
    budget.require(held + size, what=f"the SOG member {name} ({size:,} bytes, {held:,} already read)", path=path)


class _ZipSource:
    """Members of a .sog ZIP, at the root or under one top-level folder."""

    def __init__(self, path: Path | str, fh: Any) -> None:
        self.path = path
        self._fh = fh  # zipfile leaves a file object it was given open
        try:
            self.total_bytes = source_size(fh, path)
            _check_zip_directory(fh, path)
            self.zip = zipfile.ZipFile(fh)
            infos = self.zip.infolist()
        except _ZIP_ERRORS as exc:
            fh.close()
            raise CorruptStream(f"not a readable SOG zip ({exc})", path=path) from exc
        except BaseException:
            fh.close()
            raise
        names = {i.filename: i for i in infos if not i.is_dir()}
        self.prefix = ""
        if META_NAME not in names:
            nested = [n for n in names if n.endswith("/" + META_NAME) and n.count("/") == 1]
            if len(nested) != 1:
                self.close()
                raise CorruptStream(f"the zip holds no {META_NAME}: not a SOG", path=path)
            self.prefix = nested[0][: -len(META_NAME)]
        self.infos = names

    def read(self, name: str, limit: int, held: int = 0) -> bytes:
        """Member ``name``, at most ``limit`` bytes; ``held``: bytes of members read before it."""
        info = self.infos.get(self.prefix + name)
        if info is None:
            raise CorruptStream(f"the zip has no member {name!r} (named in meta.json)", path=self.path)
        if info.file_size > limit:
            raise CorruptStream(
                f"member {name!r} declares {info.file_size:,} bytes, more than the {limit:,} its role allows",
                path=self.path,
            )
        _require_member(name, info.file_size, held, self.path)
        try:
            with self.zip.open(info) as fh:
                data = fh.read(limit + 1)
        except _ZIP_ERRORS as exc:
            raise CorruptStream(f"member {name!r} is damaged ({exc})", path=self.path) from exc
        if len(data) > limit:
            raise CorruptStream(f"member {name!r} inflates beyond {limit:,} bytes", path=self.path)
        return data

    def close(self) -> None:
        self.zip.close()
        self._fh.close()


class _UnbundledSog:
    """An unbundled SOG: meta.json and the images beside it, local or remote. The images are
    reached through ``meta.relative(name)`` (a URL resolves as one); meta.json's names are
    relative, without '..' (:func:`_member_name`), and locally a link may not leave the folder."""

    def __init__(self, meta: Source) -> None:
        self.meta = meta
        local = meta.local_path
        self.folder: Path | None = local.parent if local is not None else None
        self.path: Path | str = local if local is not None else meta.label
        self.total_bytes = 0

    def read(self, name: str, limit: int, held: int = 0) -> bytes:
        """File ``name``, at most ``limit`` bytes; ``held``: bytes of members read before it."""
        where = self.folder if self.folder is not None else self.path
        try:
            member = self.meta if name == META_NAME else self.meta.relative(name)
        except CorruptStream as exc:
            raise CorruptStream(f"meta.json names {name!r}, which is not a file beside it ({exc})", path=where) from exc
        if member.local_path is None:
            data = self._read_remote(member, name, limit, held)
        else:
            data = self._read_local(member, name, limit, held)
        self.total_bytes += len(data)
        return data

    def _read_local(self, member: Source, name: str, limit: int, held: int) -> bytes:
        file = member.local_path
        assert file is not None
        if name != META_NAME and self.folder is not None:
            # meta.json's names cannot leave the folder ('..' is refused); a link must not either.
            root = os.path.realpath(self.folder)
            if os.path.commonpath([root, os.path.realpath(file)]) != root:
                raise CorruptStream(f"{name!r} is a link to a file outside the SOG folder", path=file)
        try:
            fh = FileSource(file).open()  # a FIFO or device is refused, never waited on
        except SourceNotFound as exc:
            raise CorruptStream(f"missing file {name!r} (named in meta.json)", path=self.folder) from exc
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise CorruptStream(f"{name!r} holds {size:,} bytes, more than the {limit:,} its role allows",
                                    path=file)  # fmt: skip
            _require_member(name, size, held, self.path)
            try:
                data = fh.read(limit + 1)
            except OSError as exc:
                raise os_error(exc, file) from exc
        if len(data) > limit:
            raise CorruptStream(f"{name!r} grew beyond {limit:,} bytes while reading", path=file)
        return data

    def _read_remote(self, member: Source, name: str, limit: int, held: int) -> bytes:
        size = member.size  # a remote source states it (Content-Length) before sending the body
        if size is not None:
            if size > limit:
                raise CorruptStream(f"{name!r} holds {size:,} bytes, more than the {limit:,} its role allows",
                                    path=member.label)  # fmt: skip
            _require_member(name, size, held, self.path)
        try:
            data = member.read_limited(limit, what=repr(name))
        except SourceNotFound as exc:
            raise CorruptStream(f"missing file {name!r} (named in meta.json)", path=self.path) from exc
        if size is None:
            _require_member(name, len(data), held, self.path)
        return data

    def close(self) -> None:
        pass


def _open_source(source: Source) -> _ZipSource | _UnbundledSog:
    path = source.label
    if source.is_folder:
        meta = source.relative(META_NAME)
        if not meta.exists():
            raise CorruptStream(f"the folder holds no {META_NAME}: not an unbundled SOG", path=path)
        return _UnbundledSog(meta)
    fh = source.open()
    try:
        head = fh.read(4)
        fh.seek(0)
    except OSError as exc:
        fh.close()
        raise os_error(exc, path) from exc
    if head.startswith(b"PK") or source.name.lower().endswith(".sog"):
        return _ZipSource(path, fh)
    fh.close()
    if type(source).relative is Source.relative:  # bytes in memory: no images beside them
        raise CorruptStream(f"a {META_NAME} on its own has no images: open its folder or the .sog zip", path=path)
    # a meta.json (any name) beside its images
    return _UnbundledSog(source)


class _Meta:
    """Typed access to meta.json: every failure names the key and raises CorruptStream."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = path

    def fail(self, message: str) -> CorruptStream:
        return CorruptStream(f"meta.json {message}", path=self.path)

    def obj(self, parent: dict, key: str, *, required: bool = True) -> dict | None:
        value = parent.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"needs an object {key!r}" if value is None else f"{key!r} must be an object")
        return value

    def integer(self, parent: dict, key: str, where: str, lo: int, hi: int) -> int:
        value = parent.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(f"{where}{key} must be an integer, got {value!r:.40}")
        if not lo <= value <= hi:
            raise self.fail(f"{where}{key} = {value} is outside {lo}..{hi:,}")
        return value

    def number(self, parent: dict, key: str, where: str) -> float:
        value = parent.get(key)
        try:
            number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer beyond float range
            number = math.nan
        if not math.isfinite(number):
            raise self.fail(f"{where}{key} must be a finite number, got {value!r:.40}")
        return number

    def numbers(self, parent: dict, key: str, where: str, *, size: int | None = None,
                max_size: int | None = None) -> np.ndarray:  # fmt: skip
        value = parent.get(key)
        if not isinstance(value, list):
            raise self.fail(f"{where}{key} must be a list of numbers")
        if size is not None and len(value) != size:
            raise self.fail(f"{where}{key} must hold {size} numbers, has {len(value)}")
        if max_size is not None and not 1 <= len(value) <= max_size:
            raise self.fail(f"{where}{key} must hold 1..{max_size} numbers, has {len(value)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise self.fail(f"{where}{key} must hold numbers only")
        try:
            out = np.array(value, np.float64)
        except OverflowError as exc:  # an integer beyond float range
            raise self.fail(f"{where}{key} holds a number out of range") from exc
        if not np.isfinite(out).all():
            raise self.fail(f"{where}{key} holds a non-finite number")
        return out

    def files(self, parent: dict, where: str, count: int) -> list[str]:
        value = parent.get("files")
        if not isinstance(value, list) or len(value) < count:
            raise self.fail(f"{where}files must list {count} file name{'s' if count > 1 else ''}")
        return [_member_name(v, f"{where}files", self.path) for v in value[:count]]


def _parse_meta(data: bytes, path: Path | str | None) -> dict:
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptStream(f"meta.json is not valid JSON ({str(exc)[:120]})", path=path) from exc
    if not isinstance(meta, dict):
        raise CorruptStream("meta.json must hold a JSON object", path=path)
    return meta


def _member_limit(max_pixels: int) -> int:
    # A VP8L stream of P pixels is about 4 bytes per pixel at worst; 8 leaves room for any encoder.
    return 8 * max_pixels + 65536


class _Images:
    """The images named in meta.json: each read and checked from its header first (:meth:`add`,
    :meth:`add_palette`), then the whole decode budgeted (:meth:`require`), then decoded."""

    def __init__(self, source: _ZipSource | _UnbundledSog, count: int) -> None:
        self.source = source
        self.count = count
        self.sizes: dict[str, list[int]] = {}
        self._data: dict[str, bytes] = {}
        self._pixels: list[int] = []  # one entry per decode to come (a name may serve twice)

    def _read(self, name: str, max_pixels: int) -> tuple[bytes, int, int]:
        data = self._data.get(name)
        if data is None:
            held = sum(len(d) for d in self._data.values())
            data = self._data[name] = self.source.read(name, _member_limit(max_pixels), held)
        width, height = webp_dimensions(data, name=name, path=self.source.path)
        self.sizes.setdefault(name, [width, height])
        self._pixels.append(width * height)
        return data, width, height

    def add(self, name: str) -> None:
        """A per-splat image: it must hold ``count`` pixels in at most SPARE_ROWS spare rows."""
        _, width, height = self._read(name, self.count + (SPARE_ROWS + 1) * (MAX_WEBP_SIDE + 1))
        if width * height < self.count:
            raise CorruptStream(
                f"{name} holds {width}x{height} = {width * height:,} pixels, fewer than the "
                f"{self.count:,} splats meta.json declares",
                path=self.source.path,
            )
        rows = -(-self.count // width)
        if height > rows + SPARE_ROWS:
            raise CorruptStream(f"{name} is {width}x{height}, but {self.count:,} splats fill {rows} rows of "
                                f"{width}: not an image of this scene", path=self.source.path)  # fmt: skip

    def add_palette(self, name: str, bands_by_width: dict[int, int], max_rows: int, why: str) -> int:
        """The shN centroid image: its width says the SH bands (returned), at most ``max_rows`` rows."""
        _, width, height = self._read(name, max(bands_by_width) * max_rows)
        bands = bands_by_width.get(width)
        if bands is None:
            raise CorruptStream(f"{name} is {width} pixels wide; {why}", path=self.source.path)
        if height > max_rows:
            raise CorruptStream(f"{name} has {height} rows; the shN palette fills at most {max_rows}",
                                path=self.source.path)  # fmt: skip
        return bands

    def require(self, sh_degree: int) -> None:
        """Ask the decode budget for everything at once, before any pixel is decoded: every
        decoded picture (RGBA), FFmpeg's frame beside the largest one while it is reordered,
        the compressed members and the cloud with the decode's temporaries."""
        pictures = 4 * (sum(self._pixels) + max(self._pixels, default=0))
        compressed = sum(len(d) for d in self._data.values())
        budget.require_splats(self.count, sh_degree, path=self.source.path, peak_factor=PEAK_FACTOR,
                              extra=pictures + compressed)  # fmt: skip

    def decode(self, name: str) -> np.ndarray:
        """A whole image, [H, W, 4] uint8 (its header was checked by :meth:`add` or :meth:`add_palette`)."""
        data = self._data[name]
        width, height = self.sizes[name]
        return decode_webp_rgba(data, name=name, path=self.source.path, max_pixels=width * height)

    def per_splat(self, name: str) -> np.ndarray:
        """The first ``count`` pixels of a per-splat image, [count, 4] uint8."""
        return self.decode(name).reshape(-1, 4)[: self.count]


def _decode_means(lo: np.ndarray, hi: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    u = lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]
    span = maxs - mins
    with np.errstate(over="ignore", invalid="ignore"):
        span = np.where(span == 0, 1.0, span)  # the reference reader's `(maxs - mins) || 1`
        v = mins + span * (u / 65535.0)
        return (np.sign(v) * np.expm1(np.abs(v))).astype(np.float32)


def _decode_quats(q: np.ndarray, path: Path | str | None) -> np.ndarray:
    """Smallest-three quaternions (alpha = 252 + largest index, w x y z order) -> [N, 4]."""
    n = len(q)
    tag = q[:, 3].astype(np.intp) - 252
    valid = (tag >= 0) & (tag <= 3)
    bad = int(n - np.count_nonzero(valid))
    if bad:
        log.warning("%s: %d quaternions carry an invalid tag; using the identity", path, bad)
    tag = np.where(valid, tag, 0)
    small = (q[:, :3].astype(np.float32) * np.float32(2.0 / 255.0) - 1.0) * np.float32(_SQRT1_2)
    out = np.zeros((n, 4), np.float32)
    rows = np.arange(n)[:, None]
    out[rows, _QUAT_SLOTS[tag]] = small
    out[rows[:, 0], tag] = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", small, small)))
    if bad:
        out[~valid] = (1, 0, 0, 0)
    return out


def _exp_scales(log_scales: np.ndarray) -> np.ndarray:
    # A log scale below -80 (absurd, but a damaged codebook may say so) would underflow float32
    # to a zero scale; clamp it to a vanishing but positive one. Overflow gives inf, dropped later.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(np.maximum(log_scales, np.float32(-80.0)))


def _lookup(codebook: np.ndarray, indices: np.ndarray, what: str, path: Path | str | None) -> np.ndarray:
    table = codebook.astype(np.float32)
    if len(table) < 256 and indices.size and int(indices.max()) >= len(table):
        raise CorruptStream(f"{what} indices reach {int(indices.max())} but the codebook has {len(table)} entries",
                            path=path)  # fmt: skip
    return table[indices]


def _gather_shn(centroids: np.ndarray, labels: np.ndarray, palette: int, coeffs: int, values: np.ndarray,
                path: Path | str | None) -> np.ndarray:  # fmt: skip
    """[N, coeffs, 3] SH rest from the palette image (byte values mapped through ``values``)."""
    rows = centroids.shape[0]
    entries = centroids[:, : 64 * coeffs, :3].reshape(rows * 64, coeffs, 3)
    palette = min(palette, rows * 64)
    table = np.zeros((palette + 1, coeffs, 3), np.float32)  # last row: out-of-range labels -> 0
    table[:palette] = values[entries[:palette]]
    bad = labels >= palette
    if bad.any():
        log.warning("%s: %d shN labels point past the %d-entry palette; their SH are zero",
                    path, int(bad.sum()), palette)  # fmt: skip
        labels = np.where(bad, palette, labels)
    return table[labels]


def _read_v2(meta: dict, images: _Images, m: _Meta) -> tuple[np.ndarray, ...]:
    means = m.obj(meta, "means")
    mins = m.numbers(means, "mins", "means.", size=3)
    maxs = m.numbers(means, "maxs", "means.", size=3)
    mean_files = m.files(means, "means.", 2)
    scales_obj, quats_obj, sh0_obj = m.obj(meta, "scales"), m.obj(meta, "quats"), m.obj(meta, "sh0")
    scale_cb = m.numbers(scales_obj, "codebook", "scales.", max_size=256)
    sh0_cb = m.numbers(sh0_obj, "codebook", "sh0.", max_size=256)
    scale_file = m.files(scales_obj, "scales.", 1)[0]
    quat_file = m.files(quats_obj, "quats.", 1)[0]
    sh0_file = m.files(sh0_obj, "sh0.", 1)[0]
    shn_obj = m.obj(meta, "shN", required=False)
    if shn_obj is not None:
        bands = m.integer(shn_obj, "bands", "shN.", 1, 3)
        palette = m.integer(shn_obj, "count", "shN.", 1, MAX_PALETTE)
        shn_cb = m.numbers(shn_obj, "codebook", "shN.", max_size=256)
        shn_files = m.files(shn_obj, "shN.", 2)
    for name in (*mean_files, quat_file, scale_file, sh0_file):
        images.add(name)
    if shn_obj is not None:
        coeffs = SH_COEFFS[bands]
        images.add_palette(shn_files[0], {64 * coeffs: bands}, math.ceil(palette / 64),
                           f"{bands} SH bands need {64 * coeffs}")  # fmt: skip
        images.add(shn_files[1])
    images.require(bands if shn_obj is not None else 0)

    positions = _decode_means(images.per_splat(mean_files[0]), images.per_splat(mean_files[1]), mins, maxs)
    quats = _decode_quats(images.per_splat(quat_file), images.source.path)
    s = images.per_splat(scale_file)
    scales = _exp_scales(_lookup(scale_cb, s[:, :3], "scales", images.source.path))
    c = images.per_splat(sh0_file)
    dc = _lookup(sh0_cb, c[:, :3], "sh0", images.source.path)
    opacities = c[:, 3].astype(np.float32) / np.float32(255.0)
    rest, codebooks = None, {"scales": len(scale_cb), "sh0": len(sh0_cb), "shN": 0}
    if shn_obj is not None:
        centroids = images.decode(shn_files[0])
        labels = images.per_splat(shn_files[1])
        label = labels[:, 0].astype(np.intp) | (labels[:, 1].astype(np.intp) << 8)
        used = centroids[: math.ceil(palette / 64), : 64 * coeffs, :3]
        if len(shn_cb) < 256 and used.size and int(used.max()) >= len(shn_cb):
            raise CorruptStream(f"shN indices reach {int(used.max())} but the codebook has {len(shn_cb)} entries",
                                path=images.source.path)  # fmt: skip
        values = np.zeros(256, np.float32)
        values[: len(shn_cb)] = shn_cb
        rest = _gather_shn(centroids, label, palette, coeffs, values, images.source.path)
        codebooks["shN"] = min(palette, centroids.shape[0] * 64)
    return positions, scales, quats, opacities, dc, rest, codebooks


def _lerp_bytes(pixels: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return (mins + (maxs - mins) * (pixels.astype(np.float64) / 255.0)).astype(np.float32)


def _read_v1(meta: dict, images: _Images, m: _Meta) -> tuple[np.ndarray, ...]:
    means = m.obj(meta, "means")
    mins = m.numbers(means, "mins", "means.", size=3)
    maxs = m.numbers(means, "maxs", "means.", size=3)
    mean_files = m.files(means, "means.", 2)
    scales_obj, quats_obj, sh0_obj = m.obj(meta, "scales"), m.obj(meta, "quats"), m.obj(meta, "sh0")
    s_mins, s_maxs = m.numbers(scales_obj, "mins", "scales.", size=3), m.numbers(scales_obj, "maxs", "scales.", size=3)
    c_mins, c_maxs = m.numbers(sh0_obj, "mins", "sh0.", size=4), m.numbers(sh0_obj, "maxs", "sh0.", size=4)
    encoding = quats_obj.get("encoding", "quaternion_packed")
    if encoding != "quaternion_packed":
        raise m.fail(f"quats.encoding {encoding!r:.40} is not supported (only 'quaternion_packed')")
    scale_file = m.files(scales_obj, "scales.", 1)[0]
    quat_file = m.files(quats_obj, "quats.", 1)[0]
    sh0_file = m.files(sh0_obj, "sh0.", 1)[0]
    shn_obj = m.obj(meta, "shN", required=False)
    if shn_obj is not None:
        shn_min, shn_max = m.number(shn_obj, "mins", "shN."), m.number(shn_obj, "maxs", "shN.")
        shn_files = m.files(shn_obj, "shN.", 2)
    for name in (*mean_files, quat_file, scale_file, sh0_file):
        images.add(name)
    bands = 0
    if shn_obj is not None:  # the band count follows from the palette's width
        bands = images.add_palette(shn_files[0], V1_BANDS_BY_WIDTH, MAX_PALETTE // 64,
                                   "v1 SH palettes are 192, 512 or 960 wide")  # fmt: skip
        images.add(shn_files[1])
    images.require(bands)

    positions = _decode_means(images.per_splat(mean_files[0]), images.per_splat(mean_files[1]), mins, maxs)
    quats = _decode_quats(images.per_splat(quat_file), images.source.path)
    scales = _exp_scales(_lerp_bytes(images.per_splat(scale_file)[:, :3], s_mins, s_maxs))
    c = _lerp_bytes(images.per_splat(sh0_file), c_mins, c_maxs)
    dc, opacities = c[:, :3], sigmoid(c[:, 3])
    rest, codebooks = None, {"scales": 0, "sh0": 0, "shN": 0}
    if shn_obj is not None:
        centroids = images.decode(shn_files[0])
        coeffs = SH_COEFFS[bands]
        labels = images.per_splat(shn_files[1])
        label = labels[:, 0].astype(np.intp) | (labels[:, 1].astype(np.intp) << 8)
        values = _lerp_bytes(np.arange(256), np.float64(shn_min), np.float64(shn_max))
        palette = centroids.shape[0] * 64
        rest = _gather_shn(centroids, label, palette, coeffs, values, images.source.path)
        codebooks["shN"] = palette
    return positions, scales, quats, opacities, dc, rest, codebooks


def _read(given: Source) -> tuple[SplatCloud, int]:
    path = given.label
    source = _open_source(given)
    try:
        meta_bytes = source.read(META_NAME, MAX_META_BYTES)
        meta = _parse_meta(meta_bytes, source.path)
        m = _Meta(source.path)
        version = meta.get("version")
        if version is None or (version == 1 and not isinstance(version, bool)):
            version = 1
            means = m.obj(meta, "means")
            shape = means.get("shape")
            if not isinstance(shape, list) or not shape:
                raise m.fail("v1 needs means.shape [count, 3]")
            count = m.integer({"shape[0]": shape[0]}, "shape[0]", "means.", 0, MAX_SPLATS)
        elif version == 2 and not isinstance(version, bool):
            version = 2
            count = m.integer(meta, "count", "", 0, MAX_SPLATS)
        else:
            raise m.fail(f"version {version!r:.40} is not supported (SOG 1 or 2)")
        check_count(count, path=source.path)
        if count > (MAX_WEBP_SIDE + 1) ** 2:
            raise CorruptStream(f"{count:,} splats do not fit in a WebP image", path=source.path)
        require_nonempty(count, source.path)
        images = _Images(source, count)
        reader = _read_v2 if version == 2 else _read_v1
        positions, scales, quats, opacities, dc, rest, codebooks = reader(meta, images, m)
    finally:
        source.close()
    n = count
    degree = 0 if rest is None else {3: 1, 8: 2, 15: 3}[rest.shape[1]]
    sh = np.empty((n, sh_coeff_count(degree), 3), np.float32)
    sh[:, 0] = dc
    if rest is not None:
        sh[:, 1:] = rest
    first = next(iter(images.sizes.values()))
    info = {
        "sog_version": version,
        "codebook_sizes": codebooks,
        "sh_bands": degree,
        "image_size": first,
    }
    cloud = make_cloud(positions, scales, quats, opacities, sh, path=source.path, format_info=info)
    if cloud.metadata["dropped_nonfinite"]:
        log.warning("%s: dropped %d of %d splats with non-finite values", path, cloud.metadata["dropped_nonfinite"], n)
    return cloud, source.total_bytes


def read_sog(path: Source | str | Path | bytes) -> SplatCloud:
    """Read a SOG (v1 or v2) into an activated :class:`SplatCloud`.

    ``path`` is a ``.sog`` ZIP, a folder holding ``meta.json``, or the ``meta.json`` itself.
    ``metadata["format_info"]`` holds ``sog_version``, ``codebook_sizes`` (``scales`` / ``sh0``:
    entries of the v2 codebooks, 0 for v1's min/max lerps; ``shN``: palette entries, 0 without
    SH), ``sh_bands`` and ``image_size`` [W, H].
    """
    source = _existing(path)
    return _read(source)[0]


def _existing(given: Source | str | Path | bytes) -> Source:
    source = source_for(given)
    if source.local_path is not None and not source.local_path.exists():
        raise SourceNotFound("no such file", path=source.label)
    return source


def open_sog(source: Source) -> Media:
    source = _existing(source)
    cloud, total = _read(source)
    media = static_splat_media(cloud, source=source, fmt=FORMAT_NAME, reader=READER_NAME)
    media.info["file_bytes"] = total
    return media


# Writing -------------------------------------------------------------------------------------


def _part1by2(v: np.ndarray) -> np.ndarray:
    """Spread the low 21 bits of each uint64 to every third bit (for 63-bit Morton codes)."""
    v = v & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
    return v


def morton_order(means: np.ndarray) -> np.ndarray:
    """Indices that sort splats along a 3D Morton curve (21 bits per axis over the bounds)."""
    lo, hi = means.min(axis=0), means.max(axis=0)
    span = (hi - lo).astype(np.float64)
    scale = np.where(span > 0, ((1 << 21) - 1) / np.where(span > 0, span, 1), 0)
    q = np.clip((means - lo) * scale, 0, (1 << 21) - 1).astype(np.uint64)
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << np.uint64(1)) | (_part1by2(q[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")


def quantize_1d(values: np.ndarray, k: int = 256, *, bins: int = 4096, alpha: float = 0.5,
                iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A k-entry float32 codebook (sorted) and uint8 labels for ``values`` (any shape).

    With at most k distinct values the codebook holds them exactly. Otherwise Lloyd iterations
    run on a fine histogram whose bins weigh count**alpha (0.5, as splat-transform does, so sparse
    tails such as large splats keep codebook entries); every value then takes its nearest entry.
    """
    flat = np.asarray(values, np.float32).ravel()
    distinct = np.unique(flat)
    if len(distinct) <= k:
        codebook = np.concatenate([distinct, np.full(k - len(distinct), distinct[-1], np.float32)])
    else:
        lo, hi = float(distinct[0]), float(distinct[-1])
        width = (hi - lo) / bins
        which = np.minimum(((flat.astype(np.float64) - lo) / width).astype(np.intp), bins - 1)
        counts = np.bincount(which, minlength=bins).astype(np.float64)
        sums = np.bincount(which, weights=flat, minlength=bins)
        full = counts > 0
        centres = sums[full] / counts[full]
        weights = counts[full] ** alpha
        if len(centres) <= k:
            centroids = centres
        else:
            # Start from the optimal 1D point density for squared error, weight^(1/3): Lloyd in
            # 1D hardly moves entries across sparse stretches, so the start matters.
            cum = np.cumsum(weights ** (1.0 / 3.0))
            targets = (np.arange(k) + 0.5) / k * cum[-1]
            centroids = centres[np.minimum(np.searchsorted(cum, targets), len(centres) - 1)]
            centroids = np.unique(centroids)
            if len(centroids) < k:  # duplicates at dense spots: spread over the unused centres
                spare = np.setdiff1d(centres, centroids)
                pick = np.linspace(0, len(spare) - 1, k - len(centroids)).round().astype(np.intp)
                centroids = np.sort(np.concatenate([centroids, spare[pick]]))
            for _ in range(iterations):
                edges = (centroids[1:] + centroids[:-1]) / 2
                member = np.searchsorted(edges, centres)
                w = np.bincount(member, weights=weights, minlength=k)
                wx = np.bincount(member, weights=weights * centres, minlength=k)
                new = np.where(w > 0, wx / np.where(w > 0, w, 1), centroids)
                new.sort()
                if np.allclose(new, centroids, rtol=0, atol=1e-9 * (hi - lo)):
                    centroids = new
                    break
                centroids = new
        codebook = np.sort(centroids.astype(np.float32))
        codebook = np.concatenate([codebook, np.full(k - len(codebook), codebook[-1], np.float32)])
    labels = nearest_codebook_entry(flat, codebook).reshape(np.shape(values))
    return codebook, labels


def nearest_codebook_entry(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """uint8 index of the nearest entry of a sorted float32 codebook (ties go up)."""
    cb = codebook.astype(np.float64)
    edges = (cb[1:] + cb[:-1]) / 2
    return np.searchsorted(edges, np.asarray(values, np.float64), side="right").astype(np.uint8)


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid per row (squared Euclidean), in chunks that bound the distance matrix."""
    c2 = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(x), np.intp)
    step = max(1, (1 << 22) // max(1, len(centroids)))
    for start in range(0, len(x), step):
        block = x[start : start + step]
        d = c2[None, :] - 2.0 * (block @ centroids.T)
        out[start : start + step] = np.argmin(d, axis=1)
    return out


def kmeans(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator,
           fit_sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Lloyd's k-means on float32 rows: (centroids [k', D], labels [N]); k' <= k.

    Starts from k distinct-by-index random rows; an empty cluster keeps its centroid. With
    ``fit_sample`` the centroids are fitted on that many random rows and all rows assigned once.
    """
    n = len(x)
    if k >= n:
        return x.copy(), np.arange(n)
    fit = x if fit_sample is None or fit_sample >= n else x[rng.choice(n, fit_sample, replace=False)]
    centroids = fit[rng.choice(len(fit), k, replace=False)].copy()
    dims = x.shape[1]
    for _ in range(iterations):
        labels = _assign(fit, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.empty((k, dims), np.float64)
        for d in range(dims):
            sums[:, d] = np.bincount(labels, weights=fit[:, d], minlength=k)
        full = counts > 0
        centroids[full] = (sums[full] / counts[full, None]).astype(np.float32)
    return centroids, _assign(x, centroids)


def palette_size(count: int) -> int:
    """splat-transform's shN palette size: min(64, 2^floor(log2(N / 1024))) * 1024."""
    return int(min(64.0, 2.0 ** math.floor(math.log2(count / 1024))) * 1024)


def sh_palette(rest: np.ndarray, size: int, iterations: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster SH rows [N, D] into at most ``size`` centroids: (centroids [P, D], labels [N]).

    Two levels keep it fast for large palettes (tree-structured vector quantisation): about
    sqrt(size) coarse clusters fitted on a sample, then each coarse cluster gets a share of the
    palette proportional to its population and is clustered on its own (members of a cluster
    with no more points than its share are stored exactly).
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(rest, np.float32)
    n = len(x)
    if size >= n:
        return x.copy(), np.arange(n)
    if size <= 256:
        return kmeans(x, size, iterations, rng, fit_sample=64 * size)
    top = min(256, round(math.sqrt(size)))
    _, coarse = kmeans(x, top, iterations, rng, fit_sample=64 * top)
    population = np.bincount(coarse, minlength=top)
    ideal = size * population / n
    share = np.clip(np.floor(ideal), np.minimum(1, population), population).astype(np.intp)
    spare = size - int(share.sum())
    if spare > 0:
        room = np.flatnonzero(share < population)
        room = room[np.argsort(-(ideal[room] - share[room]), kind="stable")][:spare]
        share[room] += 1
    elif spare < 0:
        for i in np.argsort(-share)[:-spare]:
            share[i] -= 1
    centroids, labels, base = [], np.empty(n, np.intp), 0
    order = np.argsort(coarse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(population)])
    for c in range(top):
        members = order[bounds[c] : bounds[c + 1]]
        if len(members) == 0 or share[c] == 0:
            continue
        cent, lab = kmeans(x[members], int(share[c]), iterations, rng)
        centroids.append(cent)
        labels[members] = lab + base
        base += len(cent)
    return np.concatenate(centroids), labels


def _texture_size(count: int) -> tuple[int, int]:
    width = int(math.ceil(math.sqrt(count) / 4) * 4)
    height = int(math.ceil(count / width / 4) * 4)
    return width, height


def _as_image(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """[count, 4] uint8 -> [H, W, 4], padding pixels opaque black."""
    image = np.zeros((width * height, 4), np.uint8)
    image[:, 3] = 255
    image[: len(pixels)] = pixels
    return image.reshape(height, width, 4)


def _log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def encode_sog(cloud: SplatCloud, *, iterations: int = 6, level: int = 4, seed: int = 0,
               verify: bool = True, morton: bool = True) -> dict[str, bytes]:  # fmt: skip
    """The files of a SOG v2 scene, meta.json first: {name: bytes}.

    Splats are written in Morton order (``morton=False`` keeps the cloud's own order: a
    streamed-LOD chunk file is addressed by row offsets); means as 16-bit values in log space split over two
    images; scales and sh0 through 256-entry codebooks; quaternions smallest-three; SH bands
    through a k-means palette (size by splat-transform's rule) with a 256-entry codebook. Every
    image is decoded again and compared with what was meant (``verify``).
    """
    n = cloud.count
    if n == 0:
        raise EmptyMedia("cannot write a SOG with zero splats")
    if n > min(MAX_SPLATS, MAX_WEBP_SIDE * MAX_WEBP_SIDE):
        raise InvalidArgument(f"{n:,} splats do not fit in SOG images")
    arrays = (cloud.means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh)
    if not all(np.isfinite(a).all() for a in arrays):
        raise InvalidArgument("the cloud holds NaN or infinite values; SOG cannot store them")
    width, height = _texture_size(n)
    if width > MAX_WEBP_SIDE or height > MAX_WEBP_SIDE:
        raise InvalidArgument(f"{n:,} splats need {width}x{height} images, beyond the WebP limit")
    order = morton_order(cloud.means) if morton else np.arange(n)
    images: dict[str, np.ndarray] = {}

    # means: 16 bits per axis in log space.
    logm = _log_transform(cloud.means[order].astype(np.float64))
    mins, maxs = logm.min(axis=0), logm.max(axis=0)
    span = maxs - mins
    u = np.where(span > 0, np.rint((logm - mins) / np.where(span > 0, span, 1) * 65535), 0)
    u = np.clip(u, 0, 65535).astype(np.uint16)
    lo = np.full((n, 4), 255, np.uint8)
    hi = np.full((n, 4), 255, np.uint8)
    lo[:, :3] = u & 0xFF
    hi[:, :3] = u >> 8
    images["means_l.webp"] = _as_image(lo, width, height)
    images["means_u.webp"] = _as_image(hi, width, height)

    # quats: smallest three, largest component made positive.
    q = cloud.quats[order].astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(n)
    q *= np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    small = q[rows[:, None], _QUAT_SLOTS[largest]] * math.sqrt(2.0)
    packed = np.empty((n, 4), np.uint8)
    packed[:, :3] = np.clip(np.rint((small * 0.5 + 0.5) * 255), 0, 255)
    packed[:, 3] = 252 + largest
    images["quats.webp"] = _as_image(packed, width, height)

    # scales: one codebook of log sigma shared by the three axes.
    # A scale of 0 (a PLY log scale of -1000 underflows) or a negative one (.splat stores linear
    # scales with a sign the renderer ignores, since it squares them) has no log: store |s|,
    # floored where the reader's own floor (e^-80) puts it, which looks the same.
    log_scales = np.log(np.maximum(np.abs(cloud.scales[order]), np.float32(np.exp(-80.0))))
    scale_cb, scale_idx = quantize_1d(log_scales)
    px = np.full((n, 4), 255, np.uint8)
    px[:, :3] = scale_idx
    images["scales.webp"] = _as_image(px, width, height)

    # sh0: one codebook of f_dc shared by R, G, B; alpha = opacity * 255.
    dc_cb, dc_idx = quantize_1d(cloud.sh[order, 0])
    px = np.empty((n, 4), np.uint8)
    px[:, :3] = dc_idx
    px[:, 3] = np.clip(np.rint(cloud.opacities[order].astype(np.float64) * 255), 0, 255)
    px[px[:, 3] == 0, :3] = 0  # libwebp zeroes RGB under alpha 0 (see the module docstring)
    images["sh0.webp"] = _as_image(px, width, height)

    meta: dict[str, Any] = {
        "version": 2,
        "asset": {"generator": "holoscope"},
        "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": [float(v) for v in scale_cb], "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": [float(v) for v in dc_cb], "files": ["sh0.webp"]},
    }
    bands = cloud.sh_degree
    if bands > 0:
        coeffs = SH_COEFFS[bands]
        rest = cloud.sh[order, 1:].reshape(n, coeffs * 3)
        centroids, labels = sh_palette(rest, palette_size(n), iterations=iterations, seed=seed)
        shn_cb, shn_idx = quantize_1d(centroids)
        palette = len(centroids)
        rows_needed = math.ceil(palette / 64)
        cimg = np.zeros((rows_needed * 64, coeffs, 4), np.uint8)
        cimg[..., 3] = 255
        cimg[:palette, :, :3] = shn_idx.reshape(palette, coeffs, 3)
        images["shN_centroids.webp"] = cimg.reshape(rows_needed, 64 * coeffs, 4)
        lab = np.zeros((n, 4), np.uint8)
        lab[:, 0] = labels & 0xFF
        lab[:, 1] = labels >> 8
        lab[:, 3] = 255
        images["shN_labels.webp"] = _as_image(lab, width, height)
        meta["shN"] = {"count": palette, "bands": bands, "codebook": [float(v) for v in shn_cb],
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}  # fmt: skip

    files = {META_NAME: json.dumps(meta, separators=(",", ":")).encode()}
    for name, image in images.items():
        data = encode_webp_lossless(image, level=level)
        if verify:
            back = decode_webp_rgba(data, name=name)
            if name == "sh0.webp":
                # libwebp may store any RGB under alpha 0 (it predicts them); those splats are
                # invisible (opacity 0), so only their alpha has to come back.
                hidden = image[..., 3] == 0
                back[hidden, :3] = image[hidden, :3]
            if not np.array_equal(back, image):
                raise OutputError(f"{name}: the lossless WebP does not decode back to the same pixels")
        files[name] = data
    return files


def write_sog(cloud: SplatCloud, path: str | Path, *, iterations: int = 6, level: int = 4, seed: int = 0) -> None:
    """Write a SOG v2: a ``.sog`` ZIP (atomically), or, for a path ending in ``meta.json``, an
    unbundled folder (each file written atomically). See :func:`encode_sog` for the encoding."""
    path = Path(path)
    started = time.perf_counter()
    try:
        files = encode_sog(cloud, iterations=iterations, level=level, seed=seed)
    except HoloscopeError as exc:
        if exc.path is None:  # name the output, as every other error does
            raise type(exc)(str(exc), path=path) from exc
        raise
    if path.name.lower().endswith(META_NAME):
        if not path.parent.is_dir():
            raise OutputError("the folder for the unbundled SOG does not exist", path=path.parent)
        for name, data in files.items():
            with atomic_output(path if name == META_NAME else path.parent / name) as fh:
                fh.write(data)
    else:
        with atomic_output(path) as fh, zipfile.ZipFile(fh, "w") as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                # WebP is already entropy coded: store it; meta.json's codebooks deflate well.
                info.compress_type = zipfile.ZIP_DEFLATED if name == META_NAME else zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
    log.debug("wrote %s: %d splats in %.2f s", path, cloud.count, time.perf_counter() - started)
