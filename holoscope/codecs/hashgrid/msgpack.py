"""MessagePack, bounded: the container of Instant-NGP snapshots (``.msgpack``, and ``.ingp``
once inflated), read from untrusted files (issue 11's first part).

Written here rather than taken from the ``msgpack`` package because hostile input needs limits
that package applies only partly: every declared length is checked against the bytes that
remain *before* anything is allocated (an ``array32`` of four billion elements in a 10-byte file
is refused at once), nesting is capped (no recursion error), the total number of values is
capped, and ``bin`` payloads (the snapshot's multi-megabyte ``params_binary``) come back as
zero-copy ``memoryview`` slices of the input. The decoder returns dict / list / str / bytes-like
/ int / float / bool / None; extension types and timestamps are refused (snapshots have none).
:func:`packb` writes the same subset (what a holoscope-written ``.ingp`` needs).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from holoscope.core.errors import CorruptStream

MAX_DEPTH = 64  # snapshots nest about 6 deep
MAX_VALUES = 10_000_000  # values of all kinds in one document


class _Reader:
    def __init__(self, data: bytes | bytearray | memoryview, label: Any, max_depth: int, max_values: int) -> None:
        self.view = memoryview(data).cast("B")
        self.at = 0
        self.label = label
        self.max_depth = max_depth
        self.values_left = max_values

    def fail(self, message: str) -> CorruptStream:
        return CorruptStream(f"bad MessagePack at byte {self.at:,}: {message}", path=self.label)

    def take(self, n: int) -> memoryview:
        if n > len(self.view) - self.at:
            raise self.fail(f"{n:,} bytes declared, {len(self.view) - self.at:,} left")
        out = self.view[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def count(self, n: int, least_bytes_each: int) -> int:
        """A declared element count, checked against what the remaining bytes can hold."""
        if n * least_bytes_each > len(self.view) - self.at:
            raise self.fail(f"{n:,} elements declared, {len(self.view) - self.at:,} bytes left")
        self.values_left -= n
        if self.values_left < 0:
            raise self.fail(f"more than {MAX_VALUES:,} values")
        return n

    def value(self, depth: int) -> Any:
        if depth > self.max_depth:
            raise self.fail(f"nested deeper than {self.max_depth}")
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        sized = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
        if b in sized:
            return self.take(self.unpack(sized[b]))
        numbers = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                   0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}  # fmt: skip
        if b in numbers:
            return self.unpack(numbers[b])
        strings = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
        if b in strings:
            return self.text(self.unpack(strings[b]))
        if b in (0xDC, 0xDD):
            return self.array(self.unpack(">H" if b == 0xDC else ">I"), depth)
        if b in (0xDE, 0xDF):
            return self.map(self.unpack(">H" if b == 0xDE else ">I"), depth)
        raise self.fail(f"type 0x{b:02x} is not used by snapshots (extension types are refused)")

    def text(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError:
            raise self.fail("a string is not UTF-8") from None

    def array(self, n: int, depth: int) -> list:
        return [self.value(depth + 1) for _ in range(self.count(n, 1))]

    def map(self, n: int, depth: int) -> dict:
        out: dict = {}
        for _ in range(self.count(n, 2)):
            key = self.value(depth + 1)
            if isinstance(key, memoryview):
                key = bytes(key)
            elif isinstance(key, (dict, list)):
                raise self.fail("a map key is a map or an array")
            out[key] = self.value(depth + 1)
        return out


def unpackb(data: bytes | bytearray | memoryview, *, label: Any = None, max_depth: int = MAX_DEPTH,
            max_values: int = MAX_VALUES) -> Any:  # fmt: skip
    """The one MessagePack document in ``data`` (trailing bytes are an error); ``bin`` values
    are ``memoryview`` slices of ``data``. Any malformation is a :class:`CorruptStream`."""
    reader = _Reader(data, label, max_depth, max_values)
    value = reader.value(0)
    if reader.at != len(reader.view):
        raise reader.fail(f"{len(reader.view) - reader.at:,} bytes after the document")
    return value


def packb(value: Any) -> bytes:
    """``value`` (dict, list, tuple, str, bytes-like, int, float, bool, None) as MessagePack,
    in the smallest encodings (floats as float64 unless they are float32-exact)."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _pack(v: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep for MessagePack")
    if v is None:
        out.append(0xC0)
    elif v is True or v is False:
        out.append(0xC3 if v else 0xC2)
    elif isinstance(v, int):
        _pack_int(v, out)
    elif isinstance(v, float):
        try:
            single = struct.pack(">f", v)
        except OverflowError:  # beyond float32's range
            single = b""
        if single and math.isfinite(v) and struct.unpack(">f", single)[0] == v:
            out += b"\xca" + single
        else:
            out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, str):
        raw = v.encode("utf-8")
        _pack_len(len(raw), out, 0xA0, 31, (0xD9, 0xDA, 0xDB))
        out += raw
    elif isinstance(v, (bytes, bytearray, memoryview)):
        raw = memoryview(v).cast("B")
        _pack_len(len(raw), out, None, 0, (0xC4, 0xC5, 0xC6))
        out += raw
    elif isinstance(v, (list, tuple)):
        _pack_len(len(v), out, 0x90, 15, (None, 0xDC, 0xDD))
        for item in v:
            _pack(item, out, depth + 1)
    elif isinstance(v, dict):
        _pack_len(len(v), out, 0x80, 15, (None, 0xDE, 0xDF))
        for key, item in v.items():
            _pack(key, out, depth + 1)
            _pack(item, out, depth + 1)
    else:
        raise TypeError(f"cannot write a {type(v).__name__} as MessagePack")


def _pack_int(v: int, out: bytearray) -> None:
    if 0 <= v <= 0x7F or -32 <= v < 0:
        out += struct.pack(">b" if v < 0 else ">B", v)
        return
    for code, fmt, lo, hi in ((0xCC, ">B", 0, 0xFF), (0xCD, ">H", 0, 0xFFFF), (0xCE, ">I", 0, 0xFFFFFFFF),
                              (0xCF, ">Q", 0, (1 << 64) - 1), (0xD0, ">b", -128, 127), (0xD1, ">h", -(1 << 15), (1 << 15) - 1),
                              (0xD2, ">i", -(1 << 31), (1 << 31) - 1), (0xD3, ">q", -(1 << 63), (1 << 63) - 1)):  # fmt: skip
        if lo <= v <= hi:
            out += bytes([code]) + struct.pack(fmt, v)
            return
    raise ValueError(f"{v} does not fit MessagePack's 64-bit integers")


def _pack_len(n: int, out: bytearray, fix: int | None, fix_max: int, codes: tuple) -> None:
    if fix is not None and n <= fix_max:
        out.append(fix | n)
    elif codes[0] is not None and n <= 0xFF:
        out += bytes([codes[0], n])
    elif n <= 0xFFFF:
        out += bytes([codes[1]]) + struct.pack(">H", n)
    elif n <= 0xFFFFFFFF:
        out += bytes([codes[2]]) + struct.pack(">I", n)
    else:
        raise ValueError(f"{n:,} elements do not fit MessagePack")


__all__ = ["MAX_DEPTH", "MAX_VALUES", "packb", "unpackb"]
