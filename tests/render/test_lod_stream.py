"""The LOD streamer (holoscope/render/lod_stream.py), headless: coarse levels first, refinement in
need order, the splat budget, eviction under a small byte limit, a complete stream equal to the
whole scene, and no leaf ever missing once shown. Scenes: a synthetic cloud written by
``write_lod`` in several chunk files, and one written by splat-transform (skipped without it)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.lod import read_lod
from holoscope.codecs.formats.lod_write import write_lod
from holoscope.core.camera import Camera, look_at
from holoscope.core.errors import HoloscopeError, InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.render.lod_stream import LodStreamer, default_budget
from tests.codecs.test_lod import spread_cloud
from tests.interop import conftest as interop

splat_transform = interop.splat_transform  # the interop tests' fixture (skips without splat-transform)

UP = np.array([0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory) -> Path:
    """6000 splats over 60 units in x: 16 leaves, 6 levels, 14 chunk files."""
    out = tmp_path_factory.mktemp("lod-stream") / "scene" / "lod-meta.json"
    write_lod(spread_cloud(6000, seed=4), out, chunk_count=1, chunk_min=1, chunk_extent=16.0, iterations=1)
    return out


def camera_at(x: float, distance: float = 12.0, size: tuple[int, int] = (320, 240)) -> Camera:
    """Looking down -z at the point (x, 0, 0) of the scene's long axis from ``distance``."""
    eye = np.array([x, 0.0, distance])
    return Camera(size[0], size[1], 60.0, look_at(eye, np.array([x, 0.0, 0.0]), UP))


class Gate:
    """Holds back the loading of every file except the ``open_files`` until released."""

    def __init__(self, scene, open_files: set[int]) -> None:
        self.open_files = set(open_files)
        self.released = threading.Event()
        self.started: list[int] = []
        load = scene.load_file

        def gated(file: int) -> SplatCloud:
            self.started.append(file)
            if file not in self.open_files:
                assert self.released.wait(30), "the gate was never released"
            return load(file)

        scene.load_file = gated


def settle(streamer: LodStreamer, cam: Camera, timeout: float = 60.0) -> SplatCloud | None:
    """Show ``cam`` as a viewer does: re-select after each arrival until nothing changes. (Files
    a shown leaf holds stay until the view shows something else, which then frees room.)"""
    deadline = time.monotonic() + timeout
    cloud, version = streamer.cloud_for_view(cam)
    while time.monotonic() < deadline:
        assert streamer.wait_idle(max(0.1, deadline - time.monotonic()))
        cloud, again = streamer.cloud_for_view(cam)
        if again == version and streamer.wait_idle(0.1):
            return cloud
        version = again
    raise AssertionError("the stream did not settle")


def clouds_equal(a: SplatCloud, b: SplatCloud) -> bool:
    return a.count == b.count and all(np.array_equal(getattr(a, k), getattr(b, k))
                                      for k in ("means", "scales", "quats", "opacities", "sh"))  # fmt: skip


def coarse_files(scene) -> set[int]:
    return set(scene.files_for(scene.levels - 1))


# The first image and the order of refinement ------------------------------------------------


def test_coarsest_level_of_every_leaf_shows_first(scene_path):
    scene = read_lod(scene_path)
    gate = Gate(scene, coarse_files(scene))
    with LodStreamer(scene, budget=None, workers=2) as streamer:
        cam = camera_at(-25.0)
        assert streamer.cloud_for_view(cam) == (None, 0)  # nothing has arrived yet: nothing drawn
        assert streamer.wait_idle(0.5) is False  # finer files are held back by the gate
        deadline = time.monotonic() + 20
        while not coarse_files(scene) <= set(streamer.loaded_files()) and time.monotonic() < deadline:
            time.sleep(0.01)
        cloud, version = streamer.cloud_for_view(cam)
        assert version == 1 and cloud is not None
        coarsest = scene.levels - 1
        assert (streamer.shown_levels == coarsest).all()
        assert cloud.count == scene.counts[coarsest]
        assert clouds_equal(cloud, read_lod(scene_path).coarsest_cloud())
        # Only the coarse files (and at most one finer file per loader, held at the gate) were asked for.
        assert set(gate.started) - coarse_files(scene) <= set(gate.started[-2:])
        assert set(streamer.fetch_log) == coarse_files(scene)
        gate.released.set()
        assert streamer.wait_idle(30)
        cloud, version = streamer.cloud_for_view(cam)
        assert version == 2 and (streamer.shown_levels == 0).all()


