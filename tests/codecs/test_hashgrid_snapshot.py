"""Instant-NGP snapshot containers: .ingp (gzip) and .msgpack documents written here in
instant-ngp's key layout, the parameter layout checked against n_params and params_binary, and
hostile files (bombs, lies, truncation) refused before anything large is allocated."""

from __future__ import annotations

import gzip
import zlib

import pytest

from holoscope.codecs.hashgrid.msgpack import packb
from holoscope.codecs.hashgrid.snapshot import open_snapshot
from holoscope.core.errors import BudgetExceeded, CorruptStream, FormatNotRecognized, HoloscopeError, InvalidArgument


def document(mode="nerf", *, levels=16, features=2, log2=14, params_type="__half", n_params=None, extra=0,
             aabb_scale=1):  # fmt: skip
    from holoscope.codecs.hashgrid.levels import grid_levels, grid_params, growth_factor

    dims = 2 if mode == "image" else 3
    top = 2048 * aabb_scale if mode == "nerf" else (2048 if mode == "sdf" else 512)
    grid = grid_params(grid_levels(levels, dims, log2, 16, growth_factor(levels, 16, top)), features)
    mlp = 3_072 + 7_168 if mode == "nerf" else 7_168
    count = grid + mlp if n_params is None else n_params
    size = 2 if params_type == "__half" else 4
    snap = {"version": 1, "mode": mode, "n_params": count, "params_type": params_type,
            "params_binary": bytes(count * size + extra), "aabb": {"min": [0, 0, 0], "max": [1, 1, 1]}}  # fmt: skip
    if mode == "nerf":
        snap["nerf"] = {"aabb_scale": aabb_scale, "dataset": {"scale": 0.33, "offset": [0.5, 0.5, 0.5]}}
    doc = {"encoding": {"otype": "HashGrid", "n_levels": levels, "n_features_per_level": features,
                        "log2_hashmap_size": log2, "base_resolution": 16},
           "network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 1 if mode == "nerf" else 2},
           "snapshot": snap}  # fmt: skip
    if mode == "nerf":
        doc["rgb_network"] = {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2}
    return doc


@pytest.mark.parametrize("mode, kw", [("nerf", {}), ("nerf", {"levels": 8, "features": 4, "aabb_scale": 4}),
                                      ("sdf", {"params_type": "float"}), ("image", {"log2": 16})])  # fmt: skip
def test_snapshots_open_as_ingp_and_msgpack(tmp_path, mode, kw):
    doc = document(mode, **kw)
    raw = packb(doc)
    (tmp_path / "s.msgpack").write_bytes(raw)
    (tmp_path / "s.ingp").write_bytes(gzip.compress(raw, compresslevel=1))
    for name in ("s.msgpack", "s.ingp"):
        snap = open_snapshot(tmp_path / name, image_size=(1024, 1024) if mode == "image" else None)
        assert snap.mode == mode and snap.n_params == doc["snapshot"]["n_params"]
        assert snap.grid_offset == (10_240 if mode == "nerf" else 7_168)
        assert [m.name for m in snap.mlps] == (["density", "rgb"] if mode == "nerf" else [mode])
        assert snap.levels[0].resolution == 16 and snap.features == kw.get("features", 2)


def test_what_the_file_does_not_say_is_asked_for(tmp_path):
    (tmp_path / "img.msgpack").write_bytes(packb(document("image")))
    with pytest.raises(InvalidArgument, match="--image-size"):
        open_snapshot(tmp_path / "img.msgpack")


@pytest.mark.parametrize("change, kind, needle", [
    (lambda d: d["snapshot"].update(n_params=d["snapshot"]["n_params"] + 8, params_binary=bytes(2 * (d["snapshot"]["n_params"] + 8))),
     CorruptStream, "config describes"),
    (lambda d: d["snapshot"].update(params_binary=b"\0" * 10), CorruptStream, "params_binary holds"),
    (lambda d: d["snapshot"].update(mode="volume"), FormatNotRecognized, "volume"),
    (lambda d: d["snapshot"].update(version=0), CorruptStream, "version"),
    (lambda d: d["snapshot"].update(params_type="double"), CorruptStream, "params_type"),
    (lambda d: d["encoding"].update(otype="Frequency"), FormatNotRecognized, "hash grid"),
    (lambda d: d["encoding"].update(log2_hashmap_size=60), CorruptStream, "log2_hashmap_size"),
    (lambda d: d["encoding"].update(n_levels=True), CorruptStream, "n_levels"),
    (lambda d: d.pop("network"), CorruptStream, "network"),
    (lambda d: d["snapshot"].update(n_params=1 << 40), CorruptStream, "n_params"),
])  # fmt: skip
def test_inconsistent_snapshots_are_refused(tmp_path, change, kind, needle):
    doc = document("nerf")
    change(doc)
    (tmp_path / "bad.ingp").write_bytes(gzip.compress(packb(doc), compresslevel=1))
    with pytest.raises(kind, match=needle) as info:
        open_snapshot(tmp_path / "bad.ingp")
    assert "bad.ingp" in str(info.value)


def test_damaged_and_hostile_containers(tmp_path, monkeypatch):
    raw = packb(document("sdf"))
    packed = gzip.compress(raw, compresslevel=1)
    cases = {
        "cut.ingp": packed[: len(packed) // 2],
        "flipped.ingp": packed[:30] + bytes([packed[30] ^ 0xFF]) + packed[31:],
        "empty.ingp": b"",
        "list.msgpack": packb([1, 2, 3]),
        "deep.msgpack": b"\x91" * 1000 + b"\x00",
        "liar.msgpack": b"\xdf\xff\xff\xff\xff",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(HoloscopeError) as info:
            open_snapshot(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value), name
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    (tmp_path / "bomb.ingp").write_bytes(bomb.compress(bytes(256 << 20)) + bomb.flush())  # 256 MB of zeros in ~250 KB
    monkeypatch.setenv("HOLOSCOPE_MAX_MEMORY", "64M")
    with pytest.raises(BudgetExceeded):
        open_snapshot(tmp_path / "bomb.ingp")
