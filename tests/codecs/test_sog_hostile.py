"""Hostile SOG input: tiny files whose images decode to gigabytes, images that do not fit the
count in meta.json, oversized zip directories, and unbundled folders whose members are FIFOs,
folders or links out of the folder. Every file is generated here (the WebP images by hand: a
lossless WebP of one colour takes ~34 bytes at any size)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats import sog
from holoscope.codecs.formats.sog import decode_webp_rgba, read_sog, webp_dimensions
from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, CorruptStream, HoloscopeError, NotAFile
from tests.capped import holoscope, run_capped

ADDRESS_SPACE = 2 << 30  # the RLIMIT_AS every command line test runs under


def constant_webp(width: int, height: int, argb: tuple[int, int, int, int] = (255, 10, 20, 30)) -> bytes:
    """A lossless (VP8L) WebP of one colour: five single-symbol prefix codes, so no pixel costs a bit."""
    bits, used = 0, 0

    def put(value: int, count: int) -> None:
        nonlocal bits, used
        bits |= value << used
        used += count

    put(0x2F, 8)
    put(width - 1, 14)
    put(height - 1, 14)
    put(1, 1)  # alpha used
    put(0, 3)  # version
    put(0, 3)  # no transform, no colour cache, no meta prefix codes
    a, r, g, b = argb
    for symbol in (g, r, b, a, 0):  # green, red, blue, alpha, distance
        put(0b101, 3)  # a simple code of one symbol, 8 bits wide
        put(symbol, 8)
    payload = bits.to_bytes((used + 7) // 8, "little")
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def scene(count: int, width: int, height: int, **extra: object) -> dict[str, bytes]:
    """meta.json and five per-splat images of ``width`` x ``height`` (v2, no SH unless ``extra``)."""
    meta = {
        "version": 2,
        "count": count,
        "means": {"mins": [0, 0, 0], "maxs": [1, 1, 1], "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": [-3.0] * 256, "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": [0.5] * 256, "files": ["sh0.webp"]},
        **extra,
    }
    members = {"meta.json": json.dumps(meta).encode()}
    for name in ("means_l", "means_u", "scales", "sh0"):
        members[f"{name}.webp"] = constant_webp(width, height)
    members["quats.webp"] = constant_webp(width, height, (252, 128, 128, 128))
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def one_gb_budget():
    budget.set_limit(1 << 30, "the test")
    yield
    budget.set_limit(None)


def run_cli(*args: str | Path, cwd: Path, timeout: float = 20) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m holoscope ARGS`` under a 2 GB address-space limit, the budget from that limit."""
    started = time.perf_counter()
    proc = run_capped(holoscope(*args), timeout=timeout, cwd=cwd)
    return proc, time.perf_counter() - started


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("holoscope: error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


# The hand-made WebP ---------------------------------------------------------------------------


def test_hand_made_webp_is_a_lossless_picture_of_one_colour():
    data = constant_webp(300, 7, (200, 1, 2, 3))
    assert len(data) < 40 and webp_dimensions(data) == (300, 7)
    image = decode_webp_rgba(data)
    assert image.shape == (7, 300, 4) and (image == np.array([1, 2, 3, 200], np.uint8)).all()


def test_a_hand_made_scene_that_fits_its_count_opens(tmp_path):
    cloud = read_sog(write_zip(tmp_path / "ok.sog", scene(4225, 68, 64)))
    assert cloud.count == 4225 and cloud.metadata["format_info"]["image_size"] == [68, 64]


# Images against the count -----------------------------------------------------------------------


@pytest.mark.parametrize("width, height", [(4096, 4096), (16384, 16384), (68, 69), (1, 4225 + 5), (16384, 6)])
def test_images_larger_than_the_count_needs_are_refused_before_decoding(tmp_path, monkeypatch, width, height):
    monkeypatch.setattr(sog, "decode_webp_rgba", lambda *a, **k: pytest.fail("a pixel was decoded"))
    path = write_zip(tmp_path / "big.sog", scene(4225, width, height))
    started = time.perf_counter()
    with pytest.raises(CorruptStream, match="means_l.webp is .*not an image of this scene"):
        read_sog(path)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("width, height", [(68, 64), (65, 65), (4225, 1), (1, 4225), (16384, 1), (68, 66)])
def test_every_layout_real_writers_use_is_accepted(tmp_path, width, height):
    # splat-transform / holoscope: width ceil(sqrt(n) / 4) * 4, height padded to 4 rows;
    # PlayCanvas sogs: exact squares; one row or one column; up to SPARE_ROWS spare rows.
    count = 4225
    if width * height < count:
        pytest.skip("not a layout")
    assert read_sog(write_zip(tmp_path / "ok.sog", scene(count, width, height))).count == count


def test_the_writers_texture_size_is_within_the_bound():
    for count in [1, 2, 3, 15, 16, 17, 1000, 4225, 65535, 65536, 100_001, 1_000_000, 6_000_000, 99_999_999]:
        width, height = sog._texture_size(count)
        assert width * height >= count and height <= -(-count // width) + sog.SPARE_ROWS, count


@pytest.mark.timeout(60)
@pytest.mark.parametrize("side", [4096, 8192])
def test_consistent_but_huge_images_are_refused_by_the_budget_before_decoding(tmp_path, monkeypatch,
                                                                            one_gb_budget, side):  # fmt: skip
    # The campaign's file: ~1 KB that decodes to five side x side pictures and a cloud to match.
    monkeypatch.setattr(sog, "decode_webp_rgba", lambda *a, **k: pytest.fail("a pixel was decoded"))
    count = side * (side - 3)
    path = write_zip(tmp_path / "bomb.sog", scene(count, side, side))
    assert path.stat().st_size < 4096
    started = time.perf_counter()
    with pytest.raises(BudgetExceeded, match=f"{count:,} splats"):
        read_sog(path)
    assert time.perf_counter() - started < 2


def test_the_budget_counts_the_pictures_and_the_cloud(tmp_path, monkeypatch):
    asked: list[float] = []
    monkeypatch.setattr(budget, "require", lambda nbytes, **k: asked.append(nbytes))
    read_sog(write_zip(tmp_path / "ok.sog", scene(4225, 68, 64)))
    pictures = 6 * 68 * 64 * 4  # five pictures, and FFmpeg's frame beside the largest
    cloud = budget.splat_cloud_bytes(4225, 0) * sog.PEAK_FACTOR
    assert max(asked) >= pictures + cloud


def shn(count: int, bands: int = 1) -> dict:
    return {"count": count, "bands": bands, "codebook": [0.1] * 256, "files": ["shN_centroids.webp", "shN_labels.webp"]}


def test_the_sh_palette_image_is_bounded_by_the_palette(tmp_path):
    members = scene(4225, 68, 64, shN=shn(64))
    members["shN_labels.webp"] = constant_webp(68, 64, (255, 0, 0, 0))
    members["shN_centroids.webp"] = constant_webp(192, 1)
    assert read_sog(write_zip(tmp_path / "ok.sog", members)).sh_degree == 1
    members["shN_centroids.webp"] = constant_webp(192, 1024)  # 65,536 entries for a palette of 64
    with pytest.raises(CorruptStream, match="shN_centroids.webp has 1024 rows"):
        read_sog(write_zip(tmp_path / "tall.sog", members))
    members["shN_centroids.webp"] = constant_webp(16384, 1)
    with pytest.raises(CorruptStream, match="16384 pixels wide"):
        read_sog(write_zip(tmp_path / "wide.sog", members))


# The zip itself -----------------------------------------------------------------------------------


def test_a_zip_directory_far_beyond_a_sog_is_refused(tmp_path):
    members = scene(4225, 68, 64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for i in range(30_000):  # ~1.8 MB of directory; a million would cost zipfile gigabytes
            zf.writestr(f"pad/{i}", b"")
    path = tmp_path / "many.sog"
    path.write_bytes(buf.getvalue())
    with pytest.raises(CorruptStream, match="directory"):
        read_sog(path)


# Unbundled folders ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_fifo_member_is_refused_without_blocking(tmp_path):
    folder = write_folder(tmp_path / "scene", scene(4225, 68, 64))
    (folder / "means_u.webp").unlink()
    os.mkfifo(folder / "means_u.webp")
    with pytest.raises(NotAFile, match="FIFO"):
        read_sog(folder)
    inside = tmp_path / "scene2"
    write_folder(inside, scene(4225, 68, 64))
    os.mkfifo(inside / "pipe")
    (inside / "quats.webp").unlink()
    (inside / "quats.webp").symlink_to("pipe")  # a link that stays inside, to a FIFO
    with pytest.raises(NotAFile, match="FIFO"):
        read_sog(inside)


@pytest.mark.timeout(20)
def test_a_fifo_meta_json_is_refused_without_blocking(tmp_path):
    folder = write_folder(tmp_path / "scene", scene(4225, 68, 64))
    (folder / "meta.json").unlink()
    os.mkfifo(folder / "meta.json")
    with pytest.raises(HoloscopeError):
        read_sog(folder)
    with pytest.raises(NotAFile):
        read_sog(folder / "meta.json")


def test_links_out_of_the_folder_are_refused(tmp_path):
    members = scene(4225, 68, 64)
    (tmp_path / "elsewhere.webp").write_bytes(members["sh0.webp"])
    folder = write_folder(tmp_path / "scene", members)
    (folder / "sh0.webp").unlink()
    (folder / "sh0.webp").symlink_to(tmp_path / "elsewhere.webp")
    with pytest.raises(CorruptStream, match="outside the SOG folder"):
        read_sog(folder)
    (folder / "sh0.webp").unlink()
    (folder / "sh0.webp").symlink_to("/dev/zero")
    with pytest.raises(CorruptStream, match="outside the SOG folder"):
        read_sog(folder)
    (folder / "sh0.webp").unlink()
    (folder / "sh0.webp").symlink_to("kept/sh0.webp")  # a link within the folder is fine
    (folder / "kept").mkdir()
    (folder / "kept" / "sh0.webp").write_bytes(members["sh0.webp"])
    assert read_sog(folder).count == 4225


def test_missing_dangling_looping_and_folder_members_are_one_line_errors(tmp_path):
    folder = write_folder(tmp_path / "scene", scene(4225, 68, 64))
    (folder / "scales.webp").unlink()
    with pytest.raises(CorruptStream, match="missing file 'scales.webp'"):
        read_sog(folder)
    (folder / "scales.webp").symlink_to("nowhere.webp")
    with pytest.raises(CorruptStream, match="missing file 'scales.webp'"):
        read_sog(folder)
    (folder / "scales.webp").unlink()
    (folder / "scales.webp").symlink_to("scales.webp")
    with pytest.raises(HoloscopeError, match="symbolic links"):
        read_sog(folder)
    (folder / "scales.webp").unlink()
    (folder / "scales.webp").mkdir()
    with pytest.raises(NotAFile, match="directory"):
        read_sog(folder)


def test_a_sparse_member_is_refused_by_its_size_before_reading(tmp_path):
    folder = write_folder(tmp_path / "scene", scene(4225, 68, 64))
    os.truncate(folder / "quats.webp", 8 << 30)
    started = time.perf_counter()
    with pytest.raises(CorruptStream, match="quats.webp"):
        read_sog(folder)
    assert time.perf_counter() - started < 2


# The command line under a 2 GB address-space limit ------------------------------------------------


@pytest.mark.timeout(300)
def test_hostile_sogs_give_one_line_and_exit_2_under_a_2_gb_limit(tmp_path):
    side = 4096
    bomb = write_zip(tmp_path / "bomb.sog", scene(side * (side - 3), side, side))
    bigger = write_zip(tmp_path / "bigger.sog", scene(8192 * 8189, 8192, 8192))
    unfit = write_zip(tmp_path / "unfit.sog", scene(4225, 16384, 16384))
    fifo = write_folder(tmp_path / "fifo", scene(4225, 68, 64))
    (fifo / "means_u.webp").unlink()
    os.mkfifo(fifo / "means_u.webp")
    cases = [(bomb, "needs about"), (bigger, "needs about"), (unfit, "not an image of this scene"), (fifo, "FIFO")]
    for path, needle in cases:
        for command in (["info", path], ["convert", path, "out.ply"],
                        ["render", path, "-o", "out.png", "--size", "64x64"]):  # fmt: skip
            proc, seconds = run_cli(*command, cwd=tmp_path)
            assert_one_line_error(proc, needle)
            assert seconds < 20, (command, seconds)
            assert not (tmp_path / "out.ply").exists() and not (tmp_path / "out.png").exists()
    proc, _ = run_cli("info", write_zip(tmp_path / "ok.sog", scene(4225, 68, 64)), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.timeout(120)
def test_every_real_wave_frame_still_opens_under_the_limit(samples_dir, tmp_path):
    frames = sorted((samples_dir / "splat-sequences" / "wave").glob("wave_*.sog"))
    if not frames:
        pytest.skip("the wave SOG frames are not in the sample folder")
    code = (
        "import sys\n"
        "from holoscope.codecs.formats.sog import read_sog\n"
        "for path in sys.argv[1:]:\n"
        "    assert read_sog(path).count == 4225, path\n"
    )
    proc = run_capped([sys.executable, "-c", code, *map(str, frames)], timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
