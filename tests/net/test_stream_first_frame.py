"""Playing while downloading, over a rate-limited link (the fault proxy's bandwidth limit): the
first frame of a Gaussian video or NeRV stream, and the first picture of a row-ordered splat
file, come well before the whole file could have been downloaded; a seek fetches only the part
it needs; a missing segment is skipped with a warning and playback goes on."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.inputs import open_input
from holoscope.core.frames import FailedFrame
from holoscope.core.player import Player, PlayerState
from tests.net.client import get
from tests.net.faultproxy import FaultProxy
from tests.net.streams import write_gsv

RATE = 1_000_000  # bytes/s through the proxy: 1.2-1.5 s for the test streams
SLOW_RATE = 500_000  # for the first frame alone: more room for a decode on a busy machine
FIRST_BEFORE = 0.6  # the first frame before this fraction of the whole download's time


@pytest.fixture(scope="module")
def big(streams_dir: Path) -> dict[str, Path]:
    """Streams a few times larger than a 256 KiB part, so a first part is a small share."""
    from holoscope.core.registry import writer_for
    from tests.codecs.helpers import random_cloud
    from tests.nerv_data import write_tiny_nerv

    folder = streams_dir / "big"
    folder.mkdir(exist_ok=True)
    ply = folder / "cloud.ply"
    _, write = writer_for(ply, "ply")
    write(random_cloud(20_000, 0, seed=4), ply)  # 68 bytes a splat: 1.36 MB
    return {
        "gsv": write_gsv(folder, frames=32, splats=6000, gof=4, name="long", segments=True),
        "nerv": write_tiny_nerv(folder / "long.nerv", frames=600, fps=30, width=320, height=160),
        "ply": ply,
    }


def _url(proxy: FaultProxy, streams_dir: Path, path: Path) -> str:
    return proxy.url("streams/" + path.relative_to(streams_dir).as_posix())


def _full_download_s(size: int, rate: float = RATE) -> float:
    """The least time the whole file takes through the link (a real download takes longer)."""
    return size / rate


def _warm(path: Path) -> None:
    """Open the local copy once: imports (torch for NeRV) are not the link's time."""
    media = open_input(path)
    try:
        next(iter(media.frames_from(0)))
    finally:
        media.release()


@pytest.mark.parametrize("link", ["proxy", "nginx"])
@pytest.mark.parametrize("kind", ["gsv", "nerv"])
def test_first_frame_long_before_the_whole_download(kind, link, big, streams_dir: Path, nginx, proxy: FaultProxy) -> None:
    """``proxy``: one rate for the whole link; ``nginx``: its ``limit_rate`` per connection,
    which lets a burst through first, so the whole download is timed by a plain GET."""
    path = big[kind]
    _warm(path)
    if link == "proxy":
        url = _url(proxy, streams_dir, path)
        proxy.set_rate(SLOW_RATE)
        full = _full_download_s(path.stat().st_size, SLOW_RATE)
    else:
        url = nginx.url(f"rate/{RATE}/streams/" + path.relative_to(streams_dir).as_posix())
        whole = get(url)
        assert len(whole.body) == path.stat().st_size
        full = whole.seconds
    proxy.clear_log()
    start = time.monotonic()
    media = open_input(url)
    try:
        player = Player(media, streamed=True)  # as the app plays a URL
        player.play()
        frame = None
        while frame is None and time.monotonic() - start < 3 * full:
            frame = player.poll()
            time.sleep(0.005)
        first = time.monotonic() - start
        player.close()
    finally:
        media.release()
    assert frame is not None and frame.index == 0
    assert first < FIRST_BEFORE * full, (first, full)




@pytest.mark.parametrize("kind", ["gsv", "nerv", "video"])
def test_a_url_is_played_as_a_stream(kind, big, streams_dir: Path, samples_dir: Path, proxy: FaultProxy) -> None:
    """A medium read over a link says so, and the player then waits for late frames."""
    if kind == "video":
        url = proxy.url("samples/video/bunny-132f-360p-ffv1.mkv")
    else:
        url = _url(proxy, streams_dir, big[kind])
    media = open_input(url)
    try:
        assert media.info.get("streamed") is True
        assert Player(media).streamed
    finally:
        media.release()


