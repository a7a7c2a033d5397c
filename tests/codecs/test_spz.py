"""Niantic SPZ reader and writer: the real splat-transform fixtures (v2, v3, v4 and a raw v2
stream), round trips at every SH degree and writable version, orientation flips, damaged and
hostile input, and fuzzing.

Expected sample values come from the fixture generator (splat-transform
test/fixtures/create-fixtures.mjs, splat-formats.md §6), not from the reader under test: a 2x2
grid at x, z in {-1, 0}, y = 0; alpha byte 230; scale byte 123 (log sigma = 123/16 - 10);
identity rotations. The v2 (and raw) fixture stores fracBits 8 and the raw RGB bytes 85/170/128
as colours; the v3 and v4 fixtures store fracBits 12, z negated, and colours properly encoded
with the 0.15 scale (base colour ~ 85/255, 170/255, 128/255).

If Niantic's reference Python bindings (module ``spz`` with ``load_spz``) are importable,
decoded samples and files from this writer are cross-checked against them; otherwise those
tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import struct
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from holoscope.codecs.formats import spz as spz_module
from holoscope.codecs.formats.common import MAX_SPLATS
from holoscope.codecs.formats.spz import (
    COLOR_SCALE,
    READER_NAME,
    fractional_bits_for,
    pack_arrays,
    read_spz,
    write_spz,
)
from holoscope.core.errors import (
    CorruptStream,
    EmptyMedia,
    HoloscopeError,
    InvalidArgument,
    NotAFile,
    OutputError,
    SourceNotFound,
)
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.core.registry import open_media, writer_for
from holoscope.core.splat_math import flip_axes
from .helpers import assert_valid_cloud, fuzz_settings, rotation_angle_deg
from .helpers import random_cloud as shared_random_cloud

SAMPLES = ("minimal-v2.spz", "minimal-v3.spz", "minimal-v4.spz", "minimal-raw.spz")
RUB_RDF = (1, -1, -1)
GRID = np.array([[-1, 0, -1], [0, 0, -1], [-1, 0, 0], [0, 0, 0]], np.float32)
GRID_BYTES = np.array([[85, 85, 128], [170, 85, 128], [85, 170, 128], [170, 170, 128]], np.float64)


@pytest.fixture(scope="module")
def splats_dir(samples_dir: Path) -> Path:
    folder = samples_dir / "splats"
    missing = [name for name in SAMPLES if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"SPZ samples missing from {folder}: {', '.join(missing)}")
    return folder


random_cloud = partial(shared_random_cloud, profile="spz")  # tests/codecs/helpers.py


def assert_valid(cloud: SplatCloud) -> None:
    assert_valid_cloud(cloud, positive_scales=True)


def assert_same_cloud(a: SplatCloud, b: SplatCloud) -> None:
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def legacy_stream(version: int, count: int, degree: int, frac: int, flags: int, body: bytes) -> bytes:
    return struct.pack("<4sIIBBBB", b"NGSP", version, count, degree, frac, flags, 0) + body


def v4_file(count: int, degree: int, streams: list[bytes], *, frac: int = 12, flags: int = 0,
            extension: bytes = b"", toc: list[tuple[int, int]] | None = None,
            n_streams: int | None = None) -> bytes:  # fmt: skip
    frames = [zstandard.ZstdCompressor().compress(s) for s in streams]
    toc = toc if toc is not None else [(len(f), len(s)) for f, s in zip(frames, streams, strict=True)]
    head = struct.pack("<4sIIBBBBI12x", b"NGSP", 4, count, degree, frac, flags,
                       len(frames) if n_streams is None else n_streams, 32 + len(extension))  # fmt: skip
    return head + extension + b"".join(struct.pack("<QQ", c, u) for c, u in toc) + b"".join(frames)


# Samples ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_reads_to_a_valid_cloud(splats_dir: Path, name: str) -> None:
    cloud = read_spz(splats_dir / name)
    assert cloud.count == 4 and cloud.sh_degree == 0
    assert_valid(cloud)
    np.testing.assert_allclose(cloud.opacities, 230 / 255, rtol=1e-6)
    np.testing.assert_allclose(cloud.scales, np.exp(123 / 16 - 10), rtol=1e-6)
    np.testing.assert_allclose(np.abs(cloud.quats[:, 0]), 1, atol=1e-4)  # identity rotations


@pytest.mark.parametrize("name, version, frac", [("minimal-v2.spz", 2, 8), ("minimal-raw.spz", 2, 8)])
def test_v2_samples_hold_the_grid_and_raw_rgb_bytes(splats_dir: Path, name: str, version: int, frac: int) -> None:
    cloud = read_spz(splats_dir / name)
    assert cloud.metadata["format_info"] == {"spz_version": version, "fractional_bits": frac,
                                             "antialiased": False, "sh_degree": 0}  # fmt: skip
    np.testing.assert_array_equal(cloud.means, GRID)
    # The generator stored raw RGB bytes; SPZ decodes colour bytes with the 0.15 scale.
    np.testing.assert_allclose(cloud.sh[:, 0], (GRID_BYTES / 255 - 0.5) / COLOR_SCALE, atol=1e-6)
    # 3-byte rotations of 128: xyz = 128/127.5 - 1, w from the unit norm.
    np.testing.assert_allclose(cloud.quats[:, 1:], 128 / 127.5 - 1, atol=1e-6)


def test_raw_stream_decodes_like_its_gzipped_twin(splats_dir: Path) -> None:
    assert_same_cloud(read_spz(splats_dir / "minimal-raw.spz"), read_spz(splats_dir / "minimal-v2.spz"))


@pytest.mark.parametrize("name, version", [("minimal-v3.spz", 3), ("minimal-v4.spz", 4)])
def test_v3_v4_samples_hold_the_z_flipped_grid(splats_dir: Path, name: str, version: int) -> None:
    cloud = read_spz(splats_dir / name)
    assert cloud.metadata["format_info"] == {"spz_version": version, "fractional_bits": 12,
                                             "antialiased": False, "sh_degree": 0}  # fmt: skip
    np.testing.assert_array_equal(cloud.means, GRID * np.array([1, 1, -1], np.float32))
    # Properly encoded colours: the base colour is the generator's within one 0.15-scaled step.
    np.testing.assert_allclose(cloud.base_colors(), GRID_BYTES / 255, atol=0.5 / 255 * SH_C0 / COLOR_SCALE + 1e-6)
    np.testing.assert_array_equal(cloud.quats, np.tile([1, 0, 0, 0], (4, 1)))


def test_v3_and_v4_samples_decode_identically(splats_dir: Path) -> None:
    assert_same_cloud(read_spz(splats_dir / "minimal-v3.spz"), read_spz(splats_dir / "minimal-v4.spz"))


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_open_through_the_registry(splats_dir: Path, name: str) -> None:
    media = open_media(splats_dir / name)
    assert media.reader == READER_NAME == "holoscope.spz"
    assert media.format == "spz" and media.frame_count == 1
    assert media.info["splats"] == 4 and "spz_version" in media.info
    np.testing.assert_array_equal(media.frame(0).means, read_spz(splats_dir / name).means)  # no flip by default


def test_writer_through_the_registry(tmp_path: Path) -> None:
    spec, writer = writer_for(tmp_path / "x.spz")
    assert spec.name == "spz" and writer is write_spz


# Round trips --------------------------------------------------------------------------------

# Half a quantisation step per attribute (plus float32 slack), from the format's precision.
SH1_BOUND = (4 + 0.5) / 128  # 5 bits kept: a bucket of 8 codes, after rounding to 1/128
SH_REST_BOUND = (8 + 0.5) / 128  # 4 bits kept: a bucket of 16 codes


def spz_roundtrip_errors(cloud: SplatCloud, back: SplatCloud) -> dict[str, tuple[float, float]]:
    errors = {
        "position": np.abs(back.means.astype(np.float64) - cloud.means),
        "log_scale": np.abs(np.log(back.scales.astype(np.float64)) - np.log(cloud.scales.astype(np.float64))),
        "rotation_deg": rotation_angle_deg(back.quats, cloud.quats),
        "opacity": np.abs(back.opacities.astype(np.float64) - cloud.opacities),
        "color_dc": np.abs(back.sh[:, 0].astype(np.float64) - cloud.sh[:, 0]),
    }
    if cloud.sh_degree >= 1:
        errors["sh_degree1"] = np.abs(back.sh[:, 1:4].astype(np.float64) - cloud.sh[:, 1:4])
    if cloud.sh_degree >= 2:
        errors["sh_degree2_3"] = np.abs(back.sh[:, 4:].astype(np.float64) - cloud.sh[:, 4:])
    return {name: (float(e.max()), float(e.mean())) for name, e in errors.items()}


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_write_read_round_trip(tmp_path: Path, version: int, degree: int) -> None:
    cloud = random_cloud(2000, degree, seed=10 * version + degree)
    path = tmp_path / f"cloud-v{version}.spz"
    write_spz(cloud, path, version=version)
    back = read_spz(path)
    assert back.count == 2000 and back.sh_degree == degree
    info = back.metadata["format_info"]
    assert info == {"spz_version": version, "fractional_bits": 12, "antialiased": False, "sh_degree": degree}
    errors = spz_roundtrip_errors(cloud, back)
    size = path.stat().st_size
    print(f"\nSPZ v{version} SH{degree}: {size / 2000:.2f} bytes/splat; max / mean error: {errors}")
    assert errors["position"][0] <= 2.0 ** -(12 + 1) + 1e-9
    assert errors["log_scale"][0] <= 1 / 32 + 1e-5
    assert errors["rotation_deg"][0] <= 0.5  # 9-bit components: ~0.1 degrees in practice
    assert errors["opacity"][0] <= 0.5 / 255 + 1e-6
    assert errors["color_dc"][0] <= 0.5 / (COLOR_SCALE * 255) + 1e-5
    if degree >= 1:
        assert errors["sh_degree1"][0] <= SH1_BOUND + 1e-6
    if degree >= 2:
        assert errors["sh_degree2_3"][0] <= SH_REST_BOUND + 1e-6


@pytest.mark.parametrize("degree", [0, 3])
def test_v3_and_v4_quantise_identically(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(300, degree, seed=5)
    write_spz(cloud, tmp_path / "a.spz", version=3)
    write_spz(cloud, tmp_path / "b.spz", version=4)
    assert (tmp_path / "a.spz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "b.spz").read_bytes()[:8] == b"NGSP\x04\0\0\0"
    assert_same_cloud(read_spz(tmp_path / "a.spz"), read_spz(tmp_path / "b.spz"))


def test_written_v3_is_a_plain_legacy_stream(tmp_path: Path) -> None:
    """Byte layout check independent of the reader: header fields and array sizes."""
    cloud = random_cloud(10, 2, seed=3)
    write_spz(cloud, tmp_path / "c.spz")
    payload = gzip.decompress((tmp_path / "c.spz").read_bytes())
    magic, version, count, degree, frac, flags, reserved = struct.unpack_from("<4sIIBBBB", payload)
    assert (magic, version, count, degree, frac, flags, reserved) == (b"NGSP", 3, 10, 2, 12, 0, 0)
    assert len(payload) == 16 + 10 * (9 + 1 + 3 + 3 + 4 + 8 * 3)
    # Alphas follow the positions: round(opacity * 255).
    alphas = np.frombuffer(payload, np.uint8, 10, 16 + 90)
    np.testing.assert_array_equal(alphas, np.floor(cloud.opacities.astype(np.float64) * 255 + 0.5))


@pytest.mark.parametrize("version", [3, 4])
def test_writer_packs_in_runs_without_changing_the_file(tmp_path: Path, version: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cloud = random_cloud(100, 3, seed=13)
    write_spz(cloud, tmp_path / "whole.spz", version=version)
    monkeypatch.setattr(spz_module, "PACK_ROWS", 7)  # runs that do not divide the count
    write_spz(cloud, tmp_path / "runs.spz", version=version)
    assert (tmp_path / "runs.spz").read_bytes() == (tmp_path / "whole.spz").read_bytes()


def test_written_v4_layout(tmp_path: Path) -> None:
    cloud = random_cloud(10, 1, seed=4)
    write_spz(cloud, tmp_path / "c.spz", version=4)
    data = (tmp_path / "c.spz").read_bytes()
    magic, version, count, degree, frac, flags, n_streams, toc = struct.unpack_from("<4sIIBBBBI", data)
    assert (magic, version, count, degree, frac, n_streams, toc) == (b"NGSP", 4, 10, 1, 12, 6, 32)
    sizes = [struct.unpack_from("<QQ", data, 32 + 16 * i) for i in range(6)]
    assert [u for _, u in sizes] == [90, 10, 30, 30, 40, 90]
    assert 32 + 6 * 16 + sum(c for c, _ in sizes) == len(data)


def test_adaptive_fractional_bits(tmp_path: Path) -> None:
    cloud = random_cloud(500, 0, seed=2, extent=5000.0)
    assert fractional_bits_for(cloud.means) == 10  # 5000 * 2^11 overflows int24
    write_spz(cloud, tmp_path / "far.spz")
    back = read_spz(tmp_path / "far.spz")
    assert back.metadata["format_info"]["fractional_bits"] == 10
    assert np.abs(back.means.astype(np.float64) - cloud.means).max() <= 2.0**-11 + 1e-9
    assert fractional_bits_for(np.array([[2047.0, 0, 0]])) == 12
    assert fractional_bits_for(np.array([[8_000_000.0, 0, 0]])) == 0
    huge = random_cloud(3, 0)
    huge.means[0, 1] = -9e6
    with pytest.raises(InvalidArgument, match="24-bit"):
        write_spz(huge, tmp_path / "huge.spz")
    assert not (tmp_path / "huge.spz").exists()


def test_out_of_range_values_clip(tmp_path: Path) -> None:
    cloud = random_cloud(4, 1)
    cloud.scales[0] = 1e-9  # log below -10
    cloud.scales[1] = 1e6  # log above 5.94
    cloud.sh[2, 0] = 10.0  # beyond 0.5 / 0.15
    cloud.sh[3, 1] = -5.0
    write_spz(cloud, tmp_path / "clip.spz")
    back = read_spz(tmp_path / "clip.spz")
    np.testing.assert_allclose(np.log(back.scales[0]), -10, atol=1e-5)
    np.testing.assert_allclose(np.log(back.scales[1]), 255 / 16 - 10, atol=1e-5)
    np.testing.assert_allclose(back.sh[2, 0], (255 / 255 - 0.5) / COLOR_SCALE, atol=1e-5)
    np.testing.assert_allclose(back.sh[3, 1], -1, atol=1e-6)


def test_writer_refuses_bad_requests(tmp_path: Path) -> None:
    cloud = random_cloud(4, 0)
    for version in (1, 2, 5):
        with pytest.raises(InvalidArgument):
            write_spz(cloud, tmp_path / "v.spz", version=version)
    with pytest.raises(InvalidArgument):
        write_spz(cloud.subset(np.zeros(4, bool)), tmp_path / "empty.spz")
    bad = random_cloud(4, 2)
    bad.sh[0, 5, 1] = np.inf
    with pytest.raises(InvalidArgument):
        write_spz(bad, tmp_path / "inf.spz")
    with pytest.raises(InvalidArgument):
        write_spz(cloud, tmp_path / "mirror.spz", flip=(1, 1, -1))
    with pytest.raises(OutputError):
        write_spz(cloud, tmp_path / "missing" / "dir.spz")
    assert list(tmp_path.iterdir()) == []


def test_antialiased_flag_survives_a_round_trip(tmp_path: Path) -> None:
    cloud = random_cloud(20, 0)
    arrays = b"".join(data for _, data in pack_arrays(cloud, 12))
    (tmp_path / "aa.spz").write_bytes(gzip.compress(legacy_stream(3, 20, 0, 12, 0x1, arrays)))
    back = read_spz(tmp_path / "aa.spz")
    assert back.metadata["format_info"]["antialiased"] is True
    for version in (3, 4):
        write_spz(back, tmp_path / f"again{version}.spz", version=version)
        assert read_spz(tmp_path / f"again{version}.spz").metadata["format_info"]["antialiased"] is True


# Other versions and layouts written by hand -------------------------------------------------


def test_version_1_half_float_positions(tmp_path: Path) -> None:
    cloud = random_cloud(50, 1, seed=8, extent=3.0)
    arrays = dict(pack_arrays(cloud, 12))
    halves = cloud.means.astype("<f2")
    rot3 = np.full((50, 3), 128, np.uint8).tobytes()  # v1 rotations are 3 bytes
    body = halves.tobytes() + arrays["alphas"] + arrays["colors"] + arrays["scales"] + rot3 + arrays["sh"]
    (tmp_path / "v1.spz").write_bytes(gzip.compress(legacy_stream(1, 50, 1, 0, 0, body)))
    back = read_spz(tmp_path / "v1.spz")
    assert back.metadata["format_info"]["spz_version"] == 1
    np.testing.assert_array_equal(back.means, halves.astype(np.float32))


def test_version_2_first_three_rotations(tmp_path: Path) -> None:
    q = np.array([[0.8, 0.36, -0.48, 0.0], [-0.5, 0.5, 0.5, 0.5]])  # w, x, y, z; second has w < 0
    cloud = SplatCloud(np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32), q.astype(np.float32),
                       np.ones(2, np.float32), np.zeros((2, 1, 3), np.float32))  # fmt: skip
    arrays = dict(pack_arrays(cloud, 12))
    xyz = q[:, 1:] * np.sign(q[:, :1])  # w >= 0 by convention
    rot3 = np.clip(np.floor(xyz * 127.5 + 127.5 + 0.5), 0, 255).astype(np.uint8)
    body = arrays["positions"] + arrays["alphas"] + arrays["colors"] + arrays["scales"] + rot3.tobytes()
    (tmp_path / "v2.spz").write_bytes(gzip.compress(legacy_stream(2, 2, 0, 12, 0, body)))
    back = read_spz(tmp_path / "v2.spz")
    assert rotation_angle_deg(back.quats, q.astype(np.float32)).max() < 1.0


@pytest.mark.parametrize("container", ["gzip", "v4"])
def test_degree_4_data_is_read_up_to_degree_3(tmp_path: Path, container: str) -> None:
    cloud = random_cloud(30, 3, seed=6)
    arrays = dict(pack_arrays(cloud, 12))
    extra = np.random.default_rng(1).integers(0, 256, (30, 9, 3), dtype=np.uint8)
    sh24 = np.concatenate([np.frombuffer(arrays["sh"], np.uint8).reshape(30, 15, 3), extra], axis=1).tobytes()
    names = ["positions", "alphas", "colors", "scales", "rotations"]
    if container == "gzip":
        body = b"".join(arrays[n] for n in names) + sh24
        data = gzip.compress(legacy_stream(3, 30, 4, 12, 0, body))
    else:
        data = v4_file(30, 4, [arrays[n] for n in names] + [sh24])
    (tmp_path / "sh4.spz").write_bytes(data)
    back = read_spz(tmp_path / "sh4.spz")
    assert back.sh_degree == 3 and back.metadata["format_info"]["sh_degree"] == 4
    write_spz(cloud, tmp_path / "sh3.spz")
    assert_same_cloud(back, read_spz(tmp_path / "sh3.spz"))


def test_extension_records_are_skipped(tmp_path: Path) -> None:
    cloud = random_cloud(40, 1, seed=7)
    arrays = pack_arrays(cloud, 12)
    record = struct.pack("<II", 0xADBE0002, 12) + struct.pack("<3f", -0.5, 0.5, 1.0)  # safe orbit camera
    body = b"".join(data for _, data in arrays)
    write_spz(cloud, tmp_path / "plain.spz")
    plain = read_spz(tmp_path / "plain.spz")
    (tmp_path / "ext3.spz").write_bytes(gzip.compress(legacy_stream(3, 40, 1, 12, 0x2, record + body)))
    assert_same_cloud(read_spz(tmp_path / "ext3.spz"), plain)
    (tmp_path / "ext4.spz").write_bytes(v4_file(40, 1, [d for _, d in arrays], flags=0x2, extension=record))
    assert_same_cloud(read_spz(tmp_path / "ext4.spz"), plain)


# Orientation --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_flip_round_trip_is_exact(splats_dir: Path, name: str) -> None:
    raw = read_spz(splats_dir / name)
    flipped = read_spz(splats_dir / name, flip=RUB_RDF)
    np.testing.assert_array_equal(flipped.means, raw.means * np.array(RUB_RDF, np.float32))
    assert_same_cloud(flip_axes(flipped, RUB_RDF), raw)


@pytest.mark.parametrize("name, version", [("minimal-v3.spz", 3), ("minimal-v4.spz", 4)])
def test_read_flip_then_write_flip_gives_back_the_file(splats_dir: Path, tmp_path: Path, name: str,
                                                       version: int) -> None:  # fmt: skip
    original = splats_dir / name
    cloud = read_spz(original, flip=RUB_RDF)
    out = tmp_path / "back.spz"
    write_spz(cloud, out, version=version, flip=RUB_RDF)
    assert_same_cloud(read_spz(out), read_spz(original))
    if version == 3:  # the legacy payload comes back byte for byte
        assert gzip.decompress(out.read_bytes()) == gzip.decompress(original.read_bytes())


@pytest.mark.parametrize("version", [3, 4])
def test_flip_round_trip_of_a_written_sh3_file(tmp_path: Path, version: int) -> None:
    cloud = random_cloud(500, 3, seed=11, extent=5.0)
    write_spz(cloud, tmp_path / "plain.spz", version=version)
    plain = read_spz(tmp_path / "plain.spz")
    # Reading with a flip and writing with the same flip reproduces the file's arrays exactly.
    write_spz(read_spz(tmp_path / "plain.spz", flip=RUB_RDF), tmp_path / "again.spz", version=version, flip=RUB_RDF)
    # (Not always byte for byte: a rotation field of magnitude 0 may carry either sign bit.)
    assert_same_cloud(read_spz(tmp_path / "again.spz"), plain)
    # Writing with a flip stores the mirrored axes ...
    write_spz(cloud, tmp_path / "flipped.spz", version=version, flip=RUB_RDF)
    stored = read_spz(tmp_path / "flipped.spz")
    np.testing.assert_array_equal(stored.means, plain.means * np.array(RUB_RDF, np.float32))
    # ... with the SH signs for RUB <-> RDF (splat-formats.md §3.2): - - + - + + - + - + - - + - +
    signs = np.array([1] + [-1 if c == "-" else 1 for c in "--+-++-+-+--+-+"], np.float32)
    # (quantisation rounds ties upwards, so a negated value may land one bucket away)
    np.testing.assert_allclose(stored.sh, plain.sh * signs[None, :, None], atol=16 / 128 + 1e-6)
    # ... and reading it back with the same flip gives the cloud within the format's precision.
    errors = spz_roundtrip_errors(cloud, read_spz(tmp_path / "flipped.spz", flip=RUB_RDF))
    assert errors["position"][0] <= 2.0**-13 + 1e-9 and errors["rotation_deg"][0] <= 0.5
    assert errors["sh_degree1"][0] <= SH1_BOUND + 1e-6 and errors["sh_degree2_3"][0] <= SH_REST_BOUND + 1e-6


def test_odd_flip_is_refused(splats_dir: Path) -> None:
    with pytest.raises(InvalidArgument):
        read_spz(splats_dir / "minimal-v3.spz", flip=(-1, 1, 1))


# Bad input ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_sources(splats_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The samples plus small SH3 files from this writer, v3 and v4."""
    sources = {name: (splats_dir / name).read_bytes() for name in SAMPLES}
    folder = tmp_path_factory.mktemp("spz-sources")
    cloud = random_cloud(60, 3, seed=12)
    for version in (3, 4):
        write_spz(cloud, folder / f"sh3-v{version}.spz", version=version)
        sources[f"sh3-v{version}.spz"] = (folder / f"sh3-v{version}.spz").read_bytes()
    return sources


