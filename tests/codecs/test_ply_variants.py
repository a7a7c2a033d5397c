"""PLY variants the INRIA reader must take: plain coloured point clouds (shown as small
isotropic splats), double precision, extra per-vertex properties, SH stored up to degree 1 or 2.

Every file is written here with plyfile from known values; expectations follow
splat-formats.md §1 (INRIA layout, channel-major f_rest) and the point-cloud rules in the
ply_inria module docstring (σ = half the median nearest-neighbour spacing, opacity 0.9·alpha).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plyfile
import pytest

from holoscope.codecs.formats.ply_inria import (
    POINT_FALLBACK_SPACING,
    POINT_OPACITY,
    POINT_SCALE_FRACTION,
    READER_NAME,
    estimate_point_spacing,
    read_ply,
)
from holoscope.core.errors import CorruptStream, EmptyMedia
from holoscope.core.frames import SH_C0, sh_coeff_count
from holoscope.core.registry import open_media


def write_vertices(path: Path, records: np.ndarray, *, text: bool = False, byte_order: str = "<") -> Path:
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], text=text, byte_order=byte_order).write(str(path))
    return path


def grid_points(step: float = 0.1, side: int = 20) -> np.ndarray:
    """A regular side^3 grid: every nearest neighbour is exactly ``step`` away."""
    axis = np.arange(side) * step
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def point_records(points: np.ndarray, colour_type: str, colours: np.ndarray, *, alpha=None, xyz_type="<f4", extra=None):
    fields = [("x", xyz_type), ("y", xyz_type), ("z", xyz_type)]
    fields += [(c, colour_type) for c in ("red", "green", "blue")]
    if alpha is not None:
        fields.append(("alpha", np.asarray(alpha).dtype.str))
    for name, values in (extra or {}).items():
        fields.append((name, np.asarray(values).dtype.str))
    rec = np.zeros(len(points), dtype=fields)
    for j, axis in enumerate("xyz"):
        rec[axis] = points[:, j]
    for j, c in enumerate(("red", "green", "blue")):
        rec[c] = colours[:, j]
    if alpha is not None:
        rec["alpha"] = alpha
    for name, values in (extra or {}).items():
        rec[name] = values
    return rec


# Coloured point clouds ---------------------------------------------------------------------


def check_point_cloud(cloud, points: np.ndarray, rgb01: np.ndarray, opacity, spacing: float, rel: float = 1e-5) -> None:
    assert cloud.count == len(points)
    assert cloud.sh_degree == 0
    np.testing.assert_allclose(cloud.means, points.astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cloud.base_colors(), rgb01, atol=2e-6)
    np.testing.assert_allclose(cloud.sh[:, 0], (rgb01 - 0.5) / SH_C0, atol=1e-5)
    np.testing.assert_allclose(cloud.opacities, np.broadcast_to(opacity, (len(points),)), atol=1e-6)
    np.testing.assert_array_equal(cloud.quats, np.tile([1, 0, 0, 0], (len(points), 1)))
    assert np.all(cloud.scales == cloud.scales[0, 0]), "isotropic and the same for every point"
    assert cloud.scales[0, 0] == pytest.approx(POINT_SCALE_FRACTION * spacing, rel=rel)
    assert cloud.metadata["point_cloud"] is True
    assert cloud.metadata["format_info"]["point_cloud"] is True


def test_point_cloud_uchar_rgb(tmp_path: Path) -> None:
    points = grid_points(0.1)
    colours = np.random.default_rng(0).integers(0, 256, (len(points), 3), dtype=np.uint8)
    path = write_vertices(tmp_path / "points.ply", point_records(points, "u1", colours))
    media = open_media(path)
    assert media.format == "ply" and media.reader == READER_NAME
    assert media.info["point_cloud"] is True
    assert media.info["point_spacing"] == pytest.approx(0.1, rel=1e-5)
    check_point_cloud(media.frame(0), points, colours / 255.0, POINT_OPACITY, 0.1)


def test_point_cloud_float_rgb(tmp_path: Path) -> None:
    points = grid_points(0.25, side=12)
    rgb = np.random.default_rng(1).uniform(0, 1, (len(points), 3)).astype(np.float32)
    cloud = read_ply(write_vertices(tmp_path / "float.ply", point_records(points, "<f4", rgb)))
    check_point_cloud(cloud, points, rgb, POINT_OPACITY, 0.25)


def test_point_cloud_float_rgb_in_0_255(tmp_path: Path) -> None:
    points = grid_points(0.25, side=6)
    rgb = np.random.default_rng(2).integers(0, 256, (len(points), 3)).astype(np.float32)
    rgb[0] = (255, 255, 255)
    cloud = read_ply(write_vertices(tmp_path / "float255.ply", point_records(points, "<f4", rgb)))
    check_point_cloud(cloud, points, rgb / 255.0, POINT_OPACITY, 0.25)


def test_point_cloud_ushort_rgb(tmp_path: Path) -> None:
    points = grid_points(0.5, side=5)
    colours = np.random.default_rng(3).integers(0, 65536, (len(points), 3)).astype(np.uint16)
    cloud = read_ply(write_vertices(tmp_path / "ushort.ply", point_records(points, "<u2", colours)))
    check_point_cloud(cloud, points, colours / 65535.0, POINT_OPACITY, 0.5)


@pytest.mark.parametrize("alpha_type", ["u1", "<f4"])
def test_point_cloud_with_alpha(tmp_path: Path, alpha_type: str) -> None:
    points = grid_points(0.1, side=8)
    rng = np.random.default_rng(4)
    colours = rng.integers(0, 256, (len(points), 3), dtype=np.uint8)
    if alpha_type == "u1":
        alpha = rng.integers(0, 256, len(points), dtype=np.uint8)
        alpha01 = alpha / 255.0
    else:
        alpha = rng.uniform(0, 1, len(points)).astype(np.float32)
        alpha01 = alpha.astype(np.float64)
    cloud = read_ply(write_vertices(tmp_path / "alpha.ply", point_records(points, "u1", colours, alpha=alpha)))
    check_point_cloud(cloud, points, colours / 255.0, POINT_OPACITY * alpha01, 0.1)


def test_point_cloud_double_xyz_extra_properties_ascii(tmp_path: Path) -> None:
    # COLMAP / 3DGS points3D.ply style: double xyz would be unusual there, but scanners write it.
    points = grid_points(0.2, side=6) + 1000.0
    n = len(points)
    colours = np.random.default_rng(5).integers(0, 256, (n, 3), dtype=np.uint8)
    extra = {"nx": np.zeros(n, np.float32), "ny": np.ones(n, np.float32), "nz": np.zeros(n, np.float32),
             "quality": np.arange(n, dtype=np.int32)}  # fmt: skip
    rec = point_records(points, "u1", colours, xyz_type="<f8", extra=extra)
    for text in (False, True):
        path = write_vertices(tmp_path / f"double{text}.ply", rec, text=text)
        cloud = read_ply(path)
        # Spacing is measured on the float32 means: ~1e-4 relative at 1000 units from the origin.
        check_point_cloud(cloud, points, colours / 255.0, POINT_OPACITY, 0.2, rel=1e-3)
        assert cloud.metadata["ply_properties"] == 10


def test_point_cloud_nan_points_are_dropped(tmp_path: Path) -> None:
    points = grid_points(0.1, side=5)
    points[7, 1] = np.nan
    colours = np.full((len(points), 3), 128, np.uint8)
    cloud = read_ply(write_vertices(tmp_path / "nan.ply", point_records(points, "u1", colours)))
    assert cloud.count == len(points) - 1
    assert cloud.metadata["dropped_nonfinite"] == 1
    assert np.all(np.isfinite(cloud.means))


def test_single_point_and_coincident_points(tmp_path: Path) -> None:
    one = read_ply(write_vertices(tmp_path / "one.ply", point_records(np.zeros((1, 3)), "u1", np.zeros((1, 3)))))
    assert one.count == 1
    assert one.scales[0, 0] == pytest.approx(POINT_SCALE_FRACTION * POINT_FALLBACK_SPACING)
    same = read_ply(write_vertices(tmp_path / "same.ply", point_records(np.ones((50, 3)), "u1", np.zeros((50, 3)))))
    assert same.count == 50 and np.all(same.scales > 0)


def test_point_cloud_with_zero_points(tmp_path: Path) -> None:
    with pytest.raises(EmptyMedia):
        read_ply(write_vertices(tmp_path / "zero.ply", point_records(np.zeros((0, 3)), "u1", np.zeros((0, 3)))))


@pytest.mark.parametrize("drop", ["blue", "x", "red"])
def test_neither_splat_nor_coloured_point_cloud(tmp_path: Path, drop: str) -> None:
    points = grid_points(0.1, side=3)
    rec = point_records(points, "u1", np.zeros((len(points), 3), np.uint8))
    names = [n for n in rec.dtype.names if n != drop]
    trimmed = np.zeros(len(rec), dtype=[(n, rec.dtype[n]) for n in names])
    for n in names:
        trimmed[n] = rec[n]
    with pytest.raises(CorruptStream, match="not a 3D Gaussian splat PLY: missing vertex properties") as info:
        open_media(write_vertices(tmp_path / "neither.ply", trimmed))
    assert "f_dc_0" in str(info.value) and "rot_3" in str(info.value)


def test_splat_file_with_rgb_takes_the_splat_path(tmp_path: Path) -> None:
    """Some exporters add red/green/blue to a splat PLY: the splat properties win."""
    rec = inria_records(12, degree=0, extra={"red": np.full(12, 255, np.uint8), "green": np.zeros(12, np.uint8),
                                             "blue": np.zeros(12, np.uint8)})  # fmt: skip
    cloud = read_ply(write_vertices(tmp_path / "splat_rgb.ply", rec))
    assert "point_cloud" not in cloud.metadata
    np.testing.assert_array_equal(cloud.sh[:, 0], np.stack([rec[f"f_dc_{c}"] for c in range(3)], axis=1))


# The spacing estimate ----------------------------------------------------------------------


def test_spacing_of_regular_grids_is_exact() -> None:
    assert estimate_point_spacing(grid_points(0.1)) == pytest.approx(0.1, rel=1e-5)
    plane = np.stack(np.meshgrid(np.arange(100) * 0.03, np.arange(100) * 0.03, [2.0], indexing="ij"), -1).reshape(-1, 3)
    assert estimate_point_spacing(plane) == pytest.approx(0.03, rel=1e-5)


@pytest.mark.parametrize("shape", ["cube", "sphere", "clusters", "outliers"])
def test_spacing_against_a_kd_tree(shape: str) -> None:
    spatial = pytest.importorskip("scipy.spatial", reason="scipy is not installed: no KD-tree reference")
    rng = np.random.default_rng(7)
    if shape == "cube":
        points = rng.uniform(0, 1, (50_000, 3))
    elif shape == "sphere":
        v = rng.normal(size=(50_000, 3))
        points = v / np.linalg.norm(v, axis=1, keepdims=True)
    elif shape == "clusters":
        points = np.r_[rng.normal(0, 0.01, (25_000, 3)), rng.normal(5, 1, (25_000, 3))]
    else:
        points = np.r_[rng.uniform(0, 1, (50_000, 3)), rng.uniform(-1e3, 1e3, (100, 3))]
    points = points.astype(np.float32)
    distances, _ = spatial.cKDTree(points).query(points, k=2)
    exact = float(np.median(distances[:, 1]))
    ratio = estimate_point_spacing(points) / exact
    assert 0.95 <= ratio <= 1.3, ratio


# Splat PLY variants ------------------------------------------------------------------------


def inria_records(n: int, degree: int, *, dtype: str = "<f4", extra: dict | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = sh_coeff_count(degree) - 1
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(3 * m)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    fields = [(n_, dtype) for n_ in names] + [(k, np.asarray(v).dtype.str) for k, v in (extra or {}).items()]
    rec = np.zeros(n, dtype=fields)
    for name in names:
        rec[name] = rng.normal(0, 1, n)
    for name in ("scale_0", "scale_1", "scale_2"):
        rec[name] = rng.uniform(-6, 0, n)
    for k, v in (extra or {}).items():
        rec[k] = v
    return rec


@pytest.mark.parametrize("degree", [1, 2])
def test_sh_stored_up_to_a_lower_degree(tmp_path: Path, degree: int) -> None:
    n = 40
    rec = inria_records(n, degree, seed=degree)
    m = sh_coeff_count(degree) - 1
    for i in range(3 * m):  # every f_rest column distinct: any layout mix-up shows
        rec[f"f_rest_{i}"] = np.arange(n) * 0.001 + i
    cloud = read_ply(write_vertices(tmp_path / f"deg{degree}.ply", rec))
    assert cloud.sh_degree == degree
    assert cloud.sh.shape == (n, m + 1, 3)
    assert cloud.metadata["file_sh_degree"] == degree
    for k in range(1, m + 1):
        for c in range(3):
            np.testing.assert_array_equal(cloud.sh[:, k, c], rec[f"f_rest_{c * m + k - 1}"])


def expected_activated(rec: np.ndarray):
    f = lambda name: rec[name].astype(np.float64)
    means = np.stack([f(a) for a in "xyz"], axis=1)
    scales = np.exp(np.stack([f(f"scale_{i}") for i in range(3)], axis=1))
    q = np.stack([f(f"rot_{i}") for i in range(4)], axis=1)
    return means, scales, q / np.linalg.norm(q, axis=1, keepdims=True), 1 / (1 + np.exp(-f("opacity")))


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_double_precision(tmp_path: Path, degree: int) -> None:
    rec = inria_records(30, degree, dtype="<f8", seed=10 + degree)
    path = write_vertices(tmp_path / "double.ply", rec)
    assert b"property double f_dc_0" in path.read_bytes()[:4000]
    cloud = read_ply(path)
    assert cloud.sh_degree == degree
    assert cloud.means.dtype == np.float32
    means, scales, quats, opacities = expected_activated(rec)
    np.testing.assert_array_equal(cloud.means, means.astype(np.float32))
    np.testing.assert_allclose(cloud.scales, scales, rtol=1e-6)
    np.testing.assert_allclose(cloud.quats, quats, atol=1e-6)
    np.testing.assert_allclose(cloud.opacities, opacities, rtol=1e-6, atol=1e-7)


def test_extra_per_vertex_properties(tmp_path: Path) -> None:
    n = 25
    extra = {
        "nx": np.zeros(n, np.float32),
        "segment": np.arange(n, dtype=np.int32),
        "flags": np.full(n, 3, np.uint8),
        "confidence": np.linspace(0, 1, n),  # float64
        "red": np.full(n, 9, np.uint8),
    }
    rec = inria_records(n, 2, extra=extra, seed=4)
    cloud = read_ply(write_vertices(tmp_path / "extra.ply", rec))
    plain = read_ply(write_vertices(tmp_path / "plain.ply", inria_records(n, 2, seed=4)))
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(cloud, name), getattr(plain, name), err_msg=name)
    assert cloud.metadata["ply_properties"] == len(rec.dtype.names)


# Layouts around the vertex element ----------------------------------------------------------------


def coloured_mesh(points: np.ndarray, colours: np.ndarray, faces: np.ndarray, *, text: bool = False,
                  faces_first: bool = False) -> plyfile.PlyData:  # fmt: skip
    vertex = plyfile.PlyElement.describe(point_records(points, "u1", colours), "vertex")
    face_records = np.empty(len(faces), dtype=[("vertex_indices", "O")])
    face_records["vertex_indices"] = list(faces)
    face = plyfile.PlyElement.describe(face_records, "face", len_types={"vertex_indices": "u1"},
                                       val_types={"vertex_indices": "i4"})  # fmt: skip
    return plyfile.PlyData([face, vertex] if faces_first else [vertex, face], text=text, byte_order="<")


@pytest.mark.parametrize("text", [False, True])
def test_coloured_mesh_reads_as_a_point_cloud_and_its_faces_are_skipped(tmp_path: Path, text: bool) -> None:
    points = grid_points(0.1, side=6)
    colours = np.random.default_rng(6).integers(0, 256, (len(points), 3), dtype=np.uint8)
    faces = np.random.default_rng(7).integers(0, len(points), (500, 3)).astype(np.int32)
    path = tmp_path / "mesh.ply"
    coloured_mesh(points, colours, faces, text=text).write(str(path))
    check_point_cloud(read_ply(path), points, colours / 255.0, POINT_OPACITY, 0.1)


def test_ascii_elements_before_the_vertex_are_skipped(tmp_path: Path) -> None:
    points = grid_points(0.1, side=5)
    colours = np.random.default_rng(8).integers(0, 256, (len(points), 3), dtype=np.uint8)
    faces = np.random.default_rng(9).integers(0, len(points), (300, 4)).astype(np.int32)
    path = tmp_path / "faces_first.ply"
    coloured_mesh(points, colours, faces, text=True, faces_first=True).write(str(path))
    check_point_cloud(read_ply(path), points, colours / 255.0, POINT_OPACITY, 0.1)


def test_binary_fixed_size_element_before_the_vertex(tmp_path: Path) -> None:
    camera = np.zeros(2, dtype=[("view_px", "<f4"), ("view_py", "<f4"), ("flags", "u1")])
    rec = inria_records(30, 1, seed=5)
    path = tmp_path / "camera_first.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(camera, "camera"), plyfile.PlyElement.describe(rec, "vertex")]).write(
        str(path)
    )
    plain = read_ply(write_vertices(tmp_path / "plain.ply", rec))
    cloud = read_ply(path)
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(cloud, name), getattr(plain, name), err_msg=name)


def test_list_before_the_vertex_in_binary_is_refused_clearly(tmp_path: Path) -> None:
    points = grid_points(0.1, side=3)
    path = tmp_path / "binary_faces_first.ply"
    coloured_mesh(points, np.zeros((len(points), 3), np.uint8), np.zeros((4, 3), np.int32), faces_first=True).write(
        str(path)
    )
    with pytest.raises(CorruptStream, match="'face' has list properties and comes before 'vertex'"):
        read_ply(path)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_header_with_other_line_endings(tmp_path: Path, newline: bytes) -> None:
    rec = inria_records(12, 0, seed=3)
    data = write_vertices(tmp_path / "lf.ply", rec).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    path = tmp_path / "other.ply"
    path.write_bytes(data[:end].replace(b"\n", newline) + data[end:])
    cloud = read_ply(path)
    np.testing.assert_array_equal(cloud.sh[:, 0], np.stack([rec[f"f_dc_{c}"] for c in range(3)], axis=1))


def test_big_endian_point_cloud(tmp_path: Path) -> None:
    points = grid_points(0.25, side=4)
    colours = np.random.default_rng(10).integers(0, 65536, (len(points), 3)).astype(np.uint16)
    path = write_vertices(tmp_path / "be.ply", point_records(points, "<u2", colours), byte_order=">")
    assert b"binary_big_endian" in path.read_bytes()[:100]
    check_point_cloud(read_ply(path), points, colours / 65535.0, POINT_OPACITY, 0.25)
