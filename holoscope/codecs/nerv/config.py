"""A complete, torch-free description of a NeRV-family decoder.

The official HNeRV and NeRV checkpoints store no configuration: :func:`hnerv_from_shapes` and
:func:`nerv_from_shapes` infer it from the tensor shapes (what cannot be inferred, the activation
and the output mapping, comes from the caller with the official defaults), and holoscope stores
it explicitly as :meth:`NervConfig.to_json`.

HNeRV decoder (per frame, from a ``embed_channels x embed_h x embed_w`` embedding)::

    x = act(conv1x1(e, embed_channels -> fc_dim*fc_h*fc_w)), rearranged to fc_dim x (h*fc_h) x (w*fc_w)
    for each block i: x = act(pixel_shuffle(conv_kxk(x, c -> channels[i]*s*s), s))
    rgb = out(conv_head(x, c -> 3))

NeRV decoder (per frame, from the normalised time t = index / frame_count)::

    p = [sin(b^0 pi t), cos(b^0 pi t), ..., sin(b^(L-1) pi t), cos(b^(L-1) pi t)]   (2L values)
    x = MLP(p: 2L -> stem_dims... -> fc_dim*fc_h*fc_w, act after every layer) viewed fc_dim x fc_h x fc_w
    blocks and head as above (NeRV: 3x3 blocks, 1x1 head)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from holoscope.core.errors import CorruptStream, InvalidArgument

FAMILIES = ("hnerv", "nerv")
ACTIVATIONS = ("gelu", "relu", "swish", "leaky", "leaky01", "relu6", "softplus", "hardswish", "sin")
OUTPUTS = ("tanh", "sigmoid")
FORMAT_VERSION = 1

# Bounds that no real NeRV-family decoder comes near; they keep a hostile config from asking
# for absurd modules before anything is allocated.
MAX_BLOCKS = 12
MAX_STRIDE = 16
MAX_KERNEL = 15
MAX_CHANNELS = 8192
MAX_SIDE = 16384
MAX_FRAMES = 10_000_000
MAX_PE_LEVELS = 256
MAX_PARAMETERS = 1 << 31


def _fail(message: str, exc: type[Exception]) -> None:
    raise exc(message)


@dataclass(frozen=True)
class NervConfig:
    """Everything needed to build a decoder and play its output.

    ``family`` "hnerv": ``embed_channels/embed_h/embed_w`` give the per-frame embedding,
    ``pe_*`` and ``stem_dims`` are unused (0, 0.0, ()). ``family`` "nerv": ``pe_base/pe_levels``
    give the positional encoding and ``stem_dims`` the MLP's hidden widths; ``embed_*`` are 0.
    ``channels[i]`` is block i's output channel count (before the pixel shuffle multiplies
    it by stride²).
    """

    family: str
    height: int
    width: int
    frame_count: int
    fps: float
    fc_dim: int
    fc_h: int
    fc_w: int
    strides: tuple[int, ...]
    kernels: tuple[int, ...]
    channels: tuple[int, ...]
    head_kernel: int = 3
    activation: str = "gelu"
    output: str = "tanh"
    embed_channels: int = 0
    embed_h: int = 0
    embed_w: int = 0
    pe_base: float = 0.0
    pe_levels: int = 0
    stem_dims: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Sequences given as lists become tuples, so the config stays hashable and comparable.
        for name in ("strides", "kernels", "channels", "stem_dims"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._validate(InvalidArgument)

    # -- validation ------------------------------------------------------------------------

    def _validate(self, exc: type[Exception]) -> None:
        def integer(name: str, lo: int, hi: int) -> int:
            value = getattr(self, name)
            if type(value) is not int:
                _fail(f"NeRV config: {name} must be an integer, got {value!r}", exc)
            if not lo <= value <= hi:
                _fail(f"NeRV config: {name} = {value} is outside {lo}..{hi}", exc)
            return value

        def int_tuple(name: str, lo: int, hi: int, *, min_len: int, max_len: int) -> tuple[int, ...]:
            value = getattr(self, name)
            if not isinstance(value, tuple) or any(type(v) is not int for v in value):
                _fail(f"NeRV config: {name} must be a list of integers, got {value!r}", exc)
            if not min_len <= len(value) <= max_len:
                _fail(f"NeRV config: {name} must have {min_len}..{max_len} entries, got {len(value)}", exc)
            for v in value:
                if not lo <= v <= hi:
                    _fail(f"NeRV config: {name} entry {v} is outside {lo}..{hi}", exc)
            return value

        if self.family not in FAMILIES:
            _fail(f"NeRV config: family must be one of {', '.join(FAMILIES)}, got {self.family!r}", exc)
        if self.activation not in ACTIVATIONS:
            _fail(f"NeRV config: activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}", exc)
        if self.output not in OUTPUTS:
            _fail(f"NeRV config: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}", exc)
        height, width = integer("height", 1, MAX_SIDE), integer("width", 1, MAX_SIDE)
        integer("frame_count", 1, MAX_FRAMES)
        if type(self.fps) not in (int, float) or not math.isfinite(self.fps) or not 0 < self.fps <= 1000:
            _fail(f"NeRV config: fps must be a number in (0, 1000], got {self.fps!r}", exc)
        integer("fc_dim", 1, MAX_CHANNELS)
        fc_h, fc_w = integer("fc_h", 1, 64), integer("fc_w", 1, 64)
        strides = int_tuple("strides", 1, MAX_STRIDE, min_len=1, max_len=MAX_BLOCKS)
        kernels = int_tuple("kernels", 1, MAX_KERNEL, min_len=1, max_len=MAX_BLOCKS)
        int_tuple("channels", 1, MAX_CHANNELS, min_len=1, max_len=MAX_BLOCKS)
        if not len(strides) == len(kernels) == len(self.channels):
            _fail(f"NeRV config: strides, kernels and channels must have one entry per block, got "
                  f"{len(strides)}, {len(kernels)} and {len(self.channels)}", exc)  # fmt: skip
        if any(k % 2 == 0 for k in kernels):
            _fail(f"NeRV config: kernel sizes must be odd, got {list(kernels)}", exc)
        head = integer("head_kernel", 1, MAX_KERNEL)
        if head % 2 == 0:
            _fail(f"NeRV config: head_kernel must be odd, got {head}", exc)
        up = math.prod(strides)
        if self.family == "hnerv":
            integer("embed_channels", 1, MAX_CHANNELS)
            eh, ew = integer("embed_h", 1, MAX_SIDE), integer("embed_w", 1, MAX_SIDE)
            if self.pe_levels != 0 or self.pe_base != 0 or self.stem_dims != ():
                _fail("NeRV config: an HNeRV decoder has no positional encoding (pe_base, pe_levels, stem_dims "
                      "must be 0, 0 and empty)", exc)  # fmt: skip
            expect = (eh * fc_h * up, ew * fc_w * up)
            grid = f"embedding {eh}x{ew} x fc {fc_h}x{fc_w} x strides {up}"
        else:
            integer("pe_levels", 1, MAX_PE_LEVELS)
            if type(self.pe_base) not in (int, float) or not math.isfinite(self.pe_base) or not 1 <= self.pe_base <= 16:
                _fail(f"NeRV config: pe_base must be a number in [1, 16], got {self.pe_base!r}", exc)
            int_tuple("stem_dims", 1, 1 << 16, min_len=0, max_len=8)
            if self.embed_channels != 0 or self.embed_h != 0 or self.embed_w != 0:
                _fail("NeRV config: a NeRV decoder has no embedding (embed_channels, embed_h, embed_w must be 0)", exc)
            expect = (fc_h * up, fc_w * up)
            grid = f"fc {fc_h}x{fc_w} x strides {up}"
        if expect != (height, width):
            _fail(f"NeRV config: {grid} gives {expect[0]}x{expect[1]}, not the stated output {height}x{width}", exc)
        count = self.parameter_count()
        if count > MAX_PARAMETERS:
            _fail(f"NeRV config: {count:,} decoder parameters is more than holoscope accepts ({MAX_PARAMETERS:,})", exc)

    # -- derived values ----------------------------------------------------------------------

    @property
    def pe_dim(self) -> int:
        """Length of NeRV's positional encoding (0 for HNeRV)."""
        return 2 * self.pe_levels

    @property
    def stem_out(self) -> int:
        return self.fc_dim * self.fc_h * self.fc_w

    def block_inputs(self) -> tuple[int, ...]:
        """Input channel count of each block."""
        return (self.fc_dim, *self.channels[:-1])

    def parameter_count(self) -> int:
        """Decoder parameters (weights and biases; the HNeRV embeddings are not counted)."""
        if self.family == "hnerv":
            total = self.embed_channels * self.stem_out + self.stem_out
        else:
            dims = (self.pe_dim, *self.stem_dims, self.stem_out)
            total = sum(a * b + b for a, b in zip(dims, dims[1:]))
        for c_in, c_out, s, k in zip(self.block_inputs(), self.channels, self.strides, self.kernels):
            total += c_in * c_out * s * s * k * k + c_out * s * s
        total += self.channels[-1] * 3 * self.head_kernel**2 + 3
        return total

    def embedding_shape(self) -> tuple[int, int, int, int]:
        """(frames, channels, h, w) of the HNeRV embeddings."""
        if self.family != "hnerv":
            raise InvalidArgument("a NeRV decoder takes frame times, not embeddings")
        return (self.frame_count, self.embed_channels, self.embed_h, self.embed_w)

    # -- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("strides", "kernels", "channels", "stem_dims"):
            data[name] = list(data[name])
        return {"version": FORMAT_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | Mapping, *, path=None) -> NervConfig:
        """Parse and validate a stored config; anything wrong is a :class:`CorruptStream`."""
        if isinstance(text, Mapping):
            data = dict(text)
        else:
            try:
                data = json.loads(text)
            except (ValueError, UnicodeDecodeError) as exc:
                raise CorruptStream(f"NeRV config is not valid JSON ({exc})", path=path) from None
        if not isinstance(data, dict):
            raise CorruptStream(f"NeRV config must be a JSON object, got {type(data).__name__}", path=path)
        version = data.pop("version", None)
        if version != FORMAT_VERSION:
            raise CorruptStream(f"NeRV config version {version!r} is not supported (expected {FORMAT_VERSION})", path=path)
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown:
            raise CorruptStream(f"NeRV config has unknown fields: {', '.join(unknown)}", path=path)
        if missing:
            raise CorruptStream(f"NeRV config lacks fields: {', '.join(missing)}", path=path)
        for name in ("strides", "kernels", "channels", "stem_dims"):
            if not isinstance(data[name], list):
                raise CorruptStream(f"NeRV config: {name} must be a list, got {data[name]!r}", path=path)
            data[name] = tuple(data[name])
        config = object.__new__(cls)
        for name, value in data.items():
            object.__setattr__(config, name, value)
        try:
            config._validate(CorruptStream)
        except CorruptStream as exc:
            raise CorruptStream(str(exc), path=path) from None
        return config


