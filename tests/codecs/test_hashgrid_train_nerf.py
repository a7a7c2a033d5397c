"""NeRF training: transforms.json read as instant-ngp reads it (cameras to NGP space, lens,
missing images, hostile files), rays and the stepping lattice, the density grid, and a small
analytic sphere dataset trained to well above a constant colour, deterministically for a seed,
into a snapshot that parses and carries its density grid and a training view."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
av = pytest.importorskip("av")

from holoscope.codecs.hashgrid import dataset as ds  # noqa: E402
from holoscope.codecs.hashgrid.dataset import load_dataset  # noqa: E402
from holoscope.codecs.hashgrid.neural.train_grid import DensityGrid, update_interval  # noqa: E402
from holoscope.codecs.hashgrid.neural.train_nerf import fit_nerf, nerf_config, render_view, split_views  # noqa: E402
from holoscope.codecs.hashgrid.neural.train_rays import (MIN_STEP, CameraSet, Stepping, aabb_intersect,  # noqa: E402
                                                         composite, distort, march, undistort)  # fmt: skip
from holoscope.codecs.hashgrid.occupancy import GRID_CELLS, bitfield_from_density  # noqa: E402
from holoscope.codecs.hashgrid.snapshot import parse_snapshot  # noqa: E402
from holoscope.codecs.hashgrid.writer import SnapshotConfig  # noqa: E402
from holoscope.core.errors import CorruptStream, InvalidArgument  # noqa: E402

SIZE = 20
RADIUS = 1.0  # world units: 0.33 in NGP space with instant-ngp's default scale


def write_png(path, rgba: np.ndarray) -> None:
    frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = rgba.shape[1], rgba.shape[0], "rgba"
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def look_at(eye: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (x right, y up, looking down -z) at ``eye`` facing the origin."""
    back = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def sphere_view(c2w: np.ndarray, focal: float, size: int = SIZE) -> np.ndarray:
    """RGBA uint8 of a sphere at the origin shaded by height (the same from every side, so few
    views suffice), transparent around it."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    d_cam = np.stack([(xs - size / 2) / focal, -(ys - size / 2) / focal, -np.ones_like(xs)], -1)
    d = d_cam @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = d @ o
    disc = b * b - (o @ o - RADIUS**2)
    hit = disc > 0
    t = -b - np.sqrt(np.where(hit, disc, 0))
    height = (o[1] + t * d[..., 1]) / RADIUS
    rgb = np.where(hit[..., None], np.stack([0.9 + 0 * height, 0.5 + 0.4 * height, 0.3 - 0.2 * height], -1), 0.0)
    return np.concatenate([np.clip(rgb * 255 + 0.5, 0, 255), hit[..., None] * 255.0], -1).astype(np.uint8)


def sphere_dataset(root, n_views: int = 12, angle_x: float = 0.9, **extra) -> tuple:
    (root / "images").mkdir(parents=True, exist_ok=True)
    focal = 0.5 * SIZE / math.tan(angle_x / 2)
    frames = []
    for i in range(n_views):
        a, e = 2 * math.pi * i / n_views, 0.35 * (-1) ** i
        c2w = look_at(3.0 * np.array([math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a)]))
        write_png(root / "images" / f"r_{i}.png", sphere_view(c2w, focal))
        frames.append({"file_path": f"images/r_{i}.png", "transform_matrix": c2w.tolist()})
    doc = {"camera_angle_x": angle_x, "aabb_scale": 1, "frames": frames, **extra}
    (root / "transforms.json").write_text(json.dumps(doc))
    return root / "transforms.json", doc


def write_doc(root, doc) -> object:
    path = root / "transforms.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


# -- transforms.json ------------------------------------------------------------------------------


def test_a_dataset_is_read_into_ngp_space(tmp_path):
    path, doc = sphere_dataset(tmp_path, 3)
    data = load_dataset(path)
    assert len(data) == 3 and data.images.shape == (3, SIZE, SIZE, 4) and data.has_alpha
    frame = data.frames[0]
    assert frame.focal[0] == pytest.approx(0.5 * SIZE / math.tan(0.45)) and frame.focal[0] == frame.focal[1]
    assert frame.principal == (0.5, 0.5) and frame.lens == (0.0, 0.0, 0.0, 0.0)
    # nerf_matrix_to_ngp: translation * 0.33 + 0.5 with NGP (x, y, z) = world (y, z, x)
    t = np.array(doc["frames"][0]["transform_matrix"])[:3, 3]
    np.testing.assert_allclose(frame.c2w[:, 3], (t * 0.33 + 0.5)[[1, 2, 0]])
    # the centre pixel's ray goes through the sphere's centre, NGP (0.5, 0.5, 0.5)
    cams = CameraSet(data.frames, data.width, data.height, torch.device("cpu"))
    o, d = cams.rays(torch.tensor([0]), torch.tensor([SIZE // 2]), torch.tensor([SIZE // 2]))
    closest = o[0] + d[0] * torch.dot(0.5 - o[0], d[0])
    assert torch.allclose(closest, torch.full((3,), 0.5), atol=0.33 * 3 * 0.5 / (SIZE / 2) * 1.5)


def test_intrinsics_lens_and_scene_keys(tmp_path):
    path, doc = sphere_dataset(tmp_path, 2)
    doc.update({"fl_x": 30.0, "fl_y": 32.0, "cx": 9.0, "cy": 11.0, "w": 20, "h": 20, "k1": 0.05, "k2": -0.01,
                "p1": 0.001, "p2": 0.002, "scale": 0.5, "offset": [0.4, 0.5, 0.6], "up": [0.0, 0.0, 1.0],
                "aabb_scale": 4})  # fmt: skip
    doc["frames"][1]["fl_x"] = 40.0  # a per-frame override
    data = load_dataset(write_doc(tmp_path, doc))
    a, b = data.frames
    assert a.focal == (30.0, 32.0) and b.focal == (40.0, 40.0)  # one axis alone gives both
    assert a.principal == (9 / 20, 11 / 20) and a.lens == (0.05, -0.01, 0.001, 0.002)
    assert data.aabb_scale == 4 and data.up == (0.0, 1.0, 0.0)  # up cycled as the matrices are
    t = np.array(doc["frames"][0]["transform_matrix"])[:3, 3]
    np.testing.assert_allclose(a.c2w[:, 3], (t * 0.5 + np.array([0.4, 0.5, 0.6]))[[1, 2, 0]])
    half = load_dataset(write_doc(tmp_path, doc), downscale=2)
    assert half.images.shape[1:3] == (10, 10) and half.frames[0].focal == (15.0, 16.0)


def test_frames_sort_naturally_and_missing_images_are_skipped_with_one_warning(tmp_path, caplog):
    path, doc = sphere_dataset(tmp_path, 3)
    doc["frames"] = doc["frames"][::-1] + [dict(doc["frames"][0], file_path="images/gone_1.png"),
                                           dict(doc["frames"][0], file_path="images/gone_2")]  # fmt: skip
    doc["frames"][0]["file_path"] = "images/r_2"  # no extension: instant-ngp tries its image extensions
    with caplog.at_level(logging.WARNING, logger="holoscope"):
        data = load_dataset(write_doc(tmp_path, doc))
    assert [f.path for f in data.frames] == ["images/r_0.png", "images/r_1.png", "images/r_2"]
    assert data.skipped == ["images/gone_1.png", "images/gone_2"]
    assert len([r for r in caplog.records if "no image" in r.getMessage()]) == 1
    doc["frames"] = [dict(doc["frames"][0], file_path="images/none.png")]
    with pytest.raises(InvalidArgument, match="none of the frames"):
        load_dataset(write_doc(tmp_path, doc))


@pytest.mark.parametrize("change, error, match", [
    (lambda d: d.pop("frames"), CorruptStream, "no frames"),
    (lambda d: d.update(frames=[]), CorruptStream, "no frames"),
    (lambda d: d.update(frames="x"), CorruptStream, "no frames"),
    (lambda d: d["frames"][0].pop("transform_matrix"), CorruptStream, "transform_matrix"),
    (lambda d: d["frames"][0].pop("file_path"), CorruptStream, "file_path"),
    (lambda d: d["frames"][0].update(transform_matrix=[[1, 0, 0]]), CorruptStream, "matrix"),
    (lambda d: d["frames"][0]["transform_matrix"][0].__setitem__(3, float("nan")), CorruptStream, "finite"),
    (lambda d: d["frames"][0]["transform_matrix"][1].__setitem__(0, float("inf")), CorruptStream, "finite"),
    (lambda d: d["frames"][0].update(transform_matrix=[[0] * 4] * 4), CorruptStream, "degenerate"),
    (lambda d: d.update(aabb_scale=3), CorruptStream, "power of two"),
    (lambda d: d.update(aabb_scale=1 << 20), CorruptStream, "power of two"),
    (lambda d: d.update(aabb_scale="4"), CorruptStream, "integer"),
    (lambda d: d.pop("camera_angle_x"), CorruptStream, "focal"),
    (lambda d: d.update(fl_x=1e300), CorruptStream, "absurd"),
    (lambda d: d.update(fl_x=-3.0), CorruptStream, "positive"),
    (lambda d: d.update(w=0, cx=3.0), CorruptStream, "positive"),
    (lambda d: d.update(camera_angle_x=4.0), CorruptStream, "field of view"),
    (lambda d: d.update(scale=0), CorruptStream, "positive"),
    (lambda d: d.update(offset=[1, 2]), CorruptStream, "offset"),
    (lambda d: d.update(up="y"), CorruptStream, "up"),
    (lambda d: d.update(is_fisheye=True), InvalidArgument, "fisheye"),
])  # fmt: skip
def test_hostile_transforms_are_refused(tmp_path, change, error, match):
    _, doc = sphere_dataset(tmp_path, 2)
    change(doc)
    with pytest.raises(error, match=match):
        load_dataset(write_doc(tmp_path, json.dumps(doc).replace("Infinity", "1e999")))


def test_hostile_files_are_refused(tmp_path, monkeypatch):
    _, doc = sphere_dataset(tmp_path, 2)
    for text in ("{not json", "[1, 2]", "\xff\xfe"):
        (tmp_path / "transforms.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(CorruptStream):
            load_dataset(tmp_path / "transforms.json")
    monkeypatch.setattr(ds, "MAX_FRAMES", 1)
    with pytest.raises(CorruptStream, match="frames"):
        load_dataset(write_doc(tmp_path, doc))
    monkeypatch.setattr(ds, "MAX_FRAMES", 100)
    monkeypatch.setattr(ds, "MAX_PICTURE_SIDE", 8)  # an absurdly large picture, as far as the reader knows
    with pytest.raises(InvalidArgument, match="picture"):
        load_dataset(write_doc(tmp_path, doc))
    monkeypatch.setattr(ds, "MAX_PICTURE_SIDE", 1 << 15)
    write_png(tmp_path / "images" / "r_1.png", np.zeros((10, 12, 4), np.uint8))
    with pytest.raises(InvalidArgument, match="one size"):
        load_dataset(write_doc(tmp_path, doc))
    (tmp_path / "images" / "r_1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises((CorruptStream, ds.FormatNotRecognized)):
        load_dataset(write_doc(tmp_path, doc))
    with pytest.raises(InvalidArgument):
        load_dataset(write_doc(tmp_path, doc), downscale=0)


# -- rays, steps, grid -------------------------------------------------------------------------------


def test_undistortion_inverts_the_opencv_lens():
    k = torch.tensor([[0.0578, -0.0805, -0.00098, 0.00016]]).double().expand(200, 4)
    x, y = torch.rand(200, dtype=torch.float64) - 0.5, torch.rand(200, dtype=torch.float64) - 0.5
    xd, yd = distort(x, y, k)
    ux, uy = undistort(xd, yd, k)
    assert torch.allclose(ux, x, atol=1e-9) and torch.allclose(uy, y, atol=1e-9)


def test_the_stepping_lattice_is_instant_ngps():
    t = torch.tensor([0.0, 0.2, 0.5, 1.0, 3.0], dtype=torch.float64)
    cone = Stepping(1 / 256)
    back = cone.frm(cone.to(t))
    assert torch.allclose(back, t, atol=1e-9)
    dt = cone.frm(cone.to(t) + 1) - t
    expected = torch.clamp(t * (math.exp(math.log1p(1 / 256)) - 1), min=MIN_STEP)  # t * cone past sqrt(3)/1024
    assert torch.allclose(dt[2:], expected[2:], rtol=1e-6)
    assert torch.allclose(dt[:2], torch.full((2,), MIN_STEP, dtype=torch.float64))
    flat = Stepping(0.0)
    assert torch.allclose(flat.frm(flat.to(t) + 1) - t, torch.full_like(t, MIN_STEP))


def test_marching_keeps_lattice_points_in_occupied_cells_and_compositing_is_alpha():
    occupancy = torch.zeros(GRID_CELLS, dtype=torch.bool)
    occupancy.view(128, 128, 128)[60:68, :, :] = True  # a slab of cells across x
    o = torch.tensor([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near, far = aabb_intersect(o, d, 0.0, 1.0)
    assert torch.allclose(near, torch.full((2,), 0.5)) and torch.allclose(far, torch.full((2,), 1.5))
    s = march(o, d, near, far, occupancy, 0, Stepping(0.0), None)
    x = (o[s.ray] + s.t[:, None] * d[s.ray])[:, 0]
    assert set(s.ray.tolist()) == {0, 1}
    first = s.ray == 0
    assert x[first].min() >= 60 / 128 - 1e-6 and x[first].max() < 68 / 128
    assert first.sum() == pytest.approx(8 / 128 / MIN_STEP, abs=2)  # every lattice point in the slab
    # the second ray runs along y at x = 0.5, inside the slab all the way
    assert (~first).sum() == pytest.approx(1 / MIN_STEP, abs=2)
    sigma = torch.full((len(s),), 50.0)
    rgb = torch.ones(len(s), 3)
    colour, opacity = composite(sigma, rgb, s, 2)
    expected = 1 - torch.exp(-50.0 * torch.zeros(2).index_add(0, s.ray, s.dt))
    assert torch.allclose(opacity, expected, atol=1e-5) and torch.allclose(colour[:, 0], opacity)


def test_the_density_grid_marks_unseen_cells_and_keeps_a_decaying_maximum(tmp_path):
    path, _ = sphere_dataset(tmp_path, 1)
    data = load_dataset(path)
    cams = CameraSet(data.frames, data.width, data.height, torch.device("cpu"))
    grid = DensityGrid(1, torch.device("cpu"))
    grid.mark_seen(cams, torch.Generator().manual_seed(0))
    seen = grid.values >= 0
    assert 0.2 * GRID_CELLS < int(seen.sum()) < 0.8 * GRID_CELLS  # one view sees part of the cube: the rest is -1
    assert (grid.values[seen] == 0).all() and not grid.occupancy.any()
    gen = torch.Generator().manual_seed(1)
    grid.evaluate_all(lambda p: torch.full((p.shape[0],), 10.0), gen)  # instant-ngp's first update
    assert torch.allclose(grid.values[seen], torch.full((int(seen.sum()),), 10.0 * MIN_STEP))
    assert grid.occupied_fraction() == pytest.approx(float(seen.float().mean()))  # above the mean, 0 elsewhere
    grid.update(lambda p: torch.zeros(p.shape[0]), grid.n_seen, 0, gen, decay=0.5)  # a whole sweep
    assert torch.allclose(grid.values[seen], torch.full((int(seen.sum()),), 5.0 * MIN_STEP))
    assert (grid.values[~seen] == -1).all()
    expected = bitfield_from_density(grid.values.numpy(), 1)
    assert torch.equal(grid.occupancy, torch.from_numpy(np.ascontiguousarray(expected).reshape(-1)))
    assert [update_interval(s) for s in (0, 15, 16, 40, 255, 256, 10_000)] == [1, 1, 1, 2, 15, 16, 16]


def test_views_are_held_out_every_eighth():
    assert split_views(20, 8) == ([i for i in range(20) if i % 8], [0, 8, 16])
    assert split_views(5, 0) == ([0, 1, 2, 3, 4], []) and split_views(1, 8) == ([0], [])


# -- training ------------------------------------------------------------------------------------------


def constant_colour_psnr(data, held) -> float:
    """The best constant colour's PSNR on the held-out views (over black, as they are scored)."""
    rgba = data.images[held].astype(np.float64) / 255
    target = rgba[..., :3] * rgba[..., 3:4]
    return -10 * math.log10(float(np.mean((target - target.mean(axis=(0, 1, 2))) ** 2)))


