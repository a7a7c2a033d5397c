"""GlSplatRenderer keeps its GPU buffers from frame to frame (issue 8).

A sequence of frames uploaded into one renderer must draw exactly what a fresh renderer per
frame draws (no stale splats of a larger earlier frame, SH degree changes honoured), reuse the
buffers while the frame fits and grow them with headroom when it does not.

Runs on a real standalone EGL context (Mesa llvmpipe in CI); any GL error fails the test.
"""

from __future__ import annotations

import moderngl
import numpy as np
import pytest

from holoscope.core.camera import Camera, look_at
from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.render.gl.splat_renderer import GROWTH, GlSplatRenderer, OffscreenTarget, RenderSettings
from holoscope.render.sort import sort_back_to_front
from tests.render.test_gl_splats import psnr, synthetic_cloud

pytestmark = pytest.mark.gl
MIN_PSNR = 60.0  # the same data drawn twice: identical up to half-float noise at most
CAMERA = Camera(96, 72, 55, look_at(np.array([0.4, 0.6, 3.0]), np.zeros(3), np.array([0, 1.0, 0])))
BACKGROUND = RenderSettings(background=(0.1, 0.2, 0.3))


def empty_cloud() -> SplatCloud:
    z = np.zeros
    return SplatCloud(z((0, 3), np.float32), z((0, 3), np.float32), z((0, 4), np.float32),
                      z(0, np.float32), z((0, 1, 3), np.float32))  # fmt: skip


def all_buffers(r: GlSplatRenderer) -> list:
    return [*r._buffers, r._order, r._projected]


def draw(renderer: GlSplatRenderer, target: OffscreenTarget, cloud: SplatCloud,
         settings: RenderSettings = BACKGROUND) -> np.ndarray:  # fmt: skip
    target.begin()
    renderer.set_order(sort_back_to_front(cloud.means, CAMERA.view_matrix, CAMERA.near))
    renderer.draw(CAMERA, settings)
    return target.read_rgb(settings.background)


@pytest.fixture
def gl(gl_ctx):
    """(the reused renderer, a function rendering a cloud with a brand-new renderer, target)."""
    target = OffscreenTarget(gl_ctx, CAMERA.width, CAMERA.height)
    reused = GlSplatRenderer(gl_ctx)

    def fresh(cloud: SplatCloud, settings: RenderSettings = BACKGROUND) -> np.ndarray:
        r = GlSplatRenderer(gl_ctx)
        try:
            r.upload(cloud)
            return draw(r, target, cloud, settings)
        finally:
            r.release()

    yield reused, fresh, target
    reused.release()
    target.release()


def test_frame_sequence_matches_a_fresh_renderer_per_frame(gl):
    reused, fresh, target = gl
    # Shrinking, growing, SH degree down and up, and a smaller frame of another scene after a
    # larger one (its stale splats would show in the gaps).
    frames = [(1000, 3), (500, 1), (1200, 3), (300, 0), (1200, 2), (700, 3), (1500, 0), (1, 3), (1000, 3)]
    for i, (n, degree) in enumerate(frames):
        cloud = synthetic_cloud(n, degree, seed=100 + i)
        reused.upload(cloud)
        got = draw(reused, target, cloud)
        want = fresh(cloud)
        assert np.abs(want - np.asarray(BACKGROUND.background, np.float32)).max() > 0.05, "the frame shows splats"
        assert psnr(got, want) >= MIN_PSNR, (i, n, degree)
        # The SH limit of the settings still applies on a reused SH buffer of a higher degree.
        if degree == 3 and n == 700:
            low = RenderSettings(background=BACKGROUND.background, sh_degree_limit=1)
            assert psnr(draw(reused, target, cloud, low), fresh(cloud, low)) >= MIN_PSNR


def test_same_count_lower_sh_degree_reuses_and_draws_right(gl):
    """Same splats, SH 3 then the same cloud cut to SH 1: the stride follows the new cloud."""
    reused, fresh, target = gl
    sh3 = synthetic_cloud(800, 3, seed=7)
    sh1 = SplatCloud(sh3.means, sh3.scales, sh3.quats, sh3.opacities, sh3.sh[:, :4].copy())
    reused.upload(sh3)
    before = all_buffers(reused)
    reused.upload(sh1)
    assert all(a is b for a, b in zip(before, all_buffers(reused)))
    got = draw(reused, target, sh1)
    assert psnr(got, fresh(sh1)) >= MIN_PSNR
    assert psnr(got, fresh(sh3)) < MIN_PSNR, "SH 1 and SH 3 must give different pictures here"


