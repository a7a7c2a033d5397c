"""GlVideoRenderer: plain video frames (YUV 4:2:0 / 4:4:4, RGB) as a letterboxed textured quad.

Each plane is a texture (R8 for 8-bit Y/U/V, RGB8 for rgb24, normalised R16 for the uint16
planes of a 9..16-bit frame) sampled with texelFetch and a manual float bilinear filter. An R16
texel reads as code / 65535; the shader multiplies by ``sample_scale`` = 65535 / (2^n - 1) so
that every plane reaches the conversion as code / (2^n - 1) (exactly 1.0, a no-op, at 8 bits).
The YUV -> RGB matrix and the n-bit range expansion (ITU-T H.273: limited range is 16..235 /
16..240 times 2^(n-8), full range centres chroma at 2^(n-1)) are folded into one affine map
(:func:`yuv_to_rgb_matrix`) applied in the fragment shader, clamped to [0, 1], so range and
matrix act on the true sample values.

Chroma siting for 4:2:0 is the MPEG-2 / H.264 / HEVC default ("left", chroma_loc_type 0):
chroma co-sited horizontally with the even luma columns, vertically midway between two luma
rows. :class:`VideoFrame` carries no siting field, so JPEG-style centred chroma (MJPEG, some
full-range yuvj420p sources) is also drawn with left siting: a quarter-pixel horizontal chroma
shift, invisible on real content. At 1:1 size luma, 4:4:4 chroma and RGB samples land exactly
on texel centres, so those frames convert pixel-exactly.

The picture keeps ``frame.display_aspect`` (sample aspect included) and is centred in the
viewport with bars of the background colour (:func:`fit_rect`), drawn by the same full-viewport
pass. Scaling is bilinear in every plane.
"""

from __future__ import annotations

import math

import moderngl
import numpy as np

from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import VideoFrame
from holoscope.render.gl.shaders import shader_source
from holoscope.render.gl.splat_renderer import OffscreenTarget

# (Kr, Kb) of each YUV matrix; Kg = 1 - Kr - Kb.
LUMA_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}
COLOR_RANGES = ("limited", "full")

# Per pixel format: texture components, chroma subsampling (x, y), chroma map (scale, offset)
# from picture position p (luma pixels, pixel i spans [i, i+1)) to chroma texel coordinates.
_FORMATS: dict[str, tuple[int, tuple[int, int], tuple[float, float, float, float]]] = {
    "yuv420p": (1, (2, 2), (0.5, 0.5, -0.25, -0.5)),  # left siting: see the module docstring
    "yuv444p": (1, (1, 1), (1.0, 1.0, -0.5, -0.5)),
    "rgb24": (3, (1, 1), (1.0, 1.0, -0.5, -0.5)),
}


def yuv_to_rgb_matrix(
    color_matrix: str, color_range: str, bit_depth: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """``(M [3, 3], offset [3])`` float64 with ``rgb = M @ (y, u, v) / (2^n - 1) + offset``.

    Input is n-bit code values (``bit_depth`` n, 8..16) divided by 2^n - 1: what an R8 texture
    returns at 8 bits, and what the shader makes of an R16 texel (``sample_scale``). Output is
    R'G'B' in [0, 1] before clamping. Limited range: Y 16..235, U/V 16..240 centred at 128, all
    times 2^(n-8); full range: Y 0..2^n-1, U/V centred at 2^(n-1) with a 2^n-1 scale (ITU-T
    H.273 / JPEG). At 8 bits this is the familiar 255/219, 128/224 ... map.
    """
    if color_matrix not in LUMA_COEFFICIENTS:
        raise InvalidArgument(f"unknown colour matrix {color_matrix!r} (expected one of {sorted(LUMA_COEFFICIENTS)})")
    if color_range not in COLOR_RANGES:
        raise InvalidArgument(f"unknown colour range {color_range!r} (expected 'limited' or 'full')")
    if not isinstance(bit_depth, (int, np.integer)) or not 8 <= bit_depth <= 16:
        raise InvalidArgument(f"bit depth must be 8..16, got {bit_depth!r}")
    top = float((1 << bit_depth) - 1)  # input is code / top
    step = float(1 << (bit_depth - 8))  # one 8-bit level in n-bit codes
    kr, kb = LUMA_COEFFICIENTS[color_matrix]
    kg = 1.0 - kr - kb
    ypbpr_to_rgb = np.array(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * kb * (1.0 - kb) / kg, -2.0 * kr * (1.0 - kr) / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ]
    )
    if color_range == "limited":  # code = (219 Y' + 16) * step, code = (224 Pb + 128) * step
        scale = np.array([top / (219.0 * step), top / (224.0 * step), top / (224.0 * step)])
        bias = np.array([-16.0 / 219.0, -128.0 / 224.0, -128.0 / 224.0])
    else:  # code = top * Y', code = top * Pb + 2^(n-1)
        half = 128.0 * step
        scale = np.array([1.0, 1.0, 1.0])
        bias = np.array([0.0, -half / top, -half / top])
    return ypbpr_to_rgb * scale[None, :], ypbpr_to_rgb @ bias


