"""V^3 streams (VideoGS layout): the writer's layout and quantisation, round trips through the
reader, random access, and damaged or inconsistent folders."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from holoscope.codecs.gsvideo import v3
from holoscope.codecs.gsvideo.planes import read_planes
from holoscope.core.errors import BudgetExceeded, CorruptStream, EmptyMedia, InvalidArgument, OutputError
from holoscope.core.frames import FailedFrame, SplatCloud
from holoscope.core.media import MediaKind
from holoscope.core.registry import open_media

from .helpers import random_cloud

FRAMES = 12
GROUP = 5  # groups of 5, 5 and 2 frames
SPLATS = 600  # a 32 x 32 image (24^2 = 576 is too small)
SIDE = 32
# Largest error (in code values) measured on this clip at qp 25, with a margin: the position low
# bytes (qp 25) err by up to 17, the others (qp 22 / 25) by up to 13.
LOW_BYTE_TOLERANCE = 40
BYTE_TOLERANCE = 32


def _turn(quats: np.ndarray, angle: float) -> np.ndarray:
    """``quats`` (w first) turned by ``angle`` about x (a Hamilton product)."""
    w1, x1 = np.cos(angle / 2), np.sin(angle / 2)
    w2, x2, y2, z2 = quats.astype(np.float64).T
    return np.stack([w1 * w2 - x1 * x2, w1 * x2 + x1 * w2, w1 * y2 - x1 * z2, w1 * z2 + x1 * y2], axis=1)


def make_clip(frames: int = FRAMES, n: int = SPLATS, seed: int = 5) -> list[SplatCloud]:
    """The same Gaussians, in the same order, smoothly deformed over ``frames`` frames."""
    base = random_cloud(n, 0, seed=seed)
    clip = []
    for t in range(frames):
        phase = 0.25 * t
        clip.append(SplatCloud(
            means=(base.means + 0.3 * np.sin(phase + base.means[:, [1, 2, 0]])).astype(np.float32),
            scales=(base.scales * np.exp(0.05 * np.sin(phase))).astype(np.float32),
            quats=_turn(base.quats, 0.1 * t).astype(np.float32),
            opacities=np.clip(base.opacities + 0.01 * np.sin(phase), 0, 1).astype(np.float32),
            sh=(base.sh + 0.02 * t).astype(np.float32),
        ))  # fmt: skip
    return clip


@pytest.fixture(scope="module")
def clip() -> list[SplatCloud]:
    return make_clip()


@pytest.fixture(scope="module")
def stream25(tmp_path_factory: pytest.TempPathFactory, clip: list[SplatCloud]) -> Path:
    out = tmp_path_factory.mktemp("v3") / "qp25"
    summary = v3.write_v3(clip, out, group_size=GROUP, qp=25)
    assert summary["frames"] == FRAMES and summary["groups"] == 3
    return out


@pytest.fixture(scope="module")
def stream0(tmp_path_factory: pytest.TempPathFactory, clip: list[SplatCloud]) -> Path:
    out = tmp_path_factory.mktemp("v3") / "qp0"
    v3.write_v3(clip, out, group_size=GROUP, qp=0)
    return out


@pytest.fixture
def damaged(tmp_path: Path, stream25: Path) -> Path:
    """A private copy of the qp 25 stream to damage."""
    copy = tmp_path / "stream"
    shutil.copytree(stream25, copy)
    return copy


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _save(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=4))


def _videogs_side(n: int) -> int:
    side = 8
    while side * side < n:
        side += 8
    return side


def _videogs_quantize(cloud: SplatCloud) -> tuple[np.ndarray, list[float]]:
    """The packer's arithmetic, written out attribute by attribute: the activated attributes in
    float64, (v - min) / (max - min) * L truncated, 16-bit positions split low / high."""
    columns = [cloud.means[:, 0], cloud.means[:, 1], cloud.means[:, 2]]
    columns += [np.zeros(cloud.count)] * 3
    columns += [cloud.sh[:, 0, 0], cloud.sh[:, 0, 1], cloud.sh[:, 0, 2], cloud.opacities]
    columns += [cloud.scales[:, 0], cloud.scales[:, 1], cloud.scales[:, 2]]
    q = cloud.quats.astype(np.float64)
    q = q / np.sqrt((q**2).sum(axis=1))[:, None]
    columns += [q[:, 0], q[:, 1], q[:, 2], q[:, 3]]
    side = _videogs_side(cloud.count)
    images = np.zeros((20, side * side), np.uint8)
    table: list[float] = []
    for i, column in enumerate(columns):
        column = np.asarray(column, np.float64)
        lo, hi = column.min(), column.max()
        table += [float(lo), float(hi)]
        levels = 65535 if i < 3 else 255
        with np.errstate(invalid="ignore"):
            scaled = (column - lo) / (hi - lo) * levels
        scaled = np.nan_to_num(scaled, nan=0.0)  # a constant attribute: 0 / 0 (x86 casts NaN to 0)
        if i < 3:
            code = scaled.astype(np.uint16)
            images[2 * i, : cloud.count] = code & 0xFF
            images[2 * i + 1, : cloud.count] = code >> 8
        else:
            images[i + 3, : cloud.count] = scaled.astype(np.uint8)
    return images.reshape(20, side, side), table


# The layout rules ------------------------------------------------------------------------------


def test_image_side_is_the_smallest_multiple_of_8_that_holds_the_splats():
    for n in list(range(1, 3000)) + [147_677, 153_664, 153_665, 1_000_000, 1 << 28]:
        assert v3.image_side(n) == _videogs_side(n), n
    assert v3.image_side(147_677) == 392


def test_video_table_and_qp():
    assert [v3.stream_qp(i, 25) for i in range(20)] == [25, 0, 25, 0, 25, 0, 25, 25, 25, 22, 22, 22, 25, 22, 22,
                                                         22, 22, 22, 22, 22]  # fmt: skip
    assert [v3.stream_qp(i, 18) for i in range(20)] == [18, 0] * 3 + [18] * 14
    assert [v3.stream_content(i) for i in (0, 1, 5, 6, 9, 12, 13, 19)] == [
        "x low byte", "x high byte", "z high byte", "nx", "f_dc_0", "opacity", "scale_0", "rot_3"]


def test_quantisation_is_the_packers_bit_for_bit(clip):
    for cloud in (clip[0], clip[7], random_cloud(1000, 0, seed=9, profile="spz")):
        images, table = v3.quantize_frame(cloud)
        ref_images, ref_table = _videogs_quantize(cloud)
        assert images.shape == ref_images.shape
        np.testing.assert_array_equal(images, ref_images)
        assert table == ref_table
        assert table[6:12] == [0.0] * 6  # zero normals: min = max = 0, stored as 0
        assert not images[6:9].any()


# What the writer writes ---------------------------------------------------------------------------


def test_layout_files_and_tables(stream25, clip):
    files = sorted(p.relative_to(stream25).as_posix() for p in stream25.rglob("*") if p.is_file())
    videos = [f"group{g}/{i}.mp4" for g in range(3) for i in range(20)]
    assert files == sorted(["group_info.json", "viewer_min_max.json", "min_max.json", *videos])
    assert not list(stream25.parent.glob(".*partial"))  # the temporary folder was renamed
    assert _load(stream25 / "group_info.json") == {
        "0": {"frame_index": [0, 4], "name_index": [0, 4]},
        "1": {"frame_index": [5, 9], "name_index": [5, 9]},
        "2": {"frame_index": [10, 11], "name_index": [10, 11]},
    }
    viewer = _load(stream25 / "viewer_min_max.json")
    full = _load(stream25 / "min_max.json")
    assert list(viewer) == [str(f) for f in range(FRAMES)]
    assert len(full) == FRAMES * 35
    for frame, cloud in enumerate(clip):
        _, table = _videogs_quantize(cloud)
        assert viewer[str(frame)] == {"num": SPLATS, "info": table}
        assert full[f"{frame}_num"] == SPLATS
        for i in range(17):
            assert full[f"{frame}_{i}_min"] == table[2 * i] and full[f"{frame}_{i}_max"] == table[2 * i + 1]
    assert '\n    "0": {' in (stream25 / "group_info.json").read_text()  # indent 4, as VideoGS


def test_videos_are_what_videogs_ffmpeg_call_makes(stream25):
    """libx264 H.264, yuvj444p (full range), the side a multiple of 8, one frame per group frame,
    each video at its qp from the table, x264's defaults otherwise."""
    for group, frames in enumerate((5, 5, 2)):
        for i in range(20):
            path = stream25 / f"group{group}" / f"{i}.mp4"
            with av.open(str(path)) as container:
                (stream,) = container.streams
                cc = stream.codec_context
                assert (cc.name, cc.pix_fmt, cc.profile) == ("h264", "yuvj444p", "High 4:4:4 Predictive")
                assert int(cc.color_range) == 2  # AVCOL_RANGE_JPEG: full range
                assert (stream.width, stream.height) == (SIDE, SIDE) and SIDE % 8 == 0
                assert stream.frames == frames
                assert stream.average_rate == 30
                decoded = list(container.decode(stream))
                assert len(decoded) == frames and decoded[0].key_frame
                assert decoded[0].format.name == "yuvj444p"
                _, u, v = read_planes(decoded[-1], 3)
                assert (u == 128).all() and (v == 128).all()  # neutral chroma
            options = re.search(rb"x264 - core \d+ .*? options: ([^\x00]*)", path.read_bytes(), re.S).group(1).split()
            assert b"rc=cqp" in options and f"qp={v3.stream_qp(i, 25)}".encode() in options, (i, options)
            assert b"keyint=250" in options  # x264's default GOP: a group's video opens with its only IDR


