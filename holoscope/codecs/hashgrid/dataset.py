"""Training data for hash-grid scenes: pictures read through PyAV, and Instant-NGP / nerfstudio
``transforms.json`` datasets (hashgrid.md §6).

Pictures: the first frame of any still FFmpeg decodes. Float pictures (EXR's ``gbrpf32le`` /
``gbrapf32le``) are linear light; integer ones (PNG, JPEG: 8 or 16 bits) are sRGB-encoded.
Colour is returned in [R, G, B] order with alpha apart.

``transforms.json`` follows instant-ngp's ``nerf_loader`` (see :func:`load_dataset`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holoscope.codecs.hashgrid.cameras import SceneTransform
from holoscope.core import budget
from holoscope.core.errors import CorruptStream, FormatNotRecognized, InvalidArgument
from holoscope.core.files import check_regular, read_limited

log = logging.getLogger("holoscope")

MAX_PICTURE_BYTES = 1 << 30
MAX_PICTURE_SIDE = 1 << 15
MAX_PICTURE_PIXELS = 1 << 28  # 16K x 16K
OPEN_TIMEOUT = 10.0  # seconds: FFmpeg's open and read timeouts


@dataclass
class Picture:
    rgb: np.ndarray  # float32 [H, W, 3]
    alpha: np.ndarray | None  # float32 [H, W] in [0, 1], or None when the picture has none
    linear: bool  # float (linear light, e.g. EXR) rather than sRGB-encoded integers


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """instant-ngp's ``linear_to_srgb``: 12.92 x below 0.0031308, else 1.055 x^(1/2.4) - 0.055."""
    x = np.asarray(x, np.float32)
    return np.where(x < 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055).astype(
        np.float32
    )


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x < 0.04045, x / 12.92, np.power((np.maximum(x, 0.04045) + 0.055) / 1.055, 2.4)).astype(np.float32)


def _is_float(name: str) -> bool:
    return "f32" in name or "f16" in name


def read_picture(path: str | Path, *, what: str = "a picture") -> Picture:
    """The first picture of ``path`` as float RGB (+ alpha), refusing files and sizes past the
    caps and the decode budget before decoding."""
    import av

    st = check_regular(path)
    if st.st_size > MAX_PICTURE_BYTES:
        raise FormatNotRecognized(f"{st.st_size:,} bytes is larger than the pictures holoscope trains on", path=path)
    options = {"max_pixels": str(MAX_PICTURE_PIXELS)}
    try:
        container = av.open(str(path), "r", options=options, metadata_errors="replace",
                            timeout=(OPEN_TIMEOUT, OPEN_TIMEOUT))  # fmt: skip
    except av.FFmpegError as exc:
        raise FormatNotRecognized(f"cannot read as {what}: {exc}", path=path) from None
    try:
        streams = container.streams.video
        if not streams:
            raise FormatNotRecognized(f"holds no picture ({what} was expected)", path=path)
        stream = streams[0]
        w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if w and h:
            _check_size(w, h, path)
            budget.require(w * h * 4 * 4 * 3, what=f"a {w}x{h} picture", path=path)
        try:
            frame = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise CorruptStream(f"cannot decode {what}: {exc}", path=path) from None
        if frame is None:
            raise CorruptStream(f"holds no decodable picture ({what} was expected)", path=path)
        _check_size(frame.width, frame.height, path)
        return _to_picture(frame)
    finally:
        container.close()


def _check_size(w: int, h: int, path) -> None:
    if not (1 <= w <= MAX_PICTURE_SIDE and 1 <= h <= MAX_PICTURE_SIDE and w * h <= MAX_PICTURE_PIXELS):
        raise InvalidArgument(f"a {w}x{h} picture is outside what holoscope trains on (sides up to "
                              f"{MAX_PICTURE_SIDE}, {MAX_PICTURE_PIXELS:,} pixels)", path=path)  # fmt: skip


