"""The table of built-in formats and :func:`register_builtin_formats`, which the program's entry
points call at start-up (the core registry imports nothing from codecs).

Imports nothing heavy: each opener and writer is a ``registry.lazy`` callable whose loader imports
the reader module only when a file of that format is used, so opening a PLY never imports PyAV,
zstandard, the WebP decoder or torch.
"""

from __future__ import annotations

from types import ModuleType

from holoscope.core.errors import HoloscopeError
from holoscope.core.media import MediaKind
from holoscope.core.registry import FormatSpec, is_registered, lazy, register
from holoscope.core.sources import Source


def _has(folder: Source, name: str) -> bool:
    """Whether the folder (local, or a URL ending in '/') holds a file ``name``."""
    try:
        member = folder.relative(name)
        return not member.is_folder and member.exists()
    except (HoloscopeError, OSError):
        return False


# Each loader imports one reader module (a plain import statement, visible to PyInstaller and to
# the layering test); registry.lazy calls it, then takes the named function, at each use.


def _ply_inria() -> ModuleType:
    from holoscope.codecs.formats import ply_inria

    return ply_inria


def _video_decode() -> ModuleType:
    from holoscope.codecs.video import decode

    return decode


def _ply_compressed() -> ModuleType:
    from holoscope.codecs.formats import ply_compressed

    return ply_compressed


def _spz() -> ModuleType:
    from holoscope.codecs.formats import spz

    return spz


def _sog() -> ModuleType:
    from holoscope.codecs.formats import sog

    return sog


def _lod() -> ModuleType:
    from holoscope.codecs.formats import lod

    return lod


def _lod_write() -> ModuleType:
    from holoscope.codecs.formats import lod_write

    return lod_write


def _ksplat() -> ModuleType:
    from holoscope.codecs.formats import ksplat

    return ksplat


def _splat() -> ModuleType:
    from holoscope.codecs.formats import splat

    return splat


def _gsv() -> ModuleType:
    from holoscope.codecs.gsvideo import gsv

    return gsv


def _v3() -> ModuleType:
    from holoscope.codecs.gsvideo import v3

    return v3


def _nerv() -> ModuleType:
    from holoscope.codecs.nerv import reader

    return reader


def _hashgrid() -> ModuleType:
    from holoscope.codecs.hashgrid import reader

    return reader


def _hashgrid_writers() -> ModuleType:
    from holoscope.codecs.hashgrid import convert

    return convert


def _is_inria_ply(head: bytes) -> bool:
    # Any PLY that is not PlayCanvas' chunked "compressed PLY" goes to the INRIA reader, which
    # then names the properties it misses if the file is not a splat scene.
    return head.startswith((b"ply\n", b"ply\r\n")) and b"element chunk" not in head.split(b"end_header")[0]


PLY = FormatSpec(
    name="ply",
    description="INRIA 3D Gaussian Splatting PLY (SH degree 0-3)",
    kind=MediaKind.SPLATS,
    extensions=(".ply",),
    opener=lazy(_ply_inria, "open_ply"),
    writer=lazy(_ply_inria, "write_ply"),
    probe=_is_inria_ply,
    magic="'ply' + float x..rot_3 vertex properties",
    priority=10,
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


VIDEO = FormatSpec(
    name="video",
    description="Plain video (MP4/MOV or Matroska/WebM; H.264, HEVC, AV1, VP9 ... via PyAV)",
    kind=MediaKind.VIDEO,
    extensions=(".mp4", ".m4v", ".mov", ".mkv", ".webm"),
    opener=lazy(_video_decode, "open_video"),
    probe=_is_video_container,
    magic="'ftyp' box at byte 4 (ISO-BMFF) or EBML 1A 45 DF A3 (Matroska)",
    priority=5,
)


def _is_hls(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"#EXTM3U")


HLS = FormatSpec(
    name="hls",
    description="HLS playlist (.m3u8) of a plain video: FFmpeg fetches the playlist and its segments",
    kind=MediaKind.VIDEO,
    extensions=(".m3u8",),
    opener=lazy(_video_decode, "open_video"),
    probe=_is_hls,
    magic="#EXTM3U",
    priority=5,
)


def _is_compressed_ply(head: bytes) -> bool:
    header = head.split(b"end_header")[0]
    return head.startswith((b"ply\n", b"ply\r\n")) and b"element chunk" in header


def _is_spz(head: bytes) -> bool:
    """Raw SPZ ("NGSP" magic: v4, or an uncompressed legacy stream), or gzip holding NGSP."""
    if head[:4] == b"NGSP":
        return True
    if head[:2] != b"\x1f\x8b":
        return False
    import zlib

    try:
        out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4)
    except zlib.error:
        return False
    # Nothing out of a valid gzip start: its header (a long file name or comment) runs past the
    # peek. SPZ is the only gzip format registered, so let its reader decide.
    return out in (b"NGSP", b"")