# -- shape inference ----------------------------------------------------------------------------

HNERV_STEM = "decoder.0.conv.downconv.weight"
HNERV_HEAD = "head_layer.weight"
NERV_HEAD_PREFIX = "head_layers."


def _block_key(i: int) -> str:
    return f"decoder.{i}.conv.upconv.0.weight"


def _not_hnerv(message: str, path=None) -> CorruptStream:
    return CorruptStream(f"not an HNeRV decoder: {message}", path=path)


def _shape(shapes: Mapping, key: str, rank: int, path, what: str = "HNeRV") -> tuple[int, ...]:
    shape = tuple(shapes[key])
    if len(shape) != rank or any(type(d) is not int or d < 1 for d in shape):
        raise CorruptStream(f"not a {what} decoder: {key} has shape {shape}, expected {rank} positive dimensions",
                            path=path)  # fmt: skip
    return shape


def _blocks(shapes: Mapping, pattern: str, path, what: str) -> list[int]:
    """The block indices present for ``pattern`` ('decoder.{}.conv.upconv.0.weight'), numerically sorted."""
    prefix, _, suffix = pattern.partition("{}")
    found = []
    for key in shapes:
        if key.startswith(prefix) and key.endswith(suffix):
            middle = key[len(prefix) : len(key) - len(suffix)]
            if not middle.isdigit():
                raise CorruptStream(f"not a {what} decoder: unexpected parameter {key}", path=path)
            found.append(int(middle))
    return sorted(found)