def _to_picture(frame) -> Picture:
    fmt = frame.format
    has_alpha = any(c.is_alpha for c in fmt.components)
    if _is_float(fmt.name):
        target = "gbrapf32le" if has_alpha else "gbrpf32le"
        data = (frame if fmt.name == target else frame.reformat(format=target)).to_ndarray().astype(np.float32)
        scale, linear = 1.0, True
    elif max(c.bits for c in fmt.components) > 8:
        target = "rgba64le" if has_alpha else "rgb48le"
        data, scale, linear = frame.reformat(format=target).to_ndarray(), 1 / 65535, False
    else:
        target = "rgba" if has_alpha else "rgb24"
        data, scale, linear = frame.reformat(format=target).to_ndarray(), 1 / 255, False
    data = data.astype(np.float32) * np.float32(scale)
    rgb = np.ascontiguousarray(data[..., :3])
    alpha = np.clip(data[..., 3], 0, 1) if has_alpha else None
    return Picture(rgb, alpha, linear)


def load_image_target(path: str | Path) -> np.ndarray:
    """An image to fit in image mode: float32 [H, W, 3], sRGB-encoded as instant-ngp trains
    on it (its default ``linear_colors = false``): linear (float) pictures go through
    :func:`linear_to_srgb`, 8/16-bit ones are already sRGB. Alpha is dropped. Non-finite
    samples are refused."""
    pic = read_picture(path, what="an image")
    if not np.isfinite(pic.rgb).all():
        raise CorruptStream("the image holds NaN or infinite samples", path=path)
    return linear_to_srgb(pic.rgb) if pic.linear else pic.rgb


# -- transforms.json ---------------------------------------------------------------------------

MAX_JSON_BYTES = 64 << 20
MAX_FRAMES = 100_000
MAX_AABB_SCALE = 128  # instant-ngp's NERF_CASCADES() limit
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "bmp", "gif", "tga", "pic", "pnm", "psd", "exr")  # nerf_loader's list
_UNSUPPORTED_LENSES = ("is_fisheye", "ftheta_p0", "latlong", "equirectangular", "orthographic")
_DIGITS = re.compile(r"(\d+)")


@dataclass
class NerfFrame:
    """One training view: its camera in NGP space and its intrinsics at the loaded size."""

    path: str  # file_path as transforms.json gives it
    c2w: np.ndarray  # float64 3x4, NGP space, OpenCV camera axes (x right, y down, looking along +z)
    focal: tuple[float, float]  # pixels
    principal: tuple[float, float]  # principal point as a fraction of width / height (cx / w, cy / h)
    lens: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # OpenCV k1, k2, p1, p2


@dataclass
class NerfDataset:
    """A transforms.json dataset read as instant-ngp reads it (see :func:`load_dataset`)."""

    root: Path
    frames: list[NerfFrame]
    images: np.ndarray  # uint8 [N, H, W, 4], sRGB RGB + straight alpha (255 where the picture has none)
    aabb_scale: int
    transform: SceneTransform  # the dataset world -> NGP space (scale, offset)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)  # NGP axes
    has_alpha: bool = False
    skipped: list[str] = field(default_factory=list)  # frames whose image is missing

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.frames)


def _natural_key(name: str) -> tuple:
    # instant-ngp sorts frames with SI::natural::compare on file_path
    parts = _DIGITS.split(name)
    return tuple((0, int(p), p) if i % 2 else (1, 0, p) for i, p in enumerate(parts))


def _num(obj: dict, key: str, where: str, path, *, positive: bool = False) -> float | None:
    if key not in obj:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CorruptStream(f"{where}{key} is {value!r}, not a finite number", path=path)
    if positive and value <= 0:
        raise CorruptStream(f"{where}{key} is {value}, not positive", path=path)
    return float(value)


def _vec(value, n: int, what: str, path) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n:
        raise CorruptStream(f"{what} is not a list of {n} numbers", path=path)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise CorruptStream(f"{what} holds {v!r}, not a finite number", path=path)
        out.append(float(v))
    return np.array(out)


def _matrix(value, what: str, path) -> np.ndarray:
    if not isinstance(value, list) or len(value) not in (3, 4):
        raise CorruptStream(f"{what} is not a 4x4 (or 3x4) matrix", path=path)
    m = np.stack([_vec(row, 4, what, path) for row in value])[:3]
    if not np.all(np.abs(m) < 1e12) or np.linalg.norm(m[:, :3], axis=0).min() < 1e-9:
        raise CorruptStream(f"{what} is degenerate (a zero or huge column)", path=path)
    return m


