"""Command line: ``holoscope render``, ``holoscope info``.

Bad input prints one line (``holoscope: error: ...``) and exits with code 2; ``--debug`` shows
the traceback instead. Heavy modules (moderngl, PyAV) are imported inside the commands, and
torch / Qt are never imported for splat scenes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from holoscope import __version__
from holoscope.cli_edges import (
    OneLineParser,
    OneLineWarnings,
    emit,
    printable_streams,
    process_edges,
    report,
)
from holoscope.cli_network import add_cache_command, add_network_options, apply_network_options, network_report
from holoscope.core.allocator import use_one_malloc_arena
from holoscope.core.sources import is_url, resolve_name
from holoscope.core.errors import InvalidArgument, display_path

DEMO = "demo"
DEMO_VIDEO = "demo-video"  # the built-in Gaussian video (holoscope.assets.demo_video)
DEMO_NERV = "demo-nerv"  # the built-in neural video (holoscope.assets.demo_nerv, shipped)
DEMO_HASHGRID = "demo-hashgrid"  # the built-in hash-grid scene (holoscope.assets.demo_hashgrid, shipped)
DEMO_LOD = "demo-lod"  # the demo scene as a streamed-LOD scene (holoscope.assets.demo_lod, made on first use)
DEMOS = (DEMO, DEMO_VIDEO, DEMO_NERV, DEMO_HASHGRID, DEMO_LOD)


def parse_size(text: str) -> tuple[int, int]:
    from holoscope.core.camera import MAX_IMAGE_SIDE, check_image_size

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InvalidArgument(f"size must look like 1280x720, got {text!r}") from None
    if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
        raise InvalidArgument(f"size {w}x{h} is out of range (1..{MAX_IMAGE_SIDE} per side)")
    return check_image_size(w, h)


def parse_color(text: str) -> tuple[float, float, float]:
    """'R,G,B' as floats in 0..1, or as 0..255 integers when any component exceeds 1."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidArgument(f"background must look like 0,0,0 or 255,255,255, got {text!r}") from None
    if len(parts) != 3 or any(not (math.isfinite(v) and 0 <= v <= 255) for v in parts):
        raise InvalidArgument(f"background needs three components in 0..1 or 0..255, got {text!r}")
    if any(v > 1 for v in parts):
        parts = [v / 255 for v in parts]
    return parts[0], parts[1], parts[2]


def _resolve_input(text: str | None) -> Path:
    """The named file; ``demo`` (or nothing), ``demo-video``, ``demo-nerv`` and ``demo-hashgrid``
    are the built-in demos (the first two made and cached on first use), unless a file of that
    name exists here."""
    from holoscope.assets.demo import demo_path

    if text is None or (text == DEMO and not Path(text).exists()):
        return demo_path()
    if text == DEMO_VIDEO and not Path(text).exists():
        from holoscope.assets.demo_video import demo_video_path

        return demo_video_path()
    if text == DEMO_NERV and not Path(text).exists():
        from holoscope.assets.demo_nerv import demo_nerv_path

        return demo_nerv_path()
    if text == DEMO_HASHGRID and not Path(text).exists():
        from holoscope.assets.demo_hashgrid import demo_hashgrid_path

        return demo_hashgrid_path()
    if text == DEMO_LOD and not Path(text).exists():
        from holoscope.assets.demo_lod import demo_lod_path

        return demo_lod_path()

    text = resolve_name(text)  # file:// to a path; ftp:// and the like refused by name
    if is_url(text):
        return text  # type: ignore[return-value]  # a URL stays a string: Path would fold its '//'
    return Path(text)


def _shown_name(path: Path | str) -> str:
    """A file's printable name, or a URL without its user and password."""
    if is_url(path):
        from holoscope.core.http import display_url

        return display_url(str(path))
    return display_path(path)


def _input_bytes(path: Path | str) -> int:
    """The size of what was opened: the local file's, or the server's Content-Length."""
    
    if is_url(path):
        from holoscope.core.sources import source_for

        return source_for(str(path)).size or 0
    return Path(path).stat().st_size


