"""Hash-grid rendering speed (issue 11): holoscope's hash encoding against a plain per-level,
per-corner torch reference of the same encoding, in the same run, through the same networks.

- image mode: ``network.render_image`` of an image-mode snapshot with instant-ngp's image config
  (L16 F2, log2 table 24, two 64-wide hidden layers) at albert's 1024x1024 layout (every level
  dense, about 1.43M parameters), random seeded weights written through ``writer.py`` as fp16;
  pixels per second;
- NeRF: ``SceneRenderer.render`` of NeRF snapshots with both grid configs instant-ngp has shipped
  (L8 F4 and L16 F2) at a realistic table size (log2 19), random seeded weights, a density grid
  occupying a ball of radius 0.25 in the unit cube, a camera 1.2 units from its centre; rays per
  second (the march, its skipping and both MLPs included).

The reference is ``reference_encode`` below: for each level, for each of the 2^D corners: index,
gather, weight, accumulate, in int64. Image mode: ``reference_render_image``, render_image's loop
as it was (batches of 2^16) with that encoding and the same MLP (``run_mlp``). NeRF: the same
renderer with the reference bound to the ``encode`` name of the network modules; every other step
is shared. Each pair is first checked to draw the same picture (max abs difference at most 1e-4,
relative above 1), then timed in interleaved repeats. Target: holoscope at least 2x the
reference's speed for both on CPU; exit code 1 if not met. For context (no target) the NeRF field
alone (encoding and both MLPs) is also timed on every sample the march evaluated.

On a machine shared with other work, ``--threads 1``: torch's threads wait on each other when
another process holds a core, and the march's many small operations then take 10-20x longer.

``--device cuda`` runs the comparison on an NVIDIA GPU and adds holoscope's frame time at
1920x1080 (image mode and both NeRF configs); without CUDA it says so and exits 0.

    python tests/bench/bench_hashgrid_render.py [--quick] [--repeats N] [--threads N] [--json out.json]
                                                [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.hashgrid import msgpack  # noqa: E402
from holoscope.codecs.hashgrid.levels import Level  # noqa: E402
from holoscope.codecs.hashgrid.neural import encoding, network  # noqa: E402
from holoscope.codecs.hashgrid.snapshot import Snapshot, parse_snapshot  # noqa: E402
from holoscope.codecs.hashgrid.writer import NerfExtras, SnapshotConfig, snapshot_document  # noqa: E402
from tests.bench.bench_foundation import Variant, print_table, run_interleaved, variant_json  # noqa: E402

TARGET_RATIO = 2.0
MAX_DIFF = 1e-4
ALBERT = (1024, 1024)
PRIMES = (1, 2654435761, 805459861, 3674653429)  # CoherentPrime (hashgrid.md §5.6)
NEURAL = "holoscope.codecs.hashgrid.neural"


def reference_encode(points: torch.Tensor, table: torch.Tensor, levels: tuple[Level, ...],
                     features: int) -> torch.Tensor:  # fmt: skip
    """The plain implementation: one level, then one corner at a time, int64 indices."""
    n, dims = points.shape
    grid = table.view(-1, features)
    out = []
    for level in levels:
        p = points * torch.tensor(level.scale, dtype=torch.float32) + 0.5
        cell = torch.floor(p)
        frac = p - cell
        c = cell.to(torch.int64)
        acc = torch.zeros((n, features), dtype=table.dtype, device=points.device)
        for k in range(1 << dims):
            index = torch.zeros(n, dtype=torch.int64, device=points.device)
            weight = torch.ones(n, dtype=points.dtype, device=points.device)
            for d in range(dims):
                bit = (k >> d) & 1
                corner = c[:, d] + bit
                weight = weight * (frac[:, d] if bit else 1 - frac[:, d])
                if level.dense:
                    index += corner * level.resolution**d
                else:  # uint32 wrap-around: int64 product, low 32 bits
                    index ^= (corner * PRIMES[d]) & 0xFFFFFFFF
            acc += grid[index % level.size + level.offset] * weight[:, None]
        out.append(acc)
    return torch.cat(out, dim=1)


@contextlib.contextmanager
def encode_swapped(fn):
    """Every hash-grid network module's ``encode`` name bound to ``fn`` for the duration."""
    saved = []
    for name in ("network", "field", "renderer"):
        try:
            mod = importlib.import_module(f"{NEURAL}.{name}")
        except ImportError:
            continue
        if getattr(mod, "encode", None) is encoding.encode:
            saved.append(mod)
            mod.encode = fn
    try:
        yield
    finally:
        for mod in saved:
            mod.encode = encoding.encode