def _strides_from(weights: list[tuple[int, ...]], head_in: int, names: list[str], path, what: str):
    strides, kernels, channels = [], [], []
    for i, shape in enumerate(weights):
        c_out = weights[i + 1][1] if i + 1 < len(weights) else head_in
        if shape[2] != shape[3] or shape[2] % 2 == 0:
            raise CorruptStream(f"not a {what} decoder: {names[i]} has a {shape[2]}x{shape[3]} kernel, expected an "
                                f"odd square one", path=path)  # fmt: skip
        ratio, rem = divmod(shape[0], c_out)
        s = math.isqrt(ratio) if ratio > 0 else 0
        if rem or s * s != ratio or s < 1:
            raise CorruptStream(f"not a {what} decoder: {names[i]} has {shape[0]} output channels for {c_out} "
                                f"channels after it, not an integer stride squared", path=path)  # fmt: skip
        strides.append(s)
        kernels.append(shape[2])
        channels.append(c_out)
    return tuple(strides), tuple(kernels), tuple(channels)


def hnerv_from_shapes(shapes: Mapping[str, tuple[int, ...]], *, fps: float, activation: str = "gelu",
                      out: str = "tanh", embed_shape: tuple[int, ...] | None = None,
                      path=None) -> NervConfig:  # fmt: skip
    """Infer an HNeRV decoder from the official parameter names and shapes (nerv.md §3.3).

    ``shapes`` maps official names (``decoder.0.conv.downconv.weight``, ``decoder.{i}.conv.
    upconv.0.weight``, ``head_layer.weight`` and their biases) to shapes, plus ``embed`` (T, C,
    h, w) for the embeddings; a training checkpoint has none, and then ``embed_shape`` must give
    (frame_count, C, h, w). Anything that is not an HNeRV decoder raises one
    :class:`CorruptStream` line naming what does not fit.
    """
    if HNERV_STEM not in shapes:
        raise _not_hnerv(f"no stem ({HNERV_STEM})", path)
    if HNERV_HEAD not in shapes:
        raise _not_hnerv(f"no head ({HNERV_HEAD})", path)
    embed = shapes.get("embed", embed_shape)
    if embed is None:
        raise InvalidArgument("the checkpoint holds no embeddings: give their shape (frames, channels, h, w)", path=path)
    embed = tuple(embed)
    if len(embed) != 4 or any(type(d) is not int or d < 1 for d in embed):
        raise _not_hnerv(f"embeddings have shape {embed}, expected (frames, channels, h, w)", path)
    frames, e_ch, e_h, e_w = embed
    stem = _shape(shapes, HNERV_STEM, 4, path)
    if stem[2:] != (1, 1):
        raise _not_hnerv(f"{HNERV_STEM} has a {stem[2]}x{stem[3]} kernel, expected 1x1", path)
    if stem[1] != e_ch:
        raise _not_hnerv(f"{HNERV_STEM} takes {stem[1]} channels but the embeddings have {e_ch}", path)
    indices = _blocks(shapes, "decoder.{}.conv.upconv.0.weight", path, "HNeRV")
    if not indices:
        raise _not_hnerv("no decoder blocks (decoder.1.conv.upconv.0.weight ...)", path)
    if indices != list(range(1, len(indices) + 1)):
        raise _not_hnerv(f"decoder blocks are numbered {indices}, expected 1..{len(indices)}", path)
    names = [_block_key(i) for i in indices]
    weights = [_shape(shapes, name, 4, path) for name in names]
    head = _shape(shapes, HNERV_HEAD, 4, path)
    if head[0] != 3 or head[2] != head[3] or head[2] % 2 == 0:
        raise _not_hnerv(f"{HNERV_HEAD} has shape {head}, expected (3, channels, k, k) with k odd", path)
    fc_dim = weights[0][1]
    fc_hw, rem = divmod(stem[0], fc_dim)
    side = math.isqrt(fc_hw) if fc_hw > 0 else 0
    if rem or side * side != fc_hw or side < 1:
        raise _not_hnerv(f"the stem gives {stem[0]} channels, not a square multiple of the first block's "
                         f"{fc_dim} input channels", path)  # fmt: skip
    strides, kernels, channels = _strides_from(weights, head[1], names, path, "HNeRV")
    expected = [(HNERV_STEM, stem[0]), *((n, w[0]) for n, w in zip(names, weights)), (HNERV_HEAD, 3)]
    _check_biases(shapes, expected, path)
    _check_no_extra(shapes, expected, {"embed"}, path, "HNeRV")
    up = math.prod(strides)
    try:
        return NervConfig(
            family="hnerv", height=e_h * side * up, width=e_w * side * up, frame_count=frames, fps=float(fps),
            fc_dim=fc_dim, fc_h=side, fc_w=side, strides=strides, kernels=kernels, channels=channels,
            head_kernel=head[2], activation=activation, output=out, embed_channels=e_ch, embed_h=e_h, embed_w=e_w,
        )  # fmt: skip
    except InvalidArgument as exc:
        raise CorruptStream(f"not a usable HNeRV decoder: {exc}", path=path) from None