def _focal(obj: dict, width: int, height: int, where: str, path) -> tuple[float, float] | None:
    """``read_focal_length``: x_fov / y_fov (degrees), fl_x / fl_y (pixels), camera_angle_x / _y
    (radians); one axis alone gives both."""

    def axis(res: int, a: str) -> float | None:
        if (deg := _num(obj, f"{a}_fov", where, path, positive=True)) is not None:
            return _fov_to_focal(res, deg, where, path)
        if (fl := _num(obj, f"fl_{a}", where, path, positive=True)) is not None:
            return fl
        if (rad := _num(obj, f"camera_angle_{a}", where, path, positive=True)) is not None:
            return _fov_to_focal(res, math.degrees(rad), where, path)
        return None

    fx, fy = axis(width, "x"), axis(height, "y")
    if fx is None and fy is None:
        return None
    return (fx if fx is not None else fy, fy if fy is not None else fx)


def _fov_to_focal(res: int, degrees: float, where: str, path) -> float:
    if not 0 < degrees < 180:
        raise CorruptStream(f"{where}field of view {degrees:g} degrees is not within 0..180", path=path)
    return 0.5 * res / math.tan(math.radians(degrees) / 2)


def _lens(obj: dict, base: tuple, principal: tuple, size: tuple[int, int], where: str,
          path) -> tuple[tuple, tuple]:  # fmt: skip
    """``read_lens`` for the OpenCV model (k1, k2, p1, p2) and the principal point; other lens
    models are refused."""
    for key in _UNSUPPORTED_LENSES:
        if obj.get(key):
            raise InvalidArgument(f"{where}{key}: only pinhole and OpenCV (k1, k2, p1, p2) cameras are supported",
                                  path=path)  # fmt: skip
    lens = list(base)
    for i, key in enumerate(("k1", "k2", "p1", "p2")):
        if (v := _num(obj, key, where, path)) is not None:
            lens[i] = v
    for key in ("k3", "k4"):
        if _num(obj, key, where, path):
            log.warning("%s: %s%s is ignored (instant-ngp's OpenCV lens has k1, k2, p1, p2)", path, where, key)
    pp = list(principal)
    for i, (key, dim) in enumerate((("cx", "w"), ("cy", "h"))):
        if (c := _num(obj, key, where, path)) is not None:
            # nerf_loader divides by the json's w / h; without them, by the picture's size
            d = _num(obj, dim, where, path, positive=True) or size[i]
            pp[i] = c / d
    return tuple(lens), tuple(pp)


def _resolve(root: Path, name: str) -> Path | None:
    p = Path(name)
    path = p if p.is_absolute() else root / p
    if path.is_file():
        return path
    if not path.suffix:
        for ext in IMAGE_SUFFIXES:
            if (candidate := path.with_suffix("." + ext)).is_file():
                return candidate
    return None


def read_transforms(path: str | Path) -> dict:
    """transforms.json, bounded and checked to be a map with a non-empty ``frames`` list."""
    data = read_limited(path, MAX_JSON_BYTES, what="transforms.json")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=lambda c: math.nan)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptStream(f"not valid JSON ({exc})", path=path) from None
    if not isinstance(doc, dict):
        raise CorruptStream("transforms.json is not a JSON object", path=path)
    frames = doc.get("frames")
    if not isinstance(frames, list) or not frames:
        raise CorruptStream("transforms.json has no frames", path=path)
    if len(frames) > MAX_FRAMES:
        raise CorruptStream(f"{len(frames):,} frames is more than the {MAX_FRAMES:,} holoscope reads", path=path)
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str) or not frame["file_path"]:
            raise CorruptStream(f"frames[{i}] has no file_path", path=path)
        if "transform_matrix" not in frame:
            raise CorruptStream(f"frames[{i}] has no transform_matrix", path=path)
    return doc