def _load(document: dict, image_size=None) -> Snapshot:
    """A document as a reader sees it (packed to MessagePack and parsed back)."""
    return parse_snapshot(msgpack.unpackb(msgpack.packb(document)), image_size=image_size)


def _random_params(config: SnapshotConfig, seed: int, image_size=None) -> np.ndarray:
    """tiny-cuda-nn-like random weights: Xavier-uniform MLP matrices, grid entries uniform in +-0.5
    (a trained grid's range; the speed does not depend on the values)."""
    mlps, levels, features, _, _ = config.layout(image_size)
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(-1, 1, r * c) * np.sqrt(6 / (r + c)) for m in mlps for r, c in m.matrices]
    parts.append(rng.uniform(-0.5, 0.5, config.n_params(image_size) - sum(p.size for p in parts)))
    return np.concatenate(parts).astype(np.float32)


def albert_snapshot(seed: int = 0) -> Snapshot:
    config = SnapshotConfig(mode="image", n_levels=16, features=2, log2_table=24, hidden=2)
    doc = snapshot_document(config, _random_params(config, seed, ALBERT), params_type="__half")
    return _load(doc, ALBERT)


def nerf_snapshot(grid: str, seed: int = 0) -> Snapshot:
    from tests.hashgrid_data import density_grid_of

    n_levels, features = {"L8F4": (8, 4), "L16F2": (16, 2)}[grid]
    config = SnapshotConfig(mode="nerf", n_levels=n_levels, features=features, log2_table=19, aabb_scale=1)
    ball = density_grid_of(lambda p: np.linalg.norm(p - 0.5, axis=1) <= 0.25)
    doc = snapshot_document(config, _random_params(config, seed), params_type="__half",
                            nerf=NerfExtras(density_grid=ball))  # fmt: skip
    return _load(doc)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def compare(name: str, unit: str, count: int, reference, render, repeats: int, rows: list, results: list) -> bool:
    """Time ``reference()`` and ``render()`` interleaved, after checking they draw the same picture
    (or field values: the difference is relative above 1)."""
    want, got = _flat(reference()), _flat(render())
    diff = float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max())
    ref, hol = Variant("reference", reference), Variant("holoscope", render)
    run_interleaved([ref, hol], repeats, warmup=0)  # the check above warmed both
    r = ref.median / hol.median
    met = r >= TARGET_RATIO and diff <= MAX_DIFF
    rows.append([name, f"{count / ref.median:,.0f}", f"{count / hol.median:,.0f}", _ms(ref.median), _ms(hol.median),
                 f"{r:.2f}x", f"{diff:.1e}", "ok" if met else "MISSED"])  # fmt: skip
    results.append({"case": name, "unit": unit, "count": count, "ratio": r, "max_abs_diff": diff,
                    "variants": [variant_json(v, per_second=count / v.median) for v in (ref, hol)]})  # fmt: skip
    return met


def _flat(out) -> np.ndarray:
    """An image, or a tuple of tensors, as one float64 array."""
    parts = out if isinstance(out, tuple) else (out,)
    return np.concatenate([np.asarray(p.cpu() if torch.is_tensor(p) else p, np.float64).ravel() for p in parts])


def _synced(fn, device: torch.device):
    """``fn`` timed to the end of its GPU work, not to the end of its launch."""
    if device.type != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def swapped(render):
    """``render`` with the reference encoding in every network module."""

    def run():
        with encode_swapped(reference_encode):
            return render()

    return run


def reference_render_image(snapshot: Snapshot, width: int, height: int, rows: slice, device: torch.device,
                           batch: int = 1 << 16) -> np.ndarray:  # fmt: skip
    """``render_image`` as it was: the same pixel centres and MLP (``run_mlp``), the reference
    encoding, in batches of 2^16 (its best: smaller batches cost it more Python per pixel)."""
    params = network.parameters(snapshot).to(device)
    mats = network.mlp_matrices(snapshot, params)[snapshot.mlps[0].name]
    table = params[snapshot.grid_offset :]
    ys = torch.arange(height, device=device)[rows]
    xs = torch.arange(width, device=device)
    v, u = torch.meshgrid((ys.float() + 0.5) / height, (xs.float() + 0.5) / width, indexing="ij")
    points = torch.stack([u.reshape(-1), v.reshape(-1)], dim=1)
    out = torch.empty((points.shape[0], 3), device=device)
    with torch.inference_mode():
        for start in range(0, points.shape[0], batch):
            features = reference_encode(points[start : start + batch], table, snapshot.levels, snapshot.features)
            out[start : start + batch] = network.run_mlp(features, snapshot.mlps[0], mats)
    return out.clamp_(0, 1).reshape(len(ys), width, 3).cpu().numpy()


