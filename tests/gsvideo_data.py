"""Test data for Gaussian video, shared by the tests and the benchmarks in tests/bench.

- :func:`coherent_sequence`: a dynamic sequence as per-frame training leaves it: one cloud (the
  real guitar sample by default) deformed smoothly over time, plus small independent noise on
  every attribute in every frame. Splat i is the same Gaussian in every frame.
- :func:`wave_sequence`: the real PlayCanvas wave flipbook (SOG frames each sorted on its own,
  so splat i is NOT the same Gaussian from frame to frame).
- :func:`write_ply_sequence`: frames to numbered INRIA PLYs.

Real samples come from the shared sample folder ($HOLOSCOPE_SAMPLES, else ``shared/samples``
beside the repository, as tests/conftest.py finds it). When it is absent, :class:`SamplesMissing`
says so; tests ask for conftest's ``samples_dir`` fixture first, which skips with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from holoscope.codecs.builtin import register_builtin_formats
from holoscope.codecs.sequence import discover_frames
from holoscope.core.frames import SplatCloud
from holoscope.core.registry import open_media, writer_for
from holoscope.core.splat_math import quat_multiply

REPO_ROOT = Path(__file__).resolve().parent.parent
FPS = 30.0  # the time base of the motion: frame i is at i / FPS seconds

# The motion (fractions of the scene's robust extent, the diagonal of its 1-99 % bounds): a
# bend wave travelling along the scene's longest axis and a twist about that axis.
BEND_AMPLITUDE = 0.03
TWIST_RADIANS = 0.1
WAVE_HZ = 0.5  # one period every 60 frames: per-frame motion stays well under 1 % of the extent

# Per-frame noise at jitter=1.0 (standard deviations): what independent per-frame training adds.
POSITION_NOISE = 0.002  # of the extent
LOG_SCALE_NOISE = 0.02
ROTATION_NOISE = 0.02  # radians
OPACITY_LOGIT_NOISE = 0.05
SH_DC_NOISE = 0.03
SH_REST_NOISE = 0.01
_OPACITY_EPS = 1e-6  # keeps the logit of opacities of exactly 0 or 1 finite


class SamplesMissing(FileNotFoundError):
    """The shared sample folder (or a file in it) is not there."""


def samples_dir() -> Path:
    """The shared sample folder, found the way tests/conftest.py finds it."""
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "samples"
    if not path.is_dir():
        raise SamplesMissing("sample folder not found: set HOLOSCOPE_SAMPLES or place shared/samples "
                             "beside the repository")
    return path


def _sample(*parts: str) -> Path:
    path = samples_dir().joinpath(*parts)
    if not path.exists():
        raise SamplesMissing(f"sample {'/'.join(parts)} not found in {path.parent}")
    register_builtin_formats()  # idempotent; benchmarks are plain scripts
    return path


def guitar() -> SplatCloud:
    """The real guitar sample (PlayCanvas compressed PLY, 90,854 splats, SH degree 0)."""
    return open_media(_sample("splats", "guitar.compressed.ply")).frame(0)


# Quaternions (w, x, y, z) -----------------------------------------------------------------
def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """[N, 4] quaternions for rotations by ``angle`` [N] about unit ``axis`` ([3] or [N, 3])."""
    half = angle / 2
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], axis=1)


# The coherent sequence ---------------------------------------------------------------------
def _deformed(source: SplatCloud, t: float, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and quats of ``source`` at time ``t``: twisted about, then bent across, the longest
    axis of its bounds, each Gaussian turned with the local rotation of the material around it."""
    a = int(np.argmax(hi - lo))
    b, c = (a + 1) % 3, (a + 2) % 3  # (a, b, c) right-handed: e_a x e_b = e_c
    e = np.eye(3)
    length = float(hi[a] - lo[a]) or 1.0
    centre = (lo + hi) / 2
    p = source.means.astype(np.float64) - centre
    phase = 2 * np.pi * ((source.means[:, a] - lo[a]) / length - WAVE_HZ * t)  # one wavelength along a
    # Twist: a rigid turn of each cross-section by theta about the axis.
    theta = TWIST_RADIANS * np.cos(phase)
    cos, sin = np.cos(theta), np.sin(theta)
    twisted = p.copy()
    twisted[:, b], twisted[:, c] = cos * p[:, b] - sin * p[:, c], sin * p[:, b] + cos * p[:, c]
    # Bend: displacement along b; a material line along a tilts by atan(du/dx_a) towards b.
    amplitude = BEND_AMPLITUDE * float(np.linalg.norm(hi - lo))
    twisted[:, b] += amplitude * np.sin(phase)
    tilt = np.arctan(amplitude * 2 * np.pi / length * np.cos(phase))
    turn = quat_multiply(_axis_angle(e[c], tilt), _axis_angle(e[a], theta))
    return twisted + centre, quat_multiply(turn, source.quats.astype(np.float64))


