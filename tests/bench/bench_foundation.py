"""Foundation benchmarks: PLY loading, depth sorting and GL frame time, each against a peer.

Run from the repository root::

    python tests/bench/bench_foundation.py            # full: 1M-splat PLY, 1M+3M sort, 1M splats at 1080p
    python tests/bench/bench_foundation.py --quick    # smoke run: 200k PLY, 1M sort, 200k splats at 960x540
    python tests/bench/bench_foundation.py --json out.json

The machine is shared and noisy, so every comparison is measured in ONE run with the
variants interleaved (A B C, C B A, A B C, ...) and reported as median and min of the repeats
plus the ratio against the named baseline. Compare ratios across runs, not absolute times.

Not collected by pytest (the file name does not start with ``test_`` and pyproject.toml's
``norecursedirs`` excludes tests/bench).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# Runnable as a plain script from anywhere in the checkout without installing the package.
_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import plyfile  # noqa: E402

from holoscope.codecs.formats.ply_inria import read_ply, write_ply  # noqa: E402
from holoscope.core.camera import DEFAULT_NEAR, Camera, look_at  # noqa: E402
from holoscope.core.frames import SplatCloud, sh_coeff_count  # noqa: E402
from holoscope.render.sort import KEY_BITS, sort_back_to_front, view_depths  # noqa: E402

UP = np.array([0.0, 1.0, 0.0])
MB = 1e6  # throughput in decimal megabytes (10^6 bytes) per second


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    fn: Callable[[], object]
    samples: list[float] = field(default_factory=list)  # seconds

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


def run_interleaved(variants: list[Variant], repeats: int, warmup: int = 1) -> None:
    """Time each variant ``repeats`` times, interleaved; the order reverses every repeat so no
    variant always runs right after the same neighbour. GC is collected (untimed) before each
    call and disabled while timing; each call's result is dropped before the next call."""
    for _ in range(warmup):
        for v in variants:
            v.fn()
            gc.collect()
    for r in range(repeats):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                result = v.fn()
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
            del result
            v.samples.append(dt)


