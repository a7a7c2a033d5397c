"""``holoscope convert CHECKPOINT.pth out.nerv``: an official HNeRV or NeRV checkpoint as a .nerv stream.

- A compressed checkpoint (``quant_vid.pth``): its own integer codes (8-bit weights, 6-bit
  embeddings for HNeRV's published models) and min / scale side values are stored as they are,
  never requantised, so the .nerv dequantises to exactly the values the checkpoint does
  (``min + scale * code`` in float32).
- A training checkpoint (``{'epoch', 'state_dict', 'optimizer'}``, float weights with the
  ``encoder.*``): it holds no embeddings, so the clip it was trained on is given too; its own
  encoder computes the embeddings, then weights and embeddings are quantised as the official
  ``--quant_model_bit 8 --quant_embed_bit 6`` evaluation does (HNeRV's quantiser picks the axis).
- A NeRV decoder (positional-encoding input, no embeddings), compressed or a training state
  dict: its frame count and fc grid come from the caller, as the checkpoint does not hold them.

torch is imported by :mod:`.checkpoint` when a function here is called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from holoscope.codecs.nerv import stream
from holoscope.codecs.nerv.config import NervConfig
from holoscope.codecs.nerv.neural.checkpoint import _decoder_dict, load_official, read_checkpoint
from holoscope.core.errors import CorruptStream, InvalidArgument


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_checkpoint` wrote."""

    config: NervConfig
    frames: int
    file_bytes: int
    parameters: int  # decoder parameters (the embeddings are not counted)

    @property
    def bits_per_parameter(self) -> float:
        return 8 * self.file_bytes / self.parameters

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole stream: bits / (H * W * T)."""
        return 8 * self.file_bytes / (self.config.height * self.config.width * self.frames)


def _side(value: Any, name: str, path) -> np.ndarray:
    array = value.detach().cpu()
    dtype = np.float16 if str(array.dtype) == "torch.float16" else np.float32
    out = array.float().numpy().astype(dtype)
    if not np.isfinite(out).all():
        raise CorruptStream(f"{name}: min or scale is not finite", path=path)
    return out


def quant_tensor(name: str, q: Mapping, bits: int, path=None) -> stream.QuantTensor:
    """One ``{'quant', 'min', 'scale'}`` entry of the checkpoint as a :class:`stream.QuantTensor`
    holding the same codes and side values."""
    codes = q["quant"].detach().cpu().numpy()
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) > (1 << bits) - 1):
        raise CorruptStream(f"{name}: codes outside 0..{(1 << bits) - 1}", path=path)
    codes = np.ascontiguousarray(codes.astype(np.uint8 if bits <= 8 else np.uint16))
    lo, scale = _side(q["min"], name, path), _side(q["scale"], name, path)
    if lo.shape != scale.shape:
        raise CorruptStream(f"{name}: min {lo.shape} and scale {scale.shape} differ in shape", path=path)
    if lo.size == 1:
        axis: int | tuple[int, ...] | None = None
        lo, scale = lo.reshape(()), scale.reshape(())
    else:
        if lo.ndim != codes.ndim:
            raise CorruptStream(f"{name}: min of shape {lo.shape} does not match the codes' {codes.shape}", path=path)
        kept = tuple(i for i, (a, b) in enumerate(zip(lo.shape, codes.shape)) if a == b and a > 1)
        if any(a not in (1, b) or (a == b and a > 1) != (i in kept) for i, (a, b) in enumerate(zip(lo.shape, codes.shape))):
            raise CorruptStream(f"{name}: min of shape {lo.shape} does not broadcast to {codes.shape}", path=path)
        axis = kept[0] if len(kept) == 1 else kept
    return stream.QuantTensor(codes, bits, np.ascontiguousarray(lo), np.ascontiguousarray(scale), axis)


def import_checkpoint(path: str | Path, target: str | Path, *, fps: float = 30.0, bits_weights: int = 8,
                      **options) -> ImportSummary:  # fmt: skip
    """Write ``target`` (.nerv) from an official checkpoint: an HNeRV compressed checkpoint
    (``quant_vid.pth``: its codes as they are), or a NeRV decoder, compressed or float (frames
    decode from their time: no embeddings; float weights are quantised to ``bits_weights``).
    ``options`` go to :func:`.checkpoint.load_official` (activation, out, and for NeRV
    frame_count, fc_hw, pe_base). An HNeRV training checkpoint needs its clip:
    :func:`import_training_checkpoint`."""
    obj = read_checkpoint(path)
    config, float_weights, _, info = load_official(path, fps=fps, obj=obj, **options)
    if config.family == "nerv":
        if info is not None:
            model = _decoder_dict(obj["model"], path)
            weights = {name: quant_tensor(name, q, info.weight_bits, path) for name, q in model.items()}
        else:
            weights = {name: stream.quantise(w.numpy(), bits_weights) for name, w in float_weights.items()}
        size = stream.write_nerv(target, config.to_dict(), weights, None, fps=fps, frames=config.frame_count)
        return ImportSummary(config, config.frame_count, size, config.parameter_count())
    if info is None:
        raise InvalidArgument("an HNeRV training checkpoint holds no embeddings: give the clip it was trained on "
                              "(--video) so its encoder can compute them", path=path)  # fmt: skip
    model = _decoder_dict(obj["model"], path)
    weights = {name: quant_tensor(name, q, info.weight_bits, path) for name, q in model.items()}
    embedding = quant_tensor("embed", obj["embed"], info.embed_bits, path)
    if 0 in stream.kept_axes(embedding.axis):
        raise CorruptStream("the embeddings are quantised per frame, which .nerv does not store", path=path)
    size = stream.write_nerv(target, config.to_dict(), weights, embedding, fps=fps)
    return ImportSummary(config, config.frame_count, size, config.parameter_count())


def import_training_checkpoint(path: str | Path, target: str | Path, frames: np.ndarray, *, fps: float = 30.0,
                               bits_weights: int = 8, bits_embed: int = 6, **options) -> ImportSummary:  # fmt: skip
    """Write ``target`` (.nerv) from an official HNeRV training checkpoint and the clip it encodes
    (uint8 [T, H, W, 3], cropped as in training: the network is convolutional, so nothing in it
    tells the trained size, only the strides it must divide). ``options`` (activation, out) go to
    :func:`.checkpoint.load_official`: a training checkpoint does not store them either."""
    import torch

    from holoscope.codecs.nerv.neural.encoder import ConvNeXtEncoder, layout_from_state

    for name, bits in (("bits_weights", bits_weights), ("bits_embed", bits_embed)):
        if type(bits) is not int or not 1 <= bits <= 16:
            raise InvalidArgument(f"{name} must be 1..16, got {bits!r}")
    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or any(isinstance(v, Mapping) for v in state.values()):
        raise InvalidArgument("not an HNeRV training checkpoint (a state_dict of float tensors)", path=path)
    encoder_state = {}
    for key, value in state.items():
        name = key[len("module.") :] if isinstance(key, str) and key.startswith("module.") else key
        if isinstance(name, str) and name.startswith("encoder."):
            encoder_state[name[len("encoder.") :]] = value
    strides, dims = layout_from_state(encoder_state, path)
    t, height, width = (int(v) for v in frames.shape[:3])
    p = math.prod(strides)
    if height % p or width % p:
        raise InvalidArgument(f"the encoder's strides {list(strides)} (product {p}) do not divide the clip's "
                              f"{width}x{height} frames: crop them as in training (--crop WxH)", path=path)  # fmt: skip
    config, weights, _, _ = load_official(path, fps=fps, embed_shape=(t, dims[-1], height // p, width // p), obj=obj,
                                          **options)  # fmt: skip
    encoder = ConvNeXtEncoder(strides, dims)
    try:
        encoder.load_state_dict({k: v.float() for k, v in encoder_state.items()}, strict=True)
    except (RuntimeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptStream(f"the encoder does not fit the published ConvNeXt layout ({first})", path=path) from None
    encoder.eval()
    with torch.inference_mode():
        embeds = torch.cat([encoder(torch.from_numpy(frames[i : i + 4]).permute(0, 3, 1, 2).float().div(255.0))
                            for i in range(0, t, 4)]).numpy()  # fmt: skip
    if not np.isfinite(embeds).all():
        raise CorruptStream("the encoder gives non-finite embeddings", path=path)
    quantised = {name: stream.quantise(w.numpy(), bits_weights) for name, w in weights.items()}
    embedding = stream.quantise(embeds, bits_embed, axes=tuple(range(1, embeds.ndim)))
    size = stream.write_nerv(target, config.to_dict(), quantised, embedding, fps=fps)
    return ImportSummary(config, t, size, config.parameter_count())


def describe(summary: ImportSummary) -> str:
    c = summary.config
    return (f"{summary.frames} frames {c.width}x{c.height} at {c.fps:g} fps, {summary.file_bytes:,} bytes, "
            f"{summary.parameters:,} parameters, {summary.bits_per_parameter:.3f} bits/parameter, "
            f"{summary.bpp:.5f} bpp")  # fmt: skip


__all__ = ["ImportSummary", "describe", "import_checkpoint", "import_training_checkpoint", "quant_tensor"]
