"""PlayCanvas's own converter, @playcanvas/splat-transform, as an interoperability oracle.

(a) Files holoscope writes (PLY, SPZ v3 and v4, .splat, SOG) are converted by splat-transform
    to a plain PLY, read here with plyfile (not with holoscope), and must give back holoscope's
    splats.
(b) Files splat-transform writes (SOG, SPZ v3 and v4, compressed PLY, .splat, PLY) from a plain
    PLY open in holoscope (through the registry, so probing is exercised too) with the same
    splats.

Both run on a test-made SH-degree-3 scene, whose values lie within what every format stores,
and on the real sample lod4.ply, whose extremes (log-scales near -21, DC terms above 6, alpha
of 1) are compared where the format can hold them. splat-transform applies no axis change
between these formats, so none is assumed here. SOG and compressed PLY writers reorder splats
(Morton order), so splats are always matched by nearest position, and the match must be
one-to-one.

The tolerances are a few times the largest error measured with splat-transform 3.10.2 and well
below what a wrong axis, a swapped colour channel, a wrong SH layout or a missing activation
produces (see TOLERANCES).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from holoscope.codecs.formats.ply_inria import write_ply
from holoscope.codecs.formats.sog import write_sog
from holoscope.codecs.formats.splat import write_splat
from holoscope.codecs.formats.spz import write_spz
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media

spatial = pytest.importorskip("scipy.spatial", reason="scipy is not installed: splats cannot be matched by position")

SH_C0 = 0.28209479177387814
DEGREE = 3
REST = (DEGREE + 1) ** 2 - 1  # 15 SH coefficients per channel above the DC term


@dataclass
class Splats:
    """Splats in the units formats store: log-scales, alpha in [0, 1], SH coefficients."""

    means: np.ndarray  # [N, 3]
    log_scales: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] unit, w first
    alpha: np.ndarray  # [N]
    dc: np.ndarray  # [N, 3]
    rest: np.ndarray  # [N, REST, 3] coefficient-major, colour innermost (zeros when absent)

    def take(self, idx: np.ndarray) -> Splats:
        return Splats(*(getattr(self, f)[idx] for f in ("means", "log_scales", "quats", "alpha", "dc", "rest")))


def _unit(q: np.ndarray) -> np.ndarray:
    q = q.astype(np.float64)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def from_cloud(cloud: SplatCloud) -> Splats:
    sh = cloud.sh.astype(np.float64)
    rest = np.zeros((cloud.count, REST, 3))
    rest[:, : sh.shape[1] - 1] = sh[:, 1:]
    with np.errstate(divide="ignore"):
        log_scales = np.log(cloud.scales.astype(np.float64))
    return Splats(cloud.means.astype(np.float64), log_scales, _unit(cloud.quats),
                  cloud.opacities.astype(np.float64), sh[:, 0], rest)  # fmt: skip


def from_ply(path: Path) -> Splats:
    """An INRIA-semantics PLY read by property name (splat-transform orders them differently)."""
    v = PlyData.read(str(path))["vertex"].data
    names = set(v.dtype.names)

    def cols(*fields: str) -> np.ndarray:
        return np.stack([np.asarray(v[f], np.float64) for f in fields], axis=1)

    n = len(v)
    rest = np.zeros((n, REST, 3))
    count = sum(1 for name in names if name.startswith("f_rest_")) // 3
    if count:
        # INRIA stores f_rest channel-major: all red coefficients, then green, then blue.
        rest[:, :count] = cols(*(f"f_rest_{i}" for i in range(3 * count))).reshape(n, 3, count).transpose(0, 2, 1)
    with np.errstate(over="ignore"):
        alpha = 1.0 / (1.0 + np.exp(-np.asarray(v["opacity"], np.float64)))  # +inf (alpha 255) -> 1
    return Splats(cols("x", "y", "z"), cols("scale_0", "scale_1", "scale_2"),
                  _unit(cols("rot_0", "rot_1", "rot_2", "rot_3")), alpha,
                  cols("f_dc_0", "f_dc_1", "f_dc_2"), rest)  # fmt: skip


def match_by_position(ref: Splats, got: Splats) -> Splats:
    """``got`` reordered so that splat i is the one nearest to ``ref``'s splat i (one-to-one)."""
    assert len(got.means) == len(ref.means), f"{len(got.means)} splats came back, {len(ref.means)} went in"
    _, idx = spatial.cKDTree(got.means).query(ref.means)
    assert len(np.unique(idx)) == len(idx), (
        f"splats do not match one-to-one by position ({len(idx) - len(np.unique(idx))} collisions): "
        "a wrong axis, order or scale of positions")  # fmt: skip
    return got.take(idx)


