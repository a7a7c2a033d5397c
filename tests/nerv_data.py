"""Test data for NeRV streams: a small random HNeRV decoder written as a .nerv (fast to decode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_nerv(path: Path, *, frames: int, fps: int, width: int = 48, height: int = 32) -> Path:
    """A random 3-block HNeRV (strides 4, 2, 2) of ``width`` x ``height`` written to ``path``."""
    import torch

    from holoscope.codecs.nerv import stream
    from holoscope.codecs.nerv.config import NervConfig
    from holoscope.codecs.nerv.neural.model import build_decoder, official_names

    config = NervConfig(family="hnerv", height=height, width=width, frame_count=frames, fps=float(fps), fc_dim=12,
                        fc_h=1, fc_w=1, strides=(4, 2, 2), kernels=(1, 3, 5), channels=(10, 8, 6), head_kernel=3,
                        embed_channels=16, embed_h=height // 16, embed_w=width // 16)  # fmt: skip
    torch.manual_seed(0)
    own = dict(build_decoder(config).named_parameters())
    weights = {official: stream.quantise(own[mine].detach().numpy(), 8) for official, mine in official_names(config).items()}
    embedding = stream.quantise(np.random.default_rng(0).standard_normal(config.embedding_shape()), 6, axes=(1,))
    stream.write_nerv(path, config.to_dict(), weights, embedding, fps=fps, chunk_frames=5)
    return path


def repack(path: Path, edit) -> None:
    """Rewrite the JSON header of the .nerv at ``path`` through ``edit(header)``, with a valid
    checksum (a forged header, not a damaged one); the chunks stay where they are."""
    import json
    import zlib

    import zstandard

    from holoscope.codecs.nerv import stream

    data = bytearray(path.read_bytes())
    _, version, flags, length, _ = stream.FIXED.unpack_from(data)
    header = json.loads(zstandard.ZstdDecompressor().decompress(bytes(data[16 : 16 + length])))
    edit(header)
    parts = [header["weights"]] + list((header.get("embedding") or {}).get("chunks") or [])
    start = min(part["offset"] for part in parts)
    original = [part["offset"] for part in parts]
    shift = 0
    while True:  # a longer header moves the chunks (and their offsets) further back
        for part, offset in zip(parts, original):
            part["offset"] = offset + shift
        packed = zstandard.ZstdCompressor().compress(json.dumps(header).encode())
        if 16 + len(packed) <= start + shift:
            break
        shift = 16 + len(packed) - start + 64
    blob = stream.FIXED.pack(stream.MAGIC, version, flags, len(packed), zlib.crc32(packed)) + packed
    path.write_bytes(blob + bytes(start + shift - len(blob)) + bytes(data[start:]))


def read_stream(path: Path):
    """(header, weights, embedding chunks) of a .nerv, read with the container's own functions,
    every chunk checked: what the stream holds, without the reader or torch."""
    from holoscope.codecs.nerv import stream
    from holoscope.core.sources import FileSource

    source = FileSource(path)
    header = stream.parse_header(source.head(stream.needed_bytes(source.head(stream.FIXED.size))), path)
    weights, affine = stream.unpack_weights(stream.read_chunk(source, header.weights, path, "weights"), header)
    chunks = [stream.unpack_embedding(stream.read_chunk(source, c, path, f"chunk {i}"), header, c, affine)
              for i, c in enumerate(header.chunks)]  # fmt: skip
    return header, weights, chunks