def test_qp0_decodes_to_exactly_the_quantised_images(stream0, clip):
    for group in range(3):
        decoded = list(v3.read_group_images(stream0, group))
        assert len(decoded) == (5, 5, 2)[group]
        for offset, images in enumerate(decoded):
            expected, _ = v3.quantize_frame(clip[group * GROUP + offset])
            np.testing.assert_array_equal(np.stack(images), expected)


def test_qp25_keeps_the_high_bytes_and_the_rest_within_tolerance(stream25, clip):
    for group in range(3):
        for offset, images in enumerate(v3.read_group_images(stream25, group)):
            expected, _ = v3.quantize_frame(clip[group * GROUP + offset])
            error = np.abs(np.stack(images).astype(int) - expected).reshape(20, -1).max(axis=1)
            assert error[[1, 3, 5]].tolist() == [0, 0, 0]  # high bytes: lossless
            assert error[[0, 2, 4]].max() <= LOW_BYTE_TOLERANCE
            assert error[6:9].max() == 0  # the zero normals
            assert error[9:].max() <= BYTE_TOLERANCE


def _ranges(cloud: SplatCloud) -> dict[str, np.ndarray]:
    return {"means": np.ptp(cloud.means, axis=0).astype(np.float64), "dc": np.ptp(cloud.sh[:, 0], axis=0),
            "opacities": np.ptp(cloud.opacities), "scales": np.ptp(cloud.scales, axis=0)}  # fmt: skip