@dataclass(frozen=True)
class Tolerance:
    """Largest allowed errors; ``*_clip`` are the ranges the format can hold (both sides clipped)."""

    pos: float  # absolute, as a fraction of the scene's largest extent
    log_scale: float
    quat: float  # max |q - r| over components, q and -q being the same rotation
    alpha: float
    dc: float
    rest: float | None  # None: the format keeps no higher SH bands
    rest_rms: float | None = None
    log_scale_clip: tuple[float, float] = (-math.inf, math.inf)
    dc_clip: tuple[float, float] = (-math.inf, math.inf)
    rest_clip: tuple[float, float] = (-math.inf, math.inf)


# Errors measured with splat-transform 3.10.2 are in the notes above each entry (largest over
# both scenes and both directions; positions as a fraction of the scene's extent). A wrong or
# mirrored axis moves splats by a sizeable fraction of the scene; a swapped colour channel changes
# dc by ~1; a missing exp or sigmoid by ~1 or more; a channel-major versus coefficient-major SH
# mix-up by ~0.5. test_every_tolerance_catches_a_real_mistake checks that each tolerance does.
_DC_SPLAT = (-0.5 / SH_C0, 0.5 / SH_C0)  # .splat stores 0.5 + C0 * dc as a byte in [0, 1]
_DC_SPZ = (-0.5 / 0.15, 0.5 / 0.15)  # SPZ stores 0.5 + 0.15 * dc as a byte
TOLERANCES = {
    # measured:           pos 0       log_scale 3e-7  quat 3e-8   alpha 1e-7   dc 0      rest 0
    "ply": Tolerance(pos=1e-6, log_scale=1e-5, quat=1e-5, alpha=1e-5, dc=1e-5, rest=1e-5, rest_rms=1e-5),
    # measured:           pos 3.1e-5  log_scale 0.031 quat 0.0013 alpha 0.002  dc 0.013  rest 0.066 (rms 0.035)
    "spz": Tolerance(pos=1e-4, log_scale=0.04, quat=4e-3, alpha=4e-3, dc=0.03, rest=0.1, rest_rms=0.05,
                     log_scale_clip=(-10.0, 5.9), dc_clip=_DC_SPZ, rest_clip=(-1.0, 1.0)),
    # measured:           pos 0       log_scale 2e-7  quat 0.010  alpha 0.004  dc 0.014
    "splat": Tolerance(pos=1e-6, log_scale=1e-5, quat=0.015, alpha=6e-3, dc=0.03, rest=None, dc_clip=_DC_SPLAT),
    # splat-transform's SOG writer (k-means codebooks, SH palette); measured:
    #                       pos 3.1e-5  log_scale 0.043 quat 0.013  alpha 0.004  dc 0.021  rest 0.025 (rms 0.004)
    "sog": Tolerance(pos=2e-4, log_scale=0.1, quat=0.03, alpha=6e-3, dc=0.05, rest=0.1, rest_rms=0.02),
    # holoscope's SOG writer: the same except at lod4's sparse extremes, which its 256-entry
    # codebooks hold more coarsely (log-scale -20.83 -> -20.15, DC 9.90 -> 9.46): measured
    #                       pos 1.5e-5  log_scale 0.68  quat 0.005  alpha 0.002  dc 0.44   rest 0.024 (rms 0.004)
    "sog-holoscope": Tolerance(pos=2e-4, log_scale=1.0, quat=0.03, alpha=6e-3, dc=0.6, rest=0.1, rest_rms=0.02),
    # measured:           pos 4.8e-4  log_scale 0.009 quat 0.0014 alpha 0.002  dc 0.023  rest 0.016 (rms 0.016:
    # SH zeros come back as +1/64); splat-transform clamps log-scales at -20
    "compressed-ply": Tolerance(pos=2e-3, log_scale=0.03, quat=4e-3, alpha=4e-3, dc=0.05, rest=0.04,
                                rest_rms=0.03, log_scale_clip=(-20.0, math.inf), rest_clip=(-4.0, 4.0)),
}  # fmt: skip
# holoscope and splat-transform decoding the same file: float rounding only, except .splat
# rotation bytes, which splat-transform decodes as b / 255 * 2 - 1 and holoscope as (b - 128) / 128
# (the inverse of antimatter15's writer): up to ~0.006 apart after normalising.
_AGREE = Tolerance(pos=1e-6, log_scale=1e-4, quat=1e-4, alpha=1e-4, dc=1e-4, rest=1e-4, rest_rms=1e-4)
DECODERS_AGREE = {fmt: _AGREE for fmt in TOLERANCES} | {"splat": replace(_AGREE, quat=0.01)}


