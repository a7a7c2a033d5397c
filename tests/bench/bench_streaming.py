"""Streaming: time to first frame against the whole download, and rebuffering at 1x and 2x the bitrate.

Run from the repository root (needs nginx: Debian's nginx-light, see .ci/install-system)::

    python tests/bench/bench_streaming.py            # full run, about 2 minutes on 2 cores
    python tests/bench/bench_streaming.py --quick    # smoke run, about 40 s
    python tests/bench/bench_streaming.py --json out.json

Everything is served by a private nginx on loopback (tests/net/nginx.py) through the tests'
fault proxy (tests/net/faultproxy.py), whose token bucket is the link: one rate for all
connections together. The streams are made in a temporary folder (deleted at the end): a
binary PLY and the same scene as .splat (random SH-0 splats), a .gsv (the coherent test
sequence, tests/gsvideo_data.py) and a .nerv (a random tiny HNeRV with large per-frame
embeddings, tests/nerv_data.py). Every holoscope run starts with a fresh HTTP session and no
cache (nothing in memory or on disk); imports are warmed on the local copy first.

1. Time to first frame, at ``--rate`` bytes/s, per medium: a plain GET of the whole file (what
   any downloader needs before a whole-file reader can start), holoscope's first picture (row
   files: the first prefix of ``codecs.progressive.iter_prefixes``; .gsv/.nerv: the first frame of
   ``open_input(url).frames_from(0)``, what a player's decode-ahead runs), the ratio of the two,
   holoscope's last picture (the final prefix; the last frame decoded as fast as it arrives) and
   the same first picture from the local file. Median of ``--repeats`` runs.
2. Rebuffering: the .gsv played once from the start in real time by a Player (its poll loop,
   headless, as the app's timer drives it) through a link of 1x and 2x the stream's mean
   bitrate (file bytes / duration), and 0.75x, where it must stall (``--factors``). Reported: the first frame, the startup delay (until the
   clock first runs: the player may show the first frame and still fill its buffer), the stalls
   after that, their seconds and the rebuffering ratio (stalled time after startup / played
   time, played time being the clip's duration), the frames shown, and the wall time of the
   whole playback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.builtin import register_builtin_formats  # noqa: E402
from holoscope.codecs.inputs import open_input  # noqa: E402
from holoscope.core.player import Player, PlayerState  # noqa: E402
from tests.bench.bench_foundation import print_table  # noqa: E402
from tests.net.client import get  # noqa: E402
from tests.net.faultproxy import FaultProxy  # noqa: E402
from tests.net.nginx import NginxServer, nginx_binary  # noqa: E402

register_builtin_formats()  # a script, not the CLI: it does what the entry points do

POLL_S = 1 / 120  # the player's poll period (a GUI timer faster than the frame rate)


def fresh_session() -> None:
    """A new program-wide HTTP session without the on-disk cache: nothing downloaded before."""
    from holoscope.core.http import configure

    configure(use_cache=False)


# -- the streams ---------------------------------------------------------------------------------


def make_streams(folder: Path, quick: bool) -> dict[str, Path]:
    from holoscope.codecs.formats.ply_inria import write_ply
    from holoscope.core.registry import writer_for
    from tests.codecs.helpers import random_cloud
    from tests.nerv_data import write_tiny_nerv
    from tests.net.streams import write_gsv

    cloud = random_cloud(40_000 if quick else 150_000, 0, seed=4)
    write_ply(cloud, folder / "scene.ply")
    _, write_splat = writer_for(folder / "scene.splat", "splat")
    write_splat(cloud, folder / "scene.splat")
    gsv = write_gsv(folder, frames=60 if quick else 180, splats=3000 if quick else 6000, gof=10, name="clip")
    nerv = write_tiny_nerv(folder / "clip.nerv", frames=300 if quick else 600, fps=30, width=320, height=160)
    for name in ("clip-plys",):
        shutil.rmtree(folder / name, ignore_errors=True)
    return {"PLY": folder / "scene.ply", ".splat": folder / "scene.splat", ".gsv": gsv, ".nerv": nerv}


# -- time to first frame -------------------------------------------------------------------------


def first_prefix(target: str | Path) -> tuple[float, float]:
    """Seconds to the first and to the final prefix of a row-ordered splat file."""
    from holoscope.codecs.progressive import iter_prefixes
    from holoscope.core.sources import source_for

    start = time.monotonic()
    first = None
    for partial in iter_prefixes(source_for(str(target))):
        if first is None and partial.cloud is not None:
            first = time.monotonic() - start
    return first if first is not None else float("nan"), time.monotonic() - start


def decode_all(target: str | Path, *, to_end: bool = True) -> tuple[float, float]:
    """Seconds to the first and (``to_end``) to the last frame of a timed medium decoded as
    fast as it can be (``media.frames_from(0)``: what the player's decode-ahead runs)."""
    start = time.monotonic()
    media = open_input(str(target))
    first = None
    try:
        for _frame in media.frames_from(0):
            if first is None:
                first = time.monotonic() - start
                if not to_end:
                    return first, float("nan")
    finally:
        media.release()
    return first if first is not None else float("nan"), time.monotonic() - start


def play(target: str | Path, *, until_end: bool, timeout: float = 120.0) -> dict:
    """Open ``target`` and play it in real time with a Player; seconds to its first frame and,
    with ``until_end``, to the end, with the player's stall counters."""
    start = time.monotonic()
    media = open_input(str(target))
    try:
        player = Player(media, streamed=True)
        player.play()
        first = playing = None
        shown = 0
        startup = {"stalls": 0, "stalled_s": 0.0}
        try:
            while time.monotonic() - start < timeout:
                frame = player.poll()
                if frame is not None:
                    shown += 1
                    if first is None:
                        first = time.monotonic() - start
                        if not until_end:
                            break
                if playing is None and first is not None and not player.stalled:
                    # the first frame may show while the buffer still fills: the wait until the
                    # clock first runs is startup, not rebuffering
                    playing = time.monotonic() - start
                    startup = player.stats()
                if player.state is PlayerState.ENDED:
                    break
                time.sleep(POLL_S)
            stats = player.stats()
        finally:
            player.close()
    finally:
        media.release()
    return {"first_s": first, "playing_s": playing, "end_s": time.monotonic() - start, "shown": shown, "frames": media.frame_count,
            "duration_s": (media.frame_count or 0) / media.fps, "stalls": stats["stalls"] - startup["stalls"],
            "stalled_s": stats["stalled_s"] - startup["stalled_s"], "state": stats["state"]}  # fmt: skip


def ttff_rows(streams: dict[str, Path], proxy: FaultProxy, folder: Path, rate: float, repeats: int) -> list[dict]:
    results = []
    for name, path in streams.items():
        url = proxy.url(path.relative_to(folder).as_posix())
        row = path.suffix in (".ply", ".splat")
        # warm: imports (torch for NeRV, PyAV) and the page cache belong to no link
        local_first = []
        for _ in range(repeats + 1):
            local_first.append(first_prefix(path)[0] if row else decode_all(path, to_end=False)[0])
        whole, first, last = [], [], []
        for _ in range(repeats):
            proxy.set_rate(rate)
            resp = get(url)
            assert len(resp.body) == path.stat().st_size
            whole.append(resp.seconds)
            fresh_session()
            # a NeRV's frames cost ~85 ms each on 2 CPU cores: its last frame measures the
            # decoder, not the link, so only its first is timed
            f, end = first_prefix(url) if row else decode_all(url, to_end=path.suffix != ".nerv")
            first.append(f)
            last.append(end)
            proxy.set_rate(None)
        results.append({"medium": name, "bytes": path.stat().st_size, "rate_Bps": rate,
                        "whole_download_s": statistics.median(whole), "first_frame_s": statistics.median(first),
                        "last_frame_s": statistics.median(last), "local_first_frame_s": statistics.median(local_first[1:]),
                        "samples": {"whole": whole, "first": first, "last": last}})  # fmt: skip
    return results


# -- rebuffering ---------------------------------------------------------------------------------


def rebuffering(gsv: Path, proxy: FaultProxy, folder: Path, factors: list[float], repeats: int) -> list[dict]:
    media = open_input(gsv)
    duration = media.frame_count / media.fps
    media.release()
    bitrate = gsv.stat().st_size / duration  # bytes/s
    url = proxy.url(gsv.relative_to(folder).as_posix())
    results = []
    for factor in factors:
        runs = []
        for _ in range(repeats):
            proxy.set_rate(bitrate * factor)
            fresh_session()
            runs.append(play(url, until_end=True, timeout=duration * 10 + 30))
            proxy.set_rate(None)
        ratios = [r["stalled_s"] / duration for r in runs]
        mid = sorted(range(len(runs)), key=lambda i: ratios[i])[len(runs) // 2]
        results.append({"factor": factor, "rate_Bps": bitrate * factor, "bitrate_Bps": bitrate, "duration_s": duration,
                        "rebuffering_ratio": ratios[mid], **runs[mid], "ratios": ratios})  # fmt: skip
    return results


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller streams, one repeat")
    parser.add_argument("--rate", type=float, default=None, help="link rate for time to first frame, bytes/s "
                        "(default 4e6, 2e6 with --quick)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 3, 1 with --quick)")
    parser.add_argument("--factors", default="0.75,1,2",
                        help="link rates for the rebuffering run, as multiples of the .gsv's mean bitrate "
                        "(default 0.75,1,2: below the bitrate it must stall)")  # fmt: skip
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",") if f.strip()]
    if nginx_binary() is None:
        print("nginx is not installed (Debian package nginx-light; .ci/install-system installs it)")
        return 2
    rate = args.rate or (2e6 if args.quick else 4e6)
    repeats = args.repeats or (1 if args.quick else 3)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores, "
          f"link {rate / 1e6:g} MB/s, {repeats} repeat(s)")  # fmt: skip

    work = Path(tempfile.mkdtemp(prefix="holoscope-bench-streaming-"))
    os.environ["HOLOSCOPE_CACHE_DIR"] = str(work / "cache")  # never the user's cache
    server = proxy = None
    try:
        streams_dir = work / "streams"
        streams_dir.mkdir()
        t = time.monotonic()
        streams = make_streams(streams_dir, args.quick)
        print(f"streams made in {time.monotonic() - t:.1f} s")
        server = NginxServer(work / "nginx", {"streams": streams_dir}).start()
        proxy = FaultProxy("127.0.0.1", server.port).start()

        ttff = ttff_rows(streams, proxy, work, rate, repeats)
        print_table(f"time to first frame at {rate / 1e6:g} MB/s (median of {repeats})",
                    ["medium", "bytes", "whole GET s", "first frame s", "first/whole", "last frame s", "local first s"],
                    [[r["medium"], f"{r['bytes']:,}", f"{r['whole_download_s']:.2f}", f"{r['first_frame_s']:.3f}",
                      f"{r['first_frame_s'] / r['whole_download_s']:.2f}", _s(r["last_frame_s"]),
                      f"{r['local_first_frame_s']:.3f}"] for r in ttff])  # fmt: skip

        rebuf = rebuffering(streams[".gsv"], proxy, work, factors, repeats)
        print_table(f".gsv played in real time ({rebuf[0]['duration_s']:.1f} s, mean bitrate "
                    f"{rebuf[0]['bitrate_Bps'] * 8 / 1e6:.2f} Mbit/s; median of {repeats})",
                    ["link", "rate MB/s", "first frame s", "playing from s", "stalls", "stalled s", "rebuffering", "shown", "wall s", "end state"],
                    [[f"{r['factor']:g}x bitrate", f"{r['rate_Bps'] / 1e6:.2f}", _s(r["first_s"]),
                      _s(r["playing_s"]), str(r["stalls"]), f"{r['stalled_s']:.2f}", f"{r['rebuffering_ratio']:.1%}", f"{r['shown']}/{r['frames']}", f"{r['end_s']:.2f}",
                      r["state"]] for r in rebuf])  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps({"rate_Bps": rate, "repeats": repeats, "ttff": ttff,
                                                   "rebuffering": rebuf}, indent=2))  # fmt: skip
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
