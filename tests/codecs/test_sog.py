"""PlayCanvas SOG (v1 and v2): the 200 real wave frames, unbundled folders, a hand-made v1 scene,
writer round trips with per-attribute bounds from the format precision, and damaged input of
every kind (truncation, bit flips, bad meta.json, missing or non-WebP members, ZIP bombs, fuzz)."""

from __future__ import annotations

import io
import json
import math
import struct
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from holoscope.codecs.formats.sog import (
    decode_webp_rgba,
    encode_sog,
    encode_webp_lossless,
    morton_order,
    open_sog,
    palette_size,
    read_sog,
    write_sog,
)
from holoscope.core.errors import (
    CorruptStream,
    EmptyMedia,
    HoloscopeError,
    InvalidArgument,
    OutputError,
    SourceNotFound,
)
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.core.registry import open_media, writer_for
from .helpers import fuzz_settings
from .helpers import random_cloud as shared_random_cloud

WAVE_COUNT = 4225
QUAT_SLOTS = [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]


# Helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wave_frames(samples_dir) -> list[Path]:
    frames = sorted((samples_dir / "splat-sequences" / "wave").glob("wave_*.sog"))
    if not frames:
        pytest.skip("the wave SOG frames are not in the sample folder")
    return frames


@pytest.fixture(scope="module")
def wave_members(wave_frames) -> dict[str, bytes]:
    with zipfile.ZipFile(wave_frames[0]) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def inv_log(v):
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.expm1(np.abs(v))


def check_ranges(cloud: SplatCloud) -> None:
    assert cloud.count > 0
    for array in (cloud.means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh):
        assert np.isfinite(array).all()
    assert (cloud.scales > 0).all()
    assert ((cloud.opacities >= 0) & (cloud.opacities <= 1)).all()
    np.testing.assert_allclose(np.linalg.norm(cloud.quats, axis=1), 1.0, atol=1e-5)


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def with_meta(members: dict[str, bytes], meta: object) -> dict[str, bytes]:
    out = dict(members)
    out["meta.json"] = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    return out


def read_bytes_as_sog(tmp: Path, data: bytes, name: str = "scene.sog") -> SplatCloud:
    path = tmp / name
    path.write_bytes(data)
    return read_sog(path)


random_cloud = partial(shared_random_cloud, profile="sog")  # tests/codecs/helpers.py


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dot = np.abs(np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))).clip(0, 1)
    return np.degrees(2 * np.arccos(dot))