def compare(ref: Splats, got: Splats, fmt: str, tol: Tolerance | None = None) -> dict[str, float]:
    """The errors of ``got`` against ``ref`` (matched by position), asserted against ``tol``
    (default TOLERANCES[fmt])."""
    tol = tol or TOLERANCES[fmt]
    got = match_by_position(ref, got)
    extent = float(np.ptp(ref.means, axis=0).max())
    qerr = np.minimum(np.abs(got.quats - ref.quats).max(axis=1), np.abs(got.quats + ref.quats).max(axis=1))
    errors = {
        "pos": float(np.abs(got.means - ref.means).max()) / extent,
        "log_scale": float(np.abs(np.clip(got.log_scales, *tol.log_scale_clip)
                                  - np.clip(ref.log_scales, *tol.log_scale_clip)).max()),  # fmt: skip
        "quat": float(qerr.max()),
        "alpha": float(np.abs(got.alpha - ref.alpha).max()),
        "dc": float(np.abs(np.clip(got.dc, *tol.dc_clip) - np.clip(ref.dc, *tol.dc_clip)).max()),
    }
    if tol.rest is not None:
        diff = np.clip(got.rest, *tol.rest_clip) - np.clip(ref.rest, *tol.rest_clip)
        errors["rest"] = float(np.abs(diff).max())
        errors["rest_rms"] = float(np.sqrt(np.mean(diff**2)))
    failed = {k: v for k, v in errors.items() if not v <= getattr(tol, k)}
    assert not failed, f"{fmt}: errors beyond tolerance {failed} (all errors: {errors}, tolerances: {tol})"
    return errors


# Scenes --------------------------------------------------------------------------------------