def _open(path: Path | str, forced: str | None, fps: float | None = None, image_size: str | None = None):
    from holoscope.codecs.inputs import open_input
    from holoscope.cli_hashgrid import parse_image_size

    return open_input(path, forced, fps=fps, image_size=parse_image_size(image_size))


def _open_splats(path: Path | str, forced: str | None):
    return _checked_splats(_open(path, forced), path)


def _checked_splats(media, path: Path | str, action: str = "rendered"):
    from holoscope.core.errors import FormatNotRecognized
    from holoscope.core.media import MediaKind

    if media.kind is not MediaKind.SPLATS:
        media.release()
        raise FormatNotRecognized(f"{media.format} files cannot be {action} by this command yet", path=path)
    return media, media.frame(0)


MAX_ORBIT_FRAMES = 100_000  # about 55 minutes at 30 fps; a typo like 1e9 must not build 1e9 cameras


def cmd_render(args: argparse.Namespace) -> int:
    from holoscope.codecs.video.output import check_output
    from holoscope.core.errors import FormatNotRecognized
    from holoscope.core.media import MediaKind
    from holoscope.core.camera import auto_near, check_fov, parse_up
    from holoscope.core.camera_path import check_fps, orbit_path, read_camera_path
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.export import ExportOptions, check_output_size, default_orbit, render_to_output
    from holoscope.render.gl.splat_renderer import RenderSettings

    up = None if args.up is None else parse_up(args.up)  # checked before the scene is read
    background = parse_color("0,0,0" if args.background is None else args.background)
    fov = check_fov(50.0 if args.fov is None else args.fov, "--fov")
    if args.camera_path and args.orbit is not None:
        raise InvalidArgument("use either --camera-path or --orbit, not both")
    if args.orbit is not None and not 1 <= args.orbit <= MAX_ORBIT_FRAMES:
        raise InvalidArgument(f"--orbit takes 1..{MAX_ORBIT_FRAMES:,} frames, got {args.orbit}")
    fps = None if args.fps is None else check_fps(args.fps, "--fps")
    if args.sh_degree is not None and not 0 <= args.sh_degree <= 3:
        raise InvalidArgument(f"--sh-degree must be 0..3, got {args.sh_degree}")
    if args.splat_budget is not None and args.splat_budget < 1:
        raise InvalidArgument(f"--splat-budget must be a positive number of splats, got {args.splat_budget}")
    size = parse_size(args.size) if args.size else None
    # Options, the output name and folder, and the output's memory are checked before the
    # scene is read: a mistake costs milliseconds, not a decode.
    cams = read_camera_path(args.camera_path) if args.camera_path else None
    path_cams = cams  # with its own timing: a sequence aligns with it in time
    if cams is not None:
        if size:
            cams = path_cams = cams.resized(*size)
        fps = fps or cams.fps
        cams = type(cams)(cams.cameras, fps)
        width, height = cams.cameras[0].width, cams.cameras[0].height
    else:
        width, height = size or (1280, 720)
        fps = fps or 30.0
    kind = check_output(args.output, width=width, height=height, fps=fps, codec=args.codec, crf=args.crf)
    check_output_size(width, height, args.output, args.codec)
    path = _resolve_input(args.input)
    media = _open(path, args.format, fps=args.fps, image_size=args.image_size)
    if media.kind is MediaKind.NEURAL_SCENE:
        from holoscope.cli_hashgrid import render_scene

        scene_background = None if args.background is None else background  # NeRF: the snapshot's own
        return render_scene(args, media, path_cams, size, fps, scene_background)
    if media.kind is MediaKind.NEURAL_VIDEO:
        return _render_neural_video(args, media, size, fps if args.fps is not None else None)
    if media.kind.is_timed_splats:
        return _render_sequence(args, media, path_cams, (width, height), fov, up, background)
    if media.kind is not MediaKind.SPLATS:
        media.release()
        raise FormatNotRecognized(f"{media.format} files cannot be rendered by this command yet", path=path)
    budget = args.splat_budget
    lod = getattr(media, "lod_scene", None)
    if budget is not None and lod is None:
        media.release()
        raise InvalidArgument("--splat-budget applies to streamed-LOD scenes (lod-meta.json)", path=path)
    # Under a budget a streamed-LOD scene is framed by its coarsest level, never read whole.
    cloud = lod.coarsest_cloud() if budget is not None else media.frame(0)
    if cams is None:
        frames = 1 if kind == "image" else (args.orbit or 120)
        if up is None:  # the scene's own default: its format's, or what the file says
            up = parse_up(str(media.info.get("default_up") or "+y"))
        orbit = default_orbit(cloud, fov_y=fov, aspect=width / height, up=up)
        cams = orbit_path(orbit, frames, width=width, height=height, fov_y=fov, fps=fps,
                          near=auto_near(orbit.distance))  # fmt: skip
    settings = RenderSettings(background=background, sh_degree_limit=3 if args.sh_degree is None else args.sh_degree)
    progress = TerminalProgress(len(cams), label="rendering ")
    cloud_for = None if budget is None else (lambda camera: lod.cloud_for_camera(camera, budget))
    n = render_to_output(cloud, cams, args.output, ExportOptions(args.codec, args.crf, settings), progress=progress,
                         cloud_for=cloud_for)  # fmt: skip
    if not args.quiet:
        emit(f"wrote {display_path(args.output)}: {n} frame{'s' if n != 1 else ''} of {width}x{height} "
             f"from {display_path(media.path)} ({media.reader})")
    return 0


