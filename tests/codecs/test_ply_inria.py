"""INRIA 3DGS PLY reader and writer, on the real samples and on damaged variants of them.

Expected values come from a direct plyfile read and the INRIA formulas (splat-formats.md §1),
not from the reader under test.
"""

from __future__ import annotations

import errno
import logging
import os
from functools import partial
from pathlib import Path

import numpy as np
import plyfile
import pytest

from holoscope.codecs.formats.ply_inria import READER_NAME, read_ply, write_ply
from holoscope.core.errors import CorruptStream, EmptyMedia, FormatNotRecognized, HoloscopeError, OutputError
from holoscope.core.frames import SplatCloud, sh_coeff_count
from holoscope.core.registry import open_media

from .helpers import random_cloud as shared_random_cloud

SAMPLES = {"lod4.ply": 489, "lod5.ply": 111}
ROT = [f"rot_{i}" for i in range(4)]


@pytest.fixture(scope="module")
def splats_dir(samples_dir: Path) -> Path:
    return samples_dir / "splats"


def raw_vertices(path: Path) -> np.ndarray:
    """The vertex records exactly as stored, read with plyfile (no mmap, a private copy)."""
    return plyfile.PlyData.read(str(path))["vertex"].data.copy()


def write_vertices(path: Path, records: np.ndarray, *, text: bool = False, byte_order: str = "<") -> Path:
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], text=text, byte_order=byte_order).write(
        str(path)
    )
    return path


def restructure(records: np.ndarray, names: list[str], dtype: str = "<f4", extra: dict | None = None) -> np.ndarray:
    """A new record array with the fields ``names`` (copied from ``records``) plus ``extra`` ones."""
    extra = extra or {}
    fields = [(n, dtype) for n in names] + [(n, np.asarray(v).dtype.str) for n, v in extra.items()]
    out = np.empty(len(records), dtype=fields)
    for n in names:
        out[n] = records[n]
    for n, v in extra.items():
        out[n] = v
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def assert_same_cloud(a: SplatCloud, b: SplatCloud) -> None:
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


random_cloud = partial(shared_random_cloud, profile="ply")  # tests/codecs/helpers.py


# The real samples ------------------------------------------------------------------------


@pytest.mark.parametrize("name, count", list(SAMPLES.items()))
def test_read_samples(splats_dir: Path, name: str, count: int) -> None:
    cloud = read_ply(splats_dir / name)
    assert cloud.count == count
    assert cloud.sh_degree == 3
    assert cloud.sh.shape == (count, 16, 3)
    assert np.all(np.abs(np.linalg.norm(cloud.quats, axis=1) - 1) < 1e-5)
    assert np.all((cloud.opacities >= 0) & (cloud.opacities <= 1))
    assert np.all(cloud.scales > 0)
    assert np.all(np.isfinite(cloud.means))
    assert cloud.metadata["dropped_nonfinite"] == 0
    assert cloud.metadata["file_sh_degree"] == 3
    assert cloud.metadata["ply_properties"] == 62