def ratio(a: Variant, b: Variant) -> tuple[float, float]:
    """(median_a / median_b, min_a / min_b): > 1 means ``a`` takes longer."""
    return a.median / b.median, a.min / b.min


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}x" if 0.1 <= r < 1000 else f"{r:.3g}x"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.1f}"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n== {title}")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print(line)
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def variant_json(v: Variant, **extra: object) -> dict:
    return {"name": v.name, "median_s": v.median, "min_s": v.min, "samples_s": v.samples, **extra}


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def ball_scene(
    rng: np.random.Generator,
    n: int,
    *,
    sh_degree: int = 3,
    radius: float = 1.0,
    log_scale_mean: float = np.log(0.004),
    log_scale_std: float = 0.5,
) -> SplatCloud:
    """The benchmarks' scene (not the format tests' ``random_cloud``, tests/codecs/helpers.py,
    whose profiles cover what each format stores): means uniform in a ball of ``radius`` at the
    origin, log-normal small scales, random rotations, opacities in [0.05, 0.95], DC colours
    around grey and small higher-order SH, drawn in float32 from a caller's generator so that
    millions of splats and successive frames are cheap to make."""
    f32 = np.float32
    direction = rng.standard_normal((n, 3), dtype=f32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    means = direction * (radius * np.cbrt(rng.random(n, dtype=f32)))[:, None]
    del direction
    scales = np.exp(rng.normal(log_scale_mean, log_scale_std, (n, 3))).astype(f32)
    quats = rng.standard_normal((n, 4), dtype=f32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    opacities = rng.uniform(0.05, 0.95, n).astype(f32)
    k = sh_coeff_count(sh_degree)
    sh = rng.standard_normal((n, k, 3), dtype=f32)
    sh[:, 0] *= 0.8
    sh[:, 1:] *= 0.1
    return SplatCloud(means=means.astype(f32), scales=scales, quats=quats, opacities=opacities, sh=sh)


# ---------------------------------------------------------------------------------------------
# 1. PLY load
# ---------------------------------------------------------------------------------------------


def bench_ply(n: int, repeats: int, tmpdir: Path, rng: np.random.Generator, nommap: bool) -> dict:
    path = tmpdir / f"bench_{n}_sh3.ply"
    cloud = ball_scene(rng, n, sh_degree=3)
    t0 = time.perf_counter()
    write_ply(cloud, path)
    write_s = time.perf_counter() - t0
    del cloud
    gc.collect()
    size = path.stat().st_size
    print(f"\n[ply] wrote {n:,} splats, SH degree 3: {size / MB:.1f} MB ({size / n:.0f} B/splat) "
          f"in {write_s:.2f} s (write_ply, once)")

    # Warm the page cache: every timed read below finds the whole file in memory.
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass

    def holoscope_read() -> object:
        return read_ply(path)

    def plyfile_mmap_touch() -> object:
        ply = plyfile.PlyData.read(str(path))  # default mmap='c'
        data = np.asarray(ply["vertex"].data)
        return float(data["x"].sum())  # 248 B records < 4 KiB pages: faults in every page

    def plyfile_mmap_copy() -> object:
        ply = plyfile.PlyData.read(str(path))  # default mmap='c'
        data = np.array(ply["vertex"].data)  # copies every byte of every record into RAM
        return float(data["x"].sum())

    def plyfile_nommap() -> object:
        # plyfile's non-mmap binary path reads value by value in Python (PlyElement._read_bin).
        ply = plyfile.PlyData.read(str(path), mmap=False)
        data = np.asarray(ply["vertex"].data)
        return float(data["x"].sum())

    # Sanity (untimed): holoscope reads back every splat.
    check = read_ply(path)
    assert check.count == n and check.sh_degree == 3, (check.count, check.sh_degree)
    del check

    hs = Variant("holoscope read_ply -> activated SplatCloud", holoscope_read)
    pm = Variant("plyfile read mmap='c' + sum(x) (touch pages)", plyfile_mmap_touch)
    pc = Variant("plyfile read mmap='c' + np.array copy + sum(x)", plyfile_mmap_copy)
    variants = [hs, pm, pc]
    run_interleaved(variants, repeats)

    # plyfile mmap=False is a per-value Python loop (about 70 s per 1M SH3 splats): timed
    # once, after the interleaved set, instead of holding up every repeat.
    pn = None
    if nommap:
        pn = Variant("plyfile read mmap=False + sum(x) (1 sample)", plyfile_nommap)
        gc.collect()
        t0 = time.perf_counter()
        result = pn.fn()
        pn.samples.append(time.perf_counter() - t0)
        del result
    shown = variants + ([pn] if pn else [])

    rows = []
    for v in shown:
        r_med, r_min = ratio(hs, v)
        rows.append([v.name, fmt_ms(v.median), fmt_ms(v.min), f"{size / MB / v.median:8.0f}",
                     f"{n / v.median / 1e6:7.2f}", fmt_ratio(r_med), fmt_ratio(r_min)])
    print_table(
        f"1. PLY load, {n:,} splats SH3, {size / MB:.0f} MB, warm page cache, {repeats} repeats interleaved",
        ["variant", "median ms", "min ms", "MB/s (med)", "Msplat/s", "holoscope/this med", "min"],
        rows,
    )
    print("   holoscope/this = read_ply time / this variant's time (>1 = holoscope slower). MB = 10^6 bytes.")
    return {
        "splats": n,
        "file_bytes": size,
        "write_ply_s": write_s,
        "page_cache": "warm (file read once before timing)",
        "variants": [
            variant_json(v, mb_per_s_median=size / MB / v.median, splats_per_s_median=n / v.median,
                         holoscope_over_this={"median": ratio(hs, v)[0], "min": ratio(hs, v)[1]})
            for v in shown
        ],
    }


# ---------------------------------------------------------------------------------------------
# 2. Sort
# ---------------------------------------------------------------------------------------------


def check_back_to_front(means: np.ndarray, view: np.ndarray, order: np.ndarray) -> None:
    """The order holds every splat once and depth never increases by more than one key bucket."""
    assert order.dtype == np.uint32 and order.size == len(means), (order.dtype, order.size)
    d = view_depths(means, view)
    bucket = (float(d.max()) - float(d.min())) / (2**KEY_BITS - 1)
    steps = np.diff(d[order])
    assert float(steps.max()) <= bucket * 1.01 + 1e-6, (float(steps.max()), bucket)
    assert np.bincount(order, minlength=len(means)).max() == 1


def bench_sort(sizes: list[int], repeats: int, rng: np.random.Generator) -> dict:
    # Means uniform in a 10 m box at the origin; the camera is outside it, so every splat is in
    # front of the near plane and both variants order the same N depths.
    cam = Camera(1920, 1080, 60.0, look_at(np.array([6.0, 4.0, 20.0]), np.zeros(3), UP))
    view = cam.view_matrix
    near = DEFAULT_NEAR
    out: dict = {"camera": "look_at (6,4,20) -> origin, box [-5,5]^3, all splats in front",
                 "depths": "view_depths included in both variants", "sizes": []}
    rows = []
    for n in sizes:
        means = rng.uniform(-5.0, 5.0, (n, 3)).astype(np.float32)
        check_back_to_front(means, view, sort_back_to_front(means, view, near))

        ours = Variant("sort_back_to_front (16-bit keys, stable radix)", lambda: sort_back_to_front(means, view, near))
        base = Variant("np.argsort(view_depths(...)) float32", lambda: np.argsort(view_depths(means, view)))
        depth = Variant("  of which view_depths alone (shared)", lambda: view_depths(means, view))
        run_interleaved([ours, base, depth], repeats)
        speed_med, speed_min = base.median / ours.median, base.min / ours.min
        for v in (ours, base, depth):
            rows.append([f"{n / 1e6:.0f}M  {v.name}", fmt_ms(v.median), fmt_ms(v.min),
                         fmt_ratio(speed_med) if v is ours else "", fmt_ratio(speed_min) if v is ours else ""])
        out["sizes"].append({"splats": n, "variants": [variant_json(ours), variant_json(base), variant_json(depth)],
                             "speedup_vs_argsort": {"median": speed_med, "min": speed_min}})
        del means
        gc.collect()
    print_table(
        f"2. Depth sort per view (view_depths included in both), {repeats} repeats",
        ["splats  variant", "median ms", "min ms", "speed-up med", "min"],
        rows,
    )
    print("   speed-up = argsort time / sort_back_to_front time (>1 = holoscope faster). The argsort baseline"
          " is ascending (front to back) int64 indices; reversing it is a free view, so it is a lower bound.")
    return out


# ---------------------------------------------------------------------------------------------
# 3. GL frame time
# ---------------------------------------------------------------------------------------------


def bench_gl(n: int, width: int, height: int, repeats: int, rng: np.random.Generator) -> dict:
    from holoscope.render.gl.context import create_headless_context
    from holoscope.render.gl.splat_renderer import GlSplatRenderer, OffscreenTarget, RenderSettings

    ctx = create_headless_context()
    renderer = target = None
    try:
        gl_renderer = ctx.info["GL_RENDERER"]
        gl_version = ctx.info["GL_VERSION"]
        print(f"\n[gl] GL_RENDERER: {gl_renderer} | GL_VERSION: {gl_version} | "
              f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', '(unset)')}")
        cloud = ball_scene(rng, n, sh_degree=3, radius=1.0)
        camera = Camera(width, height, 60.0, look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), UP))
        renderer = GlSplatRenderer(ctx)
        target = OffscreenTarget(ctx, width, height)

        t0 = time.perf_counter()
        renderer.upload(cloud)
        ctx.finish()
        upload_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        order = sort_back_to_front(cloud.means, camera.view_matrix, camera.near)
        sort_s = time.perf_counter() - t0
        renderer.set_order(order)
        visible = int(order.size)
        del order
        print(f"[gl] {n:,} splats SH3 in a unit ball 3 m in front, {width}x{height}: "
              f"upload {upload_s * 1e3:.0f} ms, sort {sort_s * 1e3:.0f} ms (once), {visible:,} in front")

        sh3, sh0 = RenderSettings(sh_degree_limit=3), RenderSettings(sh_degree_limit=0)

        def frame(settings: RenderSettings) -> Callable[[], None]:
            def run() -> None:
                renderer.draw(camera, settings)
                ctx.finish()
            return run

        v3 = Variant("draw SH degree 3 + finish", frame(sh3))
        v0 = Variant("draw sh_degree_limit=0 + finish", frame(sh0))

        # Interleaved like run_interleaved, but the target is cleared (and finished) untimed
        # before every draw, so only draw + finish is measured.
        variants = [v3, v0]
        for v in variants:  # warm-up: shader JIT, first-touch of the buffers
            target.begin()
            ctx.finish()
            v.fn()
        for r in range(repeats):
            for v in variants if r % 2 == 0 else variants[::-1]:
                target.begin()
                ctx.finish()
                gc.collect()
                t0 = time.perf_counter()
                v.fn()
                v.samples.append(time.perf_counter() - t0)

        # Sanity (untimed): the SH3 frame covers a plausible part of the image.
        target.begin()
        v3.fn()
        raw = np.frombuffer(target.fbo.read(components=4, dtype="f4"), np.float32).reshape(height, width, 4)
        alpha = raw[..., 3]
        coverage = float((alpha > 0.5).mean())
        mean_alpha = float(alpha.mean())
        del raw, alpha

        rows = []
        for v in variants:
            r_med, r_min = ratio(v, v0)
            rows.append([v.name, fmt_ms(v.median), fmt_ms(v.min), f"{1 / v.median:7.2f}", f"{1 / v.min:7.2f}",
                         fmt_ratio(r_med), fmt_ratio(r_min)])
        print_table(
            f"3. GL frame, {n:,} splats, {width}x{height}, {gl_renderer}, {repeats} repeats",
            ["variant", "median ms", "min ms", "fps med", "fps max", "t/SH0 med", "min"],
            rows,
        )
        print(f"   SH cost: SH3/SH0 frame time {ratio(v3, v0)[0]:.2f}x (min {ratio(v3, v0)[1]:.2f}x); "
              f"image coverage alpha>0.5: {coverage:.1%}, mean alpha {mean_alpha:.3f}")
        return {
            "gl_renderer": gl_renderer,
            "gl_version": gl_version,
            "splats": n,
            "visible": visible,
            "resolution": [width, height],
            "upload_s": upload_s,
            "sort_s": sort_s,
            "variants": [variant_json(v, fps_median=1 / v.median) for v in variants],
            "sh3_over_sh0": {"median": ratio(v3, v0)[0], "min": ratio(v3, v0)[1]},
            "coverage_alpha_gt_0_5": coverage,
            "mean_alpha": mean_alpha,
        }
    finally:
        if target is not None:
            target.release()
        if renderer is not None:
            renderer.release()
        ctx.release()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in well under a minute")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write all samples and ratios as JSON")
    parser.add_argument("--only", choices=["ply", "sort", "gl"], action="append",
                        help="run only these sections (repeatable); default all")
    parser.add_argument("--repeats", type=int, help="override the repeats of every section")
    parser.add_argument("--tmpdir", type=Path, help="where to write the temporary PLY (default: system temp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plyfile-nommap", action="store_true",
                        help="skip the single plyfile mmap=False sample (a Python loop: ~70 s per 1M splats)")
    args = parser.parse_args(argv)
    sections = args.only or ["ply", "sort", "gl"]

    if args.quick:
        ply_n, sort_sizes, gl_n, gl_size = 200_000, [1_000_000], 200_000, (960, 540)
        ply_rep, sort_rep, gl_rep = 5, 5, 3
    else:
        ply_n, sort_sizes, gl_n, gl_size = 1_000_000, [1_000_000, 3_000_000], 1_000_000, (1920, 1080)
        ply_rep, sort_rep, gl_rep = 5, 9, 3
    if args.repeats:
        ply_rep = sort_rep = gl_rep = args.repeats

    rng = np.random.default_rng(args.seed)
    meta = {
        "argv": sys.argv,
        "quick": args.quick,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "plyfile": getattr(plyfile, "__version__", None),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    print(f"holoscope foundation bench ({'quick' if args.quick else 'full'}): python {meta['python']}, "
          f"numpy {np.__version__}, {meta['cpus']} CPUs, load average {meta['loadavg_start'][0]:.2f}")
    print("Variants are interleaved within each section; times are wall clock (perf_counter).")
    results: dict = {"meta": meta}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holoscope-bench-", dir=args.tmpdir) as tmp:
        if "ply" in sections:
            results["ply"] = bench_ply(ply_n, ply_rep, Path(tmp), rng, not args.no_plyfile_nommap)
            gc.collect()
    if "sort" in sections:
        results["sort"] = bench_sort(sort_sizes, sort_rep, rng)
        gc.collect()
    if "gl" in sections:
        results["gl"] = bench_gl(gl_n, *gl_size, gl_rep, rng)
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - t_start
    print(f"\nTotal {meta['total_s']:.0f} s; load average at the end {meta['loadavg_end'][0]:.2f} "
          f"(the machine is shared: trust the ratios more than the absolute times).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