def _check_round_trip(decoded: SplatCloud, original: SplatCloud, low_levels: int, levels: int) -> None:
    """Positions within (1 + low_levels) / 65535 of their range, the 8-bit attributes within
    (1 + levels) / 255 (truncation, then coding error), plus float32 rounding."""
    assert decoded.count == original.count and decoded.sh.shape == (original.count, 1, 3)
    span = _ranges(original)
    eps = 1e-6
    bound = (1 + low_levels) / 65535 * span["means"] + eps * (1 + np.abs(original.means).max())
    assert (np.abs(decoded.means - original.means) <= bound).all()
    byte = (1 + levels) / 255
    assert (np.abs(decoded.sh[:, 0] - original.sh[:, 0]) <= byte * span["dc"] + eps).all()
    assert (np.abs(decoded.opacities - original.opacities) <= byte * span["opacities"] + eps).all()
    assert (np.abs(decoded.scales - original.scales) <= byte * span["scales"] + eps).all()
    # quaternions: each component within a step of its range (at most 2) before normalising,
    # which moves it by about as much again; the result is a unit quaternion
    np.testing.assert_allclose(np.linalg.norm(decoded.quats, axis=1), 1, atol=1e-5)
    sign = np.sign(np.einsum("ij,ij->i", decoded.quats, original.quats))[:, None]
    assert (np.abs(decoded.quats * sign - original.quats) <= 4 * byte + 1e-3).all()


