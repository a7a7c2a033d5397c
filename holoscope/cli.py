"""Command line: ``holoscope render``, ``holoscope info``.

Bad input prints one line (``holoscope: error: ...``) and exits with code 2; ``--debug`` shows
the traceback instead. Heavy modules (moderngl, PyAV) are imported inside the commands, and
torch / Qt are never imported for splat scenes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from holoscope import __version__
from holoscope.core.errors import HoloscopeError, InvalidArgument

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
DEMO = "demo"


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InvalidArgument(f"size must look like 1280x720, got {text!r}") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise InvalidArgument(f"size {w}x{h} is out of range (1..16384 per side)")
    return w, h


def parse_color(text: str) -> tuple[float, float, float]:
    """'R,G,B' as floats in 0..1, or as 0..255 integers when any component exceeds 1."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidArgument(f"background must look like 0,0,0 or 255,255,255, got {text!r}") from None
    if len(parts) != 3 or any(not 0 <= v <= 255 for v in parts):
        raise InvalidArgument(f"background needs three components in 0..1 or 0..255, got {text!r}")
    if any(v > 1 for v in parts):
        parts = [v / 255 for v in parts]
    return parts[0], parts[1], parts[2]


def _resolve_input(text: str | None) -> Path:
    from holoscope.assets.demo import demo_path

    if text is None or (text == DEMO and not Path(text).exists()):
        return demo_path()
    return Path(text)


def _open_splats(path: Path, forced: str | None):
    from holoscope.core.errors import FormatNotRecognized
    from holoscope.core.media import MediaKind
    from holoscope.core.registry import open_media

    media = open_media(path, forced)
    if media.kind is not MediaKind.SPLATS:
        media.release()
        raise FormatNotRecognized(f"{media.format} files cannot be rendered by this command yet", path=path)
    return media, media.frame(0)


