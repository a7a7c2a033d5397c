"""The .nerv stream container: quantisation, writing, chunked reading, damage (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.codecs.nerv import stream
from holoscope.core.errors import CorruptStream, InvalidArgument
from holoscope.core.sources import FileSource
from tests.nerv_data import read_stream as read_all
from tests.nerv_data import repack

CONFIG = {"family": "hnerv", "note": "the container does not interpret it"}


def make(tmp_path, frames=70, chunk_frames=30, seed=0):
    rng = np.random.default_rng(seed)
    weights = {
        "stem.weight": stream.quantise(rng.normal(size=(68, 16, 1, 1)), 8),
        "block.weight": stream.quantise(rng.normal(size=(200, 68, 3, 3)) * np.linspace(0.1, 2, 200)[:, None, None, None], 8),
        "block.bias": stream.quantise(rng.normal(size=(200,)), 8),
        "wide": stream.quantise(rng.normal(size=(12, 40)), 10),
    }
    embedding = stream.quantise(rng.normal(size=(frames, 16, 2, 4)), 6, axes=(1, 2, 3))
    path = tmp_path / "x.nerv"
    size = stream.write_nerv(path, CONFIG, weights, embedding, fps=25, chunk_frames=chunk_frames)
    return path, size, weights, embedding


def test_quantise_picks_the_axis_with_the_lowest_error_and_bounds_it():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(300, 40, 3, 3)) * np.logspace(-2, 1, 300)[:, None, None, None]
    q = stream.quantise(t, 8)
    assert q.axis == 0 and q.minimum.dtype == np.float16  # per output channel wins on this tensor
    step = q.scale.astype(np.float32)
    assert np.all(np.abs(q.dequantise() - t) <= step * 0.5 + np.abs(t) * 1e-3 + 1e-6)
    flat = stream.quantise(np.full((5, 5), 3.25), 8)  # a constant: scale 0, no NaN
    assert np.all(flat.dequantise() == np.float32(3.25)) and np.isfinite(flat.codes).all()


def test_round_trip_and_chunks(tmp_path):
    path, size, weights, embedding = make(tmp_path)
    assert path.stat().st_size == size
    header, got, chunks = read_all(path)
    assert header.config == CONFIG and header.fps == 25 and header.frames == 70
    assert [(c.start, c.frames) for c in header.chunks] == [(0, 30), (30, 30), (60, 10)]
    for name, q in weights.items():
        np.testing.assert_array_equal(got[name].codes, q.codes)
        np.testing.assert_array_equal(got[name].dequantise(), q.dequantise())
    joined = np.concatenate([c.codes for c in chunks])
    np.testing.assert_array_equal(joined, embedding.codes)
    np.testing.assert_array_equal(np.concatenate([c.dequantise() for c in chunks]), embedding.dequantise())
    sizes = stream.part_sizes(header)
    assert sum(sizes.values()) == size


def test_the_start_plays_before_the_rest_has_arrived(tmp_path):
    """Header, weights and the first chunk come first: a prefix of the file is enough for them."""
    path, _, _, embedding = make(tmp_path)
    data = path.read_bytes()
    source = FileSource(path)
    header = stream.parse_header(data[: stream.needed_bytes(data)], path)
    first = header.chunks[0]
    assert header.weights.offset < first.offset < header.chunks[1].offset
    prefix = data[: first.offset + first.length]

    class Prefix:
        def read_range(self, offset, length):
            return prefix[offset : offset + length]

    raw = stream.read_chunk(Prefix(), header.weights, path, "weights")
    _, affine = stream.unpack_weights(raw, header)
    chunk = stream.unpack_embedding(stream.read_chunk(Prefix(), first, path, "chunk"), header, first, affine)
    np.testing.assert_array_equal(chunk.codes, embedding.codes[:30])
    with pytest.raises(CorruptStream, match="cut off"):
        stream.read_chunk(Prefix(), header.chunks[1], path, "chunk 2")
    assert source.size > len(prefix)


FORGED = {
    "a huge frame count": lambda h: h.update(frames=10**9),
    "frames not matching the embedding": lambda h: h.update(frames=69),
    "a negative dimension": lambda h: h["weights"]["tensors"][0].update(shape=[-68, 16, 1, 1]),
    "a giant tensor": lambda h: h["weights"]["tensors"][0].update(shape=[1 << 24, 1 << 24]),
    "bits out of range": lambda h: h["weights"]["tensors"][0].update(bits=40),
    "an axis past the shape": lambda h: h["weights"]["tensors"][0].update(axis=9),
    "an unknown min dtype": lambda h: h["weights"]["tensors"][0].update(min_dtype="float64"),
    "a chunk gap": lambda h: h["embedding"]["chunks"][1].update(start=31),
    "a wrong raw size": lambda h: h["embedding"]["chunks"][0].update(raw=5),
    "a version 2": lambda h: h.update(version=2),
    "no config": lambda h: h.pop("config"),
    "per-frame embedding ranges": lambda h: h["embedding"].update(axis=0),
    "nan fps": lambda h: h.update(fps=float("nan")),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_headers_are_refused(tmp_path, case):
    path, *_ = make(tmp_path)
    repack(path, FORGED[case])
    with pytest.raises(CorruptStream):
        read_all(path)


def test_damage_gives_clear_errors(tmp_path):
    path, size, *_ = make(tmp_path)
    data = path.read_bytes()
    with pytest.raises(CorruptStream, match="truncated inside its header"):
        stream.parse_header(data[:20], path)
    flipped = bytearray(data)
    flipped[18] ^= 0xFF
    with pytest.raises(CorruptStream, match="checksum"):
        stream.parse_header(bytes(flipped), path)
    with pytest.raises(CorruptStream, match="bad magic"):
        stream.parse_header(b"XXXX" + data[4:100], path)
    header = stream.parse_header(data[: stream.needed_bytes(data)], path)
    chunk = header.chunks[1]
    damaged = bytearray(data)
    damaged[chunk.offset + chunk.length // 2] ^= 0x55
    path.write_bytes(bytes(damaged))
    source = FileSource(path)
    stream.read_chunk(source, header.chunks[0], path, "chunk 1")  # the others still read
    with pytest.raises(CorruptStream, match="damaged"):
        stream.read_chunk(source, chunk, path, "chunk 2")


def test_bad_arguments(tmp_path):
    q = stream.quantise(np.ones((4, 4)), 8)
    with pytest.raises(InvalidArgument):
        stream.quantise(np.ones(3), 0)
    with pytest.raises(InvalidArgument, match="per-frame"):
        stream.write_nerv(tmp_path / "x.nerv", CONFIG, {}, stream.QuantTensor(q.codes, 8, q.minimum[None], q.scale, 0), fps=30)
    assert not list(tmp_path.iterdir())


def test_container_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, holoscope.codecs.nerv.stream; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
