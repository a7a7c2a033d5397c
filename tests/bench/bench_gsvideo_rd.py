"""Gaussian video rate-distortion: holoscope's .gsv presets against V^3 and lossless references.

Run from the repository root::

    python tests/bench/bench_gsvideo_rd.py                 # full run (several minutes on 2 cores)
    python tests/bench/bench_gsvideo_rd.py --quick         # smoke run
    python tests/bench/bench_gsvideo_rd.py --json out.json --plot tests/bench/results/gsvideo-rd.png

Two sequences, side by side in one run:

- coherent: the guitar sample deformed smoothly over 30 frames with per-frame jitter on every
  attribute, as per-frame training leaves it (``tests/gsvideo_data.coherent_sequence``);
- wave: the first 60 frames of PlayCanvas's wave flipbook (SOG frames each sorted on its own:
  no correspondence between frames).

Entries: every holoscope preset; V^3 (holoscope's VideoGS-layout writer) at qp 25 and a qp
sweep; zstd (level 19) over the raw per-frame INRIA PLYs, the lossless reference; the SOG
frames' own sizes (wave). Each reports bytes per frame and the rendered PSNR against the source
frames from 4 fixed cameras at 320x240 (PSNR of the mean MSE over frames and cameras; the source
images are rendered once). The target: on each sequence, some preset needs at most 0.7x V^3's
(qp 25) bytes at a PSNR at most 0.5 dB below V^3's. A GOF sweep of the default preset on the wave
(120 frames) reports bytes per frame and the mean frames decoded to reach a random frame.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.builtin import register_builtin_formats  # noqa: E402
from holoscope.codecs.formats.ply_inria import write_ply  # noqa: E402
from holoscope.codecs.gsvideo.encode import DEFAULT_GOF, encode_gsvideo  # noqa: E402
from holoscope.codecs.gsvideo.gsv import open_gsv  # noqa: E402
from holoscope.codecs.gsvideo.plan import DEFAULT_PRESET, PRESETS  # noqa: E402
from holoscope.codecs.gsvideo.v3 import open_v3, write_v3  # noqa: E402
from holoscope.render.compare import SequenceComparer, fixed_cameras, psnr_from_mse  # noqa: E402
from tests.bench.bench_foundation import print_table  # noqa: E402
from tests.bench.rd_plot import plot  # noqa: E402
from tests.gsvideo_data import coherent_sequence, guitar, wave_sequence, _sample  # noqa: E402

register_builtin_formats()

V3_QP = 25
V3_SWEEP = (15, 20, 30, 35)
TARGET_BYTES = 0.7
TARGET_DB = 0.5


class Reference:
    """The source frames rendered once from fixed cameras; decoded frames are compared to them."""

    def __init__(self, frames: list, up: str) -> None:
        self.frames = frames
        self.comparer = SequenceComparer(fixed_cameras(frames[0], count=4, size=(320, 240), up=up))
        self.images = [self.comparer.render(f) for f in frames]

    def psnr(self, decoded: list) -> float:
        total = 0.0
        for want, cloud in zip(self.images, decoded):
            got = self.comparer.render(cloud)
            total += float(np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(want, got)]))
        return psnr_from_mse(total / len(decoded))

    def release(self) -> None:
        self.comparer.release()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _decode_all(media) -> tuple[list, float]:
    start = time.perf_counter()
    frames = [f.payload for f in media.frames_from(0)]
    return frames, len(frames) / (time.perf_counter() - start)


def run_sequence(name: str, frames: list, ref: Reference, tmp: Path, presets: list[str], v3_qps: list[int],
                 extra_refs: dict[str, int]) -> list[dict]:  # fmt: skip
    rows = []
    n = len(frames)
    for preset in presets:
        out = tmp / f"{name}-{preset}.gsv"
        start = time.perf_counter()
        report = encode_gsvideo(frames, out, preset=preset, gof=DEFAULT_GOF,
                                codec="hevc" if PRESETS[preset].codec == "hevc" else None)  # fmt: skip
        seconds = time.perf_counter() - start
        media = open_gsv(out)
        decoded, fps = _decode_all(media)
        rows.append({"sequence": name, "entry": f"holoscope {preset}", "group": "holoscope", "preset": preset,
                     "bytes_per_frame": out.stat().st_size / n, "psnr": ref.psnr(decoded), "encode_s": seconds,
                     "decode_fps": fps, "orders": report.orders})  # fmt: skip
        print(f"  {name}: holoscope {preset}: {rows[-1]['bytes_per_frame'] / 1e3:.1f} kB/frame, "
              f"{rows[-1]['psnr']:.2f} dB", flush=True)  # fmt: skip
        out.unlink()
    for qp in v3_qps:
        out = tmp / f"{name}-v3-{qp}"
        start = time.perf_counter()
        write_v3(frames, out, group_size=10, qp=qp)
        seconds = time.perf_counter() - start
        decoded, fps = _decode_all(open_v3(out))
        rows.append({"sequence": name, "entry": f"V3 qp {qp}", "group": "V3", "qp": qp,
                     "bytes_per_frame": _folder_bytes(out) / n, "psnr": ref.psnr(decoded), "encode_s": seconds,
                     "decode_fps": fps})  # fmt: skip
        print(f"  {name}: V3 qp {qp}: {rows[-1]['bytes_per_frame'] / 1e3:.1f} kB/frame, {rows[-1]['psnr']:.2f} dB",
              flush=True)  # fmt: skip
        shutil.rmtree(out)
    for label, total in extra_refs.items():
        rows.append({"sequence": name, "entry": label, "group": "reference", "bytes_per_frame": total / n,
                     "psnr": math.inf})  # fmt: skip
    return rows


def zstd_ply_bytes(frames: list, tmp: Path) -> int:
    """zstd level 19 over each frame's raw INRIA PLY: the lossless reference."""
    total = 0
    compressor = zstandard.ZstdCompressor(level=19)
    for i, frame in enumerate(frames):
        path = tmp / f"frame-{i}.ply"
        write_ply(frame, path)
        total += len(compressor.compress(path.read_bytes()))
        path.unlink()
    return total


