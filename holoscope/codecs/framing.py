"""The framing holoscope's own binary formats share (.gsv, .nerv): a 16-byte fixed part
(4-byte magic, u16 version, u16 flags, u32 header length, u32 CRC-32 of the header), a
zstd-compressed JSON header, then the data at offsets the header lists; and writing such a
file atomically. Every number is checked before it sizes anything."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any, Iterable

import zstandard

from holoscope.core.errors import CorruptStream

FIXED = struct.Struct("<4sHHII")
ZSTD_LEVEL = 19


def pack(magic: bytes, version: int, header: dict) -> bytes:
    """The fixed part and the compressed header."""
    payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(json.dumps(header, separators=(",", ":")).encode())
    return FIXED.pack(magic, version, 0, len(payload), zlib.crc32(payload)) + payload


def needed_bytes(head: bytes, max_header: int) -> int:
    """How many bytes from the start hold the fixed part and the header."""
    if len(head) < FIXED.size:
        return FIXED.size
    return FIXED.size + min(FIXED.unpack_from(head)[3], max_header)


def inflate(payload: bytes, limit: int) -> bytes:
    """Decompressed through a stream, so at most ``limit`` bytes are ever allocated
    (``decompress`` would trust the size a forged frame declares)."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
    parts, size = [], 0
    while size <= limit:
        chunk = reader.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
    raise ValueError(f"it inflates to more than {limit:,} bytes")


def unpack(head: bytes, *, magic: bytes, version: int, kind: str, max_header: int, max_json: int,
           label: Any) -> tuple[Any, int]:  # fmt: skip
    """The decoded JSON header and where it ends; every failure is one CorruptStream line
    (``kind`` names the format in messages: "Gaussian-video", "neural-video")."""
    if len(head) < FIXED.size:
        raise CorruptStream(f"file too short for a {kind} header", path=label)
    found, found_version, _flags, length, crc = FIXED.unpack_from(head)
    if found != magic:
        raise CorruptStream(f"not a holoscope {kind} file (bad magic)", path=label)
    if found_version != version:
        raise CorruptStream(f"{kind} version {found_version} is not supported (this holoscope reads {version})", path=label)
    if not 0 < length <= max_header:
        raise CorruptStream(f"header length {length:,} is beyond the limit of {max_header:,} bytes", path=label)
    payload = head[FIXED.size:FIXED.size + length]
    if len(payload) < length:
        raise CorruptStream(f"file truncated inside its header ({len(payload):,} of {length:,} bytes)", path=label)
    if zlib.crc32(payload) != crc:
        raise CorruptStream("header checksum mismatch: the metadata is damaged", path=label)
    try:
        return json.loads(inflate(payload, max_json)), FIXED.size + length
    except (zstandard.ZstdError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptStream(f"header does not decode: {exc}", path=label) from exc


def write_atomically(path: str | Path, parts: Iterable[bytes]) -> int:
    """Write ``parts`` to ``path`` through a hidden temporary file renamed at the end, so no
    half-written file is ever seen under the name; returns the bytes written."""
    from holoscope.codecs.video.output import publish_file, reserve_temp

    target = Path(path)
    temp = reserve_temp(target)
    size = 0
    try:
        with open(temp, "wb") as fh:
            for part in parts:
                fh.write(part)
                size += len(part)
        publish_file(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size
