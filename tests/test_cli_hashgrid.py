"""Hash-grid scenes through the command line: `info`, `render` (stored view, camera paths in the
dataset world, orbits, image mode at --size), `convert` between .ingp, .msgpack and .hgz, and the
clear refusals around them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from holoscope.core.camera_path import CameraPath, write_camera_path
from tests.video_reference import probe_video, read_image

torch = pytest.importorskip("torch")

from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer  # noqa: E402
from holoscope.codecs.hashgrid.snapshot import open_snapshot  # noqa: E402
from holoscope.codecs.hashgrid.writer import write_snapshot  # noqa: E402
from tests.hashgrid_data import analytic_nerf, camera_at, image_snapshot  # noqa: E402

W, H = 40, 30


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def rgb8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    """The analytic glowing sphere as an .ingp, and a camera looking at it from the side."""
    folder = tmp_path_factory.mktemp("hashgrid")
    scene = analytic_nerf(camera_matrix=np.array([[1.0, 0, 0, 0.5], [0, -1.0, 0, 0.5], [0, 0, -1.0, 1.6]]))
    path = folder / "sphere.ingp"
    write_snapshot(path, scene.snapshot.document)
    return path, scene


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hashgrid-image")
    snap = image_snapshot(40, 24)
    path = folder / "ramps.msgpack"
    write_snapshot(path, snap.document)
    return path, snap


def test_info_describes_a_nerf_snapshot(sphere, capsys):
    path, scene = sphere
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "neural-scene" and info["format"] == "ingp" and info["mode"] == "nerf"
    assert info["parameters"] == scene.snapshot.n_params == sum(info["parameters_by_part"].values())
    assert info["levels"] == 8 and info["features_per_level"] == 4 and info["dense_levels"] >= 1
    assert info["density_grid_cascades"] == 1 and 0 < info["occupied_fraction_per_cascade"][0] < 0.2
    assert info["aabb_scale"] == 1 and info["params_type"] == "__half"
    # the stored view (NGP (0.5, 0.5, 1.6) looking down NGP -z) in the dataset world: (p - 0.5) / 0.33, axes cycled
    np.testing.assert_allclose(info["stored_camera"]["position"], [1.1 / 0.33, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(info["stored_camera"]["forward"], [-1.0, 0.0, 0.0], atol=1e-6)


def test_render_starts_from_the_stored_view(sphere, tmp_path, capsys):
    path, scene = sphere
    out = tmp_path / "stored.png"
    assert main(["render", str(path), "-o", str(out), "--size", f"{W}x{H}"]) == 0
    assert f"1 frame of {W}x{H}" in capsys.readouterr().out
    written = read_image(out)
    renderer = SceneRenderer(open_snapshot(path), device="cpu")
    expected = rgb8(renderer.render(renderer.default_camera(W, H)))
    assert np.array_equal(written, expected)
    centre = written[H // 2, W // 2].astype(int)
    assert centre.sum() > 200 and written[0, 0].sum() == 0  # the sphere in the middle, black around it


def test_a_camera_path_is_in_the_dataset_world(sphere, tmp_path):
    path, scene = sphere
    cams = [camera_at(scene.snapshot, (0.5 + 1.2 * np.cos(a), 0.5, 0.5 + 1.2 * np.sin(a)), (0.5, 0.5, 0.5), W, H)
            for a in (0.0, 2.0)]  # fmt: skip
    cams[1] = camera_at(scene.snapshot, (0.9, 0.5, 1.7), (0.9, 0.5, 0.5), W, H)  # looking past the sphere's side
    path_json = tmp_path / "path.json"
    write_camera_path(CameraPath(tuple(cams), 10.0), path_json)
    (tmp_path / "frames").mkdir()
    out = tmp_path / "frames" / "%02d.png"
    assert main(["render", str(path), "--camera-path", str(path_json), "-o", str(out), "-q"]) == 0
    renderer = SceneRenderer(open_snapshot(path), device="cpu")
    for k, cam in enumerate(cams):
        written = read_image(tmp_path / "frames" / f"{k:02d}.png")
        assert psnr(written, rgb8(renderer.render(cam))) > 45  # the path's cameras, converted as the renderer does
    first, second = (read_image(tmp_path / "frames" / f"{k:02d}.png") for k in range(2))
    assert first[H // 2, W // 2].sum() > 200  # looking at the centre: the sphere
    assert second[H // 2, W // 2].sum() < first[H // 2, W // 2].sum() / 2  # aimed beside it: mostly background


def test_an_orbit_renders_every_frame_and_the_background_option_applies(sphere, tmp_path):
    path, _ = sphere
    out = tmp_path / "orbit.mp4"
    assert main(["render", str(path), "-o", str(out), "--size", "32x24", "--orbit", "3", "--background", "1,1,1",
                 "-q"]) == 0  # fmt: skip
    info = probe_video(out)
    assert (info["frames"], info["width"], info["height"]) == (3, 32, 24)
    still = tmp_path / "white.png"
    assert main(["render", str(path), "-o", str(still), "--size", "32x24", "--background", "1,1,1", "-q"]) == 0
    assert read_image(still)[0, 0].min() == 255  # the corner shows the white background


def test_image_mode_needs_its_size_and_renders_at_size(image, tmp_path, capsys):
    path, snap = image
    out = tmp_path / "img.png"
    assert main(["render", str(path), "-o", str(out)]) == 2
    assert "--image-size" in capsys.readouterr().err
    assert main(["render", str(path), "--image-size", "40x24", "-o", str(out), "--size", "80x48", "-q"]) == 0
    written = read_image(out)
    expected = rgb8(SceneRenderer(open_snapshot(path, image_size=(40, 24)), device="cpu").render_image(80, 48))
    assert np.array_equal(written, expected)
    assert written[10, 70, 0] > written[10, 5, 0] and written[40, 10, 1] > written[5, 10, 1]  # R ramps in u, G in v
    assert main(["render", str(path), "--image-size", "40x24", "-o", str(out), "--orbit", "5"]) == 2
    assert "no camera" in capsys.readouterr().err


def test_convert_to_hgz_and_back_to_an_instant_ngp_snapshot(sphere, tmp_path, capsys):
    path, scene = sphere
    hgz = tmp_path / "sphere.hgz"
    assert main(["convert", str(path), str(hgz)]) == 0
    line = capsys.readouterr().out
    assert "bits per parameter" in line and hgz.stat().st_size < path.stat().st_size
    assert main(["info", str(hgz), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "hgz" and info["parameters"] == scene.snapshot.n_params
    back = tmp_path / "back.ingp"
    assert main(["convert", str(hgz), str(back), "-q"]) == 0
    reopened = open_snapshot(back)
    assert reopened.n_params == scene.snapshot.n_params and reopened.mode == "nerf"
    assert "holoscope_occupancy" not in reopened.document["snapshot"]  # instant-ngp's own keys only
    assert len(reopened.document["snapshot"]["density_grid_binary"]) == 2 * 128**3
    frames = []
    for source in (path, hgz, back):
        out = tmp_path / f"{source.name}.png"
        assert main(["render", str(source), "-o", str(out), "--size", f"{W}x{H}", "-q"]) == 0
        frames.append(read_image(out))
    assert psnr(frames[0], frames[1]) > 30 and np.array_equal(frames[1], frames[2])
    raw = tmp_path / "raw.msgpack"
    assert main(["convert", str(path), str(raw), "-q"]) == 0 and raw.read_bytes()[:1] != b"\x1f"


def test_conversions_that_make_no_sense_are_refused(sphere, tmp_path, capsys, samples_dir):
    path, _ = sphere
    assert main(["convert", str(path), str(tmp_path / "out.ply")]) == 2
    assert "hash-grid scene converts to .hgz" in capsys.readouterr().err
    assert main(["convert", str(samples_dir / "splats" / "lod5.ply"), str(tmp_path / "out.hgz")]) == 2
    assert "only a hash-grid scene converts" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_encode_options_are_checked_before_training(tmp_path, capsys):
    assert main(["encode", "hashgrid", "nothing.png", "-o", str(tmp_path / "out.ply")]) == 2
    assert "must end in .hgz" in capsys.readouterr().err
    assert main(["encode", "hashgrid", "nothing.png", "-o", str(tmp_path / "out.hgz"), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_plain_file_named_ingp_is_not_taken_for_a_snapshot(tmp_path, capsys):
    fake = tmp_path / "fake.ingp"
    fake.write_bytes(b"\x1f\x8b" + bytes(40))
    assert main(["info", str(fake)]) == 2
    err = capsys.readouterr().err
    assert "fake.ingp" in err and "Traceback" not in err
    assert Path(fake).exists()


def test_info_and_conversion_import_no_torch(sphere, tmp_path):
    import subprocess
    import sys

    path, _ = sphere
    code = ("import sys\nfrom pathlib import Path\nfrom holoscope.cli import main\n"
            "assert main(['info', sys.argv[1], '--json']) == 0\n"
            "assert main(['convert', sys.argv[1], sys.argv[2], '-q']) == 0\n"
            "assert main(['info', sys.argv[2]]) == 0\n"
            "print('torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "s.hgz")], capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_encode_fits_an_image_into_hgz_and_ingp(tmp_path, capsys):
    import av

    from tests.codecs.test_hashgrid_train_nerf import write_png

    ys, xs = np.mgrid[0:24, 0:32]
    rgb = np.stack([xs * 8, ys * 10, 128 + 0 * xs], -1).astype(np.uint8)
    picture = tmp_path / "ramp.png"
    write_png(picture, np.concatenate([rgb, np.full((24, 32, 1), 255, np.uint8)], -1))
    out = tmp_path / "ramp.hgz"
    assert main(["encode", "hashgrid", str(picture), "-o", str(out), "--steps", "100", "--levels", "8",
                 "--log2-table", "12"]) == 0  # fmt: skip
    line = capsys.readouterr().out
    assert "image 32x24" in line and "100 steps" in line
    psnr_reported = float(line.split("PSNR ")[1].split(" dB")[0])
    assert psnr_reported > 25  # a smooth ramp is easy
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mode"] == "image" and info["image_size"] == [32, 24] and info["levels"] == 8
    shown = tmp_path / "shown.png"
    assert main(["render", str(out), "-o", str(shown), "-q"]) == 0  # the .hgz knows its size
    assert psnr(read_image(shown), rgb) > psnr_reported - 3  # 8-bit tables cost little
    ingp = tmp_path / "ramp.ingp"
    assert main(["encode", "hashgrid", str(picture), "-o", str(ingp), "--steps", "100", "--levels", "8",
                 "--log2-table", "12", "-q"]) == 0  # fmt: skip
    snap = open_snapshot(ingp, image_size=(32, 24))
    assert snap.mode == "image" and snap.params_type == "__half"
    assert av is not None


def test_encode_trains_a_nerf_from_a_dataset_folder(tmp_path, capsys):
    from tests.codecs.test_hashgrid_train_nerf import sphere_dataset

    transforms, _ = sphere_dataset(tmp_path / "sphere", n_views=8)
    out = tmp_path / "sphere.ingp"
    assert main(["encode", "hashgrid", str(transforms.parent), "-o", str(out), "--steps", "3",
                 "--log2-table", "12"]) == 0  # fmt: skip
    assert "NeRF" in capsys.readouterr().out
    snap = open_snapshot(out)
    assert snap.mode == "nerf" and snap.document["snapshot"]["density_grid_binary"]
    still = tmp_path / "still.png"
    assert main(["render", str(out), "-o", str(still), "--size", "24x24", "-q"]) == 0
