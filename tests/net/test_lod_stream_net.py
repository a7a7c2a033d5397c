"""The LOD streamer over HTTP (nginx on loopback through the fault proxy, at a bandwidth limit): the
first image is drawn once the coarse files alone have been fetched (the proxy's request log), and
full detail after every file has arrived, equal to the scene read from its folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.lod import read_lod
from holoscope.codecs.formats.lod_write import write_lod
from holoscope.core.camera import Camera, look_at
from holoscope.render.lod_stream import LodStreamer
from tests.codecs.test_lod import spread_cloud
from tests.net.faultproxy import FaultProxy

RATE = 400_000  # bytes/s: the whole scene (1.2 MB) takes about 3 s, its coarse level (32 KB) under 0.1 s


@pytest.fixture(scope="module")
def served(streams_dir: Path) -> Path:
    """20,000 splats in several chunk files per level under /streams/lod-stream/."""
    out = streams_dir / "lod-stream" / "lod-meta.json"
    if not out.exists():
        write_lod(spread_cloud(20000, seed=31, degree=1), out, chunk_count=4, chunk_min=1, chunk_extent=12.0,
                  iterations=1)  # fmt: skip
    return out


def folders(proxy: FaultProxy, *, done_before: float | None = None) -> set[str]:
    """The chunk folders whose files the proxy served (finished before ``done_before``)."""
    out = set()
    for r in proxy.requests("/lod-stream/.+/", wait=done_before is None):
        if done_before is None or (r.end is not None and r.end <= done_before):
            out.add(r.path.split("/lod-stream/")[1].split("/")[0])
    return out


def test_first_image_after_the_coarse_files_full_detail_after_all(proxy: FaultProxy, served: Path) -> None:
    local = read_lod(served)
    coarse = {local.filenames[f].split("/")[0] for f in local.files_for(local.levels - 1)}
    every = {name.split("/")[0] for name in local.filenames}
    assert len(every) > 2 * len(coarse)  # several files per level: streaming has something to save
    cam = Camera(320, 240, 60.0, look_at(np.array([0.0, 0.0, 40.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])))

    proxy.set_rate(RATE)
    start = time.monotonic()
    scene = read_lod(proxy.url("streams/lod-stream/lod-meta.json"))
    first: dict[str, object] = {}
    lock = threading.Lock()

    def arrived() -> None:
        # On the (only) loader thread: nothing else is fetched while this looks.
        with lock:
            if "at" in first:
                return
            cloud, _ = streamer.cloud_for_view(cam)
            if cloud is not None:
                first.update(at=time.monotonic(), count=cloud.count, served=folders(proxy, done_before=time.monotonic()))

    streamer = LodStreamer(scene, budget=None, workers=1, on_change=arrived)
    try:
        streamer.set_camera(cam)
        assert streamer.wait_idle(60)
        full_at = time.monotonic()
        cloud, _ = streamer.cloud_for_view(cam)
    finally:
        streamer.close()
    assert first, "no image was ever drawn"
    assert first["served"] == coarse  # the first image needed the coarse files only
    assert first["count"] == local.counts[-1]
    assert folders(proxy) == every  # full detail fetched everything, each file once
    assert len(proxy.requests("/lod-stream/.+/meta.json")) == len(local.filenames)
    full = local.full_cloud()
    assert cloud.count == full.count and np.array_equal(cloud.means, full.means) and np.array_equal(cloud.sh, full.sh)
    first_s, full_s = first["at"] - start, full_at - start
    assert first_s < 0.5 * full_s, f"first image at {first_s:.2f} s, full detail at {full_s:.2f} s"
