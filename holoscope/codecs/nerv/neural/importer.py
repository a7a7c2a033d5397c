"""``holoscope convert quant_vid.pth out.nerv``: an official compressed HNeRV / NeRV checkpoint
as a .nerv stream.

The checkpoint's own integer codes (8-bit weights, 6-bit embeddings for HNeRV's published
models) and its min / scale side values are stored as they are, never requantised, so the .nerv
dequantises to exactly the values the checkpoint does (``min + scale * code`` in float32).
torch is imported by :mod:`.checkpoint` when a function here is called.
"""

from __future__ import annotations

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


def import_checkpoint(path: str | Path, out: str | Path, *, fps: float = 30.0, **options) -> ImportSummary:
    """Write ``out`` (.nerv) from an official compressed checkpoint (``quant_vid.pth``).
    ``options`` go to :func:`.checkpoint.load_official` (activation, out ...)."""
    config, _, _, info = load_official(path, fps=fps, **options)
    if info is None:
        raise InvalidArgument("not a compressed checkpoint (quant_vid.pth): a training checkpoint holds no "
                              "embeddings and no codes to store", path=path)  # fmt: skip
    if config.family != "hnerv":
        raise InvalidArgument("only HNeRV checkpoints are imported to .nerv for now (NeRV has no embeddings)",
                              path=path)  # fmt: skip
    obj = read_checkpoint(path)
    model = _decoder_dict(obj["model"], path)
    weights = {name: quant_tensor(name, q, info.weight_bits, path) for name, q in model.items()}
    embedding = quant_tensor("embed", obj["embed"], info.embed_bits, path)
    if 0 in stream.kept_axes(embedding.axis):
        raise CorruptStream("the embeddings are quantised per frame, which .nerv does not store", path=path)
    size = stream.write_nerv(out, config.to_dict(), weights, embedding, fps=fps)
    return ImportSummary(config, config.frame_count, size, config.parameter_count())


def describe(summary: ImportSummary) -> str:
    c = summary.config
    return (f"{summary.frames} frames {c.width}x{c.height} at {c.fps:g} fps, {summary.file_bytes:,} bytes, "
            f"{summary.parameters:,} parameters, {summary.bits_per_parameter:.3f} bits/parameter, "
            f"{summary.bpp:.5f} bpp")  # fmt: skip


__all__ = ["ImportSummary", "describe", "import_checkpoint", "quant_tensor"]
