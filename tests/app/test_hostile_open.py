"""Hostile files opened in the real main window (Xvfb): each must end in a non-modal message
naming the file while the window keeps responding, the previous scene stays on screen, and the
loader thread stays free for the next file.

The decode budget is set small (``budget.set_limit``) for every case: the test process has no
address-space limit, and a reader that trusts a generous default would otherwise try to load
gigabytes into the test itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QApplication

from holoscope.core import budget
from holoscope.core.errors import display_path

from ..hostile.cases import sog_files, sparse_file, write_zip
from .conftest import wait_for_media

BUDGET = 64 << 20
ERROR_TIMEOUT_MS = 20000


def _unzip_sample(sample: Path, folder: Path) -> Path:
    import zipfile

    folder.mkdir()
    with zipfile.ZipFile(sample) as zf:
        for info in zf.infolist():
            (folder / Path(info.filename).name).write_bytes(zf.read(info))
    return folder


def _make(kind: str, tmp_path: Path, samples_dir: Path) -> tuple[Path, list[Path]]:
    """The hostile input and the FIFOs it involves (unblocked after the test whatever happens)."""
    if kind == "fifo":
        path = tmp_path / "pipe.ply"
        os.mkfifo(path)
        return path, [path]
    if kind == "sog-bomb":
        return write_zip(tmp_path / "bomb-4096.sog", sog_files(4096**2, 4096, 4096)), []
    if kind == "sog-inconsistent":
        return write_zip(tmp_path / "bomb-8192-count4.sog", sog_files(4, 8192, 8192)), []
    if kind == "sparse-splat":
        return sparse_file(tmp_path / "huge.splat", 8 << 30), []
    if kind == "damaged-ply":
        data = (samples_dir / "splats" / "lod4.ply").read_bytes()
        path = tmp_path / "cut.ply"
        path.write_bytes(data[: len(data) // 2])
        return path, []
    if kind == "sog-fifo-member":
        folder = _unzip_sample(samples_dir / "splat-sequences" / "wave" / "wave_0001.sog", tmp_path / "fifo-member-sog")
        (folder / "means_u.webp").unlink()
        os.mkfifo(folder / "means_u.webp")
        return folder, [folder / "means_u.webp"]
    raise AssertionError(kind)


def _unblock(fifos: list[Path]) -> None:
    # A reader stuck in open() of a FIFO wakes when a writer appears; closing it again gives EOF.
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        except OSError:
            pass


class _Heartbeat:
    """A 20 ms GUI timer recording the longest gap between its ticks (a blocked GUI thread)."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = 0
        self.longest = 0
        self.ticks = 0
        self.timer = QTimer(interval=20, timeout=self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        self.ticks += 1

    def stop(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.longest = max(self.longest, self.clock.elapsed() - self.last)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["fifo", "sog-bomb", "sog-inconsistent", "sparse-splat", "damaged-ply",
                                  "sog-fifo-member"])  # fmt: skip
def test_hostile_file_shows_a_message_and_the_window_keeps_working(window, qtbot, samples_dir, tmp_path, kind):
    lod4 = samples_dir / "splats" / "lod4.ply"
    window.open_path(lod4)
    wait_for_media(qtbot, window, "lod4.ply")
    view_before = window.viewport.view
    hostile, fifos = _make(kind, tmp_path, samples_dir)
    name = display_path(hostile.name)
    budget.set_limit(BUDGET, "the test")
    beat = _Heartbeat()
    try:
        window.open_path(hostile)
        qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=ERROR_TIMEOUT_MS)
        beat.stop()
        box = window.error_box
        text = box.text()
        assert name in text, f"the message must name {name!r}: {text!r}"
        assert not box.isModal() and box.windowModality() == Qt.WindowModality.NonModal, "the message is not modal"
        assert beat.longest < 2000, f"the GUI thread stalled for {beat.longest} ms while opening"

        fired = []
        QTimer.singleShot(0, lambda: fired.append(True))
        qtbot.waitUntil(lambda: bool(fired), timeout=1000)
        started = time.monotonic()
        QApplication.processEvents()
        assert time.monotonic() - started < 0.5, "processEvents must return promptly"
        assert window.media_path == str(lod4) and window.viewport.view is view_before, "the previous scene stays"
        frames = window.viewport.frames_painted
        window.viewport.update()
        qtbot.waitUntil(lambda: window.viewport.frames_painted > frames, timeout=10000)

        # The loader is free: a valid file opens right after (within the same small budget).
        window.open_path(samples_dir / "splats" / "lod5.ply")
        wait_for_media(qtbot, window, "lod5.ply", timeout=20000)
    finally:
        beat.stop()
        _unblock(fifos)
        budget.set_limit(None)
