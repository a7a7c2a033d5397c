"""Hash-grid scenes in the desktop app: shown by the progressive neural view, starting from the
snapshot's stored view, coarse while the camera moves and refined to the headless renderer's
picture once it stops; image-mode scenes as a picture that pans and zooms."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import wait_for_media

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer  # noqa: E402
from holoscope.codecs.hashgrid.writer import write_snapshot  # noqa: E402
from tests.hashgrid_data import analytic_nerf, image_snapshot  # noqa: E402
from tests.video_reference import read_image  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def sphere_file(tmp_path_factory):
    scene = analytic_nerf(camera_matrix=np.array([[1.0, 0, 0, 0.5], [0, -1.0, 0, 0.5], [0, 0, -1.0, 1.4]]))
    path = tmp_path_factory.mktemp("scene") / "sphere.ingp"
    write_snapshot(path, scene.snapshot.document)
    return path


def test_a_nerf_snapshot_refines_to_the_headless_picture(window, qtbot, sphere_file, tmp_path):
    window.resize(360, 300)
    window.open_paths([str(sphere_file)])
    wait_for_media(qtbot, window, "sphere.ingp")
    view = window.viewport.view
    assert type(view).__name__ == "NeuralSceneView" and view.progressive and view.interactive
    qtbot.waitUntil(lambda: refined(window), timeout=60000)
    window.viewport.update()
    qtbot.wait(100)
    shot = tmp_path / "shot.png"
    window.save_screenshot(shot)
    gui = read_image(shot)
    camera = window.viewport.current_camera()
    stored = view.scene.renderer().default_camera(camera.width, camera.height)
    np.testing.assert_allclose(camera.camera_to_world, stored.camera_to_world, atol=1e-6)  # the stored view
    headless = np.clip(np.rint(SceneRenderer(view.scene.snapshot, device="cpu").render(camera) * 255), 0, 255)
    assert gui.shape == headless.shape and headless.std() > 5
    assert psnr(gui, headless.astype(np.uint8)) > 40
    assert "nerf hash grid" in window.info_rows()["Scene"]


def test_moving_the_camera_shows_a_coarse_picture_first(window, qtbot, sphere_file):
    window.resize(360, 300)
    window.open_paths([str(sphere_file)])
    wait_for_media(qtbot, window, "sphere.ingp")
    view = window.viewport.view
    qtbot.waitUntil(lambda: refined(window), timeout=60000)
    window.viewport.rig.orbit_drag(40, 0)
    window.viewport.update()
    qtbot.waitUntil(lambda: (window.viewport.update() or True) and 0 < view._shown_scale < 1, timeout=30000)
    qtbot.waitUntil(lambda: refined(window), timeout=60000)
    assert view.progressive_job.alive


def test_an_image_scene_is_a_picture_that_zooms(window, qtbot, tmp_path):
    snap = image_snapshot(40, 24)
    path = tmp_path / "ramps.msgpack"
    write_snapshot(path, snap.document)
    from holoscope.codecs.hashgrid.scene import HashGridScene

    # .msgpack image snapshots need their size: the app opens them through .hgz, which stores it.
    from holoscope.codecs.hashgrid.convert import write_hgz_scene

    hgz = tmp_path / "ramps.hgz"
    write_hgz_scene(HashGridScene(snap, "msgpack", path.stat().st_size, (40, 24)), hgz)
    window.resize(360, 300)
    window.open_paths([str(hgz)])
    wait_for_media(qtbot, window, "ramps.hgz")
    view = window.viewport.view
    qtbot.waitUntil(lambda: refined(window), timeout=60000)
    before = read_image_of(window, tmp_path / "a.png")
    window.viewport.rig.zoom_steps(4)
    window.viewport.update()
    qtbot.waitUntil(lambda: refined(window), timeout=60000)
    after = read_image_of(window, tmp_path / "b.png")
    bg = np.array([round(c * 255) for c in window.viewport.settings.background])
    showing = lambda img: np.mean(np.any(np.abs(img.astype(int) - bg) > 3, axis=-1))  # noqa: E731
    assert 0.1 < showing(before) < showing(after)  # zoomed in, the picture covers more of the view
    assert after[..., 0].std() > 3  # the ramp is visible


def refined(window) -> bool:
    """Whether the full-resolution picture of the viewport's current camera is on screen."""
    window.viewport.update()
    return window.viewport.view.refined_for(window.viewport.current_camera())


def read_image_of(window, path):
    window.viewport.update()
    window.save_screenshot(path)
    return read_image(path)
