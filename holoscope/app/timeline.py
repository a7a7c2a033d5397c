"""The timeline under the viewport: play/pause, seek slider, time, loop and speed.

It only emits intents; the window passes them to the timed view's core Player, which owns the
clock and the frame index.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QWidget

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)


def format_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:05.2f}"


class SeekSlider(QSlider):
    """A slider that jumps to the clicked position (media players do; QSlider pages)."""

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            value = QStyle.sliderValueFromPosition(
                self.minimum(), self.maximum(), round(event.position().x()), max(1, self.width())
            )
            self.setValue(value)
            self.sliderMoved.emit(value)
        super().mousePressEvent(event)


class Timeline(QWidget):
    playToggled = Signal()
    seekRequested = Signal(int)  # frame index
    loopChanged = Signal(bool)
    speedChanged = Signal(float)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.play_button = QToolButton(self)
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.playToggled)
        self.slider = SeekSlider(Qt.Orientation.Horizontal, self)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.sliderMoved.connect(self.seekRequested)
        self.time_label = QLabel("0:00.00 / 0:00.00", self)
        self.loop_box = QCheckBox("Loop", self)
        self.loop_box.setChecked(True)
        self.loop_box.toggled.connect(self.loopChanged)
        self.speed_box = QComboBox(self)
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}x", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.currentIndexChanged.connect(lambda i: self.speedChanged.emit(SPEEDS[i]))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        for w in (self.play_button, self.slider, self.time_label, self.loop_box, self.speed_box):
            layout.addWidget(w)
        layout.setStretch(1, 1)
        self.set_playing(False)
        self._duration = 0.0

    def configure(self, frame_count: int, duration: float) -> None:
        self.slider.setRange(0, max(0, frame_count - 1))
        self._duration = duration
        self.show_position(0, 0.0)

    def set_playing(self, playing: bool) -> None:
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    def show_position(self, index: int, seconds: float) -> None:
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self.time_label.setText(f"{format_time(seconds)} / {format_time(self._duration)}")
