"""Hostile camera paths and option values: every one is one clear HoloscopeError, never an
OverflowError, RecursionError or a wrong "not found"."""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from holoscope.core import budget
from holoscope.core.camera import MAX_IMAGE_SIDE, check_fov, check_image_size, check_side
from holoscope.core.camera_path import MAX_CAMERAS, MAX_FPS, MIN_FPS, check_fps, read_camera_path
from holoscope.core.errors import (
    BudgetExceeded,
    CorruptStream,
    HoloscopeError,
    InvalidArgument,
    NotAFile,
    SourceNotFound,
    SourceUnreadable,
)

IDENTITY = [float(v) for v in np.eye(4).reshape(-1)]


def write(tmp_path: Path, doc: object, name: str = "camera_path.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def doc_with(**fields: object) -> dict:
    return {"camera_path": [{"camera_to_world": IDENTITY}], **fields}


def refused(path: Path, error: type[HoloscopeError], match: str) -> str:
    with pytest.raises(error, match=match) as info:
        read_camera_path(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), "the message names the file"
    return message


# ---- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "match"), [
    ("render_width", 1e300, r"render_width must be a whole number of pixels within 1\.\.16384, got 1e\+300"),
    ("render_width", 10**400, "render_width must be a whole number"),
    ("render_height", 16385, "render_height .* 1..16384"),
    ("render_height", 720.5, "render_height"),
    ("render_width", -1, "render_width"),
    ("render_width", True, "render_width"),
    ("fps", 1e-5, r"fps must be within 0\.0001\.\.1000"),
    ("fps", 1e300, "fps must be within"),
    ("fps", 1001, "fps must be within"),
    ("fps", "30", "fps must be a finite number"),
])
def test_out_of_range_numbers(tmp_path: Path, field: str, value: object, match: str) -> None:
    refused(write(tmp_path, doc_with(**{field: value})), InvalidArgument, match)


def test_non_finite_fps(tmp_path: Path) -> None:
    for value in (math.nan, math.inf):
        refused(write(tmp_path, doc_with(fps=value)), InvalidArgument, "fps must be a finite number")


def test_integral_float_sizes_are_accepted(tmp_path: Path) -> None:
    path = read_camera_path(write(tmp_path, doc_with(render_width=640.0, render_height=480, fps=MIN_FPS)))
    assert (path.cameras[0].width, path.cameras[0].height, path.fps) == (640, 480, MIN_FPS)


@pytest.mark.parametrize("fov", [1e-300, 0.0, 0.05, 179.5, 180, -30, 1e300])
def test_fov_out_of_range_says_so(tmp_path: Path, fov: float) -> None:
    entry = {"camera_to_world": IDENTITY, "fov": fov}
    expected = r"camera_path\[0\]\.fov must be within 0\.1\.\.179 degrees"
    refused(write(tmp_path, {"camera_path": [entry]}), InvalidArgument, expected)


