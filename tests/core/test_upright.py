"""Scenes open upright (issue 8): each format family's default up axis, end to end.

Every test scene is a bright "sky" layer above a dark "ground" layer, stored with the sky along
some file axis; ``holoscope render`` (the real GL renderer on a headless EGL context) with no
``--up`` must put the bright layer at the top of the image when the format's default (or the
file's own coordinate-system record) says where the sky is.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import plyfile
import pytest

from holoscope.cli import main
from holoscope.codecs.formats.common import DEFAULT_UP, colors_to_sh_dc
from holoscope.codecs.formats.ply_inria import write_ply
from holoscope.codecs.formats.sog import write_sog
from holoscope.codecs.formats.splat import write_splat
from holoscope.codecs.formats.spz import (
    COORDINATE_SYSTEMS,
    EXT_COORDINATE_SYSTEM,
    _coordinate_system,
    up_for_coordinate_system,
    write_spz,
)
from tests.video_reference import read_image
from holoscope.core.camera import UP_AXES, Camera
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media
from tests.codecs.test_ksplat import Section, build_ksplat
from tests.codecs.test_ply_compressed import pack_cloud, write_compressed

# Where the sky is, in file coordinates: (axis index, sign).
SKY = {"-y": (1, -1), "+y": (1, 1), "+z": (2, 1)}
GRID = 16
SKY_RGB = np.array([0.95, 0.95, 0.95])
GROUND_RGB = np.array([0.30, 0.12, 0.04])
SCALE = 0.09


def layers(sky: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions and colours: a bright GRIDxGRID layer one unit towards ``sky``, a dark one a unit
    the other way, each a square of side 2 across the other two axes."""
    axis, sign = SKY[sky]
    others = [a for a in range(3) if a != axis]
    u, v = np.meshgrid(np.linspace(-1, 1, GRID), np.linspace(-1, 1, GRID))
    means = []
    rgb = []
    for height, colour in ((1.0, SKY_RGB), (-1.0, GROUND_RGB)):
        p = np.zeros((GRID * GRID, 3))
        p[:, others[0]], p[:, others[1]] = u.ravel(), v.ravel()
        p[:, axis] = sign * height
        means.append(p)
        rgb.append(np.tile(colour, (GRID * GRID, 1)))
    return np.concatenate(means), np.concatenate(rgb)


def sky_cloud(sky: str) -> SplatCloud:
    means, rgb = layers(sky)
    n = len(means)
    sh = np.zeros((n, 1, 3), np.float32)
    sh[:, 0] = colors_to_sh_dc(rgb)
    return SplatCloud(
        means=means.astype(np.float32),
        scales=np.full((n, 3), SCALE, np.float32),
        quats=np.tile(np.array([[1.0, 0, 0, 0]], np.float32), (n, 1)),
        opacities=np.full(n, 0.9, np.float32),
        sh=sh,
    )


def render(path: Path, tmp_path: Path, *extra: str) -> np.ndarray:
    out = tmp_path / f"{path.name}.png"
    assert main(["render", str(path), "-o", str(out), "--size", "64x48", "-q", *extra]) == 0
    return read_image(out).astype(np.float64)


def sky_on_top(img: np.ndarray) -> bool:
    """The bright layer fills the top of the image and the dark one the bottom (or the reverse:
    False); anything else fails, so a sideways or empty picture is never taken for either."""
    luma = img.mean(axis=2)
    top, bottom = luma[: len(luma) // 2].mean(), luma[len(luma) // 2 :].mean()
    assert luma.max() > 150, "the bright layer is visible"
    assert abs(top - bottom) > 20, (top, bottom)
    return bool(top > bottom)


# Writers of each format family, all of a cloud with the sky towards ``sky`` -----------------


def write_point_cloud(path: Path, sky: str) -> Path:
    means, rgb = layers(sky)
    vertex = np.zeros(len(means), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                         ("red", "u1"), ("green", "u1"), ("blue", "u1")])  # fmt: skip
    vertex["x"], vertex["y"], vertex["z"] = means.T
    for i, ch in enumerate(("red", "green", "blue")):
        vertex[ch] = np.round(rgb[:, i] * 255).astype(np.uint8)
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(path))
    return path


def write_compressed_ply(path: Path, sky: str) -> Path:
    means, rgb = layers(sky)
    n = len(means)
    chunks, vertex, _ = pack_cloud(means, np.full((n, 3), np.log(SCALE)), np.tile([1.0, 0, 0, 0], (n, 1)), rgb,
                                   np.full(n, 0.9))  # fmt: skip
    return write_compressed(path, chunks, vertex)


def write_ksplat(path: Path, sky: str) -> Path:
    means, rgb = layers(sky)
    n = len(means)
    rgba = np.concatenate([np.round(rgb * 255), np.full((n, 1), 230)], axis=1).astype(np.uint8)
    section = Section(means=means, scales=np.full((n, 3), SCALE), quats=np.tile([1.0, 0, 0, 0], (n, 1)), rgba=rgba)
    data, _ = build_ksplat([section], mode=0)
    path.write_bytes(data)
    return path


