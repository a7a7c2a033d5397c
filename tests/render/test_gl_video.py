"""The OpenGL video renderer against PyAV's (swscale's) own YUV -> RGB conversion.

Frames come from PyAV: RGB pictures converted by swscale to YUV with a given matrix and range,
and real encoder output (libx264 4:2:0 limited and full range, FFV1 4:4:4) decoded back. Planes
are read straight from ``frame.planes`` honouring ``line_size`` (padded rows reach the
renderer as strided views). GL tests run on a real EGL context and fail on any GL error.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import VideoFrame
from holoscope.render.gl.video_renderer import (
    GlVideoRenderer,
    fit_rect,
    render_video_frame,
    yuv_to_rgb_matrix,
)

gl = pytest.mark.gl

MATRICES = ("bt601", "bt709", "bt2020")
RANGES = ("limited", "full")
AV_COLORSPACE = {"bt601": "ITU601", "bt709": "ITU709", "bt2020": "BT2020"}
AV_RANGE = {"limited": "MPEG", "full": "JPEG"}
# AVColorSpace / AVColorRange codes found on decoded frames.
FROM_AV_COLORSPACE = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}
FROM_AV_RANGE = {1: "limited", 2: "full"}
# Written out independently of the module under test: (Kr, Kb).
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


# Helpers -----------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def smooth_rgb(h: int, w: int, phase: float = 0.0) -> np.ndarray:
    """Saturated colour fields with gentle slopes (at most ~3 levels per pixel, periods of
    about 250 px, whatever the frame size): the "smooth content" on which 4:2:0 chroma
    interpolation choices stay below 40 dB apart."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / 256.0, yy / 256.0
    r = 0.5 + 0.45 * np.sin(2 * np.pi * (u + phase))
    g = 0.5 + 0.45 * np.cos(2 * np.pi * (v + 0.5 * u + 0.1))
    b = 0.5 + 0.45 * np.sin(1.5 * np.pi * (u - v) + 2 * np.pi * phase + 1.0)
    return np.clip(np.stack([r, g, b], -1) * 255 + 0.5, 0, 255).astype(np.uint8)


def noise_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def av_planes(frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
    """Bit-exact plane views (row 0 at the top), padding rows of ``line_size`` cut off."""
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        if frame.format.name == "rgb24":
            out.append(rows[:, : plane.width * 3].reshape(plane.height, plane.width, 3))
        else:
            out.append(rows[:, : plane.width])
    return tuple(out)


def to_video_frame(
    frame: av.VideoFrame,
    color_matrix: str = "bt709",
    color_range: str = "limited",
    sample_aspect: Fraction = Fraction(1),
) -> VideoFrame:
    fmt = {"yuvj420p": "yuv420p", "yuvj444p": "yuv444p"}.get(frame.format.name, frame.format.name)
    return VideoFrame(
        av_planes(frame), fmt, frame.width, frame.height, 0.0, 0, color_matrix, color_range, sample_aspect
    )


def av_yuv(rgb: np.ndarray, fmt: str, matrix: str, rng: str) -> av.VideoFrame:
    """swscale's RGB -> YUV conversion with an explicit matrix and range."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=fmt, dst_colorspace=AV_COLORSPACE[matrix], dst_color_range=AV_RANGE[rng]
    )


def av_rgb(frame: av.VideoFrame, matrix: str, rng: str) -> np.ndarray:
    """swscale's YUV -> RGB conversion: the oracle."""
    return frame.reformat(
        format="rgb24", src_colorspace=AV_COLORSPACE[matrix], src_color_range=AV_RANGE[rng]
    ).to_ndarray()


def reference_420(planes: tuple[np.ndarray, ...], matrix: str, rng: str) -> np.ndarray:
    """float64 numpy twin: bilinear chroma with MPEG-2 "left" siting, then the exact matrix."""
    y, u, v = (p.astype(np.float64) for p in planes)
    h, w = y.shape

    def taps(coords: np.ndarray, n: int):
        base = np.floor(coords)
        i0 = np.clip(base.astype(int), 0, n - 1)
        i1 = np.clip(base.astype(int) + 1, 0, n - 1)
        return i0, i1, coords - base

    # chroma column j sits on luma column 2j; chroma row j midway between luma rows 2j, 2j+1
    x0, x1, fx = taps((np.arange(w) + 0.5) / 2 - 0.25, u.shape[1])
    y0, y1, fy = taps((np.arange(h) + 0.5) / 2 - 0.5, u.shape[0])

    def up(c: np.ndarray) -> np.ndarray:
        top = c[y0][:, x0] * (1 - fx) + c[y0][:, x1] * fx
        bottom = c[y1][:, x0] * (1 - fx) + c[y1][:, x1] * fx
        return top * (1 - fy)[:, None] + bottom * fy[:, None]

    return reference_rgb(y, up(u), up(v), matrix, rng)


def reference_rgb(y, u, v, matrix: str, rng: str) -> np.ndarray:
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    if rng == "limited":
        yn, pb, pr = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    else:
        yn, pb, pr = y / 255, (u - 128) / 255, (v - 128) / 255
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], -1) * 255 + 0.5, 0, 255).astype(np.uint8)


