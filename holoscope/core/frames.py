"""Typed frame payloads that flow between stages (demux -> decode -> render).

Arrays are structure-of-arrays numpy; every field documents its shape and dtype. Frames are
treated as immutable once built: stages hand them over and never mutate them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from holoscope.core.errors import InvalidArgument

# Zeroth-order SH basis constant: colour = C0 * sh_dc + 0.5.
SH_C0 = 0.28209479177387814


def sh_coeff_count(degree: int) -> int:
    """Coefficients per colour channel for SH ``degree`` (1, 4, 9, 16)."""
    return (degree + 1) ** 2


def sh_degree_for(coeff_count: int) -> int:
    """Inverse of :func:`sh_coeff_count`; raises for counts that are not a square."""
    degree = int(round(np.sqrt(coeff_count))) - 1
    if degree < 0 or degree > 3 or sh_coeff_count(degree) != coeff_count:
        raise InvalidArgument(f"{coeff_count} SH coefficients per channel is not degree 0-3")
    return degree


@dataclass(frozen=True, eq=False)
class SplatCloud:
    """A static set of 3D Gaussians with activated attributes (INRIA semantics).

    means      [N, 3]    float32  world positions
    scales     [N, 3]    float32  linear standard deviations (exp of the PLY log-scales)
    quats      [N, 4]    float32  unit quaternions, w first
    opacities  [N]       float32  activated opacities in [0, 1]
    sh         [N, K, 3] float32  SH coefficients, K = (degree+1)^2, coefficient-major,
                                  colour innermost; sh[:, 0] is the DC term
    """

    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "scales": (n, 3),
            "quats": (n, 4),
            "opacities": (n,),
        }
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != np.float32:
                raise InvalidArgument(f"SplatCloud.{name} must be float32 {shape}, got {arr.dtype} {arr.shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3 or self.sh.dtype != np.float32:
            raise InvalidArgument(f"SplatCloud.sh must be float32 [N, K, 3], got {self.sh.dtype} {self.sh.shape}")
        sh_degree_for(self.sh.shape[1])

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.means, self.scales, self.quats, self.opacities, self.sh))

    def base_colors(self) -> np.ndarray:
        """View-independent colour [N, 3] from the DC term, clamped at 0 only (as the reference)."""
        return np.maximum(self.sh[:, 0] * SH_C0 + 0.5, 0.0)

    def subset(self, selection: np.ndarray) -> "SplatCloud":
        """A new cloud holding the splats picked by a boolean mask or index array."""
        return SplatCloud(
            means=np.ascontiguousarray(self.means[selection]),
            scales=np.ascontiguousarray(self.scales[selection]),
            quats=np.ascontiguousarray(self.quats[selection]),
            opacities=np.ascontiguousarray(self.opacities[selection]),
            sh=np.ascontiguousarray(self.sh[selection]),
            metadata=dict(self.metadata),
        )

    def with_sh_degree(self, degree: int) -> "SplatCloud":
        """Truncate (or zero-pad) the SH coefficients to ``degree``."""
        k = sh_coeff_count(degree)
        if k <= self.sh.shape[1]:
            sh = np.ascontiguousarray(self.sh[:, :k])
        else:
            sh = np.zeros((self.count, k, 3), np.float32)
            sh[:, : self.sh.shape[1]] = self.sh
        return SplatCloud(self.means, self.scales, self.quats, self.opacities, sh, dict(self.metadata))

    def robust_bounds(self, percentile: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis [lo, hi] of the means, ignoring the outer ``percentile`` % on each side.

        Trained scenes carry far-away floaters; framing on raw min/max would zoom out to them.
        """
        if self.count == 0:
            zero = np.zeros(3, np.float64)
            return zero, zero
        lo = np.percentile(self.means, percentile, axis=0)
        hi = np.percentile(self.means, 100.0 - percentile, axis=0)
        return lo.astype(np.float64), hi.astype(np.float64)


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One decoded picture of a plain video (or a video-coded stream), ready for upload.

    planes        tuple of arrays, one per plane, row 0 at the top:
                  "yuv420p": Y [H, W], U [H/2, W/2], V [H/2, W/2] (sizes rounded up)
                  "yuv444p": Y, U, V each [H, W]
                  "rgb24":   one [H, W, 3] uint8 array (always 8 bits)
                  uint8 when ``bit_depth`` is 8, else uint16 (native byte order)
    bit_depth     bits per sample, 8..16 (8, 10, 12 and 16 in practice; 9 and 14 exist too).
                  Samples are kept exactly as decoded, right-aligned: a 10-bit frame holds
                  0..1023 in uint16, never shifted to 16 bits nor reduced to 8. Range and matrix
                  apply to these code values as ITU-T H.273 defines them for n bits: limited
                  range is 16..235 (luma) / 16..240 (chroma) times 2^(n-8), full range
                  0..2^n-1 with chroma centred at 2^(n-1). A 16-bit frame may also carry
                  fewer significant bits left-aligned (hardware 4:4:4 10-bit output), which
                  has the same meaning as 16-bit samples.
    color_matrix  "bt709" | "bt601" | "bt2020" (YUV -> RGB matrix; ignored for rgb24)
    color_range   "limited" (16-235 luma at 8 bits) | "full" (0-255 at 8 bits)
    pts           presentation time in seconds from the start of the stream
    index         frame number (0-based) within the media
    sample_aspect pixel aspect ratio (display width = width * sample_aspect)
    """

    planes: tuple[np.ndarray, ...]
    pixel_format: str
    width: int
    height: int
    pts: float
    index: int
    color_matrix: str = "bt709"
    color_range: str = "limited"
    sample_aspect: Fraction = Fraction(1)
    bit_depth: int = 8

    @property
    def display_aspect(self) -> float:
        return float(self.width * self.sample_aspect) / self.height


@dataclass(frozen=True)
class FailedFrame:
    """Stands in for a frame of a timed medium that could not be decoded (a damaged file in a
    splat sequence): players show a warning naming it and go on with the next frame."""

    index: int
    message: str  # the one-line error, already naming the file
    nbytes: int = 0


@dataclass(frozen=True, eq=False)
class Frame:
    """The envelope around every payload that flows from a timed medium to a renderer.

    index     frame number (0-based) within the media
    pts       presentation time in seconds from the start of the stream
    duration  seconds the frame is shown (1 / fps for constant-rate media)
    payload   the typed frame: SplatCloud, VideoFrame, or a FailedFrame standing in for one
              that could not be decoded
    device    where the payload lives: "cpu" (numpy), or a torch device ("cuda:0") for
              neural media decoded on a GPU. GL uploads take "cpu" payloads only.

    ``Media.frames_from`` yields these; ``Media.frame(i)`` returns the bare payload. The
    envelope never copies or mutates its payload. When the payload carries its own ``index``
    and ``pts`` (VideoFrame, FailedFrame), :meth:`wrap` takes them from it, so there is one
    source of truth.
    """

    index: int
    pts: float
    duration: float
    payload: object
    device: str = "cpu"

    @classmethod
    def wrap(cls, payload: object, index: int, fps: float, device: str = "cpu") -> "Frame":
        """``payload`` in an envelope: its own ``index`` / ``pts`` when it has them, else
        ``index`` and ``index / fps``; the duration is ``1 / fps`` (0 without a rate)."""
        if isinstance(payload, Frame):
            return payload
        index = int(getattr(payload, "index", index))
        pts = getattr(payload, "pts", None)
        if pts is None:
            pts = index / fps if fps > 0 else 0.0
        return cls(index, float(pts), 1.0 / fps if fps > 0 else 0.0, payload, device)

    @property
    def failed(self) -> bool:
        """Whether the payload is a :class:`FailedFrame` (nothing to show)."""
        return isinstance(self.payload, FailedFrame)

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def end(self) -> float:
        """Presentation time at which the next frame takes over."""
        return self.pts + self.duration

    @property
    def nbytes(self) -> int:
        """The payload's bytes (see :func:`frame_nbytes`)."""
        return frame_nbytes(self.payload)

    def cpu_payload(self) -> object:
        """The payload, checked to live in host memory (what a GL upload needs)."""
        if self.device != "cpu":
            raise ValueError(f"frame {self.index} lives on {self.device}, not in host memory")
        return self.payload


def frame_nbytes(frame: object) -> int:
    """Bytes a decoded frame holds, for decode-ahead memory budgets (an envelope: its payload's)."""
    if isinstance(frame, Frame):
        frame = frame.payload
    nbytes = getattr(frame, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes  # SplatCloud, FailedFrame
    planes = getattr(frame, "planes", None)
    if planes is not None:
        return sum(getattr(p, "nbytes", 0) for p in planes)
    return 0
