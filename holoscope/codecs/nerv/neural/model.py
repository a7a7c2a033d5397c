"""HNeRV and NeRV decoders in plain torch (conv2d, pixel_shuffle, an activation, tanh/sigmoid).

Built from a :class:`~holoscope.codecs.nerv.config.NervConfig`; :func:`load_state` fills them
from the official parameter names, :func:`decode` turns embeddings (HNeRV) or frame times (NeRV)
into float32 RGB in [0, 1].
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from holoscope.codecs.nerv.config import NervConfig
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, InvalidArgument


def activation(name: str):
    """The activation named in the config, as a function of a tensor."""
    table = {
        "gelu": F.gelu,
        "relu": F.relu,
        "swish": F.silu,
        "leaky": F.leaky_relu,
        "leaky01": lambda x: F.leaky_relu(x, 0.1),
        "relu6": F.relu6,
        "softplus": F.softplus,
        "hardswish": F.hardswish,
        "sin": torch.sin,
    }
    try:
        return table[name]
    except KeyError:
        raise InvalidArgument(f"unknown activation {name!r}") from None


def _output(x: torch.Tensor, mapping: str) -> torch.Tensor:
    return torch.sigmoid(x) if mapping == "sigmoid" else torch.tanh(x) * 0.5 + 0.5


def _blocks(config: NervConfig) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Conv2d(c_in, c_out * s * s, k, padding=(k - 1) // 2)
        for c_in, c_out, s, k in zip(config.block_inputs(), config.channels, config.strides, config.kernels)
    )


class _Decoder(nn.Module):
    config: NervConfig
    fast: str | None = None  # set on prepare's copy: "bf16", "fp16" or "channels_last"

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        # Each block runs in its weights' dtype and the head in its own: a plain module is one
        # dtype throughout, a prepared one (see prepare) has bf16/fp16 blocks between fp32 ends.
        act = activation(self.config.activation)
        for conv, s in zip(self.blocks, self.config.strides):
            x = conv(x.to(conv.weight.dtype))
            x = act(F.pixel_shuffle(x, s) if s > 1 else x)
        return _output(self.head(x.to(self.head.weight.dtype)), self.config.output)


class HNeRVDecoder(_Decoder):
    """Embedding [B, C, h, w] -> RGB [B, 3, H, W] (before clamping)."""

    def __init__(self, config: NervConfig) -> None:
        super().__init__()
        if config.family != "hnerv":
            raise InvalidArgument(f"HNeRVDecoder needs an HNeRV config, got {config.family!r}")
        self.config = config
        self.stem = nn.Conv2d(config.embed_channels, config.stem_out, 1)
        self.blocks = _blocks(config)
        k = config.head_kernel
        self.head = nn.Conv2d(config.channels[-1], 3, k, padding=(k - 1) // 2)

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        c = self.config
        if self.fast is not None:
            embed = embed.contiguous(memory_format=torch.channels_last)
        x = activation(c.activation)(self.stem(embed))
        if c.fc_h * c.fc_w > 1:
            # Channel (d, i, j) of the stem goes to pixel (y*fc_h + i, x*fc_w + j) of channel d:
            # a pixel shuffle generalised to a rectangular factor.
            n, _, h, w = x.shape
            x = x.reshape(n, c.fc_dim, c.fc_h, c.fc_w, h, w).permute(0, 1, 4, 2, 5, 3)
            x = x.reshape(n, c.fc_dim, h * c.fc_h, w * c.fc_w)
        return self._upsample(x)


class NeRVDecoder(_Decoder):
    """Normalised frame time t [B] (index / frame_count) -> RGB [B, 3, H, W] (before clamping)."""

    def __init__(self, config: NervConfig) -> None:
        super().__init__()
        if config.family != "nerv":
            raise InvalidArgument(f"NeRVDecoder needs a NeRV config, got {config.family!r}")
        self.config = config
        dims = (config.pe_dim, *config.stem_dims, config.stem_out)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.blocks = _blocks(config)
        k = config.head_kernel
        self.head = nn.Conv2d(config.channels[-1], 3, k, padding=(k - 1) // 2)

    def encode_time(self, t: torch.Tensor) -> torch.Tensor:
        """[B] -> [B, 2L]: sin and cos of t·base^i·pi, interleaved (sin, cos of level 0, then 1 ...),
        computed in float32 in the order the reference uses, as the weights were trained with."""
        t = t.to(torch.float32)
        levels = [t * float(self.config.pe_base**i) * math.pi for i in range(self.config.pe_levels)]
        v = torch.stack(levels, dim=-1)
        pe = torch.stack((torch.sin(v), torch.cos(v)), dim=-1).reshape(t.shape[0], -1)
        return pe.to(self.head.weight.dtype)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        act = activation(c.activation)
        x = self.encode_time(t)
        for linear in self.mlp:
            x = act(linear(x))
        x = x.reshape(x.shape[0], c.fc_dim, c.fc_h, c.fc_w)
        if self.fast is not None:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._upsample(x)


def build_decoder(config: NervConfig) -> nn.Module:
    """A fresh decoder (random weights) for ``config``; fill it with :func:`load_state`."""
    return HNeRVDecoder(config) if config.family == "hnerv" else NeRVDecoder(config)


def official_names(config: NervConfig) -> dict[str, str]:
    """Official parameter name -> this module's parameter name."""
    names: dict[str, str] = {}
    if config.family == "hnerv":
        names["decoder.0.conv.downconv"] = "stem"
        for i in range(len(config.strides)):
            names[f"decoder.{i + 1}.conv.upconv.0"] = f"blocks.{i}"
        names["head_layer"] = "head"
    else:
        for j in range(len(config.stem_dims) + 1):
            names[f"stem.{2 * j}"] = f"mlp.{j}"
        for i in range(len(config.strides)):
            names[f"layers.{i}.conv.conv"] = f"blocks.{i}"
        names[f"head_layers.{len(config.strides) - 1}"] = "head"
    return {f"{a}.{kind}": f"{b}.{kind}" for a, b in names.items() for kind in ("weight", "bias")}