@pytest.mark.parametrize("name", list(SAMPLES))
def test_samples_match_direct_plyfile_read(splats_dir: Path, name: str) -> None:
    raw = raw_vertices(splats_dir / name)
    cloud = read_ply(splats_dir / name)
    np.testing.assert_array_equal(cloud.means, np.stack([raw["x"], raw["y"], raw["z"]], axis=1))
    np.testing.assert_allclose(cloud.opacities, sigmoid(raw["opacity"]), rtol=1e-6, atol=1e-7)
    raw_scales = np.stack([raw[f"scale_{i}"] for i in range(3)], axis=1).astype(np.float64)
    np.testing.assert_allclose(cloud.scales, np.exp(raw_scales), rtol=1e-6)
    raw_quats = np.stack([raw[r] for r in ROT], axis=1).astype(np.float64)
    np.testing.assert_allclose(cloud.quats, raw_quats / np.linalg.norm(raw_quats, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(cloud.sh[:, 0], np.stack([raw[f"f_dc_{c}"] for c in range(3)], axis=1))
    for k in range(1, 16):
        for c in range(3):
            np.testing.assert_array_equal(cloud.sh[:, k, c], raw[f"f_rest_{c * 15 + k - 1}"])


def test_f_rest_is_channel_major(splats_dir: Path, tmp_path: Path) -> None:
    # The samples' f_rest are all zero, so give every f_rest column its own values.
    raw = raw_vertices(splats_dir / "lod5.ply")
    rows = np.arange(len(raw), dtype=np.float32)[:, None]
    for i in range(45):
        raw[f"f_rest_{i}"] = rows[:, 0] * 0.001 + i
    cloud = read_ply(write_vertices(tmp_path / "sh.ply", raw))
    for k in range(1, 16):
        for c in range(3):
            np.testing.assert_array_equal(cloud.sh[:, k, c], raw[f"f_rest_{c * 15 + k - 1}"])
    # Spot checks of the layout: coefficient 1 of green is f_rest_15, the last of blue f_rest_44.
    np.testing.assert_array_equal(cloud.sh[:, 1, 1], raw["f_rest_15"])
    np.testing.assert_array_equal(cloud.sh[:, 15, 2], raw["f_rest_44"])


@pytest.mark.parametrize("name, count", list(SAMPLES.items()))
def test_open_media_end_to_end(splats_dir: Path, name: str, count: int) -> None:
    media = open_media(splats_dir / name)
    assert media.format == "ply"
    assert media.reader == READER_NAME
    assert media.is_static
    assert media.info["splats"] == count
    assert media.info["sh_degree"] == 3
    assert media.info["file_bytes"] == (splats_dir / name).stat().st_size
    assert_same_cloud(media.frame(0), read_ply(splats_dir / name))


# Writer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_write_read_round_trip(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(257, degree, seed=degree)
    path = tmp_path / f"deg{degree}.ply"
    write_ply(cloud, path)
    back = read_ply(path)
    assert back.count == cloud.count
    assert back.sh_degree == degree
    np.testing.assert_array_equal(back.means, cloud.means)
    np.testing.assert_array_equal(back.sh, cloud.sh)
    np.testing.assert_allclose(back.quats, cloud.quats, atol=1e-6)
    np.testing.assert_allclose(back.scales, cloud.scales, rtol=2e-6)
    np.testing.assert_allclose(back.opacities, cloud.opacities, rtol=2e-6, atol=1e-7)
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_writer_uses_inria_layout(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(20, degree, seed=10 + degree)
    path = tmp_path / "layout.ply"
    write_ply(cloud, path)
    ply = plyfile.PlyData.read(str(path))
    assert ply.text is False and ply.byte_order == "<"
    raw = ply["vertex"].data
    m = sh_coeff_count(degree) - 1
    names = raw.dtype.names
    assert names[:9] == ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2")
    assert names[-8:] == ("opacity", "scale_0", "scale_1", "scale_2", *ROT)
    assert len(names) == 17 + 3 * m
    assert all(raw.dtype[n] == np.dtype("<f4") for n in names)
    for k in range(1, m + 1):
        for c in range(3):
            np.testing.assert_array_equal(raw[f"f_rest_{c * m + k - 1}"], cloud.sh[:, k, c])
    np.testing.assert_allclose(np.exp(raw["scale_1"].astype(np.float64)), cloud.scales[:, 1], rtol=1e-6)
    np.testing.assert_allclose(sigmoid(raw["opacity"]), cloud.opacities, rtol=1e-6)
    assert np.all(raw["nx"] == 0)


def test_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        write_ply(random_cloud(3, 0), tmp_path / "missing" / "out.ply")


def test_write_onto_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "taken.ply"
    target.mkdir()
    with pytest.raises(OutputError):
        write_ply(random_cloud(3, 0), target)
    assert not list(tmp_path.glob("*.partial"))


def test_os_errors_map_through_the_one_shared_helper() -> None:
    import errno

    from holoscope.codecs.formats.common import mapped_os_errors
    from holoscope.core.errors import NotAFile, SourceNotFound, SourceUnreadable

    cases = [(errno.ENOENT, SourceNotFound), (errno.EISDIR, NotAFile), (errno.EACCES, SourceUnreadable),
             (errno.EIO, CorruptStream), (errno.ENOSPC, SourceUnreadable)]  # fmt: skip
    for code, expected in cases:
        with pytest.raises(expected, match="x.ply") as info:
            with mapped_os_errors("x.ply"):
                raise OSError(code, os.strerror(code))
        assert isinstance(info.value.__cause__, OSError)
    already = CorruptStream("worded already", path="y.ply")
    with pytest.raises(CorruptStream) as info:
        with mapped_os_errors("x.ply"):
            raise already
    assert info.value is already


@pytest.mark.parametrize("text", [False, True])
def test_read_failures_in_the_ply_readers_are_mapped(tmp_path: Path, monkeypatch, text: bool) -> None:
    """An I/O error while reading rows (binary or ASCII) becomes CorruptStream naming the file."""
    path = tmp_path / "io.ply"
    write_ply(random_cloud(5, 0, seed=1), path)
    if text:
        write_vertices(path, raw_vertices(path), text=True)
    real = np.fromfile if not text else np.loadtxt

    def failing(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(np, "loadtxt" if text else "fromfile", failing)
    with pytest.raises(CorruptStream, match="input/output error") as info:
        read_ply(path)
    assert "io.ply" in str(info.value)
    monkeypatch.setattr(np, "loadtxt" if text else "fromfile", real)
    assert read_ply(path).count == 5


# Layout variants that must still read ---------------------------------------------------


def test_extra_properties_and_shuffled_order(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    names = list(raw.dtype.names)
    np.random.default_rng(3).shuffle(names)
    n = len(raw)
    extra = {"custom_flag": np.arange(n, dtype=np.uint8), "transform": np.full(n, 7.0, np.float32)}
    path = write_vertices(tmp_path / "shuffled.ply", restructure(raw, names, extra=extra))
    assert plyfile.PlyData.read(str(path))["vertex"].data.dtype.names[: len(names)] == tuple(names)
    assert names[:3] != ["x", "y", "z"]
    cloud = read_ply(path)
    assert_same_cloud(cloud, read_ply(splats_dir / "lod5.ply"))
    assert cloud.metadata["ply_properties"] == 64


def test_without_normals(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    names = [n for n in raw.dtype.names if n not in ("nx", "ny", "nz")]
    cloud = read_ply(write_vertices(tmp_path / "no_normals.ply", restructure(raw, names)))
    assert_same_cloud(cloud, read_ply(splats_dir / "lod5.ply"))


def test_double_precision(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    path = write_vertices(tmp_path / "double.ply", restructure(raw, list(raw.dtype.names), dtype="<f8"))
    assert b"property double x" in path.read_bytes()[:2000]
    cloud = read_ply(path)
    assert cloud.means.dtype == np.float32
    assert_same_cloud(cloud, read_ply(splats_dir / "lod5.ply"))


def test_big_endian(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    path = write_vertices(tmp_path / "be.ply", raw, byte_order=">")
    assert_same_cloud(read_ply(path), read_ply(splats_dir / "lod5.ply"))


def test_ascii_ply(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    path = write_vertices(tmp_path / "ascii.ply", raw, text=True)
    assert path.read_bytes().startswith(b"ply\nformat ascii 1.0\n")
    media = open_media(path)
    cloud = media.frame(0)
    reference = read_ply(splats_dir / "lod5.ply")
    assert cloud.count == 111
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_allclose(getattr(cloud, name), getattr(reference, name), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_lower_sh_degrees_from_file(splats_dir: Path, tmp_path: Path, degree: int) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    m = sh_coeff_count(degree) - 1
    names = [n for n in raw.dtype.names if not n.startswith("f_rest_")] + [f"f_rest_{i}" for i in range(3 * m)]
    cloud = read_ply(write_vertices(tmp_path / "low.ply", restructure(raw, names)))
    assert cloud.sh_degree == degree
    assert cloud.metadata["file_sh_degree"] == degree


# Damaged and invalid input --------------------------------------------------------------


def header_end(data: bytes) -> int:
    return data.index(b"end_header\n") + len(b"end_header\n")


def test_truncated_file(splats_dir: Path, tmp_path: Path) -> None:
    data = (splats_dir / "lod4.ply").read_bytes()
    path = tmp_path / "truncated.ply"
    path.write_bytes(data[:-1000])
    with pytest.raises(CorruptStream) as info:
        open_media(path)
    assert "truncated" in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_inside_header(splats_dir: Path, tmp_path: Path) -> None:
    data = (splats_dir / "lod4.ply").read_bytes()
    path = tmp_path / "header_cut.ply"
    path.write_bytes(data[: header_end(data) - 30])
    with pytest.raises(CorruptStream, match="header"):
        open_media(path)


def test_header_count_larger_than_data(splats_dir: Path, tmp_path: Path) -> None:
    data = (splats_dir / "lod4.ply").read_bytes()
    damaged = data.replace(b"element vertex 489\n", b"element vertex 999\n", 1)
    assert len(damaged) == len(data) and damaged != data
    path = tmp_path / "overcount.ply"
    path.write_bytes(damaged)
    with pytest.raises(CorruptStream):
        open_media(path)


def test_wrong_magic(splats_dir: Path, tmp_path: Path) -> None:
    data = (splats_dir / "lod4.ply").read_bytes()
    path = tmp_path / "magic.ply"
    path.write_bytes(b"plz" + data[3:])
    with pytest.raises(FormatNotRecognized):
        open_media(path)
    with pytest.raises(CorruptStream):  # the reader on its own refuses it too
        read_ply(path)


def test_missing_rotation_properties(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    names = [n for n in raw.dtype.names if not n.startswith("rot_")]
    path = write_vertices(tmp_path / "no_rot.ply", restructure(raw, names))
    with pytest.raises(CorruptStream) as info:
        open_media(path)
    message = str(info.value)
    assert "missing" in message
    for name in ROT:
        assert name in message
    assert "scale_0" not in message


def test_plain_point_cloud_is_not_a_splat_scene(tmp_path: Path) -> None:
    points = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1")])
    with pytest.raises(CorruptStream, match="not a 3D Gaussian splat PLY"):
        open_media(write_vertices(tmp_path / "points.ply", points))


def test_f_rest_count_matching_no_degree(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    names = [n for n in raw.dtype.names if n != "f_rest_44"]
    with pytest.raises(CorruptStream, match="44 f_rest"):
        read_ply(write_vertices(tmp_path / "rest44.ply", restructure(raw, names)))


def test_f_rest_names_with_a_gap(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    names = list(raw.dtype.names)
    renamed = restructure(raw, names)
    renamed.dtype.names = tuple("f_rest_99" if n == "f_rest_7" else n for n in names)
    with pytest.raises(CorruptStream, match="not f_rest_0..f_rest_44"):
        read_ply(write_vertices(tmp_path / "gap.ply", renamed))


def test_zero_splats(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")[:0]
    path = write_vertices(tmp_path / "zero.ply", raw)
    with pytest.raises(EmptyMedia, match="zero splats"):
        open_media(path)


def test_nan_rows_are_dropped_with_a_warning(splats_dir: Path, tmp_path: Path, caplog) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    raw["x"][3] = np.nan
    raw["rot_2"][7] = np.inf
    raw["f_rest_30"][10] = np.nan  # SH values count too
    raw["scale_1"][20] = 200.0  # exp overflows float32: infinite scale
    raw["nx"][30] = np.nan  # normals are ignored, so this row stays
    path = write_vertices(tmp_path / "nan.ply", raw)
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        cloud = open_media(path).frame(0)
    assert cloud.count == 111 - 4
    assert cloud.metadata["dropped_nonfinite"] == 4
    assert any("dropped 4 of 111" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    for name in ("means", "scales", "quats", "opacities", "sh"):
        assert np.all(np.isfinite(getattr(cloud, name))), name
    keep = np.setdiff1d(np.arange(111), [3, 7, 10, 20])
    np.testing.assert_array_equal(cloud.means[:, 0], raw["x"][keep])


def test_all_rows_nan(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    raw["opacity"] = np.nan
    with pytest.raises(EmptyMedia, match=r"all 111 splats hold non-finite values \(NaN"):
        open_media(write_vertices(tmp_path / "all_nan.ply", raw))


def test_zero_quaternion_becomes_identity(splats_dir: Path, tmp_path: Path) -> None:
    raw = raw_vertices(splats_dir / "lod5.ply")
    for r in ROT:
        raw[r][5] = 0.0
    cloud = read_ply(write_vertices(tmp_path / "zero_quat.ply", raw))
    assert cloud.count == 111
    np.testing.assert_array_equal(cloud.quats[5], [1, 0, 0, 0])


def _damaged_variants(data: bytes) -> dict[str, bytes]:
    end = header_end(data)
    header = data[:end]
    ascii_header = header.replace(b"binary_little_endian", b"ascii", 1)
    return {
        "truncated": data[:-1000],
        "header_only": header,
        "half_header": data[: end // 2],
        "overcount": data.replace(b"element vertex 489\n", b"element vertex 999\n", 1),
        "negative_count": data.replace(b"element vertex 489\n", b"element vertex -89\n", 1),
        "absurd_count": data.replace(b"element vertex 489\n", b"element vertex 99999999999999999999\n", 1),
        "not_a_count": data.replace(b"element vertex 489\n", b"element vertex abc\n", 1),
        "unknown_type": data.replace(b"property float x\n", b"property float128 x\n", 1),
        "unknown_format": data.replace(b"binary_little_endian", b"binary_middle_endian", 1),
        "duplicate_property": data.replace(b"property float nx\n", b"property float x\n", 1),
        "list_property": data.replace(b"property float x\n", b"property list uchar float x\n", 1),
        "ascii_garbage": ascii_header + b"1 2 3 x y\n",
        "ascii_short": ascii_header + b"1 2 3\n",
        "ascii_absurd_count": ascii_header.replace(b"element vertex 489\n", b"element vertex 99999999999999\n") + b"1\n",
        "ascii_negative_count": ascii_header.replace(b"element vertex 489\n", b"element vertex -5\n") + b"1\n",
        "zeros_after_magic": b"ply\n" + b"\x00" * 5000,
        "wrong_magic": b"plz" + data[3:],
    }


def test_every_damaged_variant_raises_a_holoscope_error(splats_dir: Path, tmp_path: Path) -> None:
    data = (splats_dir / "lod4.ply").read_bytes()
    failures = []
    for name, damaged in _damaged_variants(data).items():
        path = tmp_path / f"{name}.ply"
        path.write_bytes(damaged)
        for opener in (read_ply, lambda p: open_media(p).frame(0)):
            try:
                opener(path)
            except HoloscopeError as exc:
                assert str(path) in str(exc), name
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
            else:
                failures.append(f"{name}: opened without an error")
    assert not failures, "\n".join(failures)


def test_missing_file_read_directly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        read_ply(tmp_path / "nope.ply")
    assert isinstance(info.value, HoloscopeError)
