"""Splat sequences: per-frame splat files played as timed media.

A sequence is named by a folder of frame files, a glob pattern (``'frames/*.ply'``) or a list
file (one path a line, relative to the list's folder; blank lines and ``#`` comments ignored).
Frames are ordered by natural sort (``f2`` before ``f10``), may use any readable splat format,
may mix formats and may differ in splat count. Each frame is opened through the format registry
when it is asked for, so every reader's hostile-input checks and decode budget apply per frame.

A frame that cannot be read raises its own one-line error from :meth:`Media.frame`; whoever
plays the sequence reports it and goes on with the next frame. Opening fails with one clear
error only when nothing can play: no frame files, a glob matching nothing, a list naming only
missing paths, or a first readable frame that does not exist (every frame damaged).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from pathlib import Path
from typing import Callable, Iterator

from holoscope.core.errors import CorruptStream, EmptyMedia, HoloscopeError, SourceNotFound, display_path
from holoscope.core.files import check_regular, read_limited
from holoscope.core.frames import FailedFrame
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import FolderSource

log = logging.getLogger("holoscope")

READER_NAME = "holoscope.sequence"
FORMAT_NAME = "splat-sequence"
DEFAULT_FPS = 30.0
MAX_FRAMES = 1_000_000  # far beyond any sequence; a list file of a billion lines is refused
MAX_LIST_BYTES = 64 << 20
LIST_EXTENSIONS = (".txt", ".lst", ".list")
GLOB_CHARACTERS = frozenset("*?[")

# What a frame file may be called: the splat formats' extensions. Kept here (not looked up in
# the registry) so that listing a folder never imports a reader.
FRAME_EXTENSIONS = (".ply", ".compressed.ply", ".spz", ".splat", ".ksplat", ".sog")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``f2`` < ``f10`` < ``g1``."""
    parts = _DIGITS.split(name.lower())
    return tuple((0, int(p), p) if i % 2 else (1, 0, p) for i, p in enumerate(parts))


def is_frame_name(name: str) -> bool:
    lower = name.lower()
    return not lower.startswith(".") and lower.endswith(FRAME_EXTENSIONS)


def looks_like_glob(text: str) -> bool:
    return bool(GLOB_CHARACTERS & set(Path(text).name)) or bool(GLOB_CHARACTERS & set(str(Path(text).parent)))


def is_sequence_folder(path: Path) -> bool:
    """A folder holding at least two frame files (and not an unbundled SOG's own folder)."""
    try:
        if not path.is_dir() or (path / "meta.json").is_file():
            return False
        count = 0
        with os.scandir(path) as entries:
            for entry in entries:
                if is_frame_name(entry.name) and entry.is_file():
                    count += 1
                    if count >= 2:
                        return True
    except OSError:
        return False
    return False


def _from_folder(folder: Path) -> list[Path]:
    names = [n for n in FolderSource(folder).names() if is_frame_name(n)]
    if not names:
        raise EmptyMedia(f"the folder holds no splat frame files ({', '.join(FRAME_EXTENSIONS)})", path=folder)
    return [folder / n for n in sorted(names, key=natural_key)]


def _from_glob(pattern: str) -> list[Path]:
    matches = [Path(p) for p in glob.glob(pattern) if is_frame_name(Path(p).name)]
    if not matches:
        raise SourceNotFound("the pattern matches no splat frame files", path=pattern)
    return sorted(matches, key=lambda p: natural_key(str(p)))


