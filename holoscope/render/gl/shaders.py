"""Shader sources, shipped as package data in holoscope/assets/shaders."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def shader_source(name: str) -> str:
    return resources.files("holoscope.assets").joinpath("shaders", name).read_text(encoding="utf-8")