def test_truncation_at_many_lengths_raises(hostile_sources: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in hostile_sources.items():
        lengths = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 48, len(data) // 3, len(data) // 2,
                   len(data) - 9, len(data) - 8, len(data) - 4, len(data) - 1}  # fmt: skip
        for length in sorted(n for n in lengths if 0 <= n < len(data)):
            path = tmp_path / f"{name}.{length}"
            path.write_bytes(data[:length])
            with pytest.raises(HoloscopeError):
                read_spz(path)


def test_bit_flips_give_a_valid_cloud_or_a_holoscope_error(hostile_sources: dict[str, bytes],
                                                           tmp_path: Path) -> None:  # fmt: skip
    for name, data in hostile_sources.items():
        raised = 0
        for position in np.linspace(0, len(data) - 1, 20).astype(int):
            damaged = bytearray(data)
            damaged[position] ^= 1 << (position % 8)
            path = tmp_path / f"{name}.flip{position}"
            path.write_bytes(bytes(damaged))
            try:
                cloud = read_spz(path)
            except HoloscopeError:
                raised += 1
                continue
            assert cloud.count > 0
            assert np.isfinite(cloud.means).all() and np.isfinite(cloud.sh).all()
            assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()
        if data[:2] == b"\x1f\x8b" or name.startswith("sh3-v4"):
            # CRC32 (gzip) and zstd frame checksums (this writer) catch damage past the headers.
            assert raised >= 16, (name, raised)


