"""Progressive reading of row-ordered splat files: growing prefixes from a source that hands out
its bytes in small pieces, ending in exactly what the whole-file reader returns."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from holoscope.codecs.formats.ply_inria import read_ply, write_ply
from holoscope.codecs.formats.splat import read_splat, write_splat
from holoscope.codecs.progressive import NotRowOrdered, Partial, download, iter_prefixes
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, Cancelled, CorruptStream, EmptyMedia
from holoscope.core.frames import SplatCloud
from holoscope.core.sources import BytesSource

from .helpers import random_cloud

FIELDS = ("means", "scales", "quats", "opacities", "sh")


class PieceSource(BytesSource):
    """Bytes handed out ``piece`` at a time, as a download arrives; ``size`` may be withheld
    (a server that announces no length) or lie (a length the body does not keep to)."""

    def __init__(self, data: bytes, name: str, *, piece: int = 1000, size: int | None | str = "real") -> None:
        super().__init__(data, name=name)
        self.piece = piece
        self._size = len(data) if size == "real" else size
        self.pieces_read = 0

    @property
    def size(self) -> int | None:  # type: ignore[override]
        return self._size

    def iter_chunks(self, piece: int = 1 << 20, start: int = 0) -> Iterator[bytes]:
        for offset in range(start, len(self.data), self.piece):
            self.pieces_read += 1
            yield self.data[offset : offset + self.piece]


def assert_same_cloud(a: SplatCloud, b: SplatCloud) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        assert x.tobytes() == y.tobytes(), f"{name} differs from the whole-file reader's"
    assert a.metadata == b.metadata


def with_nan_rows(cloud: SplatCloud, rows: list[int]) -> SplatCloud:
    means = cloud.means.copy()
    means[rows, 1] = np.nan
    return SplatCloud(means=means, scales=cloud.scales, quats=cloud.quats, opacities=cloud.opacities, sh=cloud.sh)


@pytest.fixture
def splat_bytes(tmp_path) -> tuple[bytes, SplatCloud]:
    path = tmp_path / "scene.splat"
    write_splat(random_cloud(3000, degree=0, seed=3, profile="splat"), path)
    data = bytearray(path.read_bytes())
    data[32 * 1500 : 32 * 1500 + 4] = np.float32(np.nan).tobytes()  # one damaged row mid-file
    path.write_bytes(bytes(data))
    return bytes(data), read_splat(path)


@pytest.mark.parametrize("size", ["real", None])
def test_splat_prefixes_grow_and_end_in_the_whole_file(splat_bytes, size):
    data, whole = splat_bytes
    source = PieceSource(data, "https://example.org/x/scene.splat", piece=3200, size=size)
    parts = list(iter_prefixes(source, min_rows=200, min_interval=0))
    assert all(isinstance(p, Partial) for p in parts)
    assert parts[-1].final and not any(p.final for p in parts[:-1])
    counts = [p.cloud.count for p in parts]
    assert len(parts) >= 10 and counts == sorted(counts) and counts[0] < whole.count // 5
    for part in parts[:-1]:  # every prefix is the first rows of the scene
        for name in FIELDS:
            assert np.array_equal(getattr(part.cloud, name), getattr(whole, name)[: part.cloud.count], equal_nan=True)
    fractions = [p.fraction for p in parts]
    if size is None:
        assert all(f is None for f in fractions[:-1])
    else:
        assert fractions == sorted(fractions) and 0 < fractions[0] < 0.2
    assert parts[-1].fraction == 1.0 and parts[-1].received == len(data)
    assert whole.metadata["dropped_nonfinite"] == 1
    assert_same_cloud(parts[-1].cloud, whole)


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_prefixes_end_in_the_whole_file(tmp_path, degree):
    cloud = with_nan_rows(random_cloud(2500, degree=degree, seed=degree), [7, 2000])
    path = tmp_path / "scene.ply"
    write_ply(cloud, path)
    whole = read_ply(path)
    assert whole.count == 2498
    source = PieceSource(path.read_bytes(), "https://example.org/scene.ply", piece=777)
    parts = list(iter_prefixes(source, min_rows=300, min_interval=0))
    assert len(parts) >= 5 and parts[0].cloud.count <= 600
    assert parts[-1].final
    assert_same_cloud(parts[-1].cloud, whole)


def test_the_real_sample_ply_arrives_in_pieces(samples_dir):
    path = samples_dir / "splats" / "lod4.ply"
    source = PieceSource(path.read_bytes(), "lod4.ply", piece=4096)
    parts = list(iter_prefixes(source, min_rows=64, min_interval=0))
    assert len(parts) > 3
    assert_same_cloud(parts[-1].cloud, read_ply(path))


def test_a_ply_stops_reading_after_its_vertices(tmp_path):
    """Elements after the vertices (mesh faces) are never downloaded."""
    path = tmp_path / "scene.ply"
    write_ply(random_cloud(400, degree=0, seed=1), path)
    data = path.read_bytes().replace(b"end_header\n", b"element face 20000\nproperty list uchar int vertex_indices\nend_header\n")
    data += bytes(13 * 20000)
    source = PieceSource(data, "scene.ply", piece=1000)
    parts = list(iter_prefixes(source, min_interval=0))
    assert parts[-1].final and parts[-1].cloud.count == 400
    assert source.pieces_read < len(data) // 1000 // 2


@pytest.mark.parametrize("make", ["compressed", "ascii", "points"])
def test_files_without_row_order_say_so_after_the_head(samples_dir, make):
    if make == "compressed":
        data, name = (samples_dir / "splats" / "guitar.compressed.ply").read_bytes(), "guitar.compressed.ply"
    elif make == "ascii":
        data, name = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n", "a.ply"
    else:
        head = b"ply\nformat binary_little_endian 1.0\nelement vertex 100\n"
        head += b"".join(b"property float %s\n" % n for n in (b"x", b"y", b"z", b"red", b"green", b"blue"))
        data, name = head + b"end_header\n" + bytes(2400), "points.ply"
    source = PieceSource(data, name, piece=512)
    with pytest.raises(NotRowOrdered):
        list(iter_prefixes(source, min_interval=0))
    assert source.pieces_read <= 10, "only the head was read"


def test_contents_decide_over_the_name(tmp_path):
    """A PLY named .splat opens as the PLY it is, as the registry opens the local file."""
    path = tmp_path / "s.ply"
    write_ply(random_cloud(200, degree=0), path)
    parts = list(iter_prefixes(PieceSource(path.read_bytes(), "scene.splat", piece=512), min_interval=0))
    assert_same_cloud(parts[-1].cloud, read_ply(path))


def test_damage_is_reported_like_the_whole_file_reader(splat_bytes):
    data, _ = splat_bytes
    with pytest.raises(CorruptStream, match="not a multiple of 32"):
        list(iter_prefixes(PieceSource(data[:-5], "s.splat"), min_interval=0))
    with pytest.raises(CorruptStream, match="not a multiple of 32"):  # length not announced
        list(iter_prefixes(PieceSource(data[:-5], "s.splat", size=None), min_interval=0))
    with pytest.raises(CorruptStream, match="truncated"):  # the body ends before the announced length
        list(iter_prefixes(PieceSource(data[:3200], "s.splat", size=len(data)), min_interval=0))
    with pytest.raises(EmptyMedia):
        list(iter_prefixes(PieceSource(b"", "s.splat"), min_interval=0))
    nan_rows = np.full(32 * 10, 0xFF, np.uint8).tobytes()
    with pytest.raises(EmptyMedia, match="non-finite"):
        list(iter_prefixes(PieceSource(nan_rows, "s.splat"), min_interval=0))


def test_a_header_promising_more_than_the_length_is_refused_before_allocating(tmp_path):
    path = tmp_path / "scene.ply"
    write_ply(random_cloud(100, degree=3), path)
    data = path.read_bytes().replace(b"element vertex 100", b"element vertex 900000000")
    source = PieceSource(data, "big.ply", piece=256)
    with pytest.raises(CorruptStream, match="truncated"):
        next(iter_prefixes(source))
    assert source.pieces_read <= 20


def test_the_decode_budget_applies(splat_bytes):
    data, _ = splat_bytes
    budget.set_limit(64 << 20)
    try:
        with pytest.raises(BudgetExceeded):  # 100M splats announced
            next(iter_prefixes(PieceSource(data, "s.splat", size=32 * 100_000_000)))
        with pytest.raises(BudgetExceeded):
            download(PieceSource(data, "s.spz", size=1 << 40))
    finally:
        budget.set_limit(None)


def test_cancel_stops_between_pieces(splat_bytes):
    data, _ = splat_bytes
    source = PieceSource(data, "s.splat", piece=320)
    stop = []
    parts = iter_prefixes(source, min_rows=10, min_interval=0, cancelled=lambda: bool(stop))
    next(parts)
    stop.append(True)
    with pytest.raises(Cancelled):
        list(parts)
    assert source.pieces_read < len(data) // 320


def test_download_reports_progress_and_returns_every_byte(samples_dir):
    data = (samples_dir / "splats" / "guitar.compressed.ply").read_bytes()
    seen = []
    got = download(PieceSource(data, "g.ply", piece=100_000), progress=lambda r, t: seen.append((r, t)))
    assert got == data
    assert [r for r, _ in seen] == sorted(r for r, _ in seen) and seen[-1] == (len(data), len(data))
    assert len(seen) == -(-len(data) // 100_000)
    with pytest.raises(CorruptStream, match="ended after"):
        download(PieceSource(data[:5000], "g.ply", size=len(data)))
