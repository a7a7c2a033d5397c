"""The bounded MessagePack codec under Instant-NGP snapshots: round trips of every type it
writes, byte-exact encodings checked against the MessagePack specification's examples, and
hostile documents (deep nesting, lying lengths, truncation, extension types) refused at once."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holoscope.codecs.hashgrid.msgpack import MAX_DEPTH, packb, unpackb
from holoscope.core.errors import CorruptStream


def plain(value):
    """``unpackb``'s result with memoryviews as bytes (for comparisons)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# Encodings from the MessagePack specification (msgpack/msgpack spec.md), byte for byte.
SPEC = [
    (None, b"\xc0"), (False, b"\xc2"), (True, b"\xc3"), (0, b"\x00"), (127, b"\x7f"), (-1, b"\xff"),
    (-32, b"\xe0"), (-33, b"\xd0\xdf"), (128, b"\xcc\x80"), (256, b"\xcd\x01\x00"), (65536, b"\xce\x00\x01\x00\x00"),
    (1 << 32, b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), (-129, b"\xd1\xff\x7f"), (1.5, b"\xca\x3f\xc0\x00\x00"),
    (0.1, b"\xcb" + struct.pack(">d", 0.1)), ("", b"\xa0"), ("a" * 31, b"\xbf" + b"a" * 31),
    ("a" * 32, b"\xd9\x20" + b"a" * 32), (b"\x01\x02", b"\xc4\x02\x01\x02"), ([], b"\x90"),
    (list(range(16)), b"\xdc\x00\x10" + bytes(range(16))), ({"a": 1}, b"\x81\xa1a\x01"),
]  # fmt: skip


@pytest.mark.parametrize("value, encoded", SPEC, ids=[repr(e[:6]) for _, e in SPEC])
def test_encodings_follow_the_specification(value, encoded):
    assert packb(value) == encoded
    assert plain(unpackb(encoded)) == value


def test_a_snapshot_shaped_document_round_trips_with_zero_copy_binaries():
    params = struct.pack("<8e", *range(8))
    doc = {"snapshot": {"version": 1, "mode": "nerf", "n_params": 8, "params_type": "__half", "params_binary": params,
                        "aabb": {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]}},
           "encoding": {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19}}  # fmt: skip
    data = packb(doc)
    got = unpackb(data)
    assert plain(got) == doc
    blob = got["snapshot"]["params_binary"]
    assert isinstance(blob, memoryview) and blob.obj is not None and bytes(blob) == params


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_everything_it_writes_reads_back(value):
    assert plain(unpackb(packb(value))) == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_fail_cleanly(data):
    try:
        unpackb(data)
    except CorruptStream as exc:
        assert "MessagePack" in str(exc)


@pytest.mark.parametrize("data, needle", [
    (b"\xdd\xff\xff\xff\xff\x01", "elements declared"),  # array32 of 4 billion in 6 bytes
    (b"\xdf\xff\xff\xff\xff\x01\x01", "elements declared"),  # map32 of 4 billion
    (b"\xc6\xff\xff\xff\xff\x00", "bytes declared"),  # bin32 of 4 GB
    (b"\xdb\x7f\xff\xff\xff", "bytes declared"),  # str32
    (b"\x91" * (MAX_DEPTH + 5) + b"\x00", "nested deeper"),
    (b"\xd4\x01\x00", "extension"),  # fixext1
    (b"\xc1", "not used"),  # never used
    (b"\x81\x90\x00", "map key"),
    (b"\xa2\xff\xfe", "UTF-8"),
    (b"\x01\x02", "after the document"),
    (b"\xcb\x00\x00", "declared"),  # a truncated float64
    (b"", "declared"),
])  # fmt: skip
def test_hostile_documents_fail_fast_with_one_clear_error(data, needle):
    start = time.monotonic()
    with pytest.raises(CorruptStream, match=needle) as info:
        unpackb(data, label="snap.msgpack")
    assert time.monotonic() - start < 0.5
    assert "snap.msgpack" in str(info.value) and "\n" not in str(info.value)


def test_the_value_count_is_capped():
    many = b"\xdc\xff\xff" + b"\x00" * 0xFFFF
    with pytest.raises(CorruptStream, match="values"):
        unpackb(many, max_values=1000)
    assert len(unpackb(many)) == 0xFFFF


def test_what_cannot_be_written_is_refused():
    with pytest.raises(TypeError):
        packb({1, 2})
    with pytest.raises(ValueError):
        packb(1 << 64)