def test_round_trip_at_qp0_within_the_quantisation_step(stream0, clip):
    media = v3.open_v3(stream0)
    try:
        for index, frame in enumerate(media.frames_from(0)):
            _check_round_trip(frame.payload, clip[index], 0, 0)
    finally:
        media.release()


def test_round_trip_at_qp25_within_measured_tolerance(stream25, clip):
    media = v3.open_v3(stream25)
    try:
        frames = list(media.frames_from(0))
        assert [f.index for f in frames] == list(range(FRAMES))
        for frame, original in zip(frames, clip):
            _check_round_trip(frame.payload, original, LOW_BYTE_TOLERANCE, BYTE_TOLERANCE)
    finally:
        media.release()


# Opening --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "group_info.json"])
def test_open_by_folder_or_group_info(stream25, name):
    media = open_media(stream25 / name if name else stream25)
    try:
        assert (media.format, media.reader, media.kind) == ("v3", "holoscope.v3", MediaKind.SPLAT_VIDEO)
        assert media.frame_count == FRAMES and media.fps == 30 and media.duration == pytest.approx(FRAMES / 30)
        info = media.info
        files = [p for p in stream25.rglob("*") if p.is_file()]
        assert info["file_bytes"] == sum(p.stat().st_size for p in files)
        assert info["bytes_per_frame"] == pytest.approx(info["file_bytes"] / FRAMES, abs=0.1)
        assert (info["groups"], info["group_frames"], info["frames"]) == (3, [5, 5, 2], FRAMES)
        assert (info["splats_min"], info["splats_max"], info["sh_degree"]) == (SPLATS, SPLATS, 0)
        assert (info["streams_per_group"], info["codec"], info["pixel_format"]) == (20, "h264", "yuvj444p")
        assert (info["width"], info["height"], info["default_up"]) == (SIDE, SIDE, "-y")
        assert media.frame(3).count == SPLATS
    finally:
        media.release()


def test_seeking_equals_playing_through(stream25):
    media = v3.open_v3(stream25)
    try:
        through = [f.payload for f in media.frames_from(0)]
        for start in range(FRAMES):
            played = list(media.frames_from(start))
            assert [f.index for f in played] == list(range(start, FRAMES))
            assert played[0].pts == pytest.approx(start / 30)
            for frame in played:
                single = media.frame(frame.index)
                for a, b, c in ((frame.payload, single, through[frame.index]),):
                    for field in ("means", "scales", "quats", "opacities", "sh"):
                        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
                        np.testing.assert_array_equal(getattr(a, field), getattr(c, field))
        for index in (11, 0, 7, 6, 2):  # backwards and across groups
            np.testing.assert_array_equal(media.frame(index).means, through[index].means)
    finally:
        media.release()


