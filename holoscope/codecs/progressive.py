"""Row-ordered splat files read while they download: growing prefixes of the scene.

A ``.splat`` file (32-byte rows, no header) and a binary INRIA PLY (a header, then fixed-size
vertex rows) can be shown before their last byte arrives: every row is one splat, decoded on
its own by the same row decoders the whole-file readers use (``formats/splat.py``,
``formats/ply_inria.py``), so the last prefix equals what :func:`read_splat` / :func:`read_ply`
return. :func:`iter_prefixes` reads ``source.iter_chunks`` (for a URL, one streaming GET) and
yields :class:`Partial` results: the cloud so far (views of arrays that only grow) and how much
has arrived.

Anything else (compressed formats, ASCII or point-cloud PLY, a ``.splat`` name on other
contents) raises :class:`NotRowOrdered` after at most the header has been read: the caller
downloads the whole file instead (:func:`download`, with progress) and opens it as usual.

Sizes are checked against the header and the length the server announces before anything is
allocated, and the decode budget (``core/budget.py``) applies to the count, as for local files.
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from holoscope.codecs.formats.common import check_count
from holoscope.core import budget
from holoscope.core.errors import Cancelled, CorruptStream, EmptyMedia, HoloscopeError
from holoscope.core.frames import SplatCloud, sh_coeff_count
from holoscope.core.media import Media
from holoscope.core.registry import PEEK_BYTES, resolve
from holoscope.core.sources import BytesSource, Source

PIECE = 1 << 16  # bytes asked of the source at a time
MIN_ROWS = 1 << 12  # rows decoded together (fewer only at the end)
# Seconds between two yielded prefixes (the last one always comes). 0: every group, so the rows
# that arrived before a stall are shown during it; a consumer that shows fewer takes the newest.
MIN_INTERVAL = 0.0
START_ROWS = 1 << 16  # capacity when the length is not announced (doubled as rows arrive)
# Memory over the finished cloud while reading: one piece of rows decoded at a time.
PEAK_FACTOR = 1.1


class NotRowOrdered(HoloscopeError):
    """The file is not a row-ordered splat file: it can only be shown once it has arrived."""


@dataclass(frozen=True)
class Partial:
    cloud: SplatCloud | None  # the splats so far (None until the first rows are decoded)
    received: int  # bytes arrived
    total: int | None  # bytes announced (None: unknown)
    final: bool = False  # the whole file has arrived; ``cloud`` is the scene
    format: str = ""  # the registry's name of the format being read ("splat", "ply")

    @property
    def fraction(self) -> float | None:
        if self.final:
            return 1.0
        if not self.total:
            return None
        return min(self.received / self.total, 1.0)


def iter_prefixes(source: Source, *, piece: int = PIECE, min_rows: int = MIN_ROWS,
                  min_interval: float = MIN_INTERVAL, cancelled: Callable[[], bool] | None = None,
                  progress: Callable[[int, int | None], None] | None = None) -> Iterator[Partial]:  # fmt: skip
    """Growing clouds of ``source`` as its bytes arrive; the last one has ``final`` set.

    Raises :class:`NotRowOrdered` (after the first bytes or the header) for files without a
    row-ordered layout, :class:`Cancelled` when ``cancelled()`` turns true between pieces, and
    the holoscope error of the whole-file reader for damaged files. ``progress(received,
    total)`` is called after each piece (rows wait for a whole group: bytes show sooner).
    """
    reader = _Reader(source, piece, cancelled, progress)
    try:
        head = reader.read_until(lambda buf: len(buf) >= PEEK_BYTES)
        if not head:
            raise EmptyMedia("the file is empty", path=source.label)
        try:
            spec = resolve(BytesSource(head[:PEEK_BYTES], name=source.name))
        except HoloscopeError as exc:
            raise NotRowOrdered(f"not a row-ordered splat file ({exc})", path=source.label) from exc
        if spec.name == "splat":
            rows = _splat_rows(reader)
        elif spec.name == "ply":
            rows = _ply_rows(reader)
        else:
            raise NotRowOrdered(f"{spec.name} files open once downloaded", path=source.label)
        for part in rows.run(reader, min_rows, min_interval):
            yield replace(part, format=spec.name)
    finally:
        reader.close()


def prefix_media(part: Partial, source: Source | None = None) -> Media:
    """A static scene of ``part``'s cloud, as the whole-file reader of its format wraps one
    (the same format name, reader name and default up axis)."""
    from holoscope.codecs.formats import ply_inria, splat
    from holoscope.codecs.formats.common import static_splat_media

    if part.cloud is None:
        raise ValueError("no splats have arrived yet")
    reader = {"splat": splat.READER_NAME, "ply": ply_inria.READER_NAME}[part.format]
    return static_splat_media(part.cloud, source=source, fmt=part.format, reader=reader)


class DownloadedSource(BytesSource):
    """A downloaded file held in memory that still answers as the remote one: its name (the
    registry matches extensions on it), label and neighbours (``relative``) are the original's."""

    def __init__(self, data: bytes, origin: Source) -> None:
        super().__init__(data, name=origin.name)
        self.origin = origin
        self.uri = origin.uri

    @property
    def label(self) -> str | Path:  # type: ignore[override]
        return self.origin.label

    def relative(self, name: str) -> Source:
        return self.origin.relative(name)