def _check_biases(shapes: Mapping, expected: list[tuple[str, int]], path) -> None:
    for weight, count in expected:
        key = weight[: -len("weight")] + "bias"
        if key not in shapes:
            raise CorruptStream(f"not a NeRV-family decoder: {key} is missing", path=path)
        if tuple(shapes[key]) != (count,):
            raise CorruptStream(f"not a NeRV-family decoder: {key} has shape {tuple(shapes[key])}, expected ({count},)",
                                path=path)  # fmt: skip


def _check_no_extra(shapes: Mapping, expected: list[tuple[str, int]], allowed: set[str], path, what: str) -> None:
    known = set(allowed)
    for weight, _ in expected:
        known.update((weight, weight[: -len("weight")] + "bias"))
    extra = sorted(set(shapes) - known)
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise CorruptStream(f"not a plain {what} decoder: unexpected parameter {extra[0]}{more} (norm layers and "
                            f"other variants are not supported)", path=path)  # fmt: skip


def nerv_from_shapes(shapes: Mapping[str, tuple[int, ...]], *, fps: float, frame_count: int,
                     fc_hw: tuple[int, int] | None = None, pe_base: float = 1.25, activation: str = "gelu",
                     out: str = "tanh", path=None) -> NervConfig:  # fmt: skip
    """Infer an original-NeRV decoder from its parameter names and shapes (nerv.md §3.3).

    Keys: ``stem.{2j}.weight`` (MLP linears), ``layers.{i}.conv.conv.weight`` (blocks) and the
    last ``head_layers.{i}.weight`` (1x1 head). The split of fc_h·fc_w is not in the shapes:
    give ``fc_hw``; without it a square grid is assumed, or 9x16 for 144 (NeRV's 720p setting).
    The frame count and the PE base are not in the shapes either.
    """
    what = "NeRV"
    linears = _blocks(shapes, "stem.{}.weight", path, what)
    if not linears:
        raise CorruptStream("not a NeRV decoder: no MLP stem (stem.0.weight ...)", path=path)
    if linears != list(range(0, 2 * len(linears), 2)):
        raise CorruptStream(f"not a NeRV decoder: stem layers are numbered {linears}, expected 0, 2, 4 ...", path=path)
    stem = [_shape(shapes, f"stem.{i}.weight", 2, path, what) for i in linears]
    for (a_out, _), (_, b_in), i in zip(stem, stem[1:], linears[1:]):
        if b_in != a_out:
            raise CorruptStream(f"not a NeRV decoder: stem.{i}.weight takes {b_in} inputs after {a_out} outputs",
                                path=path)  # fmt: skip
    pe_dim = stem[0][1]
    if pe_dim % 2:
        raise CorruptStream(f"not a NeRV decoder: stem.0.weight takes {pe_dim} inputs, not an even PE length",
                            path=path)  # fmt: skip
    indices = _blocks(shapes, "layers.{}.conv.conv.weight", path, what)
    if not indices or indices != list(range(len(indices))):
        raise CorruptStream(f"not a NeRV decoder: conv layers are numbered {indices}, expected 0..n-1", path=path)
    names = [f"layers.{i}.conv.conv.weight" for i in indices]
    weights = [_shape(shapes, n, 4, path, what) for n in names]
    heads = _blocks(shapes, "head_layers.{}.weight", path, what)
    if not heads:
        raise CorruptStream("not a NeRV decoder: no head (head_layers.{i}.weight)", path=path)
    if heads != [len(indices) - 1]:
        raise CorruptStream(f"not a NeRV decoder: heads at {heads}; holoscope reads single-resolution NeRV (one head "
                            f"after the last layer, {len(indices) - 1})", path=path)  # fmt: skip
    head_name = f"head_layers.{heads[0]}.weight"
    head = _shape(shapes, head_name, 4, path, what)
    if head[0] != 3 or head[2] != head[3] or head[2] % 2 == 0:
        raise CorruptStream(f"not a NeRV decoder: {head_name} has shape {head}, expected (3, channels, k, k)", path=path)
    fc_dim = weights[0][1]
    cells, rem = divmod(stem[-1][0], fc_dim)
    if rem or cells < 1:
        raise CorruptStream(f"not a NeRV decoder: the stem gives {stem[-1][0]} values, not a multiple of the first "
                            f"layer's {fc_dim} input channels", path=path)  # fmt: skip
    if fc_hw is None:
        # 144 cells: the published NeRV grid for 16:9 video (--fc_hw_dim 9_16_*), before the
        # square 12x12 it could also be; other squares are taken as square grids.
        side = math.isqrt(cells)
        if cells == 144:
            fc_hw = (9, 16)
        elif side * side == cells:
            fc_hw = (side, side)
        else:
            raise InvalidArgument(f"the NeRV stem gives a grid of {cells} cells: give its rows and columns (fc_hw, "
                                  f"--fc-hw on the command line)", path=path)  # fmt: skip
    if len(fc_hw) != 2 or fc_hw[0] * fc_hw[1] != cells:
        raise InvalidArgument(f"fc_hw {tuple(fc_hw)} does not make the stem's {cells} cells", path=path)
    strides, kernels, channels = _strides_from(weights, head[1], names, path, what)
    expected = [*((f"stem.{i}.weight", s[0]) for i, s in zip(linears, stem)),
                *((n, w[0]) for n, w in zip(names, weights)), (head_name, 3)]  # fmt: skip
    _check_biases(shapes, expected, path)
    _check_no_extra(shapes, expected, set(), path, "NeRV")
    up = math.prod(strides)
    try:
        return NervConfig(
            family="nerv", height=fc_hw[0] * up, width=fc_hw[1] * up, frame_count=frame_count, fps=float(fps),
            fc_dim=fc_dim, fc_h=fc_hw[0], fc_w=fc_hw[1], strides=strides, kernels=kernels, channels=channels,
            head_kernel=head[2], activation=activation, output=out, pe_base=float(pe_base), pe_levels=pe_dim // 2,
            stem_dims=tuple(s[0] for s in stem[:-1]),
        )  # fmt: skip
    except InvalidArgument as exc:
        raise CorruptStream(f"not a usable NeRV decoder: {exc}", path=path) from None
