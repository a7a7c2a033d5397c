"""Gaussian video over a non-local Source (tests/remote_source.py: a folder served through
read_range only): the segmented layout and the .gsv file play as they do locally, a seek reads
only its group's bytes, a missing or unreadable segment is skipped with a warning naming its
group, and adaptive quality goes down under a low rate and back up when it lifts, every frame
equal to that level's own decode."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.gsvideo import container
from holoscope.codecs.gsvideo.encode import encode_gsvideo
from holoscope.codecs.gsvideo.gsv import open_gsv, open_manifest
from holoscope.core.errors import SourceNotFound
from holoscope.core.frames import FailedFrame, SplatCloud
from tests.gsvideo_data import coherent_sequence
from tests.remote_source import Link

from .helpers import random_cloud

FRAMES = 12
GOF = 2
GROUPS = FRAMES // GOF


def same(a: SplatCloud, b: SplatCloud) -> bool:
    return a.count == b.count and all(np.array_equal(getattr(a, k), getattr(b, k))
                                      for k in ("means", "scales", "quats", "opacities", "sh"))  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A folder with a segmented layout (levels medium and low) in segs/ and one.gsv."""
    root = tmp_path_factory.mktemp("served")
    frames = coherent_sequence(FRAMES, source=random_cloud(600, degree=2, seed=4), seed=1)
    encode_gsvideo(frames, root / "one.gsv", preset="medium", gof=GOF, segments=root / "segs", levels=["low"])
    return root


@pytest.fixture(scope="module")
def local_frames(served) -> dict[str, list[SplatCloud]]:
    """Each level's frames decoded from the local folder, and the .gsv file's."""
    out = {lv: [f.payload for f in open_manifest(served / "segs", level=lv).frames_from(0)] for lv in ("medium", "low")}
    out["file"] = [f.payload for f in open_gsv(served / "one.gsv").frames_from(0)]
    return out


def test_remote_layout_plays_like_the_local_one(served, local_frames):
    link = Link(served)
    for target in (link.source("segs/"), link.source("segs/manifest.json")):
        media = open_manifest(target, adaptive=False)
        assert media.info["streamed"] and media.info["level"] == "medium" and media.frame_count == FRAMES
        played = [f.payload for f in media.frames_from(0)]
        assert all(same(a, b) for a, b in zip(played, local_frames["medium"], strict=True))
    # open_gsv dispatches a remote folder and a manifest URL the same way
    assert open_gsv(link.source("segs/")).info["layout"] == "segments"
    assert "medium/00003.mp4" in [n.split("segs/")[1] for n in link.names_read() if "/0" in n]


def test_remote_file_plays_like_the_local_one_and_a_seek_reads_only_its_group(served, local_frames):
    link = Link(served)
    media = open_gsv(link.source("one.gsv"))
    assert media.info["streamed"] and media.info["layout"] == "file"
    header = container.read_header((served / "one.gsv").read_bytes(), 0, "one.gsv")[0]
    link.reads.clear()
    target = 3 * GOF + 1  # the second frame of group 4
    assert same(media.frame(target), local_frames["file"][target])
    entry = header.groups[3]
    assert link.reads == [("one.gsv", entry.offset, entry.length)]
    played = [f.payload for f in media.frames_from(0)]
    assert all(same(a, b) for a, b in zip(played, local_frames["file"], strict=True))
    assert media.adaptive.stats()["throughput_bps"] > 0


def test_a_seek_in_a_remote_layout_reads_only_its_segment(served, local_frames):
    link = Link(served)
    media = open_manifest(link.source("segs/manifest.json"), adaptive=False)
    link.reads.clear()
    target = 4 * GOF  # the first frame of group 5
    assert same(media.frame(target), local_frames["medium"][target])
    length = (served / "segs" / "medium" / "00004.mp4").stat().st_size
    assert link.reads == [("segs/medium/00004.mp4", 0, length)]


@pytest.mark.parametrize("failure", [SourceNotFound("404 Not Found"), ConnectionResetError("connection reset"),
                                     "damaged"])  # fmt: skip
