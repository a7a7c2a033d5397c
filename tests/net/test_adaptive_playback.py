"""Gaussian video and V^3 playback over real HTTP (the tests' nginx through the fault proxy):
adaptive quality goes down under a rate limit and back up when it lifts, each frame equal to
its level's local decode; a segment the server answers 404 for is skipped with a warning; a
rate limit below the stream's bitrate makes the player stall and resume, never drop a frame;
a V^3 group's 20 videos arrive by parallel requests."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.gsvideo.gsv import open_manifest
from holoscope.codecs.gsvideo.v3 import STREAMS, open_v3, write_v3
from holoscope.core.frames import FailedFrame
from holoscope.core.player import Player, PlayerState
from holoscope.core.sources import source_for
from tests.net.faultproxy import FaultProxy

FRAMES, GOF = 12, 2


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("means", "scales", "quats", "opacities", "sh"))


@pytest.fixture(scope="module")
def layout(streams_dir: Path) -> Path:
    """A segmented layout with levels medium and low, in the served folder, at 5 fps: bitrates
    well below what the unlimited loopback link carries (about 7 Mbit/s through the proxy for
    segments this small), so the test's rate limits decide the level."""
    from holoscope.cli import main
    from tests.codecs.helpers import random_cloud
    from tests.gsvideo_data import coherent_sequence, write_ply_sequence

    folder = streams_dir / "adaptive"
    folder.mkdir(exist_ok=True)
    clip = coherent_sequence(FRAMES, source=random_cloud(800, 1, seed=2, profile="sog"), seed=5)
    write_ply_sequence(clip, folder / "abr-plys")
    assert main(["encode", "gsvideo", str(folder / "abr-plys"), "--gof", str(GOF), "--fps", "5", "--no-psnr", "-q",
                 "--segments", str(folder / "abr-segments"), "--levels", "low"]) == 0  # fmt: skip
    return folder / "abr-segments"


@pytest.fixture(scope="module")
def local(layout: Path) -> dict[str, list]:
    return {lv: [f.payload for f in open_manifest(layout, level=lv).frames_from(0)] for lv in ("medium", "low")}


def _url(proxy: FaultProxy, streams_dir: Path, path: Path) -> str:
    return proxy.url("streams/" + path.relative_to(streams_dir).as_posix())


def _bandwidth(layout: Path) -> dict[str, int]:
    return {lv["preset"]: lv["bandwidth"] for lv in json.loads((layout / "manifest.json").read_text())["levels"]}


def test_quality_goes_down_under_a_rate_limit_and_back_up(layout, local, streams_dir, proxy: FaultProxy):
    slow = _bandwidth(layout)["medium"] * 0.3 / 8  # bytes per second
    media = open_manifest(source_for(_url(proxy, streams_dir, layout / "manifest.json")), adaptive=True)
    adaptive = media.adaptive
    plan = [None, None, slow, slow, None, None]  # the link's rate while each group is fetched
    played = []
    for envelope in media.frames_from(0):
        played.append(envelope.payload)
        group = envelope.index // GOF
        if envelope.index % GOF == GOF - 1 and group + 1 < len(plan):
            proxy.set_rate(plan[group + 1])
    names = [adaptive.names[i] for i in adaptive.history]
    assert names[0] == "low" and names[1] == "medium"
    assert "low" in names[2:5] and names[-1] == "medium"
    for index, payload in enumerate(played):
        assert same(payload, local[names[index // GOF]][index]), index
    assert {r.path.rsplit("/", 2)[-2] for r in proxy.requests("abr-segments/.*mp4")} == {"low", "medium"}


def test_a_segment_answered_404_is_skipped(layout, local, streams_dir, proxy: FaultProxy, caplog):
    proxy.fail("abr-segments/medium/00003.mp4", 404, times=None)
    media = open_manifest(source_for(_url(proxy, streams_dir, layout) + "/"), adaptive=False)
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        played = [f.payload for f in media.frames_from(0)]
    assert len(played) == FRAMES
    for index, payload in enumerate(played):
        if index // GOF == 3:
            assert isinstance(payload, FailedFrame) and "group 4" in payload.message
        else:
            assert same(payload, local["medium"][index])
    assert any("group 4" in r.getMessage() for r in caplog.records)


def test_the_player_stalls_below_the_bitrate_and_drops_nothing(layout, streams_dir, proxy: FaultProxy):
    proxy.set_rate(_bandwidth(layout)["medium"] * 0.5 / 8)  # half the best level's bitrate
    media = open_manifest(source_for(_url(proxy, streams_dir, layout / "manifest.json")), level="medium")
    shown: list[int] = []
    with Player(media, resume_seconds=0.1) as player:
        player.play()
        deadline = time.monotonic() + 60
        while player.state is not PlayerState.ENDED and time.monotonic() < deadline:
            frame = player.poll()
            if frame is not None:
                shown.append(frame.index)
            time.sleep(0.005)
        stats = player.stats()
    assert shown == list(range(FRAMES))  # every frame, in order: none dropped
    assert stats["frames_dropped"] == 0 and stats["stalls"] >= 1 and stats["stalled_s"] > 0
    assert stats["throughput_bps"] > 0 and stats["level"] == "medium"


def test_a_v3_group_arrives_by_parallel_requests(streams_dir, proxy: FaultProxy):
    from tests.codecs.helpers import blob_cloud

    folder = streams_dir / "adaptive" / "v3"
    if not folder.exists():
        folder.parent.mkdir(exist_ok=True)
        write_v3([blob_cloud(0.1 * i, n=150, seed=i) for i in range(4)], folder, group_size=2)
    local = [f.payload for f in open_v3(folder).frames_from(0)]
    media = open_v3(source_for(_url(proxy, streams_dir, folder) + "/"))
    proxy.delay(r"v3/group\d", headers=0.05)  # every video answers late: one after another, 1 s a group
    started = time.monotonic()
    played = [f.payload for f in media.frames_from(0)]
    elapsed = time.monotonic() - started
    media.close()
    assert all(same(a, b) for a, b in zip(played, local, strict=True))
    videos = {r.path.split("v3/")[1] for r in proxy.requests(r"v3/group\d") if r.method == "GET"}
    assert videos == {f"group{g}/{s}.mp4" for g in (0, 1) for s in range(STREAMS)}
    assert elapsed < 2 * STREAMS * 0.05 * 0.6  # well under the time of serial requests


def test_a_replay_plays_the_better_level_it_already_has(layout, local, streams_dir, proxy: FaultProxy, monkeypatch):
    from tests.net.conftest import fresh_session

    url = _url(proxy, streams_dir, layout / "manifest.json")
    first = open_manifest(source_for(url), level="medium")  # watched once at the best level
    assert len([f for f in first.frames_from(0)]) == FRAMES
    fresh_session(monkeypatch)  # a new run: the disk cache holds every medium segment
    proxy.clear_log()
    proxy.set_rate(_bandwidth(layout)["medium"] * 0.3 / 8)  # a link too slow for medium
    media = open_manifest(source_for(url), adaptive=True)
    played = [f.payload for f in media.frames_from(0)]
    assert all(same(p, q) for p, q in zip(played, local["medium"], strict=True))  # medium, from the cache
    assert media.adaptive.throughput_bps is None  # cached reads measured no link
    assert not [r for r in proxy.requests("abr-segments/.*mp4") if r.sent > 0]
