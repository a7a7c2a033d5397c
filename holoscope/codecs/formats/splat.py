"""antimatter15 ``.splat``: reader and writer (antimatter15/splat:main.js, splat-formats.md §3.1).

No header; 32 bytes per splat, little-endian:

====== =====================================================================
bytes  field
====== =====================================================================
0-11   float32 x, y, z
12-23  float32 **linear** scales (not log)
24-27  uint8 R, G, B = (0.5 + C0 * f_dc) * 255; A = sigmoid(opacity) * 255
28-31  uint8 quaternion **w, x, y, z**, stored as q * 128 + 128
====== =====================================================================

No spherical harmonics beyond the base colour. The format has no magic: the registry picks it
by extension, and a size that is not a multiple of 32 is reported as damage.

Everything is vectorised through one structured dtype over the whole file. The splat count is
the file size / 32, so the decode budget is asked before a byte is read (an 8 GB sparse file is
refused at once), and the records are read straight into that array (no bytes object and copy).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from holoscope.codecs.formats.common import (
    atomic_output,
    check_count,
    colors_to_sh_dc,
    make_cloud,
    normalize_quats,
    read_records,
    source_size,
    static_splat_media,
)
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia, InvalidArgument
from holoscope.core.files import os_error
from holoscope.core.sources import Source, source_for
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.splat"
BYTES_PER_SPLAT = 32
SPLAT_DTYPE = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
assert SPLAT_DTYPE.itemsize == BYTES_PER_SPLAT
# Peak memory of a read besides the records (the file's bytes): float32 colours and quaternions,
# then make_cloud's float64 quaternion work and finiteness masks, or its copy when splats are
# dropped. Measured on 1M splats: 2.80 x the SH-0 cloud with tracemalloc (with or without NaN
# splats), 3.04 x in resident memory (/usr/bin/time, less the interpreter's).
PEAK_FACTOR = 3.5
PACK_ROWS = 1 << 18  # records the writer fills at a time


def read_splat(path: Source | str | Path | bytes) -> SplatCloud:
    """Read a ``.splat`` file into an activated :class:`SplatCloud` (SH degree 0).

    Colour bytes become SH DC coefficients, the alpha byte the activated opacity, and the
    quaternion bytes (b - 128) / 128, normalised (an all-128 quaternion becomes the identity).
    Splats with NaN or infinite floats are dropped with a warning.
    """
    source = source_for(path)
    path = source.label
    with source.open() as fh:
        size = source_size(fh, path)
        if size == 0:
            raise EmptyMedia("the .splat file is empty (0 bytes, zero splats)", path=path)
        if size % BYTES_PER_SPLAT:
            raise CorruptStream(
                f"size {size:,} bytes is not a multiple of {BYTES_PER_SPLAT} bytes per splat: "
                "truncated or not a .splat file",
                path=path,
            )
        n = check_count(size // BYTES_PER_SPLAT, path=path)
        budget.require_splats(n, 0, path=path, peak_factor=PEAK_FACTOR, extra=size)
        try:
            records = read_records(fh, SPLAT_DTYPE, n)
        except OSError as exc:
            raise os_error(exc, path) from exc
    if len(records) < n:  # the file shrank after its size was read
        raise CorruptStream(f"file ended after {len(records):,} of {n:,} splats while it was read", path=path)
    cloud = decode_splat_records(records, path=path)
    dropped = cloud.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, n)
    return cloud


def decode_splat_records(records: np.ndarray, *, path: Path | str | None) -> SplatCloud:
    """``SPLAT_DTYPE`` rows -> activated cloud. Each row is decoded on its own, so the rows of a
    file decoded in pieces (``codecs/progressive.py``) give the same arrays as the whole file.
    Non-finite rows are dropped (counted in ``metadata['dropped_nonfinite']``); all of them
    dropped is :class:`EmptyMedia`."""
    rgba = records["rgba"].astype(np.float32) * np.float32(1 / 255)
    sh = colors_to_sh_dc(rgba[:, :3])[:, None, :]
    quats = (records["rot"].astype(np.float32) - 128) * np.float32(1 / 128)
    with np.errstate(invalid="ignore", over="ignore"):
        return make_cloud(records["position"], records["scale"], quats, rgba[:, 3], sh, path=path)


def open_splat(source: Source) -> Media:
    cloud = read_splat(source)
    return static_splat_media(cloud, source=source, fmt="splat", reader=READER_NAME)


def splat_records(cloud: SplatCloud) -> np.ndarray:
    """The cloud as ``.splat`` records, sorted like antimatter15's writer.

    Order: descending exp(log s0 + log s1 + log s2) * opacity, i.e. the linear volume times the
    opacity (a stable sort, so ties keep the cloud's order). Base colour from the SH DC term
    (higher SH bands are dropped), opacity byte round(opacity * 255), quaternion bytes
    clip(round(q * 128 + 128), 0, 255) of the normalised quaternion.
    """
    scales = np.asarray(cloud.scales, np.float32)
    opacities = np.asarray(cloud.opacities, np.float32)
    order = np.argsort(-(np.prod(scales.astype(np.float64), axis=1) * opacities), kind="stable")
    records = np.empty(cloud.count, SPLAT_DTYPE)
    # PACK_ROWS records at a time: the float64 quaternion work of a whole cloud would take more
    # memory than the records themselves.
    for lo in range(0, cloud.count, PACK_ROWS):
        rows, out = order[lo : lo + PACK_ROWS], records[lo : lo + PACK_ROWS]
        out["position"] = cloud.means[rows]
        out["scale"] = scales[rows]
        colour = cloud.sh[rows, 0, :].astype(np.float32) * np.float32(SH_C0) + np.float32(0.5)
        out["rgba"][:, :3] = np.clip(np.rint(colour * 255), 0, 255)
        out["rgba"][:, 3] = np.clip(np.rint(opacities[rows] * 255), 0, 255)
        out["rot"] = np.clip(np.rint(normalize_quats(cloud.quats[rows]) * 128 + 128), 0, 255)
    return records


def write_splat(cloud: SplatCloud, path: str | Path) -> None:
    """Write ``cloud`` as a ``.splat`` file (atomically: a failure leaves nothing behind).

    Lossy: SH bands above the DC term are dropped, colour, opacity and rotation are 8-bit.
    Non-finite values cannot be written and are refused.
    """
    path = Path(path)
    if cloud.count == 0:
        raise InvalidArgument("nothing to write: the cloud holds zero splats", path=path)
    for name in ("means", "scales", "quats", "opacities"):
        if not np.isfinite(getattr(cloud, name)).all():
            raise InvalidArgument(f"cannot write non-finite {name} to .splat", path=path)
    if not np.isfinite(cloud.sh[:, 0]).all():
        raise InvalidArgument("cannot write non-finite colours to .splat", path=path)
    records = splat_records(cloud)
    with atomic_output(path) as fh:
        fh.write(records.view(np.uint8).data)  # no bytes copy of the records
