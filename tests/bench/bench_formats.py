"""Splat formats: load throughput against the fastest public Python readers, and what each
lossy writer costs in size and accuracy. Everything side by side in one run.

    pip install gsply scipy      # the peer (PLY, compressed PLY, SPZ) and a KD-tree; benchmark only
    python tests/bench/bench_formats.py [--splats 1000000] [--repeats 5] [--json out.json]

Load: the same synthetic scene (SH degree 3 where the format holds SH) is written once per
format, then each reader loads it into memory with all attributes decoded; holoscope and the
peer alternate (ABAB...), median and min are reported with the ratio holoscope/peer (< 1 means
holoscope is faster). Formats without an installable Python peer report holoscope alone.

Round trips: the real samples (guitar.compressed.ply, 90,854 splats; sh3-64.compressed.ply for
SH) are written by each writer and read back: size, bytes per splat and attribute errors.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_ROOT))

from holoscope.core.frames import SH_C0, SplatCloud  # noqa: E402
from holoscope.codecs.builtin import register_builtin_formats  # noqa: E402
from holoscope.core.registry import open_media, writer_for  # noqa: E402

register_builtin_formats()  # a script, not the CLI: it registers the formats itself

SAMPLES = _ROOT.parent / "shared" / "samples"


def synthetic(n: int, sh_degree: int, seed: int = 0) -> SplatCloud:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = (sh_degree + 1) ** 2
    sh = (rng.normal(0, 0.3, (n, k, 3))).astype(np.float32)
    sh[:, 0] = rng.uniform(-1.5, 1.5, (n, 3))
    return SplatCloud(rng.uniform(-4, 4, (n, 3)).astype(np.float32),
                      np.exp(rng.normal(-4, 0.5, (n, 3))).astype(np.float32), q,
                      rng.uniform(0.05, 0.95, n).astype(np.float32), sh)  # fmt: skip


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    for fn in variants.values():
        fn()  # warm-up: page cache, numba JIT
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(timed(variants[name]))
    return samples


def load_holoscope(path: Path) -> Callable[[], object]:
    return lambda: open_media(path).frame(0)


def peer_readers() -> dict[str, Callable[[Path], object]]:
    try:
        import gsply
    except ImportError:
        return {}
    return {"ply": gsply.plyread, "compressed-ply": gsply.plyread, "spz": gsply.read_spz}


def write_peer_compressed(cloud: SplatCloud, path: Path) -> bool:
    try:
        import gsply
    except ImportError:
        return False
    sh0 = cloud.sh[:, 0]
    shn = cloud.sh[:, 1:]
    gsply.plywrite(str(path), cloud.means, np.log(cloud.scales), cloud.quats,
                   np.log(cloud.opacities / (1 - cloud.opacities)), sh0, shn, compressed=True)  # fmt: skip
    return True


def bench_load(n: int, repeats: int, tmp: Path) -> list[dict]:
    cloud = synthetic(n, 3)
    peers = peer_readers()
    files: dict[str, Path] = {}
    for name, options in (("scene.ply", {}), ("scene.spz", {}), ("scene-v4.spz", {"version": 4}),
                          ("scene.splat", {}), ("scene.sog", {})):  # fmt: skip
        path = tmp / name
        try:
            spec, writer = writer_for(path)
            writer(cloud if spec.name != "splat" else cloud.with_sh_degree(0), path, **options)
            files[name] = path
        except Exception as exc:  # a writer that does not exist yet is reported, not fatal
            print(f"  (no {name}: {exc})")
    if write_peer_compressed(cloud, tmp / "scene.compressed.ply"):
        files["scene.compressed.ply"] = tmp / "scene.compressed.ply"
    rows = []
    for name, path in files.items():
        fmt = open_media(path).format
        variants = {"holoscope": load_holoscope(path)}
        if fmt in peers:
            variants["gsply"] = (lambda p=path, f=peers[fmt]: f(p))
        result = interleave(variants, repeats)
        size = path.stat().st_size
        med = {k: statistics.median(v) for k, v in result.items()}
        row = {"file": name, "format": fmt, "bytes": size, "splats": n,
               "holoscope_ms": med["holoscope"] * 1e3, "holoscope_min_ms": min(result["holoscope"]) * 1e3,
               "holoscope_MBps": size / med["holoscope"] / 1e6, "holoscope_Msplats": n / med["holoscope"] / 1e6}  # fmt: skip
        if "gsply" in med:
            row.update(peer="gsply", peer_ms=med["gsply"] * 1e3, peer_MBps=size / med["gsply"] / 1e6,
                       ratio=med["holoscope"] / med["gsply"])  # fmt: skip
        rows.append(row)
    return rows


def rotation_angle_deg(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    dot = np.abs(np.sum(q1.astype(np.float64) * q2, axis=1)).clip(0, 1)
    return np.degrees(2 * np.arccos(dot))


def bench_round_trips(tmp: Path) -> list[dict]:
    rows = []
    for sample in ("guitar.compressed.ply", "sh3-64.compressed.ply"):
        src_path = SAMPLES / "splats" / sample
        if not src_path.is_file():
            print(f"  (sample {sample} not found; skipping round trips)")
            continue
        src = open_media(src_path).frame(0)
        extent = float(np.linalg.norm(src.means.max(0) - src.means.min(0)))
        for name, options in (("rt.ply", {}), ("rt.spz", {}), ("rt-v4.spz", {"version": 4}), ("rt.splat", {}), ("rt.sog", {})):
            path = tmp / f"{Path(sample).stem}-{name}"
            try:
                spec, writer = writer_for(path)
                writer(src, path, **options)
                back = open_media(path).frame(0)
            except Exception as exc:
                print(f"  (round trip {name}: {exc})")
                continue
            if back.count != src.count:
                print(f"  (round trip {name}: count {back.count} != {src.count})")
                continue
            # Writers may reorder splats (Morton / size sort): match by nearest original position.
            order = _match(src.means, back.means)
            b = back.subset(order)
            # Colours as displayed (0..1): formats store 8-bit colour, so out-of-range DC clips.
            rgb_a, rgb_b = np.clip(src.base_colors(), 0, 1), np.clip(b.base_colors(), 0, 1)
            k = min(src.sh.shape[1], b.sh.shape[1])
            dlog = np.abs(np.log(b.scales) - np.log(src.scales))
            row = {
                "sample": sample, "writer": spec.name + (f" v{options['version']}" if options else ""),
                "bytes": path.stat().st_size, "bytes_per_splat": path.stat().st_size / src.count,
                "position_max_rel": float(np.abs(b.means - src.means).max() / extent),
                "log_scale_p99": float(np.percentile(dlog, 99)),
                "log_scale_max": float(dlog.max()),
                "psnr_db": render_psnr(src, b),
                "rotation_max_deg": float(rotation_angle_deg(src.quats, b.quats).max()),
                "opacity_max": float(np.abs(b.opacities - src.opacities).max()),
                "color_max": float(np.abs(rgb_a - rgb_b).max()),
                "sh_rest_max": float(np.abs(b.sh[:, 1:k] - src.sh[:, 1:k]).max()) if k > 1 else None,
                "sh_degree_kept": b.sh_degree,
            }  # fmt: skip
            rows.append(row)
    return rows


def render_psnr(a: SplatCloud, b: SplatCloud) -> float:
    """Lowest PSNR over three orbit views (320x240) of ``b`` rendered against ``a``."""
    from holoscope.core.camera import Camera, auto_near
    from holoscope.render.export import SplatFrameRenderer, default_orbit
    from holoscope.render.gl.splat_renderer import RenderSettings

    settings = RenderSettings(sh_degree_limit=min(a.sh_degree, b.sh_degree))
    orbit = default_orbit(a, fov_y=50, aspect=4 / 3)
    ra, rb = SplatFrameRenderer(a), SplatFrameRenderer(b)
    try:
        worst = float("inf")
        for azimuth in (0.0, 2.0, 4.0):
            orbit.azimuth = azimuth
            cam = Camera(320, 240, 50, orbit.camera_to_world(), near=auto_near(orbit.distance))
            x, y = np.clip(ra.render(cam, settings), 0, 1), np.clip(rb.render(cam, settings), 0, 1)
            mse = float(np.mean((x - y) ** 2))
            worst = min(worst, float("inf") if mse == 0 else 10 * np.log10(1 / mse))
        return worst
    finally:
        ra.release()
        rb.release()


def _match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each splat of ``a``, the index of the same splat in ``b``: writers may reorder
    (.splat sorts by size, SOG by Morton code), so match by nearest position (KD-tree)."""
    if len(a) == len(b) and np.allclose(a, b, atol=1e-3 * (np.ptp(a) + 1e-9)):
        return np.arange(len(a))
    from scipy.spatial import cKDTree  # benchmark-only dependency

    return cKDTree(b).query(a)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-load", action="store_true", help="only the round-trip table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="holoscope-formats-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"== load throughput, {args.splats:,} synthetic splats (SH 3 where the format holds SH), "
              f"warm cache, {args.repeats} interleaved repeats")  # fmt: skip
        load = [] if args.skip_load else bench_load(args.splats, args.repeats, tmp)
        print(f"{'file':<22}{'format':<16}{'MB':>8}{'holoscope ms':>14}{'MB/s':>8}{'Msplat/s':>10}{'gsply ms':>10}{'ratio':>8}")
        for r in load:
            peer = f"{r['peer_ms']:>10.1f}{r['ratio']:>7.2f}x" if "peer" in r else f"{'-':>10}{'-':>8}"
            print(f"{r['file']:<22}{r['format']:<16}{r['bytes'] / 1e6:>8.1f}{r['holoscope_ms']:>14.1f}"
                  f"{r['holoscope_MBps']:>8.0f}{r['holoscope_Msplats']:>10.2f}{peer}")  # fmt: skip
        print("   ratio = holoscope time / gsply time (< 1: holoscope faster)")
        print("\n== round trips of real samples (errors: max over all splats)")
        trips = bench_round_trips(tmp)
        print(f"{'sample':<24}{'writer':<12}{'bytes':>10}{'B/splat':>9}{'pos/extent':>12}{'dlogs p99':>10}"
              f"{'dlogs max':>10}{'rot deg':>9}{'opacity':>9}{'colour':>8}{'SH rest':>9}{'PSNR dB':>9}")  # fmt: skip
        for r in trips:
            sh = f"{r['sh_rest_max']:>9.4f}" if r["sh_rest_max"] is not None else f"{'-':>9}"
            print(f"{r['sample']:<24}{r['writer']:<12}{r['bytes']:>10,}{r['bytes_per_splat']:>9.1f}"
                  f"{r['position_max_rel']:>12.2e}{r['log_scale_p99']:>10.4f}{r['log_scale_max']:>10.3f}"
                  f"{r['rotation_max_deg']:>9.3f}{r['opacity_max']:>9.4f}{r['color_max']:>8.4f}{sh}{r['psnr_db']:>9.1f}")  # fmt: skip
        print("   errors are maxima over all splats; dlogs = |change of ln(scale)|; colour = displayed 0..1 colour;")
        print("   PSNR = lowest of 3 orbit views (320x240) of the re-read scene against the original")
        if args.json:
            args.json.write_text(json.dumps({"load": load, "round_trips": trips}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
