"""Every reader opens from a Source that is not a local file: the sample bytes wrapped in a
BytesSource give the same cloud (and a video the same frames) as the file itself; errors name
the source; damaged bytes are still holoscope errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import plyfile
import pytest

from holoscope.codecs.formats.ksplat import read_ksplat
from holoscope.codecs.formats.ply_compressed import read_compressed_ply
from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.codecs.formats.sog import read_sog
from holoscope.codecs.formats.splat import read_splat
from holoscope.codecs.formats.spz import read_spz
from holoscope.codecs.sequence import open_sequence
from holoscope.codecs.video.decode import open_video
from holoscope.core.errors import CorruptStream, HoloscopeError
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media, resolve
from holoscope.core.sources import BytesSource, FolderSource

SAMPLES = {  # sample -> (format, its reader)
    "lod5.ply": ("ply", read_ply),
    "guitar.compressed.ply": ("compressed-ply", read_compressed_ply),
    "sh3-64.compressed.ply": ("compressed-ply", read_compressed_ply),
    "minimal.splat": ("splat", read_splat),
    "minimal-v2.spz": ("spz", read_spz),
    "minimal-v4.spz": ("spz", read_spz),
    "minimal-raw.spz": ("spz", read_spz),
    "minimal.ksplat": ("ksplat", read_ksplat),
}


def same_cloud(a: SplatCloud, b: SplatCloud) -> None:
    assert a.count == b.count and a.sh_degree == b.sh_degree
    for field in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def sample(samples_dir: Path, name: str) -> Path:
    if name.startswith("wave"):
        return samples_dir / "splat-sequences" / "wave" / name
    return samples_dir / "splats" / name


@pytest.mark.parametrize("name", sorted(SAMPLES) + ["wave_0001.sog"])
def test_every_reader_opens_from_bytes_like_from_the_file(samples_dir: Path, name: str) -> None:
    path = sample(samples_dir, name)
    fmt, reader = SAMPLES.get(name, ("sog", read_sog))
    source = BytesSource(path.read_bytes(), name=name)
    from_file = open_media(path)
    from_bytes = open_media(source)
    assert from_bytes.format == fmt == from_file.format
    assert from_bytes.path == name
    assert from_bytes.info["file_bytes"] == from_file.info["file_bytes"] == path.stat().st_size
    same_cloud(from_bytes.frame(0), from_file.frame(0))
    same_cloud(reader(source), from_file.frame(0))  # the reader itself, given the source
    assert resolve(source).name == fmt


@pytest.mark.parametrize("name", sorted(SAMPLES) + ["wave_0001.sog"])
def test_errors_from_bytes_name_the_source(samples_dir: Path, name: str) -> None:
    data = sample(samples_dir, name).read_bytes()
    cut = BytesSource(data[: len(data) // 2 + 1], name=f"cut-{name}")
    with pytest.raises(HoloscopeError) as info:
        open_media(cut, forced=SAMPLES.get(name, ("sog",))[0]).frame(0)
    assert str(info.value).startswith(f"cut-{name}: ")


def test_empty_bytes_are_an_empty_file() -> None:
    with pytest.raises(CorruptStream, match="^empty.ply: file is empty"):
        open_media(BytesSource(b"", name="empty.ply"))


def test_ascii_ply_from_bytes(tmp_path: Path) -> None:
    points = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    records = np.zeros(50, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                            ("red", "u1"), ("green", "u1"), ("blue", "u1")])  # fmt: skip
    records["x"], records["y"], records["z"] = points.T
    records["red"] = 200
    path = tmp_path / "points.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], text=True).write(str(path))
    same_cloud(read_ply(BytesSource(path.read_bytes(), name="points.ply")), read_ply(path))


def test_meta_json_alone_from_bytes_is_a_clear_error(samples_dir: Path) -> None:
    with zipfile.ZipFile(sample(samples_dir, "wave_0001.sog")) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith("meta.json")))
    with pytest.raises(CorruptStream, match="meta.json: .*open its folder"):
        read_sog(BytesSource(meta, name="meta.json"))


def test_unbundled_sog_through_a_folder_source(samples_dir: Path, tmp_path: Path) -> None:
    path = sample(samples_dir, "wave_0001.sog")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "scene")
    folder = FolderSource(tmp_path / "scene")
    assert resolve(folder).name == "sog"
    same_cloud(open_media(folder).frame(0), open_media(path).frame(0))


def test_sequence_from_a_folder_source(samples_dir: Path) -> None:
    folder = samples_dir / "splat-sequences" / "wave"
    media = open_sequence(FolderSource(folder), fps=24)
    assert media.frame_count == open_sequence(folder, fps=24).frame_count == 200


def test_video_from_bytes_decodes_the_same_frames(samples_dir: Path) -> None:
    path = samples_dir / "video" / "bunny-132f-360p-ffv1.mkv"
    if not path.is_file():
        pytest.skip("the video sample is not in the sample folder")
    data = path.read_bytes()
    from_file = open_video(path)
    from_bytes = open_media(BytesSource(data, name=path.name))
    try:
        assert from_bytes.format == from_file.format and from_bytes.path == path.name
        assert from_bytes.frame_count == from_file.frame_count and from_bytes.fps == from_file.fps
        assert from_bytes.info["file_bytes"] == len(data)
        assert from_bytes.info["container"] == from_file.info["container"]
        for index in (0, 1, 2, 70, 5):  # sequential, then a seek forward and one back
            a, b = from_file.frame(index), from_bytes.frame(index)
            assert len(a.planes) == len(b.planes)
            for pa, pb in zip(a.planes, b.planes):
                np.testing.assert_array_equal(pa, pb)
    finally:
        from_file.release()
        from_bytes.release()


def test_damaged_video_bytes_are_a_holoscope_error(samples_dir: Path) -> None:
    path = samples_dir / "video" / "bunny-132f-360p-ffv1.mkv"
    if not path.is_file():
        pytest.skip("the video sample is not in the sample folder")
    head = path.read_bytes()[:3000]
    with pytest.raises(HoloscopeError) as info:
        media = open_media(BytesSource(head, name="cut.mkv"), forced="video")
        try:
            media.frame(0)
        finally:
            media.release()
    assert str(info.value).startswith("cut.mkv: ")
    with pytest.raises(HoloscopeError, match="^junk.mp4: "):
        open_video(BytesSource(io.BytesIO(b"\0" * 5000).getvalue(), name="junk.mp4"))