def test_refinement_follows_need_for_the_camera(scene_path):
    scene = read_lod(scene_path)
    cam = camera_at(-25.0, distance=10.0)  # near the left end: left leaves need more
    selection = scene.select(cam, None)
    with LodStreamer(scene, budget=None, workers=1) as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        log = list(streamer.fetch_log)
    assert log == scene.fetch_plan(selection)  # one loader: exactly the plan's order
    coarse = coarse_files(scene)
    assert set(log[: len(coarse)]) == coarse  # the coarsest level of every leaf first
    # Each leaf refines coarse to fine, and the first finer file is the most needed leaf's.
    arrival = {file: i for i, file in enumerate(log)}
    for leaf, node in enumerate(scene.leaves):
        times = [arrival[node.lods[level][0]] for level in sorted(node.lods, reverse=True)]
        assert all(a <= b for a, b in zip(times, times[1:])), f"leaf {leaf} refined out of order"
    first_finer = log[len(coarse)]
    most_needed = int(np.argmax(selection.need))
    assert first_finer in {run[0] for run in scene.leaves[most_needed].lods.values()}


def test_a_new_camera_reorders_what_is_fetched_next(scene_path):
    scene = read_lod(scene_path)
    gate = Gate(scene, coarse_files(scene))
    with LodStreamer(scene, budget=None, workers=1) as streamer:
        streamer.set_camera(camera_at(-25.0, distance=6.0))
        streamer.set_camera(camera_at(25.0, distance=6.0))  # the newest camera wins
        deadline = time.monotonic() + 20
        while len(gate.started) <= len(coarse_files(scene)) and time.monotonic() < deadline:
            time.sleep(0.01)
        right = scene.select(camera_at(25.0, distance=6.0), None)
        first_finer = gate.started[len(coarse_files(scene))]
        assert first_finer == scene.fetch_plan(right)[len(coarse_files(scene))]
        gate.released.set()


# Budget --------------------------------------------------------------------------------------


def test_budget_is_respected_and_settable(scene_path):
    scene = read_lod(scene_path)
    budget = scene.counts[0] // 3
    cam = camera_at(0.0, distance=40.0)
    with LodStreamer(scene, budget=budget) as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        cloud, _ = streamer.cloud_for_view(cam)
        selection = scene.select(cam, budget)
        assert cloud.count == selection.total <= budget
        assert scene.counts[-1] < cloud.count < scene.counts[0]
        # Only the files the budgeted selection shows were fetched: level 0 of some leaves never.
        assert set(streamer.fetch_log) == set(scene.fetch_plan(selection))
        assert not set(scene.files_for(0)) <= set(streamer.fetch_log)
        progress = streamer.progress()
        assert progress.complete and progress.loaded_files == progress.needed_files
        assert progress.shown_splats == cloud.count and sum(progress.shown_per_level) == len(scene.leaves)
        # A larger budget shows more.
        streamer.set_budget(scene.counts[0])
        assert streamer.wait_idle(60)
        bigger, _ = streamer.cloud_for_view(cam)
        assert bigger.count == scene.counts[0]
        with pytest.raises(InvalidArgument):
            streamer.set_budget(0)


def test_default_budget_from_the_gpu_limit():
    assert default_budget(None) == 3_000_000
    assert default_budget(1 << 27) == (1 << 27) // 192  # Mesa llvmpipe's 128 MiB: ~700k SH3 splats
    assert default_budget(1 << 31) == 3_000_000  # a desktop GPU: capped
    assert default_budget(1 << 20) == 250_000  # a tiny limit: floored


# Memory --------------------------------------------------------------------------------------