SMALL = dict(config=nerf_config(log2_table=14, levels=8, features=2), rays=256, samples=4096, grid_samples=1 << 15)


def test_a_sphere_trains_well_above_a_constant_colour(tmp_path):
    path, _ = sphere_dataset(tmp_path)
    data = load_dataset(path)
    notes = []
    result = fit_nerf(data, steps=80, holdout_every=4, seed=0, **SMALL,
                      progress=lambda done, total, note: notes.append(note))  # fmt: skip
    assert result.held_out == [0, 4, 8] and len(result.view_psnr) == 3
    baseline = constant_colour_psnr(data, result.held_out)  # about 10 dB
    assert result.psnr > baseline + 4, (result.psnr, baseline)  # about 15.5 dB: the sphere's shape is learnt
    assert notes and "PSNR" in notes[-1]
    snap = parse_snapshot(result.document)
    doc = result.document["snapshot"]
    assert snap.mode == "nerf" and doc["training_step"] == 80 and len(doc["nerf"]["dataset"]["xforms"]) == len(data)
    assert len(doc["density_grid_binary"]) == GRID_CELLS * 2  # one cascade of fp16 values
    np.testing.assert_allclose(doc["camera"]["matrix"], data.frames[1].c2w)  # the first training view
    again = render_view(result.document, data, 0)
    rgba = data.images[0] / 255
    psnr = -10 * math.log10(float(np.mean((again - rgba[..., :3] * rgba[..., 3:4]) ** 2)))
    assert psnr == pytest.approx(result.view_psnr[0], abs=1e-4)


