"""Hash-grid scene sizes (issue 11): holoscope's .hgz at several bit depths, with and without
pruning, against the fp16 .ingp instant-ngp writes, plus the distortion each one costs.

Sources: a snapshot given on the command line (.ingp, .msgpack or .hgz; image mode needs
``--image-size WxH``), or by default two generated scenes:

- ``image``: ``fit_image`` (holoscope's instant-ngp image-mode training) on the shared samples'
  ``images/albert.exr`` downsampled to ``--image-side`` (default 256; a procedural picture when
  the samples are missing), 16 levels x 2 features, 2^``--image-log2`` entries (default 16),
  ``--steps`` steps. A trained table: the statistics compression depends on are real.
- ``nerf`` (sizes only: its MLPs are random, so no distortion is scored): a synthetic NeRF in
  instant-ngp's current config (8 levels x 4 features, aabb_scale
  4 as fox, 2^``--nerf-log2`` entries, default 17): Student-t tables growing with the level, a
  density grid of two blobs, and every entry no occupied sample reaches left at instant-ngp's
  initialisation (uniform +-1e-4; ``--untouched init``, the default), as training leaves entries
  that never receive a gradient, or holding values like the rest (``--untouched trained``: entries
  trained while the early occupancy grid still covered empty space, then abandoned). Pruning gains
  lie between the two: measure real scenes.

Distortion: image mode, PSNR of the decoded scene's render against the original's (both through
``render_image`` at the image size, [0, 1]); NeRF, PSNR of the field's colour at points in
occupied cells (random view directions) and the mean |log-density| error there.

Reference sizes: the source as given, the fp16 .ingp holoscope's writer makes of it (gzip, as
instant-ngp saves, density grid included), and the raw fp16 parameters.

The stream ablation (``--ablation``, on by default) re-codes the scene's whole tables at each bit
depth in the variants the format considered, zstd 19 throughout, against the order-0 entropy of
the codes (the bound of any static per-level coder without context).

    python tests/bench/bench_hashgrid_size.py [SNAPSHOT] [--image-size WxH] [--bits 8,6,4] [--json out.json]
    python tests/bench/bench_hashgrid_size.py --only image --steps 400 --image-side 256
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zstandard

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.hashgrid import hgz  # noqa: E402
from holoscope.codecs.hashgrid import hgz_quant as hq  # noqa: E402
from holoscope.codecs.hashgrid.msgpack import packb, unpackb  # noqa: E402
from holoscope.codecs.hashgrid.occupancy import GRID_SIZE, cascade_of, cell_of, grid_to_morton  # noqa: E402
from holoscope.codecs.hashgrid.occupancy import max_cascade, occupancy_of  # noqa: E402
from holoscope.codecs.hashgrid.snapshot import GRID_INPUT_DIMS, Snapshot, open_snapshot, parse_snapshot  # noqa: E402
from holoscope.codecs.hashgrid.writer import NerfExtras, SnapshotConfig, snapshot_document, write_snapshot  # noqa: E402
from tests.bench.bench_foundation import print_table  # noqa: E402

ZSTD = zstandard.ZstdCompressor(level=19)


def samples_dir() -> Path:
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    return Path(env) if env else _ROOT.parent / "shared" / "samples"


def load(document: dict, image_size=None) -> Snapshot:
    return parse_snapshot(unpackb(packb(document)), image_size=image_size)


# --- sources --------------------------------------------------------------------------------------


def generated_image(side: int, log2: int, steps: int, seed: int) -> tuple[Snapshot, tuple[int, int], str]:
    from holoscope.codecs.hashgrid.dataset import linear_to_srgb
    from holoscope.codecs.hashgrid.neural.train_image import fit_image

    albert = samples_dir() / "images" / "albert.exr"
    if albert.exists():
        from holoscope.codecs.hashgrid.dataset import load_image_target

        target = torch.from_numpy(load_image_target(albert)).permute(2, 0, 1)[None]
        target = torch.nn.functional.interpolate(target, size=(side, side), mode="area")[0].permute(1, 2, 0).numpy()
        name = f"albert {side}x{side}"
    else:
        y, x = np.mgrid[0:side, 0:side] / side
        target = linear_to_srgb(np.stack([x * y, np.sin(9 * x) ** 2, (x + y) / 2], -1)).astype(np.float32)
        name = f"procedural {side}x{side}"
    cfg = SnapshotConfig(mode="image", n_levels=16, features=2, log2_table=log2, base_resolution=16, hidden=2)
    t = time.perf_counter()
    result = fit_image(target, config=cfg, steps=steps, batch=min(1 << 14, side * side), seed=seed)
    print(f"   trained {name}: {steps} steps, {time.perf_counter() - t:.0f} s, {result.psnr:.2f} dB against the target")
    return load(result.document, (side, side)), (side, side), f"{name}, L16 F2 2^{log2}, {steps} steps ({result.psnr:.1f} dB)"


def generated_nerf(log2: int, aabb_scale: int, seed: int, untouched: str = "init") -> tuple[Snapshot, None, str]:
    cfg = SnapshotConfig(mode="nerf", n_levels=8, features=4, log2_table=log2, aabb_scale=aabb_scale)
    mlps, levels, features, _, _ = cfg.layout()
    rng = np.random.default_rng(seed)
    cascades = max_cascade(aabb_scale) + 1
    i = (np.arange(GRID_SIZE) + 0.5) / GRID_SIZE
    unit = np.stack(np.meshgrid(i, i, i, indexing="ij"), -1).reshape(-1, 3)
    density = []
    for m in range(cascades):
        p = (unit - 0.5) * 2.0**m + 0.5
        blob = (np.linalg.norm(p - (0.5, 0.45, 0.5), axis=1) < 0.3) | (np.linalg.norm((p - (0.5, 0.1, 0.5)) / (1.6, 0.15, 1.6), axis=1) < 1)
        density.append(grid_to_morton(np.where(blob, 1.0, 0.0).astype(np.float32).reshape((GRID_SIZE,) * 3)))
    density = np.concatenate(density)
    tables = [rng.standard_t(4, (level.size, features)) * 0.02 * (1 + level.index / 3) for level in levels]
    params = np.concatenate([rng.normal(0, 0.1, sum(m.params for m in mlps))] + [t.ravel() for t in tables])
    snap = load(snapshot_document(cfg, params, nerf=NerfExtras(density_grid=density)))
    masks = hq.reachable_entries(snap.levels, occupancy_of(snap), aabb_scale)
    grid = params[sum(m.params for m in mlps):].reshape(-1, features)
    for level, mask in zip(levels, masks):
        if mask is not None and untouched == "init":
            block = grid[level.offset : level.offset + level.size]
            block[~mask] = rng.uniform(-1e-4, 1e-4, (int((~mask).sum()), features))
    snap = load(snapshot_document(cfg, params, nerf=NerfExtras(density_grid=density)))
    return snap, None, f"synthetic NeRF, L8 F4 2^{log2}, aabb_scale {aabb_scale}, unreached entries {untouched} (no PSNR: random MLPs)"


def given(path: Path, image_size) -> tuple[Snapshot, tuple[int, int] | None, str]:
    if hgz.is_hgz(path.read_bytes()[:4]):
        snap = hgz.read_hgz(path)
        size = snap.document["snapshot"].get(hgz.IMAGE_SIZE_KEY)
        return snap, tuple(size) if size else None, path.name
    return open_snapshot(path, image_size=image_size), image_size, path.name


# --- distortion -----------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(1 / mse)


class Distortion:
    """What a decoded scene is compared on: the original's render (image) or its field at
    points inside occupied space (NeRF)."""

    def __init__(self, snapshot: Snapshot, image_size, points: int = 1 << 15, seed: int = 0) -> None:
        self.mode, self.image_size = snapshot.mode, image_size
        if self.mode == "image":
            from holoscope.codecs.hashgrid.neural.network import render_image

            self.render = render_image
            self.want = render_image(snapshot, *image_size)
        elif self.mode == "nerf":
            self.points, self.dirs = self._occupied(snapshot, points, seed)
            self.want = self._field(snapshot)

    @staticmethod
    def _occupied(snapshot: Snapshot, n: int, seed: int):
        occupied = occupancy_of(snapshot)
        rng = np.random.default_rng(seed)
        if occupied is None:
            s = min(snapshot.aabb_scale, 128)
            return rng.uniform(0.5 - s / 2, 0.5 + s / 2, (n, 3)).astype(np.float32), rng.normal(size=(n, 3))
        cells = np.argwhere(occupied[0])
        pick = cells[rng.integers(0, len(cells), n)]
        points = ((pick + rng.uniform(0, 1, pick.shape)) / GRID_SIZE).astype(np.float32)
        cascade = cascade_of(points, occupied.shape[0] - 1)
        c, inside = cell_of(points, cascade)
        keep = inside & occupied[cascade, *np.clip(c, 0, GRID_SIZE - 1).T]
        dirs = rng.normal(size=(int(keep.sum()), 3))
        return points[keep], dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def _field(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
        from holoscope.codecs.hashgrid.neural.field import FieldLayout, NerfField
        from holoscope.codecs.hashgrid.neural.network import parameters

        field = NerfField(FieldLayout.of(snapshot), parameters(snapshot))
        with torch.inference_mode():
            raw = field.raw_density(torch.from_numpy(self.points))
            rgb = field.colour(raw, torch.from_numpy(self.dirs.astype(np.float32)))
        return raw[:, 0].numpy(), rgb.numpy()

    def of(self, decoded: Snapshot) -> dict:
        if self.mode == "image":
            return {"psnr": psnr(self.render(decoded, *self.image_size), self.want)}
        if self.mode == "nerf":
            log_density, rgb = self._field(decoded)
            return {"psnr": psnr(rgb, self.want[1]), "log_density_error": float(np.mean(np.abs(log_density - self.want[0])))}
        return {}


# --- stream ablation ------------------------------------------------------------------------------


def entropy_bytes(codes: np.ndarray) -> float:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) * codes.size / 8


def ablation(snapshot: Snapshot, bits: int) -> dict[str, int]:
    """Bytes of the whole tables (no pruning) under each coding variant at ``bits``."""
    params = np.frombuffer(snapshot.params, np.float16 if snapshot.params_type == "__half" else np.float32)
    grid = params[snapshot.grid_offset :].astype(np.float32).reshape(-1, snapshot.features)
    dims = GRID_INPUT_DIMS[snapshot.mode]
    z = lambda b: len(ZSTD.compress(b))  # noqa: E731
    out = {k: 0 for k in ("as written", "one frame", "per level", "no packing", "feature-major", "bit-planes",
                          "predictor where smaller", "predictor always (dense)", "order-0 entropy")}  # fmt: skip
    joined = []
    for level in snapshot.levels:
        codes, _, _ = hq.quantise(grid[level.offset : level.offset + level.size], bits)
        streams = hq.pack_codes(codes, bits)
        plain = sum(z(s) for s in streams)
        joined.append(b"".join(streams))
        out["per level"] += plain
        out["no packing"] += z(codes.astype(np.uint8 if bits <= 8 else "<u2").tobytes())
        out["feature-major"] += sum(z(s) for s in hq.pack_codes(codes.T.copy(), bits))
        out["bit-planes"] += z(b"".join(np.packbits((codes >> b) & 1).tobytes() for b in range(bits)))
        predicted = plain
        if level.dense:
            predicted = sum(z(s) for s in hq.pack_codes(hq.predict_rows(codes, level, dims, bits), bits))
        out["predictor always (dense)"] += predicted
        out["predictor where smaller"] += min(plain, predicted)
        out["order-0 entropy"] += round(entropy_bytes(codes))
    out["one frame"] = z(b"".join(joined))
    del out["as written"]
    return out


# --- the run --------------------------------------------------------------------------------------


def measure(snapshot: Snapshot, image_size, label: str, bits_list: list[int], tmp: Path, do_ablation: bool) -> dict:
    print(f"\n-- {label}: {snapshot.mode}, {snapshot.n_params:,} parameters ({snapshot.params_type})")
    ingp = tmp / "ref.ingp"
    document = dict(snapshot.document)
    document["snapshot"] = {k: v for k, v in document["snapshot"].items() if not k.startswith("holoscope_")}
    if snapshot.params_type != "__half":
        values = np.frombuffer(snapshot.params, np.float32).astype(np.float16)
        document["snapshot"] = {**document["snapshot"], "params_type": "__half", "params_binary": values.tobytes()}
    ingp_bytes = write_snapshot(ingp, document)
    fp16 = 2 * snapshot.n_params
    distortion = Distortion(snapshot, image_size) if "no PSNR" not in label else None
    rows, points = [], []
    for bits in bits_list:
        for prune in (False, True):
            if prune and snapshot.mode != "nerf":
                continue
            path = tmp / f"b{bits}{'p' if prune else ''}.hgz"
            t = time.perf_counter()
            report = hgz.write_hgz(snapshot, path, bits=bits, prune=prune, image_size=image_size)
            write_s = time.perf_counter() - t
            t = time.perf_counter()
            decoded = hgz.read_hgz(path)
            read_s = time.perf_counter() - t
            quality = distortion.of(decoded) if distortion else {}
            point = {**report, "prune": prune, "write_s": write_s, "read_s": read_s, **quality,
                     "vs_ingp": ingp_bytes / report["bytes"], "vs_fp16_params": fp16 / report["bytes"]}  # fmt: skip
            point.pop("path")
            points.append(point)
            rows.append([f"{bits}", "yes" if prune else "no", f"{report['bytes']:,}", f"{point['vs_ingp']:.1f}x",
                         f"{report['bits_per_param']:.2f}", f"{report['grid_bits_per_param']:.2f}",
                         f"{100 * report['kept_params'] / report['grid_params']:.1f}%", f"{report['grid']:,}",
                         f"{report['mlp']:,}", f"{report['occupancy']:,}", f"{report['header']:,}",
                         f"{quality.get('psnr', float('nan')):.2f}", f"{write_s:.1f}", f"{read_s:.1f}"])  # fmt: skip
    print_table(f"{label}: .hgz sizes (source {snapshot.params_type}; fp16 .ingp {ingp_bytes:,} bytes, "
                f"fp16 params {fp16:,} bytes)",
                ["bits", "prune", "bytes", "vs .ingp", "bits/param", "grid b/p", "kept", "grid", "MLP", "occupancy",
                 "header", "PSNR dB", "write s", "read s"], rows)  # fmt: skip
    what = "render vs original render" if snapshot.mode == "image" else "field colour at occupied points vs original"
    print(f"   PSNR: {what}. vs .ingp: the fp16 .ingp's bytes / this file's. kept: grid entries stored.")
    result = {"label": label, "mode": snapshot.mode, "n_params": snapshot.n_params, "ingp_bytes": ingp_bytes,
              "fp16_params_bytes": fp16, "points": points}  # fmt: skip
    if do_ablation:
        table, result["ablation"] = [], {}
        for bits in bits_list:
            sizes = ablation(snapshot, bits)
            result["ablation"][bits] = sizes
            base = sizes["per level"]
            table.append([f"{bits}"] + [f"{v:,} ({100 * (v / base - 1):+.1f}%)" for v in sizes.values()])
        print_table(f"{label}: whole-table bytes per coding variant (zstd 19; % vs 'per level')",
                    ["bits", *next(iter(result["ablation"].values())).keys()], table)  # fmt: skip
        print("   per level: a zstd frame per level, 2..4-bit codes packed per byte, byte planes past 8 bits (the "
              "format's base). no packing: one byte (or LE uint16) per code. predictor: the row-median predictor.")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", nargs="?", help=".ingp / .msgpack / .hgz (default: the generated scenes)")
    parser.add_argument("--image-size", help="WxH of an image-mode snapshot")
    parser.add_argument("--bits", default="8,6,4", help="bit depths (default 8,6,4)")
    parser.add_argument("--only", choices=("image", "nerf"), help="one generated scene")
    parser.add_argument("--image-side", type=int, default=256, help="generated image side (default 256)")
    parser.add_argument("--image-log2", type=int, default=16, help="generated image table size log2 (default 16)")
    parser.add_argument("--steps", type=int, default=300, help="generated image training steps (default 300)")
    parser.add_argument("--nerf-log2", type=int, default=17, help="generated NeRF table size log2 (default 17)")
    parser.add_argument("--aabb-scale", type=int, default=4, help="generated NeRF aabb_scale (default 4)")
    parser.add_argument("--untouched", choices=("init", "trained"), default="init",
                        help="generated NeRF: what entries no occupied sample reaches hold (default init)")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false", help="skip the stream ablation")
    parser.add_argument("--quick", action="store_true", help="smoke run: small generated scenes, bits 8 and 4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    bits_list = [int(b) for b in args.bits.split(",")]
    if args.quick:
        args.image_side, args.image_log2, args.steps, args.nerf_log2, bits_list = 64, 12, 40, 13, [8, 4]
    sources = []
    if args.snapshot:
        size = tuple(int(v) for v in args.image_size.lower().split("x")) if args.image_size else None
        sources.append(given(Path(args.snapshot), size))
    else:
        if args.only in (None, "image"):
            sources.append(generated_image(args.image_side, args.image_log2, args.steps, args.seed))
        if args.only in (None, "nerf"):
            sources.append(generated_nerf(args.nerf_log2, args.aabb_scale, args.seed, args.untouched))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for snap, size, label in sources:
            results.append(measure(snap, size, label, bits_list, Path(tmp), args.ablation))
    if args.json:
        Path(args.json).write_text(json.dumps({"bits": bits_list, "torch_threads": torch.get_num_threads(),
                                               "scenes": results}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