def _random_rotations(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    axis = rng.normal(size=(n, 3))
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
    return _axis_angle(axis, rng.normal(0.0, sigma, n))


def coherent_sequence(frames: int = 30, *, source: SplatCloud | None = None, seed: int = 0,
                      jitter: float = 1.0) -> list[SplatCloud]:  # fmt: skip
    """``frames`` clouds: ``source`` (the guitar sample by default) deformed smoothly in time
    (a travelling bend of a few % of its extent and a twist), plus independent per-frame noise
    (``jitter`` times the module's *_NOISE levels) on positions, log-scales, rotation angles,
    opacities (in logit space) and every SH coefficient. Higher SH bands are not rotated with
    the Gaussians (per-frame training would not keep them consistent either).

    Index correspondence holds (splat i is one Gaussian throughout), the count is constant and
    the result is deterministic for ``seed``.
    """
    source = guitar() if source is None else source
    lo, hi = source.robust_bounds()
    extent = float(np.linalg.norm(hi - lo)) or 1.0
    n = source.count
    opacity = np.clip(source.opacities.astype(np.float64), _OPACITY_EPS, 1 - _OPACITY_EPS)
    logit = np.log(opacity / (1 - opacity))
    log_scales = np.log(source.scales.astype(np.float64))
    out = []
    for i in range(frames):
        rng = np.random.default_rng((seed, i))  # frame i does not depend on how many come before
        means, quats = _deformed(source, i / FPS, lo, hi)
        means += rng.normal(0.0, jitter * POSITION_NOISE * extent, (n, 3))
        quats = quat_multiply(_random_rotations(rng, n, jitter * ROTATION_NOISE), quats)
        quats /= np.linalg.norm(quats, axis=1, keepdims=True)
        scales = np.exp(log_scales + rng.normal(0.0, jitter * LOG_SCALE_NOISE, (n, 3)))
        opacities = 1 / (1 + np.exp(-(logit + rng.normal(0.0, jitter * OPACITY_LOGIT_NOISE, n))))
        sh = source.sh.astype(np.float64)
        sh[:, :1] += rng.normal(0.0, jitter * SH_DC_NOISE, (n, 1, 3))
        sh[:, 1:] += rng.normal(0.0, jitter * SH_REST_NOISE, (n, sh.shape[1] - 1, 3))
        out.append(SplatCloud(means.astype(np.float32), scales.astype(np.float32), quats.astype(np.float32),
                              opacities.astype(np.float32), sh.astype(np.float32),
                              {"name": f"coherent frame {i + 1}"}))  # fmt: skip
    return out


# Real sequences and files ------------------------------------------------------------------
def wave_sequence(frames: int | None = None) -> list[SplatCloud]:
    """The first ``frames`` (all 200 by default) frames of the real wave SOG flipbook, in
    natural order: 4,225 splats each, each frame sorted on its own."""
    paths = discover_frames(_sample("splat-sequences", "wave"))
    return [open_media(path).frame(0) for path in paths[:frames]]


def write_ply_sequence(frames: Iterable[SplatCloud], folder: str | os.PathLike) -> list[Path]:
    """Write ``0001.ply``, ``0002.ply``, ... (INRIA PLY, the registry's writer) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    register_builtin_formats()
    paths = []
    for i, cloud in enumerate(frames):
        path = folder / f"{i + 1:04d}.ply"
        _, write = writer_for(path, "ply")
        write(cloud, path)
        paths.append(path)
    return paths
