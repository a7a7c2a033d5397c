"""Every medium opened by URL through the real HTTP source gives what the same local file gives:
``info`` reports the same, ``convert`` writes the same bytes, ``render`` draws the same pixels
(byte-equal PNGs for splats, equal frames for video), for the shared samples and for streams the
tests encode (.gsv and its segmented manifest, .nerv, .hgz). The requests go through the fault
proxy with no faults set, so its log shows the bytes really came over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from tests.net.faultproxy import FaultProxy
from tests.net.streams import write_gsv, write_hgz, write_nerv

SPLAT_SAMPLES = [
    "splats/minimal.splat",
    "splats/lod4.ply",
    "splats/guitar.compressed.ply",
    "splats/sh3-64.compressed.ply",
    "splats/minimal-v3.spz",
    "splats/minimal.ksplat",
    "splat-sequences/wave/wave_0001.sog",
]
VIDEO_SAMPLE = "video/bunny-132f-360p-ffv1.mkv"
# what legitimately differs between a URL and a local file in ``info --json``
LOCATION_KEYS = {"file", "path", "streamed"}
# what ``info`` adds for a URL: the session's traffic
NETWORK_KEYS = {"downloaded_bytes", "http_requests", "http_retries", "cache_hit_bytes"}
# holoscope/codecs/hashgrid/reader.py open_hgz hands ``source.label`` (the URL) to
# hgz.read_hgz, which reads a local path: a .hgz URL fails with "no such file"


@pytest.fixture(scope="module")
def encoded(streams_dir: Path) -> dict[str, Path]:
    """Streams encoded by the tests, in the served folder (names relative to it)."""
    folder = streams_dir / "open"
    folder.mkdir(exist_ok=True)
    gsv = write_gsv(folder, segments=True)
    return {
        "gsv": gsv,
        "manifest": folder / "clip-segments" / "manifest.json",
        "nerv": write_nerv(folder),
        "hgz": write_hgz(folder),
    }


def _served(streams_dir: Path, path: Path) -> str:
    return "streams/" + path.relative_to(streams_dir).as_posix()


def _info(target: str, capsys) -> dict:
    assert main(["info", target, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _without_location(value):
    if isinstance(value, dict):
        return {k: _without_location(v) for k, v in value.items() if k not in LOCATION_KEYS | NETWORK_KEYS}
    if isinstance(value, list):
        return [_without_location(v) for v in value]
    return value


def assert_same_info(url: str, local: Path, capsys) -> dict:
    remote, here = _info(url, capsys), _info(str(local), capsys)
    assert remote["file"] == url
    assert _without_location(remote) == _without_location(here)
    return remote


# -- samples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SPLAT_SAMPLES, VIDEO_SAMPLE])
def test_info_of_a_sample_url(name, proxy: FaultProxy, samples_dir: Path, capsys) -> None:
    info = assert_same_info(proxy.url(f"samples/{name}"), samples_dir / name, capsys)
    assert info["file_bytes"] == (samples_dir / name).stat().st_size
    assert proxy.requests(Path(name).name), "the URL was read through the proxy"
    assert all(r.status in (200, 206) for r in proxy.log)
    if "downloaded_bytes" in info:  # the traffic info reports is what the server sent
        assert info["downloaded_bytes"] == proxy.body_bytes()
        assert info["http_requests"] == len(proxy.requests(method="GET"))


@pytest.mark.parametrize("name", SPLAT_SAMPLES)
def test_convert_a_sample_url(name, proxy: FaultProxy, samples_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["convert", proxy.url(f"samples/{name}"), str(tmp_path / "remote.ply"), "-q"]) == 0, capsys.readouterr().err
    assert main(["convert", str(samples_dir / name), str(tmp_path / "local.ply"), "-q"]) == 0
    assert (tmp_path / "remote.ply").read_bytes() == (tmp_path / "local.ply").read_bytes()


@pytest.mark.gl
@pytest.mark.parametrize("name", SPLAT_SAMPLES)
def test_render_a_sample_url(name, proxy: FaultProxy, samples_dir: Path, tmp_path: Path, capsys) -> None:
    for target, out in ((proxy.url(f"samples/{name}"), "remote.png"), (str(samples_dir / name), "local.png")):
        assert main(["render", target, "-o", str(tmp_path / out), "--size", "64x48", "-q"]) == 0, capsys.readouterr().err
    remote, local = (tmp_path / "remote.png").read_bytes(), (tmp_path / "local.png").read_bytes()
    assert remote == local


def test_video_frames_from_a_url(proxy: FaultProxy, samples_dir: Path) -> None:
    from holoscope.codecs.inputs import open_input

    remote = open_input(proxy.url(f"samples/{VIDEO_SAMPLE}"))
    local = open_input(samples_dir / VIDEO_SAMPLE)
    try:
        assert (remote.frame_count, remote.fps) == (local.frame_count, local.fps)
        pairs = list(zip(_first_frames(remote, 3), _first_frames(local, 3)))
        assert len(pairs) == 3
        for a, b in pairs:
            assert len(a.planes) == len(b.planes) == 3 and a.bit_depth == b.bit_depth
            for pa, pb in zip(a.planes, b.planes):
                assert np.array_equal(pa, pb)
    finally:
        for media in (remote, local):
            media.release()
    assert proxy.body_bytes("bunny") > 0


def _first_frames(media, n: int) -> list:
    out = []
    for frame in media.frames_from(0):
        out.append(frame.cpu_payload())
        if len(out) == n:
            break
    return out


# -- streams encoded by the tests -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gsv", "manifest", "nerv", "hgz"])
def test_info_of_an_encoded_stream_url(kind, encoded, streams_dir: Path, proxy: FaultProxy, capsys) -> None:
    url = proxy.url(_served(streams_dir, encoded[kind]))
    info = assert_same_info(url, encoded[kind], capsys)
    if kind in ("gsv", "manifest"):
        assert info["streamed"] is True  # read over a link: the player buffers instead of dropping


@pytest.mark.parametrize("kind", ["gsv", "manifest"])
def test_convert_a_gaussian_video_url(kind, encoded, streams_dir: Path, proxy: FaultProxy, tmp_path: Path, capsys) -> None:
    for target, folder in ((proxy.url(_served(streams_dir, encoded[kind])), "remote"), (str(encoded[kind]), "local")):
        (tmp_path / folder).mkdir()
        assert main(["convert", target, str(tmp_path / folder / "%04d.ply"), "-q"]) == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert len(names) == 8 and names == sorted(p.name for p in (tmp_path / "remote").iterdir())
    for name in names:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_convert_an_hgz_url(encoded, streams_dir: Path, proxy: FaultProxy, tmp_path: Path, capsys) -> None:
    url = proxy.url(_served(streams_dir, encoded["hgz"]))
    assert main(["convert", url, str(tmp_path / "remote.ingp"), "-q"]) == 0, capsys.readouterr().err
    assert main(["convert", str(encoded["hgz"]), str(tmp_path / "local.ingp"), "-q"]) == 0
    assert (tmp_path / "remote.ingp").read_bytes() == (tmp_path / "local.ingp").read_bytes()


@pytest.mark.parametrize("kind,size,frames", [
    pytest.param("gsv", "64x48", 8, marks=pytest.mark.gl),
    pytest.param("manifest", "64x48", 8, marks=pytest.mark.gl),
    ("nerv", None, 20),
    ("hgz", "40x30", 1),
])
def test_render_an_encoded_stream_url(kind, size, frames, encoded, streams_dir: Path, proxy: FaultProxy,
                                      tmp_path: Path, capsys) -> None:  # fmt: skip
    url = proxy.url(_served(streams_dir, encoded[kind]))
    extra = ["--size", size] if size else []
    outputs = {}
    for target, folder in ((url, "remote"), (str(encoded[kind]), "local")):
        (tmp_path / folder).mkdir()
        out = tmp_path / folder / ("%04d.png" if frames > 1 else "still.png")
        assert main(["render", target, "-o", str(out), "-q", *extra]) == 0, capsys.readouterr().err
        outputs[folder] = sorted((tmp_path / folder).iterdir())
    assert len(outputs["local"]) == frames == len(outputs["remote"])
    for a, b in zip(outputs["remote"], outputs["local"]):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
