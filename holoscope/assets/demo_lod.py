"""The built-in streamed-LOD demo: the demo scene (holoscope.assets.demo) written as a
PlayCanvas streamed-LOD scene (``lod-meta.json`` and its SOG chunk folders), cached on first use.

Small chunks (8K splats, 1 unit) so that the scene has several chunks and files per level: the
app's LOD view streams it coarse first and refines by need, as it would a large scene.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from holoscope.assets.demo import DEMO_VERSION, cache_dir, make_demo_cloud

DEMO_LOD_VERSION = 1
CHUNK_K, CHUNK_MIN_K, CHUNK_EXTENT = 8, 2, 1.0


def demo_lod_path() -> Path:
    """Path of the cached demo scene's ``lod-meta.json``, written on first use (the writer
    stages the folder and moves it into place, so a half-written scene is never found)."""
    name = f"demo-lod-v{DEMO_VERSION}.{DEMO_LOD_VERSION}"
    path = cache_dir() / name / "lod-meta.json"
    if path.is_file():
        return path
    try:
        _write(path)
    except OSError:  # OutputError included: a read-only cache, a per-user temporary folder then
        path = Path(tempfile.gettempdir()) / f"holoscope-{os.getuid()}-{name}" / "lod-meta.json"
        if not path.is_file():
            _write(path)
    return path


def _write(path: Path) -> None:
    from holoscope.codecs.formats.lod_write import write_lod

    path.parent.mkdir(parents=True, exist_ok=True)
    write_lod(make_demo_cloud(), path, chunk_count=CHUNK_K, chunk_min=CHUNK_MIN_K, chunk_extent=CHUNK_EXTENT,
              iterations=2)  # fmt: skip
