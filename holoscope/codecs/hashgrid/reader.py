"""Hash-grid scenes opened as :class:`~holoscope.core.media.Media` of kind NEURAL_SCENE: one
frame (the :class:`HashGridScene`), no frame rate. Instant-NGP snapshots (``.ingp``, ``.msgpack``)
and holoscope's compressed ``.hgz`` open alike; an image-mode snapshot needs its image size
(``image_size``), which ``.hgz`` stores and Instant-NGP files do not.
"""

from __future__ import annotations

import os

from holoscope.codecs.hashgrid.scene import HashGridScene
from holoscope.codecs.hashgrid.snapshot import GZIP_MAGIC, open_snapshot
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, source_for

MAP_MARKERS = set(range(0x80, 0x90)) | {0xDE, 0xDF}  # MessagePack fixmap, map16, map32


def looks_like_snapshot(head: bytes) -> bool:
    """Raw MessagePack whose top level is a map naming instant-ngp's config keys, or gzip whose
    first inflated bytes are such a map."""
    if head[:2] == GZIP_MAGIC:
        import zlib

        try:
            head = zlib.decompressobj(15 + 32).decompress(head, 512)
        except zlib.error:
            return False
    if not head or head[0] not in MAP_MARKERS:
        return False
    return any(key in head[:512] for key in (b"snapshot", b"encoding", b"otype"))


def _media(scene: HashGridScene, source: Source, fmt: str, reader: str) -> Media:
    label = source.label
    info = scene.describe()
    if scene.mode != "image":  # the app's orbit up axis: the stored view's (NeRF datasets are often +z up)
        info["default_up"] = scene.up()
    return Media(
        kind=MediaKind.NEURAL_SCENE,
        format=fmt,
        reader=reader,
        frame_count=1,
        fps=0.0,
        load_frame=lambda index: scene,
        path=os.fspath(label) if isinstance(label, (str, os.PathLike)) else str(label),
        info=info,
        close=scene.release,
    )


def open_ingp(source: Source | str | os.PathLike, *, image_size: tuple[int, int] | None = None) -> Media:
    """An Instant-NGP snapshot (gzip ``.ingp`` or raw ``.msgpack``)."""
    source = source_for(source)
    snapshot = open_snapshot(source, image_size=image_size)
    container = "ingp" if source.head(2) == GZIP_MAGIC else "msgpack"
    scene = HashGridScene(snapshot, container, source.size or 0, image_size if snapshot.mode == "image" else None)
    return _media(scene, source, "ingp", "holoscope Instant-NGP snapshot reader")


def open_hgz(source: Source | str | os.PathLike) -> Media:
    """holoscope's compressed hash-grid scene."""
    from holoscope.codecs.hashgrid import hgz

    source = source_for(source)
    snapshot = hgz.read_hgz(source)
    image_size = (snapshot.document.get("snapshot") or {}).get("holoscope_image_size")
    size = tuple(int(v) for v in image_size) if image_size else None
    scene = HashGridScene(snapshot, "hgz", source.size or 0, size, {"hgz": hgz.describe_hgz(source)})  # type: ignore[arg-type]
    return _media(scene, source, "hgz", "holoscope .hgz reader")


__all__ = ["looks_like_snapshot", "open_hgz", "open_ingp"]
