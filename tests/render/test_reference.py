"""Tests of the CPU reference rasterizer and the INRIA SH basis.

Expected values are computed independently from the INRIA formulas (splat-formats.md §2),
not by calling back into the implementation under test.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from numpy.typing import ArrayLike

from holoscope.core.camera import Camera, look_at
from holoscope.core.frames import SH_C0, SplatCloud
from holoscope.render.reference import project_splats, render_reference
from holoscope.render.sh import SH_C1, SH_C2, SH_C3, eval_sh, sh_to_color

UP = np.array([0.0, 1.0, 0.0])


def make_cloud(
    means: ArrayLike,
    scales: ArrayLike,
    opacities: ArrayLike,
    colors: ArrayLike | None = None,
    quats: ArrayLike | None = None,
    sh: ArrayLike | None = None,
) -> SplatCloud:
    """A cloud from plain lists; ``colors`` are final DC colours, converted to SH DC terms."""
    means = np.asarray(means, np.float32).reshape(-1, 3)
    n = means.shape[0]
    scales = np.broadcast_to(np.asarray(scales, np.float32), (n, 3)).copy()
    if quats is None:
        quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (n, 1))
    quats = np.asarray(quats, np.float32).reshape(n, 4)
    opacities = np.broadcast_to(np.asarray(opacities, np.float32), (n,)).copy()
    if sh is None:
        colors = np.broadcast_to(np.asarray(colors if colors is not None else (1.0, 1.0, 1.0), np.float64), (n, 3))
        sh = ((colors - 0.5) / SH_C0).astype(np.float32)[:, None, :]
    return SplatCloud(means=means, scales=scales, quats=quats, opacities=opacities, sh=np.asarray(sh, np.float32))


def dc_color(cloud: SplatCloud, i: int) -> np.ndarray:
    """The colour the reference should use for a DC-only splat (from the stored float32 DC)."""
    return np.maximum(SH_C0 * cloud.sh[i, 0].astype(np.float64) + 0.5, 0.0)


def front_camera(width: int = 161, height: int = 121, distance: float = 5.0, **kw) -> Camera:
    """Camera on +Z looking at the origin, +Y up; odd sizes put the origin on a pixel centre."""
    return Camera(width, height, 60.0, look_at(np.array([0.0, 0.0, distance]), np.zeros(3), UP), **kw)


def iso_sigma2_px(camera: Camera, sigma: float, depth: float) -> float:
    """2D variance (pixels²) of an isotropic splat on the optical axis, dilation included."""
    return (camera.focal * sigma / depth) ** 2 + 0.3


# ---------------------------------------------------------------------------------------------
# Single splat: peak, Gaussian falloff, footprint, background
# ---------------------------------------------------------------------------------------------


def test_single_splat_peak_at_centre_pixel_odd_image() -> None:
    cam = front_camera(161, 121)
    cloud = make_cloud([0, 0, 0], 0.0625, 0.8, colors=(0.9, 0.4, 0.1))
    img = render_reference(cloud, cam)
    assert img.shape == (121, 161, 3) and img.dtype == np.float32
    # Odd image: the mean projects exactly onto pixel (80, 60); power = 0 there.
    np.testing.assert_allclose(img[60, 80], 0.8 * dc_color(cloud, 0), rtol=1e-6)
    # The peak is the brightest pixel.
    assert np.unravel_index(np.argmax(img[..., 0]), img.shape[:2]) == (60, 80)


def test_single_splat_opacity_capped_at_099() -> None:
    cam = front_camera(161, 121)
    cloud = make_cloud([0, 0, 0], 0.0625, 1.0, colors=(0.9, 0.4, 0.1))
    img = render_reference(cloud, cam)
    np.testing.assert_allclose(img[60, 80], 0.99 * dc_color(cloud, 0), rtol=1e-6)


def test_single_splat_even_image_nearest_pixel_and_falloff() -> None:
    cam = front_camera(160, 120)
    sigma, opacity = 0.0625, 0.8
    cloud = make_cloud([0, 0, 0], sigma, opacity, colors=(0.9, 0.4, 0.1))
    img = render_reference(cloud, cam)
    var = iso_sigma2_px(cam, sigma, 5.0)
    # px = f·x/z + W/2 − 0.5 = 79.5, py = 59.5: the mean lies between four pixel centres.
    px, py = 79.5, 59.5
    colour = dc_color(cloud, 0)
    for ix, iy in [(79, 59), (80, 60), (83, 57), (76, 62)]:
        d2 = (ix - px) ** 2 + (iy - py) ** 2
        alpha = min(0.99, opacity * math.exp(-0.5 * d2 / var))
        assert alpha >= 1 / 255
        np.testing.assert_allclose(img[iy, ix], alpha * colour, rtol=1e-5, err_msg=f"pixel {ix},{iy}")
    # Symmetric about the (half-integer) centre.
    np.testing.assert_allclose(img[59, 79], img[60, 80], rtol=1e-6)


def test_footprint_is_the_3_sigma_square() -> None:
    cam = front_camera(161, 121)
    sigma = 0.5  # about 10.5 px: the 3σ square cuts the Gaussian while α is still >= 1/255
    cloud = make_cloud([0, 0, 0], sigma, 1.0)
    proj = project_splats(cloud, cam)
    var = iso_sigma2_px(cam, sigma, 5.0)
    # Isotropic: mid² − det = 0 < 0.1, so λmax = var + sqrt(0.1).
    expected_radius = math.ceil(3 * math.sqrt(var + math.sqrt(0.1)))
    assert proj.radii[0] == expected_radius
    np.testing.assert_allclose(proj.conics[0], [1 / var, 0.0, 1 / var], rtol=1e-9, atol=1e-12)
    img = render_reference(cloud, cam)
    r = expected_radius
    # On the square's edge: drawn with the Gaussian value.
    np.testing.assert_allclose(img[60, 80 + r, 0], math.exp(-0.5 * r * r / var) * dc_color(cloud, 0)[0], rtol=1e-5)
    # One pixel outside: α would still be >= 1/255 (INRIA's tiles would draw it), but the
    # reference stops at the square.
    assert math.exp(-0.5 * (r + 1) ** 2 / var) >= 1 / 255
    assert img[60, 80 + r + 1, 0] == 0 and img[60 - r - 1, 80, 0] == 0
    assert img[60, 80 - r, 0] > 0 and img[60 + r, 80, 0] > 0
    # The square's corners lie outside the ellipse where α < 1/255: skipped.
    assert img[60 + r, 80 + r, 0] == 0


def test_background_where_nothing_is() -> None:
    cam = front_camera(161, 121)
    bg = (0.1, 0.2, 0.3)
    cloud = make_cloud([0, 0, 0], 0.0625, 0.8, colors=(0.9, 0.4, 0.1))
    img = render_reference(cloud, cam, background=bg)
    np.testing.assert_array_equal(img[0, 0], np.float32(bg))
    np.testing.assert_array_equal(img[-1, -1], np.float32(bg))
    # Blended at the peak: C + T·bg.
    np.testing.assert_allclose(img[60, 80], 0.8 * dc_color(cloud, 0) + 0.2 * np.array(bg), rtol=1e-6)


def test_empty_cloud_gives_background() -> None:
    cam = front_camera(32, 24)
    empty = make_cloud(np.zeros((0, 3)), 0.1, np.zeros(0))
    img = render_reference(empty, cam, background=(0.25, 0.5, 1.0))
    assert img.shape == (24, 32, 3) and img.dtype == np.float32
    np.testing.assert_array_equal(img, np.broadcast_to(np.float32([0.25, 0.5, 1.0]), img.shape))
    proj = project_splats(empty, cam)
    assert proj.count == 0 and proj.order().size == 0


# ---------------------------------------------------------------------------------------------
# Culling
# ---------------------------------------------------------------------------------------------


def test_splat_behind_camera_is_culled() -> None:
    cam = front_camera(64, 48)
    cloud = make_cloud([0, 0, 10], 0.5, 1.0, colors=(1, 0, 0))  # camera is at z = 5 looking at -Z
    bg = (0.0, 0.5, 0.0)
    img = render_reference(cloud, cam, background=bg)
    np.testing.assert_array_equal(img, np.broadcast_to(np.float32(bg), img.shape))
    assert not project_splats(cloud, cam).visible[0]


def test_near_plane_cull_is_inclusive() -> None:
    # Camera at the origin looking down -Z; near = 0.25 (exact in binary) so depth == near is exact.
    cam = Camera(64, 48, 60.0, np.eye(4), near=0.25)
    cloud = make_cloud([[0, 0, -0.25], [0, 0, -0.1], [0, 0, -0.5]], 0.01, 1.0)
    proj = project_splats(cloud, cam)
    np.testing.assert_allclose(proj.depths, [0.25, 0.1, 0.5], rtol=1e-7)
    assert proj.visible.tolist() == [False, False, True]
    bg = (0.2, 0.2, 0.2)
    img = render_reference(cloud.subset(np.array([0, 1])), cam, background=bg)
    np.testing.assert_array_equal(img, np.broadcast_to(np.float32(bg), img.shape))
    assert render_reference(cloud.subset(np.array([2])), cam, background=bg).max() > 0.5


def test_offscreen_splat_is_culled() -> None:
    cam = front_camera(64, 48)
    cloud = make_cloud([100, 0, 0], 0.01, 1.0)
    assert not project_splats(cloud, cam).visible[0]


# ---------------------------------------------------------------------------------------------
# Geometry: pixel mapping, orientation, anisotropy, EWA clamp
# ---------------------------------------------------------------------------------------------


def test_pixel_mapping_and_image_orientation() -> None:
    cam = front_camera(160, 120)
    cloud = make_cloud([0.5, 0.75, 0.0], 0.02, 1.0, colors=(1, 1, 1))
    proj = project_splats(cloud, cam)
    f = cam.focal
    # +X world = right, +Y world = up = towards row 0 (CV y = −y_view).
    np.testing.assert_allclose(proj.means2d[0], [f * 0.5 / 5 + 80 - 0.5, f * -0.75 / 5 + 60 - 0.5], rtol=1e-12)
    assert proj.depths[0] == pytest.approx(5.0)
    img = render_reference(cloud, cam)
    row, col = np.unravel_index(np.argmax(img[..., 0]), img.shape[:2])
    assert col == round(proj.means2d[0, 0]) and row == round(proj.means2d[0, 1])
    assert col > 80 and row < 60  # right of centre, in the top half


def test_anisotropic_splat_elongated_along_x() -> None:
    cam = front_camera(161, 121)
    cloud = make_cloud([0, 0, 0], [0.25, 0.03125, 0.03125], 1.0)
    proj = project_splats(cloud, cam)
    a, b, c = proj.conics[0]
    assert a < c and b == pytest.approx(0.0, abs=1e-12)
    img = render_reference(cloud, cam)
    width_x = int(np.count_nonzero(img[60, :, 0]))
    width_y = int(np.count_nonzero(img[:, 80, 0]))
    assert width_x > 3 * width_y

    # Rotating by 90° about Z (w, x, y, z) = (cos 45°, 0, 0, sin 45°) swaps the axes.
    s = math.sqrt(0.5)
    rotated = make_cloud([0, 0, 0], [0.25, 0.03125, 0.03125], 1.0, quats=[s, 0, 0, s])
    img_r = render_reference(rotated, cam)
    assert int(np.count_nonzero(img_r[:, 80, 0])) == width_x
    assert int(np.count_nonzero(img_r[60, :, 0])) == width_y


def test_rotated_covariance_matches_independent_ewa() -> None:
    """Conic of a rotated, off-axis splat against a hand-built J W Σ Wᵀ Jᵀ (+0.3)."""
    eye = np.array([1.0, 2.0, 6.0])
    cam = Camera(160, 120, 50.0, look_at(eye, np.array([0.2, 0.1, 0.0]), UP))
    mean = np.array([0.5, -0.3, 0.4])
    scales = np.array([0.3, 0.1, 0.05])
    axis = np.array([1.0, 2.0, 3.0]) / math.sqrt(14.0)
    angle = 0.7
    quat = np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])
    cloud = make_cloud(mean, scales, 0.5, quats=quat)

    # Rodrigues' formula: independent of the quaternion-to-matrix code.
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    s32 = cloud.scales[0].astype(np.float64)
    sigma = rot @ np.diag(s32**2) @ rot.T
    w2c = np.linalg.inv(cam.camera_to_world)
    w_cv = np.diag([1.0, -1.0, -1.0]) @ w2c[:3, :3]
    p = w_cv @ (cloud.means[0].astype(np.float64) - eye)
    x, y, z = p
    f = cam.focal
    jac = np.array([[f / z, 0, -f * x / z**2], [0, f / z, -f * y / z**2]])  # within the clamp here
    cov = jac @ w_cv @ sigma @ w_cv.T @ jac.T + 0.3 * np.eye(2)
    inv = np.linalg.inv(cov)

    proj = project_splats(cloud, cam)
    assert proj.visible[0]
    np.testing.assert_allclose(proj.conics[0], [inv[0, 0], inv[0, 1], inv[1, 1]], rtol=1e-5)
    np.testing.assert_allclose(proj.means2d[0], [f * x / z + 79.5, f * y / z + 59.5], rtol=1e-9)
    assert proj.depths[0] == pytest.approx(z, rel=1e-6)


def test_ewa_jacobian_clamped_outside_frustum() -> None:
    cam = front_camera(160, 120)
    # 1.3·tan(fovx/2) = 1.3·tan(30°)·4/3 ≈ 1.0008, so x/z = 1.2 is clamped in J. The splat is off
    # screen (not visible) but its conic is still reported.
    depth = 5.0
    x = 1.2 * depth
    cloud = make_cloud([x, 0, 0], [0.05, 0.05, 0.05], 1.0)
    proj = project_splats(cloud, cam)
    f = cam.focal
    lim = 1.3 * cam.tan_half_fov_x
    tx = lim * depth  # the clamped x used in J (the mean itself is not clamped)
    s2 = np.float32(0.05).astype(np.float64) ** 2
    jac = np.array([[f / depth, 0, -f * tx / depth**2], [0, f / depth, 0]])
    cov = s2 * jac @ jac.T + 0.3 * np.eye(2)
    inv = np.linalg.inv(cov)
    np.testing.assert_allclose(proj.conics[0], [inv[0, 0], inv[0, 1], inv[1, 1]], rtol=1e-6)
    assert proj.means2d[0, 0] == pytest.approx(f * 1.2 + 79.5)
    unclamped = np.array([[f / depth, 0, -f * x / depth**2], [0, f / depth, 0]])
    assert not np.allclose(np.linalg.inv(s2 * unclamped @ unclamped.T + 0.3 * np.eye(2))[0, 0], inv[0, 0])


# ---------------------------------------------------------------------------------------------
# Compositing order and early termination
# ---------------------------------------------------------------------------------------------


def test_nearer_splat_dominates_regardless_of_input_order() -> None:
    cam = front_camera(161, 121)
    red_near = ([0, 0, 2.0], (1.0, 0.0, 0.0))  # depth 3
    green_far = ([0, 0, 0.0], (0.0, 1.0, 0.0))  # depth 5
    for first, second in [(red_near, green_far), (green_far, red_near)]:
        cloud = make_cloud([first[0], second[0]], 0.125, 1.0, colors=[first[1], second[1]])
        img = render_reference(cloud, cam)
        # Centre pixel: α = 0.99 for both; red first, then green through T = 0.01.
        np.testing.assert_allclose(img[60, 80], [0.99, 0.99 * 0.01, 0.0], rtol=1e-5, atol=1e-7)
        assert img[60, 80, 0] > 50 * img[60, 80, 1]
    a = render_reference(make_cloud([red_near[0], green_far[0]], 0.125, 1.0, colors=[red_near[1], green_far[1]]), cam)
    b = render_reference(make_cloud([green_far[0], red_near[0]], 0.125, 1.0, colors=[green_far[1], red_near[1]]), cam)
    np.testing.assert_array_equal(a, b)


def test_early_termination_exact_value() -> None:
    cam = front_camera(161, 121)
    # Front to back at the centre pixel (power = 0, so α = min(0.99, o)):
    #   1: α 0.99  -> T 0.01
    #   2: α 0.9   -> T 0.001
    #   3: α 0.99  -> test_T 1e-5 < 1e-4: pixel done, splat 3 NOT added
    #   4: α 0.5   -> would pass the test (T·0.5 = 5e-4) if compositing had continued; must not add.
    colours = [(0.2, 0.4, 0.6), (0.9, 0.1, 0.3), (100.0, 100.0, 100.0), (50.0, 60.0, 70.0)]
    opac = [1.0, 0.9, 1.0, 0.5]
    means = [[0, 0, 3.0], [0, 0, 2.0], [0, 0, 1.0], [0, 0, 0.0]]  # depths 2, 3, 4, 5
    bg = np.array([0.5, 0.25, 1.0])
    cloud = make_cloud(means, 0.125, opac, colors=colours)
    c = [dc_color(cloud, i) for i in range(4)]
    o2 = float(np.float32(0.9))
    expected = 0.99 * c[0] + o2 * (1 - 0.99) * c[1] + (1 - 0.99) * (1 - o2) * bg
    # Reversed input order must give the same pixel.
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        img = render_reference(cloud.subset(np.array(order)), cam, background=bg)
        np.testing.assert_allclose(img[60, 80], expected, rtol=1e-6)


def test_stacked_opaque_splats_stop_after_two() -> None:
    cam = front_camera(161, 121)
    n = 20
    colours = np.linspace(0.1, 3.0, n)[:, None] * np.ones(3)
    means = np.stack([np.zeros(n), np.zeros(n), -0.1 * np.arange(n)], axis=1)  # front to back
    cloud = make_cloud(means, 0.125, 1.0, colors=colours)
    bg = np.array([1.0, 1.0, 1.0])
    img = render_reference(cloud, cam, background=bg)
    # T: 1 -> 0.01 -> 1e-4; the third splat would give 1e-6 < 1e-4, so only two contribute.
    c0, c1 = dc_color(cloud, 0), dc_color(cloud, 1)
    expected = 0.99 * c0 + 0.99 * 0.01 * c1 + 0.01 * 0.01 * bg
    np.testing.assert_allclose(img[60, 80], expected, rtol=1e-6)


def test_values_are_not_clamped_above_one() -> None:
    cam = front_camera(161, 121)
    cloud = make_cloud([0, 0, 0], 0.0625, 1.0, colors=(4.0, -2.0, 0.5))
    img = render_reference(cloud, cam)
    # Colour is clamped at 0 only; the image keeps values above 1.
    np.testing.assert_allclose(img[60, 80], [0.99 * 4.0, 0.0, 0.99 * 0.5], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Spherical harmonics
# ---------------------------------------------------------------------------------------------


def _real_sh_factor(l: int, m: int, cartesian: float) -> float:
    """Coefficient of a real SH basis polynomial from first principles: sqrt(2) (m != 0) x
    K_l^m = sqrt((2l+1)/(4 pi) (l-|m|)!/(l+|m|)!) x ``cartesian`` (the factor that turns
    P_l^|m|(cos t) trig(m phi) into the polynomial the renderer uses), with the
    Condon-Shortley sign (-1)^m that INRIA's code keeps."""
    k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - abs(m)) / math.factorial(l + abs(m)))
    return (-1) ** abs(m) * (math.sqrt(2) if m else 1.0) * k * cartesian


