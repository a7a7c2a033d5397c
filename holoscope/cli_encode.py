"""``holoscope encode``: splat sequences into Gaussian video (.gsv, segments, or V^3 streams).

Kept apart from :mod:`holoscope.cli` so that the command table stays short; the report it
prints is the encoder's (bytes, bitrate, per-attribute error) plus the rendered PSNR against
the input from fixed cameras, measured while encoding.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from holoscope.cli_edges import emit
from holoscope.core.errors import InvalidArgument, display_path

PSNR_CAMERAS = 4
PSNR_SIZE = (320, 240)


def add_encode_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from holoscope.codecs.gsvideo.encode import DEFAULT_GOF
    from holoscope.codecs.gsvideo.plan import DEFAULT_PRESET, PRESETS

    e = sub.add_parser("encode", parents=[common],
                       help="encode a splat sequence as Gaussian video (.gsv, V^3), a video as a NeRV stream (.nerv), "
                            "or fit a hash-grid scene (.hgz, .ingp) to an image or a NeRF dataset")
    kinds = e.add_subparsers(dest="target", required=True, metavar="{gsvideo,v3,nerv,hashgrid}")
    g = kinds.add_parser("gsvideo", parents=[common], help="holoscope's Gaussian-video format (.gsv file and/or segments)")
    g.add_argument("input", help="a splat sequence: folder of frames, quoted glob, list file, V^3 folder, .gsv, "
                                 "or demo-video")
    g.add_argument("-o", "--output", help="the .gsv file to write")
    g.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help=f"quality/size trade-off (default {DEFAULT_PRESET}): " +
                        "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))  # fmt: skip
    g.add_argument("--gof", type=int, default=DEFAULT_GOF, help=f"frames per group, the unit of seeking and streaming (default {DEFAULT_GOF})")
    g.add_argument("--codec", choices=("h264", "hevc", "av1"), help="video codec (default: the preset's)")
    g.add_argument("--segments", metavar="DIR", help="also (or only) write the segmented streaming layout into DIR")
    g.add_argument("--levels", metavar="P1,P2", help="segments: further quality levels (presets), e.g. low")
    g.add_argument("--fps", type=float, help="frame rate (default: the input's)")
    g.add_argument("--frames", metavar="A:B", help="encode input frames A..B-1 only")
    g.add_argument("--no-psnr", action="store_true", help="skip the rendered-PSNR measurement in the report")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    g.set_defaults(func=cmd_encode_gsvideo)
    v = kinds.add_parser("v3", parents=[common], help="V^3 (VideoGS) stream folder: 20 grey H.264 MP4s per group")
    v.add_argument("input", help="a splat sequence (folder of frames, quoted glob, list file, .gsv ...)")
    v.add_argument("-o", "--output", required=True, help="the folder to create")
    v.add_argument("--group-size", type=int, default=10, help="frames per group (default 10)")
    v.add_argument("--qp", type=int, default=25, help="x264 qp of the lossy streams (default 25, as VideoGS)")
    v.add_argument("--fps", type=float, help="frame rate (default: the input's)")
    v.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    v.set_defaults(func=cmd_encode_v3)
    n = kinds.add_parser("nerv", parents=[common], help="train an HNeRV neural video (.nerv) on a video or image folder")
    n.add_argument("input", help="a video file or a folder of PNG/JPEG images (sorted by name)")
    n.add_argument("-o", "--output", required=True, help="the .nerv file to write")
    n.add_argument("--model-size", type=float, default=0.1, help="decoder + embedding parameters, millions (default 0.1)")
    n.add_argument("--epochs", type=int, default=100, help="training passes over the clip (default 100; published 300)")
    n.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3, as published)")
    n.add_argument("--bits-weights", type=int, default=8, help="decoder weight bits (default 8)")
    n.add_argument("--bits-embed", type=int, default=6, help="embedding bits (default 6)")
    n.add_argument("--qat-epochs", type=int, default=0, help="train the last N of the epochs through the quantiser "
                                                             "(default 0: measured not to pay; see the README)")
    n.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train (default cpu)")
    n.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    n.add_argument("--fps", type=float, help="frame rate (default: the video's, 25 for images)")
    n.add_argument("--frames", metavar="A:B", help="encode input frames A..B-1 only")
    n.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    n.set_defaults(func=cmd_encode_nerv)
    from holoscope.cli_hashgrid import add_hashgrid_parser

    add_hashgrid_parser(kinds, common)


def _open_timed(text: str, fps: float | None):
    from holoscope.cli import _resolve_input
    from holoscope.codecs.inputs import is_sequence_input, open_input
    from holoscope.core.errors import FormatNotRecognized

    source = text if is_sequence_input(text) else _resolve_input(text)  # "demo-video" is the built-in one
    media = open_input(source, None, fps=fps)
    if not media.kind.is_timed_splats:
        media.release()
        raise FormatNotRecognized(f"a {media.format} file is not a splat sequence; encode takes timed splat media",
                                  path=text)  # fmt: skip
    return media


def cmd_encode_gsvideo(args: argparse.Namespace) -> int:
    from holoscope.codecs.gsvideo.encode import encode_gsvideo
    from holoscope.core.camera_path import check_fps
    from holoscope.core.progress import TerminalProgress
    from holoscope.render.timeline import parse_frame_range

    if args.output is None and args.segments is None:
        raise InvalidArgument("name the output: -o OUT.gsv and/or --segments DIR")
    if args.output is not None and not args.output.lower().endswith(".gsv"):
        raise InvalidArgument("the output file's name must end in .gsv")
    fps = check_fps(args.fps, "--fps") if args.fps is not None else None
    levels = [p.strip() for p in args.levels.split(",") if p.strip()] if args.levels else []
    media = _open_timed(args.input, fps)
    start, stop = parse_frame_range(args.frames, media.frame_count) if args.frames else (0, media.frame_count)
    comparer = None if args.no_psnr else _psnr_meter(media, start)
    progress = TerminalProgress(stop - start, label="encoding ")

    def frames():
        for frame in media.frames_from(start):
            if frame.index >= stop:
                break
            yield frame

    try:
        report = encode_gsvideo(frames(), args.output, fps=fps or media.fps, preset=args.preset, gof=args.gof,
                                codec=args.codec, segments=args.segments, levels=levels,
                                up=str(media.info.get("default_up") or "+y"), frame_count=stop - start,
                                progress=progress, on_group=comparer.add if comparer else None)  # fmt: skip
    finally:
        media.release()
        if comparer is not None:
            comparer.release()
    if comparer is not None:
        report.psnr = comparer.psnr()
    if not args.quiet:
        for line in report_lines(report, args.output, args.segments):
            emit(line)
    return 0


def report_lines(report, output: str | None, segments: str | None) -> list[str]:
    where = " and ".join(display_path(p) for p in (output, segments) if p)
    groups = f"{report.groups} group{'s' if report.groups != 1 else ''}"
    lines = [f"wrote {where}: {report.frames} frames in {groups}, preset {report.preset} ({report.codec}), "
             f"SH {report.sh_degree}, {report.seconds:.1f} s",
             f"  {report.file_bytes:,} bytes: {report.bytes_per_frame / 1e3:,.1f} kB/frame, "
             f"{report.bitrate / 1e6:.2f} Mbit/s at {report.fps:g} fps",
             "  groups: " + ", ".join(f"{n} {kind}" for kind, n in report.orders.items() if n) +
             " (index: the input's correspondence kept; matched: each frame matched to the one before)",
             "  bytes per attribute: " + ", ".join(f"{a} {b / report.frames / 1e3:.1f} kB/frame"
                                                  for a, b in report.attribute_bytes.items()),
             "  error (RMSE / max; scale in log units): " + ", ".join(
                 f"{a} {report.rmse[a]:.3g}/{report.max_error[a]:.3g}" for a in report.rmse)]  # fmt: skip
    if report.psnr is not None:
        lines.append(f"  rendered PSNR against the input: {report.psnr:.2f} dB "
                     f"({PSNR_CAMERAS} fixed cameras, {PSNR_SIZE[0]}x{PSNR_SIZE[1]})")  # fmt: skip
    if len(report.levels) > 1:
        lines.append("  levels: " + ", ".join(f"{lv['preset']} {lv['bytes'] / report.frames / 1e3:.1f} kB/frame"
                                              for lv in report.levels))  # fmt: skip
    return lines


class _PsnrMeter:
    """Renders each input frame and its decoded version from the same fixed cameras."""

    def __init__(self, comparer) -> None:
        self.comparer = comparer
        self.squared, self.count = 0.0, 0

    def add(self, inputs, decoded) -> None:
        for a, b in zip(inputs, decoded):
            self.squared += self.comparer.mse(a, b)
            self.count += 1

    def psnr(self) -> float:
        from holoscope.render.compare import psnr_from_mse

        return psnr_from_mse(self.squared / max(1, self.count))

    def release(self) -> None:
        self.comparer.release()


def _psnr_meter(media, start: int) -> _PsnrMeter:
    from holoscope.render.compare import SequenceComparer, fixed_cameras

    first = media.frame(max(start, int(media.info.get("first_readable_frame", 0))))
    cameras = fixed_cameras(first, count=PSNR_CAMERAS, size=PSNR_SIZE, up=str(media.info.get("default_up") or "+y"))
    return _PsnrMeter(SequenceComparer(cameras))


def cmd_encode_v3(args: argparse.Namespace) -> int:
    from holoscope.codecs.gsvideo.v3 import write_v3
    from holoscope.core.camera_path import check_fps
    from holoscope.core.progress import TerminalProgress

    fps = check_fps(args.fps, "--fps") if args.fps is not None else None
    media = _open_timed(args.input, fps)
    progress = TerminalProgress(media.frame_count or 0, label="encoding ")
    try:
        summary = write_v3((f.payload for f in media.frames_from(0)), Path(args.output), group_size=args.group_size,
                           qp=args.qp, fps=fps or media.fps, progress=progress)  # fmt: skip
    finally:
        media.release()
    if not args.quiet:
        emit(f"wrote {display_path(args.output)}: V^3 stream, {summary}")
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# The clip is held as uint8 and trained on as float32 copies (the frames, their batch, outputs
# and gradients): ask the decode budget for that before decoding a picture.
CLIP_PEAK_FACTOR = 1 + 4 * 3


def _decode_rgb(path: Path, frames_hint: int = 1) -> list:
    import av

    from holoscope.core.budget import require

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = max(frames_hint, stream.frames or 0)
        require(count * stream.width * stream.height * 3 * CLIP_PEAK_FACTOR, what="the clip to train on", path=path)
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _read_clip(text: str):
    """(uint8 [T, H, W, 3], fps or None) of a video file or a folder of images."""
    import numpy as np

    from holoscope.core.errors import FormatNotRecognized, SourceNotFound
    from holoscope.core.media import MediaKind
    from holoscope.core.registry import open_media

    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidArgument("the folder holds no PNG or JPEG images", path=text)
        pictures, fps = [pic for p in files for pic in _decode_rgb(p, len(files))[:1]], None
    else:
        if not path.exists():
            raise SourceNotFound("no such file", path=text)
        media = open_media(path)
        try:
            if media.kind is not MediaKind.VIDEO:
                raise FormatNotRecognized(f"a {media.format} file is not a plain video; encode nerv takes a video "
                                          f"or a folder of images", path=text)  # fmt: skip
            fps, count = media.fps, media.frame_count or 1
        finally:
            media.release()
        pictures = _decode_rgb(path, count)
    if not pictures:
        raise InvalidArgument("the input has no frames", path=text)
    if len({p.shape for p in pictures}) != 1:
        raise InvalidArgument("the input's frames differ in size", path=text)
    return np.stack(pictures), fps


def cmd_encode_nerv(args: argparse.Namespace) -> int:
    from holoscope.core.camera_path import check_fps
    from holoscope.render.timeline import parse_frame_range

    if not args.output.lower().endswith(".nerv"):
        raise InvalidArgument("the output file's name must end in .nerv")
    fps = check_fps(args.fps, "--fps") if args.fps is not None else None
    frames, source_fps = _read_clip(args.input)
    if args.frames:
        start, stop = parse_frame_range(args.frames, len(frames))
        frames = frames[start:stop]
    from holoscope.codecs.nerv.neural.train import describe, encode_hnerv  # torch: imported only here

    from holoscope.core.progress import TerminalProgress

    bar = TerminalProgress(args.epochs, label="training ")

    def progress(epoch: int, loss: float, psnr: float) -> None:
        """A bar with the loss and PSNR on a terminal; a line per epoch in a log."""
        if args.quiet:
            return
        if bar.enabled:
            bar(epoch, note=f"loss {loss:.5f} PSNR {psnr:.2f} dB")
        else:
            import sys

            sys.stderr.write(f"epoch {epoch}/{args.epochs}: loss {loss:.5f}, PSNR {psnr:.2f} dB\n")
            sys.stderr.flush()

    summary = encode_hnerv(frames, args.output, model_size_m=args.model_size, epochs=args.epochs,
                           fps=fps or source_fps or 25.0, bits_weights=args.bits_weights, bits_embed=args.bits_embed,
                           seed=args.seed, device=args.device, lr=args.lr, qat_epochs=args.qat_epochs,
                           progress=progress)  # fmt: skip
    if not args.quiet:
        emit(f"wrote {display_path(args.output)}: {describe(summary)}")
    return 0


def centre_crop(frames, text: str):
    """``frames`` [T, H, W, 3] cut to ``WxH`` around the centre (the official ``--crop_list``)."""
    from holoscope.cli import parse_size

    width, height = parse_size(text)
    h, w = frames.shape[1:3]
    if width > w or height > h:
        raise InvalidArgument(f"--crop {width}x{height} is larger than the {w}x{h} frames")
    top, left = round((h - height) / 2), round((w - width) / 2)
    return frames[:, top : top + height, left : left + width]


def parse_fc_hw(text: str) -> tuple[int, int]:
    """NeRV's fc grid as the official ``--fc_hw_dim`` writes it: rows then columns, ``9_16`` or ``9x16``."""
    try:
        rows, cols = (int(v) for v in text.lower().replace("x", "_").split("_"))
    except ValueError:
        raise InvalidArgument(f"--fc-hw must look like 9_16 (rows, columns), got {text!r}") from None
    if not (1 <= rows <= 4096 and 1 <= cols <= 4096):
        raise InvalidArgument(f"--fc-hw {rows}_{cols} is out of range")
    return rows, cols