def test_a_splat_file_shows_its_first_splats_while_it_downloads(big, streams_dir: Path, proxy: FaultProxy) -> None:
    from holoscope.codecs.progressive import iter_prefixes
    from holoscope.codecs.formats.ply_inria import read_ply
    from holoscope.core.sources import source_for

    path = big["ply"]
    url = _url(proxy, streams_dir, path)
    proxy.set_rate(RATE)
    full = _full_download_s(path.stat().st_size)
    start = time.monotonic()
    first = None
    counts = []
    for partial in iter_prefixes(source_for(url)):
        if partial.cloud is not None:
            counts.append(partial.cloud.means.shape[0])
            first = first or time.monotonic() - start
        last = partial
    assert first is not None and first < FIRST_BEFORE * full, (first, full)
    assert last.final and counts == sorted(counts) and len(counts) >= 3
    whole = read_ply(path)
    assert np.array_equal(last.cloud.means, whole.means)


def test_a_seek_fetches_only_what_it_needs(big, streams_dir: Path, proxy: FaultProxy) -> None:
    path = big["gsv"]
    url = _url(proxy, streams_dir, path)
    media = open_input(url)
    try:
        opened = proxy.body_bytes(path.name)
        frame = next(iter(media.frames_from(29)))  # the last group
        assert frame.index == 29
    finally:
        media.release()
    log = proxy.requests(path.name)
    size = path.stat().st_size
    total = sum(r.sent for r in log)
    assert total < 0.6 * size, (total, size, [(r.range, r.sent) for r in log])
    later = [r for r in log if r.range and r.sent and int(r.range.split("=")[1].split("-")[0]) > size // 2]
    assert later, "the end of the file was read by range"
    assert opened < total


def test_a_seek_back_is_served_from_the_cache(big, streams_dir: Path, proxy: FaultProxy) -> None:
    path = big["gsv"]
    media = open_input(_url(proxy, streams_dir, path))
    try:
        first = [f.index for f in media.frames_from(0)][:8]
        assert first == list(range(8))
        proxy.clear_log()
        again = next(iter(media.frames_from(0)))
        assert again.index == 0
    finally:
        media.release()
    assert proxy.body_bytes(path.name) == 0


def test_a_missing_segment_is_skipped_with_a_warning(big, streams_dir: Path, proxy: FaultProxy, caplog) -> None:
    manifest = big["gsv"].parent / "long-segments" / "manifest.json"
    proxy.fail(r"/00002\.mp4$", 404, times=None)  # the third group, frames 8..11
    caplog.set_level(logging.WARNING)
    media = open_input(_url(proxy, streams_dir, manifest))
    try:
        frames = list(media.frames_from(0))
    finally:
        media.release()
    failed = [f.index for f in frames if isinstance(f.payload, FailedFrame)]
    good = [f.index for f in frames if not isinstance(f.payload, FailedFrame)]
    assert failed == [8, 9, 10, 11], failed
    assert good == [i for i in range(32) if i not in failed]
    assert any("group 3" in r.getMessage() or "00002" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_a_player_goes_on_past_a_missing_segment(big, streams_dir: Path, proxy: FaultProxy) -> None:
    manifest = big["gsv"].parent / "long-segments" / "manifest.json"
    proxy.fail(r"/00001\.mp4$", 404, times=None)  # the second group is missing
    media = open_input(_url(proxy, streams_dir, manifest))
    states, shown = set(), []
    try:
        player = Player(media)
        player.play()
        deadline = time.monotonic() + 20
        while player.state is not PlayerState.ENDED and time.monotonic() < deadline:
            frame = player.poll()
            states.add(player.state)
            if frame is not None:
                shown.append(frame.index)
            time.sleep(0.005)
        warning = player.warning
        player.close()
    finally:
        media.release()
    assert player.state is PlayerState.ENDED
    assert shown and shown[0] == 0 and max(shown) == 31
    assert not any(4 <= i <= 7 for i in shown)
    assert PlayerState.FAILED_FRAME in states and warning