def test_sh_constants() -> None:
    # Cartesian factors: P_1^1 = s; P_2^1 = 3 z s; P_2^2 = 3 s^2 with sin(2 phi) s^2 = 2 x y;
    # P_2^0 = (3 z^2 - 1) / 2 = (2 z^2 - x^2 - y^2) / 2; P_3^3 = 15 s^3 with
    # sin(3 phi) s^3 = y (3 x^2 - y^2); P_3^2 = 15 z s^2 (2 x y z and z (x^2 - y^2));
    # P_3^1 = 3/2 (5 z^2 - 1) s = 3/2 (4 z^2 - x^2 - y^2) s; P_3^0 = z (2 z^2 - 3 x^2 - 3 y^2) / 2.
    assert math.isclose(SH_C0, _real_sh_factor(0, 0, 1.0), rel_tol=1e-15)
    assert math.isclose(SH_C0, 1 / (2 * math.sqrt(math.pi)), rel_tol=1e-15)
    assert math.isclose(SH_C1, -_real_sh_factor(1, 1, 1.0), rel_tol=1e-15)  # the sign sits in eval_sh
    expected_c2 = [
        _real_sh_factor(2, -2, 3 * 2),  # xy
        _real_sh_factor(2, -1, 3),  # yz
        _real_sh_factor(2, 0, 0.5),  # 2z^2 - x^2 - y^2
        _real_sh_factor(2, 1, 3),  # xz
        _real_sh_factor(2, 2, 3),  # x^2 - y^2
    ]
    expected_c3 = [
        _real_sh_factor(3, -3, 15),  # y (3x^2 - y^2)
        _real_sh_factor(3, -2, 15 * 2),  # xyz
        _real_sh_factor(3, -1, 1.5),  # y (4z^2 - x^2 - y^2)
        _real_sh_factor(3, 0, 0.5),  # z (2z^2 - 3x^2 - 3y^2)
        _real_sh_factor(3, 1, 1.5),  # x (4z^2 - x^2 - y^2)
        _real_sh_factor(3, 2, 15),  # z (x^2 - y^2)
        _real_sh_factor(3, 3, 15),  # x (x^2 - 3y^2)
    ]
    assert len(SH_C2) == 5 and len(SH_C3) == 7
    np.testing.assert_allclose(SH_C2, expected_c2, rtol=1e-14, atol=0)
    np.testing.assert_allclose(SH_C3, expected_c3, rtol=1e-14, atol=0)
    # Spot values, so a wrong derivation above cannot hide a wrong table.
    np.testing.assert_allclose([SH_C1, SH_C2[2], SH_C3[3]],
                               [math.sqrt(3 / (4 * math.pi)), math.sqrt(5 / (16 * math.pi)),
                                math.sqrt(7 / (16 * math.pi))], rtol=1e-14)  # fmt: skip