def test_nerf_training_is_deterministic_for_a_seed(tmp_path):
    path, _ = sphere_dataset(tmp_path, 1, angle_x=0.25)  # one narrow view sees little of the cube: less grid
    data = load_dataset(path)
    runs = [fit_nerf(data, steps=4, holdout_every=0, seed=s, **SMALL).document["snapshot"] for s in (3, 3, 4)]
    assert bytes(runs[0]["params_binary"]) == bytes(runs[1]["params_binary"])
    assert bytes(runs[0]["density_grid_binary"]) == bytes(runs[1]["density_grid_binary"])
    assert bytes(runs[0]["params_binary"]) != bytes(runs[2]["params_binary"])


def test_bad_training_arguments_are_refused(tmp_path):
    path, _ = sphere_dataset(tmp_path, 2)
    data = load_dataset(path)
    bad = ({"steps": 0}, {"steps": 1, "rays": 0}, {"steps": 1, "samples": 0}, {"steps": 1, "holdout_every": -1},
           {"steps": 1, "grid_samples": 0}, {"steps": 1, "device": "tpu"}, {"steps": 1, "eval_views": -1})
    for kwargs in bad:
        with pytest.raises(InvalidArgument):
            fit_nerf(data, **kwargs)
    with pytest.raises(InvalidArgument, match="NeRF config"):
        fit_nerf(data, steps=1, config=SnapshotConfig(mode="image"))
