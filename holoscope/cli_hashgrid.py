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

    from holoscope.codecs.hashgrid.cameras import scene_centre, scene_up

    centre, up = scene_centre(scene.snapshot), scene_up(scene.snapshot)
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
