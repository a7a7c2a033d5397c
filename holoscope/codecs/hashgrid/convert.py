"""Hash-grid scenes written out: ``.hgz`` (holoscope's compressed form) and Instant-NGP
snapshots (``.ingp`` / ``.msgpack``), from any scene holoscope opened. The format registry's
writers for ``convert``."""

from __future__ import annotations

from pathlib import Path

from holoscope.codecs.hashgrid.scene import HashGridScene
from holoscope.codecs.hashgrid.writer import write_snapshot
from holoscope.core.errors import InvalidArgument


def _scene(payload: object) -> HashGridScene:
    if not isinstance(payload, HashGridScene):
        raise InvalidArgument("only a hash-grid scene (.ingp, .msgpack, .hgz) converts to a hash-grid format")
    return payload


def write_hgz_scene(payload: object, path: str | Path, *, bits: int = 8, prune: bool = True) -> dict:
    """``payload`` compressed to ``.hgz``; returns the writer's size report."""
    from holoscope.codecs.hashgrid.hgz import write_hgz

    scene = _scene(payload)
    return write_hgz(scene.snapshot, path, bits=bits, prune=prune, image_size=scene.image_size)


def write_ingp_scene(payload: object, path: str | Path) -> int:
    """``payload`` as an Instant-NGP snapshot (gzip for ``.ingp``, raw for ``.msgpack``) that
    instant-ngp's testbed loads; a decoded ``.hgz`` carries its document in instant-ngp's layout."""
    scene = _scene(payload)
    document = dict(scene.snapshot.document)
    snap = dict(document.get("snapshot") or {})
    for key in [k for k in snap if k.startswith("holoscope_")]:  # holoscope's own additions
        del snap[key]
    document["snapshot"] = snap
    return write_snapshot(path, document)


__all__ = ["write_hgz_scene", "write_ingp_scene"]
