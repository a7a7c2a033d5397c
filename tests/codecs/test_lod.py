"""Streamed LOD (lod-meta.json): the writer's levels and chunking, the reader's model and checks,
and hostile lod-meta.json files (each one clear holoscope error naming what is wrong)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats import lod_write
from holoscope.codecs.formats.lod import open_lod, parse_meta, read_lod
from holoscope.codecs.formats.lod_write import build_levels, decimate, merge_pairs, rotmats_to_quats, write_lod
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, OutputError
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media, resolve, writer_for
from holoscope.core.sources import source_for
from holoscope.core.splat_math import quats_to_rotmats
from tests.codecs.helpers import random_cloud


def spread_cloud(n: int = 6000, seed: int = 1, degree: int = 1) -> SplatCloud:
    """Splats spread over 60 units in x (several chunks at a small chunk size), small scales."""
    rng = np.random.default_rng(seed)
    cloud = random_cloud(n, degree, seed, profile="sog")
    means = cloud.means.copy()
    means[:, 0] = rng.uniform(-30, 30, n)
    return SplatCloud(means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, SplatCloud, dict]:
    out = tmp_path_factory.mktemp("lod") / "scene" / "lod-meta.json"
    cloud = spread_cloud()
    meta = write_lod(cloud, out, chunk_count=1, chunk_min=1, chunk_extent=16.0, iterations=2)
    return out, cloud, meta


# Decimation -----------------------------------------------------------------------------------


def test_rotmats_to_quats_inverts_quats_to_rotmats():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    back = rotmats_to_quats(quats_to_rotmats(q))
    assert np.allclose(np.abs(np.sum(back * q, axis=1)), 1.0, atol=1e-9)  # same rotation (q or -q)


def test_merging_two_splats_matches_their_moments():
    # Two equal isotropic splats at x = -1 and +1: the merge is centred, its variance along x is
    # sigma^2 + d^2, across it sigma^2; the opacity is that of the two overlapping at most.
    means = np.array([[-1.0, 0, 0], [1.0, 0, 0]], np.float32)
    scales = np.full((2, 3), 0.5, np.float32)
    quats = np.tile(np.array([1, 0, 0, 0], np.float32), (2, 1))
    sh = np.zeros((2, 1, 3), np.float32)
    sh[0, 0], sh[1, 0] = (1, 0, 0), (0, 0, 1)
    cloud = SplatCloud(means, scales, quats, np.array([0.5, 0.5], np.float32), sh)
    merged = merge_pairs(cloud, np.array([0]), np.array([1]))
    assert np.allclose(merged.means[0], 0, atol=1e-6)
    assert np.allclose(np.sort(merged.scales[0]), np.sort([np.sqrt(0.25 + 1.0), 0.5, 0.5]), atol=1e-5)
    axis = quats_to_rotmats(merged.quats)[0] @ np.diag(merged.scales[0] ** 2) @ quats_to_rotmats(merged.quats)[0].T
    assert axis[0, 0] == pytest.approx(1.25, abs=1e-5) and axis[1, 1] == pytest.approx(0.25, abs=1e-5)
    assert 0 < merged.opacities[0] <= 0.75 + 1e-6
    assert np.allclose(merged.sh[0, 0], (0.5, 0, 0.5), atol=1e-6)


def test_identical_splats_merge_into_one_like_them():
    cloud = random_cloud(1, 0, seed=5, profile="sog")
    pair = SplatCloud(*(np.concatenate([a, a]) for a in (cloud.means, cloud.scales, cloud.quats, cloud.opacities,
                                                         cloud.sh)))  # fmt: skip
    merged = merge_pairs(pair, np.array([0]), np.array([1]))
    assert np.allclose(merged.means, cloud.means, atol=1e-6)
    assert np.allclose(np.sort(merged.scales[0]), np.sort(cloud.scales[0]), rtol=1e-4)
    a = float(cloud.opacities[0])
    assert merged.opacities[0] == pytest.approx(1 - (1 - a) ** 2, rel=1e-5)


def test_decimation_halves_and_keeps_far_apart_splats_apart():
    cloud = spread_cloud(1001, seed=2)
    assert decimate(cloud).count == 501
    levels = build_levels(cloud)
    assert [c.count for c in levels] == [1001, 501, 251]  # the next would hold fewer than 128
    assert [c.count for c in build_levels(cloud, 2)] == [1001, 501]
    # Two small splats 10 units apart: no smear across the gap, the heavier one is kept as is.
    pair = SplatCloud(np.array([[0, 0, 0], [10, 0, 0]], np.float32), np.full((2, 3), 0.1, np.float32),
                      np.tile(np.array([1, 0, 0, 0], np.float32), (2, 1)), np.array([0.3, 0.9], np.float32),
                      np.zeros((2, 1, 3), np.float32))  # fmt: skip
    kept = decimate(pair)
    assert kept.count == 1 and np.allclose(kept.means[0], (10, 0, 0)) and kept.opacities[0] == np.float32(0.9)


# Writer and reader ----------------------------------------------------------------------------


def test_written_scene_is_chunked_as_splat_transform_does(written):
    out, cloud, meta = written
    assert meta["lodLevels"] == len(meta["counts"]) >= 4
    assert meta["counts"][0] == cloud.count and meta["count"] == sum(meta["counts"])
    assert meta["asset"]["chunkGaussians"] == 1024 and meta["asset"]["chunkExtent"] == 16.0
    # Files are <level>_<n>/meta.json, each a folder beside lod-meta.json.
    for name in meta["filenames"]:
        level, index = name.split("/")[0].split("_")
        assert name.endswith("/meta.json") and int(level) < meta["lodLevels"] and int(index) >= 0
        assert (out.parent / name).is_file()
    fields, nodes = parse_meta(out.read_bytes())
    leaves = [n for n in nodes if n.lods]
    assert len(leaves) > 3  # 60 units wide at extent 16, and 1K splats per chunk
    # Every leaf holds its region at every level; runs in a file are contiguous from 0.
    runs: dict[int, list[tuple[int, int]]] = {}
    for leaf in leaves:
        assert sorted(leaf.lods) == list(range(meta["lodLevels"]))
        for level, (file, offset, count) in leaf.lods.items():
            assert meta["filenames"][file].startswith(f"{level}_")
            runs.setdefault(file, []).append((offset, count))
    for items in runs.values():
        items.sort()
        assert items[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(items, items[1:]))
    # Bounds: a parent holds its children; the root holds every splat centre.
    for node in nodes:
        for child in node.children:
            assert np.all(np.array(nodes[child].bound_min) >= np.array(node.bound_min) - 1e-6)
            assert np.all(np.array(nodes[child].bound_max) <= np.array(node.bound_max) + 1e-6)
    assert np.all(cloud.means.min(axis=0) >= np.array(nodes[0].bound_min) - 1e-4)
    assert np.all(cloud.means.max(axis=0) <= np.array(nodes[0].bound_max) + 1e-4)


def test_leaf_bound_holds_its_splats(written):
    out, _, _ = written
    scene = read_lod(out)
    for i, leaf in enumerate(scene.leaves[:6]):
        chunk = scene.chunk(i, 0)
        assert np.all(chunk.means >= np.array(leaf.bound_min) - 1e-3)
        assert np.all(chunk.means <= np.array(leaf.bound_max) + 1e-3)


def test_full_scene_reads_back_the_input_splats(written):
    out, cloud, meta = written
    media = open_media(out)
    assert media.format == "lod" and media.reader == "holoscope.lod"
    full = media.frame(0)
    assert full.count == cloud.count and full.sh_degree == cloud.sh_degree
    for axis in range(3):  # SOG keeps 16 bits of log-space position
        assert np.allclose(np.sort(full.means[:, axis]), np.sort(cloud.means[:, axis]), atol=2e-3)
    assert np.allclose(np.sort(full.opacities), np.sort(cloud.opacities), atol=1 / 255 + 1e-6)
    info = full.metadata["format_info"]
    assert info["lod_levels"] == meta["lodLevels"] and info["lod_counts"] == meta["counts"]
    assert info["lod_files"] == len(meta["filenames"])


def test_each_level_and_file_is_decoded_once(written):
    out, _, meta = written
    scene = read_lod(out)
    coarse = scene.coarsest_cloud()
    assert coarse.count == meta["counts"][-1]
    loaded = scene.files_loaded
    assert loaded == len(scene.files_for(scene.levels - 1))
    scene.coarsest_cloud()
    scene.chunk(0, scene.levels - 1)
    assert scene.files_loaded == loaded  # from the cache


def test_cache_limit_evicts_files(written):
    out, _, _ = written
    scene = read_lod(out, cache_bytes=1)  # nothing fits: every file is decoded again
    scene.chunk(0, 0)
    scene.chunk(0, 0)
    assert scene.files_loaded == 2 and len(scene.cache) == 0


def test_opens_from_its_folder_and_the_registry_prefers_lod(written):
    out, cloud, _ = written
    assert resolve(out).name == "lod"
    assert resolve(out.parent).name == "lod"
    assert resolve(out.parent / "0_0" / "meta.json").name == "sog"
    assert open_media(out.parent).frame(0).count == cloud.count
    assert writer_for("x/lod-meta.json")[0].name == "lod"
    assert writer_for("x/meta.json")[0].name == "sog"


def test_rewrite_into_an_existing_folder_replaces_the_scene(tmp_path):
    out = tmp_path / "lod-meta.json"
    first = spread_cloud(900, seed=4, degree=0)
    write_lod(first, out)
    (tmp_path / "keep.txt").write_text("mine")
    second = spread_cloud(700, seed=5, degree=0)
    write_lod(second, out, levels=3)
    scene = read_lod(out)
    assert scene.counts[0] == 700 and scene.levels == 3
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OutputError("disk full (simulated)")

    monkeypatch.setattr(lod_write, "encode_sog", broken)
    out = tmp_path / "new" / "lod-meta.json"
    with pytest.raises(OutputError):
        write_lod(spread_cloud(600, degree=0), out)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="does not exist"):
        write_lod(spread_cloud(600, degree=0), tmp_path / "a" / "b" / "lod-meta.json")


# Hostile lod-meta.json -----------------------------------------------------------------------


def _leaf(file=0, offset=0, count=10, level="0"):
    return {"bound": {"min": [0, 0, 0], "max": [1, 1, 1]}, "lods": {level: {"file": file, "offset": offset,
                                                                             "count": count}}}  # fmt: skip


def _meta(**changes):
    meta = {"version": 1, "lodLevels": 1, "counts": [10], "count": 10, "filenames": ["0_0/meta.json"],
            "tree": _leaf()}  # fmt: skip
    meta.update(changes)
    return json.dumps(meta).encode()


def _deep(depth: int) -> dict:
    node = _leaf()
    for _ in range(depth):
        node = {"bound": {"min": [0, 0, 0], "max": [1, 1, 1]}, "children": [node]}
    return node


@pytest.mark.parametrize("data, needle", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (_meta(version=2), "version"),
    (_meta(lodLevels=0), "lodLevels"),
    (_meta(lodLevels=True), "lodLevels"),
    (_meta(counts=[11]), "counts[0]"),
    (_meta(counts=[10, 0]), "counts must list 1"),
    (_meta(count=12), "count = 12"),
    (_meta(filenames=[]), "filenames"),
    (_meta(filenames=["../x/meta.json"]), "outside the scene"),
    (_meta(filenames=["/etc/meta.json"]), "outside the scene"),
    (_meta(filenames=["c:/x/meta.json"]), "outside the scene"),
    (_meta(filenames=["a\\b"]), "bad file name"),
    (_meta(filenames=[7]), "filenames[0]"),
    (_meta(tree=_leaf(file=1)), "file = 1"),
    (_meta(tree=_leaf(offset=-1)), "offset = -1"),
    (_meta(tree=_leaf(count="10")), "count must be an integer"),
    (_meta(tree=_leaf(level="1")), "level = 1"),
    (_meta(tree=_leaf(level="x")), "not a level number"),
    (_meta(tree={"lods": {}}), "bound"),
    (_meta(tree={"bound": {"min": [0, 0, 0], "max": [1, 1, 1]}}), "neither children nor lods"),
    (_meta(tree={"bound": {"min": [2, 0, 0], "max": [1, 1, 1]}, "lods": {}}), "above bound.max"),
    (_meta(tree={"bound": {"min": [0, 0], "max": [1, 1, 1]}, "lods": {}}), "3 numbers"),
    (_meta(tree={"bound": {"min": [0, 0, 0], "max": [1, 1, 1]}, "children": []}), "non-empty list"),
    (_meta(tree={"bound": {"min": [0, 0, 0], "max": [1, 1, 1]}, "children": [_leaf(count=5), _leaf(offset=3, count=5)]},
           counts=[10], count=10), "overlap"),  # fmt: skip
    (_meta(tree=_deep(80)), "deeper than"),
    (_meta(tree=[]), "tree"),
])  # fmt: skip
def test_hostile_meta_is_one_clear_error(data, needle):
    with pytest.raises(CorruptStream) as info:
        parse_meta(data, "lod-meta.json")
    assert needle in str(info.value)


def test_empty_finest_level_is_empty_media():
    with pytest.raises(EmptyMedia):
        parse_meta(_meta(tree=_leaf(count=0), counts=[0], count=0))


def test_oversized_meta_is_refused_before_parsing(tmp_path, monkeypatch):
    from holoscope.codecs.formats import lod

    monkeypatch.setattr(lod, "MAX_META_BYTES", 64)
    path = tmp_path / "lod-meta.json"
    path.write_bytes(_meta())
    with pytest.raises(CorruptStream, match="larger than"):
        read_lod(path)


@pytest.fixture()
def scene_dir(tmp_path, written) -> Path:
    out, _, _ = written
    folder = tmp_path / "copy"
    shutil.copytree(out.parent, folder)
    return folder


def test_missing_chunk_file_names_it(scene_dir):
    meta = json.loads((scene_dir / "lod-meta.json").read_text())
    shutil.rmtree(scene_dir / meta["filenames"][0].split("/")[0])
    media = open_lod(source_for(scene_dir / "lod-meta.json"))
    with pytest.raises(CorruptStream, match="missing") as info:
        media.frame(0)
    assert meta["filenames"][0] in str(info.value)


def test_run_beyond_its_file_is_refused_on_load(scene_dir):
    meta = json.loads((scene_dir / "lod-meta.json").read_text())

    def grow(node):
        for child in node.get("children", []):
            grow(child)
        for ref in node.get("lods", {}).values():
            if ref["file"] == 0:
                ref["offset"] += 10_000
    grow(meta["tree"])
    (scene_dir / "lod-meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptStream, match="reads up to"):
        open_lod(source_for(scene_dir / "lod-meta.json")).frame(0)


def test_chunk_name_through_a_link_out_of_the_scene_is_not_followed(scene_dir, tmp_path):
    # A name may not climb out with '..'; the check is on the name, before anything is read.
    meta = json.loads((scene_dir / "lod-meta.json").read_text())
    meta["filenames"][0] = "0_0/../../elsewhere/meta.json"
    (scene_dir / "lod-meta.json").write_text(json.dumps(meta))
    with pytest.raises(HoloscopeError, match="outside the scene"):
        open_lod(source_for(scene_dir / "lod-meta.json"))


def test_invisible_splats_write_and_read_back(tmp_path):
    # Opacity bytes of 0 amid smoothly varying colours: libwebp then stores predicted colours, not
    # the zeros written, under alpha 0. Written anyway (those splats are invisible), read back at 0.
    n = 3000
    x = np.linspace(-5, 5, n, dtype=np.float32)
    means = np.stack([x, np.zeros(n, np.float32), np.zeros(n, np.float32)], axis=1)
    sh = (x[:, None, None] * np.array([0.3, 0.5, 0.7], np.float32)[None, None, :]).astype(np.float32)
    opacities = np.full(n, 0.8, np.float32)
    opacities[::4] = 1e-4
    cloud = SplatCloud(means, np.full((n, 3), 0.01, np.float32), np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)),
                       opacities, sh)  # fmt: skip
    out = tmp_path / "lod-meta.json"
    write_lod(cloud, out, levels=1)
    full = read_lod(out).full_cloud()
    assert full.count == n and int(np.count_nonzero(full.opacities == 0)) == len(opacities[::4])
    visible = np.sort(full.sh[full.opacities > 0, 0, 0])
    assert np.allclose(visible, np.sort(sh[opacities > 0.5, 0, 0]), atol=0.03)  # 256-entry codebook
