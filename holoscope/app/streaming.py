"""Opening a URL on the window's loader thread (Qt-free): progressive or downloaded, cancellable.

A row-ordered splat file (.splat, binary INRIA PLY) is read while it downloads: each growing
prefix goes to ``on_partial`` (the window shows it and replaces it with the next). Another
static splat file (SPZ, SOG, compressed PLY, .ksplat: compressed, so no prefix can be shown) is
downloaded whole with ``on_progress(received, total)`` and then opened from memory as the remote
file (its name, label and neighbours are the URL's). Timed media, folders and manifests open
through the registry on the URL itself: their readers fetch what they need by range, and the
player buffers. ``cancelled()`` is asked between pieces: a newer open request stops the
download.
"""

from __future__ import annotations

import time
from typing import Callable

from holoscope.codecs.progressive import DownloadedSource, NotRowOrdered, Partial, download, iter_prefixes, prefix_media
from holoscope.core.media import Media, MediaKind
from holoscope.core.registry import open_media, resolve
from holoscope.core.sources import source_for

# Progress is reported after PROGRESS_INTERVAL seconds or PROGRESS_STEP of the length, whichever
# comes first: a download that stalls shows (nearly) all it has.
PROGRESS_INTERVAL = 0.1
PROGRESS_STEP = 0.01
STREAMED = ("lod",)  # static scenes whose reader streams them itself


def open_url_media(url: str, *, cancelled: Callable[[], bool], on_partial: Callable[[Partial], None],
                   on_progress: Callable[[int, int | None], None]) -> Media:  # fmt: skip
    source = source_for(url)
    if source.is_folder:
        return open_media(source)
    spec = resolve(source)  # from the first part, which the source has fetched already
    if spec.kind is not MediaKind.SPLATS or spec.name in STREAMED:
        # Timed media stream through their player (range reads, buffering); a streamed-LOD
        # scene fetches its chunks by need.
        return open_media(source)
    last = [0.0, 0]  # time and bytes of the last report

    def progress(received: int, total: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        step = total is not None and received - last[1] >= PROGRESS_STEP * total
        if force or step or now - last[0] >= PROGRESS_INTERVAL:
            last[:] = [now, received]
            on_progress(received, total)

    try:
        for part in iter_prefixes(source, cancelled=cancelled, progress=progress):
            if part.final:
                progress(part.received, part.total, force=True)
                return prefix_media(part, source)
            on_partial(part)
    except NotRowOrdered:
        pass  # compressed or otherwise not row-ordered: download it whole, then open
    data = download(source, cancelled=cancelled, progress=progress)
    progress(len(data), len(data), force=True)
    return open_media(DownloadedSource(data, source))