@pytest.mark.parametrize(("matrix", "match"), [
    ([2.0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1], "not a rotation"),  # scaled
    ([0.0] * 16, "not a rotation"),  # degenerate
    ([1.0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "not a rotation"),  # sheared
    ([-1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "reflection"),
    ([1.0, 0, 0, 1e300, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "position is beyond"),
    ([1.0, 0, 0, 1e400, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "finite number"),  # json: Infinity
])
def test_unrenderable_poses(tmp_path: Path, matrix: list, match: str) -> None:
    entries = [{"camera_to_world": IDENTITY}, {"camera_to_world": matrix}]
    refused(write(tmp_path, {"camera_path": entries}), InvalidArgument, r"camera_path\[1\]\.camera_to_world.*" + match)


def test_slightly_imprecise_rotations_are_accepted(tmp_path: Path) -> None:
    c, s = math.cos(0.3), math.sin(0.3)
    rounded = [round(v, 6) for v in (c, 0, s, 1, 0, 1, 0, 2, -s, 0, c, 3, 0, 0, 0, 1)]  # float32-ish
    assert len(read_camera_path(write(tmp_path, {"camera_path": [{"camera_to_world": rounded}]}))) == 1


def test_too_many_cameras(tmp_path: Path) -> None:
    text = '{"camera_path": [' + ",".join(['{"camera_to_world": %s}' % json.dumps(IDENTITY)] * (MAX_CAMERAS + 1)) + "]}"
    refused(write(tmp_path, text), InvalidArgument, f"{MAX_CAMERAS + 1:,} cameras, more than the {MAX_CAMERAS:,}")


# ---- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, '{"camera_path": ' + "[" * 50_000])
def test_deeply_nested_json(tmp_path: Path, text: str) -> None:
    refused(write(tmp_path, text), InvalidArgument, "nested too deeply")


@pytest.mark.parametrize("text", ['{"render_width": ' + "9" * 5000 + "}", "\0", '{"a"', ""])
def test_malformed_json(tmp_path: Path, text: str) -> None:
    refused(write(tmp_path, text), InvalidArgument, "not a JSON camera path")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "camera_path.json"
    path.write_bytes(b'{"camera_path": "\xff"}')
    refused(path, InvalidArgument, "not a JSON camera path")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "camera_path.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc_with()).encode())
    assert len(read_camera_path(path)) == 1


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "camera_path.json"
    with open(path, "wb") as fh:
        fh.truncate((64 << 20) + 1)  # sparse: costs no disk
    refused(path, CorruptStream, "larger than the 67,108,864 bytes allowed")


def test_parse_is_held_to_the_memory_budget(tmp_path: Path) -> None:
    path = write(tmp_path, doc_with(padding="x" * (4 << 20)))
    budget.set_limit(64 << 20, "a test")
    try:
        refused(path, BudgetExceeded, "over the 64.0 MB memory budget")
    finally:
        budget.set_limit(None)


# ---- what the name points at ------------------------------------------------------------------


def test_missing(tmp_path: Path) -> None:
    refused(tmp_path / "nope.json", SourceNotFound, "no such file")


def test_folder(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    refused(tmp_path / "dir.json", NotAFile, "is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.json")
    refused(tmp_path / "fifo.json", NotAFile, "is a FIFO")


def test_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    refused(loop, SourceUnreadable, "symlink loop")


def test_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, doc_with())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: mode 0 does not stop reads")
        refused(path, SourceUnreadable, "permission denied")
    finally:
        path.chmod(0o644)


def test_name_too_long(tmp_path: Path) -> None:
    refused(tmp_path / ("x" * 300 + ".json"), SourceUnreadable, "file name too long")


def test_non_utf8_name_is_printable(tmp_path: Path) -> None:
    name = os.fsdecode(b"path\xff.json")
    path = write(tmp_path, doc_with(fps=0), name)
    with pytest.raises(InvalidArgument) as info:
        read_camera_path(path)
    assert "path\\xff.json" in str(info.value)
    str(info.value).encode("utf-8")  # printable on any terminal: no lone surrogates


# ---- the option checks the CLI calls ----------------------------------------------------------


def test_check_fps() -> None:
    assert check_fps(MIN_FPS) == MIN_FPS and check_fps(MAX_FPS) == MAX_FPS
    assert check_fps(Fraction(30000, 1001)) == pytest.approx(29.97003)
    for bad in (0, -1, 0.0001 * 0.99, 1000.001, math.nan, math.inf, True, "30", None):
        with pytest.raises(InvalidArgument, match="fps"):
            check_fps(bad)


def test_check_fov() -> None:
    assert check_fov(0.1) == 0.1 and check_fov(179) == 179.0 and check_fov(np.float32(50)) == 50.0
    with pytest.raises(InvalidArgument, match=r"field of view must be within 0\.1\.\.179 degrees, got 1e-300"):
        check_fov(1e-300)
    for bad in (0, 0.099, 179.01, 180, -50, math.nan, math.inf, False, "50"):
        with pytest.raises(InvalidArgument, match="field of view"):
            check_fov(bad)


def test_check_sizes() -> None:
    assert check_image_size(1, MAX_IMAGE_SIDE) == (1, MAX_IMAGE_SIDE)
    assert check_side(np.int64(640)) == 640 and check_side(480.0) == 480
    for bad in (0, MAX_IMAGE_SIDE + 1, 1e300, math.nan, 2.5, True, "640"):
        with pytest.raises(InvalidArgument, match="width must be a whole number"):
            check_image_size(bad, 10)
