"""Every splat sample through the registry, damaged copies of each, and cross-format round
trips that must render alike (PSNR per format, asserted against each format's precision)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from holoscope.core.camera import Camera, auto_near
from holoscope.core.errors import HoloscopeError
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media, writer_for

EXPECTED = {  # file -> (format, splat count), from shared/samples/README.md
    "lod5.ply": ("ply", 111),
    "lod4.ply": ("ply", 489),
    "guitar.compressed.ply": ("compressed-ply", 90_854),
    "sh3-64.compressed.ply": ("compressed-ply", 64),
    "minimal.splat": ("splat", 4),
    "minimal-v2.spz": ("spz", 4),
    "minimal-v3.spz": ("spz", 4),
    "minimal-v4.spz": ("spz", 4),
    "minimal-raw.spz": ("spz", 4),
    "minimal.ksplat": ("ksplat", 4),
}


def check_ranges(cloud: SplatCloud) -> None:
    assert np.isfinite(cloud.means).all() and np.isfinite(cloud.sh).all()
    assert (cloud.scales > 0).all() and np.isfinite(cloud.scales).all()
    assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()
    np.testing.assert_allclose(np.linalg.norm(cloud.quats, axis=1), 1.0, atol=1e-5)


def test_the_sample_list_is_complete(samples_dir):
    present = {p.name for p in (samples_dir / "splats").iterdir() if p.is_file()}
    assert present == set(EXPECTED), "a new sample needs an expected count here"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_splat_sample_opens_with_the_right_reader_and_count(samples_dir, name):
    fmt, count = EXPECTED[name]
    media = open_media(samples_dir / "splats" / name)
    assert media.format == fmt
    cloud = media.frame(0)
    assert cloud.count == count
    check_ranges(cloud)


def test_every_wave_frame_opens(samples_dir):
    frames = sorted((samples_dir / "splat-sequences" / "wave").glob("wave_*.sog"))
    assert len(frames) == 200
    for path in frames:
        media = open_media(path)
        assert media.format == "sog"
        cloud = media.frame(0)
        assert cloud.count == 4225
        check_ranges(cloud)


def damaged_variants(data: bytes, rng: np.random.Generator) -> list[bytes]:
    cuts = sorted({0, 1, 4, 16, len(data) // 3, len(data) // 2, len(data) - 1} - {len(data)})
    out = [data[:c] for c in cuts if c < len(data)]
    for _ in range(12):
        flipped = bytearray(data)
        pos = int(rng.integers(0, len(data)))
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(flipped))
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED) + ["wave_0001.sog"])
def test_damaged_samples_give_a_result_or_a_holoscope_error(samples_dir, tmp_path, name):
    source = samples_dir / ("splat-sequences/wave" if name.startswith("wave") else "splats") / name
    data = source.read_bytes()
    if len(data) > 2_000_000:
        data = data[:2_000_000]  # the big sample is truncated anyway: keep the test fast
    rng = np.random.default_rng(len(name))
    for i, variant in enumerate(damaged_variants(data, rng)):
        path = tmp_path / f"{i}-{name}"
        path.write_bytes(variant)
        try:
            cloud = open_media(path).frame(0)
        except HoloscopeError:
            continue
        check_ranges(cloud)  # whatever is returned is a usable scene


# Cross-format round trips ---------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# Minimum PSNR of a render of the re-read scene against the original (three views, 160x120).
# ply stores float32 exactly; SPZ quantises positions to 2^-12, colours to 8 bits and rotations
# to ~10 bits; .splat has 8-bit rotations and colours and no SH; SOG uses 256-entry codebooks.
ROUND_TRIPS = [("out.ply", {}, 60.0, 3), ("out.spz", {}, 35.0, 3), ("out.spz", {"version": 4}, 35.0, 3),
               ("out.splat", {}, 30.0, 0), ("out.sog", {}, 30.0, 3)]  # fmt: skip


@pytest.mark.gl
@pytest.mark.parametrize("filename, options, min_psnr, sh_degree", ROUND_TRIPS)
def test_scene_written_and_read_back_renders_alike(samples_dir, tmp_path, filename, options, min_psnr, sh_degree):
    from holoscope.render.export import SplatFrameRenderer, default_orbit
    from holoscope.render.gl.splat_renderer import RenderSettings

    source = open_media(samples_dir / "splats" / "sh3-64.compressed.ply").frame(0)
    scene = SplatCloud(source.means, source.scales, source.quats, source.opacities, source.sh)
    spec, writer = writer_for(tmp_path / filename)
    out = tmp_path / filename
    writer(scene, out, **options)
    back = open_media(out).frame(0)
    assert back.count == scene.count
    settings = RenderSettings(sh_degree_limit=sh_degree)
    orbit = default_orbit(scene, fov_y=50, aspect=4 / 3)
    original, reread = SplatFrameRenderer(scene), SplatFrameRenderer(back)
    try:
        values = []
        for azimuth in (0.0, 2.0, 4.0):
            orbit.azimuth = azimuth
            cam = Camera(160, 120, 50, orbit.camera_to_world(), near=auto_near(orbit.distance))
            a, b = original.render(cam, settings), reread.render(cam, settings)
            assert a.std() > 0.02
            values.append(psnr(a, b))
    finally:
        original.release()
        reread.release()
    print(f"{spec.name}{options or ''}: PSNR {min(values):.1f} dB (min of 3 views)")
    assert min(values) >= min_psnr


def test_unbundled_sog_opens_by_folder_and_by_meta_json(samples_dir, tmp_path):
    import zipfile

    with zipfile.ZipFile(samples_dir / "splat-sequences" / "wave" / "wave_0001.sog") as zf:
        zf.extractall(tmp_path / "scene")
    by_folder = open_media(tmp_path / "scene")
    by_meta = open_media(tmp_path / "scene" / "meta.json")
    assert by_folder.format == by_meta.format == "sog"
    np.testing.assert_array_equal(by_folder.frame(0).means, by_meta.frame(0).means)
