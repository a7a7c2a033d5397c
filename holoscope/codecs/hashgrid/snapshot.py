"""Instant-NGP snapshots (``.ingp``: gzip-framed MessagePack; ``.msgpack``: raw), read from
untrusted files: the container, the config that matters for evaluation, and the parameter
layout, checked against ``snapshot.n_params`` and the size of ``params_binary`` before anything
is evaluated (hashgrid.md §1-4). No torch.

Layout of ``params_binary`` (tiny-cuda-nn): NeRF holds the density MLP, the RGB MLP, then the
position grid; image and SDF hold the MLP, then the grid. An MLP is bias-free row-major
matrices ``[width x in_pad]``, ``(hidden - 1) x [width x width]``, ``[out_pad x width]`` with
pads rounded up to 16; the grid is its levels back to back (:mod:`.levels`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holoscope.codecs.hashgrid import msgpack
from holoscope.codecs.hashgrid.levels import Level, grid_levels, grid_params, growth_factor
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, FormatNotRecognized, InvalidArgument
from holoscope.core.sources import FileSource, Source, source_for

GZIP_MAGIC = b"\x1f\x8b"
MAX_FILE_BYTES = 2 << 30  # the largest snapshots (big.json NeRF with optimiser state) are a few hundred MB
MAX_INFLATED_BYTES = 4 << 30
SNAPSHOT_FORMAT_VERSION = 1
MODES = ("nerf", "sdf", "image")
PARAM_BYTES = {"__half": 2, "float": 4}
GRID_INPUT_DIMS = {"nerf": 3, "sdf": 3, "image": 2}
NERF_DENSITY_OUTPUTS = 16  # the density MLP's padded output, fed to the RGB MLP with SH degree 4 (16)
SH_TERMS = 16


def _pad16(n: int) -> int:
    return -(-n // 16) * 16


@dataclass(frozen=True)
class MlpShape:
    name: str
    inputs: int  # before padding
    width: int
    hidden: int  # hidden layers
    outputs: int  # before padding

    @property
    def matrices(self) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of each weight matrix in storage order."""
        rows = [(self.width, _pad16(self.inputs))] + [(self.width, self.width)] * (self.hidden - 1)
        return tuple(rows + [(_pad16(self.outputs), self.width)])

    @property
    def params(self) -> int:
        return sum(r * c for r, c in self.matrices)


@dataclass(frozen=True)
class Snapshot:
    mode: str
    params_type: str  # "__half" or "float"
    n_params: int
    params: memoryview  # params_binary, n_params values of params_type
    mlps: tuple[MlpShape, ...]  # in storage order
    levels: tuple[Level, ...]
    features: int
    per_level_scale: float
    aabb_scale: int  # NeRF: the scene's aabb scale (1 elsewhere)
    document: dict  # the whole decoded snapshot (camera, dataset transform, density grid ...)

    @property
    def grid_offset(self) -> int:
        """Where the grid's parameters start in ``params``, in values."""
        return sum(m.params for m in self.mlps)


def read_document(source: Source | str | Path) -> dict:
    """The decoded MessagePack of a snapshot (a file or any Source), inflating gzip framing
    with a bounded output."""
    source = source_for(source)
    if isinstance(source, FileSource):
        source.check()
    path = source.label
    size = source.size
    if size is not None and size > MAX_FILE_BYTES:
        raise FormatNotRecognized(f"{size:,} bytes is larger than any Instant-NGP snapshot holoscope reads",
                                  path=path)  # fmt: skip
    budget.require(2 * (size or 0), what="an Instant-NGP snapshot", path=path)
    data = source.read_limited(MAX_FILE_BYTES, what="Instant-NGP snapshot")
    if data[:2] == GZIP_MAGIC:
        data = _inflate(data, path)
    if not data:
        raise CorruptStream("the snapshot is empty", path=path)
    document = msgpack.unpackb(data, label=path)
    if not isinstance(document, dict):
        raise FormatNotRecognized("MessagePack, but not an Instant-NGP snapshot (not a map)", path=path)
    return document


def _inflate(data: bytes, path) -> bytes:
    """gzip (or zlib) inflated in steps, refusing output past the budget or the format's cap."""
    inflater = zlib.decompressobj(15 + 32)
    out, pending, limit = bytearray(), data, MAX_INFLATED_BYTES
    try:
        while pending:
            piece = inflater.decompress(pending, 16 << 20)
            out += piece
            if len(out) > limit:
                raise CorruptStream(f"inflates to more than {limit:,} bytes", path=path)
            budget.require(len(out) + len(piece), what="an inflating Instant-NGP snapshot", path=path)
            pending = inflater.unconsumed_tail
            if not piece and not pending:
                break
        if not inflater.eof:
            raise CorruptStream("the gzip stream is truncated", path=path)
    except zlib.error as exc:
        raise CorruptStream(f"the gzip stream is damaged ({exc})", path=path) from None
    return bytes(out)