def import_nerv_checkpoint(args: argparse.Namespace) -> int:
    """``convert CHECKPOINT.pth OUT.nerv``: a compressed checkpoint as it is, a training one with
    the embeddings its encoder computes from ``--video``."""
    from holoscope.core.camera_path import check_fps
    from holoscope.render.timeline import parse_frame_range

    fps = check_fps(args.fps, "--fps") if args.fps is not None else None
    options = {"activation": args.act, "out": args.out_bias}
    from holoscope.codecs.nerv.neural import importer  # torch: imported only here

    if args.video is None:
        if args.crop or args.frames:
            raise InvalidArgument("--crop and --frames choose the clip of a training checkpoint: give --video too")
        nerv_options = {"frame_count": args.frame_count, "pe_base": args.pe_base,
                        "fc_hw": parse_fc_hw(args.fc_hw) if args.fc_hw else None}  # fmt: skip
        summary = importer.import_checkpoint(Path(args.input), Path(args.output), fps=fps or 30.0,
                                             bits_weights=args.bits_weights, **options, **nerv_options)  # fmt: skip
    else:
        frames, source_fps = _read_clip(args.video)
        if args.frames:
            start, stop = parse_frame_range(args.frames, len(frames))
            frames = frames[start:stop]
        if args.crop:
            import numpy as np

            frames = np.ascontiguousarray(centre_crop(frames, args.crop))
        summary = importer.import_training_checkpoint(Path(args.input), Path(args.output), frames,
                                                      fps=fps or source_fps or 30.0, bits_weights=args.bits_weights,
                                                      bits_embed=args.bits_embed, **options)  # fmt: skip
    if not args.quiet:
        emit(f"wrote {display_path(args.output)} (nerv): {importer.describe(summary)} from {display_path(args.input)}")
    return 0