def _is_sog(head: bytes) -> bool:
    """A .sog zip (meta.json + WebP members) or an unbundled SOG's meta.json itself."""
    if head[:4] == b"PK\x03\x04":
        return b"meta.json" in head or b".webp" in head
    return head.lstrip()[:1] == b"{" and b'"means"' in head


def _is_sog_dir(folder: Source) -> bool:
    return _has(folder, "meta.json")


COMPRESSED_PLY = FormatSpec(
    name="compressed-ply",
    description="PlayCanvas compressed PLY (256-splat chunks, packed attributes, optional SH)",
    kind=MediaKind.SPLATS,
    extensions=(".compressed.ply",),
    opener=lazy(_ply_compressed, "open_compressed_ply"),
    probe=_is_compressed_ply,
    magic="'ply' + element chunk",
    priority=20,
)
SPZ = FormatSpec(
    name="spz",
    description="Niantic SPZ, versions 1-4 (gzip or zstd streams)",
    kind=MediaKind.SPLATS,
    extensions=(".spz",),
    opener=lazy(_spz, "open_spz"),
    writer=lazy(_spz, "write_spz"),
    probe=_is_spz,
    magic="NGSP (raw or inside gzip 1F 8B)",
    priority=15,
)
SOG = FormatSpec(
    name="sog",
    description="PlayCanvas SOG, versions 1-2 (.sog zip or a folder with meta.json)",
    kind=MediaKind.SPLATS,
    extensions=(".sog", "meta.json"),
    opener=lazy(_sog, "open_sog"),
    writer=lazy(_sog, "write_sog"),
    probe=_is_sog,
    magic="ZIP (PK 03 04) with meta.json + WebP",
    priority=12,
    directory_probe=_is_sog_dir,
)


def _is_lod(head: bytes) -> bool:
    # lodLevels comes early in splat-transform's lod-meta.json; "tree" may lie past the peek when
    # the file list is long, so "filenames" is taken as well.
    return head.lstrip()[:1] == b"{" and b'"lodLevels"' in head and (b'"tree"' in head or b'"filenames"' in head)


def _is_lod_dir(folder: Source) -> bool:
    return _has(folder, "lod-meta.json")


# Above SOG: both claim names ending in meta.json; the longer extension wins for writing.
LOD = FormatSpec(
    name="lod",
    description="PlayCanvas streamed LOD (lod-meta.json + SOG chunks per level, splat-transform's layout)",
    kind=MediaKind.SPLATS,
    extensions=("lod-meta.json",),
    opener=lazy(_lod, "open_lod"),
    writer=lazy(_lod_write, "write_lod"),
    probe=_is_lod,
    magic="JSON with lodLevels + tree/filenames",
    priority=13,
    directory_probe=_is_lod_dir,
)
KSPLAT = FormatSpec(
    name="ksplat",
    description="mkkellogg GaussianSplats3D .ksplat (compression modes 0-2)",
    kind=MediaKind.SPLATS,
    extensions=(".ksplat",),
    opener=lazy(_ksplat, "open_ksplat"),
    magic="4096-byte header, u8 version 0.x (by extension)",
)
SPLAT = FormatSpec(
    name="splat",
    description="antimatter15 .splat (32 bytes per splat, no header, no SH)",
    kind=MediaKind.SPLATS,
    extensions=(".splat",),
    opener=lazy(_splat, "open_splat"),
    writer=lazy(_splat, "write_splat"),
    magic="none (by extension; size a multiple of 32)",
)

_GSV_MANIFEST_TAG = b'"holoscope-gsv-manifest"'