def check_target(rows: list[dict]) -> dict:
    base = next(r for r in rows if r["entry"] == f"V3 qp {V3_QP}")
    winners = [r for r in rows if r["group"] == "holoscope"
               and r["bytes_per_frame"] <= TARGET_BYTES * base["bytes_per_frame"]
               and r["psnr"] >= base["psnr"] - TARGET_DB]  # fmt: skip
    best = min(winners, key=lambda r: r["bytes_per_frame"]) if winners else None
    return {"v3_bytes": base["bytes_per_frame"], "v3_psnr": base["psnr"],
            "met": best is not None, "preset": best["preset"] if best else None,
            "ratio": best["bytes_per_frame"] / base["bytes_per_frame"] if best else None,
            "delta_db": best["psnr"] - base["psnr"] if best else None}  # fmt: skip


def gof_sweep(frames: list, tmp: Path, gofs: list[int]) -> list[dict]:
    rows = []
    for gof in gofs:
        out = tmp / f"gof-{gof}.gsv"
        encode_gsvideo(frames, out, preset=DEFAULT_PRESET, gof=gof)
        # A seek decodes from the group start: on average (gof - 1) / 2 frames before the one wanted.
        rows.append({"gof": gof, "bytes_per_frame": out.stat().st_size / len(frames), "seek_frames": (gof - 1) / 2 + 1})
        out.unlink()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer frames and entries")
    parser.add_argument("--json", help="write every row to this file")
    parser.add_argument("--plot", help="draw the rate-distortion curves into this PNG")
    parser.add_argument("--only", choices=("coherent", "wave"), action="append", help="run one sequence only")
    parser.add_argument("--presets", help="comma list of presets (default: all; --quick: high,medium,low)")
    parser.add_argument("--v3-qp", help="comma list of V3 qps (default: 25 and the sweep)")
    args = parser.parse_args()
    presets = ["high", "medium", "low"] if args.quick else list(PRESETS)
    presets = args.presets.split(",") if args.presets else presets
    qps = [V3_QP] if args.quick else [V3_QP, *V3_SWEEP]
    qps = [int(q) for q in args.v3_qp.split(",")] if args.v3_qp else qps
    sequences = args.only or ["coherent", "wave"]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; presets {presets}; V3 qp {qps}")
    tmp = Path(tempfile.mkdtemp(prefix="holoscope-rd-"))
    results: dict = {"rows": [], "targets": {}, "gof": []}
    try:
        for name in sequences:
            if name == "coherent":
                source = guitar()
                if args.quick:
                    source = source.subset(np.arange(0, source.count, 4))
                frames = coherent_sequence(10 if args.quick else 30, source=source)
                up, extra = "-y", {}
            else:
                frames = wave_sequence(20 if args.quick else 60)
                up = "-y"
                sog = sum(_sample("splat-sequences", "wave", f"wave_{i + 1:04d}.sog").stat().st_size for i in range(len(frames)))
                extra = {"SOG frames (source)": sog}
            extra["zstd PLY (lossless)"] = zstd_ply_bytes(frames, tmp)
            print(f"{name}: {len(frames)} frames of {frames[0].count:,} splats, SH {frames[0].sh_degree}", flush=True)
            ref = Reference(frames, up)
            try:
                rows = run_sequence(name, frames, ref, tmp, presets, qps, extra)
            finally:
                ref.release()
            results["rows"] += rows
            results["targets"][name] = check_target(rows)
            if name == "wave" and not args.quick and not args.presets:
                results["gof"] = gof_sweep(wave_sequence(120), tmp, [5, 10, 20, 30, 60])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in sequences:
        rows = [r for r in results["rows"] if r["sequence"] == name]
        print_table(f"{name}: bytes and rendered PSNR (4 fixed cameras, 320x240)",
                    ["entry", "kB/frame", "PSNR dB", "vs V3 qp25 bytes", "encode s", "decode fps"],
                    [[r["entry"], f"{r['bytes_per_frame'] / 1e3:.1f}", f"{r['psnr']:.2f}",
                      f"{r['bytes_per_frame'] / results['targets'][name]['v3_bytes']:.2f}x",
                      f"{r.get('encode_s', 0):.1f}", f"{r.get('decode_fps', 0):.0f}"] for r in rows])  # fmt: skip
        t = results["targets"][name]
        verdict = (f"met by {t['preset']}: {t['ratio']:.2f}x the bytes, {t['delta_db']:+.2f} dB" if t["met"]
                   else "NOT met")  # fmt: skip
        print(f"target (<= {TARGET_BYTES}x V3 qp {V3_QP} bytes at >= -{TARGET_DB} dB): {verdict}")
    if results["gof"]:
        print_table(f"GOF sweep, preset {DEFAULT_PRESET}, wave 120 frames", ["gof", "kB/frame", "frames decoded per seek"],
                    [[str(r["gof"]), f"{r['bytes_per_frame'] / 1e3:.2f}", f"{r['seek_frames']:.1f}"] for r in results["gof"]])  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if args.plot:
        panels = []
        for name in sequences:
            rows = [r for r in results["rows"] if r["sequence"] == name]
            hs = [r for r in rows if r["group"] == "holoscope"]
            v3 = sorted((r for r in rows if r["group"] == "V3"), key=lambda r: r["bytes_per_frame"])
            panels.append((f"{name}: holoscope presets vs V3", [
                {"label": "holoscope .gsv presets", "group": "holoscope", "line": False,
                 "points": [(r["bytes_per_frame"] / 1e3, r["psnr"], r["preset"]) for r in hs]},
                {"label": "V3 (VideoGS layout), qp sweep", "group": "V3", "line": True,
                 "points": [(r["bytes_per_frame"] / 1e3, r["psnr"], f"qp{r['qp']}") for r in v3]},
            ]))
        print(f"plot: {plot(panels, args.plot)}")
    return 0 if all(t["met"] for t in results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