def yuv_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray, fmt: str, matrix="bt709", rng="limited") -> VideoFrame:
    return VideoFrame((y, u, v), fmt, y.shape[1], y.shape[0], 0.0, 0, matrix, rng)


def rgb_frame(rgb: np.ndarray, sample_aspect: Fraction = Fraction(1)) -> VideoFrame:
    return VideoFrame((rgb,), "rgb24", rgb.shape[1], rgb.shape[0], 0.0, 0, sample_aspect=sample_aspect)


def solid(h: int, w: int, color) -> np.ndarray:
    return np.broadcast_to(np.asarray(color, np.uint8), (h, w, 3)).copy()


def bar_rows(img: np.ndarray, color) -> np.ndarray:
    """Boolean per row: every pixel of the row equals ``color``."""
    return np.all(img == np.asarray(color, np.uint8), axis=(1, 2))


def bar_cols(img: np.ndarray, color) -> np.ndarray:
    return np.all(img == np.asarray(color, np.uint8), axis=(0, 2))


# Pure functions ----------------------------------------------------------------------------
def test_fit_rect_letterbox_and_pillarbox():
    assert fit_rect(2.0, 100, 100) == (0, 25, 100, 50)
    assert fit_rect(0.5, 100, 100) == (25, 0, 50, 100)
    assert fit_rect(16 / 9, 1920, 1080) == (0, 0, 1920, 1080)
    assert fit_rect(37 / 23, 37, 23) == (0, 0, 37, 23)
    assert fit_rect(4 / 3, 1920, 1080) == (240, 0, 1440, 1080)
    assert fit_rect(2.39, 1920, 1080) == (0, 138, 1920, 803)
    assert fit_rect(1000.0, 100, 100) == (0, 49, 100, 1)  # never collapses to nothing
    assert fit_rect(1.0, 0, 100) == (0, 0, 0, 0)


def test_fit_rect_properties():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        aspect = float(np.exp(rng.uniform(-3, 3)))
        vw, vh = (int(v) for v in rng.integers(1, 3000, 2))
        x, y, w, h = fit_rect(aspect, vw, vh)
        assert 0 <= x and 0 <= y and x + w <= vw and y + h <= vh and w >= 1 and h >= 1
        assert w == vw or h == vh  # touches two opposite edges
        assert abs(x - (vw - w - x)) <= 1 and abs(y - (vh - h - y)) <= 1  # centred
        # the aspect is kept to the rounding of one side (or the 1 px minimum)
        assert w == 1 or h == 1 or abs(w - h * aspect) <= 0.5 + 1e-9 or abs(h - w / aspect) <= 0.5 + 1e-9


@pytest.mark.parametrize("aspect", [0.0, -1.0, math.inf, math.nan])
def test_fit_rect_rejects_bad_aspect(aspect):
    with pytest.raises(InvalidArgument):
        fit_rect(aspect, 100, 100)


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
def test_matrix_inverts_the_forward_definition(matrix, rng):
    m, offset = yuv_to_rgb_matrix(matrix, rng)
    kr, kb = KR_KB[matrix]
    rgb = np.random.default_rng(2).uniform(0, 1, (100, 3))
    yn = rgb @ np.array([kr, 1 - kr - kb, kb])
    pb = (rgb[:, 2] - yn) / (2 * (1 - kb))
    pr = (rgb[:, 0] - yn) / (2 * (1 - kr))
    if rng == "limited":
        codes = np.stack([16 + 219 * yn, 128 + 224 * pb, 128 + 224 * pr], -1)
    else:
        codes = np.stack([255 * yn, 128 + 255 * pb, 128 + 255 * pr], -1)
    back = codes / 255 @ m.T + offset
    np.testing.assert_allclose(back, rgb, atol=1e-12)