def test_empty_missing_directory_and_wrong_magic(tmp_path: Path) -> None:
    (tmp_path / "empty.spz").write_bytes(b"")
    with pytest.raises(CorruptStream):
        read_spz(tmp_path / "empty.spz")
    with pytest.raises(SourceNotFound):
        read_spz(tmp_path / "missing.spz")
    (tmp_path / "dir.spz").mkdir()
    with pytest.raises(NotAFile):
        read_spz(tmp_path / "dir.spz")
    cases = {
        "magic.spz": b"NGSX" + bytes(60),
        "text.spz": b"hello, this is not a splat file at all",
        "gzip-of-other.spz": gzip.compress(b"PK\x03\x04" + bytes(100)),
        "gzip-junk.spz": b"\x1f\x8b" + bytes(40),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptStream) as info:
            read_spz(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)


@pytest.mark.parametrize("version", [0, 5, 0xFFFFFFFF])
def test_unsupported_versions(tmp_path: Path, version: int) -> None:
    for name, data in {"raw": legacy_stream(version, 1, 0, 12, 0, bytes(64)),
                       "gz": gzip.compress(legacy_stream(version, 1, 0, 12, 0, bytes(64)))}.items():  # fmt: skip
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptStream, match="version"):
            read_spz(tmp_path / name)


