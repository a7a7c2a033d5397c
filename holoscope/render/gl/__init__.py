"""OpenGL (moderngl) renderers. The context comes from outside: EGL headless or Qt's widget."""
