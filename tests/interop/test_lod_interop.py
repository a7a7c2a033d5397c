"""Streamed LOD between holoscope and PlayCanvas's splat-transform: a scene splat-transform wrote
opens in holoscope (same splats, same picture), and a scene holoscope wrote opens in
splat-transform (same levels, counts and splats)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.lod import read_lod
from holoscope.codecs.formats.lod_write import write_lod
from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.core.camera import Camera, look_at
from holoscope.core.registry import open_media
from holoscope.render.export import SplatFrameRenderer
from tests.codecs.test_lod import spread_cloud
from tests.interop.conftest import TIMEOUT_S


def info_json(splat_transform, path: Path) -> dict:
    done = subprocess.run([str(splat_transform.binary), "-q", str(path), "--info", "json", "null"],
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    return json.loads(out[out.index("{") : out.rindex("}") + 1])


def sorted_columns(a: np.ndarray) -> np.ndarray:
    return np.sort(a, axis=0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def render(cloud, cameras) -> list[np.ndarray]:
    frames = SplatFrameRenderer(cloud)
    try:
        return [frames.render(c) for c in cameras]
    finally:
        frames.release()
        frames.ctx.release()


def lod4_cameras() -> list[Camera]:
    out = []
    for angle in (0.0, 2.1, 4.2):
        eye = np.array([2.0 + 4.5 * np.cos(angle), 0.5, 4.6 + 4.5 * np.sin(angle)])
        out.append(Camera(160, 120, 50.0, look_at(eye, np.array([2.0, 2.0, 4.6]), np.array([0, -1.0, 0]))))
    return out


@pytest.fixture(scope="module")
def st_scene(splat_transform, samples_dir, tmp_path_factory) -> Path:
    """lod4.ply as level 0 and lod5.ply as level 1, written by splat-transform."""
    folder = tmp_path_factory.mktemp("st-lod")
    splats = samples_dir / "splats"
    out = folder / "lod-meta.json"
    # Two inputs, each tagged with its level (the helper runs one input, so the command is spelt out).
    cmd = [str(splat_transform.binary), "-w", "-q", "-g", "cpu", str(splats / "lod4.ply"), "-l", "0",
           str(splats / "lod5.ply"), "-l", "1", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    return out


def test_splat_transform_scene_opens_with_its_levels(st_scene, samples_dir):
    scene = read_lod(st_scene)
    lod4 = read_ply(samples_dir / "splats" / "lod4.ply")
    lod5 = read_ply(samples_dir / "splats" / "lod5.ply")
    assert scene.levels == 2 and scene.counts == [lod4.count, lod5.count]
    assert scene.full_cloud().count == lod4.count
    assert scene.coarsest_cloud().count == lod5.count
    media = open_media(st_scene)
    assert media.info["lod_levels"] == 2 and media.info["lod_counts"] == [lod4.count, lod5.count]


def test_splat_transform_scene_is_the_same_splats_and_picture(st_scene, splat_transform, tmp_path):
    # splat-transform's own decoding of the scene (a float PLY) is the reference for "the same splats".
    decoded = read_ply(splat_transform(st_scene, tmp_path / "full.ply"))
    full = read_lod(st_scene).full_cloud()
    assert full.count == decoded.count
    assert np.allclose(sorted_columns(full.means), sorted_columns(decoded.means), atol=1e-5)
    assert np.allclose(np.sort(full.opacities), np.sort(decoded.opacities), atol=1e-5)
    cams = lod4_cameras()
    for a, b in zip(render(full, cams), render(decoded, cams)):
        assert psnr(a, b) >= 60.0
    level1 = read_ply(splat_transform(st_scene, tmp_path / "l1.ply", "-L", "1"))
    assert read_lod(st_scene).coarsest_cloud().count == level1.count


def test_holoscope_scene_opens_in_splat_transform(splat_transform, tmp_path):
    cloud = spread_cloud(5000, seed=11, degree=2)
    out = tmp_path / "scene" / "lod-meta.json"
    meta = write_lod(cloud, out, chunk_count=1, chunk_min=1, iterations=2)
    assert len(meta["filenames"]) > meta["lodLevels"]  # several files per level
    info = info_json(splat_transform, out)
    assert info["format"] == "lod" and info["numLods"] == meta["lodLevels"]
    assert info["lodCounts"] == meta["counts"] and info["shBands"] == 2
    decoded = read_ply(splat_transform(out, tmp_path / "back.ply"))
    full = read_lod(out).full_cloud()
    assert decoded.count == cloud.count == full.count
    assert np.allclose(sorted_columns(decoded.means), sorted_columns(full.means), atol=1e-5)
    assert np.allclose(np.sort(decoded.scales.ravel()), np.sort(full.scales.ravel()), rtol=1e-4)
    coarse = read_ply(splat_transform(out, tmp_path / "coarse.ply", "-L", str(meta["lodLevels"] - 1)))
    assert coarse.count == meta["counts"][-1]


def test_holoscope_conversion_of_a_sample_opens_in_splat_transform(splat_transform, samples_dir, tmp_path):
    lod4 = read_ply(samples_dir / "splats" / "lod4.ply")
    out = tmp_path / "lod4" / "lod-meta.json"
    meta = write_lod(lod4, out)
    info = info_json(splat_transform, out)
    assert info["numLods"] == meta["lodLevels"] >= 2 and info["lodCounts"] == meta["counts"]
    assert info["lodCounts"][0] == lod4.count