WRITERS = {
    "ply": ("scene.ply", lambda p, sky: write_ply(sky_cloud(sky), p)),
    "point-cloud ply": ("points.ply", write_point_cloud),
    "compressed-ply": ("scene.compressed.ply", write_compressed_ply),
    "sog": ("scene.sog", lambda p, sky: write_sog(sky_cloud(sky), p)),
    "splat": ("scene.splat", lambda p, sky: write_splat(sky_cloud(sky), p)),
    "ksplat": ("scene.ksplat", write_ksplat),
    "spz v3": ("scene.spz", lambda p, sky: write_spz(sky_cloud(sky), p, version=3)),
    "spz v4": ("scene.spz", lambda p, sky: write_spz(sky_cloud(sky), p, version=4)),
}


def make(tmp_path: Path, family: str, sky: str) -> Path:
    name, writer = WRITERS[family]
    path = tmp_path / name
    result = writer(path, sky)
    return result if isinstance(result, Path) else path


def with_coordinate_system(path: Path, value: int, *, before: bytes = b"") -> Path:
    """An SPZ v4 file with an ``SPZ_ADOBE_coordinate_system`` record (after ``before``, other
    records) inserted between the header and the table of contents, as Niantic's library writes."""
    data = path.read_bytes()
    assert data[:4] == b"NGSP" and struct.unpack_from("<I", data, 4)[0] == 4
    records = before + struct.pack("<III", EXT_COORDINATE_SYSTEM, 4, value)
    flags = data[14] | 0x2
    toc = struct.unpack_from("<I", data, 16)[0]
    assert toc == 32
    head = bytearray(data[:32])
    head[14] = flags
    struct.pack_into("<I", head, 16, toc + len(records))
    path.write_bytes(bytes(head) + records + data[32:])
    return path


# The defaults ------------------------------------------------------------------------------


def test_default_table_covers_every_splat_format_with_real_up_axes() -> None:
    assert set(DEFAULT_UP) == {"ply", "compressed-ply", "sog", "splat", "ksplat", "spz", "v3"}
    assert set(DEFAULT_UP.values()) <= set(UP_AXES)
    for fmt in ("ply", "compressed-ply", "sog", "splat", "ksplat", "v3"):
        assert DEFAULT_UP[fmt] == "-y", fmt  # COLMAP / PLY space, as SuperSplat shows them
    assert DEFAULT_UP["spz"] == "+y"  # RUB, the SPZ specification's frame


@pytest.mark.parametrize("family", ["ply", "point-cloud ply", "compressed-ply", "sog", "splat", "ksplat"])
def test_ply_family_opens_with_sky_at_minus_y_on_top(tmp_path: Path, family: str) -> None:
    path = make(tmp_path, family, "-y")
    assert open_media(path).info["default_up"] == "-y"
    assert sky_on_top(render(path, tmp_path))
    # The explicit option still wins: +y turns the same file upside down.
    assert not sky_on_top(render(path, tmp_path, "--up", "+y"))


def test_guitar_sample_defaults_to_minus_y(samples_dir: Path) -> None:
    """PlayCanvas's own compressed PLY (its engine example turns it 180 degrees about Z)."""
    media = open_media(samples_dir / "splats" / "guitar.compressed.ply")
    assert media.format == "compressed-ply" and media.info["default_up"] == "-y"


@pytest.mark.parametrize("version", [3, 4])
def test_spz_without_the_record_follows_the_specification(tmp_path: Path, version: int) -> None:
    path = make(tmp_path, f"spz v{version}", "+y")
    info = open_media(path).info
    assert info["default_up"] == "+y" and "coordinate_system" not in info
    assert sky_on_top(render(path, tmp_path))
    # SPZ stored raw from a COLMAP PLY (splat-transform, SuperSplat, ply_to_spz) says nothing:
    # it opens upside down, and --up -y (or the viewer's choice) puts it right.
    raw = make(tmp_path, f"spz v{version}", "-y")
    assert not sky_on_top(render(raw, tmp_path))
    assert sky_on_top(render(raw, tmp_path, "--up", "-y"))


@pytest.mark.parametrize("system, sky", [("RDF", "-y"), ("RUB", "+y"), ("RFU", "+z"), ("LDB", "-y")])
def test_spz_coordinate_system_record_sets_the_default(tmp_path: Path, system: str, sky: str) -> None:
    path = with_coordinate_system(make(tmp_path, "spz v4", sky), COORDINATE_SYSTEMS.index(system))
    media = open_media(path)
    assert media.info["coordinate_system"] == system and media.info["default_up"] == sky
    assert media.frame(0).count == 2 * GRID * GRID
    assert sky_on_top(render(path, tmp_path))


