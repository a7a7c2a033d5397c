"""Train an HNeRV model on a clip and write it as a .nerv stream (``holoscope encode nerv``).

Own implementation of the published recipe (nerv.md §2, §5): a ConvNeXt encoder
(:class:`.encoder.TrainingEncoder`: one stage per stride, a stride-sized conv with a channel
LayerNorm, then one block: 7x7 depthwise conv, LayerNorm, MLP d -> 4d -> d with GELU, layer
scale 1e-6, residual; then a 1x1 conv to 16 channels; why not exactly the published layout is
measured in :mod:`.encoder`) maps each frame to a 16 x H/P x W/P embedding, the HNeRV decoder
(:func:`.model.build_decoder`) maps it back. Adam lr 1e-3, warm-up 0.1 -> 1 over the first 10% of iterations then cosine to 0, batch 2,
L2 loss. Afterwards the encoder is dropped: the decoder weights (8 bits) and the embeddings (6
bits, one min/scale for all frames) are quantised and written with :func:`stream.write_nerv`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from holoscope.codecs.nerv import stream
from holoscope.codecs.nerv.config import NervConfig
from holoscope.codecs.nerv.neural.encoder import EMBED_CHANNELS, TrainingEncoder
from holoscope.codecs.nerv.neural.model import build_decoder, official_names
from holoscope.core.errors import InvalidArgument

KS = (1, 5)  # --ks 0_1_5
REDUCE = 1.2
LOWER_WIDTH = 12
LR = 1e-3
BATCH = 2
WARMUP = 0.1
QAT_LR_FRACTION = 0.1  # peak learning rate of the quantisation-aware epochs, as a part of --lr
MIN_PATCH = 4  # the smallest total stride accepted when choosing strides


@dataclass(frozen=True)
class EncodeSummary:
    """What :func:`encode_hnerv` wrote."""

    config: NervConfig
    frames: int
    parameters: int  # decoder parameters (embeddings not counted)
    embedding_values: int
    file_bytes: int
    psnr: float  # of the decoded (quantised, 8-bit) stream against the input frames
    train_psnr: float  # running PSNR of the last training epoch (train mode, weights still moving)
    seconds: float
    float_psnr: float = math.nan  # of the trained float model (unquantised weights and embeddings, float output)

    @property
    def bpp(self) -> float:
        return 8 * self.file_bytes / (self.config.height * self.config.width * self.frames)


# -- sizing -------------------------------------------------------------------------------------


def choose_strides(height: int, width: int) -> tuple[int, ...]:
    """Strides whose product P divides H and W, with H/P and W/P as small as about 2 (like the
    published 640x1280 -> 2x4): P is the largest 2^a 3^b 5^c dividing both sides that is at most
    half the short side; its prime factors largest first, the first two 2s merged into a 4."""
    g = math.gcd(height, width)
    best = 0
    for p in range(1, min(height, width) // 2 + 1):
        if g % p == 0:
            r = p
            for f in (2, 3, 5):
                while r % f == 0:
                    r //= f
            if r == 1:
                best = p
    if best < MIN_PATCH:
        raise InvalidArgument(f"no HNeRV strides fit {width}x{height}: width and height need a common factor of at "
                              f"least {MIN_PATCH} made of 2s, 3s and 5s (crop or resize the frames, e.g. to "
                              f"multiples of 16)")  # fmt: skip
    factors = []
    for f in (5, 3, 2):
        while best % f == 0:
            factors.append(f)
            best //= f
    if factors.count(2) >= 3:
        i = factors.index(2)
        factors[i : i + 2] = [4]
    while len(factors) > 6:  # at most six blocks: merge the two smallest
        factors.sort(reverse=True)
        factors[-2:] = [factors[-2] * factors[-1]]
    return tuple(sorted(factors, reverse=True))


def check_strides(strides, height: int, width: int) -> tuple[int, ...]:
    strides = tuple(int(s) for s in strides)
    if not strides or any(not 1 <= s <= 16 for s in strides) or len(strides) > 12:
        raise InvalidArgument(f"strides must be 1..12 integers in 1..16, got {list(strides)}")
    p = math.prod(strides)
    if height % p or width % p:
        raise InvalidArgument(f"strides {list(strides)} (product {p}) do not divide {width}x{height}")
    return strides


def kernels_for(n: int) -> tuple[int, ...]:
    return tuple(min(KS[0] + 2 * i, KS[1]) for i in range(n))


def channels_for(fc_dim: int, n: int) -> tuple[int, ...]:
    out, c = [], fc_dim
    for _ in range(n):
        c = max(int(round(c / REDUCE)), LOWER_WIDTH)
        out.append(c)
    return tuple(out)


def size_fc_dim(model_size_m: float, strides: tuple[int, ...], embed_values: int, fc_hw: int = 1) -> int:
    """fc_dim from the total parameter budget (nerv.md §2.3): the positive root of
    a x^2 + b x = M 1e6 - E, truncated."""
    kernels = kernels_for(len(strides))
    a = sum(REDUCE ** (-2 * i) * s * s * k * k for i, (s, k) in enumerate(zip(strides, kernels))) / REDUCE
    b = EMBED_CHANNELS * fc_hw * fc_hw * 9
    c = model_size_m * 1e6 - embed_values
    if not math.isfinite(c) or c <= 0:
        raise InvalidArgument(f"a {model_size_m:g}M model is smaller than the embeddings alone ({embed_values:,} "
                              f"values): give a larger --model-size")  # fmt: skip
    fc_dim = int((-b + math.sqrt(b * b + 4 * a * c)) / (2 * a))
    if fc_dim < 1:
        raise InvalidArgument(f"a {model_size_m:g}M model leaves no room for the decoder: give a larger --model-size")
    return fc_dim


# -- training -----------------------------------------------------------------------------------


def lr_at(iteration: int, total: int, lr: float = LR) -> float:
    """``cosine_0.1_1_0.1``: linear 0.1 -> 1 over the first 10% of iterations, then cosine to 0."""
    warm = max(1, int(WARMUP * total))
    if iteration < warm:
        return lr * (0.1 + 0.9 * iteration / warm)
    span = max(1, total - warm)
    return lr * 0.5 * (1 + math.cos(math.pi * (iteration - warm) / span))


def default_qat_epochs(epochs: int) -> int:
    """Quantisation-aware epochs by default: none, as measured on the demo clip (0.1M, 300
    epochs, 2-core CPU): plain training then 8/6-bit quantisation gave 37.99 dB (float model
    38.46); the last 30 epochs quantisation-aware at the tail of the cosine schedule 37.99 dB
    (its learning rate is too small there to move the weights); 270 plain epochs then 30
    quantisation-aware ones with their own cosine from a tenth of the peak 37.69 dB (the gap to
    the float model shrank from 0.47 to 0.27 dB, but the shorter main schedule lost more).
    At the benchmark's 12-epoch quality quantisation costs 0.01 dB: nothing to win back."""
    return 0


