"""GlSplatRenderer: instanced-quad Gaussian splatting with the reference (INRIA) rules.

Per splat: centre + opacity, a precomputed 3D covariance and SH coefficients live in SSBOs;
only the back-to-front index list changes per view. Each frame runs two passes: a compute
pass projects every splat once (EWA, SH colour, quad extent) into a small SSBO, then one
instanced quad per visible splat is drawn in sorted order. Blending is premultiplied "over"
(ONE, ONE_MINUS_SRC_ALPHA) into a transparent target; the background is composited at read
time, which equals INRIA's C + T * bg.
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from holoscope.core.camera import Camera
from holoscope.core.errors import InvalidArgument
from holoscope.core.frames import SplatCloud
from holoscope.core.splat_math import packed_covariances
from holoscope.render.gl.shaders import shader_source


GROWTH = 1.25  # headroom of a GPU buffer that has to grow: the next slightly larger frame fits


@dataclass(frozen=True)
class RenderSettings:
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sh_degree_limit: int = 3
    scale_modifier: float = 1.0


class GlSplatRenderer:
    """Draws one uploaded :class:`SplatCloud` from any camera into the bound framebuffer."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.project = ctx.compute_shader(shader_source("splat_project.comp.glsl"))
        self.program = ctx.program(
            vertex_shader=shader_source("splat.vert.glsl"),
            fragment_shader=shader_source("splat.frag.glsl"),
        )
        self.vao = ctx.vertex_array(self.program, [])
        # Centres, covariances, SH (bindings 0-2), then the order and the projected records:
        # kept from frame to frame, a later frame that fits is written into them (see upload).
        self._buffers: list[moderngl.Buffer] = []
        self._projected: moderngl.Buffer | None = None
        self._order: moderngl.Buffer | None = None
        self._order_count = 0
        self.cloud: SplatCloud | None = None

    # Data ------------------------------------------------------------------------------
    def upload(self, cloud: SplatCloud) -> None:
        """Copy a cloud to the GPU (replacing any previous one).

        The GPU buffers are kept from frame to frame: a cloud that fits them (its splat count
        and SH size, in bytes) is written into the existing buffers, so a sequence of frames of
        similar size allocates nothing per frame. A buffer that is too small is replaced by one
        with ``GROWTH`` headroom. Buffers never shrink (``release`` frees them); every pass uses
        the current cloud's count and SH stride, never the capacity, and the order is reset, so
        nothing of a larger previous frame is drawn.
        """
        n = cloud.count
        centers = np.empty((n, 4), np.float32)
        centers[:, :3] = cloud.means
        centers[:, 3] = cloud.opacities
        sh = np.ascontiguousarray(cloud.sh, np.float32)
        data = (centers, packed_covariances(cloud.scales, cloud.quats), sh)
        self._order_count, self.cloud = 0, None
        try:
            old = self._buffers or [None] * len(data)
            self._buffers = [self._fit(buf, arr.nbytes, 16) for buf, arr in zip(old, data)]
            for buf, arr in zip(self._buffers, data):
                if arr.size:  # GL buffers cannot be empty: a zero-splat cloud keeps placeholders
                    buf.write(arr)  # the array itself (buffer protocol): no bytes copy
            self._order = self._fit(self._order, 4 * n, 4)
            self._projected = self._fit(self._projected, 48 * n, 48)  # 3 vec4 per splat
        except BaseException:  # e.g. out of GPU memory while growing: no half-replaced state
            self._release_buffers()
            raise
        self.cloud = cloud

    def _fit(self, buf: moderngl.Buffer | None, nbytes: int, minimum: int) -> moderngl.Buffer:
        """``buf`` if it holds ``nbytes``, else a new buffer with headroom (``buf`` released)."""
        if buf is not None and buf.size >= nbytes:
            return buf
        if buf is not None:
            buf.release()
        size = max(minimum, nbytes if buf is None else int(nbytes * GROWTH))
        return self.ctx.buffer(reserve=-(-size // 16) * 16)

    def set_order(self, order: np.ndarray) -> None:
        """Upload a back-to-front index list (uint32) produced by the sorter for the current
        cloud: at most ``cloud.count`` indices, each below it (the buffers may be larger than
        the cloud, and an index past it would draw a stale splat of an earlier frame)."""
        if self._order is None or self.cloud is None:
            raise InvalidArgument("no splats uploaded")
        order = np.ascontiguousarray(order, np.uint32)
        count = self.cloud.count
        if order.size > count or (order.size and int(order.max()) >= count):
            raise InvalidArgument(f"the order does not belong to the uploaded {count}-splat cloud")
        if order.size:
            self._order.write(order)
        self._order_count = int(order.size)

    # Drawing ---------------------------------------------------------------------------
    def draw(self, camera: Camera, settings: RenderSettings = RenderSettings()) -> None:
        """Draw the current order into the bound framebuffer (which must be camera-sized)."""
        if self.cloud is None or self._order_count == 0:
            return
        p = self.project
        p["count"].value = self.cloud.count
        p["view"].write(camera.view_matrix.T.astype("f4").tobytes())  # GL wants column-major
        p["cam_pos"].value = tuple(float(v) for v in camera.position)
        p["viewport"].value = (float(camera.width), float(camera.height))
        p["focal"].value = float(camera.focal)
        p["tan_half_fov"].value = (camera.tan_half_fov_x, camera.tan_half_fov_y)
        p["near"].value = float(camera.near)
        p["sh_stride"].value = int(self.cloud.sh.shape[1])
        p["sh_degree"].value = int(min(settings.sh_degree_limit, self.cloud.sh_degree))
        p["scale2"].value = float(settings.scale_modifier) ** 2
        for binding, buf in enumerate(self._buffers):
            buf.bind_to_storage_buffer(binding)
        self._order.bind_to_storage_buffer(3)
        self._projected.bind_to_storage_buffer(4)
        p.run(group_x=(self.cloud.count + 255) // 256)
        self.ctx.memory_barrier()  # the projection must land before the vertex stage reads it
        self.program["viewport"].value = (float(camera.width), float(camera.height))
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        self.ctx.blend_equation = moderngl.FUNC_ADD
        self.vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self._order_count)

    def release(self) -> None:
        self._release_buffers()
        self.vao.release()
        self.program.release()
        self.project.release()

    def _release_buffers(self) -> None:
        for buf in self._buffers:
            buf.release()
        for buf in (self._order, self._projected):
            if buf is not None:
                buf.release()
        self._buffers, self._order, self._projected, self.cloud = [], None, None, None


# The GL limits a render target must fit: its renderbuffer, the viewport, and the texture size
# (a video frame drawn into a target of its own size is a texture).
_SIZE_LIMITS = ("GL_MAX_TEXTURE_SIZE", "GL_MAX_RENDERBUFFER_SIZE", "GL_MAX_VIEWPORT_DIMS")
GL43_MIN_SIZE = 16384  # what every OpenGL 4.3 implementation must support


def max_target_size(ctx: moderngl.Context) -> tuple[int, int]:
    """(max width, max height) of a render target on ``ctx``: the smallest of its size limits."""
    widths, heights = [], []
    for name in _SIZE_LIMITS:
        value = ctx.info.get(name, 0)
        w, h = (value[0], value[1]) if isinstance(value, (tuple, list)) else (value, value)
        # Some contexts (Qt's, through moderngl's detection) report 0: ignore those rather than
        # refusing every size.
        widths += [int(w)] if w else []
        heights += [int(h)] if h else []
    return min(widths, default=GL43_MIN_SIZE), min(heights, default=GL43_MIN_SIZE)


def check_target_size(ctx: moderngl.Context, width: int, height: int) -> None:
    """Refuse a target larger than this GL implementation supports, before allocating it."""
    max_w, max_h = max_target_size(ctx)
    if width > max_w or height > max_h:
        raise InvalidArgument(
            f"{width}x{height} is larger than this GPU supports ({max_w}x{max_h}: the smallest of "
            f"{', '.join(_SIZE_LIMITS)})"
        )


class OffscreenTarget:
    """A float RGBA framebuffer, composited over the background on read.

    Half floats by default: blending hundreds of layers stays within ~60 dB of 32-bit floats
    (far above 8-bit output precision), and fp32 blending is 4-5x slower on NVIDIA parts
    (measured on an H100: 95 vs 21 ms for 1M splats at 1080p). ``dtype="f4"`` is available.
    """

    def __init__(self, ctx: moderngl.Context, width: int, height: int, dtype: str = "f2") -> None:
        check_target_size(ctx, width, height)
        self.ctx, self.width, self.height = ctx, width, height
        self.color = ctx.renderbuffer((width, height), 4, dtype=dtype)
        self.fbo = ctx.framebuffer(color_attachments=[self.color])

    def begin(self, clear: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)) -> None:
        """Bind and clear. Clearing to (background, 1) instead of 0 composites while blending
        (what an on-screen viewport wants); the default keeps coverage for ``read_rgb``."""
        self.fbo.use()
        self.ctx.viewport = (0, 0, self.width, self.height)
        self.fbo.clear(*clear)

    def read_rgb(self, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 3] float32, row 0 at the top, composited over ``background``."""
        raw = np.frombuffer(self.fbo.read(components=4, dtype="f4"), np.float32)
        rgba = raw.reshape(self.height, self.width, 4)[::-1]
        return rgba[..., :3] + (1.0 - rgba[..., 3:4]) * np.asarray(background, np.float32)

    def release(self) -> None:
        if self.ctx.fbo is self.fbo:
            # moderngl re-binds the current framebuffer after creating a new one; unbind first so
            # it never re-binds a deleted name (GL_INVALID_OPERATION).
            self.ctx.detect_framebuffer(0).use()
        self.fbo.release()
        self.color.release()


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 with rounding (what gets encoded and saved)."""
    return np.ascontiguousarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8))