def test_bad_sh_degree(tmp_path: Path) -> None:
    (tmp_path / "sh5.spz").write_bytes(gzip.compress(legacy_stream(3, 1, 5, 12, 0, bytes(200))))
    with pytest.raises(CorruptStream, match="SH degree"):
        read_spz(tmp_path / "sh5.spz")


def test_zero_splats(tmp_path: Path) -> None:
    (tmp_path / "zero.spz").write_bytes(gzip.compress(legacy_stream(3, 0, 0, 12, 0, b"")))
    with pytest.raises(EmptyMedia):
        read_spz(tmp_path / "zero.spz")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("count", [2**31, 2**32 - 1, MAX_SPLATS, 2**27])
def test_huge_counts_are_refused_before_allocating(tmp_path: Path, count: int) -> None:
    files = {
        "raw": legacy_stream(3, count, 3, 12, 0, bytes(1000)),
        "gz": gzip.compress(legacy_stream(3, count, 3, 12, 0, bytes(1000))),
        "v4": struct.pack("<4sIIBBBBI12x", b"NGSP", 4, count, 3, 12, 0, 6, 32)
        + b"".join(struct.pack("<QQ", 10, count * size) for size in (9, 1, 3, 3, 4, 45))
        + bytes(60),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptStream):
            read_spz(tmp_path / name)