def test_matrix_rejects_unknown_names():
    with pytest.raises(InvalidArgument):
        yuv_to_rgb_matrix("bt470m", "limited")
    with pytest.raises(InvalidArgument):
        yuv_to_rgb_matrix("bt709", "tv")


# Conversion against PyAV -------------------------------------------------------------------
@gl
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
@pytest.mark.parametrize("size", [(48, 64), (23, 37)])
def test_yuv444_matches_pyav(gl_ctx, matrix, rng, size):
    h, w = size
    src = av_yuv(noise_rgb(h, w), "yuv444p", matrix, rng)  # noise: no filtering may hide here
    out = render_video_frame(gl_ctx, to_video_frame(src, matrix, rng), w, h)
    assert max_diff(out, av_rgb(src, matrix, rng)) <= 2
    assert max_diff(out, reference_rgb(*(p.astype(np.float64) for p in av_planes(src)), matrix, rng)) <= 1


@gl
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
@pytest.mark.parametrize("size", [(72, 96), (23, 37)])
def test_yuv420_matches_pyav_on_smooth_content(gl_ctx, matrix, rng, size):
    h, w = size
    src = av_yuv(smooth_rgb(h, w), "yuv420p", matrix, rng)
    frame = to_video_frame(src, matrix, rng)
    out = render_video_frame(gl_ctx, frame, w, h)
    assert psnr(out, av_rgb(src, matrix, rng)) >= 40.0
    # The exact rule (left siting, bilinear chroma, float matrix): to the rounding.
    assert max_diff(out, reference_420(frame.planes, matrix, rng)) <= 1


@gl
def test_yuv420_chroma_siting_is_left(gl_ctx):
    """One chroma column lights luma column 2j fully and its neighbours by half; one chroma
    row lights luma rows 2j, 2j+1 by 3/4 and rows 2j-1, 2j+2 by 1/4 (MPEG-2 default)."""
    h, w = 16, 16
    y = np.full((h, w), 126, np.uint8)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = u.copy()
    u[:, 3] = 128 + 40  # blue-ish column at chroma x = 3 -> luma x = 6
    v[2, :] = 128 + 40  # red-ish row at chroma y = 2 -> luma y = 4.5 (between rows 4 and 5)
    out = render_video_frame(gl_ctx, yuv_frame(y, u, v, "yuv420p"), w, h).astype(np.float64)
    base = reference_rgb(np.float64(126), np.float64(128), np.float64(128), "bt709", "limited").astype(np.float64)

    blue = out[0, :, 2] - base[2]  # blue depends on Y and U only
    full = blue[6]
    assert full > 60  # and not clipped: the halves below are exact
    assert blue[[5, 7]] == pytest.approx([full / 2, full / 2], abs=1.0)
    assert np.all(np.abs(blue[[0, 1, 2, 3, 4, 8, 9, 15]]) <= 1.0)

    red = out[:, 0, 0] - base[0]  # red depends on Y and V only
    peak = reference_rgb(np.float64(126), np.float64(128), np.float64(168), "bt709", "limited")[0] - base[0]
    assert red[[4, 5]] == pytest.approx([0.75 * peak, 0.75 * peak], abs=1.0)
    assert red[[3, 6]] == pytest.approx([0.25 * peak, 0.25 * peak], abs=1.0)
    assert np.all(np.abs(red[[0, 1, 2, 7, 8, 15]]) <= 1.0)


# Range and matrix --------------------------------------------------------------------------
PATCH_LEVELS = (0, 64, 128, 192, 255)


def grey_patches(h: int = 32, w_patch: int = 16) -> np.ndarray:
    row = np.repeat(np.asarray(PATCH_LEVELS, np.uint8), w_patch)
    return np.repeat(np.repeat(row[None, :, None], 3, axis=2), h, axis=0)


