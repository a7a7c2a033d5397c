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

Everything is vectorised through one structured dtype over the whole file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from holoscope.codecs.formats.common import (
    read_source_bytes,
    atomic_output,
    check_count,
    colors_to_sh_dc,
    make_cloud,
    normalize_quats,
    static_splat_media,
)
from holoscope.core.errors import CorruptStream, EmptyMedia, InvalidArgument
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.core.media import Media

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.splat"
BYTES_PER_SPLAT = 32
SPLAT_DTYPE = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
assert SPLAT_DTYPE.itemsize == BYTES_PER_SPLAT


def read_splat(path: str | Path) -> SplatCloud:
    """Read a ``.splat`` file into an activated :class:`SplatCloud` (SH degree 0).

    Colour bytes become SH DC coefficients, the alpha byte the activated opacity, and the
    quaternion bytes (b - 128) / 128, normalised (an all-128 quaternion becomes the identity).
    Splats with NaN or infinite floats are dropped with a warning.
    """
    path = Path(path)
    data = read_source_bytes(path)
    if len(data) == 0:
        raise EmptyMedia("the .splat file is empty (0 bytes, zero splats)", path=path)
    if len(data) % BYTES_PER_SPLAT:
        raise CorruptStream(
            f"size {len(data):,} bytes is not a multiple of {BYTES_PER_SPLAT} bytes per splat: "
            "truncated or not a .splat file",
            path=path,
        )
    n = check_count(len(data) // BYTES_PER_SPLAT, path=path, available=len(data), bytes_each=BYTES_PER_SPLAT)
    records = np.frombuffer(data, dtype=SPLAT_DTYPE, count=n)
    rgba = records["rgba"].astype(np.float32) * np.float32(1 / 255)
    sh = colors_to_sh_dc(rgba[:, :3])[:, None, :]
    quats = (records["rot"].astype(np.float32) - 128) * np.float32(1 / 128)
    with np.errstate(invalid="ignore", over="ignore"):
        cloud = make_cloud(records["position"], records["scale"], quats, rgba[:, 3], sh, path=path)
    dropped = cloud.metadata["dropped_nonfinite"]
    if dropped:
        log.warning("%s: dropped %d of %d splats with NaN or infinite values", path, dropped, n)
    return cloud


def open_splat(path: Path) -> Media:
    cloud = read_splat(path)
    return static_splat_media(cloud, path=path, fmt="splat", reader=READER_NAME)


def splat_records(cloud: SplatCloud) -> np.ndarray:
    """The cloud as ``.splat`` records, sorted like antimatter15's writer.

    Order: descending exp(log s0 + log s1 + log s2) * opacity, i.e. the linear volume times the
    opacity (a stable sort, so ties keep the cloud's order). Base colour from the SH DC term
    (higher SH bands are dropped), opacity byte round(opacity * 255), quaternion bytes
    clip(round(q * 128 + 128), 0, 255) of the normalised quaternion.
    """
    n = cloud.count
    scales = np.asarray(cloud.scales, np.float32)
    opacities = np.asarray(cloud.opacities, np.float32)
    key = np.prod(scales.astype(np.float64), axis=1) * opacities
    order = np.argsort(-key, kind="stable")
    records = np.empty(n, SPLAT_DTYPE)
    records["position"] = cloud.means[order]
    records["scale"] = scales[order]
    colour = cloud.sh[order, 0, :].astype(np.float32) * np.float32(SH_C0) + np.float32(0.5)
    rgba = records["rgba"]
    rgba[:, :3] = np.clip(np.rint(colour * 255), 0, 255)
    rgba[:, 3] = np.clip(np.rint(opacities[order] * 255), 0, 255)
    q = normalize_quats(cloud.quats[order])
    records["rot"] = np.clip(np.rint(q * 128 + 128), 0, 255)
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
        fh.write(records.tobytes())
