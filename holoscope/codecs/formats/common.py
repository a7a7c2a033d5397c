"""Shared pieces of the splat format codecs: Media wrapping, atomic writes, guarded counts and
bounded decompression, and the activation helpers every format converts through.

Every reader converts to the canonical SplatCloud (INRIA semantics: linear scales, unit w-first
quaternions, activated opacities, SH [N, K, 3] with sh[:, 0] the DC term) exactly once.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from holoscope.core import budget
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, OutputError
from holoscope.core.files import os_error
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, read_array_into, source_for

# Far beyond any real scene (the largest public scenes hold tens of millions of splats) but
# small enough that a forged header cannot make us allocate terabytes.
MAX_SPLATS = 1 << 28


# The up axis (a key of holoscope.core.camera.UP_AXES) that shows a format's common files upright
# when nothing else is known (issue 8; the viewer's per-file choice and ``render --up`` win).
# PLY-family files (INRIA PLY, PlayCanvas compressed PLY, SOG, antimatter15 .splat, mkkellogg
# .ksplat) hold COLMAP/OpenCV (RDF) axes, sky towards -Y: SuperSplat and splat-transform turn
# every one of them 180 degrees about Z, and none of these formats' converters flips an axis.
# Coloured point-cloud PLYs are usually COLMAP sparse points of the same reconstruction: -Y too.
# SPZ is RUB (+Y up) by its specification; its reader overrides this from the v4
# coordinate-system extension when a file carries one (see spz.py, "Orientation").
DEFAULT_UP: dict[str, str] = {
    "ply": "-y",
    "compressed-ply": "-y",
    "sog": "-y",
    "splat": "-y",
    "ksplat": "-y",
    "spz": "+y",
    "v3": "-y",  # V^3 scenes are trained in COLMAP axes, like INRIA PLY
}
FALLBACK_UP = "+y"


def static_splat_media(cloud: SplatCloud, *, source: Source | Path | str | None, fmt: str, reader: str,
                       default_up: str | None = None) -> Media:  # fmt: skip
    """Wrap a static cloud as one-frame Media (shared by every static splat format).

    ``info["default_up"]`` is ``default_up`` when given (a reader that learnt the file's axes
    from the file itself), else the format's entry in :data:`DEFAULT_UP`.
    """
    info = {"splats": cloud.count, "sh_degree": cloud.sh_degree, **cloud.metadata.get("format_info", {})}
    info["default_up"] = default_up or DEFAULT_UP.get(fmt, FALLBACK_UP)
    if source is not None:
        source = source_for(source)
        size = None if source.is_folder else source.size  # gone since it was read: still good
        if size is not None:
            info["file_bytes"] = size
    return Media(
        kind=MediaKind.SPLATS,
        format=fmt,
        reader=reader,
        frame_count=1,
        fps=0.0,
        load_frame=lambda index: cloud,
        path=str(source.label) if source is not None else None,
        info=info,
    )


def is_real_file(fh: BinaryIO) -> bool:
    """Whether ``fh`` is backed by an OS file descriptor (``np.fromfile`` can read it)."""
    try:
        fh.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


def read_records(fh: BinaryIO, dtype: np.dtype | type, count: int) -> np.ndarray:
    """Up to ``count`` records of ``dtype`` from the current position of ``fh``: ``np.fromfile``
    on a real file (as fast as before sources), ``readinto`` a fresh array otherwise. Fewer
    records come back when the stream ends early (callers check the length)."""
    dtype = np.dtype(dtype)
    if is_real_file(fh):
        return np.fromfile(fh, dtype=dtype, count=count)
    out = np.empty(count, dtype)
    if count == 0 or dtype.itemsize == 0:
        return out
    got = read_array_into(fh, memoryview(out.view(np.uint8).reshape(-1)))
    return out[: got // dtype.itemsize]


def read_source_bytes(source: Source | Path | str, *, limit: int | None = None) -> bytes:
    """The whole of a source, with the usual failures turned into holoscope errors naming it.

    A local file is opened without blocking (a FIFO or device is refused, not waited on).
    ``limit`` refuses a source larger than that many bytes before reading it, through the decode
    budget when omitted: a reader that needs the whole file in memory must not read an 8 GB
    sparse file to find out.
    """
    source = source_for(source)
    label = source.label
    with source.open() as fh:
        if is_real_file(fh):
            size = os.fstat(fh.fileno()).st_size
        else:
            with mapped_os_errors(label):
                size = fh.seek(0, os.SEEK_END)
                fh.seek(0)
        if limit is not None and size > limit:
            raise CorruptStream(f"file is {size:,} bytes, more than the {limit:,} this format allows", path=label)
        budget.require(size, what=f"a {size:,}-byte file read whole", path=label)
        with mapped_os_errors(label):
            return fh.read()


def source_size(fh: BinaryIO, label: Path | str) -> int:
    """The size of an open source: ``fstat`` for a real file, a seek to the end otherwise
    (the position is left at the start)."""
    with mapped_os_errors(label):
        if is_real_file(fh):
            return os.fstat(fh.fileno()).st_size
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        return size


def check_count(count: int, *, path: Path | str | None, available: int | None = None,
                bytes_each: float = 0, what: str = "splats") -> int:  # fmt: skip
    """Validate a count read from a header before anything is allocated for it.

    ``available`` bytes must hold ``count * bytes_each`` bytes; negative, absurd or oversized
    counts raise :class:`CorruptStream` naming the file.
    """
    if count < 0:
        raise CorruptStream(f"negative {what} count {count}", path=path)
    if count > MAX_SPLATS:
        raise CorruptStream(f"{what} count {count:,} is beyond any real scene (limit {MAX_SPLATS:,})", path=path)
    if available is not None and count * bytes_each > available:
        raise CorruptStream(
            f"header promises {count:,} {what} ({int(count * bytes_each):,} bytes) "
            f"but only {available:,} bytes are present: truncated",
            path=path,
        )
    return int(count)


def require_nonempty(count: int, path: Path | str | None) -> None:
    if count == 0:
        raise EmptyMedia("the file holds zero splats", path=path)


def gunzip_bounded(data: bytes, limit: int, *, path: Path | str | None) -> bytes:
    """gunzip at most ``limit`` bytes: a decompression bomb stops at the limit, not in RAM."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CorruptStream(f"damaged gzip stream ({exc})", path=path) from exc
    if len(out) > limit:
        raise CorruptStream(f"gzip stream inflates beyond the {limit:,} bytes its header allows", path=path)
    return out


