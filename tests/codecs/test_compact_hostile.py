"""Hostile input for the compact splat formats (.spz, .splat, .ksplat): decompression bombs that
stay under the codecs' ceilings, header lies, sparse multi-gigabyte files, FIFOs, files that
shrink while they are read, all-NaN files.

Every file is generated here (sparse ones through ``os.truncate``, which costs no disk). Each
must be refused quickly with a holoscope error naming it, before anything proportional to a
header count is allocated, or be read using only the bytes it needs; and ``holoscope info``
under a 2 GB address-space cap must exit 2 with one ``holoscope: error:`` line, within 20 s.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zstandard

from holoscope.codecs.formats import ksplat as ksplat_module
from holoscope.codecs.formats import spz as spz_module
from holoscope.codecs.formats.ksplat import MAX_SECTIONS, read_ksplat
from holoscope.codecs.formats.splat import read_splat, write_splat
from holoscope.codecs.formats.spz import pack_arrays, read_spz, write_spz
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, EmptyMedia, FormatNotRecognized, NotAFile, SourceNotFound
from .test_ksplat import build_ksplat, random_section
from .test_spz import legacy_stream, random_cloud
from tests.capped import holoscope, run_capped

REPO_ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
READERS: dict[str, Callable[[Path], object]] = {".spz": read_spz, ".splat": read_splat, ".ksplat": read_ksplat}


@pytest.fixture
def limit() -> Iterator[Callable[[int], None]]:
    """Set the decode budget for one test (back to the environment / default afterwards)."""
    yield budget.set_limit
    budget.set_limit(None)


@pytest.fixture
def no_inflation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an SPZ stream is inflated or its cloud allocated."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("inflated or allocated before the checks")

    for name in ("_inflate_gzip", "_inflate_zstd", "_Decoder"):
        monkeypatch.setattr(spz_module, name, refuse)


def zeros_zstd(size: int) -> bytes:
    """One zstd frame of ``size`` zero bytes (without its size: streamed, 1 MiB at a time)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk[: min(len(chunk), size - done)]) for done in range(0, size, len(chunk))]
    return b"".join(parts) + compressor.flush()


def v4_zero_streams(count: int, degree: int) -> bytes:
    sizes = [size for _, size in spz_module._layout(4, degree)]
    frames = [zeros_zstd(count * size) for size in sizes]
    head = struct.pack("<4sIIBBBBI12x", b"NGSP", 4, count, degree, 12, 0, len(frames), 32)
    toc = b"".join(struct.pack("<QQ", len(f), count * s) for f, s in zip(frames, sizes, strict=True))
    return head + toc + b"".join(frames)


def gzip_zero_payload(count: int, degree: int, *, comment: int = 0) -> bytes:
    """A gzip member holding an SPZ v3 header and ``count`` splats of zeros, with a gzip comment
    of ``comment`` bytes (padding that makes the file large without adding any payload)."""
    per_splat = sum(size for _, size in spz_module._layout(3, degree))
    header = legacy_stream(3, count, degree, 12, 0, b"")
    deflate = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = zlib.crc32(header)
    parts = [deflate.compress(header)]
    chunk = bytes(1 << 20)
    for done in range(0, count * per_splat, len(chunk)):
        piece = chunk[: min(len(chunk), count * per_splat - done)]
        crc = zlib.crc32(piece, crc)
        parts.append(deflate.compress(piece))
    parts.append(deflate.flush())
    flags = 0x10 if comment else 0  # FCOMMENT
    gzip_header = b"\x1f\x8b\x08" + bytes([flags]) + bytes(6) + (b"x" * comment + b"\0" if comment else b"")
    size = (len(header) + count * per_splat) & 0xFFFFFFFF
    return gzip_header + b"".join(parts) + struct.pack("<II", crc, size)


def ksplat_header(total: int, sections: int, mode: int = 0) -> bytearray:
    head = bytearray(4096)
    head[0], head[1] = 0, 1
    struct.pack_into("<III", head, 4, sections, sections, total)
    struct.pack_into("<I", head, 16, total)
    struct.pack_into("<H", head, 20, mode)
    return head


def ksplat_section(count: int, *, capacity: int = 1, buckets: int = 0, full: int = 0, degree: int = 0) -> bytes:
    section = bytearray(1024)
    struct.pack_into("<IIII", section, 0, count, count, capacity, buckets)
    struct.pack_into("<fHxxI", section, 16, 1.0, 12, 0)
    struct.pack_into("<IIH", section, 32, full, 0, degree)
    return bytes(section)


