"""Streams the streaming tests and the streaming benchmark encode themselves: a Gaussian video
(.gsv, optionally with its segmented layout), a small NeRV stream (.nerv) and a hash-grid scene
(.hgz), written into a folder the test nginx serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from holoscope.cli import main


def write_gsv(folder: Path, *, frames: int = 8, splats: int = 1500, gof: int = 4, seed: int = 5,
              name: str = "clip", segments: bool = False, levels: str | None = None) -> Path:
    """``folder/<name>.gsv``: the coherent test sequence (tests/gsvideo_data.py) of ``frames``
    frames of ``splats`` random Gaussians, groups of ``gof``; with ``segments`` also the
    segmented layout in ``folder/<name>-segments`` (``levels``: further presets in it)."""
    from tests.codecs.helpers import random_cloud
    from tests.gsvideo_data import coherent_sequence, write_ply_sequence

    clip = coherent_sequence(frames, source=random_cloud(splats, 1, seed=2, profile="sog"), seed=seed)
    plys = folder / f"{name}-plys"
    write_ply_sequence(clip, plys)
    out = folder / f"{name}.gsv"
    argv = ["encode", "gsvideo", str(plys), "-o", str(out), "--gof", str(gof), "--no-psnr", "-q"]
    if segments:
        argv += ["--segments", str(folder / f"{name}-segments")]
        if levels:
            argv += ["--levels", levels]
    if main(argv) != 0:
        raise RuntimeError("encode gsvideo failed")
    return out


def write_nerv(folder: Path, *, frames: int = 20, fps: int = 10, name: str = "tiny") -> Path:
    """``folder/<name>.nerv``: a random tiny HNeRV (tests/nerv_data.py), chunks of 5 frames."""
    from tests.nerv_data import write_tiny_nerv

    return write_tiny_nerv(folder / f"{name}.nerv", frames=frames, fps=fps)


def write_hgz(folder: Path, *, name: str = "sphere") -> Path:
    """``folder/<name>.hgz``: the analytic glowing sphere (tests/hashgrid_data.py) converted
    from its Instant-NGP snapshot by ``holoscope convert``."""
    from holoscope.codecs.hashgrid.writer import write_snapshot
    from tests.hashgrid_data import analytic_nerf

    scene = analytic_nerf(camera_matrix=np.array([[1.0, 0, 0, 0.5], [0, -1.0, 0, 0.5], [0, 0, -1.0, 1.6]]))
    ingp = folder / f"{name}.ingp"
    write_snapshot(ingp, scene.snapshot.document)
    out = folder / f"{name}.hgz"
    if main(["convert", str(ingp), str(out), "-q"]) != 0:
        raise RuntimeError("convert to .hgz failed")
    return out
