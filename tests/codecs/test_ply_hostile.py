"""Hostile PLY input for both PLY readers: forged headers, counts that lie, list properties,
endless headers, FIFOs, decode budgets, and the CLI under a 2 GB address-space cap.

Every file is generated here (the big ones sparse: a header, then a hole). The contract: a
holoscope error naming the file, in one line, within seconds, without allocating what the header
claims; legitimate files read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.ply_compressed import read_compressed_ply
from holoscope.codecs.formats.ply_inria import MAX_HEADER, REQUIRED, read_ply
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, EmptyMedia, HoloscopeError, NotAFile
from tests.capped import holoscope, run_capped

FAST = 2.0  # seconds: generous on a busy machine; allocating what these headers claim takes far longer

POINT_PROPS = ("float x", "float y", "float z", "uchar red", "uchar green", "uchar blue")
SPLAT_PROPS = tuple(f"float {name}" for name in REQUIRED)  # SH degree 0, 56 bytes a row
CHUNK = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
         "max_scale_x", "max_scale_y", "max_scale_z", "min_r", "min_g", "min_b", "max_r", "max_g", "max_b")  # fmt: skip
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


def element(name: str, count: int | str, *props: str) -> str:
    return f"element {name} {count}\n" + "".join(f"property {p}\n" for p in props)


def header(*elements: str, fmt: str = "binary_little_endian") -> bytes:
    return f"ply\nformat {fmt} 1.0\n{''.join(elements)}end_header\n".encode()


def compressed_header(chunks: int | str, vertices: int | str, sh: int | str | None = None, *,
                      fmt: str = "binary_little_endian", chunk_extra: tuple[str, ...] = ()) -> bytes:  # fmt: skip
    elements = [element("chunk", chunks, *(f"float {c}" for c in CHUNK), *chunk_extra),
                element("vertex", vertices, *(f"uint {p}" for p in PACKED))]  # fmt: skip
    if sh is not None:
        elements.append(element("sh", sh, *(f"uchar f_rest_{i}" for i in range(9))))
    return header(*elements, fmt=fmt)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` and then zeros up to ``size`` bytes, as a hole: nothing written, nothing stored."""
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def expect_error(reader, path: Path, kind: type[HoloscopeError] = CorruptStream, match: str | None = None):
    start = time.perf_counter()
    with pytest.raises(kind, match=match) as info:
        reader(path)
    assert time.perf_counter() - start < FAST, f"{path.name}: took {time.perf_counter() - start:.1f} s"
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return info.value


@pytest.fixture
def small_budget():
    budget.set_limit(64 << 20, source="the test")
    yield
    budget.set_limit(None)


# Forged headers -------------------------------------------------------------------------------


def ascii_points(count: int, body: bytes) -> bytes:
    return header(element("vertex", count, *POINT_PROPS), fmt="ascii") + body


def _list_vertex_168() -> bytes:
    # The campaign's file: plyfile parsed 2.5e8 list rows in Python before failing (4.8 GB, 38 s).
    head = header(element("vertex", 250_000_000, "list uchar float x", "float y", "float z"))
    assert len(head) < 168
    return head + bytes(168 - len(head))


