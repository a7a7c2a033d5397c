"""The hash-grid side of the commands: ``render``, ``convert`` and ``encode hashgrid`` for
Instant-NGP snapshots and ``.hgz`` scenes. Kept apart from :mod:`holoscope.cli` so the command
table stays short; nothing here imports torch until a scene is rendered or trained.

Cameras for NeRF scenes are given in the dataset's world (transforms.json convention, OpenGL
camera axes, as nerfstudio camera paths are); the renderer converts them to NGP space with the
snapshot's stored dataset scale, offset and axis cycle. Without a camera path a render starts
from the snapshot's stored view (an orbit of N frames around the scene with ``--orbit N``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from holoscope.cli_edges import emit
from holoscope.core.errors import InvalidArgument, display_path

DEFAULT_SIZE = (1280, 720)
DEFAULT_ORBIT_FRAMES = 120
MAX_IMAGE_SIDE_FOR_SIZE = 1 << 20  # an image-mode grid may be a gigapixel: --image-size allows it


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``--image-size WxH`` (the trained image's size, which Instant-NGP image snapshots do
    not store) -> (width, height)."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InvalidArgument(f"--image-size takes WxH, e.g. 1024x1024, got {text!r}") from None
    if not (1 <= w <= MAX_IMAGE_SIDE_FOR_SIZE and 1 <= h <= MAX_IMAGE_SIDE_FOR_SIZE):
        raise InvalidArgument(f"--image-size sides must be 1..{MAX_IMAGE_SIDE_FOR_SIZE:,}, got {w}x{h}")
    return w, h


def _orbit_cameras(scene, first, frames: int):
    """``frames`` cameras on a circle through ``first`` around the scene's centre, about the
    dataset's up axis: one revolution."""
    from dataclasses import replace

    from holoscope.core.camera import UP_AXES

    lo, hi = scene.bounds()
    centre, up = (lo + hi) / 2, UP_AXES[scene.up()]
    c2w = first.camera_to_world
    out = []
    for k in range(frames):
        angle = 2 * math.pi * k / frames
        r = _axis_rotation(up, angle)
        m = np.eye(4)
        m[:3, :3] = r @ c2w[:3, :3]
        m[:3, 3] = centre + r @ (c2w[:3, 3] - centre)
        out.append(replace(first, camera_to_world=m))
    return out


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def render_scene(args: argparse.Namespace, media, cams, size: tuple[int, int] | None, fps: float,
                 background: tuple[float, float, float] | None) -> int:  # fmt: skip
    """``render X.ingp|X.hgz``: NeRF/SDF along a camera path (dataset world) or from the stored
    view (an orbit with ``--orbit``); image mode renders the whole image at ``--size``."""
    from holoscope.codecs.video.output import classify_output
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.scene_frames import render_scene_frames

    try:
        scene = media.frame(0)
        cameras = None
        if scene.mode == "image":
            given = [flag for name, flag in (("camera_path", "--camera-path"), ("orbit", "--orbit"), ("fov", "--fov"),
                                             ("up", "--up")) if getattr(args, name, None) is not None]  # fmt: skip
            if given:
                raise InvalidArgument(f"{', '.join(given)}: an image-mode scene has no camera; it renders the "
                                      f"whole image (use --size)")  # fmt: skip
        elif cams is not None:
            cameras = list(cams.cameras)
        else:
            width, height = size or DEFAULT_SIZE
            first = scene.renderer().default_camera(width, height)
            if args.fov is not None:
                from dataclasses import replace

                first = replace(first, fov_y=args.fov)
            frames = 1 if classify_output(args.output) == "image" else (args.orbit or DEFAULT_ORBIT_FRAMES)
            cameras = _orbit_cameras(scene, first, frames) if frames > 1 else [first]
        total = 1 if scene.mode == "image" or classify_output(args.output) == "image" else len(cameras or [])
        progress = TerminalProgress(total, label="rendering ")
        n = render_scene_frames(scene, cameras, args.output, fps=fps, size=size, background=background,
                                codec=args.codec, crf=args.crf, progress=progress)  # fmt: skip
        if not args.quiet:
            w, h = (size or scene.image_size) if scene.mode == "image" else (cameras[0].width, cameras[0].height)
            emit(f"wrote {display_path(args.output)}: {n} frame{'s' if n != 1 else ''} of {w}x{h} from the "
                 f"{scene.mode} scene {display_path(media.path)} ({media.reader})")  # fmt: skip
        return 0
    finally:
        media.release()