def test_a_missing_or_failing_segment_is_skipped(served, local_frames, failure, caplog, tmp_path):
    root = served
    if failure == "damaged":  # a copy of the layout with one segment's bytes flipped
        import shutil

        root = tmp_path / "copy"
        shutil.copytree(served / "segs", root / "segs")
        segment = root / "segs" / "medium" / "00002.mp4"
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
    link = Link(root)
    if failure != "damaged":
        link.fail["segs/medium/00002.mp4"] = failure
    media = open_manifest(link.source("segs/"), adaptive=False)
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        played = [f.payload for f in media.frames_from(0)]
    assert len(played) == FRAMES
    for index, payload in enumerate(played):
        if index // GOF == 2:
            assert isinstance(payload, FailedFrame) and "group 3" in payload.message
        else:
            assert same(payload, local_frames["medium"][index])
    assert any("group 3" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


def test_adaptive_level_follows_the_rate(served, local_frames):
    levels = json.loads((served / "segs" / "manifest.json").read_text())["levels"]
    bandwidth = {lv["preset"]: lv["bandwidth"] for lv in levels}  # bits per second
    assert bandwidth["medium"] > bandwidth["low"] * 1.2
    link = Link(served)
    media = open_manifest(link.source("segs/"), adaptive=True)
    adaptive = media.adaptive
    assert adaptive.adaptive and adaptive.level_name == "low"  # starts at the safe level
    # the disk's rate (the controller counts at most 2x medium's bitrate) for groups 1-2, 0.3 of
    # medium's bitrate for groups 3-4, the disk's again for groups 5-6
    slow = bandwidth["medium"] * 0.3 / 8  # bytes per second
    plan = [None, None, slow, slow, None, None]
    played = []
    for envelope in media.frames_from(0):
        played.append(envelope.payload)
        group = envelope.index // GOF
        if envelope.index % GOF == GOF - 1 and group + 1 < GROUPS:
            link.rate = plan[group + 1]  # the rate the next group's read sees
    names = [adaptive.names[i] for i in adaptive.history]
    assert len(names) == GROUPS
    assert names[0] == "low" and names[1] == "medium"  # up once the first read measured the link
    assert "low" in names[2:5]  # down while the link is slow
    assert names[-1] == "medium"  # and back up once it lifts
    assert adaptive.switches >= 3
    for index, payload in enumerate(played):  # every frame is its level's own decode
        assert same(payload, local_frames[names[index // GOF]][index]), index
    stats = adaptive.stats()
    assert stats["level"] == "medium" and stats["throughput_bps"] > 0
    assert media.info["level"] == "medium"


def test_a_url_reads_the_best_level_until_a_player_plays_it(served, local_frames):
    from holoscope.core.player import Player

    link = Link(served)
    media = open_manifest(link.source("segs/"))
    assert media.info["adaptive"] and not media.adaptive.engaged and media.info["level"] == "medium"
    played = [f.payload for f in media.frames_from(0)]  # what render and convert read
    assert all(same(a, b) for a, b in zip(played, local_frames["medium"], strict=True))
    media = open_manifest(link.source("segs/"))
    with Player(media, now=lambda: 0.0) as player:
        assert player.streamed and player.buffer_seconds == 2.0
        player.poll()  # real-time playback engages the controller
        assert media.adaptive.engaged
        assert {"level", "throughput_bps", "buffer_s", "stalls", "stalled_s"} <= set(player.stats())


def test_fixed_level_does_not_adapt(served, monkeypatch):
    link = Link(served)
    media = open_manifest(link.source("segs/"), level="low")
    assert not media.adaptive.adaptive
    link.rate = None
    [f for f in media.frames_from(0)]
    assert set(media.adaptive.history) == {1} and media.info["level"] == "low"
    monkeypatch.setenv("HOLOSCOPE_GSV_LEVEL", "medium")
    media = open_manifest(link.source("segs/"))
    [f for f in media.frames_from(0)]
    assert set(media.adaptive.history) == {0}


def test_a_remote_segment_the_manifest_inflates_is_not_downloaded(served, tmp_path):
    import shutil

    from holoscope.core.errors import BudgetExceeded
    from tests.codecs.test_gsvideo_hostile import rewrite_manifest

    root = tmp_path / "served"
    shutil.copytree(served / "segs", root / "segs")
    rewrite_manifest(root / "segs", lambda b: b["levels"][0]["header"]["groups"][0].update(length=1 << 40))
    link = Link(root)
    media = open_manifest(link.source("segs/manifest.json"), adaptive=False)
    with pytest.raises(BudgetExceeded, match="segment 'medium/00000.mp4'"):
        media.frame(0)
    assert not [n for n in link.names_read() if n.endswith("medium/00000.mp4")]  # asked of the budget first