def fit_rect(frame_aspect: float, viewport_w: int, viewport_h: int) -> tuple[int, int, int, int]:
    """The largest ``frame_aspect`` (width / height) rectangle centred in the viewport.

    Returns ``(x, y, w, h)`` in whole pixels, top-left origin; bars are ``viewport - rect``
    (an odd remainder puts the extra pixel on the bottom / right). A zero-sized viewport
    gives ``(0, 0, 0, 0)``.
    """
    if not (math.isfinite(frame_aspect) and frame_aspect > 0):
        raise InvalidArgument(f"frame aspect must be a positive finite number, got {frame_aspect!r}")
    if viewport_w <= 0 or viewport_h <= 0:
        return 0, 0, 0, 0
    w = math.floor(viewport_h * frame_aspect + 0.5)
    if w <= viewport_w:  # pillarbox (or exact fit): full height
        w = max(w, 1)
        return (viewport_w - w) // 2, 0, w, viewport_h
    h = min(max(math.floor(viewport_w / frame_aspect + 0.5), 1), viewport_h)  # letterbox
    return 0, (viewport_h - h) // 2, viewport_w, h


def _plane_shapes(frame: VideoFrame) -> list[tuple[int, ...]]:
    w, h = frame.width, frame.height
    if frame.pixel_format == "rgb24":
        return [(h, w, 3)]
    sx, sy = _FORMATS[frame.pixel_format][1]
    cw, ch = -(-w // sx), -(-h // sy)
    return [(h, w), (ch, cw), (ch, cw)]


class GlVideoRenderer:
    """Draws the last uploaded :class:`VideoFrame` into the bound framebuffer."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.program = ctx.program(
            vertex_shader=shader_source("video.vert.glsl"),
            fragment_shader=shader_source("video.frag.glsl"),
        )
        self.vao = ctx.vertex_array(self.program, [])
        self._textures: list[moderngl.Texture] = []
        self._layout: tuple[str, int, int, str] | None = None  # (pixel_format, width, height, dtype)
        self.frame: VideoFrame | None = None

    # Data ------------------------------------------------------------------------------
    def upload(self, frame: VideoFrame) -> None:
        """Copy a frame's planes to textures (reused while format and size stay the same)."""
        if frame.pixel_format not in _FORMATS:
            raise InvalidArgument(f"unsupported pixel format {frame.pixel_format!r} (expected one of {sorted(_FORMATS)})")
        if frame.width <= 0 or frame.height <= 0:
            raise InvalidArgument(f"video frame size must be positive, got {frame.width}x{frame.height}")
        if frame.sample_aspect <= 0:
            raise InvalidArgument(f"sample aspect must be positive, got {frame.sample_aspect}")
        limit = self.ctx.info["GL_MAX_TEXTURE_SIZE"]
        if frame.width > limit or frame.height > limit:
            raise InvalidArgument(f"{frame.width}x{frame.height} exceeds this GPU's {limit}px texture limit")
        shapes = _plane_shapes(frame)
        if len(frame.planes) != len(shapes):
            raise InvalidArgument(f"{frame.pixel_format} needs {len(shapes)} planes, got {len(frame.planes)}")
        depth = frame.bit_depth
        if not isinstance(depth, (int, np.integer)) or not 8 <= depth <= 16 or (
                depth != 8 and frame.pixel_format == "rgb24"):
            allowed = "8" if frame.pixel_format == "rgb24" else "8..16"
            raise InvalidArgument(f"{frame.pixel_format} bit depth must be {allowed}, got {depth!r}")
        sample = np.dtype(np.uint8 if depth == 8 else np.uint16)
        for i, (plane, shape) in enumerate(zip(frame.planes, shapes)):
            if plane.dtype != sample or plane.shape != shape:
                raise InvalidArgument(f"{depth}-bit {frame.pixel_format} plane {i} must be {sample} {shape}, "
                                      f"got {plane.dtype} {plane.shape}")
        if frame.pixel_format != "rgb24":
            matrix, offset = yuv_to_rgb_matrix(frame.color_matrix, frame.color_range, depth)

        tex_dtype = "f1" if depth == 8 else "nu2"  # R8 / RGB8, or normalised R16
        layout = (frame.pixel_format, frame.width, frame.height, tex_dtype)
        if layout != self._layout:
            self._release_textures()
            components = _FORMATS[frame.pixel_format][0]
            for shape in shapes:
                tex = self.ctx.texture((shape[1], shape[0]), components, dtype=tex_dtype, alignment=1)
                tex.filter = moderngl.NEAREST, moderngl.NEAREST  # texelFetch only; no mipmaps
                tex.repeat_x = tex.repeat_y = False
                self._textures.append(tex)
            self._layout = layout
        for tex, plane in zip(self._textures, frame.planes):
            # Decoders hand out rows padded to their line size: pack them tightly (copies only
            # when the rows are not already contiguous). Texture row 0 is the top row.
            tex.write(np.ascontiguousarray(plane), alignment=1)

        p = self.program
        p["rgb_input"].value = int(frame.pixel_format == "rgb24")
        # R16 texels read as code / 65535; the conversion wants code / (2^n - 1)
        p["sample_scale"].value = 1.0 if depth == 8 else 65535.0 / ((1 << depth) - 1)
        p["luma_size"].value = (frame.width, frame.height)
        p["chroma_size"].value = (shapes[-1][1], shapes[-1][0])
        p["chroma_map"].value = _FORMATS[frame.pixel_format][2]
        if frame.pixel_format != "rgb24":
            p["yuv_matrix"].write(matrix.T.astype("f4").tobytes())  # GL wants column-major
            p["yuv_offset"].value = tuple(float(v) for v in offset)
        self.frame = frame

    # Drawing ---------------------------------------------------------------------------
    def draw(
        self,
        viewport_width: int,
        viewport_height: int,
        *,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        """Fill the bound framebuffer's ``(0, 0, w, h)`` viewport: picture plus bars.

        ``background`` is RGB in [0, 1]. With nothing uploaded the viewport is all background.
        """
        if viewport_width <= 0 or viewport_height <= 0:
            return
        p = self.program
        frame = self.frame
        if frame is not None:
            x, y, w, h = fit_rect(frame.display_aspect, viewport_width, viewport_height)
            # frame size / rect size is exactly 1.0 at 1:1, which keeps those samples exact.
            p["pic_scale"].value = (frame.width / w, frame.height / h)
            for unit, tex in enumerate(self._textures):
                tex.use(location=unit)
        else:
            x = y = w = h = 0
            p["pic_scale"].value = (1.0, 1.0)
        p["rect"].value = (float(x), float(y), float(w), float(h))
        p["viewport_height"].value = float(viewport_height)
        p["background"].value = tuple(float(c) for c in background)
        self.ctx.viewport = (0, 0, viewport_width, viewport_height)
        self.ctx.disable(moderngl.BLEND | moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.vao.render(moderngl.TRIANGLE_STRIP, vertices=4)

    def release(self) -> None:
        self._release_textures()
        self.vao.release()
        self.program.release()

    def _release_textures(self) -> None:
        for tex in self._textures:
            tex.release()
        self._textures, self._layout, self.frame = [], None, None


def render_video_frame(
    ctx: moderngl.Context,
    frame: VideoFrame,
    width: int,
    height: int,
    *,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Draw ``frame`` letterboxed into an offscreen ``width x height`` RGBA8 target.

    Returns ``[height, width, 3]`` uint8, row 0 at the top (tests, screenshots). The previously
    bound framebuffer and viewport are restored.
    """
    if width <= 0 or height <= 0:
        raise InvalidArgument(f"output size must be positive, got {width}x{height}")
    previous_fbo, previous_viewport = ctx.fbo, ctx.viewport
    target = OffscreenTarget(ctx, width, height, dtype="f1")
    renderer = GlVideoRenderer(ctx)
    try:
        renderer.upload(frame)
        target.fbo.use()
        renderer.draw(width, height, background=background)
        raw = target.fbo.read(components=3, dtype="f1", alignment=1)
    finally:
        renderer.release()
        if previous_fbo is not None and previous_fbo is not target.fbo:
            previous_fbo.use()
            ctx.viewport = previous_viewport
        target.release()
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)[::-1].copy()