@gl
@pytest.mark.parametrize("fmt", ["yuv420p", "yuv444p"])
@pytest.mark.parametrize("rng", RANGES)
def test_range_round_trips_and_wrong_range_is_visible(gl_ctx, fmt, rng):
    rgb = grey_patches()
    h, w = rgb.shape[:2]
    src = av_yuv(rgb, fmt, "bt709", rng)
    frame = to_video_frame(src, "bt709", rng)
    luma = frame.planes[0]
    black, white = (0, 255) if rng == "full" else (16, 235)
    assert luma[:, 0].tolist() == [black] * h and luma[:, -1].tolist() == [white] * h

    out = render_video_frame(gl_ctx, frame, w, h)
    assert max_diff(out, rgb) <= 2

    other = "full" if rng == "limited" else "limited"
    wrong = render_video_frame(gl_ctx, to_video_frame(src, "bt709", other), w, h)
    per_patch = [max_diff(wrong[:, i * 16 + 4 : i * 16 + 12], rgb[:, i * 16 + 4 : i * 16 + 12]) for i in range(5)]
    if rng == "limited":  # read as full: lifted blacks, dimmed whites
        assert per_patch[0] >= 14 and per_patch[-1] >= 18
    else:  # read as limited: crushed shadows, blown highlights, shifted mid-tones
        assert per_patch[1] >= 7 and per_patch[3] >= 11


COLOR_BARS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255), (16, 16, 16)]


def color_bars(h: int = 16, w_bar: int = 8) -> np.ndarray:
    row = np.repeat(np.asarray(COLOR_BARS, np.uint8), w_bar, axis=0)
    return np.repeat(row[None], h, axis=0)


@gl
@pytest.mark.parametrize("matrix", MATRICES)
def test_matrix_matters_on_saturated_colours(gl_ctx, matrix):
    rgb = color_bars()
    h, w = rgb.shape[:2]
    src = av_yuv(rgb, "yuv444p", matrix, "limited")
    right = render_video_frame(gl_ctx, to_video_frame(src, matrix, "limited"), w, h)
    assert max_diff(right, rgb) <= 3
    assert max_diff(right, av_rgb(src, matrix, "limited")) <= 2
    grey = slice(6 * 8, 8 * 8)  # white and dark grey do not depend on the matrix
    for other in MATRICES:
        if other != matrix:
            wrong = render_video_frame(gl_ctx, to_video_frame(src, other, "limited"), w, h)
            assert max_diff(wrong, rgb) >= 10, other
            assert max_diff(wrong[:, grey], rgb[:, grey]) <= 2, other


@gl
def test_420_colour_bars_interior_exact(gl_ctx):
    rgb = color_bars(h=16, w_bar=8)
    src = av_yuv(rgb, "yuv420p", "bt709", "limited")
    out = render_video_frame(gl_ctx, to_video_frame(src), rgb.shape[1], rgb.shape[0])
    inner = np.concatenate([np.arange(i * 8 + 2, i * 8 + 6) for i in range(len(COLOR_BARS))])
    assert max_diff(out[:, inner], rgb[:, inner]) <= 3


# Placement ---------------------------------------------------------------------------------
BG = (0.2, 0.4, 0.6)
BG8 = (51, 102, 153)


@gl
def test_letterbox_bars_for_a_2_to_1_frame(gl_ctx):
    rgb = smooth_rgb(32, 64)
    src = av_yuv(rgb, "yuv420p", "bt709", "limited")
    out = render_video_frame(gl_ctx, to_video_frame(src), 100, 100, background=BG)
    bars = bar_rows(out, BG8)
    top = int(np.argmin(bars))
    bottom = int(np.argmin(bars[::-1]))
    assert abs(top - 25) <= 1 and abs(bottom - 25) <= 1
    assert not bars[top : 100 - bottom].any()
    assert not bar_cols(out, BG8).any()  # no side bars


@gl
def test_pillarbox_bars_for_a_1_to_2_frame(gl_ctx):
    out = render_video_frame(gl_ctx, rgb_frame(solid(40, 20, (200, 10, 10))), 100, 100, background=BG)
    cols = bar_cols(out, BG8)
    assert cols[:25].all() and cols[75:].all() and not cols[25:75].any()
    assert (out[:, 25:75] == (200, 10, 10)).all()


