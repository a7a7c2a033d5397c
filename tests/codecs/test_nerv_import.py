"""``convert quant_vid.pth out.nerv`` (issue 10): the official compressed HNeRV checkpoint as a
.nerv stream, its codes stored as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.nerv import stream
from holoscope.codecs.nerv.config import NervConfig
from tests.nerv_data import read_stream as read_all

torch = pytest.importorskip("torch")

from holoscope.codecs.nerv.neural.checkpoint import load_official  # noqa: E402
from holoscope.codecs.nerv.neural.importer import import_checkpoint  # noqa: E402

OFFICIAL_HUFFMAN_BYTES = 1_480_781  # HNeRV's own entropy-coded size of the same codes


def test_bunny_imports_bit_exactly(bunny: Path, tmp_path: Path):
    out = tmp_path / "bunny.nerv"
    summary = import_checkpoint(bunny, out)
    size = out.stat().st_size
    assert summary.file_bytes == size <= OFFICIAL_HUFFMAN_BYTES
    config, weights, embeddings, info = load_official(bunny)
    header, stored, chunks = read_all(out)
    assert NervConfig.from_json(header.config) == config == summary.config
    assert header.frames == 132 and header.fps == 30.0 and len(header.chunks) == 5
    assert list(stored) == list(weights)
    for name, value in weights.items():
        assert stored[name].bits == 8
        assert torch.equal(torch.from_numpy(stored[name].dequantise()), value), name
    assert all(c.bits == 6 for c in chunks)
    embed = np.concatenate([c.dequantise() for c in chunks])
    assert torch.equal(torch.from_numpy(embed), embeddings)
    assert summary.parameters == 1_488_276
    assert summary.bpp == pytest.approx(8 * size / (1280 * 640 * 132))


def test_several_kept_axes_round_trip(tmp_path: Path):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (6, 5, 3, 3)).astype(np.uint8)
    lo = rng.standard_normal((6, 1, 3, 3)).astype(np.float16)
    scale = np.abs(rng.standard_normal((6, 1, 3, 3))).astype(np.float16)
    weight = stream.QuantTensor(codes, 8, lo, scale, (0, 2, 3))
    embed = stream.QuantTensor(rng.integers(0, 64, (4, 2, 1, 2)).astype(np.uint8), 6,
                               np.zeros((1, 2, 1, 2), np.float16), np.ones((1, 2, 1, 2), np.float16), (1, 3))  # fmt: skip
    out = tmp_path / "x.nerv"
    stream.write_nerv(out, {"family": "test"}, {"w": weight}, embed, fps=25)
    header, stored, chunks = read_all(out)
    assert stored["w"].axis == (0, 2, 3)
    assert np.array_equal(stored["w"].dequantise(), weight.dequantise())
    assert np.array_equal(chunks[0].dequantise(), embed.dequantise())


def test_cli_convert_prints_one_line(bunny: Path, tmp_path: Path, capsys):
    from holoscope.cli import main

    out = tmp_path / "b.nerv"
    assert main(["convert", str(bunny), str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert "132 frames" in lines[0] and "1,488,276 parameters" in lines[0] and "bpp" in lines[0]
    assert "bits/parameter" in lines[0] and out.is_file()
