"""Streamed LOD over HTTP: time to the first image and to full detail, against loading the whole scene.

Run from the repository root::

    python tests/bench/bench_lod_streaming.py                # 1M splats SH 3, 12.5 MB/s, 3 interleaved repeats
    python tests/bench/bench_lod_streaming.py --quick        # smoke run: 100k splats
    python tests/bench/bench_lod_streaming.py --scene-dir DIR  # keep (and reuse) the written scene there

The scene: ``--splats`` synthetic splats (SH 3, spread over a 60 x 16 x 60 m box) written by
``write_lod`` (what ``holoscope convert big.ply out/lod-meta.json`` runs) with 64K-splat files, so
level 0 spans several files. It is served by the streaming tests' nginx through their fault proxy
at a fixed bandwidth limit (``--rate`` bytes/s, one link for every connection; ``--rtt`` adds a
delay before every response), from a fresh HTTP session without the disk cache for every run.

Variants, interleaved in one process (A B, B A, ...), the camera seeing the whole scene:

- whole: what a viewer without LOD does: ``read_lod(url).full_cloud()`` (every level-0 file
  downloaded and decoded), then uploaded, sorted and drawn once;
- stream: :class:`~holoscope.render.lod_stream.LodStreamer` (2 loaders, no splat budget,
  ``refine="steps"``: every level from the coarsest down) from the same URL; the *first image*
  is the first shown set (the coarsest level of every chunk) uploaded, sorted and drawn; *full
  detail* is every chunk at level 0 drawn (the same splats as whole's, checked). Every new shown
  set is drawn as it comes (as a viewer does), the newest one when a draw ends;
- direct: the same with ``refine="direct"`` (the coarsest level, then level 0 straight away).

Drawing is a headless EGL context at 640x360 (``--no-draw`` leaves it out). Reported: seconds
(median and best of the repeats), the bytes each variant downloaded (the proxy's log) and the
ratios stream / whole. The machine is shared and noisy: compare ratios, not absolute times.
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

os.environ["HOLOSCOPE_NO_CACHE"] = "1"  # every run downloads: no disk cache between repeats

import holoscope.core.http as http  # noqa: E402
from holoscope.codecs.formats.lod import read_lod  # noqa: E402
from holoscope.codecs.formats.lod_write import write_lod  # noqa: E402
from holoscope.core.camera import Camera, look_at  # noqa: E402
from holoscope.core.frames import SplatCloud  # noqa: E402
from holoscope.render.lod_stream import LodStreamer  # noqa: E402
from holoscope.render.sort import sort_back_to_front  # noqa: E402
from tests.codecs.helpers import random_cloud  # noqa: E402
from tests.net.faultproxy import FaultProxy  # noqa: E402
from tests.net.nginx import NginxServer, nginx_binary  # noqa: E402

SIZE = (640, 360)


def synthetic_scene(n: int, seed: int = 7) -> SplatCloud:
    cloud = random_cloud(n, 3, seed, profile="sog")
    rng = np.random.default_rng(seed)
    means = np.stack([rng.uniform(-30, 30, n), rng.uniform(-8, 8, n), rng.uniform(-30, 30, n)], 1).astype(np.float32)
    return SplatCloud(means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh)


def scene_folder(root: Path, n: int) -> Path:
    """The written scene for ``n`` splats under ``root`` (written once, reused after)."""
    out = root / f"lod-{n}" / "lod-meta.json"
    if not out.exists():
        start = time.perf_counter()
        print(f"writing a {n:,}-splat streamed-LOD scene (once) ...", flush=True)
        write_lod(synthetic_scene(n), out, chunk_count=64, iterations=1)
        print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def folder_bytes(folder: Path, names: list[str]) -> int:
    return sum(p.stat().st_size for name in names for p in (folder / name).parent.iterdir() if p.is_file())


class Drawer:
    """Upload, sort and draw a cloud once, finished on the GPU (what a viewer's first paint does)."""

    def __init__(self, enabled: bool) -> None:
        self.ctx = None
        if enabled:
            from holoscope.render.gl.context import create_headless_context
            from holoscope.render.gl.splat_renderer import GlSplatRenderer, OffscreenTarget

            self.ctx = create_headless_context()
            self.renderer = GlSplatRenderer(self.ctx)
            self.target = OffscreenTarget(self.ctx, *SIZE)

    def draw(self, cloud: SplatCloud, camera: Camera) -> None:
        order = sort_back_to_front(cloud.means, camera.view_matrix)
        if self.ctx is None:
            return
        with self.ctx:
            self.target.begin(clear=(0, 0, 0, 0))
            self.renderer.upload(cloud)
            self.renderer.set_order(order)
            self.renderer.draw(camera)
            self.ctx.finish()


def fresh_session() -> None:
    http._default = None  # a new process's session: nothing in memory from the run before


def run_whole(url: str, camera: Camera, drawer: Drawer) -> dict:
    fresh_session()
    start = time.perf_counter()
    cloud = read_lod(url).full_cloud()
    drawer.draw(cloud, camera)
    done = time.perf_counter() - start
    return {"first": done, "full": done, "count": cloud.count}


def run_stream(url: str, camera: Camera, drawer: Drawer, refine: str = "steps") -> dict:
    fresh_session()
    start = time.perf_counter()
    scene = read_lod(url)
    first = None
    with LodStreamer(scene, budget=None, refine=refine) as streamer:
        streamer.set_camera(camera)
        shown = 0
        while True:
            cloud, version = streamer.cloud_for_view(camera)
            if cloud is not None and version != shown:  # a new shown set: a viewer draws it
                drawer.draw(cloud, camera)
                shown = version
                if first is None:
                    first = time.perf_counter() - start
                    first_count = cloud.count
                if (streamer.shown_levels == 0).all():
                    break
            time.sleep(0.005)
        full = time.perf_counter() - start
        return {"first": first, "full": full, "count": cloud.count, "first_count": first_count,
                "fetched": streamer.fetched}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k splats, 2 repeats")
    parser.add_argument("--splats", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=12.5e6, help="bandwidth limit, bytes/s (default 100 Mbit/s)")
    parser.add_argument("--rtt", type=float, default=0.0, help="seconds added before every response (latency)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scene-dir", help="where the written scene is kept and reused (default: a temporary folder)")
    parser.add_argument("--no-draw", action="store_true", help="time without the GL upload and draw")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.splats, args.repeats = min(args.splats, 100_000), min(args.repeats, 2)
    if nginx_binary() is None:
        print("needs nginx (Debian package nginx-light)")
        return 2
    temp = Path(tempfile.mkdtemp(prefix="holoscope-bench-lod-"))
    root = Path(args.scene_dir) if args.scene_dir else temp
    root.mkdir(parents=True, exist_ok=True)
    server = proxy = None
    try:
        meta = scene_folder(root, args.splats)
        local = read_lod(meta)
        level0 = [local.filenames[f] for f in local.files_for(0)]
        coarse = [local.filenames[f] for f in local.files_for(local.levels - 1)]
        sizes = {"all levels": folder_bytes(meta.parent, local.filenames), "level 0": folder_bytes(meta.parent, level0),
                 "coarsest level": folder_bytes(meta.parent, coarse)}  # fmt: skip
        print(f"scene: {local.counts[0]:,} splats SH 3, {local.levels} levels {local.counts}, "
              f"{len(local.leaves)} chunks in {len(local.filenames)} files")  # fmt: skip
        for what, n in sizes.items():
            print(f"  {what}: {n / 1e6:.1f} MB")
        server = NginxServer(temp / "nginx", {"streams": meta.parent.parent})
        server.start()
        proxy = FaultProxy("127.0.0.1", server.port).start()
        proxy.set_rate(args.rate)
        if args.rtt > 0:
            proxy.delay(".", headers=args.rtt, times=None)
        url = proxy.url(f"streams/{meta.parent.name}/lod-meta.json")
        camera = Camera(*SIZE, 60.0, look_at(np.array([0.0, 25.0, 70.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])))
        drawer = Drawer(not args.no_draw)
        runs = {"whole": run_whole, "stream": run_stream,
                "direct": lambda *a: run_stream(*a, refine="direct")}  # fmt: skip
        results: dict[str, list[dict]] = {name: [] for name in runs}
        print(f"rate limit {args.rate / 1e6:.1f} MB/s, {args.rtt * 1e3:.0f} ms added per request; {args.repeats} interleaved repeats; draw "
              f"{'off' if args.no_draw else f'{SIZE[0]}x{SIZE[1]}, headless EGL'}", flush=True)  # fmt: skip
        for r in range(args.repeats):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in order:
                proxy.clear_log()
                result = runs[name](url, camera, drawer)
                result["bytes"] = proxy.body_bytes("/" + meta.parent.name + "/")
                results[name].append(result)
                print(f"  {name:6s} first image {result['first']:6.2f} s, full detail {result['full']:6.2f} s, "
                      f"{result['bytes'] / 1e6:6.1f} MB", flush=True)  # fmt: skip
        assert all(r["count"] == local.counts[0] for rs in results.values() for r in rs), "full detail differs"

        def med(name: str, key: str) -> float:
            return statistics.median(r[key] for r in results[name])

        def best(name: str, key: str) -> float:
            return min(r[key] for r in results[name])

        print()
        print("| what | whole scene (level 0, then drawn) | streamed LOD, steps | stream / whole | "
              "streamed LOD, direct | direct / whole |")
        print("|---|---|---|---|---|---|")
        for key, label in (("first", "time to first image"), ("full", "time to full detail")):
            cells = [f"{med('whole', key):.2f} s (best {best('whole', key):.2f})"]
            for name in ("stream", "direct"):
                cells += [f"{med(name, key):.2f} s (best {best(name, key):.2f})",
                          f"{med(name, key) / med('whole', key):.2f}x, {best(name, key) / best('whole', key):.2f}x"]
            print(f"| {label} | " + " | ".join(cells) + " |")
        cells = [f"{med('whole', 'bytes') / 1e6:.1f} MB"]
        for name in ("stream", "direct"):
            cells += [f"{med(name, 'bytes') / 1e6:.1f} MB", f"{med(name, 'bytes') / med('whole', 'bytes'):.2f}x"]
        print("| downloaded | " + " | ".join(cells) + " |")
        print(f"first image: {results['stream'][0]['first_count']:,} splats (the coarsest level)")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "sizes": sizes, "results": results}, indent=1))
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