def load_state(module: nn.Module, tensors: Mapping[str, torch.Tensor], *, path=None) -> nn.Module:
    """Copy official-named tensors into ``module``, checking that every parameter is given once
    with its exact shape and finite values. Returns the module (in eval mode)."""
    mapping = official_names(module.config)
    extra = sorted(set(tensors) - set(mapping))
    if extra:
        raise CorruptStream(f"unexpected decoder parameter {extra[0]}", path=path)
    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise CorruptStream(f"decoder parameter {missing[0]} is missing", path=path)
    own = dict(module.named_parameters())
    with torch.no_grad():
        for name, target in mapping.items():
            value = tensors[name]
            param = own[target]
            if not isinstance(value, torch.Tensor):
                raise CorruptStream(f"decoder parameter {name} is not a tensor", path=path)
            if tuple(value.shape) != tuple(param.shape):
                raise CorruptStream(f"decoder parameter {name} has shape {tuple(value.shape)}, expected "
                                    f"{tuple(param.shape)}", path=path)  # fmt: skip
            if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise CorruptStream(f"decoder parameter {name} holds non-finite or non-float values", path=path)
            param.copy_(value)
    return module.eval()


def frame_times(indices: Sequence[int] | torch.Tensor, frame_count: int) -> torch.Tensor:
    """NeRV's input for 0-based frame indices: index / frame_count."""
    idx = torch.as_tensor(indices, dtype=torch.float64)
    return idx / float(frame_count)


FP32_ENV = "HOLOSCOPE_NERV_FP32"


