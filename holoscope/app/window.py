"""The main window: viewport, toolbar, timeline, status bar, info panel, menus, drag and drop.

Files open on a worker thread (the newest request wins) and the view is built on the GUI
thread; a file that cannot be opened produces a non-modal message and leaves the current media
on screen. A timed view brings the medium's Qt-free :class:`~holoscope.core.player.Player`
(clock, decode-ahead within a byte budget, explicit states); the window drives it (play,
pause, seek, step, loop, speed), polls it on a timer and hands each new frame to the view's
``present``. The player's state and warnings go to the status bar and the info panel. The view
comes from the table in ``view_table.py``; which controls are shown or enabled follows the
view's declared capabilities (interactive, timed, progressive, exportable), never the media kind.

URLs (the command line, File > Open URL, a link dropped from a browser) open on a download
thread of their own (``streaming.py``; the newest request wins, as for files): a row-ordered
splat file is shown from its first rows and grows as it downloads; anything else shows a
download bar in the status bar and opens once complete. A newer open request cancels the
download. A player waiting for data (``BUFFERING``) shows an
overlay on the viewport and the buffer fill in the status bar until it plays on by itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QColor, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from holoscope.app import recent
from holoscope.app.export import ExportDialog, ExportJob, ExportRequest, cameras_for, default_export_name
from holoscope.app.info_panel import InfoPanel, RenderRate, human_bytes, process_memory_bytes, stream_rows
from holoscope.app.streaming import open_url_media
from holoscope.app.url_dialog import OpenUrlDialog, dropped_urls
from holoscope.app.timeline import Timeline
from holoscope.app.view_table import Capabilities, make_view
from holoscope.app.viewport import QtViewport
from holoscope.core.camera_path import interpolate_keyframes, write_camera_path
from holoscope.core.clock import PresentationClock
from holoscope.core.errors import CorruptStream, FormatNotRecognized, HoloscopeError, display_path
from holoscope.core.media import Media
from holoscope.core.player import Player, PlayerState
from holoscope.codecs.inputs import is_sequence_input, open_input
from holoscope.core.registry import formats, supported_summary
from holoscope.core.http import display_url
from holoscope.core.sources import is_url

UP_CHOICES = ("+y", "-y", "+z")
PARTIAL_INTERVAL_MS = 250  # the least time between two uploads of a scene still downloading
BUFFERING_GRACE_S = 0.25  # a player waits this long before the buffering indicator shows


def file_filters() -> str:
    """File dialog filters built from the format registry."""
    specs = formats()
    every = " ".join(sorted({f"*{ext}" for s in specs for ext in s.extensions}))
    rows = [f"All supported files ({every})"]
    rows += [f"{s.description} ({' '.join('*' + e for e in s.extensions)})" for s in specs]
    rows.append("All files (*)")
    return ";;".join(rows)


class MainWindow(QMainWindow):
    _opened = Signal(int, str, object)  # request id, path, Future (queued from the loader thread)
    _partial = Signal()  # a downloading scene's newer prefix waits in _latest_partial
    _progress = Signal(int, object, object)  # request id, bytes received, bytes announced (or None)

    def __init__(self) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.resize(1200, 760)
        self.viewport = QtViewport(self)
        self.timeline = Timeline(self)
        self.timeline.hide()
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.viewport, 1)
        layout.addWidget(self.timeline)
        self.setCentralWidget(central)
        self.info_panel = InfoPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.info_panel)
        self.info_panel.hide()
        self.status_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.status_label)
        self.download_bar = QProgressBar(self)
        self.download_bar.setMaximumWidth(260)
        self.download_bar.setTextVisible(True)
        self.download_bar.hide()
        self.statusBar().addPermanentWidget(self.download_bar)
        self.download: tuple[int, int | None] | None = None  # (received, total) of the open request
        # Over the viewport while the player waits for data; transparent to the mouse.
        self.buffering_label = QLabel(self.viewport)
        self.buffering_label.setObjectName("buffering-indicator")
        self.buffering_label.setStyleSheet(
            "background: rgba(0, 0, 0, 160); color: white; padding: 6px 12px; border-radius: 6px; font-size: 15px")
        self.buffering_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.buffering_label.hide()
        self.url_dialog: OpenUrlDialog | None = None
        self._buffering_since: float | None = None  # when the player last started waiting

        self.media: Media | None = None
        self.media_path: str | None = None
        self.playlist: list[str] = []
        self.playlist_index = -1
        self.error_box: QMessageBox | None = None
        self.export_job: ExportJob | None = None
        self.keyframes: list[Any] = []
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holoscope-open")
        self._open_id = 0
        self._opened.connect(self._on_opened, Qt.ConnectionType.QueuedConnection)
        self._partial.connect(self._on_partial, Qt.ConnectionType.QueuedConnection)
        self._progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._partial_lock = threading.Lock()
        self._latest_partial: tuple[int, str, Any] | None = None  # (request id, url, Partial)
        # The prefix view on screen: its request id and the camera it was framed with.
        self._streaming: tuple[int, Any] | None = None
        # Prefixes after the first are shown at most this often (each one is a full upload).
        self._partial_timer = QTimer(self, singleShot=True, interval=PARTIAL_INTERVAL_MS, timeout=self._apply_partial)
        self._closing = False
        self.player: Player | None = None  # the timed view's player (one per opened timed medium)
        self._idle_clock = PresentationClock()  # what `clock` answers while nothing timed is open
        self._last_warning: str | None = None
        self._last_state: PlayerState | None = None
        self.playback_error: str | None = None  # a decode failure that stopped playback
        self._play_timer = QTimer(self, interval=8, timeout=self._tick)
        self.render_rate = RenderRate()  # every paint time-stamped: the rate shown is measured
        self._info_timer = QTimer(self, interval=500, timeout=self.refresh_info)
        self._info_timer.start()
        self.viewport.frameRendered.connect(lambda ms: self.render_rate.add(time.perf_counter(), ms))
        self.capabilities = Capabilities()

        self._build_actions()
        self._build_toolbar()
        self.timeline.playToggled.connect(self.toggle_play)
        self.timeline.seekRequested.connect(self.seek_frame)
        self.timeline.loopChanged.connect(self.set_loop)
        self.timeline.speedChanged.connect(self.set_speed)
        self.update_title()

    # UI construction -------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcuts: tuple[Any, ...] = (), menu: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_action = self._action("&Open…", self.open_dialog, (QKeySequence.StandardKey.Open,), file_menu)
        self.open_url_action = self._action("Open &URL…", self.open_url_dialog, ("Ctrl+L",), file_menu)
        self._action("Open &Folder…", self.open_folder_dialog, ("Ctrl+Shift+O",), file_menu)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action("Open Demo &Scene", lambda: self.open_demo(video=False), (), file_menu)
        self.demo_video_action = self._action("Open Demo &Video", lambda: self.open_demo(video=True), (), file_menu)
        self.demo_nerv_action = self._action("Open Demo &Neural Video", lambda: self.open_demo(neural=True), (),
                                             file_menu)  # fmt: skip
        self.demo_hashgrid_action = self._action("Open Demo &Hash-Grid Scene", lambda: self.open_demo(hashgrid=True),
                                                 (), file_menu)  # fmt: skip
        self.demo_lod_action = self._action("Open Demo Streamed-&LOD Scene", lambda: self.open_demo(lod=True), (),
                                            file_menu)  # fmt: skip
        file_menu.addSeparator()
        self.screenshot_action = self._action("Save &Screenshot…", self.screenshot_dialog, ("Ctrl+S",), file_menu)
        self.export_action = self._action("&Export Video…", self.export_dialog, ("Ctrl+E",), file_menu)
        self.record_action = self._action("Add Camera &Keyframe", self.add_keyframe, ("K",), file_menu)
        self._action("Save Camera &Path…", self.save_camera_path_dialog, ("Ctrl+Shift+S",), file_menu)
        file_menu.addSeparator()
        self._action("&Quit", self.close, (QKeySequence.StandardKey.Quit,), file_menu)

        view_menu = bar.addMenu("&View")
        self.reset_action = self._action("&Reset View", self.viewport.reset_view, ("R", "Home"), view_menu)
        self.info_action = self._action("&Info Panel", self.toggle_info, ("I",), view_menu)
        self._action("&Background Colour…", self.choose_background, (), view_menu)
        self.budget_action = self._action("Splat &Budget…", self.choose_splat_budget, (), view_menu)  # LOD scenes
        self._action("&Next File", self.next_item, ("N", "PgDown"), view_menu)
        self._action("&Previous File", self.previous_item, ("P", "PgUp"), view_menu)

        play_menu = bar.addMenu("&Playback")
        self.playback_actions = [
            self._action("Play / Pause", self.toggle_play, ("Space",), play_menu),
            self._action("Next Frame", lambda: self.step(1), ("Right", "."), play_menu),
            self._action("Previous Frame", lambda: self.step(-1), ("Left", ","), play_menu),
        ]

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.addAction(self.open_action)
        tb.addSeparator()
        self.toolbar = tb
        first = len(tb.actions())
        tb.addWidget(QLabel(" Up ", self))
        self.up_box = QComboBox(self)
        self.up_box.addItems(UP_CHOICES)
        self.up_box.setToolTip("World up axis: each file opens with its format's default (-Y for PLY, "
                               "SOG, .splat, .ksplat; +Y or the file's own for SPZ); a choice is remembered per file")
        self.up_box.currentTextChanged.connect(self.set_up_axis)
        tb.addWidget(self.up_box)
        tb.addWidget(QLabel(" FOV ", self))
        self.fov_box = QDoubleSpinBox(self)
        self.fov_box.setRange(5, 150)
        self.fov_box.setValue(self.viewport.rig.fov_y)
        self.fov_box.setSuffix("°")
        self.fov_box.valueChanged.connect(self.set_fov)
        tb.addWidget(self.fov_box)
        tb.addWidget(QLabel(" SH ", self))
        self.sh_box = QComboBox(self)
        self.sh_box.addItems(["0", "1", "2", "3"])
        self.sh_box.setCurrentIndex(3)
        self.sh_box.setToolTip("Highest spherical-harmonics degree evaluated")
        self.sh_box.currentIndexChanged.connect(self.set_sh_limit)
        tb.addWidget(self.sh_box)
        tb.addWidget(QLabel(" Splat scale ", self))
        self.scale_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.scale_slider.setRange(5, 200)
        self.scale_slider.setValue(100)
        self.scale_slider.setMaximumWidth(140)
        self.scale_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scale_slider.valueChanged.connect(self.set_splat_scale)
        tb.addWidget(self.scale_slider)
        tb.addSeparator()
        # Up axis, FOV, SH limit and splat scale apply to interactive (splat) views only: their
        # labels, widgets and the separator after them are hidden for anything else.
        self.interactive_controls = tb.actions()[first:]
        tb.addAction(self.screenshot_action)
        tb.addAction(self.export_action)
        tb.addAction(self.info_action)

    # Opening files ---------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> None:
        """Queue ``paths`` as a playlist and open the first one."""
        if not paths:
            return
        self.playlist = [str(p) for p in paths]
        self.playlist_index = 0
        self.open_path(self.playlist[0])

    def open_path(self, path: str | Path, *, locate: Callable[[], Path] | None = None) -> None:
        """Open in the background; the newest request wins. Errors keep the current media.
        ``locate``, when given, finds (or first makes) the file on the loader thread; ``path``
        then names it until it is known. An http(s) URL opens through :meth:`open_url`."""
        if locate is None and is_url(str(path)):
            self.open_url(str(path))
            return
        self._open_id += 1
        request_id, where = self._open_id, [str(path)]

        def job() -> Media:
            if locate is not None:
                where[0] = str(locate())
            return open_input(where[0])

        self.statusBar().showMessage(f"Opening {display_path(Path(where[0]).name)}…")
        future = self._loader.submit(job)
        future.add_done_callback(lambda f: self._opened.emit(request_id, where[0], f))

    def open_url(self, url: str) -> None:
        """Open ``url`` in the background (the newest request wins and cancels an older
        download): a row-ordered splat file is shown while it downloads, anything else once it
        has arrived, with the download's progress in the status bar."""
        self._open_id += 1
        request_id = self._open_id

        def cancelled() -> bool:  # asked by the loader thread between pieces
            return self._closing or self._open_id != request_id

        def on_partial(part: Any) -> None:
            with self._partial_lock:
                self._latest_partial = (request_id, url, part)
            _emit_if_alive(self._partial)

        def job() -> Media:
            return open_url_media(url, cancelled=cancelled, on_partial=on_partial,
                                  on_progress=lambda got, total: _emit_if_alive(self._progress, request_id, got, total))  # fmt: skip

        self.statusBar().showMessage(f"Opening {display_url(url)}…")  # never a password on screen
        self._show_download(request_id, 0, None)
        # A thread of its own, not the loader: a read the server holds up cannot be interrupted,
        # only abandoned (it ends at its next piece or its timeout), and the next file must
        # not queue behind it. A daemon, so that a stalled server never holds up quitting.
        future: Future = Future()
        future.add_done_callback(lambda f: _emit_if_alive(self._opened, request_id, url, f))

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as exc:  # noqa: BLE001 - reported on the GUI thread
                    future.set_exception(exc)

        threading.Thread(target=run, name="holoscope-download", daemon=True).start()

    def _show_download(self, request_id: int, received: int, total: int | None) -> None:
        if request_id != self._open_id:
            return
        self.download = (int(received), None if total is None else int(total))
        bar = self.download_bar
        if total:
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * min(received / total, 1.0)))
            bar.setFormat(f"{human_bytes(received)} / {human_bytes(total)}")
        else:
            bar.setRange(0, 0)  # busy: the length is not known
            bar.setFormat(human_bytes(received))
        bar.setToolTip(f"Downloaded {received:,} of {total:,} bytes" if total else f"Downloaded {received:,} bytes")
        bar.show()

    def _on_progress(self, request_id: int, received: int, total: int | None) -> None:
        self._show_download(request_id, received, total)

    def _on_partial(self) -> None:
        """A newer prefix of the scene being downloaded: the first is shown at once, later ones
        at most every ``_partial_timer`` interval (the newest one then)."""
        if self._streaming is None or self._streaming[0] != self._open_id:
            self._apply_partial()
        elif not self._partial_timer.isActive():
            self._partial_timer.start()

    def _apply_partial(self) -> None:
        with self._partial_lock:
            item, self._latest_partial = self._latest_partial, None
        if item is None:
            return
        request_id, url, part = item
        if request_id != self._open_id or part.cloud is None:
            return
        from holoscope.codecs.progressive import prefix_media

        if self._streaming is not None and self._streaming[0] == request_id:
            view = self.viewport.view
            started = time.perf_counter()
            self.viewport.with_context(lambda _ctx: view.update_cloud(part.cloud))
            # A large scene costs more per upload: it grows less often, the GUI stays fluid.
            cost_ms = (time.perf_counter() - started) * 1e3
            self._partial_timer.setInterval(int(max(PARTIAL_INTERVAL_MS, 4 * cost_ms)))
            self._reframe_growing(view)
            self.viewport.update()
        else:
            media = prefix_media(part)
            try:
                view = self.viewport.with_context(lambda ctx: self._make_view(ctx, media))
            except Exception as exc:  # e.g. a GPU too small: stop the download, keep the old view
                self._open_id += 1
                self.download_bar.hide()
                self.show_error(url, exc)
                return
            self._install(media, url, view, complete=False)
            self._streaming = (request_id, self._camera_state())
        total = f" of {part.total // 32:,}" if part.format == "splat" and part.total else ""
        self.statusBar().showMessage(f"Loading {display_path(Path(url).name)}: {part.cloud.count:,}{total} splats so far")
        self.refresh_info()

    def _reframe_growing(self, view: Any) -> None:
        """While a scene downloads, the camera follows its growth (framed again when the
        scene's extent has grown by a quarter) as long as the user has not moved it: the first
        rows of a file are often one corner of the scene."""
        import numpy as np

        request_id, (pose, fov) = self._streaming  # type: ignore[misc]
        now_pose, now_fov = self._camera_state()
        if not (np.allclose(now_pose, pose) and now_fov == fov):
            return  # the user took the camera: it stays theirs
        bounds, framed = view.bounds(), self.viewport.rig.bounds
        if bounds.size > 1.25 * (framed.size if framed is not None else 0.0):
            self.viewport.rig.set_bounds(bounds)
            self._streaming = (request_id, self._camera_state())

    def _camera_state(self) -> tuple[Any, float]:
        return self.viewport.rig.camera(64, 64).camera_to_world.copy(), self.viewport.rig.fov_y

    def _finish_stream(self, media: Media, url: str) -> None:
        """The whole scene has arrived: it replaces the prefix in the same view. The camera is
        framed for the whole scene unless the user has moved it meanwhile."""
        import numpy as np

        view, (_, (pose, fov)) = self.viewport.view, self._streaming
        self._streaming = None
        self.viewport.with_context(lambda _ctx: view.update_cloud(media.frame(0)))
        old, self.media, view.media = self.media, media, media
        if old is not None and old is not media:
            old.release()
        now_pose, now_fov = self._camera_state()
        if np.allclose(now_pose, pose) and now_fov == fov:
            w, h = self.viewport.device_size()
            self.viewport.rig.aspect = w / h
            self.viewport.rig.set_bounds(view.bounds())
        self.viewport.update()
        recent.add_recent(url)
        self.update_title()
        self.statusBar().showMessage(f"Opened {display_path(Path(url).name)} ({media.reader})", 4000)
        self.refresh_info()

    def open_demo(self, video: bool = False, neural: bool = False, hashgrid: bool = False, lod: bool = False) -> None:
        """The built-in demo scene, demo Gaussian video, demo neural video, demo hash-grid scene
        or demo streamed-LOD scene; the first two and the last are made on first use (the video takes seconds to encode, so that
        happens on the loader thread, never the GUI thread), the neural ones are shipped."""
        from holoscope.assets.demo import demo_path
        from holoscope.assets.demo_hashgrid import demo_hashgrid_path
        from holoscope.assets.demo_lod import demo_lod_path
        from holoscope.assets.demo_nerv import demo_nerv_path
        from holoscope.assets.demo_video import demo_video_path

        self.playlist, self.playlist_index = [], -1
        if lod:
            self.open_path("demo-lod", locate=demo_lod_path)
        elif hashgrid:
            self.open_path("demo-hashgrid", locate=demo_hashgrid_path)
        elif neural:
            self.open_path("demo-nerv", locate=demo_nerv_path)
        else:
            self.open_path("demo-video" if video else "demo", locate=demo_video_path if video else demo_path)

    def _on_opened(self, request_id: int, path: str, future: Future) -> None:
        error = future.exception()
        if request_id != self._open_id:  # a newer request superseded this one
            if error is None:
                future.result().release()
            return
        with self._partial_lock:  # a prefix still queued is older than the result
            self._latest_partial = None
        self._partial_timer.stop()
        self.download_bar.hide()
        self.download = None
        streamed = self._streaming is not None and self._streaming[0] == request_id
        if error is not None:
            self._streaming = None  # a prefix on screen stays (the rows that arrived are good)
            self.statusBar().clearMessage()
            self.show_error(path, error)
            return
        media: Media = future.result()
        if streamed:
            self._finish_stream(media, path)
            return
        self.show_media(media, path)

    def show_media(self, media: Media, path: str) -> bool:
        """Show an opened medium (on the GUI thread): its view is built and installed, or the
        reason it cannot be shown is reported and the current media stays."""
        try:
            view = self.viewport.with_context(lambda ctx: self._make_view(ctx, media))
        except Exception as exc:  # e.g. a GPU too small for the scene
            media.release()
            self.show_error(path, exc)
            return False
        self._install(media, path, view)
        return True

    def _make_view(self, ctx: Any, media: Media) -> Any:
        """The view the table names for the media's kind (an unknown kind is a HoloscopeError)."""
        return make_view(ctx, media, self.viewport.repaintRequested.emit)

    def apply_capabilities(self, caps: Capabilities) -> None:
        """Show and enable the controls that apply to what the view supports."""
        self.capabilities = caps
        for action in self.interactive_controls:
            action.setVisible(caps.interactive)
        self.reset_action.setEnabled(caps.interactive)
        self.record_action.setEnabled(caps.interactive)
        for action in self.playback_actions:
            action.setEnabled(caps.timed)
        self.export_action.setEnabled(caps.exportable)
        self.budget_action.setEnabled(hasattr(self.viewport.view, "set_splat_budget"))

    def _install(self, media: Media, path: str, view: Any, *, complete: bool = True) -> None:
        """Show ``view`` of ``media``; ``complete`` is False for the first prefix of a scene
        still downloading (remembered as recent once it has all arrived)."""
        self.pause()
        old = self.media
        self.media, self.media_path = media, path
        # The user's choice for this file, else the file's own default (its format's, or what
        # the file says), else +Y.
        up = recent.remembered_up(path) or media.info.get("default_up") or "+y"
        if up not in UP_CHOICES:  # a reader's default that the box does not offer
            up = "+y"
        self.up_box.blockSignals(True)
        self.up_box.setCurrentText(up)
        self.up_box.blockSignals(False)
        self.viewport.rig.up = up
        self.player = None  # the old view's player closes with it
        self.viewport.set_view(view)
        if old is not None:
            old.release()
        self.keyframes.clear()
        caps = Capabilities.of(view)
        timed = caps.timed and media.fps > 0
        self._last_warning = self.playback_error = None
        self._last_state = None
        self.timeline.setVisible(timed)
        if timed:
            player: Player = view.player
            player.loop = self.timeline.loop_box.isChecked()
            player.set_rate(self.timeline.speed_box.currentData())
            self.player = player
            self.timeline.configure(media.frame_count, media.duration)
            self._play_timer.start()  # polls until frame 0 is decoded: the GUI thread never waits
        self.apply_capabilities(caps)
        self._show_buffering(None)
        self.update_title()
        if complete:
            recent.add_recent(path)
            self.statusBar().showMessage(f"Opened {display_path(Path(path).name)} ({media.reader})", 4000)
        self.refresh_info()

    def show_error(self, path: str, error: BaseException) -> None:
        """A non-modal message naming the file, the reason and the supported formats."""
        reason = str(error)
        if isinstance(error, HoloscopeError) and error.path:
            reason = reason.removeprefix(f"{error.path}: ")
        elif isinstance(error, MemoryError):
            reason = "out of memory (lower the decode budget with --max-memory to be refused earlier)"
        elif not isinstance(error, HoloscopeError):
            reason = f"{type(error).__name__}: {reason}"
        # a URL by its whole address (the host matters), a file by its name
        name = display_url(path) if is_url(path) else display_path(Path(path).name)
        text = f"Cannot open {name}: {reason}"
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, "holoscope", text, QMessageBox.StandardButton.Ok, self)
        if not is_url(path) or isinstance(error, (FormatNotRecognized, CorruptStream)):
            # (a URL the server would not give says nothing about formats)
            box.setInformativeText(f"Supported formats: {supported_summary()}")
        box.setModal(False)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self.error_box = box
        self.statusBar().showMessage(text, 8000)

    def open_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Open", str(Path.home()), file_filters())
        if names:
            self.open_paths(names)

    def open_url_dialog(self) -> None:
        """File > Open URL (Ctrl+L): the recent URLs offered, any http(s) URL accepted."""
        if self.url_dialog is not None:
            self.url_dialog.close()
        dialog = OpenUrlDialog(self)
        dialog.accepted.connect(lambda: self.open_paths([dialog.url()]))
        self.url_dialog = dialog
        dialog.open()  # window-modal, without a nested event loop

    def open_folder_dialog(self) -> None:
        """A folder of per-frame splat files plays as a sequence, a V^3 stream or .gsv segment
        folder as a Gaussian video (an unbundled SOG opens as a scene)."""
        name = QFileDialog.getExistingDirectory(self, "Open folder", str(Path.home()))
        if name:
            self.open_paths([name])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = recent.recent_files()
        for path in items:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if not items:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", recent.clear_recent)

    def next_item(self) -> None:
        if self.playlist_index + 1 < len(self.playlist):
            self.playlist_index += 1
            self.open_path(self.playlist[self.playlist_index])

    def previous_item(self) -> None:
        if self.playlist_index > 0:
            self.playlist_index -= 1
            self.open_path(self.playlist[self.playlist_index])

    def update_title(self) -> None:
        name = Path(self.media_path).name if self.media_path else "holoscope"
        extra = f" [{self.playlist_index + 1}/{len(self.playlist)}]" if len(self.playlist) > 1 else ""
        self.setWindowTitle(f"{name}{extra} — holoscope" if self.media_path else "holoscope")

    # Drag and drop ---------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or dropped_urls(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if isinstance(url, QUrl) and url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_dropped(paths)
            return
        urls = dropped_urls(event.mimeData())  # a link dragged from a browser
        if urls:
            event.acceptProposedAction()
            self.open_paths(urls)

    def open_dropped(self, paths: list[str]) -> None:
        """Open the first supported file; the rest become the playlist (next/previous)."""
        from holoscope.core.registry import resolve

        supported = []
        for p in paths:
            if is_sequence_input(p):  # a dropped folder of frames plays as a sequence
                supported.append(p)
                continue
            try:
                resolve(p)
                supported.append(p)
            except HoloscopeError:
                continue
        if supported:
            self.open_paths(supported)
        else:
            self.open_path(paths[0])  # reports why it cannot be opened

    # View settings ---------------------------------------------------------------------
    def set_up_axis(self, up: str) -> None:
        self.viewport.rig.set_up(up)
        if self.media_path:
            recent.remember_up(self.media_path, up)
        self.viewport.update()

    def set_fov(self, fov: float) -> None:
        self.viewport.rig.set_fov(fov)
        self.viewport.update()

    def _settings(self, **changes: Any) -> None:
        from dataclasses import replace

        self.viewport.settings = replace(self.viewport.settings, **changes)
        self.viewport.update()

    def set_sh_limit(self, degree: int) -> None:
        self._settings(sh_degree_limit=int(degree))

    def set_splat_scale(self, percent: int) -> None:
        self._settings(scale_modifier=percent / 100.0)

    def set_background(self, rgb: tuple[float, float, float]) -> None:
        self._settings(background=tuple(float(c) for c in rgb))

    def choose_background(self) -> None:
        r, g, b = (round(c * 255) for c in self.viewport.settings.background)
        color = QColorDialog.getColor(QColor(r, g, b), self, "Background colour")
        if color.isValid():
            self.set_background((color.redF(), color.greenF(), color.blueF()))

    def choose_splat_budget(self) -> None:
        if hasattr(self.viewport.view, "set_splat_budget"):  # a streamed-LOD scene (app/lod_view.py)
            from holoscope.app.lod_view import ask_splat_budget

            ask_splat_budget(self, self.viewport.view)

    def toggle_info(self) -> None:
        self.info_panel.setVisible(not self.info_panel.isVisible())
        self.refresh_info()

    # Playback --------------------------------------------------------------------------
    @property
    def clock(self) -> PresentationClock:
        """The presentation clock of the open timed medium (its player's)."""
        return self.player.clock if self.player is not None else self._idle_clock

    @property
    def current_index(self) -> int:
        """The position on the timeline: the frame due at the player's clock time."""
        return self.player.due if self.player is not None else 0

    def set_loop(self, loop: bool) -> None:
        if self.player is not None:
            self.player.loop = loop

    def set_speed(self, rate: float) -> None:
        if self.player is not None:
            self.player.set_rate(rate)

    def toggle_play(self) -> None:
        if self.player is None:
            return
        if self.player.clock.playing:
            self.pause()
            return
        self.playback_error = None
        self.player.play()
        self._play_timer.start()
        self.timeline.set_playing(True)
        self._tick()

    def pause(self) -> None:
        """Pause; the timer keeps polling until the frame due is on screen."""
        if self.player is not None:
            self.player.pause()
        else:
            self._play_timer.stop()
        self.timeline.set_playing(False)

    def seek_frame(self, index: int) -> None:
        if self.player is None:
            return
        self.player.seek(index)
        self._play_timer.start()  # polls until the decoder delivers the requested frame
        self._tick()

    def step(self, delta: int) -> None:
        if self.player is not None:
            self.player.step(delta)
            self.timeline.set_playing(False)
            self._play_timer.start()
            self._tick()

    def _tick(self) -> None:
        """Poll the player: a new frame goes to the view for the next paint; the state and any
        warning go to the status bar. Stops once paused (or ended) on the frame due."""
        player, view = self.player, self.viewport.view
        if player is None or view is None:
            self._play_timer.stop()
            self.timeline.set_playing(False)
            return
        try:
            frame = player.poll()
        except Exception as exc:  # the decoder failed: stop, say why, keep the last picture
            player.pause()
            self._play_timer.stop()
            self.timeline.set_playing(False)
            self.playback_error = f"playback stopped: {exc}"
            self.statusBar().showMessage(self.playback_error, 8000)
            self.refresh_info()
            return
        if frame is not None:
            view.present(frame)
            self.viewport.update()
        warning = player.warning
        if warning and warning != self._last_warning:  # a frame that could not be read, named
            self._last_warning = warning
            self.statusBar().showMessage(warning, 6000)
        due = player.due
        self.timeline.show_position(due, due / player.fps)
        state = player.state
        if state is not self._last_state:
            self._last_state = state
            self.timeline.set_playing(player.clock.playing)
            self.refresh_info()
        self._show_buffering(player if state is PlayerState.BUFFERING else None)
        if player.settled:
            self._play_timer.stop()

    def _show_buffering(self, player: Player | None) -> None:
        """The buffering indicator: an overlay on the viewport and the buffer fill in the status
        bar while ``player`` waits for data; gone (``None``) once it plays on."""
        label = self.buffering_label
        if player is not None:  # a frame late by a few ms is no stall: no flicker on local files
            now = time.monotonic()
            self._buffering_since = self._buffering_since or now
            if now - self._buffering_since < BUFFERING_GRACE_S:
                return
        else:
            self._buffering_since = None
        if player is None:
            if label.isVisible():
                label.hide()
                if self.statusBar().currentMessage().startswith("Buffering"):
                    self.statusBar().clearMessage()
            return
        fill = buffer_fill(player.stats())
        text = "Buffering…" if fill is None else f"Buffering… {fill:.0%}"
        if label.text() != text or not label.isVisible():
            label.setText(text)
            label.adjustSize()
            label.move(12, 12)
            label.show()
            label.raise_()
            self.statusBar().showMessage(text)

    # Screenshot, export, camera path ---------------------------------------------------
    def save_screenshot(self, path: str | Path) -> None:
        image = self.viewport.screenshot()
        if not image.save(str(path), "PNG"):
            raise HoloscopeError("cannot write the screenshot", path=path)
        self.statusBar().showMessage(f"Saved {path}", 4000)

    def screenshot_dialog(self) -> None:
        stem = Path(self.media_path).stem if self.media_path else "holoscope"
        name, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(Path.home() / f"{stem}.png"), "PNG (*.png)")
        if name:
            try:
                self.save_screenshot(name)
            except HoloscopeError as exc:
                self.show_error(name, exc)

    def start_export(self, request: ExportRequest) -> ExportJob | None:
        """Start rendering in the background; returns the job (its signals report progress)."""
        view = self.viewport.view
        if view is None or not Capabilities.of(view).exportable:
            self.statusBar().showMessage("Export needs a splat scene", 4000)
            return None
        if self.export_job is not None and self.export_job.thread.isRunning():
            self.statusBar().showMessage("An export is already running", 4000)
            return None
        try:
            cams = cameras_for(request, self.viewport.current_camera(), self.viewport.rig.orbit)
        except HoloscopeError as exc:
            self.show_error(request.output, exc)
            return None
        job = ExportJob(getattr(view, "export_cloud", None) or view.cloud, cams, request, self.viewport.settings)
        job.finished.connect(self._export_finished)
        self.export_job = job
        job.start()
        return job

    def _export_finished(self, ok: bool, message: str) -> None:
        if ok:
            self.statusBar().showMessage(message, 6000)
        else:
            self.show_error(self.export_job.request.output if self.export_job else "export", HoloscopeError(message))

    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QProgressDialog

        w, h = self.viewport.device_size()
        dialog = ExportDialog(self, width=w, height=h, default_output=default_export_name(self.media_path))
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        job = self.start_export(dialog.request())
        if job is None:
            return
        progress = QProgressDialog("Rendering…", "Cancel", 0, 100, self)
        progress.setWindowModality(Qt.WindowModality.NonModal)
        progress.setAutoClose(True)
        progress.canceled.connect(job.cancel)
        job.progress.connect(lambda done, total: (progress.setMaximum(total), progress.setValue(done)))
        job.finished.connect(lambda *_: progress.close())
        progress.show()

    def add_keyframe(self) -> None:
        if not Capabilities.of(self.viewport.view).interactive:
            return
        self.keyframes.append(self.viewport.current_camera())
        self.statusBar().showMessage(f"Keyframe {len(self.keyframes)} recorded (save with Ctrl+Shift+S)", 4000)

    def save_camera_path(self, path: str | Path, *, seconds_per_keyframe: float = 2.0, fps: float = 30.0) -> int:
        cam_path = interpolate_keyframes(self.keyframes, seconds_per_keyframe=seconds_per_keyframe, fps=fps)
        write_camera_path(cam_path, path)
        return len(cam_path)

    def save_camera_path_dialog(self) -> None:
        if not self.keyframes:
            self.statusBar().showMessage("No keyframes yet: press K to record the current view", 4000)
            return
        name, _ = QFileDialog.getSaveFileName(self, "Save camera path", str(Path.home() / "camera_path.json"), "JSON (*.json)")
        if name:
            n = self.save_camera_path(name)
            self.statusBar().showMessage(f"Saved {n} cameras to {name}", 4000)

    # Info ------------------------------------------------------------------------------
    def refresh_info(self) -> None:
        rows = self.info_rows()
        shown = ("Playback", "Splats", "Resolution", "Render")
        self.status_label.setText(" · ".join(rows[k] for k in shown if k in rows))
        if self.info_panel.isVisible():
            self.info_panel.show_rows(rows)

    def info_rows(self) -> dict[str, str]:
        rows: dict[str, str] = {}
        media, view = self.media, self.viewport.view
        stats = view.stats() if view is not None else {}
        if media is not None:
            rows["File"] = Path(self.media_path or "").name
            rows["Format"] = media.format
            rows["Reader"] = media.reader
            if (media.frame_count or 0) > 1:
                rows["Frames"] = f"{media.frame_count} at {media.fps:g} fps"
        rows.update(stats.get("details") or {})  # what the view adds about its medium (a video's groups ...)
        if self.player is not None:
            rows["Playback"] = self.player.state.value
        if "splats" in stats:
            rows["Splats"] = f"{stats['splats']:,} splats, SH {stats['sh_degree']}"
        if "width" in stats:
            rows["Resolution"] = f"{stats['width']}x{stats['height']}"
        if "bitrate" in stats and stats["bitrate"]:
            rows["Bitrate"] = f"{stats['bitrate'] / 1e6:.2f} Mb/s"
        # Measured paints per second while painting; the last paint's cost when idle.
        rows["Render"] = self.render_rate.describe(time.perf_counter())
        if "decode_fps" in stats:
            rows["Decode"] = f"{stats['decode_fps']:.0f} fps, {stats['decode_ms']:.1f} ms/frame"
        if "decode_path" in stats:
            rows["Decode path"] = stats["decode_path"]
        if "frame" in stats:
            rows["Frame"] = stats["frame"]
        if "prefetched" in stats:
            rows["Read ahead"] = stats["prefetched"]
        remote = self.media_path is not None and is_url(self.media_path)
        if remote or self.download is not None:
            rows.update(stream_rows(self.media_path if remote else None, self.download,
                                    self.player.stats() if self.player is not None else {}))  # fmt: skip
        elif self.player is not None:  # a local medium may still report its buffer and level
            rows.update(stream_rows(None, None, self.player.stats(), network=False))
        warning = self.playback_error or (self.player.warning if self.player is not None else None)
        warning = warning or stats.get("warning")
        if warning:
            rows["Warning"] = warning
        rows["Memory (CPU)"] = human_bytes(process_memory_bytes())
        if "gpu_bytes" in stats:
            rows["Memory (GPU)"] = human_bytes(stats["gpu_bytes"])
        if self.viewport.gl_renderer:
            rows["Renderer"] = f"OpenGL on {self.viewport.gl_renderer}"
        return rows

    # Shutdown --------------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:
        self._closing = True  # a download on the loader thread stops at its next piece
        self._partial_timer.stop()
        self.pause()
        self._play_timer.stop()
        self.player = None  # closed with its view below
        self._info_timer.stop()
        if self.export_job is not None and self.export_job.thread.isRunning():
            self.export_job.cancel()
            self.export_job.thread.wait(10_000)
        self._loader.shutdown(wait=True, cancel_futures=True)
        self.viewport.release_gl()
        if self.media is not None:
            self.media.release()
            self.media = None
        if self.error_box is not None:
            self.error_box.close()
        super().closeEvent(event)


def buffer_fill(stats: dict[str, Any]) -> float | None:
    """How full the player's buffer is (0..1) from what its ``stats()`` report: the seconds
    buffered over the seconds at which playback resumes when both are there, else the decoded
    frames queued over the queue's capacity."""
    have, want = stats.get("buffer_s"), stats.get("resume_s")  # playback resumes at want
    if isinstance(have, (int, float)) and isinstance(want, (int, float)) and want > 0:
        return max(0.0, min(have / want, 1.0))
    queued, capacity = stats.get("queued"), stats.get("capacity")
    if isinstance(queued, int) and isinstance(capacity, int) and capacity > 0:
        return max(0.0, min(queued / capacity, 1.0))
    return None


def _emit_if_alive(signal: Any, *args: Any) -> None:
    """Emit from a download thread that may outlive its window (an abandoned download ends
    after the window is gone): a deleted window has nothing to tell."""
    try:
        signal.emit(*args)
    except RuntimeError:
        pass