def cmd_render(args: argparse.Namespace) -> int:
    from holoscope.codecs.video.output import classify_output
    from holoscope.core.camera import auto_near, parse_up
    from holoscope.core.camera_path import orbit_path, read_camera_path
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.export import ExportOptions, default_orbit, render_to_output
    from holoscope.render.gl.splat_renderer import RenderSettings

    up = parse_up(args.up)
    background = parse_color(args.background)
    if args.camera_path and args.orbit is not None:
        raise InvalidArgument("use either --camera-path or --orbit, not both")
    if args.orbit is not None and args.orbit < 1:
        raise InvalidArgument(f"--orbit needs at least 1 frame, got {args.orbit}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise InvalidArgument(f"--fps must be within 0..1000, got {args.fps}")
    if args.sh_degree is not None and not 0 <= args.sh_degree <= 3:
        raise InvalidArgument(f"--sh-degree must be 0..3, got {args.sh_degree}")
    kind = classify_output(args.output)  # rejects unknown extensions before any work
    path = _resolve_input(args.input)
    media, cloud = _open_splats(path, args.format)
    if args.camera_path:
        cams = read_camera_path(args.camera_path)
        if args.size:
            cams = cams.resized(*parse_size(args.size))
        fps = args.fps or cams.fps
        cams = type(cams)(cams.cameras, fps)
    else:
        width, height = parse_size(args.size or "1280x720")
        frames = 1 if kind == "image" else (args.orbit or 120)
        orbit = default_orbit(cloud, fov_y=args.fov, aspect=width / height, up=up)
        cams = orbit_path(orbit, frames, width=width, height=height, fov_y=args.fov,
                          fps=args.fps or 30.0, near=auto_near(orbit.distance))  # fmt: skip
    settings = RenderSettings(background=background, sh_degree_limit=3 if args.sh_degree is None else args.sh_degree)
    progress = TerminalProgress(len(cams), label="rendering ")
    n = render_to_output(cloud, cams, args.output, ExportOptions(args.codec, args.crf, settings), progress=progress)
    if not args.quiet:
        print(f"wrote {args.output}: {n} frame{'s' if n != 1 else ''} of {cams.cameras[0].width}x{cams.cameras[0].height}"
              f" from {media.path} ({media.reader})")  # fmt: skip
    return 0


VIDEO_INFO_KEYS = ("codec", "width", "height", "display_aspect", "pixel_format", "color_matrix", "color_range",
                   "bitrate", "duration", "decode_path")  # fmt: skip


def describe(path: Path, forced: str | None = None) -> dict:
    """What ``holoscope info`` reports, as a JSON-ready dict."""
    import numpy as np

    from holoscope.core.media import MediaKind
    from holoscope.core.registry import open_media

    probe = open_media(path, forced)
    if probe.kind is not MediaKind.SPLATS:
        try:
            report = {"file": str(path), "format": probe.format, "reader": probe.reader, "kind": probe.kind.value,
                      "frames": probe.frame_count, "fps": round(probe.fps, 6), "file_bytes": path.stat().st_size}  # fmt: skip
            for key in VIDEO_INFO_KEYS:
                value = probe.info.get(key)
                if value is not None:
                    report[key] = value if isinstance(value, (int, float, str)) else str(value)
            return report
        finally:
            probe.release()
    media, cloud = probe, probe.frame(0)
    lo, hi = cloud.robust_bounds()
    size = path.stat().st_size
    return {
        "file": str(path),
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
    spec, writer = writer_for(args.output, args.to)  # fail on an unknown output before reading
    media, cloud = _open_splats(_resolve_input(args.input), args.format)
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
        print(f"wrote {args.output} ({spec.name}): {cloud.count:,} splats, SH {cloud.sh_degree}, "
              f"{size:,} bytes ({size / cloud.count:.1f} B/splat) from {media.path} ({media.reader})")  # fmt: skip
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = describe(_resolve_input(args.input), args.format)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = "(" + ", ".join(f"{v:.4g}" for v in value) + ")"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holoscope", description="View and render compressed 3D and neural video.")
    parser.add_argument("--version", action="version", version=f"holoscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command")

    r = sub.add_parser("render", help="render a scene along a camera path to a video, image or image sequence")
    r.add_argument("input", nargs="?", help=f"scene file; '{DEMO}' or nothing for the built-in demo")
    r.add_argument("-o", "--output", required=True,
                   help="out.mp4|.mkv|.webm|.mov (video), out.png (first camera), or frames/%%04d.png")  # fmt: skip
    g = r.add_mutually_exclusive_group()
    g.add_argument("--camera-path", help="nerfstudio camera_path.json")
    g.add_argument("--orbit", type=int, metavar="N", help="orbit of N frames around the scene (default 120)")
    r.add_argument("--size", metavar="WxH", help="output size (default: the camera path's, else 1280x720)")
    r.add_argument("--fps", type=float, help="frame rate (default: the camera path's, else 30)")
    r.add_argument("--codec", help="h264 | hevc | av1 | ffv1 (default: h264, av1 for .webm)")
    r.add_argument("--crf", type=int, help="constant rate factor (quality; lower is better)")
    r.add_argument("--background", default="0,0,0", metavar="R,G,B", help="0..1 floats or 0..255 (default black)")
    r.add_argument("--up", default="+y", help="scene up axis for generated orbits: +y, -y (COLMAP), +z")
    r.add_argument("--fov", type=float, default=50.0, help="vertical field of view for orbits, degrees")
    r.add_argument("--sh-degree", type=int, help="limit the SH degree evaluated (0-3)")
    r.add_argument("--format", help="force the input format instead of probing")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    r.set_defaults(func=cmd_render)

    c = sub.add_parser("convert", help="convert a splat scene between formats (writer chosen by OUT's extension)")
    c.add_argument("input", help=f"scene file; '{DEMO}' for the built-in demo")
    c.add_argument("output", help="output file: .ply, .spz, .splat, .sog")
    c.add_argument("--sh-degree", type=int, help="keep spherical harmonics up to this degree (0-3)")
    c.add_argument("--flip-axes", metavar="AXES", help="mirror axes in pairs, e.g. 'y,z' (RDF <-> RUB, as SPZ tools differ)")
    c.add_argument("--format", help="force the input format instead of probing")
    c.add_argument("--to", help="force the output format instead of using the extension")
    c.add_argument("--spz-version", type=int, choices=(2, 3, 4), help="SPZ version to write (default 3)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", help="describe a file: format, reader, counts, SH degree, bounds (splats); codec, size, rate (video)")
    i.add_argument("input", nargs="?", help=f"file; '{DEMO}' or nothing for the built-in demo")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--format", help="force the input format instead of probing")
    i.set_defaults(func=cmd_info)
    return parser


class _OneLineWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"holoscope: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _glue_signed_values(argv: list[str]) -> list[str]:
    """Let ``--up -y`` work: argparse would otherwise read ``-y`` as an option."""
    out: list[str] = []
    for item in argv:
        if out and out[-1] == "--up" and item.startswith("-") and item[1:].lower() in ("x", "y", "z"):
            out[-1] = f"--up={item}"
        else:
            out.append(item)
    return out


COMMANDS = ("render", "info", "convert")


def run_gui(argv: list[str]) -> int:
    """``holoscope [FILE ...]``: the desktop app (the demo scene when no file is given)."""
    parser = argparse.ArgumentParser(prog="holoscope", description="View and render compressed 3D and neural video.",
                                     epilog="commands: holoscope render --help, holoscope info --help")  # fmt: skip
    parser.add_argument("files", nargs="*", help="files to open (the first one shown, the rest queued)")
    parser.add_argument("--version", action="version", version=f"holoscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--install-desktop", action="store_true", help="register holoscope with the desktop (per user)")
    parser.add_argument("--uninstall-desktop", action="store_true", help="undo --install-desktop")
    parser.add_argument("--formats", action="store_true", help="list supported formats and exit")
    args = parser.parse_args(argv)
    try:
        if args.formats:
            return print_formats()
        if args.install_desktop or args.uninstall_desktop:
            from holoscope.desktop_integration import install_desktop, uninstall_desktop

            done = install_desktop() if args.install_desktop else uninstall_desktop()
            for path in done:
                print(path)
            return 0
        missing = [f for f in args.files if not Path(f).exists()]
        if missing:
            from holoscope.core.errors import SourceNotFound

            raise SourceNotFound("no such file", path=missing[0])
        from holoscope.app.main import run_app

        return run_app(args.files)
    except HoloscopeError as exc:
        if args.debug:
            raise
        print(f"holoscope: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def print_formats() -> int:
    from holoscope.core.registry import formats

    for spec in formats():
        write = "read/write" if spec.can_write else "read"
        print(f"{spec.name:<10} {write:<10} {' '.join(spec.extensions):<28} {spec.magic or '-'}  {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if a != "--debug"), None)
    if first not in COMMANDS and first not in ("-h", "--help"):
        return run_gui(argv)
    parser = build_parser()
    args = parser.parse_args(_glue_signed_values(argv))
    logger = logging.getLogger("holoscope")
    if not logger.handlers:
        logger.addHandler(_OneLineWarnings())
        logger.setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except HoloscopeError as exc:
        if args.debug:
            raise
        print(f"holoscope: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("holoscope: interrupted; partial output removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if args.debug:
            raise
        print(f"holoscope: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL
