""".hgz, holoscope's compressed hash-grid scene: round trips (image mode, NeRF L16F2 and L8F4,
fp16 and fp32 sources, SDF) within half a quantisation step per level, MLPs equal to fp16,
config, camera, background, dataset transform and occupancy preserved; the code streams and the
row predictor; HollowNeRF-style pruning leaving every feature inside occupied space unchanged;
hostile files refused with one clear error before any large allocation."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard

from holoscope.codecs import framing
from holoscope.codecs.hashgrid import hgz
from holoscope.codecs.hashgrid import hgz_quant as hq
from holoscope.codecs.hashgrid.occupancy import OCCUPANCY_KEY, cascade_of, cell_of, max_cascade, occupancy_of
from holoscope.codecs.hashgrid.writer import NerfExtras, snapshot_document, write_snapshot
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, InvalidArgument
from tests import hashgrid_data as hd

IMAGE = (48, 32)
CAMERA = np.array([[0.0, -1.0, 0.0, 0.3], [0.0, 0.0, 1.0, 0.7], [-1.0, 0.0, 0.0, 1.9]])
BACKGROUND = (0.1, 0.2, 0.3, 1.0)


def blobs(points: np.ndarray) -> np.ndarray:
    """Occupied space: a ball inside the unit cube and one beyond it (a coarser cascade's)."""
    inner = np.linalg.norm(points - (0.45, 0.55, 0.5), axis=1) <= 0.18
    outer = np.linalg.norm(points - (1.6, 0.4, 0.5), axis=1) <= 0.3
    return inner | outer


def scene(mode: str = "nerf", grid: str = "L8F4", *, params_type: str = "__half", aabb_scale: int = 1,
          log2_table: int = 12, seed: int = 0, empty_grid: bool = False):  # fmt: skip
    """A snapshot with trained-like statistics: MLP ~ N(0, 0.15), each level's table Student-t
    (heavy-tailed, small: scale 0.01..0.05 growing with the level), a non-default camera,
    background and dataset transform, and for NeRF a density grid marking :func:`blobs`."""
    cfg = hd.config(mode, grid, aabb_scale=aabb_scale, log2_table=log2_table)
    size = IMAGE if mode == "image" else None
    mlps, levels, features, _, _ = cfg.layout(size)
    rng = np.random.default_rng(seed)
    tables = [rng.standard_t(4, level.size * features) * 0.01 * (1 + level.index / 4) for level in levels]
    params = np.concatenate([rng.normal(0, 0.15, sum(m.params for m in mlps)), *tables]).astype(np.float32)
    extras = None
    if mode == "nerf":
        density = None if empty_grid else hd.density_grid_of(blobs, aabb_scale)
        extras = NerfExtras(density_grid=density, dataset_scale=0.41, dataset_offset=(0.4, 0.6, 0.5), up=(0.0, 0.0, 1.0),
                            is_hdr=True, images=[{"focal_length": [500.0, 501.0], "principal_point": [0.5, 0.5],
                                                  "resolution": [640, 480], "xform": np.eye(3, 4).tolist()}])  # fmt: skip
    doc = snapshot_document(cfg, params, params_type=params_type, nerf=extras, camera_matrix=CAMERA, fov_axis=0,
                            relative_focal_length=(0.8, 0.9), background=BACKGROUND, training_step=1234)  # fmt: skip
    return hd.load(doc, image_size=size)


def values(snapshot) -> np.ndarray:
    return np.frombuffer(snapshot.params, np.float16 if snapshot.params_type == "__half" else np.float32).astype(np.float32)


def header_of(path) -> dict:
    return hgz._load(path, whole=False)[1]


def check_round_trip(original, decoded, path, bits: int) -> None:
    """Layout equal, MLPs equal to fp16, kept entries within half a step, dropped entries 0."""
    assert decoded.mode == original.mode and decoded.params_type == "float"
    assert decoded.levels == original.levels and decoded.mlps == original.mlps
    assert decoded.per_level_scale == original.per_level_scale and decoded.features == original.features
    a, b = values(original), values(decoded)
    n = original.grid_offset
    np.testing.assert_array_equal(b[:n], a[:n].astype(np.float16).astype(np.float32))
    header = header_of(path)
    assert header["bits"] == bits
    f = original.features
    for level, entry in zip(original.levels, header["levels"]):
        src = a[n + level.offset * f : n + (level.offset + level.size) * f].reshape(-1, f)
        got = b[n + level.offset * f : n + (level.offset + level.size) * f].reshape(-1, f)
        kept = np.any(got != 0, axis=1) if entry["mask"] else np.ones(level.size, bool)
        assert entry["kept"] >= kept.sum()
        step = entry["step"]
        assert step <= (src.max() - src.min()) / ((1 << bits) - 1) * (1 + 1e-6)
        error = np.abs(got[kept] - src[kept])
        rounding = 2 * np.finfo(np.float32).eps * float(np.abs(src).max())  # lo + step * code in float32
        assert error.max() <= step / 2 + rounding, (level.index, error.max(), step)
        assert np.all(got[~kept] == 0)


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params_type", ["__half", "float"])
def test_image_mode_round_trips_with_its_image_size(tmp_path, params_type):
    snap = scene("image", params_type=params_type)
    path = tmp_path / "img.hgz"
    report = hgz.write_hgz(snap, path, image_size=IMAGE)
    assert report["bytes"] == path.stat().st_size and report["mode"] == "image" and not report["pruned"]
    decoded = hgz.read_hgz(path)
    check_round_trip(snap, decoded, path, 8)
    doc = decoded.document
    assert doc["snapshot"][hgz.IMAGE_SIZE_KEY] == list(IMAGE)
    assert doc["snapshot"]["camera"]["matrix"] == CAMERA.tolist() and doc["snapshot"]["camera"]["fov_axis"] == 0
    assert doc["snapshot"]["background_color"] == list(BACKGROUND) and doc["snapshot"]["training_step"] == 1234
    assert doc["loss"] == snap.document["loss"] and doc["encoding"] == snap.document["encoding"]
    with pytest.raises(InvalidArgument, match="image size"):
        hgz.write_hgz(snap, tmp_path / "no-size.hgz")
    with pytest.raises(InvalidArgument, match="image size"):
        hgz.write_hgz(snap, tmp_path / "wrong-size.hgz", image_size=(IMAGE[0] * 4, IMAGE[1]))


@pytest.mark.parametrize("grid, aabb_scale, params_type", [("L16F2", 1, "__half"), ("L8F4", 1, "float"),
                                                           ("L8F4", 4, "__half"), ("L16F2", 2, "float")])  # fmt: skip
def test_nerf_round_trips_config_scene_and_occupancy(tmp_path, grid, aabb_scale, params_type):
    snap = scene("nerf", grid, params_type=params_type, aabb_scale=aabb_scale)
    path = tmp_path / "n.hgz"
    report = hgz.write_hgz(snap, path)
    assert report["pruned"] and report["kept_params"] < report["grid_params"]
    decoded = hgz.read_hgz(path)
    check_round_trip(snap, decoded, path, 8)
    assert decoded.aabb_scale == aabb_scale
    want = occupancy_of(snap)
    assert want.any() and want.shape[0] == max_cascade(aabb_scale) + 1
    np.testing.assert_array_equal(occupancy_of(decoded), want)  # from the packed bitfield
    got_snap, src_snap = decoded.document["snapshot"], snap.document["snapshot"]
    for key in ("camera", "background_color", "aabb", "up_dir", "training_step"):
        assert got_snap[key] == src_snap[key], key
    src_dataset, got_dataset = src_snap["nerf"]["dataset"], got_snap["nerf"]["dataset"]
    for key in ("scale", "offset", "up", "is_hdr", "xforms", "metadata", "aabb_scale"):
        assert got_dataset[key] == src_dataset[key], key
    assert header_of(path)["config"]["rgb_activation"] == "exp"  # is_hdr
    # instant-ngp's view of the same file: the density grid rebuilds the same bitfield
    from holoscope.codecs.hashgrid.snapshot import open_snapshot

    for params_type in ("float", "__half"):
        document = hgz.hgz_to_document(path, params_type=params_type)
        assert not any(k.startswith("holoscope_") for k in document["snapshot"])
        write_snapshot(tmp_path / "n.ingp", document)
        ingp = open_snapshot(tmp_path / "n.ingp")
        assert OCCUPANCY_KEY not in ingp.document["snapshot"] and ingp.params_type == params_type
        np.testing.assert_array_equal(occupancy_of(ingp), want)
        np.testing.assert_array_equal(values(ingp), values(decoded).astype(ingp_dtype(params_type)))


def ingp_dtype(params_type: str):
    return np.float16 if params_type == "__half" else np.float32


def test_sdf_and_a_nerf_without_density_grid_round_trip_whole(tmp_path):
    sdf = hd.analytic_sdf().snapshot
    hgz.write_hgz(sdf, tmp_path / "s.hgz", bits=12)
    check_round_trip(sdf, hgz.read_hgz(tmp_path / "s.hgz"), tmp_path / "s.hgz", 12)
    bare = scene("nerf", empty_grid=True)
    report = hgz.write_hgz(bare, tmp_path / "bare.hgz")
    assert not report["pruned"] and report["occupancy"] == 0
    decoded = hgz.read_hgz(tmp_path / "bare.hgz")
    check_round_trip(bare, decoded, tmp_path / "bare.hgz", 8)
    assert occupancy_of(decoded) is None and decoded.document["snapshot"]["density_grid_binary"] == b""


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 10, 16])
def test_every_bit_depth_round_trips_within_half_a_step(tmp_path, bits):
    snap = scene("nerf", "L16F2", params_type="float", seed=bits)
    path = tmp_path / f"b{bits}.hgz"
    report = hgz.write_hgz(snap, path, bits=bits, prune=bits % 2 == 0)
    check_round_trip(snap, hgz.read_hgz(path), path, bits)
    assert report["bits"] == bits


def test_fewer_bits_make_smaller_files(tmp_path):
    snap = scene("nerf", "L8F4")
    sizes = [hgz.write_hgz(snap, tmp_path / f"{b}.hgz", bits=b, prune=False)["bytes"] for b in (8, 6, 4)]
    assert sizes[0] > sizes[1] > sizes[2]
    fp16 = snap.n_params * 2
    assert sizes[0] < 0.75 * fp16  # a trained-like table: well under its fp16 size at 8 bits


def smooth_image() -> object:
    """An image-mode snapshot whose picture is level 0's features (R, G; B = 0) passed through
    the MLP: smooth waves plus noise, values no bit depth represents exactly."""
    cfg = hd.config("image")
    (mlp,), levels, features, _, _ = cfg.layout(IMAGE)
    res = levels[0].resolution
    gy, gx = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    noise = np.random.default_rng(11).normal(0, 0.02, (res * res, 2))
    waves = np.stack([np.sin(gx.ravel() / 2.3) * np.cos(gy.ravel() / 3.1), np.cos(gx.ravel() / 1.7 + gy.ravel() / 4)], 1)
    mats = hd._pass_through(mlp.width, mlp.matrices[0][1], mlp.hidden, 16, {0: (0, 1.0), 1: (1, 1.0)})
    params = hd._with_level0(cfg, mats, (0.5 + 0.3 * waves + noise).astype(np.float32), 5, image_size=IMAGE)
    return hd.load(snapshot_document(cfg, params, params_type="__half"), image_size=IMAGE)


def test_an_image_renders_close_to_the_original_at_8_bits(tmp_path):
    pytest.importorskip("torch")
    from holoscope.codecs.hashgrid.neural.network import render_image

    snap = smooth_image()
    want = render_image(snap, *IMAGE)
    assert want.std() > 0.1
    psnr = {}
    for bits in (8, 3):
        hgz.write_hgz(snap, tmp_path / f"{bits}.hgz", bits=bits, image_size=IMAGE)
        got = render_image(hgz.read_hgz(tmp_path / f"{bits}.hgz"), *IMAGE)
        psnr[bits] = 10 * math.log10(1 / float(np.mean((got - want) ** 2)))
    assert psnr[8] > 50 and psnr[3] < psnr[8] - 15, psnr


def test_the_report_and_description_add_up(tmp_path):
    snap = scene("nerf", "L16F2", aabb_scale=4)
    path = tmp_path / "d.hgz"
    report = hgz.write_hgz(snap, path, bits=6)
    described = hgz.describe_hgz(path)
    assert {k: v for k, v in described.items() if k != "path"} == {k: v for k, v in report.items() if k != "path"}
    assert described["bytes"] == path.stat().st_size
    assert described["header"] + described["mlp"] + described["occupancy"] + described["grid"] == described["bytes"]
    assert len(described["levels"]) == 16 and described["bits"] == 6
    assert described["levels"][0]["kept"] < described["levels"][0]["size"]  # pruned where the blobs are not
    assert math.isclose(described["bits_per_param"], 8 * described["bytes"] / snap.n_params)
    assert hgz.is_hgz(path.read_bytes()[:4]) and not hgz.is_hgz(b"\x1f\x8b\x08\x00")