def test_eviction_under_a_small_byte_limit_never_drops_what_is_shown(scene_path):
    whole = read_lod(scene_path)
    sizes = {f: whole.load_file(f).nbytes for f in range(len(whole.filenames))}
    finest = set(whole.files_for(0))
    # Every coarser level fits, and two files of level 0: moving along the scene must evict.
    limit = sum(sizes[f] for f in sizes if f not in finest) + 2 * max(sizes[f] for f in finest)
    scene = read_lod(scene_path)
    with LodStreamer(scene, budget=None, cache_bytes=limit, workers=1) as streamer:
        ever_shown = np.zeros(len(scene.leaves), bool)
        for x in (-25.0, -8.0, 8.0, 25.0, -25.0):
            cam = camera_at(x, distance=4.0)
            settle(streamer, cam)
            shown = streamer.shown_levels
            assert (shown[ever_shown] >= 0).all()  # no leaf disappears once shown
            ever_shown |= shown >= 0
            loaded = set(streamer.loaded_files())
            shown_files = {scene.leaves[i].lods[int(level)][0] for i, level in enumerate(shown) if level >= 0}
            assert shown_files <= loaded
            progress = streamer.progress()
            assert progress.loaded_bytes <= limit
            # Near leaves get level 0 even under the limit.
            need = scene.select(cam, None).need
            assert shown[int(np.argmax(need))] == 0
        assert ever_shown.all()
        assert streamer.evicted > 0
        assert streamer.fetched > len(scene.filenames)  # evicted files came back when needed again


# Completeness --------------------------------------------------------------------------------


def test_complete_stream_equals_the_whole_scene_and_versions_are_stable(scene_path):
    scene = read_lod(scene_path)
    cam = camera_at(0.0, distance=30.0)
    with LodStreamer(scene, budget=None) as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        cloud, version = streamer.cloud_for_view(cam)
        again, same = streamer.cloud_for_view(cam)
        assert again is cloud and same == version  # nothing changed: nothing to re-upload
    assert clouds_equal(cloud, read_lod(scene_path).full_cloud())


