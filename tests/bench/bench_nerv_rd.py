"""NeRV rate-distortion (issue 10): holoscope's HNeRV encoder at several model sizes against x264
and x265 through PyAV, on the same clip, in one run.

Source: the shared samples' ``video/bunny-132f-360p-ffv1.mkv`` (132 lossless frames, 640x360),
decoded once to 8-bit RGB; every codec is scored against those frames.

- holoscope: ``encode_hnerv`` at each ``--sizes`` (millions of parameters, decoder plus
  embeddings, as the official ``--modelsize``) for ``--epochs`` passes (the published schedule
  is 300 epochs; on a 2-core CPU one epoch of a 1M model at 360p takes about a minute, so the
  default budget is far shorter and the table states it). The .nerv is decoded back through
  ``open_nerv`` (8-bit frames, as a player shows them). The float model's PSNR is also reported,
  so the cost of 8-bit weights / 6-bit embeddings (what quantisation-aware training could win
  back) is measured, not assumed.
- x264 and x265 (libx264/libx265 through PyAV, yuv420p, preset medium and veryslow, a CRF sweep),
  decoded back with PyAV and converted to RGB with the same swscale conversion.

Rate: bits per pixel = 8 * file bytes / (H * W * T), the INR papers' definition (whole .nerv or
MP4 file, container included). Distortion: RGB PSNR of each frame on [0, 255], averaged over
frames (as the HNeRV and NeRV papers average it).

    python tests/bench/bench_nerv_rd.py [--quick] [--sizes 0.5,1,1.5] [--epochs 10] [--json out.json]
                                        [--plot tests/bench/results/nerv-rd.png] [--device cuda]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.nerv.neural.train import encode_hnerv  # noqa: E402
from holoscope.codecs.nerv.reader import open_nerv  # noqa: E402
from tests.bench.bench_foundation import print_table  # noqa: E402
from tests.bench.rd_plot import plot  # noqa: E402

CLIP = "video/bunny-132f-360p-ffv1.mkv"
CRFS = {"x264": (14, 20, 26, 32, 38), "x265": (16, 22, 28, 34, 40)}
ENCODERS = {"x264": "libx264", "x265": "libx265"}


def samples_dir() -> Path:
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    return Path(env) if env else _ROOT.parent / "shared" / "samples"


def load_clip(path: Path, limit: int | None) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
    return np.stack(frames), fps


def mean_psnr(decoded: list[np.ndarray], source: np.ndarray) -> float:
    values = []
    for got, want in zip(decoded, source, strict=True):
        mse = float(np.mean((got.astype(np.float64) - want) ** 2))
        values.append(99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse))
    return float(np.mean(values))


def bpp(size: int, frames: np.ndarray) -> float:
    t, h, w = frames.shape[:3]
    return 8 * size / (t * h * w)


def code_video(frames: np.ndarray, fps: float, codec: str, preset: str, crf: int) -> dict:
    """Encode with libx264/libx265 into an in-memory MP4, decode it back, score it."""
    buffer = io.BytesIO()
    start = time.perf_counter()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(ENCODERS[codec], rate=round(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        if codec == "x265":
            stream.options["x265-params"] = "log-level=error"
        for picture in frames:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    encode_s = time.perf_counter() - start
    size = buffer.getbuffer().nbytes
    buffer.seek(0)
    start = time.perf_counter()
    with av.open(buffer) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    decode_s = time.perf_counter() - start
    return {"codec": codec, "setting": f"{preset} crf {crf}", "preset": preset, "crf": crf, "bytes": size,
            "bpp": bpp(size, frames), "psnr": mean_psnr(decoded, frames), "encode_s": encode_s,
            "decode_fps": len(decoded) / decode_s}  # fmt: skip


def code_nerv(frames: np.ndarray, fps: float, size_m: float, epochs: int, lr: float, tmp: Path,
              device: str = "cpu") -> dict:  # fmt: skip
    out = tmp / f"hnerv-{size_m:g}M.nerv"

    def progress(epoch: int, loss: float, psnr: float) -> None:
        print(f"  {size_m:g}M epoch {epoch}/{epochs}: loss {loss:.5f}, PSNR {psnr:.2f} dB", flush=True)

    summary = encode_hnerv(frames, out, model_size_m=size_m, epochs=epochs, fps=fps, lr=lr, device=device,
                           progress=progress)  # fmt: skip
    media = open_nerv(out)
    try:
        start = time.perf_counter()
        decoded = [media.frame(i).planes[0] for i in range(media.frame_count)]
        decode_s = time.perf_counter() - start
    finally:
        media.release()
    c = summary.config
    return {"codec": "holoscope", "setting": f"HNeRV {size_m:g}M", "model_size_m": size_m, "bytes": summary.file_bytes,
            "bpp": bpp(summary.file_bytes, frames), "psnr": mean_psnr(decoded, frames),
            "float_psnr": summary.float_psnr, "encode_s": summary.seconds, "decode_fps": len(decoded) / decode_s,
            "epochs": epochs, "lr": lr, "device": device, "decoder_parameters": summary.parameters,
            "embedding_values": summary.embedding_values, "strides": list(c.strides), "fc_dim": c.fc_dim}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.5,1,1.5", help="HNeRV model sizes in millions (default 0.5,1,1.5)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per model (default 10)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--frames", type=int, help="use the first N frames only")
    parser.add_argument("--device", default="cpu", help="where to train: cpu (default) or cuda")
    parser.add_argument("--presets", default="medium,veryslow", help="x264/x265 presets (default medium,veryslow)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 frames, 0.1M/0.2M, 1 epoch, medium only")
    parser.add_argument("--json", help="write every point here")
    parser.add_argument("--plot", help="draw the rate-distortion curves into this PNG")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.epochs, args.frames, args.presets = "0.1,0.2", 1, args.frames or 16, "medium"
    clip = samples_dir() / CLIP
    if not clip.is_file():
        print(f"skipped: {clip} is missing (set HOLOSCOPE_SAMPLES to the shared samples folder)")
        return 0
    frames, fps = load_clip(clip, args.frames)
    t, h, w = frames.shape[:3]
    print(f"clip: {CLIP}, {t} frames {w}x{h} at {fps:g} fps")
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, training on {where}; PyAV {av.__version__}")  # fmt: skip

    points = []
    for codec in ("x264", "x265"):
        for preset in args.presets.split(","):
            for crf in CRFS[codec]:
                p = code_video(frames, fps, codec, preset, crf)
                print(f"  {codec} {p['setting']}: {p['bpp']:.4f} bpp, {p['psnr']:.2f} dB, {p['encode_s']:.1f} s", flush=True)
                points.append(p)
    with tempfile.TemporaryDirectory(prefix="nerv-rd-") as tmp:
        for size_m in (float(s) for s in args.sizes.split(",")):
            p = code_nerv(frames, fps, size_m, args.epochs, args.lr, Path(tmp), args.device)
            print(f"  {p['setting']}: {p['bpp']:.4f} bpp, {p['psnr']:.2f} dB (float {p['float_psnr']:.2f}), "
                  f"{p['encode_s']:.0f} s", flush=True)  # fmt: skip
            points.append(p)

    rows = [[p["codec"], p["setting"], f"{p['bytes']:,}", f"{p['bpp']:.4f}", f"{p['psnr']:.2f}",
             f"{p['float_psnr']:.2f}" if "float_psnr" in p else "",
             f"{p['encode_s']:.1f}", f"{p['decode_fps']:.1f}"] for p in points]  # fmt: skip
    print_table(f"RGB PSNR against bits per pixel, {t} frames {w}x{h}; HNeRV trained {args.epochs} epochs on {where}",
                ["codec", "setting", "bytes", "bpp", "PSNR dB", "float dB", "encode s", "decode fps"], rows)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"clip": CLIP, "frames": t, "width": w, "height": h, "fps": fps,
                                               "epochs": args.epochs, "lr": args.lr, "cpus": os.cpu_count(),
                                               "torch_threads": torch.get_num_threads(), "points": points}, indent=1))
    if args.plot:
        series = []
        for codec in ("x264", "x265"):
            for preset in args.presets.split(","):
                pts = [(p["bpp"], p["psnr"], "") for p in points if p["codec"] == codec and p["preset"] == preset]
                series.append({"label": f"{codec} {preset}", "group": f"{codec} {preset}", "points": pts, "line": True})
        nerv = [(p["bpp"], p["psnr"], p["setting"].split()[-1]) for p in points if p["codec"] == "holoscope"]
        series.append({"label": f"holoscope HNeRV, {args.epochs} epochs ({where})", "group": "holoscope", "points": nerv,
                       "line": True})  # fmt: skip
        title = f"bunny {w}x{h}, {t} frames"
        print(f"plot: {plot([(title, series)], args.plot, labels=('bits per pixel (log)', 'RGB PSNR (dB)'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