def _render_sequence(args: argparse.Namespace, media, cams, size: tuple[int, int], fov: float, up: str | None,
                     background: tuple[float, float, float]) -> int:  # fmt: skip
    """``render SEQ``: one output frame per sequence frame at its fps, the camera moving or
    fixed, aligned in time with a camera path (the longer of the two sets the length)."""
    from holoscope.core.camera import auto_near, parse_up
    from holoscope.core.camera_path import orbit_path
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.export import ExportOptions, default_orbit
    from holoscope.render.gl.splat_renderer import RenderSettings
    from holoscope.render.timeline import parse_frame_range, plan_timeline, render_timeline

    frame_range = parse_frame_range(args.frames, media.frame_count) if args.frames else (0, media.frame_count)
    if cams is None:
        first = media.frame(int(media.info.get("first_readable_frame", 0)))
        width, height = size
        up = up or parse_up(str(media.info.get("default_up") or "+y"))
        orbit = default_orbit(first, fov_y=fov, aspect=width / height, up=up)
        # --orbit N: one revolution over N output frames; by default over the sequence itself.
        frames = args.orbit or (frame_range[1] - frame_range[0])
        cams = orbit_path(orbit, frames, width=width, height=height, fov_y=fov, fps=media.fps,
                          near=auto_near(orbit.distance))  # fmt: skip
    plan = plan_timeline(media.frame_count, media.fps, cams, fps=media.fps, loop=args.loop, frame_range=frame_range)
    settings = RenderSettings(background=background, sh_degree_limit=3 if args.sh_degree is None else args.sh_degree)
    progress = TerminalProgress(len(plan), label="rendering ")
    n = render_timeline(media, plan, args.output, ExportOptions(args.codec, args.crf, settings), progress=progress)
    if not args.quiet:
        w, h = plan.cameras[0].width, plan.cameras[0].height
        emit(f"wrote {display_path(args.output)}: {n} frame{'s' if n != 1 else ''} of {w}x{h} at {plan.fps:g} fps "
             f"from {media.frame_count} sequence frames in {display_path(media.path)} ({media.reader})")
    return 0


CAMERA_OPTIONS = (("orbit", "--orbit"), ("camera_path", "--camera-path"), ("up", "--up"), ("fov", "--fov"),
                  ("sh_degree", "--sh-degree"), ("background", "--background"))  # fmt: skip