def test_buffers_are_reused_when_the_frame_fits_and_grown_when_not(gl, gl_ctx, monkeypatch):
    reused, _fresh, _target = gl
    created: list[int] = []
    real_buffer = gl_ctx.buffer

    def counting_buffer(*args, **kwargs):
        buf = real_buffer(*args, **kwargs)
        created.append(buf.size)
        return buf

    monkeypatch.setattr(gl_ctx, "buffer", counting_buffer)

    reused.upload(synthetic_cloud(1000, 3, seed=1))
    assert len(created) == 5  # centres, covariances, SH, order, projected: exact sizes at first
    assert [b.size for b in all_buffers(reused)] == [16_000, 32_000, 1000 * 16 * 12, 4000, 48_000]
    first = all_buffers(reused)
    first_glo = [b.glo for b in first]

    # Frames that fit: fewer splats, lower SH degree, another frame of the same size.
    for n, degree, seed in [(1000, 3, 2), (500, 1, 3), (999, 0, 4), (1000, 2, 5), (0, 0, 6)]:
        cloud = synthetic_cloud(n, degree, seed=seed) if n else empty_cloud()
        reused.upload(cloud)
        assert reused.cloud is cloud
        now = all_buffers(reused)
        assert all(a is b for a, b in zip(first, now)) and [b.glo for b in now] == first_glo
    assert len(created) == 5, "no allocation while the frames fit"

    # 10% more splats: every per-splat buffer grows, with headroom; the old ones are released.
    reused.upload(synthetic_cloud(1100, 3, seed=8))
    grown = all_buffers(reused)
    assert len(created) == 10
    assert all(a is not b for a, b in zip(first, grown))
    assert all(isinstance(b.mglo, moderngl.InvalidObject) for b in first)  # released
    need = [1100 * 16, 1100 * 32, 1100 * 16 * 12, 1100 * 4, 1100 * 48]
    assert all(int(x * GROWTH) <= b.size < int(x * GROWTH) + 16 for b, x in zip(grown, need)), [b.size for b in grown]

    # Within the headroom: reused again.
    reused.upload(synthetic_cloud(int(1100 * GROWTH), 3, seed=9))
    assert all(a is b for a, b in zip(grown, all_buffers(reused)))
    assert len(created) == 10

    # A lower SH degree, then SH 3 again within the capacity: still no allocation.
    reused.upload(synthetic_cloud(600, 1, seed=10))
    small_sh = all_buffers(reused)
    assert len(created) == 10
    reused.upload(synthetic_cloud(1300, 3, seed=11))  # fits the grown SH buffer (1375 x 16)
    assert len(created) == 10 and all(a is b for a, b in zip(small_sh, all_buffers(reused)))


def test_sh_degree_growth_replaces_only_the_sh_buffer(gl):
    reused, fresh, target = gl
    sh0 = synthetic_cloud(900, 0, seed=12)
    reused.upload(sh0)
    before = all_buffers(reused)
    sh3 = synthetic_cloud(900, 3, seed=13)
    reused.upload(sh3)
    after = all_buffers(reused)
    assert [a is b for a, b in zip(before, after)] == [True, True, False, True, True]
    assert after[2].size >= sh3.sh.nbytes
    assert psnr(draw(reused, target, sh3), fresh(sh3)) >= MIN_PSNR


def test_zero_and_tiny_frames_in_a_sequence(gl):
    reused, fresh, target = gl
    bg = np.asarray(BACKGROUND.background, np.float32)

    # A zero-splat frame first: placeholders, only the background; then real frames grow.
    empty = empty_cloud()
    reused.upload(empty)
    assert np.allclose(draw(reused, target, empty), bg, atol=1e-3)
    big = synthetic_cloud(1200, 3, seed=20)
    reused.upload(big)
    assert psnr(draw(reused, target, big), fresh(big)) >= MIN_PSNR

    # A zero-splat frame after a big one: only the background, nothing of the big frame.
    reused.upload(empty)
    assert np.allclose(draw(reused, target, empty), bg, atol=1e-3)
    reused.draw(CAMERA, BACKGROUND)  # no order at all: draws nothing, no GL error

    # One splat, then two: exactly what a fresh renderer draws.
    for n in (1, 2):
        tiny = synthetic_cloud(n, 3, seed=21 + n)
        reused.upload(tiny)
        assert psnr(draw(reused, target, tiny), fresh(tiny)) >= MIN_PSNR


def test_a_new_upload_forgets_the_previous_order(gl):
    reused, _fresh, target = gl
    big = synthetic_cloud(1000, 3, seed=30)
    reused.upload(big)
    stale = sort_back_to_front(big.means, CAMERA.view_matrix, CAMERA.near)
    small = synthetic_cloud(400, 3, seed=31)
    reused.upload(small)

    # Until the new frame is sorted nothing is drawn (not the old order over the new splats).
    target.begin()
    reused.draw(CAMERA, BACKGROUND)
    assert np.allclose(target.read_rgb(BACKGROUND.background), BACKGROUND.background, atol=1e-3)

    # An order of the larger previous frame is refused rather than drawing stale records.
    with pytest.raises(InvalidArgument):
        reused.set_order(stale)
    with pytest.raises(InvalidArgument):
        reused.set_order(np.array([0, 399, 400], np.uint32))  # index past the current cloud
    reused.set_order(np.arange(400, dtype=np.uint32)[::-1])  # a complete order of its own is fine