def test_sh_basis_is_orthonormal_on_the_sphere() -> None:
    """Independent of the constants: the 16 basis functions integrate to the identity
    (Gauss-Legendre in z times a uniform grid in phi is exact for these polynomials)."""
    z, wz = np.polynomial.legendre.leggauss(12)
    phi = np.arange(24) * (2 * math.pi / 24)
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - zz**2)
    dirs = np.stack([s * np.cos(pp), s * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    weights = (wz[:, None] * np.full(phi.shape, 2 * math.pi / 24)[None, :]).reshape(-1)
    # Each basis function alone: put coefficient j to one and evaluate (no clamping in eval_sh).
    basis = []
    for j in range(16):
        sh = np.zeros((1, 16, 3))
        sh[0, j, 0] = 1.0
        basis.append(eval_sh(np.repeat(sh, len(dirs), axis=0), dirs)[:, 0])
    basis = np.stack(basis)
    gram = (basis * weights) @ basis.T
    np.testing.assert_allclose(gram, np.eye(16), atol=1e-12)


def test_sh_basis_hand_computed_degree_3() -> None:
    # d = (0.48, 0.6, 0.64) is unit length: 0.2304 + 0.36 + 0.4096 = 1.
    x, y, z = 0.48, 0.6, 0.64
    xx, yy, zz = x * x, y * y, z * z
    c1 = 0.4886025119029199
    expected_basis = [
        0.28209479177387814,
        -c1 * y,
        c1 * z,
        -c1 * x,
        1.0925484305920792 * x * y,
        -1.0925484305920792 * y * z,
        0.31539156525252005 * (2 * zz - xx - yy),
        -1.0925484305920792 * x * z,
        0.5462742152960396 * (xx - yy),
        -0.5900435899266435 * y * (3 * xx - yy),
        2.890611442640554 * x * y * z,
        -0.4570457994644658 * y * (4 * zz - xx - yy),
        0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
        -0.4570457994644658 * x * (4 * zz - xx - yy),
        1.445305721320277 * z * (xx - yy),
        -0.5900435899266435 * x * (xx - 3 * yy),
    ]
    dirs = np.array([[x, y, z]])
    # One coefficient at a time, in a distinct channel pattern, so that index mixups show up.
    for k in range(16):
        sh = np.zeros((1, 16, 3))
        sh[0, k] = (1.0, 2.0, -0.5)
        np.testing.assert_allclose(
            eval_sh(sh, dirs)[0], expected_basis[k] * np.array([1.0, 2.0, -0.5]), rtol=1e-12, err_msg=f"k={k}"
        )
    # Lower degrees use the leading coefficients only.
    rng = np.random.default_rng(1)
    full = rng.normal(size=(1, 16, 3))
    for count in (1, 4, 9, 16):
        expected = np.array(expected_basis[:count]) @ full[0, :count]
        np.testing.assert_allclose(eval_sh(full[:, :count], dirs)[0], expected, rtol=1e-12)


def test_eval_sh_rejects_bad_coefficient_count() -> None:
    with pytest.raises(ValueError):
        eval_sh(np.zeros((1, 5, 3)), np.array([[0.0, 0.0, 1.0]]))


def test_sh_to_color_direction_is_mean_minus_camera() -> None:
    sh = np.zeros((1, 4, 3))
    sh[0, 3] = (1.0, 0.0, 0.0)  # basis −C1·x
    means = np.array([[3.0, 0.0, 0.0]])
    # Camera at the origin: direction +X, so red = 0.5 − C1.
    np.testing.assert_allclose(sh_to_color(sh, means, np.zeros(3))[0], [0.5 - SH_C1, 0.5, 0.5])
    # Camera beyond the mean: direction −X, so red = 0.5 + C1.
    np.testing.assert_allclose(sh_to_color(sh, means, np.array([5.0, 0, 0]))[0], [0.5 + SH_C1, 0.5, 0.5])


def test_sh_degree1_view_dependent_colour_in_render() -> None:
    sh = np.zeros((1, 4, 3), np.float32)
    sh[0, 0] = (0.5, 0.5, 0.5)
    sh[0, 2] = (0.75, -0.5, 0.0)  # basis C1·z
    sh[0, 3] = (0.0, 0.25, 0.5)  # basis −C1·x
    cloud = make_cloud([0, 0, 0], 0.0625, 1.0, sh=sh)
    colours = []
    for eye in ([0.0, 0.0, 5.0], [0.0, 0.0, -5.0], [5.0, 0.0, 0.0]):
        eye = np.array(eye)
        cam = Camera(161, 121, 60.0, look_at(eye, np.zeros(3), UP))
        img = render_reference(cloud, cam)
        d = -eye / np.linalg.norm(eye)  # normalize(mean − campos)
        expected = np.maximum(eval_sh(sh.astype(np.float64), d[None])[0] + 0.5, 0.0)
        # Hand value: DC + C1·z·sh2 − C1·x·sh3.
        hand = SH_C0 * sh[0, 0] + SH_C1 * d[2] * sh[0, 2] - SH_C1 * d[0] * sh[0, 3] + 0.5
        np.testing.assert_allclose(expected, np.maximum(hand, 0.0), rtol=1e-6)
        np.testing.assert_allclose(img[60, 80], 0.99 * expected, rtol=1e-6)
        colours.append(img[60, 80])
    assert not np.allclose(colours[0], colours[1])
    assert not np.allclose(colours[0], colours[2])


# ---------------------------------------------------------------------------------------------
# Scale
# ---------------------------------------------------------------------------------------------


def test_five_thousand_splats_render_quickly() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    means = rng.uniform(-1.5, 1.5, size=(n, 3))
    scales = np.exp(rng.uniform(np.log(0.005), np.log(0.08), size=(n, 3)))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    sh = rng.normal(scale=0.3, size=(n, 16, 3))
    cloud = make_cloud(means, scales, rng.uniform(0.05, 1.0, size=n), quats=quats, sh=sh)
    cam = Camera(160, 120, 60.0, look_at(np.array([0.5, 1.0, 4.0]), np.zeros(3), UP))
    start = time.perf_counter()
    img = render_reference(cloud, cam, background=(0.1, 0.1, 0.1))
    elapsed = time.perf_counter() - start
    assert img.shape == (120, 160, 3) and np.all(np.isfinite(img))
    assert elapsed < 10.0, f"reference render took {elapsed:.2f}s"
    # Deterministic, and the input order does not matter (stable depth sort of distinct depths).
    perm = rng.permutation(n)
    np.testing.assert_allclose(render_reference(cloud.subset(perm), cam, background=(0.1, 0.1, 0.1)), img, atol=1e-6)
