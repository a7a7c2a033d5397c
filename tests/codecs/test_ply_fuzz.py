"""Property-based fuzzing of the PLY readers: random and mutated bytes, and headers built from the
PLY grammar with lying counts, give a cloud or a holoscope error, never another exception or a hang."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from holoscope.codecs.formats.ply_compressed import read_compressed_ply
from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.core.errors import HoloscopeError
from .helpers import fuzz_settings

FUZZ = fuzz_settings(150)


def attempt(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz.ply"
    path.write_bytes(data)
    try:
        cloud = read_ply(path)
    except HoloscopeError:
        return
    assert cloud.count > 0
    assert np.isfinite(cloud.means).all() and (cloud.opacities >= 0).all() and (cloud.opacities <= 1).all()


@FUZZ
@given(body=st.binary(max_size=2048), header=st.sampled_from([
    b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nend_header\n",
    b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
    b"ply\nformat binary_big_endian 1.0\nelement vertex 999999999\nproperty double x\nend_header\n",
    b"ply\n",
]))  # fmt: skip
def test_random_bodies(tmp_path, header, body):
    attempt(tmp_path, header + body)


@FUZZ
@given(data=st.data())
def test_mutated_real_sample(tmp_path, samples_dir, data):
    original = bytearray((samples_dir / "splats" / "lod5.ply").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(original) - 1))
        original[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    attempt(tmp_path, bytes(original[:cut]))


# Headers built from the PLY grammar, with counts that lie: both PLY readers, a cloud or a holoscope
# error within seconds (the counts reach 10**30; nothing may be allocated or parsed for them).

TYPES = ["char", "uchar", "short", "ushort", "int", "uint", "float", "double", "int8", "float32", "float128"]
NAMES = ["x", "y", "z", "red", "green", "blue", "alpha", "nx", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0",
         "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "f_rest_0", "packed_position", "packed_rotation",
         "packed_scale", "packed_color", "min_x", "max_x", "vertex_indices"]  # fmt: skip
SPLAT = [f"property float {n}" for n in ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
                                         "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")]  # fmt: skip
PACKED = [f"property uint {n}" for n in ("packed_position", "packed_rotation", "packed_scale", "packed_color")]

# Mostly counts the body can hold, so that reading and decoding are reached too.
counts = st.one_of(st.integers(0, 40), st.integers(1, 8),
                   st.sampled_from([256, 257, 2**31, 2**32 + 1, 10**12, 10**19, 10**30, -1]))  # fmt: skip
properties = st.one_of(
    st.builds("property {} {}".format, st.sampled_from(TYPES), st.sampled_from(NAMES)),
    st.builds("property list {} {} {}".format, st.sampled_from(TYPES), st.sampled_from(TYPES), st.sampled_from(NAMES)),
)
elements = st.builds(
    lambda name, count, props: "\n".join([f"element {name} {count}", *props]),
    st.sampled_from(["vertex", "vertex", "face", "chunk", "sh"]),
    counts,
    st.one_of(st.lists(properties, max_size=12, unique_by=lambda p: p.split()[-1]), st.just(SPLAT), st.just(SPLAT),
              st.just(PACKED)),  # fmt: skip
)
ASCII_WORDS = np.array(["0", "1", "-1", "255", "300", "1.5", "nan", "inf", "1e40", "x", "\n", "\n", "\n"])
bodies = st.one_of(
    st.binary(max_size=256),
    st.integers(0, 2**32).map(lambda seed: np.random.default_rng(seed).bytes(4096)),  # full rows, random values
    st.integers(0, 2**32).map(lambda seed: " ".join(np.random.default_rng(seed).choice(ASCII_WORDS, 800)).encode()),
)


@FUZZ
@given(fmt=st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian"]),
       parts=st.lists(elements, max_size=4, unique_by=lambda e: e.split()[1]), body=bodies)  # fmt: skip
def test_grammar_headers_with_lying_counts(tmp_path, fmt, parts, body):
    path = tmp_path / "grammar.ply"
    path.write_bytes("\n".join(["ply", f"format {fmt} 1.0", *parts, "end_header", ""]).encode() + body)
    for reader in (read_ply, read_compressed_ply):
        start = time.perf_counter()
        try:
            cloud = reader(path)
        except HoloscopeError as exc:
            assert "\n" not in str(exc)
        else:
            assert cloud.count > 0 and np.isfinite(cloud.means).all()
        assert time.perf_counter() - start < 2.0, reader.__name__
