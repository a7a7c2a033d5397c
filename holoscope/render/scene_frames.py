"""Render a hash-grid scene (:class:`~holoscope.codecs.hashgrid.scene.HashGridScene`) to a video
file, an image or an image sequence: NeRF and SDF scenes along cameras given in the scene's
dataset world, image-mode scenes as the whole image at the output size. The torch renderer is
the same one the desktop app uses, at full quality for every frame.

Everything that can be checked (sizes against the memory budget, the output's options and
folder) is checked before the first frame is rendered; on any error or interruption the partial
output is removed (the sinks guarantee it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence


from holoscope.codecs.video.output import classify_output, open_output
from holoscope.core.camera import Camera
from holoscope.core.errors import Cancelled, InvalidArgument
from holoscope.render.progressive import to_rgb8
from holoscope.render.video_frames import check_frames_output_size

ProgressFn = Callable[[int, int], None]


def render_scene_frames(scene, cameras: Sequence[Camera] | None, output: str | Path, *, fps: float,
                        size: tuple[int, int] | None = None, background: tuple[float, float, float] | None = None,
                        codec: str | None = None, crf: int | None = None, progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None, device: str | None = None) -> int:  # fmt: skip
    """Write one frame per camera (NeRF, SDF) or the image (image mode, ``size`` or its own) to
    ``output``; returns the number of frames written."""
    if scene.mode == "image":
        if cameras:
            raise InvalidArgument("an image-mode scene has no camera: it renders the whole image (use --size)")
        width, height = size or scene.image_size
        frames: list[Camera | None] = [None]
    else:
        if not cameras:
            raise InvalidArgument("no cameras to render")
        frames = list(cameras)
        if classify_output(str(output)) == "image":
            frames = frames[:1]
        width, height = frames[0].width, frames[0].height
        if any((c.width, c.height) != (width, height) for c in frames):
            raise InvalidArgument("every camera of an output must have the same image size")
    check_frames_output_size(width, height, output, codec)
    with open_output(str(output), width=width, height=height, fps=fps, codec=codec, crf=crf) as sink:
        renderer = scene.renderer(device)
        stop = (lambda: cancel.is_set()) if cancel is not None else None
        for k, camera in enumerate(frames):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render cancelled; partial output removed", path=output)
            if camera is None:
                image = renderer.render_image(width, height)
            else:
                image = renderer.render(camera, background=background, cancelled=stop)
            sink.write(to_rgb8(image))
            if progress is not None:
                progress(k + 1, len(frames))
    return len(frames)


__all__ = ["render_scene_frames"]