@gl
def test_sample_aspect_changes_drawn_width(gl_ctx):
    pic = solid(40, 40, (250, 250, 250))
    widths = {}
    for sar in (Fraction(1), Fraction(3, 2), Fraction(1, 2)):
        out = render_video_frame(gl_ctx, rgb_frame(pic, sar), 200, 100, background=(0, 0, 0))
        drawn = ~bar_cols(out, (0, 0, 0))
        widths[sar] = int(drawn.sum())
        first = int(np.argmax(drawn))
        assert drawn[first : first + widths[sar]].all()  # one contiguous, centred block
        assert abs(first - (200 - first - widths[sar])) <= 1
    assert abs(widths[Fraction(1)] - 100) <= 1
    assert abs(widths[Fraction(3, 2)] - 150) <= 1
    assert abs(widths[Fraction(1, 2)] - 50) <= 1


@gl
def test_scaled_drawing_keeps_colours(gl_ctx):
    rgb = smooth_rgb(23, 37)
    src = av_yuv(rgb, "yuv420p", "bt709", "limited")
    frame = to_video_frame(src)
    native = render_video_frame(gl_ctx, frame, 37, 23)
    for size in ((74, 46), (50, 31), (19, 12), (111, 69)):
        out = render_video_frame(gl_ctx, frame, *size, background=BG)
        assert out.shape == (size[1], size[0], 3)
        assert not bar_rows(out, BG8).any() and not bar_cols(out, BG8).any()  # same aspect
        back = av.VideoFrame.from_ndarray(out, format="rgb24").reformat(width=37, height=23).to_ndarray()
        assert psnr(back, native) >= 28.0


# RGB, uploads, errors ----------------------------------------------------------------------
@gl
@pytest.mark.parametrize("size", [(23, 37), (64, 48), (1, 1), (3, 1)])
def test_rgb24_draws_exactly(gl_ctx, size):
    h, w = size
    rgb = noise_rgb(h, w, seed=h * w)
    assert (render_video_frame(gl_ctx, rgb_frame(rgb), w, h) == rgb).all()
    padded = np.zeros((h, w + 5, 3), np.uint8)  # rows with padding: a strided view
    padded[:, :w] = rgb
    assert (render_video_frame(gl_ctx, rgb_frame(padded[:, :w]), w, h) == rgb).all()
    src = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    assert (render_video_frame(gl_ctx, to_video_frame(src), w, h) == rgb).all()


@gl
def test_textures_reused_and_reallocated(gl_ctx):
    from holoscope.render.gl.splat_renderer import OffscreenTarget

    target = OffscreenTarget(gl_ctx, 37, 23, dtype="f1")
    renderer = GlVideoRenderer(gl_ctx)
    try:

        def draw() -> np.ndarray:
            target.fbo.use()
            renderer.draw(37, 23)
            raw = target.fbo.read(components=3, alignment=1)
            return np.frombuffer(raw, np.uint8).reshape(23, 37, 3)[::-1]

        target.fbo.use()
        renderer.draw(37, 23, background=(1.0, 0.0, 0.0))  # nothing uploaded yet: all background
        assert (np.frombuffer(target.fbo.read(components=3, alignment=1), np.uint8).reshape(-1, 3) == (255, 0, 0)).all()

        a, b = smooth_rgb(23, 37), smooth_rgb(23, 37, phase=0.3)
        fa, fb = (to_video_frame(av_yuv(x, "yuv444p", "bt709", "limited")) for x in (a, b))
        renderer.upload(fa)
        ids = [t.glo for t in renderer._textures]
        assert max_diff(draw(), a) <= 3
        renderer.upload(fb)
        assert [t.glo for t in renderer._textures] == ids  # same size and format: reused
        assert max_diff(draw(), b) <= 3
        renderer.upload(rgb_frame(a))  # other format: new textures
        assert len(renderer._textures) == 1 and (draw() == a).all()
        fc = to_video_frame(av_yuv(b, "yuv420p", "bt601", "full"), "bt601", "full")
        renderer.upload(fc)
        assert psnr(draw(), b) >= 35.0
    finally:
        renderer.release()
        target.release()