def _scene(doc: dict, path) -> tuple[int, SceneTransform, tuple]:
    aabb_scale = doc.get("aabb_scale", 1)
    if isinstance(aabb_scale, bool) or not isinstance(aabb_scale, (int, float)) or aabb_scale != int(aabb_scale):
        raise CorruptStream(f"aabb_scale is {aabb_scale!r}, not an integer", path=path)
    aabb_scale = int(aabb_scale)
    if not 1 <= aabb_scale <= MAX_AABB_SCALE or aabb_scale & (aabb_scale - 1):
        raise CorruptStream(f"aabb_scale is {aabb_scale}: instant-ngp takes a power of two 1..{MAX_AABB_SCALE}",
                            path=path)  # fmt: skip
    scale = _num(doc, "scale", "", path, positive=True) or 0.33
    offset = np.array([0.5, 0.5, 0.5])
    if "offset" in doc:
        value = doc["offset"]
        if isinstance(value, list):
            offset = _vec(value, 3, "offset", path)
        else:
            offset = np.full(3, _num(doc, "offset", "", path))
    if "aabb" in doc:  # nerf_loader: fit the given box into the unit cube, centred at 0.5
        box = doc["aabb"]
        if not isinstance(box, list) or len(box) != 2:
            raise CorruptStream("aabb is not [[minx, miny, minz], [maxx, maxy, maxz]]", path=path)
        lo, hi = _vec(box[0], 3, "aabb", path), _vec(box[1], 3, "aabb", path)
        scale = 1.0 / max(1e-6, float(np.abs(hi - lo).max()))
        offset = -(hi + lo) * 0.5 * scale + 0.5
    if not (1e-9 < scale < 1e9) or not np.all(np.abs(offset) < 1e9):
        raise CorruptStream(f"the dataset scale {scale:g} / offset {offset.tolist()} is absurd", path=path)
    up = (0.0, 1.0, 0.0)
    if "up" in doc:
        u = _vec(doc["up"], 3, "up", path)
        up = (float(u[1]), float(u[2]), float(u[0]))  # cycled as the camera matrices are
    return aabb_scale, SceneTransform(float(scale), tuple(float(v) for v in offset)), up


