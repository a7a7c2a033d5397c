"""Renderers: OpenGL splat renderer, CPU reference rasterizer, depth sorting."""