@gl
def test_bad_frames_are_rejected(gl_ctx):
    renderer = GlVideoRenderer(gl_ctx)
    y = np.zeros((4, 6), np.uint8)
    c = np.zeros((2, 3), np.uint8)
    try:
        with pytest.raises(InvalidArgument):
            renderer.upload(yuv_frame(y, c, c[:, :2], "yuv420p"))  # wrong chroma width
        with pytest.raises(InvalidArgument):
            renderer.upload(yuv_frame(y, c, c, "yuv444p"))  # 4:4:4 needs full-size chroma
        with pytest.raises(InvalidArgument):
            renderer.upload(yuv_frame(y, c, c, "nv12"))
        with pytest.raises(InvalidArgument):
            renderer.upload(yuv_frame(y.astype(np.uint16), c, c, "yuv420p"))
        with pytest.raises(InvalidArgument):
            renderer.upload(yuv_frame(y, c, c, "yuv420p", matrix="smpte240m"))
        renderer.upload(yuv_frame(y, c, c, "yuv420p"))  # the right shapes are fine
    finally:
        renderer.release()


@gl
def test_restores_the_bound_framebuffer(gl_ctx):
    from holoscope.render.gl.splat_renderer import OffscreenTarget

    outer = OffscreenTarget(gl_ctx, 8, 8, dtype="f1")
    try:
        outer.begin()
        render_video_frame(gl_ctx, rgb_frame(solid(4, 4, (9, 9, 9))), 16, 16)
        assert gl_ctx.fbo is outer.fbo and tuple(gl_ctx.viewport) == (0, 0, 8, 8)
    finally:
        outer.release()


# Real encoders -----------------------------------------------------------------------------
def encode_decode(tmp_path, codec: str, pix_fmt: str, rng: str, frames: list[np.ndarray], **options) -> list[av.VideoFrame]:
    path = tmp_path / f"{codec}-{pix_fmt}-{rng}.mkv"
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.colorspace = 1  # BT.709
        stream.codec_context.color_range = 2 if rng == "full" else 1
        stream.codec_context.options = options
        for rgb in frames:
            yuv = av_yuv(rgb, pix_fmt, "bt709", rng)
            for packet in stream.encode(yuv):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as inp:
        return list(inp.decode(video=0))


def decoded_video_frame(frame: av.VideoFrame) -> VideoFrame:
    """What a demuxer/decoder stage would build: metadata taken from the decoded frame."""
    name = frame.format.name
    rng = "full" if name.startswith("yuvj") else FROM_AV_RANGE[frame.color_range]
    return to_video_frame(frame, FROM_AV_COLORSPACE[frame.colorspace], rng)


@gl
@pytest.mark.parametrize(
    "codec,pix_fmt,rng,options",
    [
        ("libx264", "yuv420p", "limited", {"crf": "8", "preset": "ultrafast"}),
        ("libx264", "yuv420p", "full", {"crf": "8", "preset": "ultrafast"}),
        ("libx264", "yuv444p", "limited", {"qp": "0", "preset": "ultrafast"}),  # High 4:4:4, lossless
        ("ffv1", "yuv444p", "full", {}),
    ],
)
def test_real_encoder_output(gl_ctx, tmp_path, codec, pix_fmt, rng, options):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    # padded decoder rows; odd sizes where the encoder allows them (x264 4:2:0 needs even)
    h, w = (46, 62) if pix_fmt == "yuv420p" else (45, 61)
    sources = [smooth_rgb(h, w, phase=0.1 * i) for i in range(3)]
    decoded = encode_decode(tmp_path, codec, pix_fmt, rng, sources, **options)
    assert len(decoded) == 3
    for rgb, frame in zip(sources, decoded):
        vf = decoded_video_frame(frame)
        assert (vf.pixel_format, vf.color_matrix, vf.color_range) == (pix_fmt, "bt709", rng)
        assert vf.planes[0].strides[0] > w  # FFmpeg pads decoded rows to its stride alignment
        out = render_video_frame(gl_ctx, vf, w, h)
        oracle = av_rgb(frame, "bt709", rng)
        if pix_fmt == "yuv444p":
            assert max_diff(out, oracle) <= 2
        else:
            assert psnr(out, oracle) >= 40.0
        assert psnr(out, rgb) >= 35.0  # the whole chain, metadata included