def _render_neural_video(args: argparse.Namespace, media, size: tuple[int, int] | None, fps: float | None) -> int:
    """``render X.nerv``: its decoded frames, one output frame each, at the source size or
    ``--size``, at its fps or ``--fps``; camera options do not apply."""
    from holoscope.codecs.video.output import classify_output
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.timeline import parse_frame_range
    from holoscope.render.video_frames import render_video_frames, source_size

    try:
        given = [flag for name, flag in CAMERA_OPTIONS if getattr(args, name, None) is not None]
        if given:
            raise InvalidArgument(f"{', '.join(given)}: camera options do not apply to neural video "
                                  f"({media.format}), which renders its decoded frames")  # fmt: skip
        frame_range = parse_frame_range(args.frames, media.frame_count) if args.frames else None
        start, stop = frame_range or (0, media.frame_count or 0)
        total = 1 if classify_output(args.output) == "image" else stop - start
        progress = TerminalProgress(total, label="rendering ")
        n = render_video_frames(media, args.output, size=size, fps=fps, frame_range=frame_range, codec=args.codec,
                                crf=args.crf, progress=progress)  # fmt: skip
        if not args.quiet:
            w, h = size or source_size(media)
            emit(f"wrote {display_path(args.output)}: {n} frame{'s' if n != 1 else ''} of {w}x{h} at "
                 f"{fps or media.fps:g} fps from {media.frame_count} neural video frames in "
                 f"{display_path(media.path)} ({media.reader})")  # fmt: skip
        return 0
    finally:
        media.release()


VIDEO_INFO_KEYS = ("codec", "width", "height", "display_aspect", "pixel_format", "color_matrix", "color_range",
                   "bit_depth", "bitrate", "duration", "decode_path", "frames_estimated", "frame_count_source")  # fmt: skip


def describe(path: Path, forced: str | None = None, fps: float | None = None, image_size: str | None = None) -> dict:
    """What ``holoscope info`` reports, as a JSON-ready dict."""
    import numpy as np

    from holoscope.core.media import MediaKind

    probe = _open(path, forced, fps, image_size=image_size)
    if probe.kind is MediaKind.NEURAL_SCENE:
        try:
            return {"file": _shown_name(path), "format": probe.format, "reader": probe.reader, "kind": probe.kind.value,
                    "file_bytes": _input_bytes(path), **{k: _jsonable(v) for k, v in probe.info.items()}}  # fmt: skip
        finally:
            probe.release()
    if probe.kind is MediaKind.SPLAT_SEQUENCE:
        from holoscope.codecs.sequence import describe_sequence

        return {"file": _shown_name(path), "format": probe.format, "reader": probe.reader, "kind": probe.kind.value,
                **describe_sequence(probe)}  # fmt: skip
    if probe.kind in (MediaKind.SPLAT_VIDEO, MediaKind.NEURAL_VIDEO):
        return {"file": _shown_name(path), "format": probe.format, "reader": probe.reader, "kind": probe.kind.value,
                "frames": probe.frame_count, "fps": round(probe.fps, 6), "duration": round(probe.duration or 0, 6),
                **{k: _jsonable(v) for k, v in probe.info.items() if k not in ("first_readable_frame",)}}  # fmt: skip
    if probe.kind is not MediaKind.SPLATS:
        try:
            report = {"file": _shown_name(path), "format": probe.format, "reader": probe.reader, "kind": probe.kind.value,
                      "frames": probe.frame_count, "fps": round(probe.fps, 6), "file_bytes": _input_bytes(path)}  # fmt: skip
            for key in VIDEO_INFO_KEYS:
                value = probe.info.get(key)
                if value is not None:
                    report[key] = value if isinstance(value, (int, float, str)) else str(value)
            return report
        finally:
            probe.release()
    media, cloud = probe, probe.frame(0)
    lo, hi = cloud.robust_bounds()
    # a streamed-LOD scene: its index file and the chunk files the full-detail scene was read from
    size = _input_bytes(path) + int(cloud.metadata.get("format_info", {}).get("lod_chunk_bytes", 0))
    return {
        "file": _shown_name(path),
        "format": media.format,
        "reader": media.reader,
        "kind": media.kind.value,
        "frames": media.frame_count,
        "splats": cloud.count,
        "sh_degree": cloud.sh_degree,
        "file_bytes": size,
        "bytes_per_splat": round(size / cloud.count, 2),
        "bounds_min": [round(float(v), 6) for v in np.min(cloud.means, axis=0)],
        "bounds_max": [round(float(v), 6) for v in np.max(cloud.means, axis=0)],
        "robust_bounds_min": [round(float(v), 6) for v in lo],
        "robust_bounds_max": [round(float(v), 6) for v in hi],
        "opacity_range": [round(float(cloud.opacities.min()), 6), round(float(cloud.opacities.max()), 6)],
        "dropped_nonfinite": int(cloud.metadata.get("dropped_nonfinite", 0)),
        # What the container itself says: SPZ version, SOG codebook sizes, ksplat mode ...
        **{k: _jsonable(v) for k, v in cloud.metadata.get("format_info", {}).items()},
    }


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def parse_flip(text: str) -> tuple[int, int, int]:
    """'y,z' / 'yz' (axes to flip) or '1,-1,-1' (signs) -> per-axis signs."""
    cleaned = text.replace(" ", "").lower()
    if cleaned and set(cleaned) <= set("xyz,"):
        axes = set(cleaned.replace(",", ""))
        return tuple(-1 if a in axes else 1 for a in "xyz")  # type: ignore[return-value]
    try:
        signs = tuple(int(v) for v in cleaned.split(","))
    except ValueError:
        signs = ()
    if len(signs) != 3 or set(signs) - {1, -1}:
        raise InvalidArgument(f"--flip-axes takes axes like 'y,z' or signs like '1,-1,-1', got {text!r}")
    return signs  # type: ignore[return-value]