def load_dataset(transforms_json_path: str | Path, *, downscale: int = 1) -> NerfDataset:
    """An Instant-NGP / nerfstudio ``transforms.json`` and its images, as instant-ngp's
    ``nerf_loader`` reads them:

    - frames sorted by ``file_path`` in natural order; a path without an extension tries
      instant-ngp's image extensions; frames whose image is missing are skipped with one warning;
    - intrinsics from the top level, overridden per frame: ``fl_x`` / ``fl_y`` (pixels),
      ``camera_angle_x`` / ``_y`` (radians) or ``x_fov`` / ``y_fov`` (degrees), one axis giving
      both; ``cx`` / ``cy`` as fractions of ``w`` / ``h``; OpenCV ``k1 k2 p1 p2`` distortion.
      Focal lengths are in pixels of ``w`` x ``h`` when given (pictures of another size scale
      them), else of the picture;
    - ``aabb_scale`` (a power of two up to 128), ``scale`` (0.33), ``offset`` (0.5), ``aabb``,
      ``up``; camera matrices (OpenGL axes) through ``nerf_matrix_to_ngp`` (:mod:`.cameras`);
    - pictures through PyAV, RGBA, sRGB; all the same size (instant-ngp allows mixed sizes,
      holoscope does not); ``downscale`` shrinks them by an integer factor (area filter) and
      the intrinsics with them. Float (EXR, HDR) pictures are refused.
    """
    path = Path(transforms_json_path)
    if type(downscale) is not int or not 1 <= downscale <= 64:
        raise InvalidArgument(f"downscale must be 1..64, got {downscale!r}")
    doc = read_transforms(path)
    root = path.parent
    aabb_scale, transform, up = _scene(doc, path)
    if isinstance(doc.get("n_frames"), int) and not isinstance(doc["n_frames"], bool) and doc["n_frames"] >= 0:
        frames_json = sorted(doc["frames"], key=lambda f: _natural_key(f["file_path"].replace("\\", "/")))
        frames_json = frames_json[: doc["n_frames"]]
    else:
        frames_json = sorted(doc["frames"], key=lambda f: _natural_key(f["file_path"].replace("\\", "/")))

    present, skipped = [], []
    for frame in frames_json:
        name = frame["file_path"].replace("\\", "/")
        found = _resolve(root, name)
        (present if found else skipped).append((frame, name, found))
    if skipped:
        log.warning("%s: %d of %d frames have no image and are skipped (the first: %s)", path, len(skipped),
                    len(frames_json), skipped[0][1])  # fmt: skip
    if not present:
        raise InvalidArgument("none of the frames' images exists", path=path)

    images, frames, size = None, [], None
    for i, (frame, name, found) in enumerate(present):
        pic = read_picture(found, what="a training image")
        if pic.linear:
            raise InvalidArgument("float (HDR) training images are not supported; give PNG or JPEG", path=found)
        h0, w0 = pic.rgb.shape[:2]
        if size is None:
            size = (w0, h0)
            w, h = max(1, w0 // downscale), max(1, h0 // downscale)
            budget.require(len(present) * w * h * 4 * 3, what=f"{len(present)} training images of {w}x{h}", path=path)
            images = np.empty((len(present), h, w, 4), np.uint8)
        elif (w0, h0) != size:
            raise InvalidArgument(f"{name} is {w0}x{h0}, the first image {size[0]}x{size[1]}: all training images "
                                  f"must have one size", path=path)  # fmt: skip
        images[i] = _shrink(pic, images.shape[2], images.shape[1])
        frames.append(_frame(doc, frame, name, (w0, h0), (images.shape[2], images.shape[1]), transform, path))
    has_alpha = bool((images[..., 3] < 255).any())
    return NerfDataset(root, frames, images, aabb_scale, transform, up, has_alpha, [s[1] for s in skipped])


def _frame(doc: dict, frame: dict, name: str, picture: tuple[int, int], loaded: tuple[int, int],
           transform: SceneTransform, path) -> NerfFrame:  # fmt: skip
    where = f"frames[{name}]."
    lens, principal = _lens(doc, (0.0, 0.0, 0.0, 0.0), (0.5, 0.5), picture, "", path)
    lens, principal = _lens(frame, lens, principal, picture, where, path)
    # intrinsics are in pixels of w x h when given (the frame's own, else the top level's)
    ref = []
    for i, dim in enumerate(("w", "h")):
        ref.append(_num(frame, dim, where, path, positive=True) or _num(doc, dim, "", path, positive=True)
                   or picture[i])  # fmt: skip
    focal = _focal(frame, int(ref[0]), int(ref[1]), where, path) or _focal(doc, int(ref[0]), int(ref[1]), "", path)
    if focal is None:
        raise CorruptStream(f"no focal length for {name} (fl_x, camera_angle_x or x_fov)", path=path)
    focal = (focal[0] * loaded[0] / ref[0], focal[1] * loaded[1] / ref[1])
    if not all(1e-6 < f < 1e9 for f in focal):
        raise CorruptStream(f"the focal length of {name} ({focal[0]:g}, {focal[1]:g} pixels) is absurd", path=path)
    c2w = _matrix(frame["transform_matrix"], f"{where}transform_matrix", path)
    return NerfFrame(name, transform.matrix_to_ngp(c2w), focal, principal, lens)


def _shrink(pic: Picture, width: int, height: int) -> np.ndarray:
    """RGBA uint8 at width x height (area average when smaller)."""
    h0, w0 = pic.rgb.shape[:2]
    alpha = pic.alpha if pic.alpha is not None else np.ones((h0, w0), np.float32)
    rgba = np.concatenate([pic.rgb, alpha[..., None]], axis=-1)
    if (w0, h0) != (width, height):
        fy, fx = h0 // height, w0 // width
        rgba = rgba[: height * fy, : width * fx].reshape(height, fy, width, fx, 4).mean(axis=(1, 3))
    return np.clip(np.rint(rgba * 255), 0, 255).astype(np.uint8)


__all__ = ["NerfDataset", "NerfFrame", "Picture", "linear_to_srgb", "load_dataset", "load_image_target",
           "read_picture", "read_transforms", "srgb_to_linear"]  # fmt: skip
