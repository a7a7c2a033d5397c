"""Splat sequences: discovery (folder, glob, list; natural order), per-frame errors, and the
real wave flipbook from the samples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.ply_inria import write_ply
from holoscope.codecs.sequence import discover_frames, is_sequence_folder, natural_key, open_sequence
from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, NotAFile, SourceNotFound
from holoscope.core.frames import SplatCloud
from holoscope.core.media import MediaKind


def cloud(n: int, seed: int) -> SplatCloud:
    rng = np.random.default_rng(seed)
    return SplatCloud(means=rng.normal(0, 1, (n, 3)).astype(np.float32),
                      scales=np.full((n, 3), 0.05, np.float32),
                      quats=np.tile(np.float32([1, 0, 0, 0]), (n, 1)),
                      opacities=np.full(n, 0.8, np.float32),
                      sh=rng.normal(0, 0.3, (n, 1, 3)).astype(np.float32))  # fmt: skip


def make_sequence(folder: Path, counts: list[int], name: str = "f{}.ply") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(counts):
        path = folder / name.format(i + 1)
        write_ply(cloud(n, i), path)
        paths.append(path)
    return paths


def test_natural_order():
    names = ["f10.ply", "f2.ply", "f1.ply", "F3.ply", "g1.ply", "f100.ply", "f09.ply"]
    assert sorted(names, key=natural_key) == ["f1.ply", "f2.ply", "F3.ply", "f09.ply", "f10.ply", "f100.ply", "g1.ply"]


def test_folder_glob_and_list_name_the_same_frames_in_natural_order(tmp_path):
    paths = make_sequence(tmp_path / "seq", [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])  # f1 .. f11
    (tmp_path / "seq" / "notes.txt").write_text("not a frame")
    (tmp_path / "seq" / ".hidden.ply").write_bytes(b"junk")
    by_folder = discover_frames(tmp_path / "seq")
    assert by_folder == paths  # f2 before f10
    assert discover_frames(str(tmp_path / "seq" / "f*.ply")) == paths
    listing = tmp_path / "seq" / "frames.txt"
    listing.write_text("# the order is the list's\n\n" + "\n".join(p.name for p in reversed(paths)) + "\n")
    assert discover_frames(listing) == list(reversed(paths))
    assert is_sequence_folder(tmp_path / "seq")


def test_frames_may_differ_in_count_and_play_in_order(tmp_path):
    make_sequence(tmp_path / "seq", [5, 50, 500])
    media = open_sequence(tmp_path / "seq", fps=12)
    assert media.kind is MediaKind.SPLAT_SEQUENCE and media.frame_count == 3 and media.fps == 12
    assert media.duration == pytest.approx(0.25)
    assert [media.frame(i).count for i in range(3)] == [5, 50, 500]
    assert [f.payload.count for f in media.frames_from(1)] == [50, 500]
    assert [(f.index, f.pts, f.duration) for f in media.frames_from(1)] == [(1, 1 / 12, 1 / 12), (2, 2 / 12, 1 / 12)]
    assert media.frame(0).count == 5  # the frame read at open time can be asked for again


def test_damaged_frame_in_the_middle_fails_alone(tmp_path):
    paths = make_sequence(tmp_path / "seq", [10, 20, 30])
    paths[1].write_bytes(paths[1].read_bytes()[:200])  # truncated
    media = open_sequence(tmp_path / "seq")
    assert media.frame(0).count == 10 and media.frame(2).count == 30
    with pytest.raises(HoloscopeError, match="f2.ply"):
        media.frame(1)


def test_nothing_playable_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(EmptyMedia, match="no splat frame files"):
        open_sequence(empty)
    with pytest.raises(SourceNotFound, match="matches no splat frame files"):
        open_sequence(str(tmp_path / "nothing-*.ply"))
    listing = tmp_path / "missing.txt"
    listing.write_text("a.ply\nb.ply\n")
    with pytest.raises(SourceNotFound, match="none of the 2 frames"):
        open_sequence(listing)
    bad = tmp_path / "bad"
    for i in range(3):
        bad.mkdir(exist_ok=True)
        (bad / f"f{i}.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nend_header\n")
    with pytest.raises(EmptyMedia, match="no frame of the sequence can be read"):
        open_sequence(bad)
    zero = tmp_path / "zero"
    zero.mkdir()
    for i in range(2):
        (zero / f"f{i}.ply").write_bytes(b"")
    with pytest.raises(EmptyMedia):
        open_sequence(zero)


def test_list_with_some_missing_paths_plays_the_rest(tmp_path, caplog):
    paths = make_sequence(tmp_path / "seq", [10, 20])
    listing = tmp_path / "frames.lst"
    listing.write_text(f"{paths[0]}\nseq/gone.ply\nseq/{paths[1].name}\n")
    media = open_sequence(listing)
    assert media.frame_count == 2
    assert "1 of 3 listed frames are missing" in caplog.text


def test_special_files_and_lies(tmp_path):
    fifo = tmp_path / "frames.txt"
    os.mkfifo(fifo)
    with pytest.raises(NotAFile, match="FIFO"):
        open_sequence(fifo)
    scene = make_sequence(tmp_path / "one", [10])[0]
    with pytest.raises(CorruptStream, match="not a splat sequence"):
        open_sequence(scene)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00frames")
    with pytest.raises(CorruptStream, match="not UTF-8"):
        open_sequence(binary)
    with pytest.raises(CorruptStream, match="fps"):
        open_sequence(tmp_path / "one", fps=0)


def test_the_wave_flipbook_as_folder_glob_and_list(samples_dir, tmp_path):
    wave = samples_dir / "splat-sequences" / "wave"
    if not wave.is_dir():
        pytest.skip("the wave sample sequence is not in the samples folder")
    frames = discover_frames(wave)
    assert len(frames) == 200 and frames[0].name == "wave_0001.sog" and frames[-1].name == "wave_0200.sog"
    assert discover_frames(str(wave / "wave_*.sog")) == frames
    listing = tmp_path / "wave.txt"
    listing.write_text("\n".join(str(p) for p in frames[:5]))
    for spec in (wave, str(wave / "wave_*.sog"), listing):
        media = open_sequence(spec)
        assert media.frame(0).count == 4225 and media.frame(4).count == 4225


def test_playback_goes_on_past_a_damaged_frame_and_seeking_equals_playing(tmp_path):
    from holoscope.core.frames import FailedFrame
    from holoscope.core.playback import FramePrefetcher

    paths = make_sequence(tmp_path / "seq", [10, 20, 30, 40, 50])
    paths[2].write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n")
    media = open_sequence(tmp_path / "seq")
    with FramePrefetcher(media, capacity=8, max_bytes=64 << 10) as pre:
        played = [pre.wait_for(i, timeout=10) for i in range(5)]
    assert [f.index for f in played] == [0, 1, 2, 3, 4]
    assert [getattr(f.payload, "count", None) for f in played] == [10, 20, None, 40, 50]
    assert played[2].failed and isinstance(played[2].payload, FailedFrame) and "f3.ply" in played[2].payload.message
    with FramePrefetcher(media, capacity=8, start=None) as pre:
        for i in (4, 1, 3, 0):  # seeking lands on the same frames as playing through
            pre.seek(i)
            frame = pre.wait_for(i, timeout=10)
            np.testing.assert_array_equal(frame.payload.means, played[i].payload.means)
