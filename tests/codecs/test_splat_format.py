"""antimatter15 .splat reader and writer, on the real splat-transform fixture and on damaged and
random inputs.

Expected sample values come from the fixture generator (splat-transform
test/fixtures/create-fixtures.mjs, splat-formats.md §6): a 2x2 grid of splats at x, z in {-1, 0},
y = 0, linear scale 0.1, colour bytes round((g + 1) / 3 * 255) and 128, alpha 230, quaternion
bytes (128, 128, 128, 255), i.e. w = 0, z = 1 after normalising.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from holoscope.codecs.formats import splat as splat_module
from holoscope.codecs.formats.splat import BYTES_PER_SPLAT, READER_NAME, read_splat, write_splat
from holoscope.core.errors import (
    CorruptStream,
    EmptyMedia,
    HoloscopeError,
    InvalidArgument,
    NotAFile,
    OutputError,
    SourceNotFound,
)
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media, writer_for
from .helpers import assert_valid_cloud, fuzz_settings, rotation_angle_deg
from .helpers import random_cloud as shared_random_cloud


@pytest.fixture(scope="module")
def sample(samples_dir: Path) -> Path:
    path = samples_dir / "splats" / "minimal.splat"
    if not path.is_file():
        pytest.skip(f"{path} is missing from the sample folder")
    return path


random_cloud = partial(shared_random_cloud, profile="splat")  # tests/codecs/helpers.py


def assert_valid(cloud: SplatCloud) -> None:
    assert_valid_cloud(cloud, positive_scales=False)


# The sample ---------------------------------------------------------------------------------


def test_sample_values_match_the_fixture_generator(sample: Path) -> None:
    cloud = read_splat(sample)
    assert cloud.count == 4 and cloud.sh_degree == 0
    assert_valid(cloud)
    assert (cloud.scales > 0).all()
    grid = np.array([[-1, 0, -1], [0, 0, -1], [-1, 0, 0], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(cloud.means, grid)
    np.testing.assert_allclose(cloud.scales, 0.1, rtol=1e-7)
    np.testing.assert_allclose(cloud.opacities, 230 / 255, rtol=1e-6)
    expected_rgb = np.array([[85, 85, 128], [170, 85, 128], [85, 170, 128], [170, 170, 128]]) / 255
    np.testing.assert_allclose(cloud.base_colors(), expected_rgb, atol=1e-6)
    # Bytes (128, 128, 128, 255) are w, x, y, z = (0, 0, 0, 127/128): a half turn about z.
    np.testing.assert_allclose(cloud.quats, np.tile([0, 0, 0, 1], (4, 1)), atol=1e-7)


def test_sample_opens_through_the_registry(sample: Path) -> None:
    media = open_media(sample)
    assert media.reader == READER_NAME == "holoscope.splat"
    assert media.format == "splat"
    assert media.frame_count == 1 and media.info["splats"] == 4 and media.info["file_bytes"] == 128
    assert media.frame(0).count == 4


def test_rewriting_the_sample_gives_the_same_bytes(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.splat"
    write_splat(read_splat(sample), out)
    assert out.read_bytes() == sample.read_bytes()


# Writing ------------------------------------------------------------------------------------


def splat_roundtrip_errors(cloud: SplatCloud, back: SplatCloud) -> dict[str, tuple[float, float]]:
    """(max, mean) error per attribute between a cloud and its re-read .splat, in the writer's
    order (descending volume x opacity)."""
    key = np.prod(cloud.scales.astype(np.float64), axis=1) * cloud.opacities
    ref = cloud.subset(np.argsort(-key, kind="stable"))
    errors = {
        "position": np.abs(back.means - ref.means),
        "log_scale": np.abs(np.log(back.scales) - np.log(ref.scales)),
        "rotation_deg": rotation_angle_deg(back.quats, ref.quats),
        "opacity": np.abs(back.opacities - ref.opacities),
        "color": np.abs(back.base_colors() - ref.base_colors()),
    }
    return {name: (float(e.max()), float(e.mean())) for name, e in errors.items()}


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_write_read_round_trip(degree: int, tmp_path: Path) -> None:
    cloud = random_cloud(2000, degree, seed=degree)
    path = tmp_path / "cloud.splat"
    write_splat(cloud, path)
    assert path.stat().st_size == 2000 * BYTES_PER_SPLAT
    back = read_splat(path)
    assert back.count == 2000 and back.sh_degree == 0
    errors = splat_roundtrip_errors(cloud, back)
    print(f"\n.splat round trip (SH{degree} source), max / mean error: {errors}")
    assert errors["position"][0] == 0  # float32 stored as is
    assert errors["log_scale"][0] == 0
    assert errors["opacity"][0] <= 0.5 / 255 + 1e-6
    assert errors["color"][0] <= 0.5 / 255 + 1e-6
    # Each quaternion component is within 1/256 (1/128 where 1.0 clips to 255): a few degrees at most.
    assert errors["rotation_deg"][0] <= 2.0


def test_writer_sorts_by_descending_volume_times_opacity(tmp_path: Path) -> None:
    cloud = random_cloud(500, 0, seed=9)
    cloud.opacities[:50] = 0.5  # ties keep the cloud's order (stable sort)
    cloud.scales[:50] = 0.01
    path = tmp_path / "sorted.splat"
    write_splat(cloud, path)
    back = read_splat(path)
    key = np.prod(cloud.scales.astype(np.float64), axis=1) * cloud.opacities
    order = np.argsort(-key, kind="stable")
    np.testing.assert_array_equal(back.means, cloud.means[order])
    assert np.all(np.diff(key[order]) <= 0)
    tied = order[np.isin(order, np.arange(50))]
    np.testing.assert_array_equal(tied, np.arange(50))


def test_writer_fills_records_in_runs_without_changing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = random_cloud(100, 1, seed=4)
    cloud.opacities[::3], cloud.scales[::3] = 0.5, 0.01  # ties across runs keep the cloud's order
    write_splat(cloud, tmp_path / "whole.splat")
    monkeypatch.setattr(splat_module, "PACK_ROWS", 7)  # runs that do not divide the count
    write_splat(cloud, tmp_path / "runs.splat")
    assert (tmp_path / "runs.splat").read_bytes() == (tmp_path / "whole.splat").read_bytes()


def test_writer_through_the_registry(tmp_path: Path) -> None:
    spec, writer = writer_for(tmp_path / "x.splat")
    assert spec.name == "splat" and writer is write_splat


def test_writer_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    empty = random_cloud(1, 0).subset(np.zeros(1, bool))
    with pytest.raises(InvalidArgument):
        write_splat(empty, tmp_path / "empty.splat")
    bad = random_cloud(4, 0)
    bad.means[1, 0] = np.nan
    with pytest.raises(InvalidArgument):
        write_splat(bad, tmp_path / "nan.splat")
    assert not (tmp_path / "nan.splat").exists()
    with pytest.raises(OutputError):
        write_splat(random_cloud(4, 0), tmp_path / "no" / "such" / "dir.splat")


# Bad input ----------------------------------------------------------------------------------


def test_size_not_a_multiple_of_32_names_the_file(sample: Path, tmp_path: Path) -> None:
    data = sample.read_bytes()
    for size in (1, 31, 33, 100, len(data) - 1):
        path = tmp_path / f"cut{size}.splat"
        path.write_bytes(data[:size])
        with pytest.raises(CorruptStream) as info:
            read_splat(path)
        assert str(path) in str(info.value) and "multiple of 32" in str(info.value)


def test_empty_missing_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.splat"
    empty.write_bytes(b"")
    with pytest.raises((EmptyMedia, CorruptStream)):
        read_splat(empty)
    with pytest.raises((EmptyMedia, CorruptStream)):
        open_media(empty)
    with pytest.raises(SourceNotFound):
        read_splat(tmp_path / "missing.splat")
    folder = tmp_path / "folder.splat"
    folder.mkdir()
    with pytest.raises(NotAFile):
        read_splat(folder)


def test_non_finite_splats_are_dropped_with_a_warning(sample: Path, tmp_path: Path, caplog) -> None:
    records = np.frombuffer(sample.read_bytes(), np.uint8).reshape(4, 32).copy()
    records[1, 0:4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    records[2, 12:16] = np.frombuffer(np.float32(np.inf).tobytes(), np.uint8)
    path = tmp_path / "nan.splat"
    path.write_bytes(records.tobytes())
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        cloud = read_splat(path)
    assert cloud.count == 2 and cloud.metadata["dropped_nonfinite"] == 2
    assert "dropped 2 of 4" in caplog.text
    records[:, 0:4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    path.write_bytes(records.tobytes())
    with pytest.raises(EmptyMedia):
        read_splat(path)


def test_zero_quaternion_becomes_the_identity(sample: Path, tmp_path: Path) -> None:
    records = np.frombuffer(sample.read_bytes(), np.uint8).reshape(4, 32).copy()
    records[:, 28:32] = 128
    path = tmp_path / "zero-rot.splat"
    path.write_bytes(records.tobytes())
    np.testing.assert_array_equal(read_splat(path).quats, np.tile([1, 0, 0, 0], (4, 1)))


def _check_read(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    try:
        cloud = read_splat(path)
    except HoloscopeError:
        return
    assert cloud.count == len(data) // 32 - cloud.metadata["dropped_nonfinite"]
    assert np.isfinite(cloud.means).all() and np.isfinite(cloud.quats).all()
    assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()


# Deterministic in CI: a fixed seed per test, no example database.
FUZZ = fuzz_settings(200)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("splat-fuzz")


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=32, max_size=32 * 8).map(lambda b: b[: len(b) // 32 * 32]),  # whole records
    )
)
def test_fuzz_random_bytes(fuzz_dir: Path, data: bytes) -> None:
    _check_read(data, fuzz_dir / "random.splat")


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 160),
)
def test_fuzz_mutated_sample(samples_dir: Path, fuzz_dir: Path, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray((samples_dir / "splats" / "minimal.splat").read_bytes())
    for position, value in edits:
        data[position] = value
    data = data[:cut] if cut < len(data) else data + bytes(cut - len(data))
    _check_read(bytes(data), fuzz_dir / "mutated.splat")