def download(source: Source, *, piece: int = PIECE, limit: int | None = None,
             cancelled: Callable[[], bool] | None = None,
             progress: Callable[[int, int | None], None] | None = None) -> bytes:  # fmt: skip
    """The whole of ``source`` through ``iter_chunks``, calling ``progress(received, total)``
    after each piece. The announced length and the bytes themselves are held to ``limit``
    (default: the decode budget)."""
    limit = budget.current().limit if limit is None else limit
    total = source.size
    if total is not None and total > limit:
        budget.require(total, what=f"a {total:,}-byte download", path=source.label)
    reader = _Reader(source, piece, cancelled, progress)
    parts, received = [], 0
    try:
        for data in reader.pieces():
            parts.append(data)
            received += len(data)
            if received > limit:
                budget.require(received, what="the download", path=source.label)
    finally:
        reader.close()
    if total is not None and received < total:
        raise CorruptStream(f"the download ended after {received:,} of {total:,} bytes", path=source.label)
    return b"".join(parts)


class _Reader:
    """The source's pieces, with a byte buffer the layouts take rows from."""

    def __init__(self, source: Source, piece: int, cancelled: Callable[[], bool] | None,
                 progress: Callable[[int, int | None], None] | None = None) -> None:  # fmt: skip
        self.source = source
        self._progress = progress
        self.total = source.size
        self.received = 0
        self.buffer = bytearray()
        self.ended = False
        self._cancelled = cancelled
        self._chunks = source.iter_chunks(piece)

    def pieces(self) -> Iterator[bytes]:
        while True:
            if self._cancelled is not None and self._cancelled():
                raise Cancelled("the download was cancelled", path=self.source.label)
            data = next(self._chunks, None)
            if not data:
                self.ended = True
                return
            self.received += len(data)
            if self._progress is not None:
                self._progress(self.received, self.total)
            yield data

    def fill(self) -> bool:
        """Add the next piece to the buffer; False at the end of the source."""
        data = next(self.pieces(), None)
        if data is None:
            return False
        self.buffer += data
        return True

    def read_until(self, enough: Callable[[bytearray], bool]) -> bytes:
        while not enough(self.buffer) and self.fill():
            pass
        return bytes(self.buffer)

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:  # ends the streaming request
            close()


