"""The OpenGL video renderer on 10-, 12- and 16-bit frames (R16 textures) against a float64
conversion of the true n-bit samples (ITU-T H.273 range and matrix definitions).

The frames come from lossless clips encoded here with PyAV (FFV1, x265 ``lossless=1``) and
decoded through holoscope, whose samples are checked to be the ones sent; they are drawn at 1:1
on the real EGL context. A float target shows the renderer keeps precision finer than 8 bits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from holoscope.codecs.video.decode import open_video
from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import VideoFrame
from holoscope.render.gl.splat_renderer import OffscreenTarget
from holoscope.render.gl.video_renderer import GlVideoRenderer, render_video_frame, yuv_to_rgb_matrix

gl = pytest.mark.gl

MATRICES = ("bt601", "bt709", "bt2020")
RANGES = ("limited", "full")
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
AV_COLORSPACE = {"bt601": 5, "bt709": 1, "bt2020": 9}


@pytest.fixture(autouse=True)
def _software(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCOPE_HWDEC", "no")


# Reference (float64, written independently of the renderer) ---------------------------------
def forward_codes(rgb: np.ndarray, matrix: str, rng: str, depth: int) -> np.ndarray:
    """R'G'B' in [0, 1] -> n-bit Y, Cb, Cr code values (float, unrounded), H.273."""
    kr, kb = KR_KB[matrix]
    y = rgb @ np.array([kr, 1 - kr - kb, kb])
    pb = (rgb[..., 2] - y) / (2 * (1 - kb))
    pr = (rgb[..., 0] - y) / (2 * (1 - kr))
    step, top, half = 2.0 ** (depth - 8), 2.0**depth - 1, 2.0 ** (depth - 1)
    if rng == "limited":
        return np.stack([(16 + 219 * y) * step, (128 + 224 * pb) * step, (128 + 224 * pr) * step], -1)
    return np.stack([top * y, half + top * pb, half + top * pr], -1)


def reference_float(y, u, v, matrix: str, rng: str, depth: int) -> np.ndarray:
    """n-bit code values (full-size planes) -> R'G'B' float64, clamped to [0, 1]."""
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    y, u, v = (np.asarray(p, np.float64) for p in (y, u, v))
    step, top, half = 2.0 ** (depth - 8), 2.0**depth - 1, 2.0 ** (depth - 1)
    if rng == "limited":
        yn, pb, pr = (y / step - 16) / 219, (u / step - 128) / 224, (v / step - 128) / 224
    else:
        yn, pb, pr = y / top, (u - half) / top, (v - half) / top
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], -1), 0.0, 1.0)


