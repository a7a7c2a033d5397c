"""The procedural demo video: valid, deterministic clouds whose motion is smooth and loops;
its cached .gsv (``demo-video``): encoded once, reused, encoded again when damaged."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pytest

from holoscope.assets import demo_video
from holoscope.assets.demo_video import demo_video_frames
from holoscope.codecs.gsvideo import encode
from holoscope.codecs.inputs import open_input
from holoscope.core.errors import InvalidArgument
from holoscope.core.media import MediaKind

FIELDS = ("means", "scales", "quats", "opacities", "sh")
FRAMES, SPLATS = 60, 3000  # the default loop length


@pytest.fixture(scope="module")
def frames():
    return demo_video_frames(FRAMES, SPLATS)


def test_valid_clouds(frames) -> None:
    assert len(frames) == FRAMES
    for cloud in frames:
        assert cloud.count == SPLATS and cloud.sh_degree == 0
        for name in FIELDS:
            arr = getattr(cloud, name)
            assert arr.dtype == np.float32 and np.all(np.isfinite(arr)), name
        assert np.allclose(np.linalg.norm(cloud.quats, axis=1), 1, atol=1e-5)
        assert np.all((cloud.opacities > 0) & (cloud.opacities <= 1))
        assert np.all(cloud.scales > 0)
        colors = cloud.base_colors()
        assert np.all((colors >= 0) & (colors <= 1 + 1e-5))
        assert colors.std(axis=0).min() > 0.1, "varied colours"


def test_deterministic(frames) -> None:
    again = demo_video_frames(FRAMES, SPLATS)
    for a, b in zip(frames, again):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    other = demo_video_frames(2, SPLATS, seed=1)
    assert not np.array_equal(frames[0].means, other[0].means)


def _steps(a, b) -> tuple[float, float]:
    """(largest splat move, largest rotation change up to sign) from cloud a to cloud b."""
    move = float(np.linalg.norm(b.means - a.means, axis=1).max())
    turn = float(np.max(1 - np.abs(np.sum(a.quats * b.quats, axis=1))))
    return move, turn


def test_moves_smoothly_and_loops(frames) -> None:
    size = float(np.linalg.norm(np.ptp(frames[0].means, axis=0)))
    steps = [_steps(a, b) for a, b in zip(frames, frames[1:])]
    moves = np.array([m for m, _ in steps])
    assert moves.min() > 0.002 * size, "every frame moves"
    assert moves.max() < 0.05 * size, "no jumps"
    assert max(t for _, t in steps) < 0.005, "rotations change a little per frame"
    # Splats keep their sign of quaternion from frame to frame (codecs predict them).
    assert all(np.all(np.sum(a.quats * b.quats, axis=1) > 0) for a, b in zip(frames, frames[1:]))
    # The loop closes: from the last frame back to the first is one ordinary step.
    back, back_turn = _steps(frames[-1], frames[0])
    assert back <= 1.5 * moves.max() and back_turn < 0.005
    # Whatever its length, the clip is one loop: twice the frames, each step half as long.
    slower = demo_video_frames(2 * FRAMES, SPLATS)
    for k in (1, FRAMES // 2, FRAMES - 1):
        np.testing.assert_allclose(slower[2 * k].means, frames[k].means, atol=1e-5)


def test_refuses_empty() -> None:
    with pytest.raises(InvalidArgument):
        demo_video_frames(0)
    with pytest.raises(InvalidArgument):
        demo_video_frames(2, 0)


# The cached .gsv ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """The demo video encoded once into a private cache folder: (path, seconds it took)."""
    cache = tmp_path_factory.mktemp("demo-video-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOLOSCOPE_CACHE", str(cache))
        started = time.perf_counter()
        path = demo_video.demo_video_path()
        seconds = time.perf_counter() - started
    return path, seconds


def _no_encoding(*args, **kwargs):
    raise AssertionError("demo_video_path encoded the demo video again")


def _small_frames(frames: int = 60, splats: int = 20_000, seed: int = 0):
    return demo_video_frames(frames, 400, seed)  # re-encoding in tests: the clip's length, fewer splats


def test_demo_video_path_encodes_once_into_the_cache(cached, monkeypatch) -> None:
    path, seconds = cached
    cache = path.parent.parent
    assert path.parent == cache / "holoscope" and path.name == f"demo-video-v{demo_video.DEMO_VIDEO_VERSION}.gsv"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left behind"
    assert seconds < 30, f"encoding the demo video took {seconds:.1f} s"
    monkeypatch.setenv("HOLOSCOPE_CACHE", str(cache))
    monkeypatch.setattr(encode, "encode_gsvideo", _no_encoding)
    stamp = path.stat().st_mtime_ns
    assert demo_video.demo_video_path() == path  # reused as it is
    assert path.stat().st_mtime_ns == stamp


def test_the_demo_video_opens_as_a_60_frame_gaussian_video(cached) -> None:
    path, _ = cached
    media = open_input(path)
    try:
        assert media.kind is MediaKind.SPLAT_VIDEO and media.kind.is_timed_splats
        assert media.frame_count == demo_video.DEMO_VIDEO_FRAMES == 60 and media.fps == 30
        assert media.info["preset"] == "medium" and media.info["groups"] == 2
        assert media.info["default_up"] == demo_video.UP == "+y"
        first = media.frame(0)
        want = demo_video_frames(1)[0]
        assert first.count == want.count == 20_000
        # Lossy, but the same Gaussians in the same place (the knot is ~3.5 units across).
        err = np.linalg.norm(np.sort(first.means, axis=0) - np.sort(want.means, axis=0), axis=1)
        assert np.median(err) < 0.01
        frames = list(media.frames_from(55))
        assert [f.index for f in frames] == [55, 56, 57, 58, 59] and not any(f.failed for f in frames)
    finally:
        media.release()


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "not a gsv", "empty"])
def test_a_damaged_cache_is_encoded_again(cached, tmp_path, monkeypatch, damage) -> None:
    good, _ = cached
    monkeypatch.setenv("HOLOSCOPE_CACHE", str(tmp_path))
    path = tmp_path / "holoscope" / good.name
    path.parent.mkdir()
    data = bytearray(good.read_bytes())
    if damage == "flipped byte":
        data[-1000] ^= 0x40  # inside the last group's segment: only its checksum notices
    elif damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "not a gsv":
        data = bytearray(b"ply\n" + bytes(5000))
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    monkeypatch.setattr(demo_video, "demo_video_frames", _small_frames)
    assert demo_video.demo_video_path() == path
    assert path.read_bytes() != bytes(data), "the damaged file was replaced"
    media = open_input(path)
    try:
        assert media.kind is MediaKind.SPLAT_VIDEO and media.frame_count == 60 and not media.info["missing_groups"]
        assert media.frame(59).count == 400
    finally:
        media.release()
    monkeypatch.setattr(encode, "encode_gsvideo", _no_encoding)
    assert demo_video.demo_video_path() == path  # and reused from then on


def test_an_unwritable_cache_falls_back_to_a_temporary_folder(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("HOLOSCOPE_CACHE", str(blocker))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(demo_video, "demo_video_frames", _small_frames)
    path = demo_video.demo_video_path()
    assert path.parent == tmp_path / "tmp" and path.name.endswith(".gsv") and path.is_file()
    monkeypatch.setattr(encode, "encode_gsvideo", _no_encoding)
    assert demo_video.demo_video_path() == path
