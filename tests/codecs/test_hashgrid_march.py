"""NeRF ray marching with instant-ngp's rules, on analytic snapshots whose picture is known: the
stepping space, a glowing sphere where the camera model puts it, fog whose opacity is
1 - exp(-density * n * dt) blended over the background in linear light, empty-space skipping and
early termination that change nothing visible but cut the samples evaluated, cascades, and a
brute-force dense-sampling reference with the same dt rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from holoscope.codecs.hashgrid.cameras import camera_rays, scene_transform  # noqa: E402
from holoscope.codecs.hashgrid import occupancy as occ  # noqa: E402
from holoscope.codecs.hashgrid.neural import march as march_module  # noqa: E402
from holoscope.codecs.hashgrid.neural.density_grid import (OccupancyGrid, empty_radius, pooled_closure,  # noqa: E402
                                                           skip_radius)  # fmt: skip
from holoscope.codecs.hashgrid.neural.field import FieldLayout, NerfField  # noqa: E402
from holoscope.codecs.hashgrid.neural.march import (MAX_STEP, MIN_STEP, Marcher, MarchStats, RenderBox,  # noqa: E402
                                                    Stepping, cone_angle_of, over_background)  # fmt: skip
from holoscope.codecs.hashgrid.neural.network import parameters  # noqa: E402
from holoscope.codecs.hashgrid.neural.renderer import SceneRenderer  # noqa: E402
from holoscope.codecs.hashgrid.occupancy import bitfield_from_density  # noqa: E402
from holoscope.core.errors import Cancelled  # noqa: E402
from tests.hashgrid_data import analytic_nerf, camera_at, impact_parameters, l2s, s2l  # noqa: E402


def marcher_of(snap, **kw):
    field = NerfField(FieldLayout.of(snap), parameters(snap))
    return field, Marcher(field, OccupancyGrid.of(snap), RenderBox.of(snap), cone_angle_of(snap.aabb_scale), **kw)


def rays_of(camera, snap):
    origin, dirs = camera_rays(camera, scene_transform(snap))
    d = torch.from_numpy(dirs.reshape(-1, 3))
    return torch.from_numpy(origin).expand_as(d), d


# --- stepping -----------------------------------------------------------------------------------


def test_fixed_steps_in_unit_scenes_and_exponential_steps_between_sqrt3_over_1024_and_sqrt3_elsewhere():
    assert MIN_STEP == pytest.approx(math.sqrt(3) / 1024) and MAX_STEP == pytest.approx(math.sqrt(3))
    assert cone_angle_of(1) == 0 and cone_angle_of(2) == cone_angle_of(16) == 1 / 256
    t = torch.tensor([0.0, 0.01, 0.5, 3.0, 100.0, 2000.0])
    np.testing.assert_allclose(Stepping(0.0).dt(t).numpy(), MIN_STEP)
    s = Stepping(1 / 256)
    dt = s.dt(t).numpy()
    # calc_dt = from(to(t) + 1) - t: t * c in the middle (t * (1 + c) - t), clamped at either end
    np.testing.assert_allclose(dt[:2], MIN_STEP, rtol=1e-4)
    np.testing.assert_allclose(dt[2:5], t[2:5].numpy() / 256, rtol=2e-3)
    np.testing.assert_allclose(dt[5], MAX_STEP, rtol=1e-4)
    np.testing.assert_allclose(s.from_space(s.to_space(t)).numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


def test_calc_dt_without_its_untaken_branches_is_the_same_float32_arithmetic():
    s = Stepping(1 / 256)
    t = torch.exp(torch.linspace(math.log(s.at) + 1e-4, math.log(s.bt / (1 + s.cone)) - 1e-3, 200001))
    assert torch.equal(s.dt_between(t), s.dt(t))
    assert s.between(0.5, 100.0, 32) and not s.between(0.4, 100.0, 32) and not s.between(0.5, 440.0, 32)
    assert not Stepping(0.0).between(0.5, 1.0, 32)


def _past_cell(stepping, t, pos, dirs, mip):
    """instant-ngp's advance_to_next_voxel: whole steps (at least one) to just past the boundary of
    the cell of cascade ``mip`` the point is in (DDA on 128 / 2^mip cells per unit)."""
    res = torch.ldexp(torch.full_like(t, 128.0), -mip.to(torch.int32))[:, None]
    p = res * (pos - 0.5)
    side = torch.floor(p + 0.5 + 0.5 * torch.copysign(torch.ones_like(dirs), dirs))
    dist = torch.nan_to_num((side - p) / dirs, nan=math.inf).amin(dim=1)
    target = t + (dist / res[:, 0]).clamp_min(0.0)
    n, n_target = stepping.to_space(t), stepping.to_space(target)
    return stepping.from_space(n + torch.ceil((n_target - n).clamp_min(0.5)))


def _instant_ngp_skip(marcher, t, origins, dirs):
    """if_unoccupied_advance_to_next_occupied_voxel transcribed: cell by cell, climbing to the
    coarsest empty cascade around the point (a reference for Marcher.skip_empty)."""
    grid, t, todo = marcher.grid, t.clone(), torch.arange(t.shape[0])
    while todo.numel():
        pos = origins[todo] + dirs[todo] * t[todo, None]
        gone = (t[todo] >= 16384) | ~marcher.contains(pos)
        t[todo[gone]] = 16384.0
        mip = grid.cascade_of(pos)
        empty = ~gone & ~grid.occupied_at(pos, mip)
        todo, pos, mip = todo[empty], pos[empty], mip[empty]
        for _ in range(grid.max_cascade):
            up = (mip < grid.max_cascade) & ~grid.occupied_at(pos, (mip + 1).clamp_max(grid.max_cascade))
            mip = mip + up.to(mip.dtype)
        t[todo] = _past_cell(marcher.stepping, t[todo], pos, dirs[todo], mip)
    return t


def test_the_device_grid_looks_points_up_as_the_numpy_layout_does():
    rng = np.random.default_rng(7)
    bits = rng.random((3, 128, 128, 128)) < 0.3
    grid = OccupancyGrid(bits, 2)
    points = rng.uniform(-1.6, 2.6, (5000, 3)).astype(np.float32)
    m = occ.cascade_of(points, 2)
    cells, inside = occ.cell_of(points, m)
    c = np.clip(cells, 0, 127)
    want = inside & bits[m, c[:, 0], c[:, 1], c[:, 2]]
    np.testing.assert_array_equal(grid.occupied(torch.from_numpy(points)).numpy(), want)


def test_the_empty_radius_is_the_largest_empty_cube_around_a_cell():
    rng = np.random.default_rng(8)
    occupied = rng.random((1, 12, 12, 12)) < 0.01
    radius = empty_radius(occupied, limit=5)
    padded = np.pad(occupied[0], 6, constant_values=True)  # outside the grid counts as occupied
    for x, y, z in rng.integers(0, 12, (60, 3)):
        if occupied[0, x, y, z]:
            continue
        r = 0
        while r < 5 and not padded[x + 6 - r - 1 : x + 6 + r + 2, y + 6 - r - 1 : y + 6 + r + 2,
                                   z + 6 - r - 1 : z + 6 + r + 2].any():  # fmt: skip
            r += 1
        assert radius[0, x, y, z] == r, (x, y, z)


def test_the_skip_radius_cube_is_empty_in_every_cascade_and_exact_up_to_7():
    """Outside a cascade that another encloses counts as occupied; outside the outermost, as empty.
    Radii past 7 come from the pooled grid: a lower bound, never more than the empty cube."""
    rng = np.random.default_rng(9)
    values = (rng.random(3 * 128**3) < 2e-5).astype(np.float32)
    occupied = pooled_closure(bitfield_from_density(values, 3))
    radius = skip_radius(occupied)
    assert radius.max() > 7
    for m in range(3):
        padded = np.pad(occupied[m], 128, constant_values=m < 2)
        cells = np.argwhere(~occupied[m])
        for x, y, z in cells[rng.choice(len(cells), 150, replace=False)]:
            r = int(radius[m, x, y, z])
            x, y, z = x + 128, y + 128, z + 128
            assert not padded[x - r : x + r + 1, y - r : y + r + 1, z - r : z + r + 1].any(), (m, x, y, z, r)
            exact = 0
            while exact < 7 and not padded[x - exact - 1 : x + exact + 2, y - exact - 1 : y + exact + 2,
                                            z - exact - 1 : z + exact + 2].any():  # fmt: skip
                exact += 1
            assert r >= exact, (m, x, y, z, r, exact)


def test_the_marchs_lookup_table_agrees_with_occupied_at_and_the_radius():
    rng = np.random.default_rng(10)
    bits = rng.random((3, 128, 128, 128)) < 0.01
    grid = OccupancyGrid(bits, 2)
    points = torch.from_numpy(rng.uniform(-2.0, 3.0, (20000, 3)).astype(np.float32))
    points[:500] = torch.from_numpy(rng.integers(-140, 140, (500, 3)) / 128 + 0.5).float()  # on cell faces
    code, _, cell, mip = grid.lookup(points.T.contiguous())
    np.testing.assert_array_equal((code == 0).numpy(), grid.occupied(points).numpy())
    np.testing.assert_array_equal(mip.numpy(), grid.cascade_of(points).numpy())
    cells, flat, inside = grid.cells(points, grid.cascade_of(points))
    np.testing.assert_array_equal(cell.T[inside].numpy(), cells[inside].numpy())
    empty = inside & (code != 0)
    np.testing.assert_array_equal(code[empty].numpy() - 1, grid.radius[flat[empty]].numpy())
    assert np.all(code[~inside].numpy() == 1)  # outside the grid: empty, radius 0


def test_a_ray_in_an_empty_cell_moves_whole_steps_to_just_past_its_boundary():
    s = Stepping(0.0)
    origin, d, t = torch.tensor([[0.0, 0.3, 0.3]]), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0.101])
    t_new = _past_cell(s, t, origin + d * t[:, None], d, torch.tensor([0])).item()  # cell 12 ends at 0.1015625
    assert (t_new - 0.101) / MIN_STEP == pytest.approx(1, abs=1e-3)
    t_far = _past_cell(s, t, origin + d * t[:, None], d, torch.tensor([2])).item()  # cascade 2: cells of 1/32
    assert t_far >= 0.125 > t_far - MIN_STEP
    assert (t_far - 0.101) / MIN_STEP == pytest.approx(round((t_far - 0.101) / MIN_STEP), abs=1e-3)


@pytest.mark.parametrize("aabb_scale", [1, 4])
def test_skipping_lands_where_instant_ngps_cell_walk_lands(aabb_scale):
    """The first lattice point in an occupied cell is where the walk through empty cells stops."""
    rng = np.random.default_rng(aabb_scale)
    cascades = 3 if aabb_scale == 4 else 1
    values = (rng.random(cascades * 128**3) < 3e-3).astype(np.float32)  # sparse cells, pooled upwards
    s = float(aabb_scale)
    box = RenderBox(np.full(3, 0.5 - s / 2), np.full(3, 0.5 + s / 2))
    grid = OccupancyGrid(bitfield_from_density(values, cascades), cascades - 1)
    marcher = Marcher(None, grid, box, cone_angle_of(aabb_scale))  # no field: skipping only
    n = 300
    origins = torch.from_numpy(rng.uniform(0.5 - s / 2, 0.5 + s / 2, (n, 3))).float()
    dirs = torch.from_numpy(rng.normal(size=(n, 3))).float()
    dirs[:20, 1:] = 0.0  # axis-parallel rays too
    dirs /= dirs.norm(dim=1, keepdim=True)
    t = torch.full((n,), 1e-6)
    got = marcher.skip_empty(t, origins, dirs)
    want = _instant_ngp_skip(marcher, t, origins, dirs)
    assert (want < 16384).sum() > 20 and (want == 16384).sum() > 20
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5)


def test_skipping_inside_a_render_box_larger_than_the_occupied_cells_lands_where_the_walk_lands():
    """Occupied cells well inside the box: the march then needs no box test on its points."""
    rng = np.random.default_rng(5)
    values = np.zeros(3 * 128**3, np.float32)
    ball = rng.random(128**3) < 0.02
    cells = np.stack(np.meshgrid(*[np.arange(128)] * 3, indexing="ij"), -1).reshape(-1, 3)
    values[:128**3] = occ.grid_to_morton((ball & (np.abs(cells - 70).max(1) < 30)).reshape(128, 128, 128))
    box = RenderBox(np.full(3, -1.5), np.full(3, 2.5))
    grid = OccupancyGrid(bitfield_from_density(values, 3), 2)
    marcher = Marcher(None, grid, box, cone_angle_of(4))
    assert not marcher._exact_box
    n = 400
    origins = torch.from_numpy(rng.uniform(-1.5, 2.5, (n, 3))).float()
    towards = torch.from_numpy(rng.uniform(0.3, 0.8, (n, 3))).float() - origins  # most rays cross the cells
    dirs = towards / towards.norm(dim=1, keepdim=True)
    t = torch.full((n,), 1e-6)
    got = marcher.skip_empty(t, origins, dirs)
    want = _instant_ngp_skip(marcher, t, origins, dirs)
    assert (want < 16384).sum() > 50 and (want == 16384).sum() > 20
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5)


# --- the picture --------------------------------------------------------------------------------


@pytest.mark.parametrize("grid, params_type", [("L8F4", "__half"), ("L16F2", "float")])
def test_the_analytic_sphere_renders_where_the_camera_model_puts_it(grid, params_type):
    scene = analytic_nerf(grid, params_type=params_type)
    snap = scene.snapshot
    cam = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 48, 40, 40.0)
    renderer = SceneRenderer(snap, device="cpu")
    image = renderer.render(cam, background=(0.2, 0.4, 0.6))
    b = impact_parameters(cam, snap, scene.centre)
    # opacity 1/2 where the optical depth exp(K (R - b)) sqrt(2 pi b / K) is ln 2: ~0.006 inside R
    assert np.allclose(image[b < scene.radius - 0.02], scene.colour, atol=2e-4)  # colour inside (sigmoid, sRGB)
    assert np.array_equal(image[b > scene.radius + 0.01], np.broadcast_to(np.float32([0.2, 0.4, 0.6]), image[b > scene.radius + 0.01].shape)) or \
        np.allclose(image[b > scene.radius + 0.01], [0.2, 0.4, 0.6], atol=2e-5)  # fmt: skip
    assert (b < scene.radius - 0.02).sum() > 100 and (b > scene.radius + 0.01).sum() > 1000
    # half opacity along the middle row, against a black background: about R - 0.006
    _, alpha = marcher_of(snap)[1].march(*rays_of(cam, snap))
    row = alpha.reshape(40, 48)[20].numpy()
    edge = np.argmax(row > 0.5)  # first pixel from the left past half opacity
    b_row = b[20]
    b_half = np.interp(0.5, [row[edge - 1], row[edge]], [b_row[edge - 1], b_row[edge]])
    assert b_half == pytest.approx(scene.radius - 0.006, abs=0.004)


def test_fog_has_opacity_one_minus_exp_density_steps_dt_and_blends_in_linear_light():
    density = 0.9  # optical depth over the unit cube ~0.9: opacity ~0.6
    scene = analytic_nerf("L8F4", fog=math.log(density), params_type="float", background=(0.9, 0.1, 0.3, 1.0))
    snap = scene.snapshot
    cam = camera_at(snap, (0.5, 0.5, 3.0), (0.5, 0.5, 0.5), 9, 9, 10.0)  # the centre pixel looks down NGP -z
    image = SceneRenderer(snap, device="cpu").render(cam)  # the snapshot's own background
    n = math.floor((1.0 - 1e-6) / MIN_STEP) + 1  # samples from z = 1 (entry + 1e-6) to z = 0, step sqrt(3)/1024
    alpha = 1 - math.exp(-density * n * MIN_STEP)
    bg = np.array([0.9, 0.1, 0.3])
    want = l2s(s2l(alpha * scene.colour) + (1 - alpha) * s2l(bg))  # instant-ngp: linear(premultiplied) + linear bg
    np.testing.assert_allclose(image[4, 4], want, atol=3e-4)
    naive = alpha * scene.colour + (1 - alpha) * bg  # blending in sRGB is visibly different
    assert np.abs(naive - want).max() > 0.05


def test_a_semi_transparent_edge_blends_in_linear_light():
    scene = analytic_nerf("L8F4", sharpness=60.0)
    snap = scene.snapshot
    cam = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 24, 24, 40.0)
    r = SceneRenderer(snap, device="cpu")
    black, grey = (r.render(cam, background=bg).astype(np.float64) for bg in ((0, 0, 0), (0.5, 0.5, 0.5)))
    _, alpha = marcher_of(snap)[1].march(*rays_of(cam, snap))
    alpha = alpha.reshape(24, 24).numpy()
    edge = (alpha > 0.15) & (alpha < 0.85)
    assert edge.sum() >= 8
    # linear(grey) - linear(black) = (1 - A) * linear(0.5): the background is added in linear light
    np.testing.assert_allclose((s2l(grey) - s2l(black))[edge], np.repeat((1 - alpha[edge])[:, None] * s2l(0.5), 3, 1),
                               atol=1e-3)  # fmt: skip
    naive = black + (1 - alpha)[..., None] * 0.5  # an sRGB-space blend would be far off
    assert np.abs(naive - grey)[edge].max() > 0.05


def test_empty_space_skipping_and_early_termination_change_nothing_visible_but_cut_samples():
    kw = dict(grid="L8F4", params_type="float")
    cam_at = ((0.5, 0.6, 2.0), (0.5, 0.5, 0.5), 16, 16, 30.0)
    renders, samples = {}, {}
    for occupancy in ("sphere", "none"):
        snap = analytic_nerf(occupancy=occupancy, **kw).snapshot
        r = SceneRenderer(snap, device="cpu")
        renders[occupancy] = r.render(camera_at(snap, *cam_at))
        samples[occupancy] = r.stats.samples
    np.testing.assert_allclose(renders["sphere"], renders["none"], atol=1e-4)
    assert samples["sphere"] * 5 < samples["none"]

    snap = analytic_nerf(**kw).snapshot
    cam = camera_at(snap, *cam_at)
    results = {}
    for mt in (0.01, 0.0):  # instant-ngp's 0.01; 0: never stop early
        stats = MarchStats()
        results[mt] = marcher_of(snap, min_transmittance=mt)[1].march(*rays_of(cam, snap), stats=stats), stats
    (c1, a1), s1 = results[0.01]
    (c0, a0), s0 = results[0.0]
    # stopping past opacity 0.99 divides by it: under a 1/255 step of the displayed colour
    np.testing.assert_allclose(a1.numpy(), a0.numpy(), atol=3e-3)
    shown = [over_background(c, a, (0.2, 0.4, 0.6)).numpy() for c, a in ((c1, a1), (c0, a0))]
    np.testing.assert_allclose(shown[0], shown[1], atol=1 / 255)
    assert s1.samples * 2 < s0.samples and s1.hits == s0.hits > 0


def _reference(field, stepping, origins, dirs, lo, hi):
    """Every sample from entry + 1e-6 to exit with t += calc_dt(t) and no skipping, composited front
    to back until the opacity passes 0.99, then divided by it (all rays step together, masked)."""
    o, d = origins.double().numpy(), dirs.double().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    near, far = np.nanmax(np.minimum(t1, t2), 1), np.nanmin(np.maximum(t1, t2), 1)
    t = torch.from_numpy(np.maximum(near, 0) + 1e-6).float()
    far = torch.from_numpy(np.where(near <= far, far, -1.0))
    colour, trans = torch.zeros(len(t), 3, dtype=torch.float64), torch.ones(len(t), dtype=torch.float64)
    stopped = torch.zeros(len(t), dtype=torch.bool)
    while bool(((t <= far) & ~stopped).any()):
        inside = (t <= far) & ~stopped
        dt = stepping.dt(t)
        sigma, rgb = field(origins + dirs * t[:, None], dirs)
        alpha = torch.where(inside, 1 - torch.exp(-sigma * dt), 0.0).double()
        colour += (alpha * trans)[:, None] * rgb.double()
        trans *= 1 - alpha
        stop = inside & (trans < 0.01)
        colour[stop] /= (1 - trans[stop])[:, None]
        trans[stop] = 0.0
        stopped |= stop
        t = t + dt
    return colour.numpy(), 1 - trans.numpy()


@pytest.mark.parametrize("aabb_scale, centre, radius", [(1, (0.5, 0.5, 0.5), 0.25), (4, (1.4, 0.6, 0.3), 0.5)])
def test_the_march_matches_brute_force_dense_sampling_with_the_same_dt_rule(aabb_scale, centre, radius):
    """Cone angle 0 (unit scene) and 1/256 with three cascades (the sphere in cascade 1)."""
    scene = analytic_nerf("L8F4", params_type="float", aabb_scale=aabb_scale, centre=centre, radius=radius,
                          sharpness=80.0, margin=0.1)  # fmt: skip (density past the margin: < 1e-4 optical depth)
    snap = scene.snapshot
    eye = np.array(centre) + [0.3, 0.4, 2.5]
    cam = camera_at(snap, eye, centre, 24, 24, 30.0)
    origin, dirs = camera_rays(cam, scene_transform(snap), rows=slice(11, 13))  # two rows across the sphere
    dirs = torch.from_numpy(dirs.reshape(-1, 3))
    origins = torch.from_numpy(origin).expand_as(dirs)
    field, marcher = marcher_of(snap)
    stats = MarchStats()
    with torch.inference_mode():
        colour, alpha = marcher.march(origins, dirs, stats=stats)
        box = RenderBox.of(snap)
        ref_c, ref_a = _reference(field, marcher.stepping, origins, dirs, box.lo, box.hi)
    assert ref_a.max() > 0.99 and ((ref_a > 0.05) & (ref_a < 0.95)).sum() >= 4
    kept = ref_a > 0.001  # instant-ngp drops rays that barely hit
    ref_a, ref_c = np.where(kept, ref_a, 0), np.where(kept[:, None], ref_c, 0)
    np.testing.assert_allclose(alpha.numpy(), ref_a, atol=2e-4)
    np.testing.assert_allclose(colour.numpy(), ref_c, atol=2e-4)
    assert stats.samples < 0.5 * stats.rays * 1024 * (1 if aabb_scale == 1 else 0.2)  # empty space was skipped
    if aabb_scale > 1:
        assert OccupancyGrid.of(snap).max_cascade == 2


def test_a_render_polls_cancelled_between_waves():
    snap = analytic_nerf("L8F4", params_type="float").snapshot
    cam = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 16, 16)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        SceneRenderer(snap, device="cpu").render(cam, cancelled=cancelled)
    assert len(calls) == 2


def test_the_render_box_crops_the_scene_and_instant_ngps_empty_default_means_the_whole_aabb():
    inf = float("inf")
    scene = analytic_nerf("L8F4", params_type="float", aabb_scale=2)
    snap = scene.snapshot
    snap.document["snapshot"]["nerf"]["dataset"]["render_aabb"] = {"min": [inf] * 3, "max": [-inf] * 3}
    box = RenderBox.of(snap)
    np.testing.assert_array_equal(box.lo, [-0.5] * 3)
    np.testing.assert_array_equal(box.hi, [1.5] * 3)
    snap.document["snapshot"]["render_aabb"] = {"min": [-9.0, -9.0, -9.0], "max": [0.5, 9.0, 9.0]}  # x <= 0.5
    box = RenderBox.of(snap)
    np.testing.assert_array_equal(box.hi, [0.5, 1.5, 1.5])
    cam = camera_at(snap, (0.5, 0.5, 2.0), (0.5, 0.5, 0.5), 24, 24, 30.0)
    image = SceneRenderer(snap, device="cpu").render(cam, background=(0.0, 0.0, 0.0))
    b = impact_parameters(cam, snap, scene.centre)
    core = b < scene.radius - 0.03
    left = np.zeros_like(core)
    left[:, :11] = True  # NGP x < 0.5 is the left of this view
    assert np.allclose(image[core & left], scene.colour, atol=1e-3)
    right = np.zeros_like(core)
    right[:, 13:] = True
    assert np.all(image[core & right] == 0)


@pytest.mark.parametrize("aabb_scale", [1, 4])
def test_the_picture_does_not_depend_on_the_wave_size_or_the_box_test(aabb_scale):
    """Windows of one point or of 32, and the render box test on every point or on none."""
    snap = analytic_nerf("L8F4", params_type="float", aabb_scale=aabb_scale, sharpness=60.0).snapshot
    cam = camera_at(snap, (0.8, 0.9, 2.0), (0.5, 0.5, 0.5), 20, 16, 30.0)
    rays = rays_of(cam, snap)
    pictures = []
    for wave_samples, exact_box in ((1 << 17, False), (64, False), (1 << 17, True)):
        marcher = marcher_of(snap, wave_samples=wave_samples)[1]
        assert not marcher._exact_box
        marcher._exact_box = exact_box
        with torch.inference_mode():
            colour, alpha = marcher.march(*rays)
        pictures.append(torch.cat([colour, alpha[:, None]], 1))
    assert pictures[0].abs().max() > 0.1
    for other in pictures[1:]:
        np.testing.assert_allclose(other.numpy(), pictures[0].numpy(), atol=1e-5)


def test_a_rotated_render_box_is_tested_on_every_point():
    """A 90 degree turn about z maps the local box [-1, 0] x [0, 1] x [0, 1] onto the unit cube."""
    snap = analytic_nerf("L8F4", params_type="float", occupancy="all", sharpness=60.0).snapshot
    cam = camera_at(snap, (0.8, 0.9, 2.0), (0.5, 0.5, 0.5), 20, 16, 30.0)
    field = NerfField(FieldLayout.of(snap), parameters(snap))
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    plain = Marcher(field, OccupancyGrid.of(snap), RenderBox(np.zeros(3), np.ones(3)), 0.0)
    turned = Marcher(field, OccupancyGrid.of(snap), RenderBox(np.array([-1.0, 0, 0]), np.array([0.0, 1, 1]), turn), 0.0)
    assert turned._exact_box
    with torch.inference_mode():
        (c0, a0), (c1, a1) = plain.march(*rays_of(cam, snap)), turned.march(*rays_of(cam, snap))
    assert a0.max() > 0.5
    np.testing.assert_allclose(a1.numpy(), a0.numpy(), atol=1e-5)
    np.testing.assert_allclose(c1.numpy(), c0.numpy(), atol=1e-5)


def test_a_ray_takes_at_most_march_iter_samples(monkeypatch):
    density = 0.9
    scene = analytic_nerf("L8F4", fog=math.log(density), params_type="float")
    snap = scene.snapshot
    cam = camera_at(snap, (0.5, 0.5, 3.0), (0.5, 0.5, 0.5), 9, 9, 10.0)
    monkeypatch.setattr(march_module, "MARCH_ITER", 50)
    stats = MarchStats()
    _, alpha = marcher_of(snap, wave_samples=9 * 9 * 32)[1].march(*rays_of(cam, snap), stats=stats)
    assert stats.samples <= 50 * 81
    assert alpha[40].item() == pytest.approx(1 - math.exp(-density * 50 * MIN_STEP), rel=1e-4)  # the centre pixel
