"""The desktop app and URLs, on a real X server against a loopback web server started here:
File > Open URL, a dropped link, a URL on the command line, a .splat shown while it downloads,
download progress for a compressed file, and the buffering indicator of a stalled player."""

from __future__ import annotations

import re
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from holoscope.codecs.formats.common import static_splat_media
from holoscope.codecs.formats.ply_compressed import read_compressed_ply
from holoscope.codecs.formats.ply_inria import read_ply
from holoscope.codecs.formats.splat import read_splat, write_splat
from holoscope.core.media import Media, MediaKind
from holoscope.core.player import PlayerState
from tests.codecs.helpers import blob_cloud, random_cloud

from .conftest import wait_for_media

FIELDS = ("means", "scales", "quats", "opacities", "sh")


class Served:
    """Files served by a loopback ThreadingHTTPServer with range requests, as a CDN serves them.
    A file may be slow (written in pieces with sleeps) and held back after ``gate_at`` bytes
    until ``gate`` is set, so a test sees the download half done for as long as it needs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.slow: dict[str, float] = {}  # path -> seconds of sleep per 16 KB piece
        self.gate_at: dict[str, int] = {}
        self.gate = threading.Event()
        served = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?")[0]
                data = served.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = 0, len(data) - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)), end) if match.group(2) else end
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end + 1 - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{len(data)}-{hash(data) & 0xFFFF}"')
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not body:
                    return
                delay, gate_at = served.slow.get(path, 0.0), served.gate_at.get(path)
                try:
                    at = start
                    while at <= end:
                        if gate_at is not None and at >= gate_at:
                            served.gate.wait(60)
                        stop = min(at + (16 << 10), end + 1)
                        if gate_at is not None and at < gate_at:
                            stop = min(stop, gate_at)
                        self.wfile.write(data[at:stop])
                        self.wfile.flush()
                        at = stop
                        if delay:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a cancelled download)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(monkeypatch):
    """A web server, and a fresh HTTP session without the on-disk cache (each test downloads)."""
    import holoscope.core.http as http

    monkeypatch.setenv("HOLOSCOPE_NO_CACHE", "1")
    monkeypatch.setattr(http, "_default", None)
    server = Served()
    yield server
    server.close()


def assert_same_cloud(a, b) -> None:
    for name in FIELDS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def drop_mime(win, mime: QMimeData) -> None:
    centre = QPoint(win.width() // 2, win.height() // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier)  # fmt: skip
    QApplication.sendEvent(win, enter)
    assert enter.isAccepted(), "the window accepts a link dragged from a browser"
    QApplication.sendEvent(win, QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))  # fmt: skip


def screenshot_array(win) -> np.ndarray:
    img = win.viewport.screenshot().convertToFormat(win.viewport.screenshot().Format.Format_RGB888)
    ptr = img.constBits()
    return np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3].copy()


def test_open_url_action_opens_a_served_ply(window, qtbot, served, samples_dir):
    from holoscope.app import recent

    local = samples_dir / "splats" / "lod4.ply"
    served.files["/scenes/lod4.ply"] = local.read_bytes()
    url = served.url("/scenes/lod4.ply")
    assert window.open_url_action.shortcuts()[0].toString() == "Ctrl+L"
    window.open_url_action.trigger()
    dialog = window.url_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.box.setEditText("ftp://example.org/x.ply")
    dialog.accept()
    assert dialog.isVisible() and "http" in dialog.hint.text(), "only http(s) URLs are accepted"
    dialog.box.setEditText(url)
    dialog.accept()
    wait_for_media(qtbot, window, "lod4.ply")
    assert window.media_path == url and "lod4.ply" in window.windowTitle()
    assert window.media.format == "ply"
    assert_same_cloud(window.viewport.view.cloud, read_ply(local))
    assert recent.recent_urls()[0] == url and recent.recent_files()[0] == url, "a URL is remembered as typed"
    qtbot.waitUntil(lambda: not window.download_bar.isVisible(), timeout=5000)
    window.info_panel.show()
    window.refresh_info()
    rows = window.info_panel.rows
    assert rows["Source"] == url
    from holoscope.core.http import default_session

    assert default_session().stats()["bytes_downloaded"] >= local.stat().st_size
    assert rows["Network"].endswith("requests") or "requests," in rows["Network"]
    # The dialog offers the URL next time.
    window.open_url_action.trigger()
    assert window.url_dialog.box.currentText() == url
    window.url_dialog.reject()


def test_a_missing_url_keeps_the_scene_and_says_why(window, qtbot, served, samples_dir):
    served.files["/lod5.ply"] = (samples_dir / "splats" / "lod5.ply").read_bytes()
    window.open_paths([served.url("/lod5.ply")])
    wait_for_media(qtbot, window, "lod5.ply")
    view = window.viewport.view
    window.open_paths([served.url("/gone.splat")])
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=20000)
    assert served.url("/gone.splat") in window.error_box.text()  # the whole address: the host matters
    assert window.error_box.informativeText() == ""  # no list of formats for a file not found
    assert window.viewport.view is view and Path(window.media_path).name == "lod5.ply"
    assert not window.download_bar.isVisible()


def test_dropped_links_open_compressed_after_download_progress(window, qtbot, served, samples_dir):
    compressed = samples_dir / "splats" / "guitar.compressed.ply"
    served.files["/g/guitar.compressed.ply"] = compressed.read_bytes()
    served.slow["/g/guitar.compressed.ply"] = 0.03  # about 3 s for its 1.4 MB
    mime = QMimeData()
    mime.setUrls([QUrl(served.url("/g/guitar.compressed.ply"))])  # text/uri-list, as browsers drag links
    drop_mime(window, mime)
    seen = []
    qtbot.waitUntil(lambda: window.download_bar.isVisible() and window.download_bar.value() > 0
                    and seen.append(window.download_bar.value()) is None, timeout=20000)  # fmt: skip
    assert window.viewport.view is None, "a compressed file is shown once it has arrived"
    assert 0 < seen[0] < 1000 and "/" in window.download_bar.format()
    wait_for_media(qtbot, window, "guitar.compressed.ply", timeout=30000)
    assert window.media.format == "compressed-ply"
    assert not window.download_bar.isVisible()
    assert_same_cloud(window.viewport.view.cloud, read_compressed_ply(compressed))

    served.files["/lod5.ply"] = (samples_dir / "splats" / "lod5.ply").read_bytes()
    text = QMimeData()
    text.setText(served.url("/lod5.ply") + "\n")  # a link dragged as plain text only
    drop_mime(window, text)
    wait_for_media(qtbot, window, "lod5.ply")
    assert window.media_path == served.url("/lod5.ply")


def test_a_slow_splat_shows_a_partial_scene_then_the_whole_one(qtbot, served, tmp_path):
    """Started as `holoscope URL` starts it; the last image equals the local file's."""
    from holoscope.app.main import create_window

    local = tmp_path / "scene.splat"
    write_splat(random_cloud(40_000, degree=0, seed=5, profile="splat"), local)
    data = local.read_bytes()
    served.files["/big/scene.splat"] = data
    served.slow["/big/scene.splat"] = 0.002
    served.gate_at["/big/scene.splat"] = int(len(data) * 0.6) // 32 * 32 + 5  # mid-row: rows arrive as they come
    url = served.url("/big/scene.splat")
    win = create_window([url])
    qtbot.addWidget(win)
    win.resize(640, 480)
    win.show()
    qtbot.waitExposed(win)
    try:
        qtbot.waitUntil(lambda: win.viewport.view is not None and win.viewport.frames_painted > 0, timeout=30000)
        total = len(data) // 32
        qtbot.waitUntil(lambda: win.viewport.view.cloud.count >= total // 2, timeout=30000)
        partial = win.viewport.view.cloud
        assert partial.count < total, "shown before the download completed"
        assert_same_cloud(partial, read_splat(local).subset(np.arange(partial.count)))
        # Held back at 60 %: the bar says so (bytes of the announced length).
        qtbot.waitUntil(lambda: 590 <= win.download_bar.value() <= 610, timeout=10000)
        assert win.download_bar.isVisible() and win.download_bar.format().endswith("1.3 MB")
        assert "so far" in win.statusBar().currentMessage()
        image = screenshot_array(win)
        assert image.std() > 5, "the partial scene is drawn"
        painted = win.viewport.frames_painted
        win.viewport.update()  # still responsive: paints go on while the rest is held back
        qtbot.waitUntil(lambda: win.viewport.frames_painted > painted, timeout=5000)

        served.gate.set()
        qtbot.waitUntil(lambda: not win.download_bar.isVisible(), timeout=30000)
        qtbot.waitUntil(lambda: win.viewport.view.cloud.count == total, timeout=5000)
        assert_same_cloud(win.viewport.view.cloud, read_splat(local))
        assert win.media.format == "splat" and win.media_path == url
        win.viewport.update()
        qtbot.wait(300)
        streamed = screenshot_array(win)

        win.open_paths([str(local)])  # the same scene from the local file, framed afresh
        qtbot.waitUntil(lambda: win.media_path == str(local), timeout=20000)
        qtbot.waitUntil(lambda: win.viewport.view.cloud.count == total and win.viewport.frames_painted > 0)
        qtbot.wait(300)
        win.viewport.update()
        qtbot.wait(300)
        assert np.array_equal(streamed, screenshot_array(win)), "the streamed scene looks as the local file does"
    finally:
        served.gate.set()
        win.close()


def test_opening_another_file_cancels_a_download(window, qtbot, served, tmp_path, samples_dir):
    local = tmp_path / "held.splat"
    write_splat(random_cloud(30_000, degree=0, seed=2, profile="splat"), local)
    served.files["/held.splat"] = local.read_bytes()
    served.gate_at["/held.splat"] = 400_000
    window.open_paths([served.url("/held.splat")])
    qtbot.waitUntil(lambda: window.viewport.view is not None, timeout=30000)
    window.open_paths([str(samples_dir / "splats" / "lod5.ply")])  # the download is held: only a cancel frees the loader
    wait_for_media(qtbot, window, "lod5.ply", timeout=20000)
    assert not window.download_bar.isVisible()
    assert window.viewport.view.cloud.count == read_ply(samples_dir / "splats" / "lod5.ply").count


def test_a_video_url_plays_without_downloading_it_whole(window, qtbot, served, samples_dir, monkeypatch):
    """Timed media open on the URL itself (the player reads ahead by range requests), never
    through the app's whole-file download."""
    import holoscope.app.streaming as streaming

    def no_download(*args, **kwargs):
        raise AssertionError("a video must not be downloaded whole before it plays")

    monkeypatch.setattr(streaming, "download", no_download)
    video = samples_dir / "video" / "bunny-132f-360p-ffv1.mkv"
    served.files["/v/bunny.mkv"] = video.read_bytes()
    window.open_paths([served.url("/v/bunny.mkv")])
    wait_for_media(qtbot, window, "bunny.mkv", timeout=30000)
    assert window.media.kind is MediaKind.VIDEO and window.player is not None
    qtbot.waitUntil(lambda: window.player.index == 0, timeout=20000)
    assert not window.download_bar.isVisible()


def test_the_command_line_passes_urls_to_the_app(monkeypatch):
    import holoscope.app.main as app_main
    from holoscope.cli import main

    got = []
    monkeypatch.setattr(app_main, "run_app", lambda paths: got.append(list(paths)) or 0)
    url = "https://example.org/scenes/a%20b/scene.splat?v=2"
    assert main([url]) == 0
    assert got == [[url]]


class SlowFrames:
    """A timed medium whose frames from ``stall_at`` on arrive only once ``release`` is set,
    as segments of a stream on a link that stalls."""

    def __init__(self, count: int = 12, stall_at: int = 3) -> None:
        self.release = threading.Event()
        self.stall_at = stall_at
        self.media = Media(kind=MediaKind.SPLAT_SEQUENCE, format="test", reader="slow test frames",
                           frame_count=count, fps=10.0, load_frame=self.load)  # fmt: skip

    def load(self, index: int):
        if index >= self.stall_at:
            self.release.wait(30)
        return blob_cloud(x=0.1 * index, n=200, seed=index)


def test_buffering_indicator_shows_while_the_player_stalls(window, qtbot):
    slow = SlowFrames()
    try:
        assert window.show_media(slow.media, "stream.test")
        assert window.player is not None
        window.toggle_play()
        label = window.buffering_label
        qtbot.waitUntil(lambda: window.player.state is PlayerState.BUFFERING, timeout=10000)
        qtbot.waitUntil(label.isVisible, timeout=2000)
        assert label.text().startswith("Buffering…") and re.search(r"\d+%", label.text())
        assert window.statusBar().currentMessage().startswith("Buffering")
        assert window.player.index == slow.stall_at - 1, "the last frame that arrived stays up"
        slow.release.set()  # the data arrives: playback resumes without the user
        qtbot.waitUntil(lambda: not label.isVisible(), timeout=10000)
        qtbot.waitUntil(lambda: (window.player.index or 0) > slow.stall_at, timeout=10000)
        assert window.player.state in (PlayerState.PLAYING, PlayerState.ENDED)
        assert not window.statusBar().currentMessage().startswith("Buffering")
    finally:
        slow.release.set()


def test_info_panel_shows_what_a_streaming_player_reports(window, qtbot, monkeypatch):
    slow = SlowFrames(stall_at=99)
    slow.release.set()
    assert window.show_media(slow.media, "https://example.org/v/stream.gsv")
    player = window.player
    base = player.stats

    monkeypatch.setattr(player, "stats", lambda: {**base(), "level": 1, "levels": 3, "throughput_bps": 4.5e6,
                                                  "buffer_s": 2.25, "stalled_s": 0.5})  # fmt: skip
    rows = window.info_rows()
    assert rows["Source"] == "https://example.org/v/stream.gsv"
    assert rows["Quality level"] == "1 of 3" and rows["Throughput"] == "4.5 Mb/s"
    assert rows["Buffer"] == "2.2 s ahead" and rows["Stalled"] == "0.5 s in all"
    assert "Network" in rows
    monkeypatch.setattr(player, "stats", lambda: {"state": "playing", "level": None})  # keys missing or None
    rows = window.info_rows()
    assert not {"Quality level", "Buffer", "Stalled"} & set(rows)
    window.info_panel.show()
    window.refresh_info()  # never fails for what a player leaves out


def test_static_media_helper_is_what_the_stream_installs():
    """The prefix media carries the whole-file reader's format and reader names."""
    from holoscope.codecs.progressive import Partial, prefix_media

    cloud = blob_cloud(n=10)
    media = prefix_media(Partial(cloud, 320, 320, final=True, format="splat"))
    reference = static_splat_media(cloud, source=None, fmt="splat", reader="holoscope.splat")
    assert (media.format, media.reader, media.info) == (reference.format, reference.reader, reference.info)


def test_the_buffering_fill_counts_towards_where_playback_resumes():
    from holoscope.app.window import buffer_fill

    assert buffer_fill({"buffer_s": 0.25, "resume_s": 0.5, "queued": 15, "capacity": 60}) == 0.5
    assert buffer_fill({"buffer_s": 2.0, "resume_s": 0.5}) == 1.0
    assert buffer_fill({"queued": 15, "capacity": 60}) == 0.25  # a player that reports no seconds


def test_a_url_is_remembered_without_its_password(window):
    from holoscope.app import recent

    recent.add_recent("https://ann:secret@example.org/scenes/a.ply")
    assert recent.recent_urls()[0] == "https://example.org/scenes/a.ply"
    assert all("secret" not in u for u in recent.recent_files() + recent.recent_urls())


def test_a_dropped_link_keeps_its_escapes():
    from PySide6.QtCore import QMimeData, QUrl

    from holoscope.app.url_dialog import dropped_urls

    mime = QMimeData()
    mime.setUrls([QUrl("https://example.org/a%20b/%E2%82%AC.ply?part=%2F1")])
    assert dropped_urls(mime) == ["https://example.org/a%20b/%E2%82%AC.ply?part=%2F1"]


def test_the_camera_follows_a_growing_scene(qtbot, served, tmp_path):
    from holoscope.app.main import create_window

    from holoscope.codecs.formats.ply_inria import write_ply

    cloud = random_cloud(20_000, degree=0, seed=9)
    cloud.means[:, 0] *= 10  # a long scene ...
    cloud = cloud.subset(np.argsort(cloud.means[:, 0]))  # ... whose rows go from one end to the other
    local = tmp_path / "sweep.ply"  # (a PLY keeps the rows' order; .splat sorts them by size)
    write_ply(cloud, local)
    data = local.read_bytes()
    served.files["/sweep.ply"] = data
    served.slow["/sweep.ply"] = 0.05  # 16 KiB pieces: about 3 s in all
    served.gate_at["/sweep.ply"] = int(len(data) * 0.9)
    win = create_window([served.url("/sweep.ply")])
    qtbot.addWidget(win)
    win.resize(480, 360)
    win.show()
    qtbot.waitExposed(win)
    try:
        qtbot.waitUntil(lambda: win.viewport.view is not None, timeout=30000)
        first = win.viewport.rig.bounds.size
        qtbot.waitUntil(lambda: win.viewport.view.cloud.count >= 16_000, timeout=30000)  # rows come 4,096 at a time
        qtbot.wait(600)  # the next partial update (at most every 250 ms)
        assert win.viewport.rig.bounds.size > 1.25 * first, "framed again for the grown scene"
    finally:
        served.gate.set()
        win.close()
