"""Start the desktop app: Qt application, GL surface format, main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _configure_gl() -> None:
    from PySide6.QtGui import QSurfaceFormat

    fmt = QSurfaceFormat()
    fmt.setVersion(4, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(0)
    fmt.setSwapInterval(1)
    QSurfaceFormat.setDefaultFormat(fmt)


def create_window(paths: list[str]):  # -> MainWindow (imported lazily)
    """Build the main window and start opening ``paths`` (the built-in demo when empty)."""
    from PySide6.QtGui import QIcon

    from holoscope.app.window import MainWindow
    from holoscope.codecs.builtin import register_builtin_formats

    register_builtin_formats()  # idempotent: the CLI did it already, a test building a window may not
    window = MainWindow()
    icon = Path(__file__).resolve().parent.parent / "assets" / "icons" / "holoscope.svg"
    if icon.is_file():
        window.setWindowIcon(QIcon(str(icon)))
    if paths:
        window.open_paths(paths)
    else:
        from holoscope.assets.demo import demo_path

        window.open_paths([str(demo_path())])
    return window


def run_app(paths: list[str]) -> int:
    """Run the GUI until the window closes. ``HOLOSCOPE_STARTUP_PROBE=1`` prints
    ``first-frame`` on stdout once the first scene frame is painted and quits (benchmarks)."""
    _configure_gl()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("holoscope")
    app.setOrganizationName("holoscope")
    app.setDesktopFileName("holoscope")  # lets Wayland/GNOME match the window to the menu entry
    window = create_window(paths)
    if os.environ.get("HOLOSCOPE_STARTUP_PROBE"):
        def probe(_ms: float) -> None:
            if window.viewport.view is not None:
                print(f"first-frame torch={'torch' in sys.modules}", flush=True)
                app.quit()

        window.viewport.frameRendered.connect(probe)
    window.show()
    return app.exec()
