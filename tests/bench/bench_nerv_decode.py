"""NeRV decode speed (issue 10's decode target): holoscope's fast CPU path against a plain
eager-mode fp32 reference of the same network, in the same run.

Two HNeRV decoders: the official bunny checkpoint at 640x1280 (from the shared samples) and a
360p one built from a NervConfig with random weights of realistic size (about 1.5M parameters,
strides 5,2,2,2 from a 16x9x16 embedding). For each, at batch 1 and batch 4, interleaved repeats
of

- reference: the module as built (default memory format, float32) called in ``inference_mode``;
- holoscope: ``decode(prepare(module), ...)`` (channels-last, bf16 blocks where the CPU has
  native bf16, float32 stem and head).

It reports frames per second, the speed ratio and the PSNR cost: against the fp32 output, and for
bunny the change of the per-frame PSNR against the ground-truth PNGs (rows 40..679; float output
and output rounded to 8 bits). Target: at least 1.5x the reference everywhere, and every bunny
frame's PSNR moved by less than 0.05 dB; exit code 1 if not met.

``--device cuda`` runs the same comparison on an NVIDIA GPU (reference: fp32 eager on the GPU;
holoscope: fp16 blocks, channels-last; timed with ``torch.cuda.synchronize``) and adds a
1080x1920 HNeRV of about 3M parameters, whose target is at least 60 frames per second.

    python tests/bench/bench_nerv_decode.py [--quick] [--repeats N] [--json out.json] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from holoscope.codecs.nerv.config import NervConfig  # noqa: E402
from holoscope.codecs.nerv.neural.checkpoint import open_decoder  # noqa: E402
from holoscope.codecs.nerv.neural.model import bf16_pays, build_decoder, decode, prepare  # noqa: E402
from tests.bench.bench_foundation import Variant, print_table, run_interleaved, variant_json  # noqa: E402

TARGET_RATIO = 1.5
TARGET_PSNR_DB = 0.05
TARGET_GPU_FPS = 60.0  # 1080p, 3M parameters, on an NVIDIA GPU
BUNNY = "hnerv-bunny-quant_vid.pth"
BUNNY_FRAMES = (1, 61, 132)


def samples_dir() -> Path:
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    return Path(env) if env else _ROOT.parent / "shared" / "samples"


def hnerv_360p(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    """A 360x640 HNeRV with random weights of about 1.5M parameters (channels reduced by 1.2 per
    block, kernels 1,3,5,5 as in the official configs) and random embeddings."""
    fc_dim, channels = 116, []
    c = fc_dim
    for _ in range(4):
        c = max(round(c / 1.2), 12)
        channels.append(c)
    config = NervConfig(family="hnerv", height=360, width=640, frame_count=8, fps=25.0, fc_dim=fc_dim, fc_h=1,
                        fc_w=1, strides=(5, 2, 2, 2), kernels=(1, 3, 5, 5), channels=tuple(channels),
                        head_kernel=3, embed_channels=16, embed_h=9, embed_w=16)  # fmt: skip
    torch.manual_seed(seed)
    module = build_decoder(config).eval()  # torch's default init: the speed, not the picture, matters
    return module, torch.randn(config.embedding_shape())


def hnerv_1080p(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    """A 1080x1920 HNeRV of about 3M parameters (strides 5,4,3,2 from a 16x9x16 embedding, as
    ``encode nerv`` would build for ``--model-size 3``), random weights and embeddings."""
    from holoscope.codecs.nerv.neural.train import channels_for, kernels_for, size_fc_dim

    strides = (5, 4, 3, 2)
    fc_dim = size_fc_dim(3.0, strides, 16 * 9 * 16 * 8)
    config = NervConfig(family="hnerv", height=1080, width=1920, frame_count=8, fps=30.0, fc_dim=fc_dim, fc_h=1,
                        fc_w=1, strides=strides, kernels=kernels_for(4), channels=channels_for(fc_dim, 4),
                        head_kernel=3, embed_channels=16, embed_h=9, embed_w=16)  # fmt: skip
    torch.manual_seed(seed)
    return build_decoder(config).eval(), torch.randn(config.embedding_shape())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else -10 * math.log10(mse)


def _synced(fn, device: torch.device):
    """``fn`` timed to the end of its GPU work, not to the end of its launch."""
    if device.type != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def reference_decode(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(inputs).clamp(0.0, 1.0)


def bench_model(name: str, module, embeddings, repeats: int, rows: list, results: list,
                device: torch.device = torch.device("cpu"), min_fps: float | None = None) -> bool:  # fmt: skip
    module = module.to(device)
    fast = prepare(module, device)
    ok = True
    for batch in (1, 4):
        x = embeddings[:batch].to(device)
        ref = Variant("reference fp32", _synced(lambda: reference_decode(module, x), device))
        hol = Variant(f"holoscope {fast.fast or 'fp32'}", _synced(lambda: decode(fast, x, batch=batch, device=device),
                                                                  device))  # fmt: skip
        run_interleaved([ref, hol], repeats)
        r = ref.median / hol.median
        cost = psnr(decode(fast, x, batch=batch, device=device), reference_decode(module, x))
        met = r >= TARGET_RATIO and (min_fps is None or batch / hol.median >= min_fps)
        ok &= met
        rows.append([f"{name} b{batch}", f"{batch / ref.median:.2f}", f"{batch / hol.median:.2f}", f"{r:.2f}x",
                     f"{cost:.1f}", "ok" if met else "MISSED"])  # fmt: skip
        results.append({"model": name, "batch": batch, "ratio": r, "psnr_vs_fp32_db": cost,
                        "variants": [variant_json(v, fps=batch / v.median) for v in (ref, hol)]})  # fmt: skip
    return ok


def bunny_psnr(module, embeddings, folder: Path) -> tuple[list, bool]:
    from PIL import Image

    pngs = [folder / f"bunny-{n:04d}.png" for n in BUNNY_FRAMES]
    if not all(p.is_file() for p in pngs):
        print("bunny ground-truth PNGs missing: PSNR check skipped")
        return [], True
    x = embeddings[[n - 1 for n in BUNNY_FRAMES]]
    ref = reference_decode(module, x)
    out = decode(prepare(module, "cpu"), x, batch=1)
    rows, ok = [], True
    for i, (n, png) in enumerate(zip(BUNNY_FRAMES, pngs)):
        truth = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"))[40:680].astype(np.float32) / 255.0)
        truth = truth.permute(2, 0, 1)
        row = [f"frame {n}"]
        for a, b in ((ref[i], out[i]), ((ref[i] * 255).round() / 255, (out[i] * 255).round() / 255)):
            pa, pb = psnr(a, truth), psnr(b, truth)
            ok &= abs(pb - pa) < TARGET_PSNR_DB
            row += [f"{pa:.3f}", f"{pb:.3f}", f"{pb - pa:+.4f}"]
        rows.append(row)
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    else:
        cpu = platform.processor() or platform.machine()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}, native bf16: {bf16_pays('cpu')}")
    rows, results, ok = [], [], True
    module, embeddings = hnerv_360p()
    print(f"360p HNeRV: {sum(p.numel() for p in module.parameters()):,} parameters (random weights)")
    ok &= bench_model("360x640 random 1.5M", module, embeddings, repeats, rows, results, device)
    if device.type == "cuda":
        module, embeddings = hnerv_1080p()
        print(f"1080p HNeRV: {sum(p.numel() for p in module.parameters()):,} parameters (random weights)")
        ok &= bench_model("1080x1920 random 3M", module, embeddings, repeats, rows, results, device,
                          min_fps=TARGET_GPU_FPS)  # fmt: skip
    checkpoint = samples_dir() / "nerv" / BUNNY
    psnr_rows = []
    if checkpoint.is_file():
        module, embeddings, _ = open_decoder(checkpoint)
        module.eval()
        ok &= bench_model("640x1280 bunny", module, embeddings, repeats, rows, results, device)
        psnr_rows, psnr_ok = bunny_psnr(module.cpu(), embeddings, checkpoint.parent)
        ok &= psnr_ok
    else:
        print(f"{checkpoint.name} not in the samples (HOLOSCOPE_SAMPLES): bunny skipped")
    print_table(f"NeRV decode, fps (median of {repeats}), target >= {TARGET_RATIO}x",
                ["model", "ref fps", "fast fps", "ratio", "PSNR vs fp32 dB", "target"], rows)  # fmt: skip
    if psnr_rows:
        title = f"bunny PSNR against the ground truth (rows 40..679), target |delta| < {TARGET_PSNR_DB} dB"
        header = ["frame", "fp32", "fast", "delta", "fp32 8-bit", "fast 8-bit", "delta 8-bit"]
        print_table(title, header, psnr_rows)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "psnr": psnr_rows, "ok": ok}, indent=2))
    print("\ntarget met" if ok else "\ntarget MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
