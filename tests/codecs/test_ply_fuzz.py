"""Property-based fuzzing of the INRIA PLY reader: random and mutated bytes give a cloud or a
holoscope error, never another exception or a hang."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

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