def _get(mapping: Any, key: str, kind: type | tuple, where: str, path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise CorruptStream(f"{where} has no {key!r}", path=path)
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CorruptStream(f"{where}.{key} is a {type(value).__name__}", path=path)
    return value


def _int(mapping: Any, key: str, lo: int, hi: int, where: str, path, default: int | None = None) -> int:
    if default is not None and (not isinstance(mapping, dict) or key not in mapping):
        return default
    value = _get(mapping, key, int, where, path)
    if not lo <= value <= hi:
        raise CorruptStream(f"{where}.{key} = {value} is outside {lo}..{hi}", path=path)
    return value


def network_layout(document: dict, mode: str, path=None, *, image_size: tuple[int, int] | None = None):
    """(MLP shapes in storage order, grid levels, features per level, per-level scale, aabb
    scale) of a snapshot document's config, checked and with instant-ngp's defaults."""
    encoding = _get(document, "encoding", dict, "the file", path)
    if encoding.get("otype") not in ("HashGrid", "Grid") or encoding.get("type", "Hash") != "Hash":
        raise FormatNotRecognized(f"encoding {encoding.get('otype')!r} is not a hash grid", path=path)
    levels_n = _int(encoding, "n_levels", 1, 128, "encoding", path, default=16)
    features = _int(encoding, "n_features_per_level", 1, 8, "encoding", path, default=2)
    log2_t = _int(encoding, "log2_hashmap_size", 1, 32, "encoding", path, default=15)
    dims = GRID_INPUT_DIMS[mode]
    base = _int(encoding, "base_resolution", 1, 1 << 20, "encoding", path, default=1 << (log2_t // dims))
    aabb_scale = 1
    if mode == "nerf":
        aabb_scale = _int((document.get("snapshot") or {}).get("nerf"), "aabb_scale", 1, 1 << 16, "snapshot.nerf", path,
                          default=1)  # fmt: skip
        top = 2048 * aabb_scale
    elif mode == "sdf":
        top = 2048
    else:
        if image_size is None:
            raise InvalidArgument("an image-mode snapshot does not store its image size, which sets the grid's "
                                  "level scales: give it (--image-size WxH)", path=path)  # fmt: skip
        top = max(image_size) / 2
    scale = growth_factor(levels_n, base, top)
    levels = grid_levels(levels_n, dims, log2_t, base, scale)

    network = _get(document, "network", dict, "the file", path)
    width = _int(network, "n_neurons", 16, 1024, "network", path, default=64)
    hidden = _int(network, "n_hidden_layers", 1, 64, "network", path, default=1)
    grid_out = levels_n * features
    if mode == "nerf":
        rgb = _get(document, "rgb_network", dict, "the file", path)
        mlps = (MlpShape("density", grid_out, width, hidden, NERF_DENSITY_OUTPUTS),
                MlpShape("rgb", NERF_DENSITY_OUTPUTS + SH_TERMS, _int(rgb, "n_neurons", 16, 1024, "rgb_network", path,
                         default=64), _int(rgb, "n_hidden_layers", 1, 64, "rgb_network", path, default=2), 3))  # fmt: skip
    else:
        mlps = (MlpShape(mode, grid_out, width, hidden, 3 if mode == "image" else 1),)
    return mlps, levels, features, scale, aabb_scale


def parse_snapshot(document: dict, path=None, *, image_size: tuple[int, int] | None = None) -> Snapshot:
    """The checked :class:`Snapshot` of a decoded document. Image mode needs ``image_size``
    (width, height): the level scales come from it and the file does not store it."""
    snap = _get(document, "snapshot", dict, "the file", path)
    version = _int(snap, "version", 0, 1 << 30, "snapshot", path, default=0)
    if version < SNAPSHOT_FORMAT_VERSION:
        raise CorruptStream(f"snapshot version {version} is older than instant-ngp reads ({SNAPSHOT_FORMAT_VERSION})",
                            path=path)  # fmt: skip
    mode = snap.get("mode", "nerf")
    if mode not in MODES:
        raise FormatNotRecognized(f"an Instant-NGP {mode!r} snapshot (holoscope reads {', '.join(MODES)})", path=path)
    params_type = _get(snap, "params_type", str, "snapshot", path)
    if params_type not in PARAM_BYTES:
        raise CorruptStream(f"params_type {params_type!r} is neither __half nor float", path=path)
    n_params = _int(snap, "n_params", 1, 1 << 34, "snapshot", path)
    blob = _get(snap, "params_binary", memoryview, "snapshot", path)
    if len(blob) != n_params * PARAM_BYTES[params_type]:
        raise CorruptStream(f"params_binary holds {len(blob):,} bytes, {n_params:,} {params_type} values need "
                            f"{n_params * PARAM_BYTES[params_type]:,}", path=path)  # fmt: skip

    mlps, levels, features, scale, aabb_scale = network_layout(document, mode, path, image_size=image_size)
    expected = sum(m.params for m in mlps) + grid_params(levels, features)
    if expected != n_params:
        raise CorruptStream(f"the config describes {expected:,} parameters ({' + '.join(f'{m.name} {m.params:,}' for m in mlps)}"
                            f" + grid {grid_params(levels, features):,}), the file holds {n_params:,}", path=path)  # fmt: skip
    return Snapshot(mode, params_type, n_params, blob, mlps, levels, features, float(scale), aabb_scale, document)


def open_snapshot(source: Source | str | Path, *, image_size: tuple[int, int] | None = None) -> Snapshot:
    """Read and check an Instant-NGP snapshot (a file or any Source)."""
    source = source_for(source)
    return parse_snapshot(read_document(source), source.label, image_size=image_size)


__all__ = ["MlpShape", "Snapshot", "network_layout", "open_snapshot", "parse_snapshot", "read_document"]