def write(path: Path, data: bytes, size: int | None = None) -> Path:
    path.write_bytes(data)
    if size is not None:
        os.truncate(path, size)  # a sparse tail: no disk used
    return path


class within:
    """Assert that a block finishes within ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        assert elapsed < self.seconds, f"took {elapsed:.1f} s"


# SPZ ----------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("container", ["v4", "gzip"])
def test_spz_bomb_under_the_codec_ceiling_is_refused_as_implausible(tmp_path: Path, container: str,
                                                                    no_inflation: None) -> None:  # fmt: skip
    # 1M SH-3 splats of zeros: 65 MB of payload in ~2 KB (zstd) or ~63 KB (deflate), within
    # 32768:1 and 1032:1 but far beyond what any real scene compresses to.
    data = v4_zero_streams(1_000_000, 3) if container == "v4" else gzip_zero_payload(1_000_000, 3)
    path = write(tmp_path / "bomb.spz", data)
    with within(2), pytest.raises(CorruptStream, match="compress under 64:1") as info:
        read_spz(path)
    assert str(path) in str(info.value)


def test_small_files_of_identical_splats_are_not_held_to_the_ratio(tmp_path: Path) -> None:
    # 10,000 identical splats compress far beyond 64:1 but stay under PLAUSIBLE_FREE_BYTES.
    for container, data in (("v4", v4_zero_streams(10_000, 3)), ("gzip", gzip_zero_payload(10_000, 3))):
        assert read_spz(write(tmp_path / f"same-{container}.spz", data)).count == 10_000


@pytest.mark.parametrize("version", [3, 4])
def test_spz_budget_is_asked_before_anything_is_inflated(tmp_path: Path, version: int, limit,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path = tmp_path / f"scene-v{version}.spz"
    write_spz(random_cloud(20_000, 3, seed=1), path, version=version)
    limit(4 << 20)  # the file (~1 MB) fits, its 20,000 SH-3 splats do not
    with monkeypatch.context() as patch:
        patch.setattr(spz_module, "_inflate_gzip", lambda *a: pytest.fail("inflated before the budget check"))
        patch.setattr(spz_module, "_inflate_zstd", lambda *a: pytest.fail("inflated before the budget check"))
        with pytest.raises(BudgetExceeded) as info:
            read_spz(path)
    message = str(info.value)
    assert str(path) in message and "20,000 splats with SH degree 3" in message and "4.0 MB memory budget" in message
    limit(64 << 20)
    assert read_spz(path).count == 20_000


def test_spz_budget_counts_a_plausible_padded_gzip(tmp_path: Path, limit) -> None:
    # A gzip comment pads the file to a plausible ratio; the budget still refuses the payload.
    path = write(tmp_path / "padded.spz", gzip_zero_payload(400_000, 3, comment=500_000))
    limit(64 << 20)
    with within(2), pytest.raises(BudgetExceeded, match="400,000 splats"):
        read_spz(path)


def test_spz_out_of_memory_while_decoding_is_a_budget_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scene.spz"
    write_spz(random_cloud(100, 1), path)

    def no_memory(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(spz_module, "_Decoder", no_memory)
    with pytest.raises(BudgetExceeded, match="ran out of memory") as info:
        read_spz(path)
    assert str(path) in str(info.value)


def test_spz_v1_all_nan_positions(tmp_path: Path) -> None:
    arrays = dict(pack_arrays(random_cloud(5, 0), 12))
    halves = np.full((5, 3), np.nan, "<f2").tobytes()
    body = halves + arrays["alphas"] + arrays["colors"] + arrays["scales"] + bytes(15)
    path = write(tmp_path / "nan.spz", _gzip(legacy_stream(1, 5, 0, 0, 0, body)))
    with pytest.raises(EmptyMedia, match="all 5 splats hold non-finite values"):
        read_spz(path)


def _gzip(data: bytes) -> bytes:
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush()


# .splat -------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_sparse_8gb_splat_is_refused_before_a_byte_is_read(tmp_path: Path, limit,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path = write(tmp_path / "sparse.splat", b"", 8 * GIB)
    limit(GIB)
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("read before the budget check"))
    with within(1), pytest.raises(BudgetExceeded, match="268,435,456 splats") as info:
        read_splat(path)
    assert str(path) in str(info.value)
    for size, needle in ((8 * GIB + 7, "multiple of 32"), (8 * GIB + 32, "beyond any real scene")):
        os.truncate(path, size)
        with within(1), pytest.raises(CorruptStream, match=needle):
            read_splat(path)


# .ksplat ------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_ksplat_with_a_sparse_8gb_tail_reads_only_its_splats(tmp_path: Path, limit) -> None:
    data, _ = build_ksplat([random_section(50, 1, seed=4, capacity=8, partial=(2,))], 1)
    small = read_ksplat(write(tmp_path / "small.ksplat", data))
    limit(64 << 20)  # far less than the file
    with within(2):
        big = read_ksplat(write(tmp_path / "tail.ksplat", data, 8 * GIB))
    np.testing.assert_array_equal(big.means, small.means)
    np.testing.assert_array_equal(big.sh, small.sh)


@pytest.mark.timeout(60)
def test_ksplat_forged_huge_section_is_refused_by_the_budget(tmp_path: Path, limit,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    count = 200_000_000  # 8.8 GB of mode-0 records, all sparse
    data = bytes(ksplat_header(count, 1)) + ksplat_section(count)
    path = write(tmp_path / "huge.ksplat", data, 4096 + 1024 + 44 * count)
    limit(GIB)
    reads: list[int] = []
    real_read = ksplat_module._read

    def counted_read(fh, offset: int, dtype: np.dtype, count: int, where: Path) -> np.ndarray:
        reads.append(count * dtype.itemsize)
        return real_read(fh, offset, dtype, count, where)

    monkeypatch.setattr(ksplat_module, "_read", counted_read)
    with within(1), pytest.raises(BudgetExceeded, match="200,000,000 splats") as info:
        read_ksplat(path)
    assert str(path) in str(info.value)
    assert sum(reads) == 4096 + 1024  # the headers only


def test_ksplat_spare_bucket_room_is_not_read(tmp_path: Path, limit) -> None:
    # One splat in a section whose (sparse) bucket table holds 100M buckets: one centre is read.
    buckets = 100_000_000
    record = np.zeros(24, np.uint8)
    record[6:12] = np.frombuffer(np.full(3, 0.1, "<f2").tobytes(), np.uint8)
    record[12:20] = np.frombuffer(np.array([1, 0, 0, 0], "<f2").tobytes(), np.uint8)
    record[20:24] = 200
    head = bytes(ksplat_header(1, 1, mode=1)) + ksplat_section(1, buckets=buckets, full=1)
    path = write(tmp_path / "buckets.ksplat", head, len(head) + 12 * buckets)
    with path.open("r+b") as fh:
        fh.seek(0, os.SEEK_END)
        fh.write(record.tobytes())
    limit(64 << 20)
    with within(2):
        cloud = read_ksplat(path)
    assert cloud.count == 1


def test_ksplat_too_many_sections(tmp_path: Path) -> None:
    sections = MAX_SECTIONS + 1
    path = write(tmp_path / "sections.ksplat", bytes(ksplat_header(0, sections)), 4096 + 1024 * sections)
    with within(1), pytest.raises(CorruptStream, match="sections"):
        read_ksplat(path)


def test_ksplat_all_nan(tmp_path: Path) -> None:
    section = random_section(6, 0, seed=6, capacity=3)
    section.means[:] = np.nan
    data, _ = build_ksplat([section], 0)
    with pytest.raises(EmptyMedia, match="all 6 splats hold non-finite values"):
        read_ksplat(write(tmp_path / "nan.ksplat", data))


def test_splat_all_nan(tmp_path: Path) -> None:
    records = np.zeros((4, 32), np.uint8)
    records[:, 0:4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    with pytest.raises(EmptyMedia, match="all 4 splats hold non-finite values"):
        read_splat(write(tmp_path / "nan.splat", records.tobytes()))


# Every reader -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("suffix", list(READERS))
def test_fifo_directory_and_missing_file(tmp_path: Path, suffix: str) -> None:
    reader = READERS[suffix]
    fifo = tmp_path / f"fifo{suffix}"
    os.mkfifo(fifo)
    with within(2), pytest.raises(NotAFile, match="FIFO") as info:
        reader(fifo)  # opened without blocking: no writer ever comes
    assert str(fifo) in str(info.value)
    (tmp_path / f"dir{suffix}").mkdir()
    with pytest.raises(NotAFile):
        reader(tmp_path / f"dir{suffix}")
    with pytest.raises(SourceNotFound):
        reader(tmp_path / f"missing{suffix}")


def _file_that_shrinks(monkeypatch: pytest.MonkeyPatch, path: Path, reported: int) -> None:
    """Make fstat report ``reported`` bytes for ``path``, as if it shrank after being measured."""
    real_fstat, inode = os.fstat, path.stat().st_ino

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        if st.st_ino != inode:
            return st
        fields = list(st[:10])
        fields[6] = reported  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)


@pytest.mark.parametrize("suffix", [".splat", ".ksplat"])
def test_a_file_that_shrinks_while_read_is_reported(tmp_path: Path, suffix: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if suffix == ".splat":
        write_splat(random_cloud(10, 0), tmp_path / "whole.splat")
        data = (tmp_path / "whole.splat").read_bytes()
    else:
        data, _ = build_ksplat([random_section(12, 0, seed=1)], 0)
    path = write(tmp_path / f"cut{suffix}", data[:-64])  # measured whole, then cut in its last records
    _file_that_shrinks(monkeypatch, path, len(data))
    with pytest.raises(CorruptStream, match="while it was read") as info:
        READERS[suffix](path)
    assert str(path) in str(info.value)


# The command line under a 2 GB address-space cap -------------------------------------------


def _run_info(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_capped(holoscope("info", *options, path), 2 * GIB, timeout=20, cwd=REPO_ROOT)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and sparse files as on Linux")
def test_info_on_hostile_files_under_a_2gb_address_space_cap(tmp_path: Path) -> None:
    huge = 200_000_000
    hostile = {
        "sparse.splat": (b"", 8 * GIB, ()),
        "sparse.ksplat": (bytes(ksplat_header(huge, 1)) + ksplat_section(huge), 4096 + 1024 + 44 * huge, ()),
        "bomb.spz": (v4_zero_streams(2_000_000, 3), None, ()),  # 130 MB of payload in ~4 KB
        # Plausible (a 5 MB gzip comment), but 4M SH-3 splats need about 1.3 GB, over any budget a
        # 2 GB address space leaves. (Forced: the probe reads 4 KB, short of the end of the comment.)
        "padded.spz": (gzip_zero_payload(4_000_000, 3, comment=5 << 20), None, ()),  # probed past a 5 MB comment
    }
    failures = []
    for name, (data, size, options) in hostile.items():
        path = write(tmp_path / name, data, size)
        start = time.monotonic()
        proc = _run_info(path, *options)
        elapsed = time.monotonic() - start
        lines = proc.stderr.splitlines()
        if proc.returncode != 2 or len(lines) != 1 or not lines[0].startswith("holoscope: error:"):
            failures.append(f"{name}: exit {proc.returncode}, stderr {proc.stderr!r}")
        elif name not in lines[0]:
            failures.append(f"{name}: the error does not name the file: {lines[0]}")
        print(f"{name}: {elapsed:.1f} s: {proc.stderr.strip()}")
    os.mkfifo(tmp_path / "fifo.spz")
    proc = _run_info(tmp_path / "fifo.spz")
    if proc.returncode != 2 or not proc.stderr.startswith("holoscope: error:"):
        failures.append(f"fifo.spz: exit {proc.returncode}, stderr {proc.stderr!r}")
    # A legitimate file that fits opens, however large its sparse tail.
    data, _ = build_ksplat([random_section(20, 0, seed=2)], 0)
    proc = _run_info(write(tmp_path / "tail.ksplat", data, 8 * GIB))
    if proc.returncode != 0 or proc.stderr:
        failures.append(f"tail.ksplat: exit {proc.returncode}, stderr {proc.stderr!r}")
    assert not failures, "\n".join(failures)


def test_gzip_spz_whose_header_outgrows_the_probe_is_still_recognised(tmp_path: Path) -> None:
    import gzip

    from holoscope.core.registry import resolve

    plain = tmp_path / "plain.spz"
    write_spz(random_cloud(50, 1), plain)
    payload = gzip.decompress(plain.read_bytes())
    padded = tmp_path / "padded.spz"
    with open(padded, "wb") as raw, gzip.GzipFile(filename="n" * 6000, mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(payload)  # FNAME of 6,000 bytes: the NGSP magic starts beyond the 4 KiB peek
    assert resolve(padded).name == "spz"
    assert read_spz(padded).count == 50
    other = tmp_path / "other.spz"
    other.write_bytes(gzip.compress(b"hello, not a splat"))
    with pytest.raises(FormatNotRecognized):
        resolve(other)  # a complete gzip header that does not hold NGSP is still refused
