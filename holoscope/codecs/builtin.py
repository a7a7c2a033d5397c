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


# HEIF/AVIF stills and other ISO-BMFF files that are images, not movies.
_ISO_BMFF_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"avif", b"jp2 ", b"crx ")


def _is_video_container(head: bytes) -> bool:
    # EBML magic 1A 45 DF A3 (mkv, webm) or ISO-BMFF, an 'ftyp' box at byte 4 (mp4, m4v, mov).
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _ISO_BMFF_IMAGE_BRANDS
    # QuickTime files from before 'ftyp' existed open with one of these atoms.
    return len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide") and head[:4] != b"\0\0\0\0"


register(
    FormatSpec(
        name="video",
        description="Plain video (MP4/MOV or Matroska/WebM; H.264, HEVC, AV1, VP9 ... via PyAV)",
        kind=MediaKind.VIDEO,
        extensions=(".mp4", ".m4v", ".mov", ".mkv", ".webm"),
        opener="holoscope.codecs.video.decode:open_video",
        probe=_is_video_container,
        magic="'ftyp' box at byte 4 (ISO-BMFF) or EBML 1A 45 DF A3 (Matroska)",
        priority=5,
    )
)