def test_stream_packed_from_frame_95_opens_either_way(damaged, stream25):
    """VideoGS keys viewer_min_max.json by the packer's frame names (name_index), the SIBR player
    reads it by frame index: both open, to the same frames."""
    info = _load(damaged / "group_info.json")
    table = _load(damaged / "viewer_min_max.json")
    for entry in info.values():
        entry["name_index"] = [n + 95 for n in entry["frame_index"]]
    _save(damaged / "group_info.json", info)
    reference = v3.open_v3(stream25)
    media = v3.open_v3(damaged)  # keyed by frame index (what the player looks up)
    assert media.info["min_max_keys"] == "frame_index"
    np.testing.assert_array_equal(media.frame(7).means, reference.frame(7).means)
    media.release()
    _save(damaged / "viewer_min_max.json", {str(int(k) + 95): v for k, v in table.items()})
    media = v3.open_v3(damaged / "group_info.json")  # keyed by name (what the packer writes)
    assert media.info["min_max_keys"] == "name_index"
    np.testing.assert_array_equal(media.frame(7).means, reference.frame(7).means)
    media.release()
    reference.release()


# Damaged and inconsistent folders -----------------------------------------------------------------


def test_missing_video_is_named_at_open(damaged):
    (damaged / "group1" / "7.mp4").unlink()
    with pytest.raises(CorruptStream, match=r"missing group1/7\.mp4"):
        open_media(damaged)
    shutil.rmtree(damaged / "group2")
    with pytest.raises(CorruptStream, match="missing group1/7.mp4|missing folder group2"):
        v3.open_v3(damaged)


def _edit_groups(path: Path, edit) -> None:
    data = _load(path / "group_info.json")
    edit(data)
    _save(path / "group_info.json", data)


def _edit_tables(path: Path, edit) -> None:
    data = _load(path / "viewer_min_max.json")
    edit(data)
    _save(path / "viewer_min_max.json", data)


def _set(data: dict, frame: str, key: str, value: object) -> None:
    data[frame][key] = value


def _set_info(data: dict, frame: str, index: int, value: float) -> None:
    data[frame]["info"][index] = value


INCONSISTENT = {
    "groups overlap": (lambda d: _edit_groups(d, lambda g: g["1"].update(frame_index=[4, 8], name_index=[4, 8])),
                       r"group 1 covers frames 4\.\.8, which overlaps the group before"),
    "groups leave a gap": (
        lambda d: _edit_groups(d, lambda g: g["2"].update(frame_index=[11, 12], name_index=[11, 12])), "leaves a gap"),
    "names overlap": (lambda d: _edit_groups(d, lambda g: g["1"].update(name_index=[3, 7])),
                      "overlap the group before"),
    "name count differs": (lambda d: _edit_groups(d, lambda g: g["0"].update(name_index=[0, 5])), "not the same count"),
    "group key missing": (lambda d: _edit_groups(d, lambda g: g.update({"3": g.pop("2")})), 'no group "2"'),
    "frame_index not a pair": (lambda d: _edit_groups(d, lambda g: g["0"].update(frame_index=[0])), "frame_index"),
    "frame missing from the table": (lambda d: _edit_tables(d, lambda t: t.pop("6")), "no entry for frame 6"),
    "extra frame in the table": (lambda d: _edit_tables(d, lambda t: t.update({"40": t["0"]})),
                                 "no group .* covers: '40'"),
    "num too large for the videos": (lambda d: _edit_tables(d, lambda t: _set(t, "6", "num", 1500)),
                                     r"group1/0\.mp4 is 32x32, too small for the 1,500 Gaussians"),
    "num zero": (lambda d: _edit_tables(d, lambda t: _set(t, "3", "num", 0)), "at least one Gaussian"),
    "num not an integer": (lambda d: _edit_tables(d, lambda t: _set(t, "3", "num", "600")), "must be an integer"),
    "huge num": (lambda d: _edit_tables(d, lambda t: _set(t, "3", "num", 10**13)), "beyond any real scene"),
    "NaN min": (lambda d: _edit_tables(d, lambda t: _set_info(t, "2", 4, float("nan"))), "z min is nan, not a finite"),
    "infinite max": (lambda d: _edit_tables(d, lambda t: _set_info(t, "2", 19, float("inf"))),
                     "opacity max is inf"),
    "min above max": (lambda d: _edit_tables(d, lambda t: _set_info(t, "2", 20, 99.0)), "scale_0 min 99.0 is above"),
    "33 floats": (lambda d: _edit_tables(d, lambda t: t["2"]["info"].pop()), "must list 34 numbers"),
    "a string in info": (lambda d: _edit_tables(d, lambda t: _set_info(t, "2", 3, "1")), "not a number"),
    "table not an object": (lambda d: _save(d / "viewer_min_max.json", [1, 2]), "must hold a JSON object"),
}