INRIA_FORGED = {
    "list_vertex_huge_count": (_list_vertex_168(), "truncated"),
    "list_vertex_with_its_bytes": (header(element("vertex", 4, "list uchar float x", "float y")) + bytes(36), "list"),
    "list_element_before_vertex": (
        header(element("face", 1, "list uchar int idx"), element("vertex", 1, *POINT_PROPS)) + b"\x01" + bytes(19),
        "unsupported",
    ),
    "faces_after_vertex_huge_count": (
        header(element("vertex", 1, *POINT_PROPS), element("face", 100_000_000, "list uchar int idx")) + bytes(2015),
        "truncated",
    ),
    "splats_huge_count": (header(element("vertex", 10**12, *SPLAT_PROPS)) + bytes(5600), "truncated"),
    "ascii_huge_count": (ascii_points(250_000_000, b"1 2 3 4 5 6\n"), "truncated"),
    "ascii_rows_missing": (ascii_points(10, b"1 2 3 4 5 6" + b" " * 200), "truncated"),
    "ascii_bad_value": (ascii_points(2, b"1 2 3 4 5 6\n1 2 3 x 5 6\n"), "damaged"),
    "ascii_value_out_of_range": (ascii_points(1, b"1 2 3 4 5 300\n"), "damaged"),
    "ascii_extra_value": (ascii_points(1, b"1 2 3 4 5 6 7\n"), "damaged"),
    "count_of_5000_digits": (header(element("vertex", "9" * 5000, *POINT_PROPS)), "header"),
    "negative_count": (header(element("vertex", -5, *POINT_PROPS)), "header"),
    "count_not_an_integer": (header(element("vertex", "1e6", *POINT_PROPS)), "header"),
    "unknown_type": (header(element("vertex", 1, "float128 x", *POINT_PROPS[1:])) + bytes(64), "header"),
    "list_length_float": (header(element("vertex", 1, "list float float x", *POINT_PROPS[1:])) + bytes(64), "header"),
    "duplicate_property": (header(element("vertex", 1, *POINT_PROPS, "float x")) + bytes(64), "twice"),
    "duplicate_element": (header(element("vertex", 1, *POINT_PROPS), element("vertex", 1, "float x")) + bytes(64),
                          "twice"),
    "property_before_element": (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", "header"),
    "format_after_element": (b"ply\nelement vertex 1\nformat ascii 1.0\nend_header\n1\n", "header"),
    "second_format_line": (b"ply\nformat ascii 1.0\nformat binary_little_endian 1.0\nend_header\n", "header"),
    "version_2": (b"ply\nformat ascii 2.0\nelement vertex 0\nend_header\n", "header"),
    "unknown_keyword": (b"ply\nformat ascii 1.0\nelemnt vertex 1\nend_header\n", "header"),
    "no_end_header": (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n" + b"\n" * 1000, "end_header"),
    "nul_bytes_in_header": (b"ply\nformat ascii 1.0\n\x00\x00\x00\nend_header\n", "header"),
    "no_vertex_element": (header(element("face", 0, "list uchar int idx")), "vertex"),
}


@pytest.mark.parametrize("name", list(INRIA_FORGED))
def test_forged_inria_headers_fail_fast(tmp_path: Path, name: str) -> None:
    data, needle = INRIA_FORGED[name]
    path = write(tmp_path / f"{name}.ply", data)
    expect_error(read_ply, path, CorruptStream, needle)


def test_header_without_end_within_the_first_mib(tmp_path: Path) -> None:
    # 200 MB of one header line (a hole of zeros after "comment "): 86 s and 1.6 GB before.
    path = sparse(tmp_path / "endless.ply", b"ply\nformat ascii 1.0\ncomment ", 200 << 20)
    expect_error(read_ply, path, CorruptStream, "no end_header in the first 1 MiB")
    expect_error(read_compressed_ply, path, CorruptStream, "no end_header in the first 1 MiB")


def test_header_of_exactly_the_limit_reads(tmp_path: Path) -> None:
    plain = header(element("vertex", 1, *POINT_PROPS))
    comment = b"comment " + b"x" * (MAX_HEADER - len(plain) - 9) + b"\n"
    data = plain.replace(b"1.0\n", b"1.0\n" + comment, 1)
    assert len(data) == MAX_HEADER
    assert read_ply(write(tmp_path / "long_comment.ply", data + bytes(15))).count == 1
    with pytest.raises(CorruptStream, match="1 MiB"):  # one byte more and the header is refused
        read_ply(write(tmp_path / "too_long.ply", data.replace(b"comment ", b"comment  ") + bytes(15)))


def test_ascii_line_without_end(tmp_path: Path) -> None:
    # One 64 MB "line" (a hole): each row is read with a length limit, never whole.
    path = sparse(tmp_path / "long_line.ply", ascii_points(1, b""), 64 << 20)
    expect_error(read_ply, path, CorruptStream, "longer than")


def test_header_with_tens_of_thousands_of_names_is_parsed_quickly(tmp_path: Path) -> None:
    # Duplicate checks that scan the names so far would take minutes here (quadratic).
    names = "".join(f"element e{i} 0\n" for i in range(55_000)) + element("vertex", 1, *POINT_PROPS)
    props = "".join(f"property float p{i}\n" for i in range(40_000))
    for label, body in (("elements", names), ("properties", element("vertex", 1, *POINT_PROPS) + props)):
        data = f"ply\nformat binary_little_endian 1.0\n{body}end_header\n".encode()
        assert len(data) < MAX_HEADER
        path = write(tmp_path / f"many_{label}.ply", data)
        expect_error(read_ply, path, CorruptStream, "truncated")


def _compressed_forged() -> dict[str, tuple[bytes, str]]:
    row = 72 + 16  # one chunk and one vertex
    return {
        "vertices_beyond_256_per_chunk": (compressed_header(1, 257) + bytes(72 + 257 * 16), "chunks"),
        "fewer_vertices_than_chunks_hold": (compressed_header(2, 256) + bytes(2 * 72 + 256 * 16), "chunks"),
        "chunk_count_huge": (compressed_header(10**12, 1) + bytes(row), "truncated"),
        "vertex_count_huge": (compressed_header(1, 2**40) + bytes(row), "truncated"),
        "vertex_count_beyond_any_scene": (compressed_header(2**32, 2**40), "truncated"),
        "sh_count_differs": (compressed_header(1, 2, sh=1) + bytes(72 + 32 + 9), "sh element"),
        "sh_count_huge": (compressed_header(1, 1, sh=10**15) + bytes(row + 9), "truncated"),
        "list_in_chunk": (compressed_header(1, 1, chunk_extra=("list uchar float extra",)) + bytes(row + 1), "list"),
        "ascii": (compressed_header(1, 1, fmt="ascii") + b"0 " * 22, "binary"),
        "count_of_5000_digits": (compressed_header("9" * 5000, 1), "header"),
        "no_end_header": (compressed_header(1, 1)[:-11] + bytes(4000), "end_header"),
    }


COMPRESSED_FORGED = _compressed_forged()


@pytest.mark.parametrize("name", list(COMPRESSED_FORGED))
def test_forged_compressed_headers_fail_fast(tmp_path: Path, name: str) -> None:
    data, needle = COMPRESSED_FORGED[name]
    path = write(tmp_path / f"{name}.compressed.ply", data)
    expect_error(read_compressed_ply, path, CorruptStream, needle)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.timeout(20)
@pytest.mark.parametrize("reader", [read_ply, read_compressed_ply])
def test_fifo_is_refused_without_blocking(tmp_path: Path, reader) -> None:
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)  # nobody writes: opening it for reading the usual way would block forever
    expect_error(reader, fifo, NotAFile, "FIFO")


# All splats non-finite ------------------------------------------------------------------------


def test_all_nan_splats(tmp_path: Path) -> None:
    rows = np.zeros((20, len(SPLAT_PROPS)), "<f4")
    rows[np.arange(20), np.arange(20) % len(SPLAT_PROPS)] = np.nan  # a different property in each row
    path = write(tmp_path / "nan.ply", header(element("vertex", 20, *SPLAT_PROPS)) + rows.tobytes())
    expect_error(read_ply, path, EmptyMedia, "all 20 splats hold non-finite values")


def test_all_nan_points(tmp_path: Path) -> None:
    rows = np.zeros(20, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "u1", 3)])
    rows["y"] = np.nan
    path = write(tmp_path / "nan_points.ply", header(element("vertex", 20, *POINT_PROPS)) + rows.tobytes())
    expect_error(read_ply, path, EmptyMedia, "all 20 splats hold non-finite values")