def bf16_pays(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 convolutions are native on ``device``: a CPU with AVX-512 BF16 (or AMX)
    through oneDNN. Elsewhere bf16 is emulated and slower than fp32, so the fast path keeps fp32."""
    device = torch.device(device)
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None) or getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(check and check())
    except Exception:  # a private helper: any failure means "not known to pay"
        return False


def prepare(module: nn.Module, device: str | torch.device = "cpu", *, bf16: bool | None = None,
            blocks_dtype: torch.dtype | None = None) -> nn.Module:  # fmt: skip
    """The fast path of ``module`` on ``device``: a copy (the original is untouched) in
    channels-last memory format whose upsampling blocks hold and run in a 16-bit float, with the
    stem (or MLP) and the head kept in float32; the output is float32 as before.

    - CPU: bf16 blocks where the CPU has native bf16 (``bf16=None``: :func:`bf16_pays`), else
      float32 blocks (channels-last only). On the bunny checkpoint about 2.3x the plain fp32
      module on 2 AVX-512 BF16 cores at under 0.01 dB of PSNR (tests/bench/bench_nerv_decode.py).
    - CUDA: fp16 blocks (tensor cores), channels-last.
    - other devices, or ``HOLOSCOPE_NERV_FP32=1`` in the environment: the module unchanged (moved
      to ``device`` in float32).

    ``blocks_dtype`` forces the blocks' dtype (tests run the fp16 mixing on a CPU). Decode the
    result with :func:`decode` as usual; its ``dtype`` does not apply to a prepared module."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda") or os.environ.get(FP32_ENV, "") not in ("", "0"):
        return module.to(device=device, dtype=torch.float32).eval()
    if blocks_dtype is None:
        if device.type == "cuda":
            blocks_dtype = torch.float16
        else:
            blocks_dtype = torch.bfloat16 if (bf16_pays(device) if bf16 is None else bf16) else torch.float32
    fast = copy.deepcopy(module).to(device=device, dtype=torch.float32).eval()
    fast.to(memory_format=torch.channels_last)
    for conv in fast.blocks:
        conv.to(blocks_dtype)
    fast.fast = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(blocks_dtype, "channels_last")
    return fast


def is_prepared(module: nn.Module) -> bool:
    """Whether ``module`` came from :func:`prepare`'s fast path."""
    return getattr(module, "fast", None) is not None


def decode(module: nn.Module, inputs: torch.Tensor, *, batch: int = 4, device: str | torch.device = "cpu",
           dtype: torch.dtype = torch.float32, fast: bool = False) -> torch.Tensor:  # fmt: skip
    """Decode frames: HNeRV embeddings [B, C, h, w] or NeRV frame times [B] (see
    :func:`frame_times`). Runs ``batch`` frames at a time on ``device`` in ``dtype`` (the module is
    moved there) and returns float32 RGB [B, 3, H, W] in [0, 1] on ``device``. ``fast=True``
    decodes through :func:`prepare`'s copy instead (float32 ``dtype`` only); a module that is
    already prepared keeps its own precisions and is only moved to ``device``."""
    config = module.config
    if batch < 1:
        raise InvalidArgument(f"batch must be at least 1, got {batch}")
    if config.family == "hnerv":
        expect = (config.embed_channels, config.embed_h, config.embed_w)
        if inputs.ndim != 4 or tuple(inputs.shape[1:]) != expect:
            raise InvalidArgument(f"HNeRV embeddings must be [B, {expect[0]}, {expect[1]}, {expect[2]}], got "
                                  f"{list(inputs.shape)}")  # fmt: skip
    elif inputs.ndim != 1:
        raise InvalidArgument(f"NeRV frame times must be a 1-D tensor, got {list(inputs.shape)}")
    frames = int(inputs.shape[0])
    # The result, plus the widest activation of one batch (block output before the shuffle).
    widest = max(c * s * s * config.height * config.width // math.prod(config.strides[i:]) ** 2
                 for i, (c, s) in enumerate(zip(config.channels, config.strides)))  # fmt: skip
    need = 4 * (frames * 3 * config.height * config.width + 3 * min(batch, max(frames, 1)) * widest)
    budget.require(need, what=f"{frames} NeRV frames of {config.width}x{config.height}")
    device = torch.device(device)
    if fast and dtype == torch.float32 and not is_prepared(module):
        module = prepare(module, device)
    if is_prepared(module):
        module.to(device=device)
    else:
        module.to(device=device, dtype=dtype)
    module.eval()
    out = torch.empty((inputs.shape[0], 3, config.height, config.width), dtype=torch.float32, device=device)
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], batch):
            chunk = inputs[start : start + batch].to(device)
            if config.family == "hnerv":
                chunk = chunk.to(dtype)
            out[start : start + batch] = module(chunk).float().clamp_(0.0, 1.0)
    return out
