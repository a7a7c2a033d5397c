"""Splat-sequence playback: frames per second the decode-ahead delivers, against a bare loop.

Run from the repository root::

    python tests/bench/bench_sequence.py            # 150k-splat PLY sequence + the wave SOG frames
    python tests/bench/bench_sequence.py --quick    # smoke run: 30k splats, fewer frames
    python tests/bench/bench_sequence.py --json out.json

Two sequences: a test-made PLY sequence (``--splats`` per frame, SH degree 1, ``--frames``
frames, written to a temporary folder and deleted afterwards) and the real PlayCanvas wave SOG
flipbook from the samples (200 frames of 4,225 splats; skipped when the samples are absent).

Variants, interleaved in one process (A B, B A, ...):

- bare:   a plain loop that opens every frame file with the same readers
          (``registry.open_media(path).frame(0)``): the baseline;
- player: ``open_sequence`` + :class:`FramePrefetcher` with a byte budget, the consumer taking
          every frame in order (``wait_for``): what the app and the exporter get.

Reported: frames per second (median and best of the repeats), player / bare (target: at
least 0.9x) and the prefetcher's peak held bytes against its budget. The machine is shared and
noisy: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.builtin import register_builtin_formats  # noqa: E402
from holoscope.codecs.formats.ply_inria import write_ply  # noqa: E402
from holoscope.codecs.sequence import discover_frames, open_sequence  # noqa: E402
from holoscope.core.playback import FramePrefetcher  # noqa: E402
from holoscope.core.registry import open_media  # noqa: E402
from tests.bench.bench_foundation import Variant, print_table, ball_scene, run_interleaved  # noqa: E402

register_builtin_formats()  # a script, not the CLI: it does what the entry points do
if "--default-arenas" not in sys.argv:
    from holoscope.core.allocator import use_one_malloc_arena

    use_one_malloc_arena()


def make_ply_sequence(folder: Path, splats: int, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(frames):
        write_ply(ball_scene(rng, splats, sh_degree=1), folder / f"frame_{i + 1:04d}.ply")


def bare_loop(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        media = open_media(path)
        total += media.frame(0).count
        media.release()
    return total


class PlayerRun:
    """Every frame through open_sequence + FramePrefetcher; remembers the peak held bytes."""

    def __init__(self, spec: Path, max_bytes: int) -> None:
        self.spec, self.max_bytes, self.peak = spec, max_bytes, 0

    def __call__(self) -> int:
        media = open_sequence(self.spec)
        total = 0
        with FramePrefetcher(media, capacity=64, max_bytes=self.max_bytes) as pre:
            for i in range(media.frame_count):
                total += pre.wait_for(i, timeout=120).payload.count
            self.peak = max(self.peak, pre.peak_queued_bytes)
        return total


def bench(name: str, spec: Path, max_bytes: int, repeats: int) -> dict:
    paths = discover_frames(spec)
    player = PlayerRun(spec, max_bytes)
    bare = Variant("bare loop, same readers", lambda: bare_loop(paths))
    play = Variant("open_sequence + FramePrefetcher", player)
    run_interleaved([bare, play], repeats)
    n = len(paths)
    rows, out = [], {"sequence": name, "frames": n, "budget_bytes": max_bytes, "peak_bytes": player.peak}
    for v in (bare, play):
        rows.append([v.name, f"{n / v.median:8.1f}", f"{n / v.min:8.1f}"])
        out[v.name] = {"fps_median": n / v.median, "fps_best": n / v.min}
    speed = bare.median / play.median, bare.min / play.min
    out["player_over_bare"] = {"median": speed[0], "best": speed[1]}
    print_table(f"{name}: {n} frames (player / bare: {speed[0]:.2f}x median, {speed[1]:.2f}x best; "
                f"peak held {player.peak / 2**20:.1f} MiB of a {max_bytes / 2**20:.0f} MiB budget)",
                ["variant", "fps median", "fps best"], rows)  # fmt: skip
    out["within_budget"] = player.peak <= max_bytes
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--splats", type=int, default=150_000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-mb", type=float, default=64.0, help="the prefetcher's byte budget")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--default-arenas", action="store_true",
                        help="leave glibc's per-thread malloc arenas (what holoscope's entry points change)")
    args = parser.parse_args()
    splats, frames, repeats = (30_000, 6, 3) if args.quick else (args.splats, args.frames, args.repeats)
    budget = int(args.budget_mb * 2**20)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores")
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="holoscope-bench-seq-"))
    try:
        make_ply_sequence(tmp, splats, frames)
        results.append(bench(f"PLY sequence, {splats:,} splats SH1 per frame", tmp, budget, repeats))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    samples = Path(os.environ.get("HOLOSCOPE_SAMPLES", _ROOT.parent / "shared" / "samples"))
    wave = samples / "splat-sequences" / "wave"
    if wave.is_dir():
        results.append(bench("wave SOG flipbook (PlayCanvas), 4,225 splats per frame", wave, budget, repeats))
    else:
        print(f"\n(skipped the wave sequence: {wave} is not there)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