def test_all_nan_compressed(tmp_path: Path) -> None:
    chunks = np.zeros((2, len(CHUNK)), "<f4")
    chunks[:, 0] = np.nan  # min_x of every chunk
    data = compressed_header(2, 300) + chunks.tobytes() + bytes(300 * 16)
    expect_error(read_compressed_ply, write(tmp_path / "nan.compressed.ply", data), EmptyMedia,
                 "all 300 splats hold non-finite values")  # fmt: skip


# The decode budget ----------------------------------------------------------------------------


def _budget_cases() -> dict[str, tuple[bytes, int, object]]:
    splat3 = tuple(f"float {n}" for n in REQUIRED) + tuple(f"float f_rest_{i}" for i in range(45))
    return {
        "splats": (header(element("vertex", 300_000, *splat3)), 300_000 * 236, read_ply),
        "points": (header(element("vertex", 5_000_000, *POINT_PROPS)), 5_000_000 * 15, read_ply),
        "ascii_points": (ascii_points(5_000_000, b""), 5_000_000 * 12, read_ply),
        "compressed": (compressed_header(3907, 1_000_000), 3907 * 72 + 1_000_000 * 16, read_compressed_ply),
    }


@pytest.mark.parametrize("name", list(_budget_cases()))
def test_budget_refuses_before_reading(tmp_path: Path, small_budget, name: str) -> None:
    """Counts the bytes present can hold, but whose decode would pass the budget (sparse files)."""
    head, data_bytes, reader = _budget_cases()[name]
    path = sparse(tmp_path / f"{name}.ply", head, len(head) + data_bytes)
    error = expect_error(reader, path, BudgetExceeded, "memory budget")
    assert "64.0 MB" in str(error) and "the test" in str(error)


