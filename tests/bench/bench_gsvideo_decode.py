"""Gaussian video decode speed: decode + dequantisation against bare PyAV decoding of the same
streams, at 150k Gaussians per frame.

Run from the repository root::

    python tests/bench/bench_gsvideo_decode.py             # 150k Gaussians, 60 frames, every preset
    python tests/bench/bench_gsvideo_decode.py --quick     # 40k Gaussians, 20 frames
    python tests/bench/bench_gsvideo_decode.py --json out.json

The sequence is the coherent test sequence (``tests/gsvideo_data.coherent_sequence``: smooth
motion plus per-frame jitter on every attribute) made from the guitar sample grown to 150k
Gaussians (extra Gaussians are copies of the originals moved by about one splat size).
Each preset's .gsv is decoded, interleaved in one process (A B, B A, ...):

- bare: PyAV demuxes every group and decodes every stream, side by side in the same thread
  pool the player uses, touching each picture's planes (no dequantisation): the floor;
- holoscope: ``open_gsv(...).frames_from(0)``, every frame a dequantised SplatCloud.

Reported: frames per second (median and best of the repeats) and holoscope / bare. Targets: at
least 60 frames per second and at least 0.8x bare. ``--hwaccel cuda`` also times the hardware
path of the ``hw`` preset (on a machine with an NVIDIA GPU) against its software decode.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.builtin import register_builtin_formats  # noqa: E402
from holoscope.codecs.gsvideo import container  # noqa: E402
from holoscope.codecs.gsvideo.encode import encode_gsvideo  # noqa: E402
from holoscope.codecs.gsvideo.gsv import open_gsv  # noqa: E402
from holoscope.codecs.gsvideo.parallel import Lockstep  # noqa: E402
from holoscope.codecs.gsvideo.plan import DEFAULT_PRESET, PRESETS  # noqa: E402
from holoscope.core.frames import SplatCloud  # noqa: E402
from tests.bench.bench_foundation import Variant, print_table, run_interleaved  # noqa: E402
from tests.gsvideo_data import coherent_sequence, guitar  # noqa: E402

register_builtin_formats()  # a script, not the CLI: it does what the entry points do
if "--default-arenas" not in sys.argv:
    from holoscope.core.allocator import use_one_malloc_arena

    use_one_malloc_arena()
TARGET_FPS = 60.0
TARGET_RATIO = 0.8


def grown_guitar(count: int, seed: int = 0) -> SplatCloud:
    """The guitar sample with extra Gaussians (copies moved by about one splat size) up to ``count``."""
    base = guitar()
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, base.count, max(0, count - base.count))
    if len(extra) == 0:
        return base.subset(np.arange(count))
    offset = rng.normal(0, 1, (len(extra), 3)).astype(np.float32) * base.scales[extra].mean(axis=1, keepdims=True)
    grow = lambda a, b: np.concatenate([a, b]).astype(np.float32)  # noqa: E731
    return SplatCloud(grow(base.means, base.means[extra] + offset), grow(base.scales, base.scales[extra]),
                      grow(base.quats, base.quats[extra]), grow(base.opacities, base.opacities[extra]),
                      grow(base.sh, base.sh[extra]))  # fmt: skip


def bare_decode(path: Path) -> int:
    """Every picture of every stream decoded (streams side by side), planes touched: no dequantisation."""
    data = path.read_bytes()
    header, _ = container.read_header(data[: container.needed_bytes(data[:16])], len(data), str(path))
    frames = 0
    for group in header.groups:
        segment = data[group.offset : group.offset + group.length]
        with av.open(io.BytesIO(segment), options={"skip_frame": "all", "probesize": "32"}) as box:
            packets: list[list] = [[] for _ in box.streams.video]
            for packet in box.demux():
                if packet.size:
                    packets[packet.stream.index].append(packet)

            def run(stream, stream_packets):
                stream.codec_context.thread_count = 1
                for packet in stream_packets:
                    yield from stream.codec_context.decode(packet)
                yield from stream.codec_context.decode(None)

            runs = [run(s, p) for s, p in zip(box.streams.video, packets)]
            with Lockstep(runs) as lockstep:
                while True:
                    pictures = lockstep.next()
                    if any(p is None for p in pictures):
                        break
                    for picture in pictures:
                        memoryview(picture.planes[0])  # the data is there, as the reader would see it
                    frames += 1
    return frames


def holoscope_decode(path: Path) -> int:
    media = open_gsv(path)
    return sum(1 for _ in media.frames_from(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--splats", type=int, help="Gaussians per frame (default 150,000; --quick 40,000)")
    parser.add_argument("--frames", type=int, help="frames (default 60; --quick 20)")
    parser.add_argument("--presets", help="comma list (default: every preset)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--default-arenas", action="store_true", help="measure without the one-arena setting")
    args = parser.parse_args()
    splats = args.splats or (40_000 if args.quick else 150_000)
    count = args.frames or (20 if args.quick else 60)
    presets = args.presets.split(",") if args.presets else list(PRESETS)
    print(f"python {platform.python_version()}, PyAV {av.__version__}, {os.cpu_count()} cores; "
          f"{count} frames of {splats:,} Gaussians", flush=True)  # fmt: skip
    frames = coherent_sequence(count, source=grown_guitar(splats))
    tmp = Path(tempfile.mkdtemp(prefix="holoscope-decode-"))
    rows, results = [], {"splats": splats, "frames": count, "presets": {}}
    try:
        for preset in presets:
            path = tmp / f"{preset}.gsv"
            encode_gsvideo(frames, path, preset=preset)
            assert bare_decode(path) == holoscope_decode(path) == count
            bare = Variant("bare", lambda p=path: bare_decode(p))
            ours = Variant("holoscope", lambda p=path: holoscope_decode(p))
            run_interleaved([bare, ours], args.repeats)
            fps_bare, fps_ours = count / bare.median, count / ours.median
            ratio = fps_ours / fps_bare
            met = fps_ours >= TARGET_FPS and ratio >= TARGET_RATIO
            results["presets"][preset] = {"bytes_per_frame": path.stat().st_size / count, "bare_fps": fps_bare,
                                          "holoscope_fps": fps_ours, "best_fps": count / ours.min,
                                          "ratio": ratio, "met": met}  # fmt: skip
            rows.append([preset + (" (default)" if preset == DEFAULT_PRESET else ""),
                         f"{path.stat().st_size / count / 1e3:.1f}", f"{fps_bare:.1f}", f"{fps_ours:.1f}",
                         f"{count / ours.min:.1f}", f"{ratio:.2f}x", "yes" if met else "no"])  # fmt: skip
            print(f"  {preset}: bare {fps_bare:.1f} fps, holoscope {fps_ours:.1f} fps ({ratio:.2f}x)", flush=True)
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(f"decode + dequantisation, {splats:,} Gaussians per frame, {os.cpu_count()} cores",
                ["preset", "kB/frame", "bare fps", "holoscope fps", "best fps", "holoscope/bare",
                 f">= {TARGET_FPS:g} fps and >= {TARGET_RATIO}x"], rows)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if results["presets"].get(DEFAULT_PRESET, {"met": True})["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