def upsample_420(c: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear chroma with MPEG-2 "left" siting, as the renderer documents it."""
    c = c.astype(np.float64)

    def taps(coords: np.ndarray, n: int):
        base = np.floor(coords)
        return np.clip(base.astype(int), 0, n - 1), np.clip(base.astype(int) + 1, 0, n - 1), coords - base

    x0, x1, fx = taps((np.arange(w) + 0.5) / 2 - 0.25, c.shape[1])
    y0, y1, fy = taps((np.arange(h) + 0.5) / 2 - 0.5, c.shape[0])
    top = c[y0][:, x0] * (1 - fx) + c[y0][:, x1] * fx
    bottom = c[y1][:, x0] * (1 - fx) + c[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def reference_of(frame: VideoFrame) -> np.ndarray:
    y, u, v = frame.planes
    if frame.pixel_format == "yuv420p":
        u, v = upsample_420(u, *y.shape), upsample_420(v, *y.shape)
    return reference_float(y, u, v, frame.color_matrix, frame.color_range, frame.bit_depth)


def to_8bit(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


# Content and clips ----------------------------------------------------------------------------
def fine_rgb(h: int, w: int, phase: float = 0.0) -> np.ndarray:
    """Slow colour gradients: neighbouring pixels differ by less than one 8-bit level, so the
    n-bit codes step by one where 8 bits could not."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 0.15 + 0.7 * xx / w
    g = 0.5 + 0.4 * np.sin(2 * np.pi * (yy / (3 * h) + phase))
    b = 0.8 - 0.6 * (xx + yy) / (w + h)
    return np.stack([r, g, b], -1)


def n_bit_planes(rgb: np.ndarray, pix_fmt: str, matrix: str, rng: str, depth: int) -> list[np.ndarray]:
    codes = forward_codes(rgb, matrix, rng, depth)
    top = (1 << depth) - 1
    y, u, v = (np.clip(np.rint(codes[..., k]), 0, top) for k in range(3))
    if "420" in pix_fmt:  # average 2x2 (edges repeated): chroma at the left-sited positions
        h, w = y.shape
        pad = lambda c: np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge")  # noqa: E731
        u, v = (np.rint(pad(c).reshape((h + 1) // 2, 2, (w + 1) // 2, 2).mean(axis=(1, 3))) for c in (u, v))
    return [p.astype(np.uint16) for p in (y, u, v)]


def encode_lossless(path: Path, codec: str, pix_fmt: str, matrix: str, rng: str, depth: int,
                    sources: list[np.ndarray]) -> list[list[np.ndarray]]:
    opts = {"x265-params": "log-level=error:lossless=1"} if codec == "libx265" else {}
    h, w = sources[0].shape[:2]
    sent = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.colorspace = AV_COLORSPACE[matrix]
        stream.codec_context.color_range = 1 if rng == "limited" else 2
        for i, rgb in enumerate(sources):
            planes = n_bit_planes(rgb, pix_fmt, matrix, rng, depth)
            frame = av.VideoFrame(w, h, pix_fmt)
            for plane, data in zip(frame.planes, planes):
                rows = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)
                rows[:, : plane.width] = data
            frame.pts = i
            sent.append(planes)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return sent


# Matrix maths (no GL) -------------------------------------------------------------------------
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
def test_8_bit_matrix_is_unchanged(matrix, rng):
    m, offset = yuv_to_rgb_matrix(matrix, rng)
    m8, offset8 = yuv_to_rgb_matrix(matrix, rng, 8)
    assert np.array_equal(m, m8) and np.array_equal(offset, offset8)
    # the 8-bit map as it always was: scale 255/219, 255/224 (limited) or 1 (full), chroma at 128
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    base = np.array([[1, 0, 2 * (1 - kr)], [1, -2 * kb * (1 - kb) / kg, -2 * kr * (1 - kr) / kg],
                     [1, 2 * (1 - kb), 0]])
    if rng == "limited":
        scale, bias = np.array([255 / 219, 255 / 224, 255 / 224]), np.array([-16 / 219, -128 / 224, -128 / 224])
    else:
        scale, bias = np.ones(3), np.array([0, -128 / 255, -128 / 255])
    np.testing.assert_allclose(m, base * scale[None, :], rtol=0, atol=1e-15)
    np.testing.assert_allclose(offset, base @ bias, rtol=0, atol=1e-15)


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
@pytest.mark.parametrize("depth", [8, 10, 12, 16])
def test_matrix_inverts_the_n_bit_forward_definition(matrix, rng, depth):
    m, offset = yuv_to_rgb_matrix(matrix, rng, depth)
    rgb = np.random.default_rng(depth).uniform(0, 1, (100, 3))
    codes = forward_codes(rgb, matrix, rng, depth)
    back = codes / ((1 << depth) - 1) @ m.T + offset
    np.testing.assert_allclose(back, rgb, atol=1e-12)


def test_matrix_rejects_bad_depths():
    for depth in (7, 17, 0, 10.0):
        with pytest.raises(InvalidArgument):
            yuv_to_rgb_matrix("bt709", "limited", depth)


# GL on decoded frames ----------------------------------------------------------------------------
CLIPS = [  # codec, pix_fmt, depth, matrix, size (h, w)
    ("ffv1", "yuv444p10le", 10, "bt709", (45, 61)),
    ("ffv1", "yuv420p10le", 10, "bt709", (38, 70)),
    ("ffv1", "yuv444p12le", 12, "bt601", (24, 32)),
    ("ffv1", "yuv444p16le", 16, "bt709", (24, 32)),
    ("libx265", "yuv420p10le", 10, "bt2020", (48, 64)),
]


@gl
@pytest.mark.parametrize("codec,pix_fmt,depth,matrix,size", CLIPS, ids=[f"{c[0]}-{c[1]}" for c in CLIPS])
@pytest.mark.parametrize("rng", RANGES)
def test_decoded_high_depth_frames_match_the_float_reference(gl_ctx, tmp_path, codec, pix_fmt, depth, matrix,
                                                             size, rng):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    h, w = size
    sources = [fine_rgb(h, w, phase=0.2 * i) for i in range(2)]
    path = tmp_path / "clip.mkv"
    sent = encode_lossless(path, codec, pix_fmt, matrix, rng, depth, sources)
    media = open_video(path)
    try:
        for planes, rgb, frame in zip(sent, sources, (f.payload for f in media.frames_from(0))):
            assert (frame.bit_depth, frame.color_matrix, frame.color_range) == (depth, matrix, rng)
            assert all(np.array_equal(a, b) for a, b in zip(frame.planes, planes))  # what was sent
            out = render_video_frame(gl_ctx, frame, w, h)
            reference = to_8bit(reference_of(frame))
            assert max_diff(out, reference) <= 1
            assert np.mean(out != reference) < 0.02  # off by one only at rounding ties
            if "444" in pix_fmt:  # the whole chain: n-bit quantisation is far below 8 bits
                assert max_diff(out, to_8bit(rgb)) <= 1
    finally:
        media.release()


def draw_float(ctx, frame: VideoFrame) -> np.ndarray:
    """The renderer's output before 8-bit quantisation: an RGBA32F target at 1:1."""
    target = OffscreenTarget(ctx, frame.width, frame.height, dtype="f4")
    renderer = GlVideoRenderer(ctx)
    try:
        renderer.upload(frame)
        target.begin()
        renderer.draw(frame.width, frame.height)
        return target.read_rgb().astype(np.float64)
    finally:
        renderer.release()
        target.release()


def ramp_frame(depth: int, rng: str, shift: int = 0) -> VideoFrame:
    """4:4:4 ramps stepping one code per pixel in luma and both chroma planes."""
    h, w = 16, 96
    step = 1 << (depth - 8)
    xx = np.arange(w)[None, :].repeat(h, 0)
    yy = np.arange(h)[:, None].repeat(w, 1)
    y = (100 * step + xx + 3 * yy).astype(np.uint16)
    u = (128 * step - 40 + xx).astype(np.uint16)
    v = (128 * step + 40 - xx + yy).astype(np.uint16)
    planes = tuple(((p >> shift) << shift) for p in (y, u, v))  # shift: drop low bits
    return VideoFrame(planes, "yuv444p", w, h, 0.0, 0, "bt709", rng, bit_depth=depth)


@gl
@pytest.mark.parametrize("depth", [10, 12, 16])
@pytest.mark.parametrize("rng", RANGES)
def test_precision_finer_than_8_bits_reaches_the_output(gl_ctx, depth, rng):
    frame = ramp_frame(depth, rng)
    out = draw_float(gl_ctx, frame)
    reference = reference_of(frame)
    err = np.abs(out - reference).max()
    assert err < 2e-6  # float32 arithmetic (measured 1-3e-7), far below one 16-bit code step
    # one code apart -> visibly different outputs (8-bit samples could not tell them apart)
    one_step = np.abs(np.diff(out[..., 1], axis=1)).mean()
    assert one_step > 0.3 / (1 << depth)
    # the same frame reduced to 8 bits is well outside that tolerance: the test can tell
    reduced = reference_of(ramp_frame(depth, rng, shift=depth - 8))
    assert np.abs(reduced - reference).max() > 20 * err


@gl
def test_10_bit_copies_of_8_bit_codes_look_the_same(gl_ctx):
    # limited range: an 8-bit code c and the 10-bit code 4c mean the same level
    rng = np.random.default_rng(3)
    y = rng.integers(16, 236, (23, 37)).astype(np.uint8)
    u, v = (rng.integers(16, 241, (12, 19)).astype(np.uint8) for _ in range(2))
    eight = VideoFrame((y, u, v), "yuv420p", 37, 23, 0.0, 0, "bt2020", "limited")
    ten = dataclasses.replace(eight, planes=tuple(p.astype(np.uint16) << 2 for p in (y, u, v)), bit_depth=10)
    a, b = render_video_frame(gl_ctx, eight, 37, 23), render_video_frame(gl_ctx, ten, 37, 23)
    assert max_diff(a, b) <= 1 and np.mean(a != b) < 0.01


@gl
def test_textures_follow_the_bit_depth(gl_ctx):
    target = OffscreenTarget(gl_ctx, 96, 16, dtype="f1")
    renderer = GlVideoRenderer(gl_ctx)
    try:
        def draw(frame: VideoFrame) -> np.ndarray:
            renderer.upload(frame)
            target.fbo.use()
            renderer.draw(96, 16)
            raw = target.fbo.read(components=3, alignment=1)
            return np.frombuffer(raw, np.uint8).reshape(16, 96, 3)[::-1]

        ten = ramp_frame(10, "limited")
        eight = dataclasses.replace(ten, planes=tuple((p >> 2).astype(np.uint8) for p in ten.planes), bit_depth=8)
        out10 = draw(ten)
        ids = [t.glo for t in renderer._textures]
        assert max_diff(out10, to_8bit(reference_of(ten))) <= 1
        out8 = draw(eight)  # same size, other sample type: new textures
        assert [t.glo for t in renderer._textures] != ids
        assert max_diff(out8, to_8bit(reference_of(eight))) <= 1
        assert max_diff(draw(ten), out10) == 0  # and back
        twelve = ramp_frame(12, "full")
        ids = [t.glo for t in renderer._textures]
        assert max_diff(draw(twelve), to_8bit(reference_of(twelve))) <= 1
        assert [t.glo for t in renderer._textures] == ids  # uint16 again, same size: reused
    finally:
        renderer.release()
        target.release()


@gl
def test_bad_high_depth_frames_are_rejected(gl_ctx):
    renderer = GlVideoRenderer(gl_ctx)
    y16, c16 = np.zeros((4, 6), np.uint16), np.zeros((2, 3), np.uint16)
    y8, c8 = y16.astype(np.uint8), c16.astype(np.uint8)
    frame = VideoFrame((y16, c16, c16), "yuv420p", 6, 4, 0.0, 0, bit_depth=10)
    try:
        for bad in (
            dataclasses.replace(frame, planes=(y8, c8, c8)),  # 10-bit samples need uint16
            dataclasses.replace(frame, planes=(y16, c8, c16)),
            dataclasses.replace(frame, bit_depth=8),  # uint16 planes at 8 bits
            dataclasses.replace(frame, bit_depth=17),
            dataclasses.replace(frame, bit_depth=7),
            VideoFrame((np.zeros((4, 6, 3), np.uint16),), "rgb24", 6, 4, 0.0, 0, bit_depth=10),
        ):
            with pytest.raises(InvalidArgument):
                renderer.upload(bad)
        renderer.upload(frame)  # the right types are fine
    finally:
        renderer.release()