def nearest_distance(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Distance from each value to the nearest codebook entry."""
    cb = np.sort(np.asarray(codebook, np.float64))
    v = np.asarray(values, np.float64).ravel()
    i = np.clip(np.searchsorted(cb, v), 1, len(cb) - 1)
    return np.minimum(np.abs(v - cb[i - 1]), np.abs(v - cb[i])).reshape(np.shape(values))


# The real wave frames ---------------------------------------------------------------------


def test_every_wave_frame_decodes_within_its_meta(wave_frames):
    assert len(wave_frames) == 200
    started = time.perf_counter()
    opacity_levels = np.arange(256, dtype=np.float32) / np.float32(255)
    for path in wave_frames:
        media = open_media(path)
        assert (media.format, media.reader, media.frame_count) == ("sog", "holoscope.sog", 1)
        cloud = media.frame(0)
        assert cloud.count == WAVE_COUNT and cloud.sh_degree == 0
        check_ranges(cloud)
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
        # Means lie inside the bounds of meta.json, mapped back through the log transform.
        lo, hi = inv_log(meta["means"]["mins"]), inv_log(meta["means"]["maxs"])
        slack = 1e-6 * (1 + np.maximum(np.abs(lo), np.abs(hi)))
        assert (cloud.means >= lo - slack).all() and (cloud.means <= hi + slack).all()
        # Codebook values are used as given: f_dc exactly, scales as exp of an entry.
        assert np.isin(cloud.sh[:, 0], np.array(meta["sh0"]["codebook"], np.float32)).all()
        scale_cb = np.exp(np.array(meta["scales"]["codebook"], np.float64))
        assert (nearest_distance(cloud.scales, scale_cb) <= 1e-6 * cloud.scales).all()
        assert np.isin(cloud.opacities, opacity_levels).all()
        info = cloud.metadata["format_info"]
        assert info == {"sog_version": 2, "codebook_sizes": {"scales": 256, "sh0": 256, "shN": 0},
                        "sh_bands": 0, "image_size": [68, 64]}  # fmt: skip
        assert media.info["file_bytes"] == path.stat().st_size
    elapsed = time.perf_counter() - started
    print(f"200 wave frames opened and checked in {elapsed:.2f} s")


def test_decode_matches_a_per_splat_reading_of_the_spec(wave_frames):
    """A scalar transcription of §3.4 for a sample of splats agrees with the vectorised reader."""
    path = wave_frames[0]
    cloud = read_sog(path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        px = {n: decode_webp_rgba(zf.read(n)).reshape(-1, 4).astype(int) for n in zf.namelist() if n.endswith(".webp")}
    mins, maxs = meta["means"]["mins"], meta["means"]["maxs"]
    for i in np.random.default_rng(0).choice(WAVE_COUNT, 64, replace=False):
        for a in range(3):
            u = px["means_l.webp"][i, a] + 256 * px["means_u.webp"][i, a]
            v = mins[a] + (maxs[a] - mins[a]) * u / 65535
            x = math.copysign(math.exp(abs(v)) - 1, v)
            assert cloud.means[i, a] == pytest.approx(x, rel=1e-6, abs=1e-6)
            assert cloud.scales[i, a] == pytest.approx(math.exp(meta["scales"]["codebook"][px["scales.webp"][i, a]]),
                                                       rel=1e-6)  # fmt: skip
            assert cloud.sh[i, 0, a] == pytest.approx(meta["sh0"]["codebook"][px["sh0.webp"][i, a]], rel=1e-6)
        q = px["quats.webp"][i]
        largest = q[3] - 252
        comps = [0.0] * 4
        for k, slot in enumerate(QUAT_SLOTS[largest]):
            comps[slot] = (q[k] / 255 * 2 - 1) / math.sqrt(2)
        comps[largest] = math.sqrt(max(0.0, 1 - sum(c * c for c in comps)))
        norm = math.sqrt(sum(c * c for c in comps))
        np.testing.assert_allclose(cloud.quats[i], np.array(comps) / norm, atol=1e-6)
        assert cloud.opacities[i] == pytest.approx(px["sh0.webp"][i, 3] / 255, abs=1e-7)


def test_pyav_webp_decode_is_bit_exact_against_libwebp(wave_frames):
    """Pillow (libwebp) is an independent decoder; it is not a dependency, so this check runs
    only where it happens to be installed."""
    image_module = pytest.importorskip("PIL.Image")
    from PIL import features

    if not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    for path in wave_frames[::10]:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if name.endswith(".webp"):
                    data = zf.read(name)
                    ours = decode_webp_rgba(data)
                    theirs = np.asarray(image_module.open(io.BytesIO(data)).convert("RGBA"))
                    np.testing.assert_array_equal(ours, theirs)


def test_decoding_a_frame_twice_gives_the_same_arrays(wave_frames):
    a, b = read_sog(wave_frames[7]), read_sog(wave_frames[7])
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def assert_same_cloud(a: SplatCloud, b: SplatCloud) -> None:
    for name in ("means", "scales", "quats", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.metadata["format_info"] == b.metadata["format_info"]


def test_unbundled_folder_and_meta_json_match_the_zip(wave_frames, tmp_path):
    source = wave_frames[3]
    with zipfile.ZipFile(source) as zf:
        zf.extractall(tmp_path / "scene")
    zipped = open_media(source).frame(0)
    folder = open_media(tmp_path / "scene")
    assert folder.format == "sog" and folder.reader == "holoscope.sog"
    assert folder.info["file_bytes"] == sum(p.stat().st_size for p in (tmp_path / "scene").iterdir())
    assert_same_cloud(zipped, folder.frame(0))
    assert_same_cloud(zipped, read_sog(tmp_path / "scene" / "meta.json"))
    assert_same_cloud(zipped, open_media(tmp_path / "scene" / "meta.json", forced="sog").frame(0))
    assert_same_cloud(zipped, open_sog(tmp_path / "scene" / "meta.json").frame(0))


def test_zip_with_members_under_one_folder_opens(wave_members, tmp_path):
    nested = {f"frame/{name}": data for name, data in wave_members.items()}
    cloud = read_bytes_as_sog(tmp_path, make_zip(nested))
    assert cloud.count == WAVE_COUNT


def test_deflated_members_open_too(wave_members, tmp_path):
    cloud = read_bytes_as_sog(tmp_path, make_zip(wave_members, compression=zipfile.ZIP_DEFLATED))
    assert cloud.count == WAVE_COUNT


# A hand-made v1 scene -----------------------------------------------------------------------


def v1_scene(rng: np.random.Generator, n: int = 37, width: int = 8, height: int = 5) -> tuple[dict, dict]:
    """meta.json and images of a v1 SOG (no "version"), plus the expected decoded values."""
    pixels = width * height

    def image(rgb: np.ndarray, alpha: np.ndarray | int = 255) -> bytes:
        px = np.zeros((pixels, 4), np.uint8)
        px[:, 3] = 255
        px[:n, :3] = rgb
        px[:n, 3] = alpha
        return encode_webp_lossless(px.reshape(height, width, 4))

    lo, hi = rng.integers(0, 256, (n, 3)), rng.integers(0, 256, (n, 3))
    scale_b, quat_b = rng.integers(0, 256, (n, 3)), rng.integers(0, 256, (n, 3))
    tags = rng.integers(252, 256, n)
    colour_b, alpha_b = rng.integers(0, 256, (n, 3)), rng.integers(1, 256, n)  # alpha 0 would zero RGB
    labels = rng.integers(0, 128, n)
    centroid_b = rng.integers(0, 256, (2, 192, 3))
    mins, maxs = [-1.0, -2.0, -0.5], [1.0, 0.5, 2.0]
    s_mins, s_maxs = [-5.0, -4.0, -3.0], [-1.0, -2.0, 0.0]
    c_mins, c_maxs = [-1.0, -1.5, -2.0, -4.0], [1.0, 1.5, 0.5, 6.0]
    sh_min, sh_max = -0.5, 0.75
    files = {
        "means_l.webp": image(lo), "means_u.webp": image(hi), "scales.webp": image(scale_b),
        "quats.webp": image(quat_b, tags), "sh0.webp": image(colour_b, alpha_b),
        "shN_labels.webp": image(np.stack([labels & 255, labels >> 8, np.zeros(n, int)], 1)),
    }  # fmt: skip
    cent = np.full((2, 192, 4), 255, np.uint8)
    cent[..., :3] = centroid_b
    files["shN_centroids.webp"] = encode_webp_lossless(cent)
    meta = {
        "means": {"shape": [n, 3], "dtype": "float32", "mins": mins, "maxs": maxs,
                  "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"shape": [n, 3], "dtype": "float32", "mins": s_mins, "maxs": s_maxs, "files": ["scales.webp"]},
        "quats": {"shape": [n, 4], "dtype": "uint8", "encoding": "quaternion_packed", "files": ["quats.webp"]},
        "sh0": {"shape": [n, 1, 4], "dtype": "float32", "mins": c_mins, "maxs": c_maxs, "files": ["sh0.webp"]},
        "shN": {"shape": [n, 9], "dtype": "float32", "mins": sh_min, "maxs": sh_max, "quantization": 8,
                "files": ["shN_centroids.webp", "shN_labels.webp"]},
    }  # fmt: skip
    files["meta.json"] = json.dumps(meta).encode()

    # Expected values, straight from the v1 rules.
    v = np.array(mins) + (np.array(maxs) - np.array(mins)) * (lo + 256 * hi) / 65535
    means = np.sign(v) * np.expm1(np.abs(v))
    scales = np.exp(np.array(s_mins) + (np.array(s_maxs) - np.array(s_mins)) * scale_b / 255)
    quats = np.zeros((n, 4))
    for i in range(n):
        largest = tags[i] - 252
        for k, slot in enumerate(QUAT_SLOTS[largest]):
            quats[i, slot] = (quat_b[i, k] / 255 * 2 - 1) / math.sqrt(2)
        quats[i, largest] = math.sqrt(max(0.0, 1 - (quats[i] ** 2).sum()))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    cm, cM = np.array(c_mins), np.array(c_maxs)
    dc = cm[:3] + (cM[:3] - cm[:3]) * colour_b / 255
    opacity = 1 / (1 + np.exp(-(cm[3] + (cM[3] - cm[3]) * alpha_b / 255)))
    rest = np.zeros((n, 3, 3))
    for i in range(n):
        row, col = labels[i] // 64, (labels[i] % 64) * 3
        rest[i] = sh_min + (sh_max - sh_min) * centroid_b[row, col : col + 3] / 255
    expected = {"means": means, "scales": scales, "quats": quats, "opacities": opacity,
                "dc": dc, "rest": rest}  # fmt: skip
    return files, expected


def test_hand_made_v1_scene_decodes_by_the_v1_rules(tmp_path):
    files, expected = v1_scene(np.random.default_rng(5))
    folder = tmp_path / "v1"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    for cloud in (open_media(folder).frame(0), read_bytes_as_sog(tmp_path, make_zip(files))):
        assert cloud.count == 37 and cloud.sh_degree == 1
        np.testing.assert_allclose(cloud.means, expected["means"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(cloud.scales, expected["scales"], rtol=1e-5)
        np.testing.assert_allclose(cloud.quats, expected["quats"], atol=1e-6)
        np.testing.assert_allclose(cloud.opacities, expected["opacities"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(cloud.sh[:, 0], expected["dc"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(cloud.sh[:, 1:], expected["rest"], rtol=1e-6, atol=1e-6)
        check_ranges(cloud)
        info = cloud.metadata["format_info"]
        assert info == {"sog_version": 1, "codebook_sizes": {"scales": 0, "sh0": 0, "shN": 128},
                        "sh_bands": 1, "image_size": [8, 5]}  # fmt: skip


def test_v1_rejects_an_unknown_quaternion_encoding_and_palette_width(tmp_path):
    files, _ = v1_scene(np.random.default_rng(6))
    meta = json.loads(files["meta.json"])
    meta["quats"]["encoding"] = "quaternion_12bit"
    with pytest.raises(CorruptStream, match="encoding"):
        read_bytes_as_sog(tmp_path, make_zip(with_meta(files, meta)))
    odd = dict(files)
    odd["shN_centroids.webp"] = encode_webp_lossless(np.full((2, 100, 4), 255, np.uint8))
    with pytest.raises(CorruptStream, match="wide"):
        read_bytes_as_sog(tmp_path, make_zip(odd))


# Writer ----------------------------------------------------------------------------------------


def written_meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


def assert_round_trip_within_precision(original: SplatCloud, path: Path) -> SplatCloud:
    """Bounds from what SOG v2 stores: 16-bit log-space means, nearest codebook entries for
    scales / f_dc / SH palette values, 8-bit smallest-three quaternions, 8-bit opacity."""
    back = read_sog(path)
    meta = written_meta(path)
    assert back.count == original.count and back.sh_degree == original.sh_degree
    a = original.subset(morton_order(original.means))  # the writer stores splats in Morton order
    # Means: half a 16-bit step in log space, mapped back (|dx| ~ (|x| + 1) dv).
    step = (np.array(meta["means"]["maxs"]) - np.array(meta["means"]["mins"])) / 65535
    bound = (np.abs(a.means) + 1) * step * 0.5 * 1.01 + 1e-6 * (np.abs(a.means) + 1)
    assert (np.abs(back.means - a.means) <= bound).all()
    # Scales: every log scale takes its nearest codebook entry.
    log_err = np.abs(np.log(back.scales.astype(np.float64)) - np.log(a.scales))
    assert (log_err <= nearest_distance(np.log(a.scales), meta["scales"]["codebook"]) + 1e-5).all()
    # Rotations: 8-bit components (step 2/255/sqrt 2) -> under ~1.2 degrees.
    angle = quat_angle_deg(a.quats, back.quats)
    assert angle.max() < 1.2 and angle.mean() < 0.5
    # Opacity: 8 bits, rounded.
    assert np.abs(back.opacities - a.opacities).max() <= 0.5 / 255 + 1e-6
    # f_dc: nearest codebook entry, except invisible splats (opacity byte 0) whose colour is index 0.
    visible = back.opacities > 0
    dc_err = np.abs(back.sh[visible, 0] - a.sh[visible, 0])
    assert (dc_err <= nearest_distance(a.sh[visible, 0], meta["sh0"]["codebook"]) + 1e-6).all()
    assert (back.sh[~visible, 0] == np.float32(meta["sh0"]["codebook"][0])).all()
    return back


def test_writer_round_trip_sh3_within_format_precision(tmp_path):
    cloud = random_cloud(20_000, 3, seed=1)
    path = tmp_path / "scene.sog"
    write_sog(cloud, path)
    back = assert_round_trip_within_precision(cloud, path)
    meta = written_meta(path)
    assert meta["version"] == 2 and meta["count"] == 20_000
    assert meta["shN"]["bands"] == 3 and meta["shN"]["count"] == palette_size(20_000) == 16_384
    info = back.metadata["format_info"]
    assert info["codebook_sizes"] == {"scales": 256, "sh0": 256, "shN": 16_384} and info["sh_bands"] == 3
    a = cloud.subset(morton_order(cloud.means))
    sh_err = back.sh[:, 1:] - a.sh[:, 1:]
    # The palette (16k entries for 20k splats) and its 256-entry codebook: a few % of the SH spread.
    assert np.sqrt(np.mean(sh_err**2)) < 0.02 and np.abs(sh_err).max() < 0.3
    log_err = np.abs(np.log(back.scales / a.scales))
    assert log_err.mean() < 0.01
    colour_err = np.abs(back.sh[:, 0] - a.sh[:, 0])[back.opacities > 0] * SH_C0
    assert colour_err.mean() < 0.005
    assert path.stat().st_size / cloud.count < 60


def test_small_cloud_keeps_one_palette_entry_per_splat(tmp_path):
    cloud = random_cloud(1024, 2, seed=2, structured_sh=False)
    path = tmp_path / "small.sog"
    write_sog(cloud, path)
    back = assert_round_trip_within_precision(cloud, path)
    meta = written_meta(path)
    assert meta["shN"]["count"] == 1024  # palette rule: min(64, 2^floor(log2(N/1024))) * 1024
    a = cloud.subset(morton_order(cloud.means))
    # Each splat has its own palette entry: SH only suffer the 256-entry value codebook.
    dist = nearest_distance(a.sh[:, 1:], meta["shN"]["codebook"])
    assert (np.abs(back.sh[:, 1:] - a.sh[:, 1:]) <= dist + 1e-6).all()


def test_reencoding_a_wave_frame_is_nearly_lossless(wave_frames, tmp_path):
    source = read_sog(wave_frames[0])
    path = tmp_path / "again.sog"
    write_sog(source, path)
    back = read_sog(path)
    a = source.subset(morton_order(source.means))
    # At most 256 distinct values: the codebooks carry them exactly (exp recomputed from float32).
    np.testing.assert_allclose(back.scales, a.scales, rtol=1e-6)
    np.testing.assert_array_equal(back.sh, a.sh)
    np.testing.assert_array_equal(back.opacities, a.opacities)
    assert quat_angle_deg(a.quats, back.quats).max() < 0.05
    step = (np.array(written_meta(path)["means"]["maxs"]) - np.array(written_meta(path)["means"]["mins"])) / 65535
    assert (np.abs(back.means - a.means) <= (np.abs(a.means) + 1) * step).all()
    assert path.stat().st_size < 1.2 * wave_frames[0].stat().st_size


def test_written_file_is_a_zip_of_lossless_webp_and_deterministic(tmp_path):
    cloud = random_cloud(3000, 1, seed=3)
    first, second = tmp_path / "a.sog", tmp_path / "b.sog"
    write_sog(cloud, first)
    write_sog(cloud, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names[0] == "meta.json"
        assert set(names) == {"meta.json", "means_l.webp", "means_u.webp", "quats.webp", "scales.webp",
                              "sh0.webp", "shN_centroids.webp", "shN_labels.webp"}  # fmt: skip
        for name in names[1:]:
            data = zf.read(name)
            assert data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8L"
            assert zf.getinfo(name).compress_type == zipfile.ZIP_STORED
    media = open_media(first)
    assert media.format == "sog" and media.frame(0).count == 3000
    spec, writer = writer_for(tmp_path / "x.sog")
    assert spec.name == "sog" and writer is write_sog


def test_writer_to_meta_json_makes_an_unbundled_folder(tmp_path):
    cloud = random_cloud(500, 0, seed=4)
    write_sog(cloud, tmp_path / "a.sog")
    folder = tmp_path / "unbundled"
    folder.mkdir()
    write_sog(cloud, folder / "meta.json")
    assert {p.name for p in folder.iterdir()} == {"meta.json", "means_l.webp", "means_u.webp", "quats.webp",
                                                   "scales.webp", "sh0.webp"}  # fmt: skip
    assert_same_cloud(read_sog(tmp_path / "a.sog"), open_media(folder).frame(0))


def test_lossless_webp_helpers_are_bit_exact():
    rng = np.random.default_rng(7)
    for shape in ((1, 1, 4), (5, 3, 4), (64, 68, 4), (17, 301, 4)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        image[..., 3] = np.maximum(image[..., 3], 1)
        np.testing.assert_array_equal(decode_webp_rgba(encode_webp_lossless(image)), image)
    # libwebp through FFmpeg cannot keep RGB under alpha 0 (no `exact`): documented, and the
    # writer stores such pixels as 0 itself.
    image = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    image[::2, :, 3] = 0
    back = decode_webp_rgba(encode_webp_lossless(image))
    np.testing.assert_array_equal(back[1::2], image[1::2])
    assert (back[::2] == 0).all()


def test_invisible_splats_keep_their_opacity(tmp_path):
    cloud = random_cloud(300, 0, seed=8)
    opacities = cloud.opacities.copy()
    opacities[::3] = 0.0
    cloud = SplatCloud(cloud.means, cloud.scales, cloud.quats, opacities, cloud.sh)
    write_sog(cloud, tmp_path / "z.sog")
    back = read_sog(tmp_path / "z.sog")
    assert np.count_nonzero(back.opacities == 0) == np.count_nonzero(opacities == 0)


def test_writer_rejects_what_sog_cannot_hold_and_leaves_nothing(tmp_path):
    cloud = random_cloud(50, 0)
    bad = cloud.means.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InvalidArgument):
        write_sog(SplatCloud(bad, cloud.scales, cloud.quats, cloud.opacities, cloud.sh), tmp_path / "nan.sog")
    zero = np.zeros((0, 3), np.float32)
    empty = SplatCloud(zero, zero, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                       np.zeros((0, 1, 3), np.float32))  # fmt: skip
    with pytest.raises(EmptyMedia):
        write_sog(empty, tmp_path / "empty.sog")
    with pytest.raises(OutputError):
        write_sog(cloud, tmp_path / "missing" / "x.sog")
    with pytest.raises(OutputError):
        write_sog(cloud, tmp_path / "missing" / "meta.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# Damaged input ------------------------------------------------------------------------------


def result_or_holoscope_error(path: Path) -> SplatCloud | None:
    try:
        cloud = read_sog(path)
    except HoloscopeError:
        return None
    check_ranges(cloud)
    return cloud


def test_truncated_zips_are_rejected(wave_frames, tmp_path):
    data = wave_frames[0].read_bytes()
    for cut in (1, 4, 22, 30, 100, len(data) // 4, len(data) // 2, len(data) - 22, len(data) - 1):
        path = tmp_path / f"cut{cut}.sog"
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptStream):
            read_sog(path)
        with pytest.raises(HoloscopeError):
            open_media(path).frame(0)


def test_bit_flips_give_a_scene_or_a_holoscope_error(wave_frames, tmp_path):
    data = wave_frames[0].read_bytes()
    rng = np.random.default_rng(20)
    for i, pos in enumerate(rng.choice(len(data), 20, replace=False)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{i}.sog"
        path.write_bytes(bytes(flipped))
        result_or_holoscope_error(path)


def test_zero_length_and_missing_inputs(tmp_path):
    empty = tmp_path / "empty.sog"
    empty.write_bytes(b"")
    with pytest.raises(CorruptStream):
        read_sog(empty)
    with pytest.raises(CorruptStream):
        open_media(empty)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "meta.json").write_bytes(b"")
    with pytest.raises(CorruptStream, match="JSON"):
        read_sog(folder)
    with pytest.raises(SourceNotFound):
        read_sog(tmp_path / "nope.sog")
    with pytest.raises(CorruptStream):
        read_sog(tmp_path / "folder" / "..")  # a folder without meta.json
    with pytest.raises(HoloscopeError):
        open_media(tmp_path)


def _set(meta: dict, path: tuple, value) -> dict:
    meta = json.loads(json.dumps(meta))
    node = meta
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return meta


_DELETE = object()
BAD_META = [
    (("count",), _DELETE), (("count",), "4225"), (("count",), 4225.5), (("count",), True), (("count",), -1),
    (("count",), None), (("count",), 4353), (("count",), 10**12), (("count",), 2**28), (("count",), 2**80),
    (("version",), 3), (("version",), "2"), (("version",), True), (("means",), _DELETE), (("means",), []),
    (("means", "mins"), [0, 0]), (("means", "mins"), ["a", 0, 0]), (("means", "maxs"), _DELETE),
    (("means", "mins"), [10**400, 0, 0]), (("means", "files"), ["means_l.webp"]), (("means", "files"), [1, 2]),
    (("means", "files"), ["../means_l.webp", "means_u.webp"]), (("means", "files"), ["/etc/passwd", "x"]),
    (("scales", "codebook"), []), (("scales", "codebook"), [0.0] * 300), (("scales", "codebook"), [0.0, 1.0]),
    (("scales", "codebook"), "x"), (("scales",), _DELETE), (("quats", "files"), _DELETE),
    (("quats", "files"), ["nope.webp"]), (("sh0",), "x"), (("sh0", "codebook"), [None] * 256),
    (("shN",), {"count": 10, "bands": 4, "codebook": [0.0] * 256, "files": ["a.webp", "b.webp"]}),
    (("shN",), {"count": 0, "bands": 1, "codebook": [0.0] * 256, "files": ["a.webp", "b.webp"]}),
    (("shN",), {"count": 10, "bands": 1, "codebook": [0.0] * 256, "files": ["a.webp"]}),
    (("shN",), {"count": 10, "bands": 1, "codebook": [0.0] * 256, "files": ["sh0.webp", "sh0.webp"]}),
]  # fmt: skip


BAD_META_IDS = [f"{'.'.join(map(str, k))}={'DELETE' if v is _DELETE else str(v)[:20]}" for k, v in BAD_META]


@pytest.mark.parametrize("key, value", BAD_META, ids=BAD_META_IDS)
def test_bad_meta_json_is_a_corrupt_stream(wave_members, tmp_path, key, value):
    meta = json.loads(wave_members["meta.json"])
    members = with_meta(wave_members, _set(meta, key, value))
    with pytest.raises(CorruptStream):
        read_bytes_as_sog(tmp_path, make_zip(members))


def test_count_zero_is_empty_media(wave_members, tmp_path):
    meta = _set(json.loads(wave_members["meta.json"]), ("count",), 0)
    with pytest.raises(EmptyMedia):
        read_bytes_as_sog(tmp_path, make_zip(with_meta(wave_members, meta)))


def test_count_larger_than_the_images_names_the_image(wave_members, tmp_path):
    meta = _set(json.loads(wave_members["meta.json"]), ("count",), 68 * 64 + 1)
    with pytest.raises(CorruptStream, match="fewer than"):
        read_bytes_as_sog(tmp_path, make_zip(with_meta(wave_members, meta)))


@pytest.mark.parametrize("document", [b"[]", b"42", b'"meta"', b"{", b"\xff\xfe\x00garbage", b"[" * 100_000,
                                      b'{"version": 2, "count": 1e999}', b"null"])  # fmt: skip
def test_meta_json_that_is_not_an_object(wave_members, tmp_path, document):
    with pytest.raises(CorruptStream):
        read_bytes_as_sog(tmp_path, make_zip(with_meta(wave_members, document)))


def test_a_missing_member_is_named(wave_members, tmp_path):
    for name in ("quats.webp", "means_u.webp", "meta.json"):
        members = {k: v for k, v in wave_members.items() if k != name}
        with pytest.raises(CorruptStream, match=name.replace(".", r"\.")):
            read_bytes_as_sog(tmp_path, make_zip(members))


def vp8l_with_size(data: bytes, width: int, height: int) -> bytes:
    """A copy of a lossless WebP whose VP8L header claims another size."""
    out = bytearray(data)
    pos = out.index(b"VP8L") + 8
    bits = int.from_bytes(out[pos + 1 : pos + 5], "little")
    bits = (bits & ~0xFFFFFFF) | (width - 1) | ((height - 1) << 14)
    out[pos + 1 : pos + 5] = bits.to_bytes(4, "little")
    return bytes(out)


def lossy_webp() -> bytes:
    import av

    ctx = av.codec.CodecContext.create("libwebp", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 68, 64, "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 68, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    return b"".join(bytes(p) for p in list(ctx.encode(frame)) + list(ctx.encode(None)))


@pytest.mark.parametrize("replacement", ["png", "garbage", "half", "lossy", "empty", "huge-header", "tiny-header"])
def test_a_member_that_is_not_a_lossless_webp(wave_members, tmp_path, replacement):
    original = wave_members["quats.webp"]
    data = {
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "garbage": bytes(range(256)) * 10,
        "half": original[: len(original) // 2],
        "lossy": lossy_webp() if replacement == "lossy" else b"",
        "empty": b"",
        "huge-header": vp8l_with_size(original, 16384, 16384),
        "tiny-header": vp8l_with_size(original, 68, 62),
    }[replacement]
    members = dict(wave_members)
    members["quats.webp"] = data
    with pytest.raises(CorruptStream, match="quats.webp"):
        read_bytes_as_sog(tmp_path, make_zip(members))


def patch_sizes(zip_bytes: bytes, name: str, *, uncompressed: int) -> bytes:
    """Rewrite the uncompressed size a ZIP declares for one member (local and central headers)."""
    out = bytearray(zip_bytes)
    encoded = name.encode()
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        start = 0
        while (pos := out.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", out, pos + length_at)[0]
            if out[pos + name_at : pos + name_at + len(encoded)] == encoded and length == len(encoded):
                struct.pack_into("<I", out, pos + size_at, uncompressed)
            start = pos + 4
    return bytes(out)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("member", ["quats.webp", "meta.json"])
def test_zip_bombs_stop_at_the_limit(wave_members, tmp_path, member):
    bomb = bytes(64 << 20)  # 64 MiB of zeros: deflates to ~64 KiB
    started = time.perf_counter()
    # Declared small, inflates huge: zipfile stops at the declared size and the CRC fails.
    members = dict(wave_members)
    members[member] = bomb
    honest = make_zip(members, compression=zipfile.ZIP_DEFLATED)
    assert len(honest) < 2 << 20
    with pytest.raises(CorruptStream):
        read_bytes_as_sog(tmp_path, honest)  # declared honestly: refused before inflating
    small = patch_sizes(honest, member, uncompressed=len(wave_members[member]))
    with zipfile.ZipFile(io.BytesIO(small)) as zf:
        assert zf.getinfo(member).file_size == len(wave_members[member])
    with pytest.raises(CorruptStream, match=member.replace(".", r"\.")):
        read_bytes_as_sog(tmp_path, small)
    # Declared huge, small inside.
    huge = patch_sizes(make_zip(wave_members, compression=zipfile.ZIP_DEFLATED), member, uncompressed=0xFFFFFFF0)
    with zipfile.ZipFile(io.BytesIO(huge)) as zf:
        assert zf.getinfo(member).file_size == 0xFFFFFFF0
    with pytest.raises(CorruptStream, match="declares"):
        read_bytes_as_sog(tmp_path, huge)
    assert time.perf_counter() - started < 20


# Fuzz -------------------------------------------------------------------------------------------

FUZZ = fuzz_settings(150)


@FUZZ
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"{", b'{"version":2,']),
       as_meta=st.booleans())  # fmt: skip
def test_fuzz_random_bytes(data, prefix, as_meta):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("meta.json" if as_meta else "scene.sog")
        path.write_bytes(prefix + data)
        result_or_holoscope_error(path)


@pytest.fixture(scope="module")
def wave_zip(wave_frames) -> bytes:
    return wave_frames[0].read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       keep=st.floats(0.5, 1.0))  # fmt: skip
def test_fuzz_mutated_zip_bytes(wave_zip, edits, keep):
    data = bytearray(wave_zip)
    for where, value in edits:
        data[int(where * len(data))] = value
    data = data[: max(1, int(len(data) * keep))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.sog"
        path.write_bytes(bytes(data))
        result_or_holoscope_error(path)


def _key_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _key_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i in (0, 1, len(node) - 1):
            if 0 <= i < len(node):
                yield from _key_paths(node[i], prefix + (i,))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["means_l.webp", "quats.webp", "../x", "", "meta.json"]),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_scenes(wave_members) -> dict[str, dict[str, bytes]]:
    """Bases for meta.json mutations: the real v2 frame, a v2 scene with SH bands, a v1 scene."""
    return {
        "wave-v2": wave_members,
        "sh3-v2": encode_sog(random_cloud(300, 3, seed=9)),
        "v1": v1_scene(np.random.default_rng(9))[0],
    }


@FUZZ
@given(data=st.data(), base=st.sampled_from(["wave-v2", "sh3-v2", "v1"]))
def test_fuzz_mutated_meta_json(fuzz_scenes, data, base):
    members = fuzz_scenes[base]
    meta = json.loads(members["meta.json"])
    paths = [p for p in _key_paths(meta) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = data.draw(st.one_of(st.just(_DELETE), JSON_VALUES, st.integers(-5, 70_000)))
        try:
            meta = _set(meta, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    members = with_meta(members, json.dumps(meta, allow_nan=True).encode())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.sog"
        path.write_bytes(make_zip(members))
        result_or_holoscope_error(path)


@FUZZ
@given(member=st.sampled_from(["means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
       keep=st.one_of(st.just(1.0), st.floats(0.3, 1.0)))  # fmt: skip
def test_fuzz_mutated_webp_members(wave_members, member, edits, keep):
    """Damage inside a member with a valid CRC: the WebP checks and decoder must cope."""
    data = bytearray(wave_members[member])
    for where, value in edits:  # past the RIFF and VP8L headers: into the entropy-coded pixels
        data[25 + int(where * (len(data) - 25))] = value
    members = dict(wave_members)
    members[member] = bytes(data[: max(1, int(len(data) * keep))])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.sog"
        path.write_bytes(make_zip(members))
        result_or_holoscope_error(path)