def cmd_convert(args: argparse.Namespace) -> int:
    from holoscope.core.registry import writer_for
    from holoscope.core.splat_math import flip_axes

    if args.sh_degree is not None and not 0 <= args.sh_degree <= 3:
        raise InvalidArgument(f"--sh-degree must be 0..3, got {args.sh_degree}")
    flip = parse_flip(args.flip_axes) if args.flip_axes else None
    if str(args.input).lower().endswith((".pth", ".pt")) and (
        (args.to or "").lower() == "nerv" or (args.to is None and str(args.output).lower().endswith(".nerv"))
    ):
        from holoscope.cli_encode import import_nerv_checkpoint

        return import_nerv_checkpoint(args)
    spec, writer = writer_for(args.output, args.to)  # fail on an unknown output before reading
    from holoscope.codecs.inputs import is_sequence_input

    if args.format is None and is_sequence_input(args.input):
        from holoscope.codecs.sequence import output_name

        output_name(args.output, 1)  # a numbered name, checked before any frame is read
        return _convert_sequence(args, spec, writer, flip, _open(args.input, None))
    media = _open(_resolve_input(args.input), args.format, image_size=args.image_size)
    from holoscope.core.media import MediaKind

    if media.kind is MediaKind.NEURAL_SCENE:
        from holoscope.cli_hashgrid import convert_scene

        return convert_scene(args, media, spec, writer)
    if spec.kind is MediaKind.NEURAL_SCENE:
        media.release()
        raise InvalidArgument(f"only a hash-grid scene converts to {spec.name}; {display_path(args.input)} is "
                              f"{media.format}")  # fmt: skip
    if media.kind.is_timed_splats:
        return _convert_sequence(args, spec, writer, flip, media)
    media, cloud = _checked_splats(media, args.input, "converted")
    if args.sh_degree is not None:
        cloud = cloud.with_sh_degree(args.sh_degree)
    if flip is not None:
        cloud = flip_axes(cloud, flip)
    options = {}
    if args.spz_version is not None:
        if spec.name != "spz":
            raise InvalidArgument("--spz-version applies to .spz outputs only")
        options["version"] = args.spz_version
    writer(cloud, Path(args.output), **options)
    if not args.quiet:
        size = Path(args.output).stat().st_size if Path(args.output).is_file() else 0
        emit(f"wrote {display_path(args.output)} ({spec.name}): {cloud.count:,} splats, SH {cloud.sh_degree}, "
             f"{size:,} bytes ({size / cloud.count:.1f} B/splat) from {display_path(media.path)} ({media.reader})")
    return 0