def nerf_camera(snapshot: Snapshot, width: int, height: int):
    from tests.hashgrid_data import camera_at

    return camera_at(snapshot, (0.5, 0.5, -0.7), (0.5, 0.5, 0.5), width, height, fov_y=40.0)


def march_samples(renderer, camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample point and direction the field saw while drawing ``camera``."""
    seen, field = [], renderer.marcher.field

    def record(points, dirs):
        seen.append((points, dirs))
        return field(points, dirs)

    renderer.marcher.field = record
    try:
        renderer.render(camera)
    finally:
        renderer.marcher.field = field
    return torch.cat([p for p, _ in seen]), torch.cat([d for _, d in seen])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 repeats, a quarter of the image, smaller NeRF views")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device: nothing to measure")
            return 0
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    else:
        cpu = platform.processor() or platform.machine()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    rows, results, ok = [], [], True

    albert = albert_snapshot()
    print(f"image: albert layout {ALBERT[0]}x{ALBERT[1]}, {albert.n_params:,} parameters, "
          f"{sum(lv.dense for lv in albert.levels)}/{len(albert.levels)} levels dense")  # fmt: skip
    w, h = ALBERT
    rows_drawn = slice(0, h // 4) if args.quick else slice(None)
    count = w * len(range(h)[rows_drawn])
    ok &= compare(f"image {w}x{count // w}", "pixels", count,
                  lambda: reference_render_image(albert, w, h, rows_drawn, device),
                  lambda: network.render_image(albert, w, h, rows=rows_drawn, device=device), repeats, rows, results)

    try:
        from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer
    except ImportError:
        SceneRenderer = None
        print("holoscope.codecs.hashgrid.neural.renderer is not there yet: NeRF skipped")
    nerfs, field_rows = {}, []
    if SceneRenderer is not None:
        vw, vh = (64, 48) if args.quick else (128, 96)
        for grid in ("L8F4", "L16F2"):
            snap = nerf_snapshot(grid)
            renderer = nerfs[grid] = SceneRenderer(snap, device=str(device))
            camera = nerf_camera(snap, vw, vh)
            # render returns a host array: on a GPU the work is done when it returns
            draw = lambda r=renderer, c=camera: r.render(c)  # noqa: E731
            ok &= compare(f"NeRF {grid} {vw}x{vh}", "rays", vw * vh, swapped(draw), draw, repeats, rows, results)
            s = renderer.stats
            print(f"NeRF {grid}: {snap.n_params:,} parameters, {s.samples / max(s.rays, 1):.0f} samples/ray, "
                  f"{s.hits}/{s.rays} rays hit")  # fmt: skip
            # context, no target: the field alone (encoding and both MLPs) on the march's samples
            points, dirs = march_samples(renderer, camera)
            field = _synced(lambda r=renderer: r.field(points, dirs), device)
            with torch.inference_mode():
                compare(f"NeRF {grid} field only", "samples", points.shape[0], swapped(field), field, repeats,
                        field_rows, results)  # fmt: skip

    header = ["case", "ref /s", "holoscope /s", "ref ms", "holoscope ms", "ratio", "max diff", "target"]
    print_table(f"hash-grid rendering, {device.type}, median of {repeats}, target >= {TARGET_RATIO}x", header, rows)
    if field_rows:
        print_table("NeRF field evaluation alone (no target: the march's own cost left out)",
                    header[:-1], [r[:-1] for r in field_rows])  # fmt: skip
    frames = []
    if device.type == "cuda":  # holoscope's frame time at 1080p
        draws = {"image": lambda: network.render_image(albert, 1920, 1080, device=device)}
        for grid, renderer in nerfs.items():
            camera = nerf_camera(renderer.snapshot, 1920, 1080)
            draws[f"NeRF {grid}"] = lambda r=renderer, c=camera: r.render(c)
        for name, draw in draws.items():
            draw()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                draw()  # returns a host array: the GPU work is done
                times.append(time.perf_counter() - t0)
            frames.append([f"{name} 1920x1080", f"{np.median(times) * 1e3:.1f}", f"{1 / np.median(times):.1f}"])
        print_table("holoscope frame time on the GPU", ["case", "ms", "fps"], frames)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "gpu_frames": frames, "ok": ok}, indent=2))
    print("\ntarget met" if ok else "\ntarget MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