@pytest.mark.parametrize("case", sorted(INCONSISTENT))
def test_inconsistent_tables_are_refused_at_open(damaged, case):
    damage, message = INCONSISTENT[case]
    damage(damaged)
    with pytest.raises(CorruptStream, match=message) as caught:
        open_media(damaged)
    assert "\n" not in str(caught.value)


def test_frame_count_differing_from_the_videos_is_refused_at_open(damaged):
    _edit_groups(damaged, lambda g: g["2"].update(frame_index=[10, 12], name_index=[10, 12]))
    _edit_tables(damaged, lambda t: t.update({"12": t["11"]}))
    with pytest.raises(CorruptStream, match=r"group2/0\.mp4 holds 2 frames, but group_info\.json gives group2 3"):
        open_media(damaged)


def test_no_groups_is_empty(damaged):
    _save(damaged / "group_info.json", {})
    with pytest.raises(EmptyMedia, match="lists no groups"):
        open_media(damaged)


def test_budget_refuses_a_frame_too_large_to_decode(damaged, monkeypatch):
    monkeypatch.setenv("HOLOSCOPE_MAX_MEMORY", "64M")
    _edit_tables(damaged, lambda t: _set(t, "3", "num", 1 << 26))
    with pytest.raises(BudgetExceeded):
        open_media(damaged)


@pytest.mark.parametrize("name", ["group_info.json", "viewer_min_max.json"])
def test_binary_garbage_json_is_corrupt(damaged, name):
    (damaged / name).write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CorruptStream, match=f"{name} is not valid JSON"):
        open_media(damaged)
    with pytest.raises(CorruptStream, match=f"{name} is not valid JSON"):
        open_media(damaged / "group_info.json")


def test_truncated_video_skips_its_group_only(damaged, caplog):
    video = damaged / "group2" / "12.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    media = open_media(damaged)
    try:
        with caplog.at_level(logging.WARNING, logger="holoscope"):
            frames = list(media.frames_from(0))
        assert [f.index for f in frames] == list(range(FRAMES))
        assert all(isinstance(f.payload, SplatCloud) for f in frames[:10])
        assert all(isinstance(f.payload, FailedFrame) and f.failed for f in frames[10:])
        assert "group2/12.mp4" in frames[10].payload.message
        assert any("group 3 (frames 11-12) skipped" in r.getMessage() for r in caplog.records)
        with pytest.raises(CorruptStream, match=r"12\.mp4"):
            media.frame(11)
        assert media.frame(9).count == SPLATS  # the groups around it still play
    finally:
        media.release()


def test_video_cut_short_inside_is_a_failed_group(damaged, tmp_path, clip):
    """A group's video holding fewer frames than its group (written short, header intact)."""
    short = tmp_path / "short"
    v3.write_v3(clip[:9], short, group_size=GROUP)  # group 1 holds 4 frames
    shutil.copy(short / "group1" / "9.mp4", damaged / "group1" / "9.mp4")
    media = open_media(damaged)  # only video 0's header is read at open
    try:
        frames = list(media.frames_from(5))
        assert [type(f.payload) for f in frames[:5]] == [FailedFrame] * 5
        assert "group1/9.mp4 holds 4 frames" in frames[0].payload.message
        assert isinstance(frames[5].payload, SplatCloud)
    finally:
        media.release()