@pytest.mark.parametrize("name, reader", [("lod4.ply", read_ply), ("guitar.compressed.ply", read_compressed_ply)])
def test_budget_applies_to_real_samples(samples_dir: Path, name: str, reader) -> None:
    path = samples_dir / "splats" / name
    budget.set_limit(100_000, source="the test")
    try:
        expect_error(reader, path, BudgetExceeded, "memory budget")
    finally:
        budget.set_limit(None)
    assert reader(path).count > 0


def _inria_records(n: int, degree: int, dtype: str = "<f4", shuffle: bool = False) -> np.ndarray:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * ((degree + 1) ** 2 - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    if shuffle:
        np.random.default_rng(1).shuffle(names)
    rng = np.random.default_rng(0)
    records = np.empty(n, [(name, dtype) for name in names])
    for name in names:
        records[name] = rng.normal(0, 1, n)
    return records


def _write_records(path: Path, records: np.ndarray, extra: str = "", fmt: str = "binary_little_endian") -> Path:
    types = {"f4": "float", "f8": "double", "u1": "uchar"}
    props = [f"{types[records.dtype[n].str[1:]]} {n}" for n in records.dtype.names]
    head = header(element("vertex", len(records), *props), fmt=fmt) + extra.encode()
    if fmt == "ascii":
        body = "".join(" ".join(str(v) for v in row) + "\n" for row in records.tolist()).encode()
    else:
        body = records.astype(records.dtype.newbyteorder("<")).tobytes()
    return write(path, head + body)


def _peak_cases(tmp_path: Path) -> dict[str, tuple[Path, object]]:
    n = 150_000
    sh3 = _inria_records(n, 3)
    sh3["x"][7] = np.nan  # one dropped row: the cloud is copied by subset
    points = np.zeros(n, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    rng = np.random.default_rng(2)
    for axis in "xyz":
        points[axis] = rng.uniform(0, 10, n)
    points["red"] = rng.integers(0, 256, n)
    points["x"][3] = np.nan
    chunks = rng.uniform(0, 1, (-(-n // 256), len(CHUNK))).astype("<f4")
    chunks[:, 3:6] += 1  # max above min
    chunks[1, 0] = np.nan  # one dropped chunk
    words = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype("<u4")
    sh = rng.integers(0, 256, (n, 9), dtype=np.uint8)
    compressed = compressed_header(len(chunks), n, sh=n) + chunks.tobytes() + words.tobytes() + sh.tobytes()
    return {
        "splats_sh3": (_write_records(tmp_path / "sh3.ply", sh3), read_ply),
        "splats_sh0": (_write_records(tmp_path / "sh0.ply", _inria_records(n, 0)), read_ply),
        "splats_double_shuffled": (_write_records(tmp_path / "double.ply", _inria_records(n // 2, 1, "<f8", True)),
                                   read_ply),
        "points": (_write_records(tmp_path / "points.ply", points), read_ply),
        "ascii_points": (_write_records(tmp_path / "ascii.ply", points[:20_000], fmt="ascii"), read_ply),
        "compressed_sh1": (write(tmp_path / "c.compressed.ply", compressed), read_compressed_ply),
    }


@pytest.mark.timeout(120)
def test_budget_estimates_bound_the_measured_peak(tmp_path: Path, monkeypatch) -> None:
    """The readers' estimates (peak factors) are upper bounds on what they really allocate, and
    not wildly above it."""
    estimates: list[float] = []
    real_require = budget.require
    monkeypatch.setattr(budget, "require", lambda n, **kw: (estimates.append(n), real_require(n, **kw)))
    report = []
    for name, (path, reader) in _peak_cases(tmp_path).items():
        reader(path)  # once untraced: modules numpy imports lazily are not the reader's memory
        estimates.clear()
        tracemalloc.start()
        try:
            reader(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(estimates) == 1, name
        report.append(f"{name}: peak {peak / 2**20:.1f} MiB, estimate {estimates[0] / 2**20:.1f} MiB")
        assert peak <= estimates[0] <= 2.5 * peak, report[-1]


# The command line under a 2 GB address-space cap ----------------------------------------------


def _capped_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_capped(holoscope(*args), timeout=20, cwd=cwd)  # the default budget, from the cap


def _cli_files(tmp_path: Path) -> dict[str, Path]:
    splat3 = tuple(f"float {n}" for n in REQUIRED) + tuple(f"float f_rest_{i}" for i in range(45))
    big = header(element("vertex", 10_000_000, *splat3))
    return {
        "list_vertex_168": write(tmp_path / "list.ply", _list_vertex_168()),
        "faces_huge_count": write(tmp_path / "faces.ply", INRIA_FORGED["faces_after_vertex_huge_count"][0]),
        "endless_header": sparse(tmp_path / "endless.ply", b"ply\nformat ascii 1.0\ncomment ", 200 << 20),
        "ascii_huge_count": write(tmp_path / "ascii.ply", INRIA_FORGED["ascii_huge_count"][0]),
        # 10M splats whose 2.4 GB of bytes are all present (a hole): consistent, but over the budget
        "sparse_10m_splats": sparse(tmp_path / "big.ply", big, len(big) + 10_000_000 * 236),
        "compressed_chunks_huge": write(tmp_path / "c.compressed.ply", COMPRESSED_FORGED["chunk_count_huge"][0]),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
@pytest.mark.timeout(300)
def test_cli_on_hostile_files_under_an_address_space_cap(tmp_path: Path) -> None:
    files = _cli_files(tmp_path)
    runs = [["info", str(path)] for path in files.values()]
    for name in ("list_vertex_168", "sparse_10m_splats"):
        runs.append(["convert", str(files[name]), str(tmp_path / "out.spz")])
        runs.append(["render", str(files[name]), "-o", str(tmp_path / "out.png"), "--size", "64x64"])
    failures = []
    for args in runs:
        start = time.perf_counter()
        proc = _capped_cli(args, tmp_path)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 2 or len(lines) != 1 or not lines[0].startswith("holoscope: error: "):
            failures.append(f"{args[:2]}: exit {proc.returncode} after {time.perf_counter() - start:.1f} s, "
                            f"stderr {proc.stderr[-400:]!r}")  # fmt: skip
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "out.spz").exists() and not (tmp_path / "out.png").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_cli_reads_a_real_sample_under_the_cap(samples_dir: Path, tmp_path: Path) -> None:
    proc = _capped_cli(["info", str(samples_dir / "splats" / "lod4.ply")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "489" in proc.stdout
