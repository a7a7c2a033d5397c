"""Format registry: which reader opens a file.

Resolution order (as mpv and moderngl-window do it):
  1. a forced format name: only that reader is tried; an unknown name is an error;
  2. magic bytes from a short peek at the start of the file;
  3. the file extension (matched on the full suffix chain, so ``.compressed.ply`` works).
If nothing matches, :class:`FormatNotRecognized` lists every registered format.

The registry starts empty and imports no other holoscope layer: whoever starts the program
registers the formats (the built-ins with ``holoscope.codecs.builtin.register_builtin_formats``).
Openers are given a :class:`~holoscope.core.sources.Source` (``open_media`` wraps a path in
one), probes its first :data:`PEEK_BYTES` bytes; writers take an output path. Openers and
writers are plain callables; the built-in ones import their reader module on first
call, so opening a PLY never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from holoscope.core.errors import CorruptStream, FormatNotRecognized, HoloscopeError, SourceNotFound
from holoscope.core.media import Media, MediaKind
from holoscope.core.sources import Source, is_url, source_for

PEEK_BYTES = 4096


class NoFormatsRegistered(HoloscopeError, LookupError):
    """The registry is empty: the program's entry point did not register any format (call
    ``holoscope.codecs.builtin.register_builtin_formats()`` at start-up)."""


class LazyCallable:
    """A function fetched at each call: ``load()`` returns a module (the layer that owns the
    reader imports it there, so the registry imports nothing) and ``name`` is taken from it.
    Keeps start-up light: a reader module is imported when a file of its format is used."""

    __slots__ = ("load", "name")

    def __init__(self, load: Callable[[], Any], name: str) -> None:
        self.load = load
        self.name = name

    def resolve(self) -> Callable[..., Any]:
        return getattr(self.load(), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<lazy {self.name} via {getattr(self.load, '__qualname__', self.load)}>"


def lazy(load: Callable[[], Any], name: str) -> LazyCallable:
    """An opener or writer for a :class:`FormatSpec` whose module is imported on first use."""
    return LazyCallable(load, name)


def _resolved(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn.resolve() if isinstance(fn, LazyCallable) else fn


@dataclass(frozen=True)
class FormatSpec:
    name: str
    description: str
    kind: MediaKind
    extensions: tuple[str, ...]
    opener: Callable[[Source], Media]  # (source) -> Media; see lazy() to defer the import
    probe: Callable[[bytes], bool] | None = None  # looks at the first PEEK_BYTES bytes
    magic: str = ""  # human-readable signature for listings
    writer: Callable[..., None] | None = None  # (payload, path: Path) -> None
    priority: int = 0  # higher probes first (more specific signatures)
    # For formats stored as a folder: given the folder's Source (local or a URL ending in '/'),
    # whether it holds this format (it looks for its marker files through ``relative``).
    directory_probe: Callable[[Source], bool] | None = None
    # Opening options this format's opener takes as keywords (what the file cannot say, such as
    # an image-mode hash grid's image size); open_media passes only these, others are ignored.
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Dotted "module:function" strings are not resolved any more (core imports no reader).
        for field, fn in (("opener", self.opener), ("writer", self.writer)):
            if fn is not None and not callable(fn):
                raise TypeError(f"FormatSpec {self.name!r}: {field} must be a callable, got {fn!r}")

    @property
    def can_write(self) -> bool:
        return self.writer is not None

    def matches_extension(self, path: Path | str) -> bool:
        name = Path(path).name.lower()
        return any(name.endswith(ext) for ext in self.extensions)


_FORMATS: dict[str, FormatSpec] = {}


def register(spec: FormatSpec) -> FormatSpec:
    """Add a format. Re-registering a name replaces the old entry (handy for plugins)."""
    _FORMATS[spec.name] = spec
    return spec


def is_registered(name: str) -> bool:
    return name in _FORMATS


def formats() -> list[FormatSpec]:
    """All registered formats, most specific probe first (empty until some are registered)."""
    return sorted(_FORMATS.values(), key=lambda s: (-s.priority, s.name))


def format_names() -> list[str]:
    return [spec.name for spec in formats()]


def supported_summary() -> str:
    return ", ".join(f"{s.name} ({' '.join(s.extensions)})" for s in formats())


def _registered_formats() -> list[FormatSpec]:
    """``formats()`` for a lookup: an empty registry is a start-up mistake, said clearly."""
    specs = formats()
    if not specs:
        raise NoFormatsRegistered(
            "no file formats are registered (the program must call "
            "holoscope.codecs.builtin.register_builtin_formats() at start-up)"
        )
    return specs


def _head(source: Source) -> bytes:
    # Only regular files (FIFOs and devices would block or never end), opened without blocking;
    # the size is not trusted (/proc files report 0): emptiness is judged from the bytes read.
    head = source.head(PEEK_BYTES)
    if not head:
        raise CorruptStream("file is empty", path=source.label)
    return head


def _as_source(value: Source | str | Path | bytes) -> Source:
    if isinstance(value, (str, Path)):
        try:
            return source_for(value)
        except ValueError as exc:  # an embedded NUL byte
            raise SourceNotFound(f"invalid file name ({exc})", path=value) from exc
    return source_for(value)


def resolve(source: Source | str | Path | bytes, forced: str | None = None) -> FormatSpec:
    """Pick the format for ``source`` (a Source, a local path or bytes; see the module
    docstring for the order)."""
    source = _as_source(source)
    specs = _registered_formats()
    if forced is not None:
        by_name = {s.name: s for s in specs}
        if forced not in by_name:
            raise FormatNotRecognized(
                f"unknown format {forced!r}; supported formats: {', '.join(by_name)}"
            )
        return by_name[forced]
    if not source.is_folder and source.local_path is None:
        source.exists()  # a URL learns here whether its server calls it a folder (a redirect to '/')
    if source.is_folder:
        # Some formats are folders (an unbundled SOG); any other directory is an error.
        for spec in specs:
            if spec.directory_probe is not None and spec.directory_probe(source):
                return spec
    head = _head(source)
    for spec in specs:
        if spec.probe is not None and spec.probe(head):
            return spec
    for spec in specs:
        # A format with a probe that rejected the bytes is not rescued by its extension:
        # a .ply whose header is not PLY is not a PLY.
        if spec.probe is None and spec.matches_extension(source.name):
            return spec
    hint = next((s for s in specs if s.matches_extension(source.name)), None)
    detail = (
        f"the name says {hint.name} but the contents do not match ({head[:8]!r})"
        if hint
        else f"unrecognised contents {head[:8]!r}"
    )
    raise FormatNotRecognized(f"{detail}; supported formats: {supported_summary()}", path=source.label)


def open_media(source: Source | str | Path | bytes, forced: str | None = None, **options: Any) -> Media:
    """Open ``source`` (a Source, a local path or bytes) with the winning reader, which is given
    the Source and those ``options`` it declares (unset ones are dropped); ``Media.reader``
    names it."""
    source = _as_source(source)
    spec = resolve(source, forced)
    if forced is not None and not (source.is_folder and spec.directory_probe is not None):
        _head(source)
    given = {k: v for k, v in options.items() if k in spec.options and v is not None}
    media = spec.opener(source, **given)
    if is_url(source.uri) and media.frame_count != 1:
        # Timed media from a server: the player waits for late frames (stalls) instead of
        # dropping them, and reads ahead by seconds (core/player.py).
        media.info.setdefault("streamed", True)
    return media


def writer_for(path: str | Path, forced: str | None = None) -> tuple[FormatSpec, Callable[..., None]]:
    """The writer for an output path, chosen by forced name, then extension."""
    path = Path(path)
    every = _registered_formats()
    candidates = [s for s in every if s.can_write]
    names = ", ".join(f"{s.name} ({' '.join(s.extensions)})" for s in candidates)
    if forced is not None:
        match = [s for s in every if s.name == forced]
    else:
        # The most specific extension wins: "x.compressed.ply" is compressed PLY, not PLY.
        match = [s for s in every if s.matches_extension(path)]
        match.sort(key=lambda s: -max(len(e) for e in s.extensions if path.name.lower().endswith(e)))
    if not match:
        raise FormatNotRecognized(f"cannot write this format; writable formats: {names}", path=path)
    spec = match[0]
    if not spec.can_write:
        raise FormatNotRecognized(f"holoscope reads {spec.name} but cannot write it; writable formats: {names}", path=path)
    return spec, _resolved(spec.writer)  # type: ignore[arg-type]