# --- streams and predictor ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(2, 17))
def test_code_streams_round_trip_at_every_depth(bits):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, 1001).astype(np.uint16)
    streams = hq.pack_codes(codes, bits)
    assert [len(s) for s in streams] == hq.stream_sizes(codes.size, bits)
    np.testing.assert_array_equal(hq.unpack_codes(streams, codes.size, bits), codes)
    if bits <= 4:
        assert len(streams[0]) == -(-1001 // (8 // bits))  # several codes per byte
    elif bits > 8:
        assert len(streams) == 2  # byte planes


@pytest.mark.parametrize("dims, bits", [(2, 8), (3, 5), (3, 16), (2, 2)])
def test_the_row_predictor_inverts_and_shrinks_smooth_lattices(dims, bits):
    from holoscope.codecs.hashgrid.levels import Level

    res = 20
    level = Level(0, res - 1.0, res, -(-res**dims // 8) * 8, 0, True)
    rng = np.random.default_rng(dims)
    codes = rng.integers(0, 1 << bits, (level.size, 3)).astype(np.uint16)
    residuals = hq.predict_rows(codes, level, dims, bits)
    np.testing.assert_array_equal(hq.unpredict_rows(residuals, level, dims, bits), codes)
    # on a smooth lattice (a ramp along y) the residuals are nearly all one value
    ramp = np.zeros_like(codes)
    ramp[: res**dims, 0] = (np.arange(res**dims) // res % res) * ((1 << bits) // (2 * res) or 1)
    assert len(np.unique(hq.predict_rows(ramp, level, dims, bits)[: res**dims, 0])) <= 3


# --- pruning --------------------------------------------------------------------------------------


def occupied_points(snapshot, n: int, seed: int = 0) -> np.ndarray:
    """Grid inputs in [0, 1]^3 of ``n`` random NGP points in occupied cells, each kept only if
    instant-ngp's marcher looks it up in an occupied cell (its cascade by ``mip_from_pos``)."""
    occupied = occupancy_of(snapshot)
    s = float(min(snapshot.aabb_scale, 128))
    rng = np.random.default_rng(seed)
    picks = []
    for m in range(occupied.shape[0]):
        cells = np.argwhere(occupied[m])
        chosen = cells[rng.integers(0, len(cells), n)]
        picks.append(((chosen + rng.uniform(0, 1, chosen.shape)) / 128 - 0.5) * 2.0**m + 0.5)  # NGP
    points = np.concatenate(picks).astype(np.float32)
    cascade = cascade_of(points, occupied.shape[0] - 1)
    cells, inside = cell_of(points, cascade)
    c = cells.clip(0, 127)
    hit = inside & occupied[cascade, c[:, 0], c[:, 1], c[:, 2]]
    hit &= np.all(np.abs(points - np.float32(0.5)) <= s / 2, axis=1)  # rays march inside the aabb
    return (points[hit] - np.float32(0.5)) / np.float32(s) + np.float32(0.5)


@pytest.mark.parametrize("grid, aabb_scale, log2", [("L8F4", 1, 12), ("L16F2", 4, 12), ("L8F4", 2, 14)])
def test_pruned_tables_give_identical_features_inside_occupied_space(grid, aabb_scale, log2):
    torch = pytest.importorskip("torch")
    from holoscope.codecs.hashgrid.neural.encoding import encode

    snap = scene("nerf", grid, params_type="float", aabb_scale=aabb_scale, log2_table=log2)
    masks = hq.reachable_entries(snap.levels, occupancy_of(snap), aabb_scale)
    table = values(snap)[snap.grid_offset :].reshape(-1, snap.features)
    pruned = table.copy()
    dropped = 0
    for level, mask in zip(snap.levels, masks):
        if mask is not None:
            pruned[level.offset : level.offset + level.size][~mask] = 0
            dropped += int((~mask).sum())
    assert dropped > 0.05 * table.shape[0]  # pruning removes something real
    x = torch.from_numpy(occupied_points(snap, 6_000))
    assert len(x) > 5_000
    want = encode(x, torch.from_numpy(table.ravel()), snap.levels, snap.features)
    got = encode(x, torch.from_numpy(pruned.ravel()), snap.levels, snap.features)
    assert torch.equal(got, want)
    # and the dropped entries are ones outside-occupied samples do reach: the masks are not "all"
    y = torch.rand((4_000, 3), generator=torch.Generator().manual_seed(1))
    assert not torch.equal(encode(y, torch.from_numpy(pruned.ravel()), snap.levels, snap.features),
                           encode(y, torch.from_numpy(table.ravel()), snap.levels, snap.features))  # fmt: skip


@pytest.mark.parametrize("aabb_scale", [1, 2])
def test_both_ways_of_finding_reachable_vertices_agree(aabb_scale):
    snap = scene("nerf", "L16F2", aabb_scale=aabb_scale, log2_table=12)
    occupancy = occupancy_of(snap)
    boxes = hq.reachable_entries(snap.levels, occupancy, aabb_scale, method="boxes")
    lattice = hq.reachable_entries(snap.levels, occupancy, aabb_scale, method="lattice")
    assert sum(m is not None for m in boxes) >= 3
    for a, b in zip(boxes, lattice):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_levels_covering_their_table_many_times_over_are_kept_whole_without_enumeration(monkeypatch):
    snap = scene("nerf", "L16F2", log2_table=12)
    full = np.ones((1, 128, 128, 128), bool)
    calls = []
    monkeypatch.setattr(hq, "_mark_cascade", lambda *a: calls.append(a[1].index))
    masks = hq.reachable_entries(snap.levels, full, 1)
    hashed_far = [lv.index for lv in snap.levels if not lv.dense and lv.resolution**3 > hq.FAR * lv.size]
    assert hashed_far and all(masks[i] is None for i in hashed_far)
    assert not set(calls) & set(hashed_far)


def test_reading_needs_no_torch(tmp_path):
    import subprocess
    import sys

    hgz.write_hgz(scene("nerf"), tmp_path / "t.hgz")
    code = ("import sys; from holoscope.codecs.hashgrid import hgz; s = hgz.read_hgz(sys.argv[1]); "
            "hgz.describe_hgz(sys.argv[1]); assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.hgz")], check=True, timeout=60, cwd=root)


def test_numpy_table_index_matches_the_encoder():
    torch = pytest.importorskip("torch")
    from holoscope.codecs.hashgrid.neural.encoding import PRIMES, corner_index

    assert hq.PRIMES == PRIMES[:3]
    snap = scene("nerf", "L16F2")
    rng = np.random.default_rng(4)
    for level in (snap.levels[0], snap.levels[9]):
        v = rng.integers(0, level.resolution + 1, (5000, 3))
        np.testing.assert_array_equal(hq.table_index(v, level), corner_index(torch.from_numpy(v), level).numpy())


# --- hostile files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("hgz") / "good.hgz"
    hgz.write_hgz(scene("nerf", "L16F2", aabb_scale=2, seed=7), path, bits=10)
    return path


def rewrite(path, out, change) -> None:
    """``path`` with its header changed by ``change(header)`` (the parts kept as they are)."""
    data = path.read_bytes()
    header, end = framing.unpack(data, magic=hgz.MAGIC, version=hgz.VERSION, kind="hash-grid",
                                 max_header=hgz.MAX_HEADER_BYTES, max_json=hgz.MAX_HEADER_JSON, label=path)  # fmt: skip
    change(header)
    out.write_bytes(framing.pack(hgz.MAGIC, hgz.VERSION, header) + data[end:])


HEADER_CASES = [
    (lambda h: h["config"].update(n_levels=100_000), "n_levels"),
    (lambda h: h["config"].update(log2_table=40), "log2_table"),
    (lambda h: h.update(bits=17), "bits"),
    (lambda h: h.update(bits=True), "bits"),
    (lambda h: h.update(n_params=h["n_params"] + 2), "n_params"),
    (lambda h: h["config"].update(per_level_scale=1.5), "per_level_scale"),
    (lambda h: h["levels"][3].update(size=1 << 30), "level 3"),
    (lambda h: h["levels"][0].update(kept=h["levels"][0]["kept"] + 1), "level 0"),
    (lambda h: h["levels"][0].update(mask=None), "without a mask"),
    (lambda h: h["levels"][2]["codes"][0].update(raw=7), "code stream"),
    (lambda h: h["levels"][1].update(codes=h["levels"][1]["codes"][:1]), "code stream"),
    (lambda h: h["levels"][0].update(predictor="oracle"), "predictor"),
    (lambda h: h["levels"][0].update(step=float("nan")), "step"),
    (lambda h: h["levels"][4].update(step=1e36), "beyond float32"),
    (lambda h: h["mlp"].update(offset=1 << 29), "truncated"),
    (lambda h: h["occupancy"].update(cascades=1), "cascades"),
    (lambda h: h.update(mode="volume"), "mode"),
    (lambda h: h.update(scene=[]), "scene"),
    (lambda h: h.pop("levels"), "levels"),
]  # fmt: skip


@pytest.mark.parametrize("change, needle", HEADER_CASES)
def test_headers_that_disagree_with_their_config_are_refused(good, tmp_path, change, needle):
    bad = tmp_path / "bad.hgz"
    rewrite(good, bad, change)
    with pytest.raises(CorruptStream, match=needle) as info:
        hgz.read_hgz(bad)
    assert "bad.hgz" in str(info.value)
    with pytest.raises(CorruptStream):
        hgz.describe_hgz(bad)


def test_damaged_files_are_refused_with_one_clear_error(good, tmp_path):
    data = good.read_bytes()
    end = framing.FIXED.size + framing.FIXED.unpack_from(data)[3]
    cases = {
        "magic": b"NOPE" + data[4:],
        "version 9": data[:4] + (9).to_bytes(2, "little") + data[6:],
        "checksum": data[:20] + bytes([data[20] ^ 0xFF]) + data[21:],
        "too short": data[:10],
        "truncated": data[: end + (len(data) - end) // 2],
        "damaged \\(checksum": data[:-5] + bytes([data[-5] ^ 0x55]) + data[-4:],
    }
    for needle, blob in cases.items():
        bad = tmp_path / "bad.hgz"
        bad.write_bytes(blob)
        with pytest.raises(CorruptStream, match=needle):
            hgz.read_hgz(bad)


def test_a_damaged_zstd_frame_with_a_matching_checksum_is_refused(good, tmp_path):
    header = header_of(good)
    part = header["levels"][5]["codes"][0]
    data = bytearray(good.read_bytes())
    end = framing.FIXED.size + framing.FIXED.unpack_from(data)[3]
    start = end + part["offset"]
    data[start + 4 : start + part["length"]] = bytes(part["length"] - 4)  # frame magic kept, the rest zeroed

    def fix(h):
        h["levels"][5]["codes"][0]["crc32"] = zlib.crc32(bytes(data[start : start + part["length"]]))

    (tmp_path / "src.hgz").write_bytes(bytes(data))
    rewrite(tmp_path / "src.hgz", tmp_path / "bad.hgz", fix)
    with pytest.raises(CorruptStream, match="level 5 codes (does not decompress|holds)"):
        hgz.read_hgz(tmp_path / "bad.hgz")


def test_a_zstd_bomb_is_refused_without_inflating_it(good, tmp_path):
    payload = zstandard.ZstdCompressor(level=3).compress(bytes(64 << 20))
    header = header_of(good)
    data = good.read_bytes()

    def swap(h):
        h["levels"][0]["mask"].update(offset=len(data) - (framing.FIXED.size + framing.FIXED.unpack_from(data)[3]),
                                      length=len(payload), crc32=zlib.crc32(payload))  # fmt: skip

    assert header["levels"][0]["mask"]["raw"] < 1 << 20
    rewrite(good, tmp_path / "mid.hgz", swap)
    (tmp_path / "bomb.hgz").write_bytes((tmp_path / "mid.hgz").read_bytes() + payload)
    with pytest.raises(CorruptStream, match="level 0 mask does not decompress: it inflates to more than"):
        hgz.read_hgz(tmp_path / "bomb.hgz")


def test_a_huge_declared_scene_meets_the_budget_before_allocating(good, tmp_path):
    small = scene("nerf", "L16F2", log2_table=12)
    path = tmp_path / "big.hgz"
    hgz.write_hgz(small, path, bits=4, prune=False)

    def grow(h):  # a consistent header for 2^26-entry tables (parts that could never fill them)
        from holoscope.codecs.hashgrid.writer import SnapshotConfig

        cfg = SnapshotConfig(mode="nerf", n_levels=16, features=2, log2_table=26, hidden=1)
        mlps, levels, _, _, _ = cfg.layout()
        h["config"]["log2_table"] = 26
        h["n_params"] = cfg.n_params()
        for level, e in zip(levels, h["levels"]):
            e.update(resolution=level.resolution, size=level.size, dense=level.dense, kept=level.size)
            for part, raw in zip(e["codes"], hq.stream_sizes(level.size * 2, 4)):
                part["raw"] = raw

    rewrite(path, tmp_path / "huge.hgz", grow)
    budget.set_limit(256 << 20, "test")
    try:
        with pytest.raises(BudgetExceeded):
            hgz.read_hgz(tmp_path / "huge.hgz")
    finally:
        budget.set_limit(None)


def test_a_failed_write_loses_nothing(tmp_path):
    snap = scene("nerf")
    path = tmp_path / "keep.hgz"
    hgz.write_hgz(snap, path)
    before = path.read_bytes()
    broken = np.frombuffer(snap.params, np.float16).copy()
    broken[-1] = np.nan
    doc = dict(snap.document)
    doc["snapshot"] = {**doc["snapshot"], "params_binary": memoryview(broken.tobytes())}
    from holoscope.codecs.hashgrid.snapshot import parse_snapshot

    with pytest.raises(InvalidArgument, match="not finite"):
        hgz.write_hgz(parse_snapshot(doc), path)
    with pytest.raises(InvalidArgument, match="bits"):
        hgz.write_hgz(snap, path, bits=1)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.hgz"]
