"""The table of built-in formats. Imports nothing heavy: openers are dotted paths."""

from __future__ import annotations

from holoscope.core.media import MediaKind
from holoscope.core.registry import FormatSpec, register


def _is_inria_ply(head: bytes) -> bool:
    # Any PLY that is not PlayCanvas' chunked "compressed PLY" goes to the INRIA reader, which
    # then names the properties it misses if the file is not a splat scene.
    return head.startswith((b"ply\n", b"ply\r\n")) and b"element chunk" not in head.split(b"end_header")[0]


register(
    FormatSpec(
        name="ply",
        description="INRIA 3D Gaussian Splatting PLY (SH degree 0-3)",
        kind=MediaKind.SPLATS,
        extensions=(".ply",),
        opener="holoscope.codecs.formats.ply_inria:open_ply",
        writer="holoscope.codecs.formats.ply_inria:write_ply",
        probe=_is_inria_ply,
        magic="'ply' + float x..rot_3 vertex properties",
        priority=10,
    )
)
