"""``.hgz``: holoscope's compressed hash-grid scene (an Instant-NGP snapshot, quantised and
entropy-coded). Numpy and zstandard only; reading gives back a :class:`.snapshot.Snapshot` whose
document is in instant-ngp's key layout, so everything that reads an ``.ingp`` reads it.

Layout (integers little-endian; :mod:`holoscope.codecs.framing`)::

    0   4   magic b"HSHG"
    4   2   version (1)
    6   2   flags (0)
    8   4   header length H
    12  4   CRC-32 of the H header bytes
    16  H   header: zstd-compressed UTF-8 JSON (below)
    16+H    the parts, each one zstd frame, at the offsets the header lists (counted from 16 + H)

Header::

    {"format": "holoscope-hgz", "version": 1, "mode": "nerf" | "image" | "sdf",
     "config": {"n_levels", "features", "log2_table", "base_resolution", "dims",
                "per_level_scale" (float32 value), "hash", "interpolation", "aabb_scale",
                "mlps": [{"name", "inputs", "width", "hidden", "outputs", "activation",
                          "output_activation"}],
                "density_activation": "exp", "rgb_activation": "sigmoid" | "exp"   (NeRF only)},
     "image_size": [width, height] | null,        (image mode: sets the level scales)
     "n_params", "params_type" (the source's: "__half" | "float"), "bits" (2..16),
     "source_config": {the snapshot's top-level config maps: loss, optimizer, encoding, ...},
     "scene": {the snapshot map without binaries: camera, background_color, aabb, up_dir,
               nerf: {aabb_scale, dataset: {scale, offset, up, is_hdr, xforms, ...}}, ...},
     "mlp": PART,                                  fp16 of every MLP parameter, storage order
     "occupancy": PART + {"cascades"} | null,      NeRF: the occupancy bitfield
     "levels": [{"resolution", "size", "dense", "lo", "step", "kept", "predictor",
                 "mask": PART | null, "codes": [PART, ...]}]}

    PART = {"offset", "length", "crc32" (of the stored bytes), "raw" (bytes decompressed)}

- Occupancy: instant-ngp's bitfield (as :mod:`.occupancy` packs it): cascades one after another,
  128^3 cells each in Morton order, 8 consecutive cells per byte, least significant bit first.
- A level: ``kept`` entries are stored (all ``size`` when ``mask`` is null). ``mask`` is one bit
  per table entry (``size`` bits, LSB first, padding bits 0) marking the kept ones; the others
  decode as 0 (HollowNeRF-style pruning: no sample in occupied space reaches them).
  ``codes`` are the kept entries' quantised features in table order, entry-major (see
  :mod:`.hgz_quant`: 2..4-bit codes packed several to a byte, 9..16-bit codes as two byte
  planes, each its own part); a value is ``lo + step * code`` in float32. ``predictor``
  "row-median" (dense, unpruned levels only) means the codes are row-predicted residuals.

What the streams do was measured (tests/bench/bench_hashgrid_size.py, zstd 19 throughout) on
trained image-mode tables (albert at 1024^2 in instant-ngp's image config, and at 256^2 with
2^14 entries) and on a synthetic NeRF (L8 F4, 2^17, aabb_scale 4), and only what paid was kept:
a frame per level (1-3% smaller than one frame; 4-9% on the NeRF, whose levels differ more),
2..4-bit codes packed per byte (5-7% at 4 bits: an entry's features become one zstd symbol),
byte planes past 8 bits (15% at 12 bits), the row predictor where it is smaller (1.5-4% at 6 and
8 bits on images; nothing on hashed levels). Feature-major order (within 0.5%) and bit-planes
(10-47% larger) did not pay. Pruning costs a mask of about a bit per entry and saves the
dropped entries' codes: 0.2% when unreached entries still hold instant-ngp's +-1e-4 init
(already nearly free to code), 16% at 8 bits when they hold trained-like values; the writer
keeps, per level, whichever is smaller.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from holoscope.codecs import framing
from holoscope.codecs.hashgrid import hgz_quant as hq
from holoscope.codecs.hashgrid.levels import MAX_LEVELS, grid_params
from holoscope.codecs.hashgrid.occupancy import GRID_CELLS, OCCUPANCY_KEY, grid_to_morton, max_cascade, occupancy_of
from holoscope.codecs.hashgrid.occupancy import pack_bits, unpack_bits
from holoscope.codecs.hashgrid.snapshot import GRID_INPUT_DIMS, MODES, PARAM_BYTES, Snapshot, parse_snapshot
from holoscope.codecs.hashgrid.writer import NerfExtras, SnapshotConfig, snapshot_document
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, InvalidArgument
from holoscope.core.sources import Source, source_for

MAGIC = b"HSHG"
VERSION = 1
FORMAT_NAME = "holoscope-hgz"
ZSTD_LEVEL = 19
MAX_FILE_BYTES = 1 << 30
MAX_HEADER_BYTES = 16 << 20
MAX_HEADER_JSON = 64 << 20
MAX_PARAMS = 1 << 31  # a decoded scene is at most this many parameters (8 GiB of float32)
MAX_IMAGE_SIDE = 1 << 20
IMAGE_SIZE_KEY = "holoscope_image_size"
OCCUPIED_DENSITY = 1.0  # density-grid value written for occupied cells: above min(0.01, mean) always
# snapshot keys the header's "scene" never carries: the reader rebuilds them from the parts
_REBUILT = {"params_binary", "n_params", "params_type", "density_grid_binary", "density_grid_size", "optimizer",
            "version", "mode", OCCUPANCY_KEY, IMAGE_SIZE_KEY}  # fmt: skip
_NETWORK_KEYS = ("encoding", "network", "rgb_network", "dir_encoding")


def is_hgz(head: bytes) -> bool:
    return bytes(head[:4]) == MAGIC


# --- writing --------------------------------------------------------------------------------------


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON copy of a decoded MessagePack value; binary blobs are left out (the parts hold
    what matters of them)."""
    if depth > 32:
        raise InvalidArgument("the snapshot nests deeper than 32 levels")
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()
                if not isinstance(v, (bytes, bytearray, memoryview))}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value if not isinstance(v, (bytes, bytearray, memoryview))]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _config_of(snapshot: Snapshot, image_size: tuple[int, int] | None) -> SnapshotConfig:
    """The writer's config of a parsed snapshot, checked to reproduce its layout."""
    encoding = snapshot.document.get("encoding") or {}
    log2 = int(encoding.get("log2_hashmap_size", 15))
    dims = GRID_INPUT_DIMS[snapshot.mode]
    base = int(encoding.get("base_resolution", 1 << (log2 // dims)))
    rgb = snapshot.mlps[1] if len(snapshot.mlps) > 1 else snapshot.mlps[0]
    cfg = SnapshotConfig(mode=snapshot.mode, n_levels=len(snapshot.levels), features=snapshot.features,
                         log2_table=log2, base_resolution=base, width=snapshot.mlps[0].width,
                         hidden=snapshot.mlps[0].hidden, rgb_width=rgb.width, rgb_hidden=rgb.hidden,
                         aabb_scale=snapshot.aabb_scale)  # fmt: skip
    mlps, levels, _, scale, _ = cfg.layout(image_size)
    if levels != snapshot.levels or mlps != snapshot.mlps or float(scale) != snapshot.per_level_scale:
        raise InvalidArgument("the snapshot's grid does not match its config at this image size"
                              if snapshot.mode == "image" else "the snapshot's layout is not one .hgz stores")  # fmt: skip
    return cfg


def _is_hdr(document: dict) -> bool:
    dataset = (((document.get("snapshot") or {}).get("nerf") or {}).get("dataset")) or {}
    return bool(dataset.get("is_hdr", False)) if isinstance(dataset, dict) else False


def _header_config(snapshot: Snapshot, cfg: SnapshotConfig) -> dict:
    encoding = snapshot.document.get("encoding") or {}
    out = {"n_levels": cfg.n_levels, "features": cfg.features, "log2_table": cfg.log2_table,
           "base_resolution": cfg.base_resolution, "dims": GRID_INPUT_DIMS[cfg.mode],
           "per_level_scale": float(np.float32(snapshot.per_level_scale)),
           "hash": str(encoding.get("hash", "CoherentPrime")), "interpolation": str(encoding.get("interpolation", "Linear")),
           "aabb_scale": cfg.aabb_scale,
           "mlps": [{"name": m.name, "inputs": m.inputs, "width": m.width, "hidden": m.hidden, "outputs": m.outputs,
                     "activation": "ReLU", "output_activation": "None"} for m in snapshot.mlps]}  # fmt: skip
    if cfg.mode == "nerf":
        out["density_activation"] = "exp"
        out["rgb_activation"] = "exp" if _is_hdr(snapshot.document) else "sigmoid"
    return out


class _Parts:
    """The data after the header: zstd frames and their PART entries."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.size = 0
        self.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)

    def compress(self, raw: bytes) -> bytes:
        return self.zstd.compress(raw)

    def add(self, raw_size: int, packed: bytes) -> dict:
        entry = {"offset": self.size, "length": len(packed), "crc32": zlib.crc32(packed), "raw": raw_size}
        self.blobs.append(packed)
        self.size += len(packed)
        return entry

    def add_raw(self, raw: bytes) -> dict:
        return self.add(len(raw), self.compress(raw))


def _code_level(values: np.ndarray, level, mask: np.ndarray | None, bits: int, dims: int, parts: _Parts) -> dict:
    """One level's entry, its parts added: whichever of pruned (when the mask drops entries),
    whole, or whole and row-predicted (dense levels) compresses smallest."""
    options = []
    if mask is not None and not mask.all():
        options.append(("none", mask, *hq.quantise(values[mask], bits)))
    codes, lo, step = hq.quantise(values, bits)
    options.append(("none", None, codes, lo, step))
    if level.dense:
        options.append(("row-median", None, hq.predict_rows(codes, level, dims, bits), lo, step))
    best = None
    for predictor, keep, codes, lo, step in options:
        raws = hq.stream_sizes(codes.size, bits)
        streams = [parts.compress(s) for s in hq.pack_codes(codes, bits)]
        packed_mask = None
        if keep is not None:
            packed_mask = parts.compress(np.packbits(keep, bitorder="little").tobytes())
        size = sum(map(len, streams)) + (len(packed_mask) if packed_mask is not None else 0)
        if best is None or size < best[0]:
            best = (size, predictor, lo, step, int(codes.shape[0]), raws, streams, packed_mask)
    _, predictor, lo, step, kept, raws, streams, packed_mask = best
    return {"resolution": level.resolution, "size": level.size, "dense": level.dense, "lo": float(lo),
            "step": float(step), "kept": kept, "predictor": predictor,
            "mask": parts.add(-(-level.size // 8), packed_mask) if packed_mask is not None else None,
            "codes": [parts.add(raw, s) for raw, s in zip(raws, streams)]}  # fmt: skip


def write_hgz(snapshot: Snapshot, path: str | Path, *, bits: int = 8, prune: bool = True,
              image_size: tuple[int, int] | None = None) -> dict:  # fmt: skip
    """Compress ``snapshot`` to ``path`` (written atomically); returns the size report of
    :func:`describe_hgz`. Image mode needs ``image_size`` (width, height): the file stores it.
    ``prune`` drops the table entries no sample in occupied space reaches (NeRF with a density
    grid); each level keeps whichever of pruned / whole / row-predicted is smallest."""
    hq.check_bits(bits)
    if snapshot.mode == "image":
        if image_size is None:
            raise InvalidArgument("an image-mode snapshot needs its image size to be written as .hgz")
        image_size = (int(image_size[0]), int(image_size[1]))
        if not all(1 <= s <= MAX_IMAGE_SIDE for s in image_size):
            raise InvalidArgument(f"image size {image_size} is outside 1..{MAX_IMAGE_SIDE}")
    else:
        image_size = None
    cfg = _config_of(snapshot, image_size)
    dims = GRID_INPUT_DIMS[snapshot.mode]
    params = np.frombuffer(snapshot.params, np.float16 if snapshot.params_type == "__half" else np.float32)
    mlp_values = params[: snapshot.grid_offset].astype(np.float32)
    if not np.isfinite(mlp_values).all() or np.abs(mlp_values).max(initial=0) > 65504:
        raise InvalidArgument("the MLP weights do not fit fp16 (not finite, or beyond +-65504)")

    parts = _Parts()
    header: dict[str, Any] = {"format": FORMAT_NAME, "version": VERSION, "mode": snapshot.mode,
                              "config": _header_config(snapshot, cfg), "image_size": list(image_size) if image_size else None,
                              "n_params": snapshot.n_params, "params_type": snapshot.params_type, "bits": bits,
                              "source_config": _json_safe({k: v for k, v in snapshot.document.items() if k != "snapshot"}),
                              "scene": _json_safe({k: v for k, v in (snapshot.document.get("snapshot") or {}).items()
                                                   if k not in _REBUILT})}  # fmt: skip
    header["mlp"] = parts.add_raw(mlp_values.astype("<f2").tobytes())

    occupancy = occupancy_of(snapshot) if snapshot.mode == "nerf" else None
    header["occupancy"] = None
    if occupancy is not None:
        header["occupancy"] = {**parts.add_raw(pack_bits(occupancy)), "cascades": int(occupancy.shape[0])}
    masks: list[np.ndarray | None] = [None] * len(snapshot.levels)
    if prune and occupancy is not None:
        masks = hq.reachable_entries(snapshot.levels, occupancy, snapshot.aabb_scale)
        if header["config"]["hash"] != "CoherentPrime":  # the masks follow holoscope's hash
            masks = [m if level.dense else None for m, level in zip(masks, snapshot.levels)]

    grid = params[snapshot.grid_offset :]
    header["levels"] = []
    for level, mask in zip(snapshot.levels, masks):
        values = grid[level.offset * cfg.features : (level.offset + level.size) * cfg.features]
        values = values.astype(np.float32).reshape(level.size, cfg.features)
        header["levels"].append(_code_level(values, level, mask, bits, dims, parts))
    framing_bytes = framing.pack(MAGIC, VERSION, header)
    framing.write_atomically(path, [framing_bytes, *parts.blobs])
    return describe_header(header, len(framing_bytes), path)


# --- reading --------------------------------------------------------------------------------------


def _int(value: Any, lo: int, hi: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer within {lo}..{hi}, got {value!r}")
    return value


def _float(value: Any, what: str, *, lo: float = -math.inf) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < lo:
        raise ValueError(f"{what} must be a finite number{'' if lo == -math.inf else f' >= {lo}'}, got {value!r}")
    return float(value)


def _part(value: Any, what: str, raw_expected: int | None = None) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    out = {"offset": _int(value.get("offset"), 0, MAX_FILE_BYTES, f"{what} offset"),
           "length": _int(value.get("length"), 1, MAX_FILE_BYTES, f"{what} length"),
           "crc32": _int(value.get("crc32"), 0, 0xFFFFFFFF, f"{what} crc32"),
           "raw": _int(value.get("raw"), 0, 1 << 34, f"{what} raw size")}  # fmt: skip
    if raw_expected is not None and out["raw"] != raw_expected:
        raise ValueError(f"{what} holds {out['raw']:,} bytes, the config needs {raw_expected:,}")
    return out


def _check_header(data: Any) -> tuple[dict, SnapshotConfig, tuple[int, int] | None]:
    """The header checked against itself and the config's layout (before anything is allocated);
    returns (header, writer config, image size). Raises ValueError."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or data.get("version") != VERSION:
        raise ValueError("not a holoscope hash-grid header")
    mode = data.get("mode")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    c = data.get("config")
    if not isinstance(c, dict):
        raise ValueError("config must be an object")
    n_levels = _int(c.get("n_levels"), 1, MAX_LEVELS, "n_levels")
    features = _int(c.get("features"), 1, 8, "features")
    log2 = _int(c.get("log2_table"), 1, 32, "log2_table")
    base = _int(c.get("base_resolution"), 1, 1 << 20, "base_resolution")
    aabb_scale = _int(c.get("aabb_scale"), 1, 1 << 16, "aabb_scale")
    mlps = c.get("mlps")
    if not isinstance(mlps, list) or len(mlps) != (2 if mode == "nerf" else 1) or not all(isinstance(m, dict) for m in mlps):
        raise ValueError("config.mlps must list the networks")
    width, hidden = _int(mlps[0].get("width"), 16, 1024, "MLP width"), _int(mlps[0].get("hidden"), 1, 64, "MLP hidden layers")
    rgb_width, rgb_hidden = width, hidden
    if mode == "nerf":
        rgb_width = _int(mlps[1].get("width"), 16, 1024, "RGB MLP width")
        rgb_hidden = _int(mlps[1].get("hidden"), 1, 64, "RGB MLP hidden layers")
    image_size = None
    if mode == "image":
        size = data.get("image_size")
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError("an image-mode scene must give its image size")
        image_size = (_int(size[0], 1, MAX_IMAGE_SIDE, "image width"), _int(size[1], 1, MAX_IMAGE_SIDE, "image height"))
    bits = _int(data.get("bits"), hq.MIN_BITS, hq.MAX_BITS, "bits")
    if data.get("params_type") not in PARAM_BYTES:
        raise ValueError(f"params_type {data.get('params_type')!r} is neither __half nor float")
    cfg = SnapshotConfig(mode=mode, n_levels=n_levels, features=features, log2_table=log2, base_resolution=base,
                         width=width, hidden=hidden, rgb_width=rgb_width, rgb_hidden=rgb_hidden,
                         aabb_scale=aabb_scale if mode == "nerf" else 1)  # fmt: skip
    try:
        shapes, levels, _, scale, _ = cfg.layout(image_size)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None
    if _float(c.get("per_level_scale"), "per_level_scale") != float(np.float32(scale)):
        raise ValueError(f"per_level_scale {c.get('per_level_scale')} is not the config's {float(scale)}")
    n_params = sum(m.params for m in shapes) + grid_params(levels, features)
    if _int(data.get("n_params"), 1, MAX_PARAMS, "n_params") != n_params:
        raise ValueError(f"n_params is {data['n_params']:,}, the config describes {n_params:,}")
    _part(data.get("mlp"), "the MLP part", 2 * sum(m.params for m in shapes))
    occ = data.get("occupancy")
    if occ is not None:
        if mode != "nerf":
            raise ValueError("only a NeRF has an occupancy grid")
        cascades = _int(occ.get("cascades") if isinstance(occ, dict) else None, 1, 8, "occupancy cascades")
        if cascades != max_cascade(aabb_scale) + 1:
            raise ValueError(f"{cascades} occupancy cascades, aabb_scale {aabb_scale} has {max_cascade(aabb_scale) + 1}")
        _part(occ, "the occupancy part", cascades * GRID_CELLS // 8)
    entries = data.get("levels")
    if not isinstance(entries, list) or len(entries) != n_levels:
        raise ValueError(f"levels must list {n_levels} levels")
    for level, e in zip(levels, entries):
        what = f"level {level.index}"
        if not isinstance(e, dict):
            raise ValueError(f"{what} must be an object")
        if (e.get("resolution"), e.get("size"), e.get("dense")) != (level.resolution, level.size, level.dense):
            raise ValueError(f"{what} is not the config's (resolution {level.resolution}, {level.size:,} entries)")
        kept = _int(e.get("kept"), 0, level.size, f"{what} kept entries")
        lo, step = _float(e.get("lo"), f"{what} lo"), _float(e.get("step"), f"{what} step", lo=0.0)
        if not abs(lo) + step * ((1 << bits) - 1) < 3.4e38:  # every decoded value finite in float32
            raise ValueError(f"{what}'s range {lo} + {step} * code is beyond float32")
        if e.get("predictor") not in hq.PREDICTORS:
            raise ValueError(f"{what} predictor {e.get('predictor')!r} is not one of {', '.join(hq.PREDICTORS)}")
        if e.get("mask") is None:
            if kept != level.size:
                raise ValueError(f"{what} keeps {kept:,} of {level.size:,} entries without a mask")
        else:
            _part(e["mask"], f"{what} mask", -(-level.size // 8))
            if e["predictor"] != "none":
                raise ValueError(f"{what}: a pruned level is not predicted")
        if e["predictor"] == "row-median" and not level.dense:
            raise ValueError(f"{what}: only dense levels are row-predicted")
        raws = hq.stream_sizes(kept * features, bits)
        codes = e.get("codes")
        if not isinstance(codes, list) or len(codes) != len(raws):
            raise ValueError(f"{what} must have {len(raws)} code stream(s) at {bits} bits")
        for i, (part, raw) in enumerate(zip(codes, raws)):
            _part(part, f"{what} code stream {i}", raw)
    for key in ("source_config", "scene"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"{key} must be an object")
    return data, cfg, image_size


def _parts_of(header: dict) -> list[dict]:
    out = [header["mlp"]] + ([header["occupancy"]] if header["occupancy"] else [])
    for e in header["levels"]:
        out += ([e["mask"]] if e["mask"] else []) + e["codes"]
    return out


def _load(where: Source | str | Path, *, whole: bool = True) -> tuple[bytes, dict, int, SnapshotConfig, tuple[int, int] | None]:
    """(the file's bytes, or only its fixed part and header; the checked header; where the
    parts start; the writer config; the image size). ``where`` is a Source (a local file, a
    URL: only the header is read when ``whole`` is false) or a local path."""
    source = source_for(where)
    path = source.label
    data = source.head(framing.FIXED.size)  # a missing or unreadable file fails here, clearly
    st_size = source.size
    if st_size is None:
        raise CorruptStream("cannot tell how large the file is", path=path)
    if st_size > MAX_FILE_BYTES:
        raise CorruptStream(f"{st_size:,} bytes is larger than any .hgz holoscope reads", path=path)
    if whole:
        budget.require(st_size, what="a compressed hash-grid scene", path=path)
        data = source.read_limited(MAX_FILE_BYTES, what="compressed hash-grid scene")
    else:
        data = source.head(framing.needed_bytes(data, MAX_HEADER_BYTES))
    raw, end = framing.unpack(data, magic=MAGIC, version=VERSION, kind="hash-grid", max_header=MAX_HEADER_BYTES,
                              max_json=MAX_HEADER_JSON, label=path)  # fmt: skip
    try:
        header, cfg, image_size = _check_header(raw)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise CorruptStream(f"bad header: {exc}", path=path) from None
    stop = end + max(p["offset"] + p["length"] for p in _parts_of(header))
    size = len(data) if whole else st_size
    if stop > size:
        raise CorruptStream(f"the file is truncated: its parts end at byte {stop:,}, it holds {size:,}", path=path)
    return data, header, end, cfg, image_size


def _inflate(data: bytes, end: int, part: dict, what: str, path) -> bytes:
    start = end + part["offset"]
    blob = data[start : start + part["length"]]
    if len(blob) != part["length"]:
        raise CorruptStream(f"{what} is cut off ({len(blob):,} of {part['length']:,} bytes): the file is truncated",
                            path=path)  # fmt: skip
    if zlib.crc32(blob) != part["crc32"]:
        raise CorruptStream(f"{what} is damaged (checksum mismatch)", path=path)
    try:
        raw = framing.inflate(blob, part["raw"])
    except (zstandard.ZstdError, ValueError) as exc:
        raise CorruptStream(f"{what} does not decompress: {exc}", path=path) from None
    if len(raw) != part["raw"]:
        raise CorruptStream(f"{what} holds {len(raw):,} bytes, the header says {part['raw']:,}", path=path)
    return raw


def _merge(base: dict, extra: dict) -> dict:
    """``extra`` laid over ``base``, maps merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _document(header: dict, cfg: SnapshotConfig, params: np.ndarray, occupancy: bytes | None,
              image_size: tuple[int, int] | None) -> dict:  # fmt: skip
    """instant-ngp's document for decoded parameters: the writer's, then the stored config and
    scene laid over it, then what only the parts may say."""
    density = None
    if occupancy is not None:
        cells = unpack_bits(occupancy, header["occupancy"]["cascades"])
        density = grid_to_morton(np.where(cells, np.float32(OCCUPIED_DENSITY), np.float32(0))).reshape(-1)
    doc = snapshot_document(cfg, params, params_type="float", nerf=NerfExtras(density_grid=density))
    source = header["source_config"]
    for key, value in source.items():
        if key == "snapshot":
            continue
        if key in _NETWORK_KEYS and key in doc:  # holoscope's values win where it has them
            doc[key] = {**value, **doc[key]} if isinstance(value, dict) else doc[key]
        else:
            doc[key] = value
    snap = _merge(doc["snapshot"], header["scene"])
    for key in ("version", "mode", "n_params", "params_type", "params_binary", "density_grid_size",
                "density_grid_binary"):  # fmt: skip
        if key in doc["snapshot"]:
            snap[key] = doc["snapshot"][key]
    snap.pop("optimizer", None)
    if cfg.mode == "nerf":
        nerf = snap["nerf"] if isinstance(snap.get("nerf"), dict) else {}
        snap["nerf"] = {**nerf, "aabb_scale": cfg.aabb_scale}
    snap["params_binary"] = memoryview(snap["params_binary"])
    if occupancy is not None:
        snap[OCCUPANCY_KEY] = occupancy
    if image_size is not None:
        snap[IMAGE_SIZE_KEY] = list(image_size)
    doc["snapshot"] = snap
    return doc


def read_hgz(where: Source | str | Path) -> Snapshot:
    """The scene as a :class:`Snapshot` (parameters dequantised, ``params_type`` "float"),
    its document in instant-ngp's key layout plus ``snapshot.holoscope_occupancy`` (the packed
    bitfield) and, in image mode, ``snapshot.holoscope_image_size`` ([width, height])."""
    data, header, end, cfg, image_size = _load(where)
    path = source_for(where).label
    n_params, features, bits = header["n_params"], cfg.features, header["bits"]
    cascades = header["occupancy"]["cascades"] if header["occupancy"] else 0
    # the float32 parameters, one level's codes and masks, the document's copy, the density grid
    budget.require(n_params * 16 + cascades * GRID_CELLS * 8, what=f"a hash-grid scene of {n_params:,} parameters",
                   path=path)  # fmt: skip
    mlps, levels, _, _, _ = cfg.layout(image_size)
    dims = GRID_INPUT_DIMS[cfg.mode]
    params = np.zeros(n_params, np.float32)
    n_mlp = sum(m.params for m in mlps)
    params[:n_mlp] = np.frombuffer(_inflate(data, end, header["mlp"], "the MLP part", path), "<f2")
    occupancy = _inflate(data, end, header["occupancy"], "the occupancy part", path) if cascades else None
    grid = params[n_mlp:].reshape(-1, features)
    for level, e in zip(levels, header["levels"]):
        what = f"level {level.index}"
        streams = [_inflate(data, end, part, f"{what} codes", path) for part in e["codes"]]
        codes = hq.unpack_codes(streams, e["kept"] * features, bits).reshape(e["kept"], features)
        hq.check_codes(codes, bits, path)
        if e["predictor"] == "row-median":
            codes = hq.unpredict_rows(codes, level, dims, bits)
        values = hq.dequantise(codes, e["lo"], e["step"])
        table = grid[level.offset : level.offset + level.size]
        if e["mask"] is None:
            table[:] = values
            continue
        bitmask = np.unpackbits(np.frombuffer(_inflate(data, end, e["mask"], f"{what} mask", path), np.uint8),
                                bitorder="little")  # fmt: skip
        keep = bitmask[: level.size].astype(bool)
        if bitmask[level.size :].any() or int(keep.sum()) != e["kept"]:
            raise CorruptStream(f"{what}'s mask marks {int(bitmask.sum()):,} entries, the header says {e['kept']:,}",
                                path=path)  # fmt: skip
        table[keep] = values
    document = _document(header, cfg, params, occupancy, image_size)
    return parse_snapshot(document, path, image_size=image_size)


def hgz_to_document(path: str | Path, *, params_type: str = "__half") -> dict:
    """The decoded scene as an Instant-NGP snapshot document without holoscope's own keys:
    ``writer.write_snapshot(out, hgz_to_document(path))`` converts ``.hgz`` to ``.ingp``.
    Parameters are fp16 as instant-ngp saves them (``params_type="float"`` keeps the decoded
    values exactly; tiny-cuda-nn loads either); the density grid is the occupancy, occupied cells
    at 1.0 and the others 0, which instant-ngp turns back into the same bitfield."""
    if params_type not in PARAM_BYTES:
        raise InvalidArgument(f"params_type is __half or float, not {params_type!r}")
    document = dict(read_hgz(path).document)
    snap = {k: v for k, v in document["snapshot"].items() if not k.startswith("holoscope_")}
    if params_type == "__half":
        snap["params_binary"] = np.frombuffer(snap["params_binary"], np.float32).astype("<f2").tobytes()
        snap["params_type"] = "__half"
    document["snapshot"] = snap
    return document


# --- describing -----------------------------------------------------------------------------------


def describe_header(header: dict, data_start: int, path: Any = None) -> dict:
    """Sizes of every part of a (checked or just written) header, in bytes."""
    features = header["config"]["features"]
    n_levels_params = 0
    levels = []
    for i, e in enumerate(header["levels"]):
        mask = e["mask"]["length"] if e["mask"] else 0
        codes = sum(p["length"] for p in e["codes"])
        n_levels_params += e["size"] * features
        levels.append({"index": i, "resolution": e["resolution"], "size": e["size"], "dense": e["dense"],
                       "kept": e["kept"], "predictor": e["predictor"], "bytes": codes + mask, "mask_bytes": mask})  # fmt: skip
    mlp = header["mlp"]["length"]
    occupancy = header["occupancy"]["length"] if header["occupancy"] else 0
    grid = sum(level["bytes"] for level in levels)
    total = data_start + mlp + occupancy + grid
    n = header["n_params"]
    return {"path": str(path) if path is not None else None, "mode": header["mode"], "bits": header["bits"],
            "bytes": total, "header": data_start, "mlp": mlp, "occupancy": occupancy, "grid": grid, "levels": levels,
            "n_params": n, "grid_params": n_levels_params, "kept_params": sum(lv["kept"] for lv in levels) * features,
            "bits_per_param": 8 * total / n, "grid_bits_per_param": 8 * grid / max(1, n_levels_params),
            "pruned": any(e["mask"] is not None for e in header["levels"]),
            "fp16_params_bytes": 2 * n}  # fmt: skip


def describe_hgz(where: Source | str | Path) -> dict:
    """Sizes per part (header, MLPs, each level, occupancy), bits per parameter, quantisation
    bits and kept entries per level, from the header alone."""
    _, header, end, _, _ = _load(where, whole=False)
    return describe_header(header, end, source_for(where).label)


def header_json(path: str | Path) -> str:
    """The header as indented JSON (for ``holoscope info``-style dumps)."""
    return json.dumps(_load(path, whole=False)[1], indent=1)


__all__ = ["MAGIC", "VERSION", "describe_hgz", "hgz_to_document", "is_hgz", "read_hgz", "write_hgz"]
