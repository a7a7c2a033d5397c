"""Per-frame upload of a splat frame sequence into the GL renderer (issue 8: buffer reuse).

Run from the repository root::

    python tests/bench/bench_upload.py            # full: 150k-splat SH3 frames, 15 repeats
    python tests/bench/bench_upload.py --quick    # smoke run: 30k-splat frames, 5 repeats
    python tests/bench/bench_upload.py --json out.json

A sequence of random SH3 frames (several of the same count plus one 10% smaller and one 10%
larger) is uploaded with ``GlSplatRenderer.upload`` + ``ctx.finish()``. Variants, interleaved
in one process (A B C D, D C B A, ...), each repeat cycling through the frames:

- reuse:  upload into a warmed renderer (it has seen the whole sequence once, so every frame
          fits its buffers: this is the per-frame cost of a sequence);
- first:  the first upload into a new renderer (constructed untimed): every buffer allocated;
- realloc: the upload as it was before issue 8 (a copy of it below): every buffer released and
          re-created from ``tobytes()`` copies, in the same renderer;
- fresh:  a fresh renderer per frame: construct (shaders) + upload + release, all timed;
- and, for scale, the host-side packing alone (centres + ``packed_covariances``), which every
  variant does: what buffer reuse cannot save.

Reported: median and min of the repeats and each variant's time over the reuse time. The
machine is shared and noisy: compare ratios between runs, not absolute times.

Not collected by pytest (the file name does not start with ``test_`` and pyproject.toml's
``norecursedirs`` excludes tests/bench).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

# Runnable as a plain script from anywhere in the checkout without installing the package.
_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.bench.bench_foundation import (  # noqa: E402
    Variant,
    fmt_ms,
    fmt_ratio,
    print_table,
    ball_scene,
    ratio,
    variant_json,
)


def frame_counts(n: int, same: int) -> list[int]:
    """``same`` frames of ``n`` splats, then one 10% smaller and one 10% larger."""
    return [n] * same + [int(n * 0.9), int(n * 1.1)]


def previous_upload(renderer, cloud) -> None:  # noqa: ANN001
    """``GlSplatRenderer.upload`` before issue 8, verbatim but for the names: the baseline."""
    from holoscope.core.splat_math import packed_covariances

    renderer._release_buffers()
    centers = np.empty((cloud.count, 4), np.float32)
    centers[:, :3] = cloud.means
    centers[:, 3] = cloud.opacities
    sh = np.ascontiguousarray(cloud.sh, np.float32)
    renderer._buffers = [
        renderer.ctx.buffer(data.tobytes() if data.size else b"\0" * 16)
        for data in (centers, packed_covariances(cloud.scales, cloud.quats), sh)
    ]
    renderer._order = renderer.ctx.buffer(reserve=max(4, 4 * cloud.count))
    renderer._projected = renderer.ctx.buffer(reserve=max(48, 48 * cloud.count))
    renderer._order_count = 0
    renderer.cloud = cloud


def bench_upload(n: int, same: int, repeats: int, seed: int) -> dict:
    from holoscope.core.splat_math import packed_covariances
    from holoscope.render.gl.context import create_headless_context
    from holoscope.render.gl.splat_renderer import GlSplatRenderer

    rng = np.random.default_rng(seed)
    counts = frame_counts(n, same)
    frames = [ball_scene(rng, c, sh_degree=3) for c in counts]
    frame_mb = [f.nbytes / 1e6 for f in frames]
    ctx = create_headless_context()
    warm: GlSplatRenderer | None = None
    try:
        with ctx:
            gl_renderer = ctx.info["GL_RENDERER"]
            print(f"[upload] GL_RENDERER: {gl_renderer} | GL_VERSION: {ctx.info['GL_VERSION']} | "
                  f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', '(unset)')}")
            print(f"[upload] {len(frames)} random SH3 frames of {', '.join(f'{c:,}' for c in counts)} splats "
                  f"({min(frame_mb):.0f}-{max(frame_mb):.0f} MB of SplatCloud arrays each)")

            warm = GlSplatRenderer(ctx)
            for f in frames:  # the warm-up: the 10% larger frame grows the buffers, with headroom
                warm.upload(f)
            sizes = [b.size for b in (*warm._buffers, warm._order, warm._projected)]
            ids = [id(b) for b in (*warm._buffers, warm._order, warm._projected)]
            ctx.finish()

            # Which frame each variant uploads next: every variant cycles through the sequence.
            cursor = {"reuse": 0, "first": 0, "realloc": 0, "fresh": 0, "host": 0}
            pending: list[GlSplatRenderer] = []  # new renderers for "first", made untimed

            def next_frame(key: str):
                i = cursor[key]
                cursor[key] = (i + 1) % len(frames)
                return frames[i]

            def reuse() -> None:
                warm.upload(next_frame("reuse"))
                ctx.finish()

            def first() -> None:
                r = pending.pop()
                r.upload(next_frame("first"))
                ctx.finish()
                pending.append(r)  # released untimed (before_first)

            realloc_r = GlSplatRenderer(ctx)

            def realloc() -> None:
                previous_upload(realloc_r, next_frame("realloc"))
                ctx.finish()

            def fresh() -> None:
                r = GlSplatRenderer(ctx)
                r.upload(next_frame("fresh"))
                ctx.finish()
                r.release()
                ctx.finish()

            def host_only() -> None:  # the numpy part of upload, the same in every variant
                f = next_frame("host")
                centers = np.empty((f.count, 4), np.float32)
                centers[:, :3] = f.means
                centers[:, 3] = f.opacities
                packed_covariances(f.scales, f.quats)

            def before_first() -> None:  # untimed: a brand-new renderer, previous one released
                while pending:
                    pending.pop().release()
                pending.append(GlSplatRenderer(ctx))
                ctx.finish()

            v_reuse = Variant("upload into a warmed renderer (buffers reused)", reuse)
            v_first = Variant("first upload into a new renderer", first)
            v_realloc = Variant("upload as before issue 8 (re-allocates, bytes copies)", realloc)
            v_fresh = Variant("fresh renderer per frame (construct+upload+release)", fresh)
            v_host = Variant("  of which host-side packing alone (shared)", host_only)
            variants = [v_reuse, v_first, v_realloc, v_fresh, v_host]
            setup: dict[str, Callable[[], None]] = {v_first.name: before_first}

            for _ in range(len(frames)):  # warm-up: one pass over the sequence each, untimed
                for v in variants:
                    setup.get(v.name, lambda: None)()
                    v.fn()
            for v in variants:
                v.samples.clear()
            for r in range(repeats * len(frames)):
                for v in variants if r % 2 == 0 else variants[::-1]:
                    setup.get(v.name, lambda: None)()
                    gc.collect()
                    gc.disable()
                    try:
                        t0 = time.perf_counter()
                        v.fn()
                        dt = time.perf_counter() - t0
                    finally:
                        gc.enable()
                    v.samples.append(dt)

            # Sanity (untimed): the warmed renderer never re-allocated.
            assert [id(b) for b in (*warm._buffers, warm._order, warm._projected)] == ids, "buffers were replaced"
            while pending:
                pending.pop().release()
            realloc_r.release()

        rows = []
        for v in variants:
            r_med, r_min = ratio(v, v_reuse)
            rows.append([v.name, fmt_ms(v.median), fmt_ms(v.min), f"{n / v.median / 1e6:8.1f}",
                         fmt_ratio(r_med), fmt_ratio(r_min)])
        print_table(
            f"Upload of a {n:,}-splat SH3 frame sequence (+-10%), {gl_renderer}, "
            f"{repeats} repeats x {len(frames)} frames interleaved",
            ["variant", "median ms", "min ms", "Msplat/s", "t/reuse med", "min"],
            rows,
        )
        print("   t/reuse = this variant's time / the reused-buffer upload time (>1 = reuse is faster). "
              f"Buffer bytes after the warm-up (centres, covariances, SH, order, projected): {sizes}")
        gpu = {v.name: v.median - v_host.median for v in (v_reuse, v_first, v_realloc, v_fresh)}
        print(f"   Beyond the host-side packing (median - packing median): reuse {gpu[v_reuse.name] * 1e3:.1f} ms, "
              f"first upload {gpu[v_first.name] * 1e3:.1f} ms, before issue 8 {gpu[v_realloc.name] * 1e3:.1f} ms, "
              f"fresh renderer {gpu[v_fresh.name] * 1e3:.1f} ms")
        return {
            "gl_renderer": gl_renderer,
            "splats": n,
            "frame_counts": counts,
            "buffer_bytes": sizes,
            "beyond_host_packing_median_s": gpu,
            "variants": [variant_json(v, over_reuse={"median": ratio(v, v_reuse)[0], "min": ratio(v, v_reuse)[1]})
                         for v in variants],
        }
    finally:
        if warm is not None:
            with ctx:
                warm.release()
        ctx.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30k-splat frames, 5 repeats: a smoke run")
    parser.add_argument("--splats", type=int, help="splats per frame (default 150000, --quick 30000)")
    parser.add_argument("--frames", type=int, default=3, help="frames of the same count (plus the two +-10%%)")
    parser.add_argument("--repeats", type=int, help="passes over the sequence (default 15, --quick 5)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write all samples and ratios as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = args.splats or (30_000 if args.quick else 150_000)
    repeats = args.repeats or (5 if args.quick else 15)

    meta = {
        "argv": sys.argv,
        "quick": args.quick,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    print(f"holoscope upload bench ({'quick' if args.quick else 'full'}): python {meta['python']}, "
          f"numpy {np.__version__}, {meta['cpus']} CPUs, load average {meta['loadavg_start'][0]:.2f}")
    t_start = time.perf_counter()
    results = {"meta": meta, "upload": bench_upload(n, args.frames, repeats, args.seed)}
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - t_start
    print(f"\nTotal {meta['total_s']:.0f} s; load average at the end {meta['loadavg_end'][0]:.2f} "
          "(the machine is shared: trust the ratios more than the absolute times).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
