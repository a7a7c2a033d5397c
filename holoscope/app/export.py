"""Export video (Ctrl+E): a dialog, and a background job running the headless render path.

The job renders on its own standalone EGL context in a worker thread, so the window stays
responsive; progress and completion cross to the GUI thread as queued Qt signals, and Cancel
sets an event the render loop checks between frames (the partial file is removed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from holoscope.core.camera import Camera, OrbitController
from holoscope.core.camera_path import CameraPath, orbit_path, read_camera_path
from holoscope.core.errors import HoloscopeError
from holoscope.core.frames import SplatCloud
from holoscope.render.gl.splat_renderer import RenderSettings


@dataclass(frozen=True)
class ExportRequest:
    output: str
    width: int
    height: int
    fps: float
    codec: str | None
    camera: str  # "current" | "orbit" | "path"
    frames: int = 60  # for "current" (a still shot) and "orbit"
    camera_path_file: str | None = None


def cameras_for(request: ExportRequest, current: Camera, orbit: OrbitController) -> CameraPath:
    """Turn the dialog's camera choice into a camera path at the requested size."""
    if request.camera == "path":
        if not request.camera_path_file:
            raise HoloscopeError("choose a camera path file")
        return read_camera_path(request.camera_path_file).resized(request.width, request.height)
    if request.camera == "orbit":
        return orbit_path(orbit, request.frames, width=request.width, height=request.height,
                          fps=request.fps, fov_y=current.fov_y, near=current.near)  # fmt: skip
    still = Camera(request.width, request.height, current.fov_y, current.camera_to_world, current.near)
    return CameraPath((still,) * max(1, request.frames), request.fps)


class ExportJob(QObject):
    """Runs one export on a QThread. Signals arrive on the GUI thread (queued)."""

    progress = Signal(int, int)
    finished = Signal(bool, str)  # ok, message

    def __init__(self, cloud: SplatCloud | Callable[[], SplatCloud], path: CameraPath, request: ExportRequest,
                 settings: RenderSettings) -> None:  # fmt: skip
        """``cloud``: the scene, or a function giving it on the export's thread (a scene that
        must be read or downloaded first)."""
        super().__init__()
        self.cloud, self.path, self.request, self.settings = cloud, path, request, settings
        self.cancel_event = threading.Event()
        self.thread = QThread()
        self.thread.setObjectName("holoscope-export")
        self.moveToThread(self.thread)
        self.thread.started.connect(self.run)
        self.finished.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        from holoscope.render.export import ExportOptions, render_to_output

        try:
            cloud = self.cloud() if callable(self.cloud) else self.cloud
            n = render_to_output(
                cloud,
                self.path,
                self.request.output,
                ExportOptions(codec=self.request.codec, settings=self.settings),
                progress=lambda done, total: self.progress.emit(done, total),
                cancel=self.cancel_event,
            )
            self.finished.emit(True, f"Exported {n} frames to {self.request.output}")
        except HoloscopeError as exc:
            self.finished.emit(False, str(exc))
        except Exception as exc:  # keep the thread alive and the user informed
            self.finished.emit(False, f"export failed: {type(exc).__name__}: {exc}")


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget | None, *, width: int, height: int, default_output: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export video")
        form = QFormLayout(self)
        self.output = QLineEdit(default_output, self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_output)
        row = QHBoxLayout()
        row.addWidget(self.output)
        row.addWidget(browse)
        form.addRow("File", row)
        self.width_box, self.height_box = QSpinBox(self), QSpinBox(self)
        for box, value in ((self.width_box, width), (self.height_box, height)):
            box.setRange(16, 8192)
            box.setValue(value - value % 2)
            box.setSingleStep(2)
        size = QHBoxLayout()
        size.addWidget(self.width_box)
        size.addWidget(self.height_box)
        form.addRow("Size", size)
        self.fps_box = QSpinBox(self)
        self.fps_box.setRange(1, 240)
        self.fps_box.setValue(30)
        form.addRow("Frame rate", self.fps_box)
        self.codec_box = QComboBox(self)
        for name in ("h264", "hevc", "av1", "ffv1"):
            self.codec_box.addItem(name)
        form.addRow("Codec", self.codec_box)
        self.frames_box = QSpinBox(self)
        self.frames_box.setRange(1, 100000)
        self.frames_box.setValue(120)
        form.addRow("Frames", self.frames_box)
        self.camera_group = QButtonGroup(self)
        cams = QHBoxLayout()
        for i, (key, label) in enumerate((("current", "Current view"), ("orbit", "Orbit"), ("path", "Camera path file"))):
            button = QRadioButton(label, self)
            button.setProperty("camera", key)
            self.camera_group.addButton(button, i)
            cams.addWidget(button)
        self.camera_group.button(1).setChecked(True)
        form.addRow("Camera", cams)
        self.path_file = QLineEdit(self)
        form.addRow("Camera path", self.path_file)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse_output(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export to", self.output.text(),
                                              "Video (*.mp4 *.mkv *.webm *.mov);;PNG image (*.png)")  # fmt: skip
        if name:
            self.output.setText(name)

    def request(self) -> ExportRequest:
        camera = self.camera_group.checkedButton().property("camera")
        return ExportRequest(
            output=self.output.text(),
            width=self.width_box.value(),
            height=self.height_box.value(),
            fps=float(self.fps_box.value()),
            codec=self.codec_box.currentText() if Path(self.output.text()).suffix.lower() != ".png" else None,
            camera=camera,
            frames=self.frames_box.value(),
            camera_path_file=self.path_file.text() or None,
        )


def default_export_name(source: str | None) -> str:
    stem = Path(source).stem if source else "holoscope"
    return str(Path.home() / f"{stem}-export.mp4")

