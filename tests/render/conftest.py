"""A real standalone EGL OpenGL context; every test using it fails on any GL error."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _session_gl_ctx():
    from holoscope.render.gl.context import create_headless_context

    ctx = create_headless_context()
    yield ctx
    ctx.release()


@pytest.fixture
def gl_ctx(_session_gl_ctx):
    ctx = _session_gl_ctx
    with ctx:  # current for the whole test, whatever other contexts the code under test uses
        assert ctx.error == "GL_NO_ERROR", "a previous test left a GL error"
        yield ctx
        assert ctx.error == "GL_NO_ERROR"