def synthetic_cloud(n: int = 300, seed: int = 8) -> SplatCloud:
    """SH degree 3, values inside what every format stores: positions on a jittered grid (so
    nearest-position matching is unambiguous), anisotropic scales, alpha in (0.05, 0.95), DC
    within .splat's colour range, higher SH bands within SPZ's [-1, 1]."""
    rng = np.random.default_rng(seed)
    side = math.ceil(n ** (1 / 3))
    grid = np.stack(np.meshgrid(*(np.arange(side),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)[:n]
    means = (grid - (side - 1) / 2) * 0.5 + rng.uniform(-0.1, 0.1, (n, 3))
    means *= np.array([1.0, 0.7, 1.3])  # a different extent per axis: a swapped axis shows
    means += np.array([0.3, -1.2, 2.0])
    scales = np.exp(rng.uniform(-5.5, -1.5, (n, 3)))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    opacities = rng.uniform(0.05, 0.95, n)
    sh = np.empty((n, REST + 1, 3))
    sh[:, 0] = rng.uniform(-1.5, 1.5, (n, 3))
    # Higher bands from 16 prototypes plus a little noise: SOG keeps them as a k-means palette,
    # which cannot hold 300 unrelated 45-value vectors, but a layout mix-up still shows.
    prototypes = rng.uniform(-0.8, 0.8, (16, REST, 3))
    sh[:, 1:] = prototypes[rng.integers(0, 16, n)] + rng.uniform(-0.02, 0.02, (n, REST, 3))
    f32 = np.float32
    return SplatCloud(means.astype(f32), scales.astype(f32), quats.astype(f32), opacities.astype(f32), sh.astype(f32))


@pytest.fixture(scope="module", params=["synthetic", "lod4"])
def source(request, tmp_path_factory) -> tuple[str, Path, SplatCloud]:
    """(name, a plain INRIA PLY, the same splats as holoscope holds them)."""
    if request.param == "synthetic":
        cloud = synthetic_cloud()
        path = tmp_path_factory.mktemp("interop") / "synthetic.ply"
        write_ply(cloud, path)
        return "synthetic", path, cloud
    path = request.getfixturevalue("samples_dir") / "splats" / "lod4.ply"
    cloud = open_media(path).frame(0)
    assert cloud.count == 489 and cloud.sh_degree == DEGREE
    return "lod4", path, cloud


# (a) holoscope writes, splat-transform reads -----------------------------------------------

HOLOSCOPE_WRITES = {  # case -> (file name, writer, tolerance key)
    "ply": ("out.ply", write_ply, "ply"),
    "spz-v3": ("out.spz", lambda c, p: write_spz(c, p, version=3), "spz"),
    "spz-v4": ("out.spz", lambda c, p: write_spz(c, p, version=4), "spz"),
    "splat": ("out.splat", write_splat, "splat"),
    "sog": ("out.sog", write_sog, "sog-holoscope"),
}


@pytest.mark.parametrize("case", sorted(HOLOSCOPE_WRITES))
def test_splat_transform_reads_what_holoscope_writes(splat_transform, source, case, tmp_path):
    _, _, cloud = source
    name, writer, fmt = HOLOSCOPE_WRITES[case]
    written = tmp_path / name
    writer(cloud, written)
    back = from_ply(splat_transform(written, tmp_path / "back.ply"))
    compare(from_cloud(cloud), back, fmt)
    # Both decoders must agree on the same bytes, far more tightly than the format's precision.
    own = from_cloud(open_media(written).frame(0))
    compare(own, back, fmt, DECODERS_AGREE[fmt])


# (b) splat-transform writes, holoscope reads -----------------------------------------------

SPLAT_TRANSFORM_WRITES = {  # case -> (file name, splat-transform options, holoscope format)
    "ply": ("out.ply", (), "ply"),
    "compressed-ply": ("out.compressed.ply", (), "compressed-ply"),
    "spz-v4": ("out.spz", (), "spz"),
    "spz-v3": ("out.spz", ("--spz-version", "3"), "spz"),
    "sog": ("out.sog", ("-g", "cpu"), "sog"),  # no GPU k-means here: the CPU path, deterministic
    "splat": ("out.splat", (), "splat"),
}


@pytest.mark.parametrize("case", sorted(SPLAT_TRANSFORM_WRITES))
def test_holoscope_reads_what_splat_transform_writes(splat_transform, source, case, tmp_path):
    _, path, cloud = source
    name, options, fmt = SPLAT_TRANSFORM_WRITES[case]
    written = splat_transform(path, tmp_path / name, *options)
    media = open_media(written)
    assert media.format == fmt
    got = media.frame(0)
    compare(from_ply(path), from_cloud(got), fmt)


# The tolerances themselves ------------------------------------------------------------------

MISTAKES = {  # a mistake a reader or writer could make -> what it does to the splats
    "x and y swapped": lambda s: replace(s, means=s.means[:, [1, 0, 2]]),
    "z mirrored": lambda s: replace(s, means=s.means * [1, 1, -1]),
    "red and blue swapped": lambda s: replace(s, dc=s.dc[:, ::-1]),
    "quaternion x, y, z, w": lambda s: replace(s, quats=s.quats[:, [1, 2, 3, 0]]),
    "quaternion y negated": lambda s: replace(s, quats=s.quats * [1, 1, -1, 1]),
    "scales left as logs": lambda s: replace(s, log_scales=np.log(-s.log_scales)),
    "scales squared": lambda s: replace(s, log_scales=2 * s.log_scales),
    "opacity left as logit": lambda s: replace(s, alpha=np.log(s.alpha / (1 - s.alpha))),
    "opacity inverted": lambda s: replace(s, alpha=1 - s.alpha),
    "SH channel-major": lambda s: replace(s, rest=s.rest.transpose(0, 2, 1).reshape(s.rest.shape)),
    "SH band 1 y and z swapped": lambda s: replace(s, rest=s.rest[:, [1, 0, 2, *range(3, REST)]]),
}


@pytest.mark.parametrize("fmt", sorted(TOLERANCES))
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_every_tolerance_catches_a_real_mistake(fmt, mistake):
    """No splat-transform needed: each format's tolerance must reject each of these mistakes on
    the test-made scene (SH mistakes only where the format keeps SH)."""
    if mistake.startswith("SH") and TOLERANCES[fmt].rest is None:
        pytest.skip(f"{fmt} keeps no higher SH bands")
    ref = from_cloud(synthetic_cloud())
    compare(ref, ref, fmt)  # the scene itself passes
    with pytest.raises(AssertionError):
        compare(ref, MISTAKES[mistake](ref), fmt)
