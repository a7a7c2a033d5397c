"""A V^3 stream over a non-local Source (tests/remote_source.py): opened by its folder or its
group_info.json it plays the same frames as the local folder, a group's 20 videos are fetched
side by side (never more than 6 at once), a seek fetches only its group, and a missing video
skips its group with a warning while the others play."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from holoscope.codecs.gsvideo.v3 import REMOTE_FETCHES, STREAMS, open_v3, write_v3
from holoscope.core.errors import CorruptStream
from holoscope.core.frames import FailedFrame
from tests.remote_source import Link

from .helpers import blob_cloud

FRAMES, GROUP = 6, 2


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("means", "scales", "quats", "opacities", "sh"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("v3served")
    write_v3([blob_cloud(0.1 * i, n=150, seed=i) for i in range(FRAMES)], root / "stream", group_size=GROUP)
    return root


@pytest.fixture(scope="module")
def local_frames(served):
    return [f.payload for f in open_v3(served / "stream").frames_from(0)]


def test_remote_stream_plays_like_the_local_one(served, local_frames):
    link = Link(served)
    link.rate = 4e6  # slow enough that the fetches of a group overlap
    for target in ("stream/", "stream/group_info.json"):
        media = open_v3(link.source(target))
        assert media.info["streamed"] and media.frame_count == FRAMES and media.info["file_bytes"] is None
        played = [f.payload for f in media.frames_from(0)]
        assert all(same(a, b) for a, b in zip(played, local_frames, strict=True))
        media.close()
    assert 2 <= link.peak <= REMOTE_FETCHES
    assert media.adaptive.stats()["throughput_bps"] > 0


def test_a_seek_fetches_only_its_group(served, local_frames):
    link = Link(served)
    media = open_v3(link.source("stream/"))
    link.reads.clear()
    assert same(media.frame(2 * GROUP + 1), local_frames[2 * GROUP + 1])
    names = set(link.names_read())  # (a whole-file read ends with an empty read at the end)
    assert names == {f"stream/group2/{s}.mp4" for s in range(STREAMS)}
    media.close()


def test_a_missing_video_skips_its_group(served, local_frames, caplog):
    link = Link(served)
    link.fail["stream/group1/7.mp4"] = ConnectionResetError("connection reset by peer")
    media = open_v3(link.source("stream/"))
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        played = [f.payload for f in media.frames_from(0)]
    for index, payload in enumerate(played):
        if index // GROUP == 1:
            assert isinstance(payload, FailedFrame) and "group 2" in payload.message
        else:
            assert same(payload, local_frames[index])
    assert any("group 2" in r.getMessage() and "7.mp4" in r.getMessage() for r in caplog.records)
    (link.root / "stream" / "group0" / "3.mp4").rename(link.root / "stream" / "gone.mp4")
    try:
        media = open_v3(link.source("stream/"))
        with pytest.raises(CorruptStream, match="missing group0/3.mp4"):
            media.frame(0)
    finally:
        (link.root / "stream" / "gone.mp4").rename(link.root / "stream" / "group0" / "3.mp4")


def test_a_remote_folder_without_tables_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptStream, match="missing group_info.json"):
        open_v3(Link(tmp_path).source("empty/"))


def test_a_remote_group_larger_than_the_budget_is_skipped(served, monkeypatch, caplog):
    from holoscope.core import budget

    media = open_v3(Link(served).source("stream/"))
    sizes = sum((served / "stream" / "group1" / f"{s}.mp4").stat().st_size for s in range(STREAMS))
    real = budget.require

    def tight(nbytes, *, what, path=None):  # the group's decode fits; its 20 videos do not
        if "videos of" in what and nbytes > sizes // 2:
            real(10**15, what=what, path=path)
        real(nbytes, what=what, path=path)

    monkeypatch.setattr(budget, "require", tight)
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        played = [f.payload for f in media.frames_from(0)]
    assert all(isinstance(p, FailedFrame) and "memory budget" in p.message for p in played)
    media.close()