def convert_scene(args: argparse.Namespace, media, spec, writer) -> int:
    """``convert snap.ingp out.hgz`` (and back, and .msgpack <-> .ingp)."""
    try:
        if spec.kind.value != "neural-scene":
            raise InvalidArgument(f"a hash-grid scene converts to .hgz, .ingp or .msgpack, not {spec.name}")
        scene = media.frame(0)
        if spec.name == "hgz":
            report = writer(scene, args.output, bits=args.bits, prune=not args.no_prune)
        else:
            writer(scene, args.output)
            report = None
        if not args.quiet:
            size = Path(args.output).stat().st_size
            bits = 8 * size / scene.snapshot.n_params
            extra = ""
            if isinstance(report, dict) and report.get("kept_fraction") is not None:
                extra = f", {100 * float(report['kept_fraction']):.1f}% of the table entries kept"
            emit(f"wrote {display_path(args.output)}: {size:,} bytes ({bits:.2f} bits per parameter{extra}) from "
                 f"{display_path(media.path)} ({scene.mode}, {scene.snapshot.n_params:,} parameters)")  # fmt: skip
        return 0
    finally:
        media.release()


def progress_printer(total: int, quiet: bool):
    """A bar with loss and PSNR on a terminal; a line now and then in a log."""
    from holoscope.core.progress import TerminalProgress

    bar = TerminalProgress(total, label="training ")
    last = [-1]

    def progress(done: int, total_: int, note: str = "") -> None:
        if quiet:
            return
        if bar.enabled:
            bar(done, total_, note=note)
        elif done == total_ or done - last[0] >= max(1, total_ // 20):
            last[0] = done
            sys.stderr.write(f"step {done}/{total_}: {note}\n")
            sys.stderr.flush()

    return progress


__all__ = ["convert_scene", "parse_image_size", "progress_printer", "render_scene"]


def add_hashgrid_parser(kinds: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    h = kinds.add_parser("hashgrid", parents=[common],
                         help="fit a hash-grid scene: an image (EXR, PNG, JPEG) or a NeRF dataset (transforms.json)")  # fmt: skip
    h.add_argument("input", help="an image file, or a NeRF dataset's transforms.json (Instant-NGP / nerfstudio layout) "
                                 "or its folder")  # fmt: skip
    h.add_argument("-o", "--output", required=True, help="out.hgz (holoscope, compressed) or out.ingp / out.msgpack "
                                                         "(an Instant-NGP snapshot its testbed opens)")  # fmt: skip
    h.add_argument("--steps", type=int, help="training steps (default: 2000 for images, 3000 for NeRF)")
    h.add_argument("--seconds", type=float, help="stop after this many seconds of training (whichever comes first)")
    h.add_argument("--levels", type=int, help="grid levels (default 16 for images, 8 for NeRF, as instant-ngp)")
    h.add_argument("--features", type=int, help="features per level (default 2 for images, 4 for NeRF)")
    h.add_argument("--log2-table", type=int, help="log2 of the entries per level (default 19 images, 17 NeRF)")
    h.add_argument("--downscale", type=int, default=1, help="NeRF: train on images downscaled by this factor")
    h.add_argument("--bits", type=int, default=8, help=".hgz: bits per quantised table entry (default 8)")
    h.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train (default cpu)")
    h.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    h.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    h.set_defaults(func=cmd_encode_hashgrid)


OUTPUT_SUFFIXES = (".hgz", ".ingp", ".msgpack")


def _dataset_json(text: str) -> Path | None:
    """The transforms.json a NeRF input names (the file or its folder), else None (an image)."""
    path = Path(text)
    if path.is_dir():
        candidate = path / "transforms.json"
        if not candidate.is_file():
            raise InvalidArgument(f"{display_path(path)} is a folder without a transforms.json")
        return candidate
    return path if path.suffix.lower() == ".json" else None


def cmd_encode_hashgrid(args: argparse.Namespace) -> int:
    from holoscope.codecs.hashgrid.writer import SnapshotConfig

    out = str(args.output)
    if not out.lower().endswith(OUTPUT_SUFFIXES):
        raise InvalidArgument(f"the output's name must end in {', '.join(OUTPUT_SUFFIXES)}")
    if args.steps is not None and not 1 <= args.steps <= 10_000_000:
        raise InvalidArgument(f"--steps must be 1..10,000,000, got {args.steps}")
    if args.seconds is not None and not 0 < args.seconds <= 30 * 86400:
        raise InvalidArgument(f"--seconds must be positive (at most 30 days), got {args.seconds}")
    if not 2 <= args.bits <= 16:
        raise InvalidArgument(f"--bits must be 2..16, got {args.bits}")
    if not 1 <= args.downscale <= 64:
        raise InvalidArgument(f"--downscale must be 1..64, got {args.downscale}")
    dataset = _dataset_json(args.input)
    mode = "nerf" if dataset is not None else "image"
    config = SnapshotConfig(mode=mode, n_levels=args.levels or (8 if mode == "nerf" else 16),
                            features=args.features or (4 if mode == "nerf" else 2),
                            log2_table=args.log2_table or (17 if mode == "nerf" else 19),
                            hidden=1 if mode == "nerf" else 2)  # fmt: skip
    steps = args.steps or (3000 if mode == "nerf" else 2000)
    progress = progress_printer(steps, args.quiet)
    if mode == "image":
        from holoscope.codecs.hashgrid.dataset import load_image_target
        from holoscope.codecs.hashgrid.neural.train_image import fit_image

        target = load_image_target(args.input)
        # instant-ngp's 2^16 positions a step, but no more than the image has pixels (a small
        # image gains nothing from sampling each pixel many times a step)
        batch = min(1 << 16, max(1 << 10, target.shape[0] * target.shape[1]))
        result = fit_image(target, config=config, steps=steps, seconds=args.seconds, batch=batch, seed=args.seed,
                           device=args.device, progress=progress)  # fmt: skip
        what = f"image {result.image_size[0]}x{result.image_size[1]}"
    else:
        from holoscope.codecs.hashgrid.dataset import load_dataset
        from holoscope.codecs.hashgrid.neural.train_nerf import fit_nerf

        data = load_dataset(dataset, downscale=args.downscale)
        # A barely trained model's rays never turn opaque, so scoring every held-out view of a
        # short run costs more than the run: score two views below a few hundred steps.
        result = fit_nerf(data, config=config, steps=steps, seconds=args.seconds, seed=args.seed, device=args.device,
                          progress=progress, eval_views=None if steps >= 300 else 2)  # fmt: skip
        what = "NeRF (held-out views)"
    size = write_fitted(result.document, out, image_size=result.image_size if mode == "image" else None, bits=args.bits)
    if not args.quiet:
        emit(f"wrote {display_path(out)}: {size:,} bytes, {what}, {result.n_params:,} parameters, {result.steps} steps "
             f"in {result.seconds:.0f} s, PSNR {result.psnr:.2f} dB")  # fmt: skip
    return 0


def write_fitted(document: dict, output: str, *, image_size: tuple[int, int] | None, bits: int = 8) -> int:
    """A trained snapshot document written as .hgz or as an Instant-NGP snapshot; the bytes written."""
    from holoscope.codecs.hashgrid.writer import write_snapshot

    if output.lower().endswith(".hgz"):
        from holoscope.codecs.hashgrid.hgz import write_hgz
        from holoscope.codecs.hashgrid.snapshot import parse_snapshot

        snapshot = parse_snapshot(document, output, image_size=image_size)
        write_hgz(snapshot, output, bits=bits, image_size=image_size)
        return Path(output).stat().st_size
    return write_snapshot(output, document)