def test_wrong_sized_video_is_a_failed_group(damaged, tmp_path, clip):
    other = tmp_path / "other"
    v3.write_v3([c.subset(np.arange(100)) for c in clip[:5]], other, group_size=GROUP)  # 16 x 16
    shutil.copy(other / "group0" / "13.mp4", damaged / "group0" / "13.mp4")
    media = open_media(damaged)
    try:
        with pytest.raises(CorruptStream, match=r"group0/13\.mp4 is 16x16, the group's other videos 32x32"):
            media.frame(0)
        assert isinstance(media.frame(5), SplatCloud)
    finally:
        media.release()


def test_group_info_without_its_folder_contents(tmp_path, stream25):
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(stream25 / "group_info.json", lone / "group_info.json")
    with pytest.raises(CorruptStream, match="missing viewer_min_max.json"):
        open_media(lone / "group_info.json")


# Writing errors -----------------------------------------------------------------------------------------


def test_count_change_inside_a_group_is_refused_and_leaves_nothing(tmp_path, clip):
    frames = list(clip[:8])
    frames[6] = frames[6].subset(np.arange(SPLATS - 1))
    out = tmp_path / "out"
    with pytest.raises(InvalidArgument, match=r"frame 6 holds 599 Gaussians but its group \(group 1\) started with"):
        v3.write_v3(frames, out, group_size=GROUP)
    assert list(tmp_path.iterdir()) == []
    # a new group may change the count
    frames[5] = frames[5].subset(np.arange(SPLATS - 1))
    frames[7] = frames[7].subset(np.arange(SPLATS - 1))
    v3.write_v3(frames, out, group_size=GROUP)
    media = v3.open_v3(out)
    assert [media.frame(i).count for i in (4, 5)] == [SPLATS, SPLATS - 1]
    assert (media.info["splats_min"], media.info["splats_max"]) == (SPLATS - 1, SPLATS)
    media.release()


def test_writer_refuses_bad_input_and_an_occupied_folder(tmp_path, clip):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not an empty folder"):
        v3.write_v3(clip[:2], tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InvalidArgument, match="no frames"):
        v3.write_v3([], tmp_path / "none")
    with pytest.raises(InvalidArgument, match="frame 1 is a str"):
        v3.write_v3([clip[0], "x"], tmp_path / "bad")
    bad = clip[0].means.copy()
    bad[3, 1] = np.nan
    nan_cloud = SplatCloud(bad, clip[0].scales, clip[0].quats, clip[0].opacities, clip[0].sh)
    with pytest.raises(InvalidArgument, match="frame 0 holds non-finite values"):
        v3.write_v3([nan_cloud], tmp_path / "nan")
    for kwargs in ({"qp": 52}, {"group_size": 0}, {"fps": 0}):
        with pytest.raises(InvalidArgument):
            v3.write_v3(clip[:1], tmp_path / "args", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    (tmp_path / "empty").mkdir()
    v3.write_v3(clip[:1], tmp_path / "empty")  # an empty folder is taken over
    assert (tmp_path / "empty" / "group0" / "19.mp4").is_file()


def test_higher_sh_bands_are_dropped_with_one_warning(tmp_path, caplog, clip):
    rich = []
    for t, cloud in enumerate(clip[:3]):
        sh = random_cloud(SPLATS, 3, seed=t).sh
        sh[:, 0] = cloud.sh[:, 0]
        rich.append(SplatCloud(cloud.means, cloud.scales, cloud.quats, cloud.opacities, sh))
    seen = []
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        summary = v3.write_v3(rich, tmp_path / "sh", group_size=2, fps=25,
                              progress=lambda done, total: seen.append((done, total)))
    assert sum("SH degree 0 only" in r.getMessage() for r in caplog.records) == 1
    assert seen == [(2, 3), (3, 3)]
    assert summary["frames"] == 3 and summary["groups"] == 2
    assert summary["bytes"] == sum(p.stat().st_size for p in (tmp_path / "sh").rglob("*") if p.is_file())
    media = v3.open_v3(tmp_path / "sh")
    assert media.fps == 25 and media.frame(2).sh.shape == (SPLATS, 1, 3)
    media.release()
