"""A standalone OpenGL 4.3 context on EGL: no display, no Qt (Mesa llvmpipe or a GPU driver)."""

from __future__ import annotations

import moderngl

from holoscope.core.errors import DecoderUnavailable

GL_REQUIRE = 430  # SSBOs in the vertex stage


def create_headless_context() -> moderngl.Context:
    try:
        return moderngl.create_standalone_context(backend="egl", require=GL_REQUIRE)
    except Exception as exc:  # moderngl raises bare Exception subclasses for EGL failures
        raise DecoderUnavailable(
            "no OpenGL 4.3 context through EGL "
            f"({exc}); install Mesa's EGL (Debian: libegl1 libgl1-mesa-dri) or a GPU driver"
        ) from exc