def _convert_sequence(args: argparse.Namespace, spec, writer, flip, media) -> int:
    """``convert SEQ OUT/%04d.ply``: every frame, numbered from 1 like the inputs."""
    from holoscope.codecs.sequence import output_name, write_sequence
    from holoscope.core.splat_math import flip_axes
    from holoscope.render.timeline import parse_frame_range

    output_name(args.output, 1)  # a numbered name, checked before any frame is read
    if args.spz_version is not None and spec.name != "spz":
        raise InvalidArgument("--spz-version applies to .spz outputs only")
    options = {"version": args.spz_version} if args.spz_version is not None else {}
    a, b = parse_frame_range(args.frames, media.frame_count) if args.frames else (0, media.frame_count)

    def transform(cloud):
        if args.sh_degree is not None:
            cloud = cloud.with_sh_degree(args.sh_degree)
        return flip_axes(cloud, flip) if flip is not None else cloud

    written = write_sequence(media, args.output, lambda cloud, name: writer(cloud, name, **options),
                             frames=range(a, b), transform=transform)  # fmt: skip
    if not args.quiet:
        emit(f"wrote {len(written)} frame{'s' if len(written) != 1 else ''} ({spec.name}) "
             f"{display_path(written[0].name)} .. {display_path(written[-1].name)} from {display_path(media.path)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    target = _resolve_input(args.input)
    info = describe(target, args.format, args.fps, image_size=args.image_size)
    if is_url(target):
        info.update(network_report())
    if args.json:
        emit(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = "(" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + ")"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        emit(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="holoscope", description="View and render compressed 3D and neural video.")
    parser.add_argument("--version", action="version", version=f"holoscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--max-memory", metavar="SIZE", help=MEMORY_HELP)
    add_network_options(common)

    r = sub.add_parser("render", parents=[common], help="render a scene along a camera path to a video, image or image sequence")
    r.add_argument("input", nargs="?", help=f"scene file or http(s) URL, or a splat sequence (a folder of frames, a "
                                            f"quoted glob, a list file); '{DEMO}' or nothing for the built-in demo, "
                                            f"'{DEMO_VIDEO}' / '{DEMO_NERV}' / '{DEMO_HASHGRID}' / '{DEMO_LOD}' for the demo Gaussian "
                                            f"video / neural video / hash-grid scene / streamed-LOD scene")
    r.add_argument("-o", "--output", required=True,
                   help="out.mp4|.mkv|.webm|.mov (video), out.png (first camera), or frames/%%04d.png")  # fmt: skip
    g = r.add_mutually_exclusive_group()
    g.add_argument("--camera-path", help="nerfstudio camera_path.json")
    g.add_argument("--orbit", type=int, metavar="N", help="orbit of N frames around the scene (default 120)")
    r.add_argument("--size", metavar="WxH", help="output size (default: the camera path's, else 1280x720)")
    r.add_argument("--fps", type=float, help="frame rate (default: the camera path's, else 30); for a sequence "
                                             "its frame rate, one output frame per sequence frame")
    r.add_argument("--codec", help="h264 | hevc | av1 | ffv1 (default: h264, av1 for .webm)")
    r.add_argument("--crf", type=int, help="constant rate factor (quality; lower is better)")
    r.add_argument("--background", metavar="R,G,B", help="0..1 floats or 0..255 (default black)")
    r.add_argument("--up", help="scene up axis for generated orbits: +y, -y (COLMAP), +z "
                               "(default: the file's: -y for PLY, SOG, .splat, .ksplat; +y or the file's own for SPZ)")
    r.add_argument("--fov", type=float, help="vertical field of view for orbits, degrees (default 50)")
    r.add_argument("--sh-degree", type=int, help="limit the SH degree evaluated (0-3)")
    r.add_argument("--frames", metavar="A:B", help="sequences: render frames A..B-1 only")
    r.add_argument("--loop", action="store_true", help="sequences: loop while a longer camera path goes on")
    r.add_argument("--image-size", metavar="WxH", help="Instant-NGP image-mode snapshots: the trained image's size "
                                                       "(not stored in the file; sets the grid's level scales)")
    r.add_argument("--splat-budget", type=int, metavar="N", help="streamed-LOD scenes (lod-meta.json): at most N "
                   "splats per frame, coarser levels where the view needs less detail (default: full detail)")
    r.add_argument("--format", help="force the input format instead of probing")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    r.set_defaults(func=cmd_render)

    c = sub.add_parser("convert", parents=[common], help="convert a splat scene between formats (writer chosen by OUT's extension), or a NeRV checkpoint to .nerv")
    c.add_argument("input", help=f"scene file or http(s) URL, or splat sequence (folder, quoted glob, list file); "
                                 f"'{DEMO}' for the "
                                 f"demo, '{DEMO_VIDEO}' for the demo Gaussian video")
    c.add_argument("output", help="output file: .ply, .spz, .splat, .sog; for a sequence a numbered name: out/%%04d.ply")
    c.add_argument("--sh-degree", type=int, help="keep spherical harmonics up to this degree (0-3)")
    c.add_argument("--flip-axes", metavar="AXES", help="mirror axes in pairs, e.g. 'y,z' (RDF <-> RUB, as SPZ tools differ)")
    c.add_argument("--format", help="force the input format instead of probing")
    c.add_argument("--to", help="force the output format instead of using the extension")
    c.add_argument("--frames", metavar="A:B", help="sequences: convert frames A..B-1 only")
    c.add_argument("--spz-version", type=int, choices=(2, 3, 4), help="SPZ version to write (default 3)")
    h = c.add_argument_group("hash-grid scenes (SNAPSHOT.ingp OUT.hgz, OUT.hgz OUT.ingp)")
    h.add_argument("--bits", type=int, default=8, help=".hgz: bits per quantised table entry, 2..16 (default 8)")
    h.add_argument("--no-prune", action="store_true", help=".hgz: keep table entries no occupied space reaches")
    h.add_argument("--image-size", metavar="WxH", help="Instant-NGP image-mode snapshots: the trained image's size")
    n = c.add_argument_group("NeRV checkpoints (CHECKPOINT.pth OUT.nerv)")
    n.add_argument("--fps", type=float, help="frame rate of the stream (default 30; checkpoints do not store it)")
    n.add_argument("--act", default="gelu", help="the decoder's activation as trained (official --act; default gelu)")
    n.add_argument("--out-bias", default="tanh", choices=("tanh", "sigmoid"),
                   help="the output activation as trained (official --out_bias; default tanh)")
    n.add_argument("--video", help="training checkpoints: the clip they were trained on (video or image folder); "
                                   "their own encoder computes the embeddings")
    n.add_argument("--crop", metavar="WxH", help="centre-crop the clip's frames as in training (official --crop_list)")
    n.add_argument("--bits-weights", type=int, default=8, help="training checkpoints: weight bits (default 8)")
    n.add_argument("--bits-embed", type=int, default=6, help="training checkpoints: embedding bits (default 6)")
    n.add_argument("--frame-count", type=int, help="NeRV checkpoints: the number of frames (not stored in them)")
    n.add_argument("--fc-hw", metavar="ROWS_COLS", help="NeRV checkpoints: the fc grid, e.g. 9_16 (official "
                                                        "--fc_hw_dim's first two numbers; needed when ambiguous)")
    n.add_argument("--pe-base", type=float, default=1.25, help="NeRV checkpoints: positional-encoding base (default 1.25)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", parents=[common], help="describe a file: format, reader, counts, SH degree, bounds (splats); codec, size, rate (video)")
    i.add_argument("input", nargs="?", help=f"file, http(s) URL or splat sequence; '{DEMO}' or nothing for the "
                                            f"built-in demo, "
                                            f"'{DEMO_VIDEO}' / '{DEMO_NERV}' / '{DEMO_HASHGRID}' / '{DEMO_LOD}' for the demo Gaussian "
                                            f"video / neural video / hash-grid scene / streamed-LOD scene")
    i.add_argument("--fps", type=float, help="a sequence's frame rate (default 30)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--format", help="force the input format instead of probing")
    i.add_argument("--image-size", metavar="WxH", help="Instant-NGP image-mode snapshots: the trained image's size")
    i.set_defaults(func=cmd_info)

    from holoscope.cli_encode import add_encode_parser

    add_encode_parser(sub, common)
    add_cache_command(sub)
    return parser


# Options whose value may start with "-" (``--up -y``, ``--size -5x5`` to be refused properly,
# ``--fov -10``): argparse would otherwise take the value for an unknown option.
_SIGNED_VALUE_OPTIONS = ("--up", "--size", "--fov", "--fps", "--orbit", "--crf", "--background", "--max-memory")


def _glue_signed_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    for item in argv:
        looks_signed = len(item) > 1 and item[0] == "-" and (item[1].isdigit() or item[1] in ".xyzXYZ")
        if out and out[-1] in _SIGNED_VALUE_OPTIONS and looks_signed and not item.startswith("--"):
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
    return out


COMMANDS = ("render", "info", "convert", "encode", "cache")
MEMORY_HELP = ("decode budget, e.g. 2G or 512M (default: a share of the memory this process can get; "
               "also $HOLOSCOPE_MAX_MEMORY)")  # fmt: skip


def run_gui(argv: list[str]) -> int:
    """``holoscope [FILE ...]``: the desktop app (the demo scene when no file is given; the names
    ``demo`` and ``demo-video`` open the built-in demos)."""
    parser = OneLineParser(prog="holoscope", description="View and render compressed 3D and neural video.",
                           epilog="commands: holoscope render --help, holoscope info --help")  # fmt: skip
    parser.add_argument("files", nargs="*", help=f"files, folders or http(s) URLs to open (the first one shown, the rest queued); "
                                                 f"'{DEMO}', '{DEMO_VIDEO}', '{DEMO_NERV}', '{DEMO_HASHGRID}' and '{DEMO_LOD}' for the built-in demos")
    parser.add_argument("--version", action="version", version=f"holoscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--max-memory", metavar="SIZE", help=MEMORY_HELP)
    add_network_options(parser)
    parser.add_argument("--install-desktop", action="store_true", help="register holoscope with the desktop (per user)")
    parser.add_argument("--uninstall-desktop", action="store_true", help="undo --install-desktop")
    parser.add_argument("--formats", action="store_true", help="list supported formats and exit")
    args = parser.parse_args(_glue_signed_values(argv))
    _apply_memory_option(args)
    apply_network_options(args)
    if args.formats:
        return print_formats()
    if args.install_desktop or args.uninstall_desktop:
        from holoscope.desktop_integration import install_desktop, uninstall_desktop

        done = install_desktop() if args.install_desktop else uninstall_desktop()
        for path in done:
            emit(display_path(path))
        return 0
    from holoscope.core.files import check_regular
    from holoscope.core.http import check_url

    # The demos are made (the video encoded: seconds, once) before the window opens.
    args.files = [str(_resolve_input(n)) if n in DEMOS else resolve_name(n) for n in args.files]
    for name in args.files:  # a file the app could never open fails here, before any window
        if is_url(name):
            check_url(name)  # the scheme and form; the server is asked by the app's loader
        elif not _is_folder(name):
            check_regular(name)
    from holoscope.app.main import run_app

    return run_app(args.files)


def _is_folder(name: str) -> bool:
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):
        return False  # check_regular reports it properly


def print_formats() -> int:
    from holoscope.core.registry import formats

    for spec in formats():
        write = "read/write" if spec.can_write else "read"
        emit(f"{spec.name:<10} {write:<10} {' '.join(spec.extensions):<28} {spec.magic or '-'}  {spec.description}")
    return 0


def _apply_memory_option(args: argparse.Namespace) -> None:
    from holoscope.core import budget

    if getattr(args, "max_memory", None):
        budget.set_limit(budget.parse_bytes(args.max_memory), "--max-memory")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from holoscope.codecs.builtin import register_builtin_formats

    register_builtin_formats()  # the core registry starts empty: the program's entry fills it
    use_one_malloc_arena()  # read-ahead threads free into one arena (see core/allocator.py)
    debug = "--debug" in argv
    printable_streams()
    logger = logging.getLogger("holoscope")
    if not logger.handlers:
        logger.addHandler(OneLineWarnings())
        logger.setLevel(logging.WARNING)
    first = next((a for a in argv if a != "--debug"), None)
    gui = first not in COMMANDS and first not in ("-h", "--help")
    with process_edges(debug, signals=not gui):
        try:
            if gui:
                return run_gui(argv)
            parser = build_parser()
            args = parser.parse_args(_glue_signed_values(argv))
            if args.command is None:
                parser.print_help()
                return 0
            _apply_memory_option(args)
            apply_network_options(args)
            code = args.func(args)
            if sys.stdout is not None:
                sys.stdout.flush()
            return code
        except BaseException as exc:  # noqa: BLE001 - every ending maps to one line and a code
            if isinstance(exc, SystemExit):
                raise
            return report(exc, debug)
