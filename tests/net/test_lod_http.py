"""Streamed LOD over HTTP (nginx on loopback, through the fault proxy): a scene written by
holoscope and one written by splat-transform render from their URL exactly as from the folder,
and a budgeted render fetches only the chunk files it shows."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from holoscope.codecs.formats.lod_write import write_lod
from tests.codecs.test_lod import spread_cloud
from tests.interop import conftest as interop
from tests.net.faultproxy import FaultProxy
from tests.test_cli import lod4_path, single_camera_file
from tests.video_reference import read_image


@pytest.fixture(scope="module")
def served(streams_dir: Path) -> Path:
    """A holoscope scene of several chunk files per level under /streams/lod-hs/."""
    out = streams_dir / "lod-hs" / "lod-meta.json"
    if not out.exists():
        write_lod(spread_cloud(4000, seed=21, degree=1), out, chunk_count=1, chunk_min=1, chunk_extent=8.0, levels=3,
                  iterations=1)  # fmt: skip
    return out


def _render(source: str, out: Path, cam: Path, *extra: str) -> np.ndarray:
    assert main(["render", source, "-o", str(out), "--camera-path", str(cam), "-q", *extra]) == 0
    return read_image(out)


def test_url_renders_like_the_folder(proxy: FaultProxy, served: Path, tmp_path: Path) -> None:
    _, cams = lod4_path(tmp_path, n=1)
    cam = single_camera_file(tmp_path, cams, 0)
    local = _render(str(served), tmp_path / "local.png", cam)
    remote = _render(proxy.url("streams/lod-hs/lod-meta.json"), tmp_path / "remote.png", cam)
    assert np.array_equal(local, remote)


def test_budget_fetches_only_the_files_it_shows(proxy: FaultProxy, served: Path, tmp_path: Path) -> None:
    from holoscope.codecs.formats.lod import read_lod

    scene = read_lod(served)
    budget = scene.counts[-1]  # the coarsest level fits, nothing finer
    _, cams = lod4_path(tmp_path, n=1)
    cam = single_camera_file(tmp_path, cams, 0)
    _render(proxy.url("streams/lod-hs/lod-meta.json"), tmp_path / "cheap.png", cam, "--splat-budget", str(budget))
    fetched = {r.path.split("/lod-hs/")[1].split("/")[0] for r in proxy.requests("/lod-hs/.+/")}
    coarse = {name.split("/")[0] for name in scene.filenames if name.startswith(f"{scene.levels - 1}_")}
    assert fetched == coarse  # level 0 never downloaded


def _splat_transform() -> Path:
    # The interop fixture lives in tests/interop; the same lookup, and the same skip, here.
    env = os.environ.get("HOLOSCOPE_SPLAT_TRANSFORM")
    binary = Path(env) if env else interop._default_binary()
    if shutil.which("node") is None or not binary.is_file():
        pytest.skip(f"splat-transform {interop.VERSION} (and Node) not installed: run `bash .ci/install-node-tools`")
    return binary


def test_splat_transform_scene_over_http(proxy: FaultProxy, samples_dir: Path, streams_dir: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    binary = _splat_transform()
    folder = streams_dir / "lod-st"
    shutil.rmtree(folder, ignore_errors=True)
    splats = samples_dir / "splats"
    cmd = [str(binary), "-w", "-q", "-g", "cpu", str(splats / "lod4.ply"), "-l", "0",
           str(splats / "lod5.ply"), "-l", "1", str(folder / "lod-meta.json")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    _, cams = lod4_path(tmp_path, n=1)
    cam = single_camera_file(tmp_path, cams, 0)
    local = _render(str(folder / "lod-meta.json"), tmp_path / "local.png", cam)
    remote = _render(proxy.url("streams/lod-st/lod-meta.json"), tmp_path / "remote.png", cam)
    assert np.array_equal(local, remote)