def _weight_axis(w: torch.Tensor) -> int | None:
    """The axis :func:`stream.quantise` usually keeps: output channels, when few enough."""
    return 0 if w.ndim >= 2 and w.shape[0] < 0.02 * w.numel() else None


def fake_quant(t: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
    """``t`` through uniform affine quantisation to ``bits`` bits (per tensor, or per slice of
    ``axis``) in the forward pass, unchanged in the backward pass (straight-through)."""
    top = (1 << bits) - 1
    if axis is None:
        lo, hi = t.min(), t.max()
    else:
        dims = [d for d in range(t.ndim) if d != axis]
        lo, hi = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
    scale = ((hi - lo) / top).clamp_min(1e-12)
    q = ((t - lo) / scale).round().clamp(0, top) * scale + lo
    return t + (q - t).detach()


def _psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def encode_hnerv(frames: np.ndarray, out_path: str | Path, *, model_size_m: float, epochs: int,
                 strides: tuple[int, ...] | None = None, fps: float, bits_weights: int = 8, bits_embed: int = 6,
                 seed: int = 0, device: str = "cpu", lr: float = LR, qat_epochs: int | None = None,
                 progress: Callable[[int, float, float], None] | None = None) -> EncodeSummary:  # fmt: skip
    """Train HNeRV on ``frames`` (uint8 [T, H, W, 3]) for ``epochs`` passes and write ``out_path``
    (.nerv). ``progress(epoch, loss, psnr)`` is called after every epoch (1-based). ``lr`` is the
    peak learning rate (the published 1e-3; very small models on short clips may need more to
    leave the constant-colour plateau). The last ``qat_epochs`` of the ``epochs`` are
    quantisation-aware (:func:`fake_quant`; default :func:`default_qat_epochs`)."""
    start_time = time.monotonic()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise InvalidArgument(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {list(frames.shape)}")
    if type(epochs) is not int or epochs < 1:
        raise InvalidArgument(f"epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(model_size_m, (int, float)) and math.isfinite(model_size_m) and model_size_m > 0):
        raise InvalidArgument(f"the model size must be a positive number of millions, got {model_size_m!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidArgument(f"the learning rate must be a positive number, got {lr!r}")
    for name, bits in (("bits_weights", bits_weights), ("bits_embed", bits_embed)):
        if type(bits) is not int or not 1 <= bits <= 16:
            raise InvalidArgument(f"{name} must be 1..16, got {bits!r}")
    qat_epochs = default_qat_epochs(epochs) if qat_epochs is None else qat_epochs
    if type(qat_epochs) is not int or not 0 <= qat_epochs <= epochs:
        raise InvalidArgument(f"the quantisation-aware epochs must be 0..{epochs}, got {qat_epochs!r}")
    t_count, height, width = (int(v) for v in frames.shape[:3])
    strides = check_strides(strides, height, width) if strides is not None else choose_strides(height, width)
    p = math.prod(strides)
    eh, ew = height // p, width // p
    fc_dim = size_fc_dim(model_size_m, strides, EMBED_CHANNELS * eh * ew * t_count)
    config = NervConfig(family="hnerv", height=height, width=width, frame_count=t_count, fps=float(fps),
                        fc_dim=fc_dim, fc_h=1, fc_w=1, strides=strides, kernels=kernels_for(len(strides)),
                        channels=channels_for(fc_dim, len(strides)), head_kernel=3, activation="gelu",
                        output="tanh", embed_channels=EMBED_CHANNELS, embed_h=eh, embed_w=ew)  # fmt: skip

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvalidArgument(f"{device!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("--device cuda, but torch sees no CUDA device (a CPU build of torch, or no GPU)")
    torch.manual_seed(seed)
    encoder = TrainingEncoder(strides).to(dev)
    decoder = build_decoder(config).to(dev)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimiser = torch.optim.Adam(params, lr=lr)
    data = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0).to(dev)
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(t_count / BATCH)
    main_total = (epochs - qat_epochs) * per_epoch
    qat_total = qat_epochs * per_epoch
    iteration = 0
    train_psnr = 0.0
    for epoch in range(1, epochs + 1):
        encoder.train()
        decoder.train()
        order = torch.randperm(t_count, generator=generator)
        squared = 0.0
        for b in range(per_epoch):
            idx = order[b * BATCH : (b + 1) * BATCH].to(dev)
            for group in optimiser.param_groups:
                # The main schedule ends at lr 0; the quantisation-aware epochs get their own
                # cosine from a tenth of the peak, or the weights could not move to fit the grid.
                if iteration < main_total:
                    group["lr"] = lr_at(iteration, main_total, lr)
                else:
                    done = (iteration - main_total) / max(1, qat_total)
                    group["lr"] = QAT_LR_FRACTION * lr * 0.5 * (1 + math.cos(math.pi * done))
            x = data[idx]
            if epoch > epochs - qat_epochs:  # train through the quantiser the stream will use
                embed = fake_quant(encoder(x), bits_embed, None)
                weights = {name: fake_quant(w, bits_weights, _weight_axis(w)) for name, w in decoder.named_parameters()}
                loss = F.mse_loss(torch.func.functional_call(decoder, weights, (embed,)), x)
            else:
                loss = F.mse_loss(decoder(encoder(x)), x)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            squared += float(loss.detach()) * len(idx)
            iteration += 1
        mse = squared / t_count
        train_psnr = _psnr(mse)
        if progress is not None:
            progress(epoch, mse, train_psnr)

    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        embeds_t = torch.cat([encoder(data[i : i + BATCH]) for i in range(0, t_count, BATCH)])
        # The float model's own quality: what quantisation then costs is measured, not assumed.
        float_sq = sum(float(F.mse_loss(decoder(embeds_t[i : i + BATCH]).clamp(0, 1), data[i : i + BATCH]))
                       * len(data[i : i + BATCH]) for i in range(0, t_count, BATCH))  # fmt: skip
        embeds = embeds_t.cpu().numpy()
    own = {name: param.detach().cpu().numpy() for name, param in decoder.named_parameters()}
    weights = {official: stream.quantise(own[mine], bits_weights) for official, mine in official_names(config).items()}
    embedding = stream.quantise(embeds, bits_embed, axes=tuple(range(1, embeds.ndim)))
    size = stream.write_nerv(out_path, config.to_dict(), weights, embedding, fps=float(fps))

    from holoscope.codecs.nerv.reader import open_nerv

    media = open_nerv(out_path)
    try:
        squared = 0.0
        for i in range(t_count):
            rgb = media.frame(i).planes[0].astype(np.float64)
            squared += float(np.mean((rgb - frames[i]) ** 2))
    finally:
        media.release()
    psnr = _psnr(squared / t_count / 255.0**2)
    return EncodeSummary(config, t_count, config.parameter_count(), int(embeds.size), size, psnr, train_psnr,
                         time.monotonic() - start_time, _psnr(float_sq / t_count))  # fmt: skip


def describe(summary: EncodeSummary) -> str:
    c = summary.config
    return (f"{summary.frames} frames {c.width}x{c.height} at {c.fps:g} fps, strides {list(c.strides)}, fc_dim "
            f"{c.fc_dim}, {summary.parameters:,} decoder parameters + {summary.embedding_values:,} embedding values, "
            f"{summary.file_bytes:,} bytes, {summary.bpp:.4f} bpp, PSNR {summary.psnr:.2f} dB "
            f"(float model {summary.float_psnr:.2f} dB), {summary.seconds:.1f} s")  # fmt: skip


__all__ = ["EncodeSummary", "default_qat_epochs", "fake_quant", "choose_strides", "describe", "encode_hnerv", "size_fc_dim"]
