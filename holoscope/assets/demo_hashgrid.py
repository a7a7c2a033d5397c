"""The built-in demo hash-grid scene (``demo-hashgrid``): the splat demo's torus knot,
photographed by holoscope's own splat renderer and fitted in Instant-NGP's image mode by
holoscope's trainer (16 levels x 2 features), shipped as ``demo.hgz``; in the app it is a
picture to pan and zoom, evaluated only where it is on screen.

Everything is generated (no download). :func:`build` renders the picture (:func:`demo_picture`)
and trains; training takes minutes on a CPU, too long for a first start, so the result is
shipped and rebuilt with ``python -m holoscope.assets.demo_hashgrid [--steps N]``
(deterministic for the seed). :func:`write_dataset` writes the same knot from three rings of
cameras as an Instant-NGP NeRF dataset (``transforms.json`` in the splat scene's Y-up world,
its ``scale`` fitting the scene into NGP's unit cube) for ``holoscope encode hashgrid``: a NeRF
of it needs far more training than the CPU budget of a build (320 steps gave 10.8 dB on held-out
views), so the shipped demo is the image.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from holoscope.core.errors import SourceNotFound

DEMO_HGZ = Path(__file__).with_name("demo.hgz")
VIEW_SIZE = (160, 120)  # width, height of the training photographs
VIEWS = 48  # on three rings; every eighth is held out for the PSNR the build reports
RINGS = ((12.0, 16), (30.0, 20), (55.0, 12))  # (elevation in degrees, cameras)
RADIUS = 5.2  # camera distance from the scene's centre
FOV_Y = 40.0
SCENE_SCALE = 0.2  # world -> NGP: the knot and its disc (radius 2.2) fit well inside [0, 1]^3
PICTURE_SIZE = (512, 384)  # the demo picture fitted in image mode
DEMO_STEPS = 200
DEMO_SEED = 0
DEMO_LOG2_TABLE = 16  # 16 levels x 2 features; the finer levels hash into 2^16 entries


def ring_cameras(width: int = VIEW_SIZE[0], height: int = VIEW_SIZE[1]):
    """The training cameras: three rings around the knot, looking at its centre, Y up."""
    from holoscope.core.camera import Camera, look_at

    cams, target = [], np.array([0.0, -0.1, 0.0])
    for elevation, count in RINGS:
        e = math.radians(elevation)
        for k in range(count):
            a = 2 * math.pi * (k + 0.5 * (elevation > 20)) / count
            eye = target + RADIUS * np.array([math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a)])
            cams.append(Camera(width, height, FOV_Y, look_at(eye, target, np.array([0.0, 1.0, 0.0]))))
    return cams


def write_dataset(folder: Path) -> Path:
    """Render the splat demo from :func:`ring_cameras` into ``folder`` (PNGs and an Instant-NGP
    ``transforms.json``); returns the transforms.json path."""
    from holoscope.assets.demo import make_demo_cloud
    from holoscope.core.splat_math import flip_axes
    from holoscope.render.export import SplatFrameRenderer

    cloud = flip_axes(make_demo_cloud(), (1, -1, -1))  # back to the knot's own Y-up frame
    renderer = SplatFrameRenderer(cloud)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    try:
        for i, cam in enumerate(ring_cameras()):
            rgb = np.clip(np.rint(renderer.render(cam) * 255), 0, 255).astype(np.uint8)
            name = f"view_{i:03d}.png"
            _write_png(folder / name, rgb)
            frames.append({"file_path": name, "transform_matrix": cam.camera_to_world.tolist()})
    finally:
        renderer.release()
    w, h = VIEW_SIZE
    focal = h / (2 * math.tan(math.radians(FOV_Y) / 2))
    transforms = {"w": w, "h": h, "fl_x": focal, "fl_y": focal, "cx": w / 2, "cy": h / 2, "aabb_scale": 1,
                  "scale": SCENE_SCALE, "offset": [0.5, 0.5, 0.5], "frames": frames}  # fmt: skip
    path = folder / "transforms.json"
    path.write_text(json.dumps(transforms, indent=1))
    return path


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from holoscope.codecs.video.output import open_output

    with open_output(str(path), width=rgb.shape[1], height=rgb.shape[0], fps=1) as sink:
        sink.write(rgb)


def demo_picture(width: int = PICTURE_SIZE[0], height: int = PICTURE_SIZE[1]) -> np.ndarray:
    """The demo picture: the knot from the second ring's first camera, float32 sRGB [H, W, 3]."""
    from holoscope.assets.demo import make_demo_cloud
    from holoscope.core.splat_math import flip_axes
    from holoscope.render.export import SplatFrameRenderer

    camera = ring_cameras(width, height)[RINGS[0][1]]
    renderer = SplatFrameRenderer(flip_axes(make_demo_cloud(), (1, -1, -1)))
    try:
        return np.clip(np.rint(renderer.render(camera) * 255), 0, 255).astype(np.float32) / 255
    finally:
        renderer.release()


def demo_hashgrid_path() -> Path:
    """The shipped demo scene."""
    if not DEMO_HGZ.is_file():
        raise SourceNotFound("the demo hash-grid scene is missing from this installation (rebuild it with "
                             "python -m holoscope.assets.demo_hashgrid)", path=DEMO_HGZ)  # fmt: skip
    return DEMO_HGZ


def build(path: Path = DEMO_HGZ, steps: int = DEMO_STEPS, quiet: bool = False):
    """Render the demo picture, fit it in image mode (torch) and write ``path``; returns the fit."""
    from holoscope.cli_hashgrid import progress_printer, write_fitted
    from holoscope.codecs.hashgrid.neural.train_image import fit_image
    from holoscope.codecs.hashgrid.writer import SnapshotConfig

    picture = demo_picture()
    config = SnapshotConfig(mode="image", n_levels=16, features=2, log2_table=DEMO_LOG2_TABLE, hidden=2)
    result = fit_image(picture, config=config, steps=steps, seed=DEMO_SEED, progress=progress_printer(steps, quiet))
    write_fitted(result.document, str(path), image_size=result.image_size)
    if not quiet:
        print(f"wrote {path}: {path.stat().st_size:,} bytes, {result.steps} steps in {result.seconds:.0f} s, "
              f"PSNR {result.psnr:.2f} dB against the picture")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m holoscope.assets.demo_hashgrid", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps (default {DEMO_STEPS})")
    parser.add_argument("-o", "--output", type=Path, default=DEMO_HGZ, help="where to write (default: the shipped file)")
    args = parser.parse_args(argv)
    build(args.output, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
