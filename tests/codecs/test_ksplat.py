""".ksplat reader (splat-formats.md §3.5): the real fixture, files built here for every
compression mode, and damaged or forged files.

The files are built by a small test-only writer from the layout in §3.5 (main header, section
headers, partial-bucket lengths, bucket centres, splat records), so expected values are known
exactly: the reader must return the stored values (f16 / u16 / u8 decoded by numpy here) and
stay within f16 / quantisation / u8 precision of the values that were packed.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from holoscope.codecs.formats.ksplat import FORMAT_NAME, READER_NAME, read_ksplat, sh_component_order
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError
from holoscope.core.frames import SH_C0, sh_coeff_count
from holoscope.core.registry import open_media
from .helpers import fuzz_settings

SH_COMPONENTS = {0: 0, 1: 9, 2: 24}


@pytest.fixture(scope="module")
def splats_dir(samples_dir: Path) -> Path:
    return samples_dir / "splats"


# A test-only writer ------------------------------------------------------------------------


@dataclass
class Section:
    means: np.ndarray  # [n, 3] world positions
    scales: np.ndarray  # [n, 3] linear
    quats: np.ndarray  # [n, 4] w, x, y, z
    rgba: np.ndarray  # [n, 4] uint8
    sh: np.ndarray | None = None  # [n, 3*(K-1)] stored component order (per band, channel-major)
    degree: int = 0
    bucket_capacity: int = 4
    partial_lengths: list[int] = field(default_factory=list)
    block_size: float = 4.0
    quant_range: int = 32767
    spare: int = 0  # extra splat records reserved (maxSplatCount - splatCount)
    centres: np.ndarray | None = None  # [buckets, 3]; computed when None

    @property
    def count(self) -> int:
        return len(self.means)

    @property
    def full_buckets(self) -> int:
        return (self.count - sum(self.partial_lengths)) // self.bucket_capacity

    def bucket_of_each_splat(self) -> np.ndarray:
        sizes = [self.bucket_capacity] * self.full_buckets + list(self.partial_lengths)
        return np.repeat(np.arange(len(sizes)), sizes)[: self.count]


def stride(mode: int, degree: int) -> int:
    return (44, 24, 24)[mode] + SH_COMPONENTS[degree] * (4, 2, 1)[mode]


def build_ksplat(sections: list[Section], mode: int, *, sh_range=(0.0, 0.0), total=None, minor=1) -> tuple[bytes, list]:
    """The bytes of a .ksplat file, plus per section the values as stored (for exact checks)."""
    header = bytearray(4096)
    header[0], header[1] = 0, minor
    struct.pack_into("<III", header, 4, len(sections), len(sections), sum(s.count + s.spare for s in sections))
    struct.pack_into("<I", header, 16, sum(s.count for s in sections) if total is None else total)
    struct.pack_into("<H", header, 20, mode)
    struct.pack_into("<ff", header, 36, *sh_range)
    section_headers = bytearray()
    payload = bytearray()
    stored = []
    for s in sections:
        n = s.count
        n_buckets = s.full_buckets + len(s.partial_lengths)
        sh_header = bytearray(1024)
        struct.pack_into("<IIII", sh_header, 0, n, n + s.spare, s.bucket_capacity, n_buckets)
        struct.pack_into("<fHxxI", sh_header, 16, s.block_size, 12, s.quant_range)
        struct.pack_into("<IIH", sh_header, 32, s.full_buckets, len(s.partial_lengths), s.degree)
        section_headers += sh_header
        payload += np.asarray(s.partial_lengths, "<u4").tobytes()
        bucket = s.bucket_of_each_splat()
        if s.centres is None:
            s.centres = np.array([s.means[bucket == b].mean(axis=0) for b in range(n_buckets)], np.float32)
        payload += np.asarray(s.centres, "<f4").tobytes()
        rec = np.zeros((n + s.spare, stride(mode, s.degree)), np.uint8)
        if mode == 0:
            pos = s.means.astype("<f4")
            scl = s.scales.astype("<f4")
            rot = s.quats.astype("<f4")
            stored_means = pos.astype(np.float64)
        else:
            step = s.block_size / 2.0 / s.quant_range
            rel = (s.means - s.centres[bucket].astype(np.float64)) / step + s.quant_range
            assert n == 0 or (rel.min() >= 0 and rel.max() <= 65535), "test data must fit its buckets"
            pos = np.round(rel).astype("<u2")
            stored_means = (pos.astype(np.float64) - s.quant_range) * step + s.centres[bucket].astype(np.float64)
            scl = s.scales.astype("<f2")
            rot = s.quats.astype("<f2")
        size = pos.dtype.itemsize
        rec[:n, 0 : 3 * size] = pos.view(np.uint8).reshape(n, 3 * size)
        rec[:n, 3 * size : 6 * size] = scl.view(np.uint8).reshape(n, 3 * size)
        rec[:n, 6 * size : 10 * size] = rot.view(np.uint8).reshape(n, 4 * size)
        rec[:n, 10 * size : 10 * size + 4] = s.rgba
        stored_sh = None
        if s.degree:
            base = (44, 24, 24)[mode]
            if mode == 0:
                raw = s.sh.astype("<f4")
                stored_sh = raw.astype(np.float64)
            elif mode == 1:
                raw = s.sh.astype("<f2")
                stored_sh = raw.astype(np.float64)
            else:
                lo, hi = (sh_range[0] or -1.5), (sh_range[1] or 1.5)
                raw = np.clip(np.round((s.sh - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
                stored_sh = lo + raw.astype(np.float64) / 255 * (hi - lo)
            rec[:n, base:] = raw.view(np.uint8).reshape(n, raw.shape[1] * raw.dtype.itemsize)
        payload += rec.tobytes()
        stored.append({"means": stored_means, "scales": scl.astype(np.float64), "quats": rot.astype(np.float64),
                       "sh": stored_sh})  # fmt: skip
    return bytes(header + section_headers + payload), stored


def random_section(n: int, degree: int, seed: int, *, capacity=4, partial=(), block=4.0, spare=0) -> Section:
    rng = np.random.default_rng(seed)
    sizes = [capacity] * ((n - sum(partial)) // capacity) + list(partial)
    assert sum(sizes) == n
    centres = rng.uniform(-10, 10, (len(sizes), 3)).astype(np.float32)
    bucket = np.repeat(np.arange(len(sizes)), sizes)
    means = centres[bucket] + rng.uniform(-0.45 * block, 0.45 * block, (n, 3))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return Section(
        means=means,
        scales=np.exp(rng.uniform(-5, 0, (n, 3))),
        quats=quats,
        rgba=rng.integers(0, 256, (n, 4), dtype=np.uint8),
        sh=rng.uniform(-1.2, 1.2, (n, SH_COMPONENTS[degree])) if degree else None,
        degree=degree,
        bucket_capacity=capacity,
        partial_lengths=list(partial),
        block_size=block,
        spare=spare,
        centres=centres,
    )


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expected_sh(section: Section, stored_sh: np.ndarray | None, degree: int) -> np.ndarray:
    """[n, K-1, 3] from the stored component order, written out band by band from §3.5."""
    out = np.zeros((section.count, sh_coeff_count(degree) - 1, 3))
    if stored_sh is None:
        return out
    # band 1: R1 R2 R3 G1 G2 G3 B1 B2 B3; band 2: R4..R8 G4..G8 B4..B8
    for c in range(3):
        for j in range(3):
            out[:, j, c] = stored_sh[:, c * 3 + j]
        if section.degree == 2:
            for j in range(5):
                out[:, 3 + j, c] = stored_sh[:, 9 + c * 5 + j]
    return out


def check_section(cloud, rows: slice, section: Section, stored: dict, degree: int, mode: int) -> None:
    if section.count == 0:
        return
    np.testing.assert_allclose(cloud.means[rows], stored["means"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cloud.scales[rows], stored["scales"], rtol=1e-7)
    q = stored["quats"] / np.linalg.norm(stored["quats"], axis=1, keepdims=True)
    np.testing.assert_allclose(cloud.quats[rows], q, atol=1e-6)
    rgba = section.rgba.astype(np.float64) / 255
    np.testing.assert_allclose(cloud.opacities[rows], rgba[:, 3], atol=1e-7)
    np.testing.assert_allclose(cloud.sh[rows, 0], (rgba[:, :3] - 0.5) / SH_C0, atol=1e-6)
    np.testing.assert_allclose(cloud.sh[rows, 1:], expected_sh(section, stored["sh"], degree), rtol=1e-6, atol=1e-6)
    # ... and within the format's precision of what was packed.
    if mode == 0:
        np.testing.assert_allclose(cloud.means[rows], section.means, rtol=1e-6, atol=1e-6)
    else:
        step = section.block_size / 2 / section.quant_range
        assert np.abs(cloud.means[rows] - section.means).max() <= 0.5 * step + 1e-5
        np.testing.assert_allclose(cloud.scales[rows], section.scales, rtol=2**-10)
        sign = np.sign((cloud.quats[rows] * section.quats).sum(axis=1))[:, None]
        assert np.abs(cloud.quats[rows] * sign - section.quats).max() < 2e-3
    if section.degree:
        packed = expected_sh(section, section.sh, degree)
        tol = {0: 1e-6, 1: 2e-3, 2: 3.0 / 255 / 2 + 1e-6}[mode]
        assert np.abs(cloud.sh[rows, 1:] - packed).max() <= tol


# The real fixture --------------------------------------------------------------------------


def test_minimal_fixture(splats_dir: Path) -> None:
    cloud = read_ksplat(splats_dir / "minimal.ksplat")
    assert cloud.count == 4
    assert cloud.sh_degree == 0
    assert cloud.metadata["format_info"] == {"compression_mode": 0, "sections": 1, "sh_degree": 0}
    # The same four splats as minimal.splat (§6: only the quaternion slot of the 1 differs),
    # read here directly from its 32-byte records (§3.1).
    raw = np.frombuffer((splats_dir / "minimal.splat").read_bytes(), np.uint8).reshape(4, 32)
    floats = raw[:, :24].copy().view("<f4")
    np.testing.assert_array_equal(cloud.means, floats[:, :3])
    np.testing.assert_allclose(cloud.scales, floats[:, 3:6], rtol=1e-7)
    rgba = raw[:, 24:28].astype(np.float64) / 255
    np.testing.assert_allclose(cloud.opacities, rgba[:, 3], atol=1e-7)
    np.testing.assert_allclose(cloud.sh[:, 0], (rgba[:, :3] - 0.5) / SH_C0, atol=1e-6)
    np.testing.assert_array_equal(cloud.quats, np.tile([0, 0, 0, 1], (4, 1)))  # w=0, z=1 as stored


def test_minimal_fixture_open_media(splats_dir: Path) -> None:
    media = open_media(splats_dir / "minimal.ksplat")
    assert media.format == FORMAT_NAME == "ksplat"
    assert media.reader == READER_NAME == "holoscope.ksplat"
    assert media.info["splats"] == 4
    assert media.info["compression_mode"] == 0
    assert media.info["sections"] == 1
    assert media.info["file_bytes"] == 5308


# Built files: every mode, with and without SH ---------------------------------------------


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_modes_decode_exactly(tmp_path: Path, mode: int, degree: int) -> None:
    section = random_section(23, degree, seed=10 * mode + degree, capacity=4, partial=(2, 1))
    sh_range = (-1.25, 1.5) if mode == 2 else (0.0, 0.0)
    data, stored = build_ksplat([section], mode, sh_range=sh_range)
    cloud = read_ksplat(write(tmp_path, f"m{mode}d{degree}.ksplat", data))
    assert cloud.count == 23
    assert cloud.sh_degree == degree
    assert cloud.metadata["format_info"] == {"compression_mode": mode, "sections": 1, "sh_degree": degree}
    check_section(cloud, slice(0, 23), section, stored[0], degree, mode)


def test_mode2_default_sh_range(tmp_path: Path) -> None:
    section = random_section(8, 1, seed=3, capacity=8)
    data, stored = build_ksplat([section], 2, sh_range=(0.0, 0.0))  # 0 means the default ±1.5
    cloud = read_ksplat(write(tmp_path, "default-range.ksplat", data))
    check_section(cloud, slice(0, 8), section, stored[0], 1, 2)
    stored_bytes = np.frombuffer(data[-8 * 33 :], np.uint8).reshape(8, 33)[:, 24:]
    assert cloud.sh[0, 1, 0] == pytest.approx(-1.5 + stored_bytes[0, 0] / 255 * 3.0, abs=1e-6)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_several_sections_mixed_sh_degrees_and_spare_room(tmp_path: Path, mode: int) -> None:
    sections = [
        random_section(10, 0, seed=1, capacity=4, partial=(2,), spare=3),
        random_section(16, 2, seed=2, capacity=8, block=2.0),
        random_section(0, 0, seed=3, capacity=4, spare=2),  # an empty section with reserved room
        random_section(7, 1, seed=4, capacity=3, partial=(1,), block=8.0, spare=1),
    ]
    data, stored = build_ksplat(sections, mode)
    cloud = read_ksplat(write(tmp_path, "sections.ksplat", data))
    assert cloud.count == 33
    assert cloud.sh_degree == 2
    assert cloud.metadata["format_info"]["sections"] == 4
    start = 0
    for section, values in zip(sections, stored):
        rows = slice(start, start + section.count)
        check_section(cloud, rows, section, values, 2, mode)
        if section.degree == 0:
            assert np.all(cloud.sh[rows, 1:] == 0)
        start += section.count


def test_sh_component_order_per_band() -> None:
    np.testing.assert_array_equal(sh_component_order(1), [[0, 3, 6], [1, 4, 7], [2, 5, 8]])
    order = sh_component_order(2)
    assert order.shape == (8, 3)
    np.testing.assert_array_equal(order[3:], [[9 + j, 14 + j, 19 + j] for j in range(5)])
    assert sorted(order.ravel().tolist()) == list(range(24))


def test_partial_buckets_pick_their_centres(tmp_path: Path) -> None:
    # 2 full buckets of 4, then partial buckets of 3 and 1 splats, each with a far-apart centre:
    # a splat decoded against the wrong bucket would be off by 100 units.
    section = random_section(12, 0, seed=9, capacity=4, partial=(3, 1))
    section.centres = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], np.float32)
    bucket = section.bucket_of_each_splat()
    np.testing.assert_array_equal(bucket, [0] * 4 + [1] * 4 + [2] * 3 + [3])
    section.means = section.centres[bucket] + np.random.default_rng(0).uniform(-1, 1, (12, 3))
    data, _ = build_ksplat([section], 1)
    cloud = read_ksplat(write(tmp_path, "partial.ksplat", data))
    assert np.abs(cloud.means - section.means).max() < 1e-4


def test_zero_and_negative_scales_become_tiny(tmp_path: Path) -> None:
    section = random_section(4, 0, seed=5)
    section.scales[0] = 0.0
    section.scales[1, 2] = -0.5
    data, _ = build_ksplat([section], 0)
    cloud = read_ksplat(write(tmp_path, "scales.ksplat", data))
    assert np.all(cloud.scales > 0)
    assert cloud.scales[0, 0] == pytest.approx(np.exp(-10), rel=1e-6)
    assert cloud.scales[1, 2] == pytest.approx(np.exp(-10), rel=1e-6)


def test_non_finite_values_are_dropped(tmp_path: Path) -> None:
    section = random_section(6, 1, seed=6, capacity=3)
    section.means[1, 0] = np.nan
    section.quats[2] = np.inf
    section.sh[3, 4] = np.nan
    data, _ = build_ksplat([section], 0)
    cloud = read_ksplat(write(tmp_path, "nan.ksplat", data))
    assert cloud.count == 3
    assert cloud.metadata["dropped_nonfinite"] == 3
    np.testing.assert_allclose(cloud.means, section.means[[0, 4, 5]].astype(np.float32))


def test_huge_and_zero_quaternions(tmp_path: Path) -> None:
    section = random_section(4, 0, seed=7)
    section.quats[0] = (0, 0, 3e30, 0)  # finite, but its squared norm overflows float32
    section.quats[1] = (0, 0, 0, 0)
    data, _ = build_ksplat([section], 0)
    with np.errstate(over="raise"):
        cloud = read_ksplat(write(tmp_path, "quats.ksplat", data))
    np.testing.assert_array_equal(cloud.quats[0], [0, 0, 1, 0])
    np.testing.assert_array_equal(cloud.quats[1], [1, 0, 0, 0])


def test_zero_splats(tmp_path: Path) -> None:
    data, _ = build_ksplat([random_section(0, 0, seed=0, spare=4)], 1)
    with pytest.raises(EmptyMedia):
        read_ksplat(write(tmp_path, "zero.ksplat", data))


# Damaged and forged files ------------------------------------------------------------------


def _set(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@pytest.fixture(scope="module")
def two_sections() -> bytes:
    data, _ = build_ksplat(
        [random_section(10, 1, seed=1, capacity=4, partial=(2,)), random_section(9, 2, seed=2, capacity=3)], 1
    )
    return data


S0, S1 = 4096, 4096 + 1024  # section header offsets
HEADER_FIELD_OFFSETS = [4, 16, 20, 36, 40] + [S0 + o for o in (0, 4, 8, 12, 16, 20, 24, 32, 36, 40)]
HEADER_FIELD_OFFSETS += [S1 + o for o in (0, 4, 12, 36, 40)]


def forged_cases(sample: bytes, built: bytes) -> dict[str, tuple[bytes, str | None]]:
    return {
        "empty": (b"", None),
        "short_header": (sample[:4095], "header"),
        "version_1_0": (_set(sample, 0, "<BB", 1, 0), "version"),
        "version_0_0": (_set(sample, 0, "<BB", 0, 0), "version"),
        "mode_3": (_set(sample, 20, "<H", 3), "compression mode"),
        "sections_huge": (_set(sample, 4, "<I", 0xFFFFFFFF), "sections"),
        "sections_beyond_file": (_set(sample, 4, "<I", 2), None),
        "sections_zero": (_set(sample, 4, "<I", 0), "sections hold 0"),
        "total_more_than_sections": (_set(sample, 16, "<I", 5), "promises 5"),
        "total_huge": (_set(sample, 16, "<I", 0xFFFFFFFF), None),
        "splats_beyond_room": (_set(sample, S0, "<I", 5), "room"),
        "room_beyond_file": (_set(_set(sample, S0 + 4, "<I", 50), S0, "<I", 4), "truncated"),
        "room_huge": (_set(sample, S0 + 4, "<I", 0xFFFFFFFF), None),
        "buckets_beyond_file": (_set(sample, S0 + 12, "<I", 0xFFFFFF), "truncated"),
        "bucket_storage_huge": (_set(sample, S0 + 20, "<H", 0xFFFF), "truncated"),
        "partials_beyond_file": (_set(sample, S0 + 36, "<I", 0xFFFFFFF), "truncated"),
        "sh_degree_3": (_set(sample, S0 + 40, "<H", 3), "SH degree"),
        "sh_degree_huge": (_set(sample, S0 + 40, "<H", 0xFFFF), "SH degree"),
        # Forgeries that only modes 1/2 notice (bucket bookkeeping):
        "built_second_section_beyond_file": (_set(built, S1 + 4, "<I", 10_000), "section 1"),
        "built_partials_too_short": (_set(built, 4096 + 2 * 1024, "<I", 1), None),
        "built_no_partials": (_set(built, S0 + 36, "<I", 0), None),
        "built_too_few_buckets": (_set(built, S0 + 12, "<I", 1), None),
        "built_bucket_storage_small": (_set(built, S0 + 20, "<H", 8), None),
        "built_full_buckets_zero_capacity": (_set(built, S0 + 8, "<I", 0), None),
        "built_truncated_last_byte": (built[:-1], "section 1"),
    }


@pytest.mark.timeout(60)
def test_forged_and_damaged(splats_dir: Path, tmp_path: Path, two_sections: bytes) -> None:
    sample = (splats_dir / "minimal.ksplat").read_bytes()
    failures = []
    for name, (data, needle) in forged_cases(sample, two_sections).items():
        path = write(tmp_path, f"{name}.ksplat", data)
        for opener in (read_ksplat, lambda p: open_media(p).frame(0)):
            try:
                opener(path)
            except HoloscopeError as exc:
                if not isinstance(exc, CorruptStream):
                    failures.append(f"{name}: {type(exc).__name__} instead of CorruptStream: {exc}")
                if needle and needle not in str(exc):
                    failures.append(f"{name}: message {str(exc)!r} lacks {needle!r}")
                if str(path) not in str(exc):
                    failures.append(f"{name}: message does not name the file")
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
            else:
                failures.append(f"{name}: opened without an error")
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(60)
def test_truncated_at_several_lengths(splats_dir: Path, tmp_path: Path, two_sections: bytes) -> None:
    for label, data in (("sample", (splats_dir / "minimal.ksplat").read_bytes()), ("built", two_sections)):
        for cut in (0, 1, 2, 100, 4095, 4096, 4097, 5000, 5119, 5120, 5121, (5120 + len(data)) // 2, len(data) - 1):
            path = write(tmp_path, f"{label}-{cut}.ksplat", data[:cut])
            with pytest.raises(CorruptStream):
                read_ksplat(path)


def assert_result_or_holoscope_error(path: Path) -> None:
    try:
        cloud = read_ksplat(path)
    except HoloscopeError as exc:
        assert str(path) in str(exc)
        return
    assert cloud.count > 0
    for name in ("means", "scales", "quats", "opacities", "sh"):
        assert np.all(np.isfinite(getattr(cloud, name))), name
    assert np.all(cloud.scales > 0)
    assert np.all((cloud.opacities >= 0) & (cloud.opacities <= 1))


@pytest.mark.timeout(120)
def test_bit_flips(splats_dir: Path, tmp_path: Path, two_sections: bytes) -> None:
    """20 single-bit flips over the headers and the data: a cloud or a holoscope error, nothing else."""
    rng = random.Random(99)
    for label, data in (("sample", (splats_dir / "minimal.ksplat").read_bytes()), ("built", two_sections)):
        header_fields = [0, 1, 4, 5, 16, 17, 20, 36, 39] + [S0 + o for o in (0, 4, 8, 12, 16, 20, 24, 32, 36, 40)]
        positions = rng.sample(header_fields, 10) + rng.sample(range(5120, len(data)), 10)
        for pos in positions:
            damaged = bytearray(data)
            damaged[pos] ^= 1 << rng.randrange(8)
            assert_result_or_holoscope_error(write(tmp_path, f"flip-{label}-{pos}.ksplat", bytes(damaged)))


# Fuzz --------------------------------------------------------------------------------------


# ~200 examples, reproducible (derandomize), no example database written into the repository.
FUZZ_SETTINGS = fuzz_settings(200)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-ksplat")


@pytest.mark.timeout(300)
@FUZZ_SETTINGS
@given(head=st.binary(min_size=0, max_size=64), size=st.integers(0, 9000), fill=st.integers(0, 255))
def test_fuzz_random_bytes(fuzz_dir: Path, head: bytes, size: int, fill: int) -> None:
    """Random header bytes (often a valid 0.x version) padded to a random size."""
    data = (b"\x00\x01" + head if fill % 2 else head) + bytes([fill]) * size
    path = fuzz_dir / "random.ksplat"
    path.write_bytes(data)
    assert_result_or_holoscope_error(path)


@pytest.mark.timeout(300)
@FUZZ_SETTINGS
@given(
    which=st.sampled_from(["sample", "built"]),
    edits=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(HEADER_FIELD_OFFSETS), st.integers(0, 8000)),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(0, 8000)),
)
def test_fuzz_mutated_files(fuzz_dir: Path, splats_dir: Path, two_sections: bytes, which, edits, cut) -> None:
    data = bytearray((splats_dir / "minimal.ksplat").read_bytes() if which == "sample" else two_sections)
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[:cut]
    path = fuzz_dir / "mutated.ksplat"
    path.write_bytes(bytes(data))
    assert_result_or_holoscope_error(path)