@pytest.mark.parametrize("tight", [False, True], ids=["roomy cache", "tight cache"])
def test_no_leaf_goes_missing_while_the_camera_moves_during_loading(scene_path, tight):
    scene = read_lod(scene_path)
    load = scene.load_file
    sizes = [load(f).nbytes for f in range(len(scene.filenames))]
    # Tight: about the coarse levels and two finer files, so loaders evict while the view builds.
    limit = sum(sizes) // 2 if tight else 1 << 30

    def slow(file: int) -> SplatCloud:
        time.sleep(0.02)
        return load(file)

    scene.load_file = slow
    with LodStreamer(scene, budget=scene.counts[0] // 2, workers=2, cache_bytes=limit) as streamer:
        ever = np.zeros(len(scene.leaves), bool)
        versions = []
        for step in range(60):
            cam = camera_at(-30.0 + step, distance=5.0 + (step % 7))
            cloud, version = streamer.cloud_for_view(cam)
            shown = streamer.shown_levels
            assert (shown[ever] >= 0).all(), f"step {step}: a leaf shown before is missing"
            ever |= shown >= 0
            if cloud is not None:
                assert cloud.count == sum(scene.leaf_counts[i, level] for i, level in enumerate(shown) if level >= 0)
            shown_files = {scene.leaves[i].lods[int(level)][0] for i, level in enumerate(shown) if level >= 0}
            assert shown_files <= set(streamer.loaded_files()), "a shown file was evicted"
            versions.append(version)
            time.sleep(0.01)
        assert versions == sorted(versions)
        assert ever.all()
        if tight:
            assert streamer.evicted > 0


def test_a_missing_chunk_file_is_skipped_with_a_warning(scene_path, tmp_path):
    import shutil

    folder = tmp_path / "scene"
    shutil.copytree(scene_path.parent, folder)
    scene = read_lod(folder / "lod-meta.json")
    fine = scene.files_for(0)[0]
    shutil.rmtree(folder / scene.filenames[fine].split("/")[0])
    cam = camera_at(0.0, distance=30.0)
    with LodStreamer(scene, budget=None) as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        cloud, _ = streamer.cloud_for_view(cam)
        assert streamer.warning is not None and scene.filenames[fine] in streamer.warning
        assert streamer.progress().failed == 1
        shown = streamer.shown_levels
        assert (shown >= 0).all()  # leaves in the missing file show a coarser level instead
        missing = [i for i, node in enumerate(scene.leaves) if node.lods[0][0] == fine]
        assert missing and all(shown[i] > 0 for i in missing)
        assert all(shown[i] == 0 for i in range(len(shown)) if i not in missing)
        assert all(t.is_alive() for t in streamer._threads)  # the loaders survived


def test_a_file_that_failed_on_the_network_is_fetched_again(scene_path, monkeypatch):
    import holoscope.render.lod_stream as lod_stream
    from holoscope.core.errors import NetworkError

    monkeypatch.setattr(lod_stream, "RETRY_FAILED_S", 0.05)
    scene = read_lod(scene_path)
    fine = scene.files_for(0)[0]
    load, failures = scene.load_file, []

    def flaky(file: int) -> SplatCloud:
        if file == fine and len(failures) < 2:
            failures.append(file)
            raise NetworkError("connection reset by the server (gave up after 5 tries)")
        return load(file)

    scene.load_file = flaky
    cam = camera_at(0.0, distance=30.0)
    with LodStreamer(scene, budget=None) as streamer:
        cloud = settle(streamer, cam)
        assert failures == [fine, fine] and streamer.progress().failed == 0
        assert clouds_equal(cloud, read_lod(scene_path).cloud_for(0))  # full detail in the end


# A scene written by splat-transform ------------------------------------------------------------


def test_splat_transform_scene_streams_to_its_full_detail(splat_transform, samples_dir, tmp_path):
    out = tmp_path / "st" / "lod-meta.json"
    splats = samples_dir / "splats"
    cmd = [str(splat_transform.binary), "-w", "-q", "-g", "cpu", str(splats / "lod4.ply"), "-l", "0",
           str(splats / "lod5.ply"), "-l", "1", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=interop.TIMEOUT_S, check=False)
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    scene = read_lod(out)
    eye = np.array([2.0 + 4.5, 0.5, 4.6])
    cam = Camera(160, 120, 50.0, look_at(eye, np.array([2.0, 2.0, 4.6]), np.array([0, -1.0, 0])))
    with LodStreamer(scene, budget=None, workers=1) as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(120)
        first = streamer.fetch_log[: len(coarse_files(scene))]
        cloud, _ = streamer.cloud_for_view(cam)
    assert set(first) == coarse_files(scene)
    assert clouds_equal(cloud, read_lod(out).full_cloud())


def test_closing_does_not_wait_for_a_download_in_flight(scene_path):
    scene = read_lod(scene_path)
    gate = Gate(scene, coarse_files(scene))
    streamer = LodStreamer(scene, budget=None, workers=2)
    streamer.set_camera(camera_at(0.0))
    deadline = time.monotonic() + 20
    while len(gate.started) <= len(coarse_files(scene)) and time.monotonic() < deadline:
        time.sleep(0.01)  # a loader is now held inside a finer file's fetch
    start = time.monotonic()
    streamer.close(wait=False)
    assert time.monotonic() - start < 0.5
    gate.released.set()
    for thread in streamer._threads:
        thread.join(10)
        assert not thread.is_alive()  # the held loader ends once its fetch returns


def test_direct_refinement_skips_the_intermediate_levels(scene_path):
    scene = read_lod(scene_path)
    cam = camera_at(0.0, distance=30.0)
    with LodStreamer(scene, budget=None, workers=1, refine="direct") as streamer:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        cloud, _ = streamer.cloud_for_view(cam)
        log = list(streamer.fetch_log)
    coarse = coarse_files(scene)
    assert set(log[: len(coarse)]) == coarse
    assert set(log) == coarse | set(scene.files_for(0))  # nothing from levels 1..L-2
    assert clouds_equal(cloud, read_lod(scene_path).full_cloud())
    with pytest.raises(HoloscopeError, match="refine"):
        LodStreamer(scene, refine="sideways")
