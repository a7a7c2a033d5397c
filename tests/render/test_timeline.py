"""Timed media rendered headless: the time alignment of frames and cameras, and real renders of
a splat sequence (every frame, a damaged one held over, seeking for loops)."""

from __future__ import annotations

import numpy as np
import pytest

from holoscope.codecs.formats.ply_inria import write_ply
from holoscope.codecs.sequence import open_sequence
from tests.video_reference import read_video_frames
from holoscope.core.camera import OrbitController
from holoscope.core.camera_path import CameraPath, orbit_path
from holoscope.core.errors import InvalidArgument
from holoscope.render.export import ExportOptions, SplatFrameRenderer
from holoscope.render.timeline import parse_frame_range, plan_timeline, render_timeline
from tests.codecs.helpers import blob_cloud


def path_of(n: int, fps: float = 30.0, size=(64, 48)) -> CameraPath:
    return orbit_path(OrbitController(np.zeros(3), 4.0), n, width=size[0], height=size[1], fov_y=50.0, fps=fps)


def test_sequence_longer_than_the_path_holds_the_last_camera():
    cams = path_of(5, fps=10.0)
    plan = plan_timeline(10, 10.0, cams)
    assert list(plan.frames) == list(range(10)) and plan.fps == 10.0
    assert plan.cameras[:5] == cams.cameras and all(c is cams.cameras[-1] for c in plan.cameras[5:])


def test_path_longer_than_the_sequence_holds_or_loops_the_sequence():
    cams = path_of(8, fps=4.0)  # 2 s of camera motion
    held = plan_timeline(3, 3.0, cams, fps=4.0)  # 1 s of frames
    assert len(held) == 8 and list(held.frames) == [0, 0, 1, 2, 2, 2, 2, 2]
    looped = plan_timeline(3, 3.0, cams, fps=4.0, loop=True)
    assert list(looped.frames) == [0, 0, 1, 2, 0, 0, 1, 2]


def test_one_camera_is_a_fixed_view_for_the_whole_sequence_and_ranges():
    cams = path_of(1)
    plan = plan_timeline(20, 30.0, cams)
    assert len(plan) == 20 and all(c is cams.cameras[0] for c in plan.cameras)
    part = plan_timeline(20, 30.0, cams, frame_range=parse_frame_range("5:9", 20))
    assert list(part.frames) == [5, 6, 7, 8]
    assert parse_frame_range(":3", 10) == (0, 3) and parse_frame_range("-2:", 10) == (8, 10)
    for bad in ("5", "a:b", "9:3", "0:11", "10:"):
        with pytest.raises(InvalidArgument):
            parse_frame_range(bad, 10)


def test_output_fps_resamples_the_sequence():
    plan = plan_timeline(10, 10.0, path_of(1), fps=20.0)
    assert len(plan) == 20 and list(plan.frames) == [i // 2 for i in range(20)]


@pytest.mark.gl
def test_render_a_sequence_frame_by_frame(tmp_path, gl_ctx):
    folder = tmp_path / "seq"
    folder.mkdir()
    xs = [-1.0, -0.5, 0.0, 0.5, 1.0]
    for i, x in enumerate(xs):
        write_ply(blob_cloud(x, n=200 + 50 * i, seed=i, spread=0.15, scale=0.06, dc=1.5), folder / f"f{i + 1}.ply")
    (folder / "f3.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nend_header\n")
    media = open_sequence(folder, fps=5)
    cams = CameraPath((path_of(1, size=(96, 64)).cameras[0],), 5.0)
    out = tmp_path / "out.mkv"
    n = render_timeline(media, plan_timeline(media.frame_count, media.fps, cams), out,
                        ExportOptions(codec="ffv1"), ctx=gl_ctx)  # fmt: skip
    assert n == 5
    video = read_video_frames(out)
    assert len(video) == 5
    # Each readable frame equals a still render of that frame alone; the damaged third frame
    # holds the second.
    renderer = None
    for i, x in enumerate(xs):
        if i == 2:
            np.testing.assert_array_equal(video[2], video[1])
            continue
        cloud = media.frame(i)
        renderer = SplatFrameRenderer(cloud, gl_ctx)
        from holoscope.render.gl.splat_renderer import to_uint8

        still = to_uint8(renderer.render(cams.cameras[0]))
        renderer.release()
        np.testing.assert_array_equal(video[i], still)
    centroids = [np.nonzero(f.max(axis=2).max(axis=0) > 40)[0].mean() for f in (video[0], video[4])]
    assert centroids[0] < centroids[1]  # the blob moves left to right


@pytest.mark.gl
def test_looping_plan_seeks_back(tmp_path, gl_ctx):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        write_ply(blob_cloud(i - 1.0, seed=i, spread=0.15, scale=0.06, dc=1.5), folder / f"f{i}.ply")
    media = open_sequence(folder, fps=3)
    plan = plan_timeline(3, 3.0, path_of(7, fps=3.0, size=(64, 48)), loop=True)
    assert list(plan.frames) == [0, 1, 2, 0, 1, 2, 0]
    out = tmp_path / "frames"
    out.mkdir()
    assert render_timeline(media, plan, out / "%04d.png", ctx=gl_ctx) == 7
    assert sorted(p.name for p in out.iterdir()) == [f"{i:04d}.png" for i in range(7)]