class _Rows:
    """Fixed-size rows from ``start`` on, decoded in groups into growing column arrays."""

    def __init__(self, *, path: object, dtype: np.dtype, start: int, count: int | None, capacity: int,
                 coeffs: int, decode: Callable[[np.ndarray], tuple[SplatCloud, int]],
                 metadata: dict) -> None:  # fmt: skip
        self.path, self.dtype, self.start, self.count = path, dtype, start, count
        self.decode, self.metadata, self.what = decode, metadata, "splats"
        self.coeffs = coeffs
        self.kept = self.rows = self.dropped = 0
        self.columns: dict[str, np.ndarray] = {}
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        n, c = capacity, self.coeffs
        shapes = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh": (n, c, 3)}
        grown = {name: np.empty(shape, np.float32) for name, shape in shapes.items()}
        for name, old in self.columns.items():
            grown[name][: self.kept] = old[: self.kept]
        self.columns = grown

    def _append(self, records: np.ndarray) -> None:
        self.rows += len(records)
        try:
            part, dropped = self.decode(records)
        except EmptyMedia:  # every row of this group non-finite: judged for the whole file at the end
            self.dropped += len(records)
            return
        self.dropped += dropped
        capacity = len(self.columns["means"])
        if self.kept + part.count > capacity:
            wanted = max(2 * capacity, self.kept + part.count)
            wanted = min(wanted, self.count) if self.count is not None else wanted
            budget.require_splats(wanted, sh_coeff_count_degree(self.coeffs), path=self.path,
                                  peak_factor=PEAK_FACTOR + 1)  # fmt: skip
            self._grow(wanted)
        end = self.kept + part.count
        for name in self.columns:
            self.columns[name][self.kept : end] = getattr(part, name)
        self.kept = end

    def cloud(self) -> SplatCloud:
        k = self.kept
        return SplatCloud(**{name: arr[:k] for name, arr in self.columns.items()})

    def run(self, reader: _Reader, min_rows: int, min_interval: float) -> Iterator[Partial]:
        size = self.dtype.itemsize
        # Skip to the rows (a PLY's header, any fixed-size elements before the vertices).
        while len(reader.buffer) < self.start and reader.fill():
            pass
        if len(reader.buffer) < self.start:
            raise CorruptStream(f"the file ended before its {self.what}", path=self.path)
        reader.take(self.start)
        last = -np.inf  # the first rows are shown at once
        while self.count is None or self.rows < self.count:
            group = min_rows if self.count is None else min(min_rows, self.count - self.rows)
            more = reader.fill() if len(reader.buffer) < group * size else True
            whole = min(len(reader.buffer) // size, group)
            if whole and (whole == group or not more):
                records = np.frombuffer(reader.take(whole * size), self.dtype)
                self._append(records)
                now = time.monotonic()
                if self.kept and now - last >= min_interval and (self.count is None or self.rows < self.count):
                    last = now
                    yield Partial(self.cloud(), reader.received, reader.total)
            if not more:
                break
        self._finish(reader, size)
        cloud = self.cloud()
        cloud.metadata.update(self.metadata)
        cloud.metadata["dropped_nonfinite"] = self.dropped
        yield Partial(cloud, reader.received, reader.total, final=True)

    def _finish(self, reader: _Reader, size: int) -> None:
        if self.count is not None and self.rows < self.count:
            raise CorruptStream(f"truncated: the download ended after {self.rows:,} of {self.count:,} {self.what}",
                                path=self.path)  # fmt: skip
        if self.count is None and reader.buffer:  # a .splat whose length was not announced
            raise CorruptStream(
                f"size {reader.received:,} bytes is not a multiple of {size} bytes per splat: "
                "truncated or not a .splat file", path=self.path)  # fmt: skip
        if self.rows == 0:
            raise EmptyMedia(f"the file holds zero {self.what}", path=self.path)
        if self.kept == 0:
            raise EmptyMedia(f"all {self.rows:,} splats hold non-finite values (NaN or infinity)", path=self.path)
        if self.dropped:
            import logging

            logging.getLogger("holoscope").warning("%s: dropped %d of %d splats with NaN or infinite values",
                                                   self.path, self.dropped, self.rows)  # fmt: skip


def sh_coeff_count_degree(coeffs: int) -> int:
    """The SH degree whose coefficient count is ``coeffs`` (1, 4, 9, 16)."""
    return next(d for d in range(4) if sh_coeff_count(d) == coeffs)


def _splat_rows(reader: _Reader) -> _Rows:
    from holoscope.codecs.formats import splat

    path, total = reader.source.label, reader.total
    count = None
    if total is not None:  # the whole-file reader's checks, on the announced length
        if total == 0:
            raise EmptyMedia("the .splat file is empty (0 bytes, zero splats)", path=path)
        if total % splat.BYTES_PER_SPLAT:
            raise CorruptStream(
                f"size {total:,} bytes is not a multiple of {splat.BYTES_PER_SPLAT} bytes per splat: "
                "truncated or not a .splat file", path=path)  # fmt: skip
        count = total // splat.BYTES_PER_SPLAT
        budget.require_splats(count, 0, path=path, peak_factor=PEAK_FACTOR, extra=PIECE)

    def decode(records: np.ndarray) -> tuple[SplatCloud, int]:
        cloud = splat.decode_splat_records(records, path=path)
        return cloud, cloud.metadata["dropped_nonfinite"]

    return _Rows(path=path, dtype=splat.SPLAT_DTYPE, start=0, count=count, capacity=count or START_ROWS,
                 coeffs=1, decode=decode, metadata={"format_info": {}})  # fmt: skip


def _ply_rows(reader: _Reader) -> _Rows:
    from holoscope.codecs.formats import ply_inria as ply

    path, total = reader.source.label, reader.total
    head = reader.read_until(lambda buf: ply.header_complete(buf) or len(buf) >= ply.MAX_HEADER)
    # Unknown length: check the counts against the most the header's rows can need, and grow
    # the arrays only as rows arrive (the budget still bounds the count).
    header = ply.parse_ply_header(head, total if total is not None else 1 << 62, path)
    if header.is_ascii:
        raise NotRowOrdered("an ASCII PLY opens once downloaded", path=path)
    vertex = header.element("vertex")
    if vertex is None or vertex.list_property:
        raise NotRowOrdered("not a splat PLY (no plain vertex element)", path=path)
    try:
        point_cloud, degree = ply.vertex_kind(vertex, path)
        start = header.binary_offset("vertex", path)
    except HoloscopeError as exc:
        raise NotRowOrdered(str(exc), path=path) from exc
    if point_cloud:  # the splat size comes from the spacing of all points
        raise NotRowOrdered("a coloured point cloud opens once downloaded", path=path)
    count = check_count(vertex.count, path=path, what="splats")
    if count == 0:
        raise EmptyMedia("the PLY holds zero splats", path=path)
    dtype = vertex.dtype(header.byte_order)
    budget.require_splats(count, degree, path=path, peak_factor=PEAK_FACTOR, extra=PIECE)

    def decode(records: np.ndarray) -> tuple[SplatCloud, int]:
        return ply.decode_splat_rows(records, degree, path)

    metadata = {"file_sh_degree": degree, "ply_properties": len(vertex.names)}
    # Arrays for every row only when the server's length vouches for them (checked above).
    capacity = count if total is not None else min(count, START_ROWS)
    return _Rows(path=path, dtype=dtype, start=start, count=count, capacity=capacity,
                 coeffs=sh_coeff_count(degree), decode=decode, metadata=metadata)  # fmt: skip