def test_spz_record_after_an_unknown_one_and_undefined_values(tmp_path: Path) -> None:
    base = make(tmp_path, "spz v4", "-y")
    data = base.read_bytes()
    unknown = struct.pack("<II", 0xADBE0002, 12) + bytes(12)  # safe-orbit camera, skipped
    (tmp_path / "a.spz").write_bytes(data)
    assert open_media(with_coordinate_system(tmp_path / "a.spz", 6, before=unknown)).info["default_up"] == "-y"
    # Values outside the enum are ignored (Niantic's reader drops such a record): the default.
    tmp_path.joinpath("b.spz").write_bytes(data)
    media = open_media(with_coordinate_system(tmp_path / "b.spz", 17))
    assert media.info["default_up"] == "+y" and "coordinate_system" not in media.info


def test_coordinate_system_names_and_up_axes() -> None:
    # Niantic's CoordinateSystem enum (nianticlabs/spz src/cc/splat-types.h).
    assert COORDINATE_SYSTEMS.index("RUB") == 4 and COORDINATE_SYSTEMS.index("RDF") == 6
    assert COORDINATE_SYSTEMS.index("LUF") == 7 and COORDINATE_SYSTEMS.index("RBU") == 16
    expected = {"UNSPECIFIED": "+y"}  # Niantic's library resolves an unspecified record to RUB
    for name in COORDINATE_SYSTEMS[1:9]:
        expected[name] = "+y" if name[1] == "U" else "-y"
    for name in COORDINATE_SYSTEMS[9:]:
        expected[name] = "+z" if name[2] == "U" else None  # Z down: no holoscope axis, so none
    assert {name: up_for_coordinate_system(name) for name in COORDINATE_SYSTEMS} == expected
    assert up_for_coordinate_system(None) is None and up_for_coordinate_system("XYZ") is None
    assert [n for n, up in expected.items() if up == "+z"] == ["LFU", "RFU", "LBU", "RBU"]


def test_coordinate_system_scan_never_fails() -> None:
    record = struct.pack("<III", EXT_COORDINATE_SYSTEM, 4, 6)
    assert _coordinate_system(b"x" * 32 + record, 32, 32 + len(record)) == 6
    # A record running past the zone ends the scan; so does a zone cut inside a record header.
    assert _coordinate_system(b"x" * 32 + record, 32, 32 + len(record) - 1) is None
    assert _coordinate_system(b"x" * 32 + struct.pack("<II", 1, 1 << 31) + record, 32, 100) is None
    assert _coordinate_system(b"x" * 32 + record[:6], 32, 38) is None
    # A short payload is ignored; the next record is still read.
    short = struct.pack("<II", EXT_COORDINATE_SYSTEM, 2) + b"\x06\x00"
    assert _coordinate_system(b"x" * 32 + short + record, 32, 32 + len(short) + len(record)) == 6
    # A zone that claims to run beyond the file reads what is there.
    assert _coordinate_system(b"x" * 32 + record, 32, 1 << 40) == 6
    assert _coordinate_system(b"", 32, 16) is None
    # A forged zone of a million empty records is not walked to its end.
    zone = bytes(8 << 20) + record
    assert _coordinate_system(b"x" * 32 + zone, 32, 32 + len(zone)) is None


def test_z_down_record_falls_back_to_the_specification(tmp_path: Path) -> None:
    path = with_coordinate_system(make(tmp_path, "spz v4", "+y"), COORDINATE_SYSTEMS.index("RFD"))
    info = open_media(path).info
    assert info["coordinate_system"] == "RFD" and info["default_up"] == "+y"


def test_demo_is_stored_like_a_colmap_ply_and_looks_as_before() -> None:
    """Version 2 of the demo is version 1 turned 180 degrees about X: with the PLY default (-y)
    the default orbit shows exactly what version 1 showed with +y (knot over the disc)."""
    from holoscope.assets import demo
    from holoscope.core.splat_math import flip_axes
    from holoscope.render.export import SplatFrameRenderer, default_orbit
    from holoscope.render.gl.splat_renderer import RenderSettings

    stored = demo.make_demo_cloud()
    assert demo.DEMO_VERSION == 2
    ground = slice(demo.KNOT_SPLATS, None)
    assert np.all(stored.means[ground, 1] > 0.5), "the disc lies towards +Y: below, with -Y up"
    upright = flip_axes(stored, (1, -1, -1))  # as version 1 stored it
    images = []
    for cloud, up in ((stored, "-y"), (upright, "+y")):
        orbit = default_orbit(cloud, fov_y=50, aspect=4 / 3, up=up)
        camera = Camera(96, 72, 50.0, orbit.camera_to_world())
        renderer = SplatFrameRenderer(cloud)
        try:
            images.append(renderer.render(camera, RenderSettings()))
        finally:
            renderer.release()
    a, b = images
    assert a.std() > 0.05
    np.testing.assert_allclose(a, b, atol=2 / 255)
    luma = a.mean(axis=2)
    rows = np.arange(len(luma))
    grey = (np.abs(a - a.mean(axis=2, keepdims=True)).max(axis=2) < 0.03) & (luma > 0.2)  # the disc
    colour = np.abs(a - a.mean(axis=2, keepdims=True)).max(axis=2) > 0.15  # the knot
    assert (rows[:, None] * colour).sum() / colour.sum() < (rows[:, None] * grey).sum() / grey.sum()
