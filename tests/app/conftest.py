"""GUI tests run on a real X server: an Xvfb started for the test session, Qt's xcb platform
and a real OpenGL context (Mesa llvmpipe through GLX). No offscreen stubs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="session", autouse=True)
def xvfb_display(tmp_path_factory):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (bash .ci/install-system installs it)")
    n = _free_display()
    # -terminate: the server exits when its last client (this process's QApplication) goes, which
    # happens after every Python-level hook; stopping it earlier makes Qt's teardown complain.
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-terminate"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    socket = Path(f"/tmp/.X11-unix/X{n}")
    deadline = time.monotonic() + 10
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb :{n} did not start")
        time.sleep(0.05)
    old = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")}
    os.environ["DISPLAY"] = f":{n}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))  # QSettings go here
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    from holoscope.app.main import _configure_gl

    _configure_gl()  # before pytest-qt creates the QApplication
    yield f":{n}"
    del old


@pytest.fixture
def window(qtbot):
    """A shown main window with nothing opened yet; closed (and checked for errors) after."""
    from holoscope.app.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(800, 600)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()  # window shortcuts (Space, I, K, Ctrl+S ...) need the active window
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    yield win
    win.close()


def wait_for_media(qtbot, win, name: str, timeout: int = 20000) -> None:
    qtbot.waitUntil(lambda: win.media_path is not None and Path(win.media_path).name == name, timeout=timeout)
    qtbot.waitUntil(lambda: win.viewport.frames_painted > 0 and win.viewport.view is not None, timeout=timeout)
