"""Import of the official HNeRV / NeRV checkpoints.

Two layouts are read:

- the **compressed** checkpoint that HNeRV's ``--eval_only --quant_model_bit 8 --quant_embed_bit 6``
  writes (``quant_vid.pth``): ``{'embed': Q, 'model': {name: Q}}`` with each
  ``Q = {'quant': integer codes, 'min', 'scale'}``, dequantised as ``min + scale * quant`` in
  float32 (nerv.md §3.2). NeRV-named decoders in the same layout (no ``embed``) are read too.
- a **training** checkpoint (``{'state_dict': ...}``, or a bare state dict of float tensors):
  ``encoder.*`` is ignored. It holds no embeddings, so their shape (``embed_shape``: frames,
  channels, h, w) comes from the caller, and the embeddings themselves from elsewhere (the
  returned embeddings are ``None``).

The file is opened as a regular file, its size checked against :data:`MAX_FILE_BYTES` and the
decode budget before ``torch.load(weights_only=True)`` sees it; any failure is one holoscope
error naming the file. torch is imported only when a function is called.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holoscope.codecs.nerv.config import HNERV_STEM, NervConfig, hnerv_from_shapes, nerv_from_shapes
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, FormatNotRecognized, HoloscopeError, InvalidArgument
from holoscope.core.files import check_regular, read_limited

# The largest NeRV-family checkpoint holoscope reads: well above any published model (HNeRV
# 10M at 8 bits is ~10 MB compressed, ~40 MB as float training weights with the optimiser state).
MAX_FILE_BYTES = 1 << 30
NERV_STEM = "stem.0.weight"
_ZIP_MAGIC = b"PK\x03\x04"
_INTEGER_DTYPES = ("torch.uint8", "torch.int8", "torch.int16", "torch.int32", "torch.int64")


@dataclass(frozen=True)
class QuantInfo:
    """What the compressed checkpoint holds: code counts, the bits their ranges need, side values."""

    weight_codes: int
    weight_bits: int
    embed_codes: int
    embed_bits: int
    side_values: int  # min and scale values (counted as fp16 by HNeRV's bpp)


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    line = text[0].split(". ")[0].rstrip(".") if text else ""
    line = line if len(line) <= 160 else line[:157] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` of a bounded regular file with ``weights_only=True``; holoscope errors only."""
    import torch

    st = check_regular(path)
    if st.st_size > MAX_FILE_BYTES:
        raise FormatNotRecognized(f"{st.st_size:,} bytes is larger than any NeRV checkpoint holoscope reads "
                                  f"({MAX_FILE_BYTES:,})", path=path)  # fmt: skip
    budget.require(3 * st.st_size, what="a NeRV checkpoint", path=path)
    data = read_limited(path, MAX_FILE_BYTES, what="NeRV checkpoint")
    if not data:
        raise CorruptStream("the checkpoint file is empty", path=path)
    legacy = len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5  # torch's pre-1.6 pickle format
    if not (data.startswith(_ZIP_MAGIC) or legacy):
        raise FormatNotRecognized("not a torch checkpoint (neither a torch zip archive nor a torch pickle)", path=path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f"it references {found.group(1)}" if found else "it holds more than tensors"
        raise CorruptStream(f"not a plain tensor checkpoint: torch's weights-only loader refuses it ({what})",
                            path=path) from None  # fmt: skip
    except MemoryError:
        raise BudgetExceeded("not enough memory to load the checkpoint", path=path) from None
    except Exception as exc:  # truncated archives, bad records: torch raises RuntimeError & co
        raise CorruptStream(f"damaged or truncated torch checkpoint ({_first_line(exc)})", path=path) from None


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _q_shape(name: str, q: Any, path) -> tuple[int, ...]:
    if not isinstance(q, Mapping) or set(q) != {"quant", "min", "scale"}:
        keys = sorted(map(str, q)) if isinstance(q, Mapping) else type(q).__name__
        raise CorruptStream(f"{name} is not a quantised tensor {{quant, min, scale}} (got {keys})", path=path)
    quant, lo, scale = q["quant"], q["min"], q["scale"]
    if not all(_is_tensor(t) for t in (quant, lo, scale)):
        raise CorruptStream(f"{name}: quant, min and scale must be tensors", path=path)
    if str(quant.dtype) not in _INTEGER_DTYPES:
        raise CorruptStream(f"{name}: codes are {quant.dtype}, expected integers", path=path)
    for label, side in (("min", lo), ("scale", scale)):
        if not side.is_floating_point():
            raise CorruptStream(f"{name}: {label} is {side.dtype}, expected floating point", path=path)
        ok = side.numel() == 1 and side.ndim <= quant.ndim
        ok = ok or (side.ndim == quant.ndim and all(a in (1, b) for a, b in zip(side.shape, quant.shape)))
        if not ok:
            raise CorruptStream(f"{name}: {label} of shape {tuple(side.shape)} does not broadcast to the codes' "
                                f"{tuple(quant.shape)}", path=path)  # fmt: skip
    return tuple(quant.shape)


def _dequantise(name: str, q: Mapping, path):
    quant, lo, scale = q["quant"], q["min"].float(), q["scale"].float()
    if not bool(torch_isfinite(lo)) or not bool(torch_isfinite(scale)):
        raise CorruptStream(f"{name}: min or scale is not finite", path=path)
    return lo + scale * quant.float()


def torch_isfinite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


def _bits(codes) -> int:
    top = int(codes.max()) if codes.numel() else 0
    return max(1, math.ceil(math.log2(top + 1))) if top > 0 else 1


def _decoder_dict(state: Mapping, path) -> dict[str, Any]:
    """Keys without a DataParallel ``module.`` prefix, ``encoder.*`` dropped."""
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise CorruptStream(f"parameter name {key!r} is not a string", path=path)
        name = key[len("module.") :] if key.startswith("module.") else key
        if name.startswith("encoder."):
            continue
        out[name] = value
    return out


def _family(keys, path) -> str:
    if HNERV_STEM in keys:
        return "hnerv"
    if NERV_STEM in keys:
        return "nerv"
    raise FormatNotRecognized(f"a torch checkpoint, but not an HNeRV or NeRV decoder (no {HNERV_STEM} or "
                              f"{NERV_STEM})", path=path)  # fmt: skip


def load_official(path: str | Path, *, fps: float = 30.0, activation: str = "gelu", out: str = "tanh",
                  embed_shape: tuple[int, int, int, int] | None = None, frame_count: int | None = None,
                  fc_hw: tuple[int, int] | None = None, pe_base: float = 1.25, obj: Any = None):  # fmt: skip
    """Read an official HNeRV / NeRV checkpoint.

    Returns ``(config, weights, embeddings, quant_info)``: the inferred :class:`NervConfig`, the
    decoder weights in float32 under their official names (for ``model.load_state``), the HNeRV
    embeddings float32 [T, C, h, w] (``None`` for NeRV, and for training checkpoints, which do
    not hold them), and a :class:`QuantInfo` (``None`` unless the file is the compressed layout).

    What the shapes cannot tell comes from the arguments: ``fps``, ``activation``, ``out``
    (tanh or sigmoid), for a training checkpoint ``embed_shape``, for NeRV ``frame_count``,
    ``fc_hw`` and ``pe_base``.
    """
    import torch

    obj = read_checkpoint(path) if obj is None else obj  # ``obj``: the file already loaded by the caller
    if not isinstance(obj, Mapping):
        raise FormatNotRecognized(f"a torch file holding a {type(obj).__name__}, not a NeRV checkpoint", path=path)
    compressed = isinstance(obj.get("model"), Mapping) and all(isinstance(v, Mapping) for v in obj["model"].values())
    if compressed:
        model = _decoder_dict(obj["model"], path)
        family = _family(model, path)
        shapes = {name: _q_shape(name, q, path) for name, q in model.items()}
        embed_q = obj.get("embed")
        if embed_q is not None:
            shapes["embed"] = _q_shape("embed", embed_q, path)
    else:
        state = obj.get("state_dict", obj)
        if not isinstance(state, Mapping):
            raise FormatNotRecognized("a torch checkpoint whose state_dict is not a dict", path=path)
        model = _decoder_dict(state, path)
        family = _family(model, path)
        for name, value in model.items():
            if not _is_tensor(value) or not value.is_floating_point():
                raise CorruptStream(f"{name} is not a floating-point tensor", path=path)
        shapes = {name: tuple(v.shape) for name, v in model.items()}
        embed_q = None
    if family == "hnerv":
        config: NervConfig = hnerv_from_shapes(shapes, fps=fps, activation=activation, out=out,
                                               embed_shape=embed_shape, path=path)  # fmt: skip
    else:
        if frame_count is None:
            raise InvalidArgument("a NeRV checkpoint does not store its frame count: give it (--frame-count)", path=path)
        if embed_q is not None:
            raise CorruptStream("a NeRV decoder with HNeRV embeddings", path=path)
        config = nerv_from_shapes(shapes, fps=fps, frame_count=frame_count, fc_hw=fc_hw, pe_base=pe_base,
                                  activation=activation, out=out, path=path)  # fmt: skip
    elements = sum(math.prod(s) for s in shapes.values())
    budget.require(8 * elements, what=f"{elements:,} NeRV weights and embeddings", path=path)

    try:
        if compressed:
            weights = {name: _dequantise(name, q, path) for name, q in model.items()}
            embeddings = _dequantise("embed", embed_q, path) if embed_q is not None else None
            info = QuantInfo(
                weight_codes=sum(q["quant"].numel() for q in model.values()),
                weight_bits=max(_bits(q["quant"]) for q in model.values()),
                embed_codes=embed_q["quant"].numel() if embed_q is not None else 0,
                embed_bits=_bits(embed_q["quant"]) if embed_q is not None else 0,
                side_values=sum(q["min"].numel() + q["scale"].numel() for q in model.values())
                + (embed_q["min"].numel() + embed_q["scale"].numel() if embed_q is not None else 0),
            )  # fmt: skip
        else:
            weights = {name: v.detach().to(torch.float32).contiguous() for name, v in model.items()}
            embeddings, info = None, None
    except HoloscopeError:
        raise
    except Exception as exc:
        raise CorruptStream(f"cannot dequantise the checkpoint ({_first_line(exc)})", path=path) from None
    for name, value in weights.items():
        if not torch_isfinite(value):
            raise CorruptStream(f"{name} holds non-finite values", path=path)
    if embeddings is not None and not torch_isfinite(embeddings):
        raise CorruptStream("the embeddings hold non-finite values", path=path)
    return config, weights, embeddings, info


def open_decoder(path: str | Path, **options):
    """Convenience: ``load_official`` then a decoder module filled with the weights.
    Returns ``(module, embeddings, config)``."""
    from holoscope.codecs.nerv.neural.model import build_decoder, load_state

    config, weights, embeddings, _ = load_official(path, **options)
    module = load_state(build_decoder(config), weights, path=path)
    return module, embeddings, config
