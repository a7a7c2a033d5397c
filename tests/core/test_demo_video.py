"""The procedural demo video: valid, deterministic clouds whose motion is smooth and loops."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.assets.demo_video import demo_video_frames
from holoscope.core.errors import InvalidArgument

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
