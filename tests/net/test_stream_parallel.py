"""Parallel range requests are bounded: a V^3 group's 20 videos, each answered late by the
server, are fetched side by side but never more at once than the session's ``max_parallel``
(the proxy's log gives every request's start and end)."""

from __future__ import annotations

from pathlib import Path

from holoscope.codecs.gsvideo.v3 import STREAMS, open_v3, write_v3
from holoscope.core.http import HttpPolicy
from holoscope.core.sources import source_for
from tests.net.faultproxy import FaultProxy, Request


def _most_at_once(log: list[Request]) -> int:
    events = sorted([(r.start, 1) for r in log] + [(r.end, -1) for r in log], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_a_group_is_fetched_in_parallel_within_the_bound(streams_dir: Path, proxy: FaultProxy) -> None:
    from tests.codecs.helpers import blob_cloud

    folder = streams_dir / "parallel" / "v3"
    folder.parent.mkdir(exist_ok=True)
    write_v3([blob_cloud(0.1 * i, n=150, seed=i) for i in range(4)], folder, group_size=2)
    proxy.delay(r"v3/group\d", headers=0.1, times=None)  # every video answers late
    media = open_v3(source_for(proxy.url("streams/parallel/v3/")))
    try:
        frames = list(media.frames_from(0))
    finally:
        media.close()
    assert len(frames) == 4
    gets = [r for r in proxy.requests(r"v3/group\d") if r.method == "GET"]
    assert {r.path.split("v3/")[1] for r in gets} == {f"group{g}/{s}.mp4" for g in (0, 1) for s in range(STREAMS)}
    bound = HttpPolicy().max_parallel
    most = _most_at_once(gets)
    assert bound // 2 < most <= bound, (most, bound)  # side by side, never past the bound