def _is_gsv(head: bytes) -> bool:
    """A .gsv file, or the manifest of a segmented Gaussian-video layout."""
    return head[:4] == b"HSGV" or (head.lstrip()[:1] == b"{" and _GSV_MANIFEST_TAG in head)


def _is_gsv_dir(folder: Source) -> bool:
    try:
        return _GSV_MANIFEST_TAG in folder.relative("manifest.json").head(4096)
    except (HoloscopeError, OSError):
        return False


GSV = FormatSpec(
    name="gsv",
    description="holoscope Gaussian video (.gsv file, or a segment folder with manifest.json)",
    kind=MediaKind.SPLAT_VIDEO,
    extensions=(".gsv", "manifest.json"),
    opener=lazy(_gsv, "open_gsv"),
    probe=_is_gsv,
    magic="HSGV, or a manifest.json naming holoscope-gsv-manifest",
    priority=30,
    directory_probe=_is_gsv_dir,
)


def _is_v3_dir(folder: Source) -> bool:
    """A V^3 stream folder (VideoGS layout): group_info.json beside viewer_min_max.json."""
    return _has(folder, "group_info.json") and _has(folder, "viewer_min_max.json")


V3 = FormatSpec(
    name="v3",
    description="V^3 volumetric Gaussian video (VideoGS folder: JSON tables + group<g>/0..19.mp4)",
    kind=MediaKind.SPLAT_VIDEO,
    extensions=("group_info.json",),
    opener=lazy(_v3, "open_v3"),
    # No probe: a JSON table has no signature worth trusting, and a damaged group_info.json must
    # still reach the reader (which names what is wrong) rather than be "not recognised".
    magic="none (a folder with group_info.json + viewer_min_max.json, or its group_info.json)",
    directory_probe=_is_v3_dir,
)

def _is_nerv(head: bytes) -> bool:
    return head[:4] == b"HSNV"


NERV = FormatSpec(
    name="nerv",
    description="holoscope neural video (.nerv: an HNeRV or NeRV decoder's quantised weights, and embeddings)",
    kind=MediaKind.NEURAL_VIDEO,
    extensions=(".nerv",),
    opener=lazy(_nerv, "open_nerv"),
    probe=_is_nerv,
    magic="HSNV",
    priority=30,
)



def _is_ingp(head: bytes) -> bool:
    # Checked after SPZ (also gzip): the reader's own sniff, imported only for a gzip or map start.
    if head[:2] != b"\x1f\x8b" and (not head or not (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))):
        return False
    return _hashgrid().looks_like_snapshot(head)


INGP = FormatSpec(
    name="ingp",
    description="Instant-NGP snapshot (.ingp gzip / .msgpack; NeRF, SDF and image modes)",
    kind=MediaKind.NEURAL_SCENE,
    extensions=(".ingp", ".msgpack"),
    opener=lazy(_hashgrid, "open_ingp"),
    writer=lazy(_hashgrid_writers, "write_ingp_scene"),
    probe=_is_ingp,
    magic="gzip or MessagePack map with instant-ngp's config keys",
    priority=16,
    options=("image_size",),
)


def _is_hgz(head: bytes) -> bool:
    return head[:4] == b"HSHG"


HGZ = FormatSpec(
    name="hgz",
    description="holoscope compressed hash-grid scene (.hgz: quantised tables, fp16 MLPs, occupancy bitfield)",
    kind=MediaKind.NEURAL_SCENE,
    extensions=(".hgz",),
    opener=lazy(_hashgrid, "open_hgz"),
    writer=lazy(_hashgrid_writers, "write_hgz_scene"),
    probe=_is_hgz,
    magic="HSHG",
    priority=30,
)

BUILTIN_FORMATS: tuple[FormatSpec, ...] = (PLY, VIDEO, HLS, COMPRESSED_PLY, SPZ, SOG, LOD, KSPLAT, SPLAT, GSV, V3, NERV,
                                           INGP, HGZ)  # fmt: skip


def register_builtin_formats() -> None:
    """Register the built-in formats; the program's entry points call this at start-up.

    Idempotent: a name already registered is left alone, so calling it again changes nothing
    and a format registered earlier under a built-in's name (a plugin) keeps its place."""
    for spec in BUILTIN_FORMATS:
        if not is_registered(spec.name):
            register(spec)