def _from_list(list_file: Path) -> list[Path]:
    data = read_limited(list_file, MAX_LIST_BYTES, what="the frame list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptStream(f"the frame list is not UTF-8 text ({exc.reason} at byte {exc.start})", path=list_file) from exc
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line:
            raise CorruptStream("the frame list holds a NUL byte", path=list_file)
        path = Path(line)
        paths.append(path if path.is_absolute() else list_file.parent / path)
        if len(paths) > MAX_FRAMES:
            raise CorruptStream(f"the frame list names more than {MAX_FRAMES:,} frames", path=list_file)
    if not paths:
        raise EmptyMedia("the frame list names no frames", path=list_file)
    present = [p for p in paths if _exists(p)]
    if not present:
        raise SourceNotFound(f"none of the {len(paths):,} frames the list names exists "
                             f"(first: {display_path(paths[0])})", path=list_file)  # fmt: skip
    if len(present) < len(paths):
        log.warning("%s: %d of %d listed frames are missing and will be skipped",
                    display_path(list_file), len(paths) - len(present), len(paths))  # fmt: skip
    return present


def _exists(path: Path) -> bool:
    try:
        check_regular(path)
        return True
    except HoloscopeError:
        return False


def is_list_file(path: Path) -> bool:
    return path.name.lower().endswith(LIST_EXTENSIONS)


def _spec_text(spec: str | os.PathLike | FolderSource) -> str:
    return os.fspath(spec.local_path) if isinstance(spec, FolderSource) else os.fspath(spec)  # type: ignore[arg-type]


def discover_frames(spec: str | os.PathLike | FolderSource) -> list[Path]:
    """The frame files a folder (a path or a :class:`FolderSource`), glob pattern or list file
    names, in playing order."""
    text = _spec_text(spec)
    path = Path(text)
    if path.is_dir():
        frames = _from_folder(path)
    elif not path.exists() and looks_like_glob(text):
        frames = _from_glob(text)
    elif is_list_file(path):
        frames = _from_list(path)
    else:
        check_regular(path)  # a missing file, a FIFO ... each with its own message
        raise CorruptStream("not a splat sequence (a folder of frames, a glob pattern or a list file)", path=path)
    if len(frames) > MAX_FRAMES:
        raise CorruptStream(f"{len(frames):,} frames is beyond any sequence (limit {MAX_FRAMES:,})", path=text)
    return frames


FrameOpener = Callable[[Path], object]  # path -> SplatCloud (normally registry.open_media(...).frame(0))


def _open_frame_with_registry(path: Path) -> object:
    from holoscope.core.registry import open_media

    media = open_media(path)
    try:
        if media.kind is not MediaKind.SPLATS:
            raise CorruptStream(f"a {media.format} file cannot be a frame of a splat sequence", path=path)
        return media.frame(0)
    finally:
        media.release()


def open_sequence(spec: str | os.PathLike | FolderSource, *, fps: float | None = None,
                  open_frame: FrameOpener | None = None) -> Media:  # fmt: skip
    """Open a splat sequence as timed :class:`Media` (kind ``SPLAT_SEQUENCE``).

    The first frame is read now, so a sequence whose frames are all damaged fails here with
    that frame's error; later frames are read when asked for. ``fps`` defaults to 30.
    """
    spec = _spec_text(spec)
    frames = discover_frames(spec)
    rate = DEFAULT_FPS if fps is None else float(fps)
    if not (rate > 0 and rate <= 1000):
        raise CorruptStream(f"fps must be within 0..1000, got {fps}")
    opener = open_frame or _open_frame_with_registry
    first_error: HoloscopeError | None = None
    first = None
    for index, path in enumerate(frames):
        try:
            first = (index, opener(path))
            break
        except HoloscopeError as exc:  # reported once below, not a line per frame
            first_error = first_error or exc
    if first is None:
        assert first_error is not None
        raise EmptyMedia(f"no frame of the sequence can be read ({len(frames)} tried; first error: {first_error})",
                         path=os.fspath(spec))  # fmt: skip
    if first[0] > 0:
        log.warning("%s: the first %d frame%s cannot be read (%s); playback starts at frame %d",
                    display_path(os.fspath(spec)), first[0], "s" if first[0] > 1 else "", first_error, first[0] + 1)
    cache = {first[0]: first[1]}

    def load_frame(index: int) -> object:
        if index in cache:  # the frame read at open time is handed out once, then dropped
            return cache.pop(index)
        return opener(frames[index])

    def iter_from(start: int) -> Iterator[object]:
        # Playback goes on past a damaged frame: it becomes a FailedFrame carrying its error.
        for index in range(start, len(frames)):
            try:
                yield load_frame(index)
            except HoloscopeError as exc:
                log.warning("%s", exc)
                yield FailedFrame(index, str(exc))

    total = 0
    for path in frames:
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return Media(
        kind=MediaKind.SPLAT_SEQUENCE,
        format=FORMAT_NAME,
        reader=READER_NAME,
        frame_count=len(frames),
        fps=rate,
        load_frame=load_frame,
        iter_from=iter_from,
        path=os.fspath(spec),
        info={"frame_files": [str(p) for p in frames], "file_bytes": total,
              "first_readable_frame": first[0], "default_up": sequence_up(frames[first[0]])},  # fmt: skip
    )


def sequence_up(frame: Path) -> str:
    """A sequence opens with the default up axis of its frames' format (-y for the PLY family)."""
    from holoscope.codecs.formats.common import DEFAULT_UP, FALLBACK_UP

    name = frame.name.lower()
    for fmt, ext in (("compressed-ply", ".compressed.ply"), ("ply", ".ply"), ("spz", ".spz"), ("sog", ".sog"),
                     ("splat", ".splat"), ("ksplat", ".ksplat")):  # fmt: skip
        if name.endswith(ext):
            return DEFAULT_UP.get(fmt, FALLBACK_UP)
    return FALLBACK_UP


def describe_sequence(media: Media) -> dict:
    """What ``holoscope info`` reports for a sequence: frame count, fps, splats per frame
    (min / median / max over the frames that can be read), SH degree, bytes on disk."""
    import numpy as np

    counts, degrees, failed = [], set(), []
    for index in range(media.frame_count):
        try:
            cloud = media.frame(index)
        except HoloscopeError as exc:
            failed.append(index)
            log.warning("%s", exc)
            continue
        counts.append(cloud.count)
        degrees.add(cloud.sh_degree)
    total = int(media.info.get("file_bytes", 0))
    frames = media.info.get("frame_files", [])
    formats = sorted({Path(f).name.lower().split(".", 1)[-1] for f in frames})
    return {
        "frames": media.frame_count,
        "fps": round(media.fps, 6),
        "duration": round(media.duration, 6),
        "frame_formats": formats,
        "splats_min": int(np.min(counts)),
        "splats_median": float(np.median(counts)),
        "splats_max": int(np.max(counts)),
        "sh_degree": max(degrees),
        "file_bytes": total,
        "bytes_per_frame": round(total / max(1, media.frame_count), 1),
        "unreadable_frames": [i + 1 for i in failed],
        "first_frame": frames[0] if frames else "",
        "last_frame": frames[-1] if frames else "",
    }


def output_name(pattern: str | os.PathLike, number: int) -> Path:
    """``OUT/%04d.ply`` -> ``OUT/0001.ply`` (a printf integer conversion in the file name)."""
    pattern = Path(pattern)
    if not re.search(r"%\d*d", pattern.name.replace("%%", "")):
        raise CorruptStream("a sequence is written to numbered files: give a name like out/%04d.ply", path=pattern)
    try:
        return pattern.with_name(pattern.name % number)
    except (TypeError, ValueError) as exc:
        raise CorruptStream("the output name needs exactly one %d or %04d (a literal % is %%)", path=pattern) from exc


def write_sequence(media: Media, pattern: str | os.PathLike, write: Callable[[object, Path], None], *,
                   frames: range | None = None, number_from: int = 1,
                   transform: Callable[[object], object] | None = None) -> list[Path]:  # fmt: skip
    """Write frames of a sequence to numbered files: frame ``i`` (from 0) to number
    ``i + number_from``, so the default numbers from 1 like the inputs. A frame that cannot be read is skipped with a warning (its number is kept free);
    on any error or interruption every file already written is removed again."""
    if frames is None and media.frame_count is None:
        raise EmptyMedia("a stream of unknown length cannot be written as a sequence yet", path=media.path)
    frames = frames if frames is not None else range(media.frame_count)
    names = [output_name(pattern, i + number_from) for i in frames]
    if not names[0].parent.is_dir():
        raise SourceNotFound("the output folder does not exist", path=names[0].parent)
    written: list[Path] = []
    try:
        for index, name in zip(frames, names):
            try:
                cloud = media.frame(index)
            except HoloscopeError as exc:
                log.warning("frame %d skipped: %s", index + 1, exc)
                continue
            write(transform(cloud) if transform is not None else cloud, name)
            written.append(name)
    except BaseException:
        for name in written:
            try:
                name.unlink()
            except OSError:
                pass
        raise
    if not written:
        raise EmptyMedia("no frame of the sequence could be read", path=media.path)
    return written