@pytest.mark.timeout(60)
def test_gzip_bomb_stops_at_the_header_limit(tmp_path: Path) -> None:
    # 4 splats promise 16 + 4 * 20 bytes; the stream inflates to 256 MiB of zeros.
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [stream.compress(legacy_stream(3, 4, 0, 12, 0, b""))]
    zeros = bytes(1 << 24)
    parts += [stream.compress(zeros) for _ in range(16)]
    parts.append(stream.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 300_000
    (tmp_path / "bomb.spz").write_bytes(bomb)
    with pytest.raises(CorruptStream, match="beyond"):
        read_spz(tmp_path / "bomb.spz")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("declare_size", [True, False])
def test_zstd_bomb_is_refused(tmp_path: Path, declare_size: bool) -> None:
    cloud = random_cloud(4, 0)
    arrays = [d for _, d in pack_arrays(cloud, 12)]
    bomb = zstandard.ZstdCompressor(level=3, write_content_size=declare_size).compress(bytes(1 << 28))
    good = [zstandard.ZstdCompressor().compress(a) for a in arrays]
    frames = [bomb] + good[1:]
    toc = [(len(f), len(a)) for f, a in zip(frames, arrays, strict=True)]  # the TOC tells the truth about sizes
    head = struct.pack("<4sIIBBBBI12x", b"NGSP", 4, 4, 0, 12, 0, 5, 32)
    data = head + b"".join(struct.pack("<QQ", c, u) for c, u in toc) + b"".join(frames)
    (tmp_path / "zbomb.spz").write_bytes(data)
    with pytest.raises(CorruptStream):
        read_spz(tmp_path / "zbomb.spz")


def test_v4_table_of_contents_is_checked(tmp_path: Path) -> None:
    cloud = random_cloud(8, 1)
    arrays = [d for _, d in pack_arrays(cloud, 12)]
    frames = [zstandard.ZstdCompressor().compress(a) for a in arrays]
    honest = [(len(f), len(a)) for f, a in zip(frames, arrays, strict=True)]
    cases = {
        "uncompressed size disagrees with the header": v4_file(
            8, 1, arrays, toc=[honest[0], (len(frames[1]), 9)] + honest[2:]
        ),
        "compressed sizes beyond the file": v4_file(8, 1, arrays, toc=honest[:-1] + [(10**6, honest[-1][1])]),
        "absurd u64 sizes": v4_file(8, 1, arrays, toc=[(2**63, 2**63)] + honest[1:]),
        "stream count": v4_file(8, 1, arrays, n_streams=5),
        "count disagrees with the streams": v4_file(9, 1, arrays),
        "degree disagrees with the streams": v4_file(8, 2, arrays),
    }
    for label, data in cases.items():
        (tmp_path / "bad.spz").write_bytes(data)
        with pytest.raises(CorruptStream):
            read_spz(tmp_path / "bad.spz")
        assert label
    good = v4_file(8, 1, arrays)
    (tmp_path / "good.spz").write_bytes(good)
    assert read_spz(tmp_path / "good.spz").count == 8
    inside = bytearray(good)
    inside[16:20] = struct.pack("<I", 16)  # TOC offset inside the header
    beyond = bytearray(good)
    beyond[16:20] = struct.pack("<I", len(good))
    for data in (inside, beyond):
        (tmp_path / "bad.spz").write_bytes(bytes(data))
        with pytest.raises(CorruptStream):
            read_spz(tmp_path / "bad.spz")


def test_trailing_data_in_a_legacy_stream_is_reported(tmp_path: Path) -> None:
    cloud = random_cloud(5, 0)
    body = b"".join(d for _, d in pack_arrays(cloud, 12))
    for name, data in {"gz": gzip.compress(legacy_stream(3, 5, 0, 12, 0, body + b"extra")),
                       "raw": legacy_stream(3, 5, 0, 12, 0, body + b"extra")}.items():  # fmt: skip
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CorruptStream):
            read_spz(tmp_path / name)


def test_half_float_nan_positions_are_dropped(tmp_path: Path, caplog) -> None:
    cloud = random_cloud(3, 0, extent=1.0)
    arrays = dict(pack_arrays(cloud, 12))
    halves = cloud.means.astype("<f2")
    halves[1, 2] = np.nan
    body = halves.tobytes() + arrays["alphas"] + arrays["colors"] + arrays["scales"] + bytes(9)
    (tmp_path / "nan.spz").write_bytes(gzip.compress(legacy_stream(1, 3, 0, 0, 0, body)))
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        back = read_spz(tmp_path / "nan.spz")
    assert back.count == 2 and "dropped 1 of 3" in caplog.text