def gzip_bytes(data: bytes, level: int = 9) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def zstd_bounded(data: bytes, expected: int, *, path: Path | str | None) -> bytes:
    """Decompress one zstd frame that must inflate to exactly ``expected`` bytes."""
    import zstandard

    try:
        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=expected + 1)
    except zstandard.ZstdError as exc:
        raise CorruptStream(f"damaged zstd stream ({exc})", path=path) from exc
    if len(out) != expected:
        raise CorruptStream(f"zstd stream inflates to {len(out):,} bytes, expected {expected:,}", path=path)
    return out


def current_umask() -> int:
    # /proc says it without changing it (setting and restoring races with other threads).
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def mapped_os_errors(path: Path | str | None, *, action: str = "cannot read") -> Iterator[None]:
    """The one place the format readers turn an ``OSError`` from reading ``path`` into the
    matching holoscope error (:func:`holoscope.core.files.os_error`: a missing file, a folder,
    a permission problem, an I/O error ...). Holoscope errors pass through unchanged."""
    try:
        yield
    except HoloscopeError:
        raise  # OutputError is an OSError too: already mapped
    except OSError as exc:
        raise os_error(exc, path, action=action) from exc


def output_error(exc: OSError, path: Path | str, *, action: str = "cannot write") -> OutputError:
    """The holoscope error for an ``OSError`` raised while writing ``path`` (every writer's
    failure, plyfile's included, surfaces through :func:`atomic_output`)."""
    return OutputError(f"{action} ({exc.strerror or exc})", path=path)


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only if the block completes (temp file + rename)."""
    path = Path(path)
    try:
        # A short prefix: a name near the file-system limit must not fail only because of it.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise output_error(exc, path, action="cannot write here") from exc
    try:
        # mkstemp creates 0600; a finished output gets the usual 0666 less the umask, like
        # every other file the user writes (and like render's outputs).
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(exc, path) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Activation helpers -----------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float32)))).astype(np.float32)


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p / (1 - p)).astype(np.float32)


def normalize_quats(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (w first); a zero quaternion becomes the identity."""
    q = np.asarray(q, np.float64)  # float64: squaring float32 components above ~1e19 overflows
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        out = q / np.where(norms > 0, norms, 1)
    out[norms[:, 0] == 0] = (1, 0, 0, 0)
    return out.astype(np.float32)


def colors_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """Base colour in [0, 1] -> SH DC coefficient (colour = 0.5 + C0 * dc)."""
    return ((np.asarray(rgb, np.float32) - 0.5) / SH_C0).astype(np.float32)


def make_cloud(means: np.ndarray, scales: np.ndarray, quats: np.ndarray, opacities: np.ndarray, sh: np.ndarray,
               *, path: Path | str | None, format_info: dict | None = None) -> SplatCloud:  # fmt: skip
    """Build a validated cloud; splats with non-finite values are dropped (and counted)."""
    quats_finite = np.isfinite(np.asarray(quats, np.float64)).all(axis=1)
    cloud = SplatCloud(
        means=np.ascontiguousarray(means, np.float32),
        scales=np.ascontiguousarray(scales, np.float32),
        quats=normalize_quats(quats),
        opacities=np.ascontiguousarray(opacities, np.float32),
        sh=np.ascontiguousarray(sh, np.float32),
    )
    finite = (
        np.isfinite(cloud.means).all(axis=1) & np.isfinite(cloud.scales).all(axis=1)
        & np.isfinite(cloud.opacities) & np.isfinite(cloud.sh).all(axis=(1, 2)) & quats_finite
    )  # fmt: skip
    dropped = int(cloud.count - np.count_nonzero(finite))
    if dropped and dropped == cloud.count:
        raise EmptyMedia(f"all {dropped:,} splats hold non-finite values (NaN or infinity)", path=path)
    if dropped:
        cloud = cloud.subset(finite)
    require_nonempty(cloud.count, path)
    cloud.metadata["dropped_nonfinite"] = dropped
    cloud.metadata["format_info"] = dict(format_info or {})
    return cloud
