"""Plain video over HTTP: an HLS playlist served by nginx opens through PyAV (FFmpeg fetches the
playlist and its segments) and decodes to the same pictures as the local copy."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from holoscope.codecs.inputs import open_input

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command writes the HLS stream")


@pytest.fixture(scope="module")
def hls_folder(streams_dir):
    folder = streams_dir / "hls"
    folder.mkdir(exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30",
                    "-t", "2", "-c:v", "libx264", "-g", "15", "-hls_time", "0.5", "-hls_playlist_type", "vod",
                    str(folder / "index.m3u8")], check=True)  # fmt: skip
    return folder


def _pictures(media, n):
    return [np.asarray(media.frame(i).planes[0]).copy() for i in range(n)]


def test_an_hls_url_plays_like_its_local_copy(nginx, hls_folder):
    remote = open_input(nginx.url("streams/hls/index.m3u8"))
    local = open_input(hls_folder / "index.m3u8")
    try:
        assert remote.frame_count == local.frame_count == 60
        assert remote.fps == pytest.approx(30)
        for a, b in zip(_pictures(remote, 3), _pictures(local, 3)):
            assert np.array_equal(a, b)
        last = remote.frame_count - 1  # a seek into the last segment
        assert np.array_equal(np.asarray(remote.frame(last).planes[0]), np.asarray(local.frame(last).planes[0]))
    finally:
        remote.release()
        local.release()