# Pipelined decoding -------------------------------------------------------------------------
# Large files are inflated a step at a time and decoded in runs of splats on worker threads as
# the bytes arrive; small files run everything on the calling thread. These tests force the
# pipeline onto small files (tiny steps and runs, several threads) and check that it decodes
# exactly what the plain path decodes and fails wherever the plain path fails.


@contextlib.contextmanager
def forced_pipeline(threads: int = 3, max_wait: float | None = None) -> Iterator[None]:
    """Tiny inflate steps and decode runs, on ``threads`` threads; ``max_wait=-1`` makes the
    calling thread take every job it can between steps (as when the threads fall behind)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spz_module, "_thread_count", lambda count: threads)
        if max_wait is not None:
            patch.setattr(spz_module, "MAX_WAIT", max_wait)
        patch.setattr(spz_module, "DECODE_ROWS", 3)
        patch.setattr(spz_module, "INFLATE_INPUT_BYTES", 64)
        patch.setattr(spz_module, "PEEK_INPUT_BYTES", 1)
        yield


def read_outcome(path: Path) -> SplatCloud | type:
    """The cloud read from ``path``, or the class of the holoscope error it raised."""
    try:
        return read_spz(path)
    except HoloscopeError as exc:
        return type(exc)


@pytest.fixture(scope="module")
def layout_sources(hostile_sources: dict[str, bytes]) -> dict[str, bytes]:
    """Every container and layout the reader knows, with splat counts that are no multiple of
    the forced run length."""
    sources = dict(hostile_sources)
    for degree in range(4):
        arrays = pack_arrays(random_cloud(37, degree, seed=20 + degree), 12)
        body = b"".join(data for _, data in arrays)
        sources[f"sh{degree}-v3.spz"] = gzip.compress(legacy_stream(3, 37, degree, 12, 0, body), mtime=0)
        sources[f"sh{degree}-v4.spz"] = v4_file(37, degree, [data for _, data in arrays])
        sources[f"sh{degree}-raw.spz"] = legacy_stream(3, 37, degree, 12, 0, body)
    arrays = dict(pack_arrays(random_cloud(29, 2, seed=30, extent=3.0), 12))
    halves = np.random.default_rng(31).normal(0, 2, (29, 3)).astype("<f2").tobytes()
    rot3 = np.random.default_rng(32).integers(0, 256, 29 * 3, dtype=np.uint8).tobytes()
    rest = arrays["alphas"] + arrays["colors"] + arrays["scales"]
    sources["v1.spz"] = gzip.compress(legacy_stream(1, 29, 2, 0, 0, halves + rest + rot3 + arrays["sh"]), mtime=0)
    sources["v2.spz"] = gzip.compress(legacy_stream(2, 29, 2, 9, 0, arrays["positions"] + rest + rot3 + arrays["sh"]))
    record = struct.pack("<II", 0xADBE0002, 12) + struct.pack("<3f", -0.5, 0.5, 1.0)
    ordered = [arrays[name] for name in ("positions", "alphas", "colors", "scales", "rotations", "sh")]
    sources["ext-v3.spz"] = gzip.compress(legacy_stream(3, 29, 2, 12, 0x2, record + b"".join(ordered)))
    sources["ext-raw.spz"] = legacy_stream(3, 29, 2, 12, 0x3, record + b"".join(ordered))
    sources["ext-v4.spz"] = v4_file(29, 2, ordered, flags=0x2, extension=record)
    # Random rotation words: the three smaller components may square-sum beyond 1.
    ordered[4] = np.random.default_rng(33).integers(0, 256, 29 * 4, dtype=np.uint8).tobytes()
    sources["random-rotations.spz"] = v4_file(29, 2, ordered)
    sh24 = np.random.default_rng(34).integers(0, 256, 29 * 72, dtype=np.uint8).tobytes()
    sources["sh4-v3.spz"] = gzip.compress(legacy_stream(3, 29, 4, 12, 0, b"".join(ordered[:5]) + sh24))
    sources["sh4-v4.spz"] = v4_file(29, 4, ordered[:5] + [sh24])
    return sources


@pytest.mark.parametrize("threads, max_wait", [(0, None), (1, None), (3, None), (1, -1.0)])
def test_pipeline_decodes_like_the_plain_path(layout_sources: dict[str, bytes], tmp_path: Path, threads: int,
                                              max_wait: float | None) -> None:  # fmt: skip
    for name, data in layout_sources.items():
        path = tmp_path / name
        path.write_bytes(data)
        plain = read_spz(path)
        with forced_pipeline(threads, max_wait):
            piped = read_spz(path)
        assert_same_cloud(piped, plain)
        assert piped.metadata == plain.metadata, name
        assert_valid(piped)


def test_pipeline_fails_where_the_plain_path_fails(layout_sources: dict[str, bytes], tmp_path: Path) -> None:
    rng = np.random.default_rng(40)
    for name, data in layout_sources.items():
        variants = [data[:length] for length in (len(data) // 2, len(data) - 9, len(data) - 4, len(data) - 1)]
        variants += [data + b"\0", data + data]
        for position in rng.integers(0, len(data), 12):
            damaged = bytearray(data)
            damaged[position] ^= 1 << int(rng.integers(8))
            variants.append(bytes(damaged))
        for i, variant in enumerate(variants):
            path = tmp_path / f"{name}.{i}"
            path.write_bytes(variant)
            plain = read_outcome(path)
            with forced_pipeline(max_wait=-1.0 if i % 2 else None):
                piped = read_outcome(path)
            if isinstance(plain, SplatCloud):
                assert isinstance(piped, SplatCloud), (name, i, piped)
                assert_same_cloud(piped, plain)
            else:
                assert piped is plain, (name, i, piped, plain)


def test_pipeline_stops_gzip_bombs_and_damage(tmp_path: Path) -> None:
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = stream.compress(legacy_stream(3, 4, 0, 12, 0, b"")) + stream.compress(bytes(1 << 24)) + stream.flush()
    good = gzip.compress(legacy_stream(3, 5, 0, 12, 0, b"".join(d for _, d in pack_arrays(random_cloud(5, 0), 12))))
    cases = {
        "beyond": bomb,
        "data check": good[:-8] + bytes([good[-8] ^ 1]) + good[-7:],  # zlib checks CRC32 and length
        "length check": good[:-4] + bytes([good[-4] ^ 1]) + good[-3:],
        "after the end": good + b"\0",
        "after the end of the gzip": good + gzip.compress(b"more"),
        "trailer": good[:-3],
    }
    for match, data in cases.items():
        (tmp_path / "bad.spz").write_bytes(data)
        for forced in (False, True):
            with forced_pipeline() if forced else contextlib.nullcontext(), pytest.raises(CorruptStream, match=match):
                read_spz(tmp_path / "bad.spz")


def test_long_gzip_header_fields_are_read_past(tmp_path: Path) -> None:
    payload = legacy_stream(3, 5, 0, 12, 0, b"".join(d for _, d in pack_arrays(random_cloud(5, 0), 12)))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="n" * 70_000, mode="wb", fileobj=buffer, mtime=0) as stream:
        stream.write(payload)  # a 70 kB file name field before the deflate data
    (tmp_path / "named.spz").write_bytes(buffer.getvalue())
    assert read_spz(tmp_path / "named.spz").count == 5


@pytest.fixture(scope="module")
def large_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """SH3 files just large enough that the reader decodes them on threads by default."""
    folder = tmp_path_factory.mktemp("spz-large")
    cloud = random_cloud(spz_module.PARALLEL_MIN_SPLATS + 1001, 3, seed=50)
    files = {}
    for version in (3, 4):
        files[version] = folder / f"large-v{version}.spz"
        write_spz(cloud, files[version], version=version)
    return files


@pytest.mark.parametrize("version", [3, 4])
def test_threaded_reading_of_a_large_file(large_files: dict[int, Path], version: int) -> None:
    assert spz_module._thread_count(spz_module.PARALLEL_MIN_SPLATS + 1001) >= 1
    threaded = read_spz(large_files[version])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spz_module, "_thread_count", lambda count: 0)
        plain = read_spz(large_files[version])
    assert_same_cloud(threaded, plain)
    assert_valid(threaded)


def test_threaded_reading_stops_at_damage(large_files: dict[int, Path], tmp_path: Path) -> None:
    for path in large_files.values():
        data = path.read_bytes()
        for position in (len(data) // 3, len(data) - 100):
            damaged = bytearray(data)
            damaged[position] ^= 0x10
            (tmp_path / "damaged.spz").write_bytes(bytes(damaged))
            with pytest.raises(CorruptStream):
                read_spz(tmp_path / "damaged.spz")
        (tmp_path / "cut.spz").write_bytes(data[: len(data) - 5])
        with pytest.raises(CorruptStream):
            read_spz(tmp_path / "cut.spz")


# zstd frames in v4 files --------------------------------------------------------------------


def v4_from_frames(count: int, degree: int, frames: list[bytes], sizes: list[int]) -> bytes:
    head = struct.pack("<4sIIBBBBI12x", b"NGSP", 4, count, degree, 12, 0, len(frames), 32)
    return head + b"".join(struct.pack("<QQ", len(f), u) for f, u in zip(frames, sizes, strict=True)) + b"".join(frames)


def zstd_in_small_blocks(data: bytes, step: int = 50) -> bytes:
    """One zstd frame of many tiny blocks, as a streaming writer that flushes often makes."""
    compressor = zstandard.ZstdCompressor(write_checksum=True).compressobj(size=len(data))
    parts = []
    for start in range(0, len(data), step):
        parts.append(compressor.compress(data[start : start + step]))
        parts.append(compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    parts.append(compressor.flush())
    return b"".join(parts)


def test_v4_frames_of_many_small_blocks(tmp_path: Path) -> None:
    cloud = random_cloud(300, 2, seed=70)
    arrays = [data for _, data in pack_arrays(cloud, 12)]
    frames = [zstd_in_small_blocks(data) for data in arrays]
    (tmp_path / "small-blocks.spz").write_bytes(v4_from_frames(300, 2, frames, [len(a) for a in arrays]))
    write_spz(cloud, tmp_path / "plain.spz", version=4)
    assert_same_cloud(read_spz(tmp_path / "small-blocks.spz"), read_spz(tmp_path / "plain.spz"))
    # The same frames with the last one's checksum cut short are refused.
    cut = frames[:-1] + [frames[-1][:-2]]
    (tmp_path / "cut.spz").write_bytes(v4_from_frames(300, 2, cut, [len(a) for a in arrays]))
    with pytest.raises(CorruptStream):
        read_spz(tmp_path / "cut.spz")


@pytest.mark.parametrize("cut", [1, 2, 4, 5])
@pytest.mark.parametrize("which", [0, 5])
def test_v4_frame_cut_short_is_refused(tmp_path: Path, cut: int, which: int) -> None:
    """A frame cut inside its checksum holds all its data: still refused, both the last frame
    (the TOC says the shorter length) and one in the middle (the next frame then starts in the
    wrong place)."""
    arrays = [data for _, data in pack_arrays(random_cloud(200, 1, seed=71), 12)]
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(data) for data in arrays]
    frames[which] = frames[which][:-cut]
    (tmp_path / "cut.spz").write_bytes(v4_from_frames(200, 1, frames, [len(a) for a in arrays]))
    with pytest.raises(CorruptStream):
        read_spz(tmp_path / "cut.spz")


def test_v4_bytes_after_a_frame_are_refused(tmp_path: Path) -> None:
    arrays = [data for _, data in pack_arrays(random_cloud(200, 1, seed=72), 12)]
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(data) for data in arrays]
    for junk in (b"\0", b"junk", zstandard.ZstdCompressor().compress(b"more")):
        damaged = frames[:2] + [frames[2] + junk] + frames[3:]
        (tmp_path / "junk.spz").write_bytes(v4_from_frames(200, 1, damaged, [len(a) for a in arrays]))
        with pytest.raises(CorruptStream, match="colors stream"):
            read_spz(tmp_path / "junk.spz")


# Decoding precision -------------------------------------------------------------------------


def reference_smallest_three(word: int) -> np.ndarray:
    """The SPZ reference decoder, one word at a time, in float64, normalised: w-first."""
    largest = word >> 30
    xyzw = [0.0] * 4
    squares = 0.0
    for index in (3, 2, 1, 0):
        if index == largest:
            continue
        magnitude = (word & 0x1FF) / 511 * np.sqrt(0.5)
        xyzw[index] = -magnitude if word & 0x200 else magnitude
        squares += magnitude * magnitude
        word >>= 10
    xyzw[largest] = np.sqrt(max(0.0, 1 - squares))
    q = np.array([xyzw[3], *xyzw[:3]])
    return q / np.linalg.norm(q)


def test_smallest_three_words_decode_to_unit_quaternions() -> None:
    words = np.random.default_rng(60).integers(0, 1 << 32, 2000, dtype=np.uint64).astype(np.uint32)
    words[:4] = [0, 0x3FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF]  # zeros and every field at its largest
    out = np.empty((len(words), 4), np.float32)
    spz_module._smallest_three(words, out)
    expected = np.array([reference_smallest_three(int(w)) for w in words])
    np.testing.assert_allclose(out, expected, atol=1e-6)  # float32: 1 - squares cancels near 1
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1, atol=3e-7)


@pytest.mark.parametrize("frac", [0, 12, 23, 118, 126, 127, 140, 149, 150, 200, 255])
def test_positions_are_exact_at_any_fractional_bits(tmp_path: Path, frac: int) -> None:
    fixed = np.array([0, 1, -1, 5, -7, (1 << 23) - 1, -(1 << 23), 123456, -654321], np.int64)
    n = len(fixed) // 3
    positions = (fixed & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    body = positions + bytes(n) + bytes(3 * n) + bytes(3 * n) + np.full(n, 3 << 30, "<u4").tobytes()
    (tmp_path / "frac.spz").write_bytes(gzip.compress(legacy_stream(3, n, 0, frac, 0, body)))
    means = read_spz(tmp_path / "frac.spz").means
    np.testing.assert_array_equal(means.reshape(-1), (fixed * 2.0**-frac).astype(np.float32))


# Cross-check against Niantic's reference library (optional) ----------------------------------


def _reference_spz():
    try:
        import spz  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip(
            "no 'spz' module is importable: install Niantic's reference Python bindings (nianticlabs/spz) "
            "to cross-check decoded values against them"
        )
    if not hasattr(spz, "load_spz"):
        pytest.skip("the installed 'spz' module is not Niantic's reference bindings (no load_spz)")
    return spz


def _compare_with_reference(path: Path) -> None:
    spz = _reference_spz()
    ref = spz.load_spz(str(path))
    if getattr(ref, "num_points", 0) == 0:
        pytest.skip(f"the installed reference library cannot load {path.name}")
    ours = read_spz(path)
    n = ours.count
    assert ref.num_points == n
    np.testing.assert_allclose(np.asarray(ref.positions).reshape(n, 3), ours.means, atol=1e-6)
    np.testing.assert_allclose(np.exp(np.asarray(ref.scales).reshape(n, 3)), ours.scales, rtol=1e-5)
    ref_q = np.asarray(ref.rotations).reshape(n, 4)[:, [3, 0, 1, 2]]
    ref_q = ref_q / np.linalg.norm(ref_q, axis=1, keepdims=True)
    assert rotation_angle_deg(ref_q, ours.quats).max() < 1e-2
    np.testing.assert_allclose(1 / (1 + np.exp(-np.asarray(ref.alphas, np.float64))), ours.opacities, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ref.colors).reshape(n, 3), ours.sh[:, 0], atol=1e-5)
    if ours.sh_degree:
        k = ours.sh.shape[1] - 1
        ref_sh = np.asarray(ref.sh).reshape(n, -1, 3)[:, :k]
        np.testing.assert_allclose(ref_sh, ours.sh[:, 1:], atol=1e-6)


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_match_the_reference_library(splats_dir: Path, name: str) -> None:
    _compare_with_reference(splats_dir / name)


@pytest.mark.parametrize("version", [3, 4])
def test_written_files_match_the_reference_library(tmp_path: Path, version: int) -> None:
    _reference_spz()
    write_spz(random_cloud(200, 3, seed=13, extent=10.0), tmp_path / "ours.spz", version=version)
    _compare_with_reference(tmp_path / "ours.spz")


# Fuzzing ------------------------------------------------------------------------------------

# Deterministic in CI: a fixed seed per test, no example database.
FUZZ = fuzz_settings(200)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spz-fuzz")


def _check_read(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    try:
        cloud = read_spz(path)
    except HoloscopeError:
        return
    assert cloud.count > 0
    assert np.isfinite(cloud.means).all() and np.isfinite(cloud.sh).all() and np.isfinite(cloud.quats).all()
    assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()


def _header_then(body: bytes) -> bytes:
    return b"NGSP" + body


@st.composite
def well_formed_spz(draw) -> bytes:
    """Headers and array sizes that agree, with random array contents: exercises every decode path."""
    version = draw(st.sampled_from([1, 2, 3, 4]))
    count = draw(st.integers(1, 12))
    degree = draw(st.integers(0, 4))
    frac = draw(st.integers(0, 255))
    flags = draw(st.integers(0, 1))
    sizes = [6 if version == 1 else 9, 1, 3, 3, 3 if version < 3 else 4]
    if degree:
        sizes.append((0, 3, 8, 15, 24)[degree] * 3)
    arrays = [draw(st.binary(min_size=count * size, max_size=count * size)) for size in sizes]
    if version == 4:
        return v4_file(count, degree, arrays, frac=frac, flags=flags)
    stream = legacy_stream(version, count, degree, frac, flags, b"".join(arrays))
    return stream if draw(st.booleans()) else gzip.compress(stream, mtime=0)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=400).map(_header_then),
        st.binary(max_size=400).map(lambda b: gzip.compress(_header_then(b), mtime=0)),
        st.tuples(st.integers(1, 3), st.integers(0, 40), st.integers(0, 5), st.integers(0, 255),
                  st.integers(0, 3), st.binary(max_size=2000)).map(
            lambda t: gzip.compress(legacy_stream(*t[:5], t[5]), mtime=0)),  # fmt: skip
        well_formed_spz(),
    )
)
def test_fuzz_random_bytes(fuzz_dir: Path, data: bytes) -> None:
    _check_read(data, fuzz_dir / "random.spz")


_SOURCE_NAMES = [*SAMPLES, "sh3-v3.spz", "sh3-v4.spz"]


@FUZZ
@given(
    which=st.sampled_from(_SOURCE_NAMES),
    inside=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=10),
    cut=st.one_of(st.none(), st.integers(0, 1 << 20)),
)
def test_fuzz_mutated_samples(hostile_sources: dict[str, bytes], fuzz_dir: Path, which: str, inside: bool,
                              edits: list[tuple[int, int]], cut: int | None) -> None:  # fmt: skip
    """Mutations of real files; with ``inside``, a gzip file's payload is mutated and re-gzipped
    so that the damage reaches the decoder instead of stopping at the CRC."""
    data = hostile_sources[which]
    gzipped = data[:2] == b"\x1f\x8b"
    buf = bytearray(gzip.decompress(data) if gzipped and inside else data)
    for position, value in edits:
        buf[position % len(buf)] = value
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    out = gzip.compress(bytes(buf), mtime=0) if gzipped and inside else bytes(buf)
    _check_read(out, fuzz_dir / "mutated.spz")
