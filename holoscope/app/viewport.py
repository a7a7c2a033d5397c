"""QtViewport: a QOpenGLWidget that drives moderngl through Qt's GL context.

Scenes render into a half-float offscreen target cleared to the background (so blending
composites exactly as the headless path does) and are blitted to Qt's framebuffer. Mouse and
keyboard events become :class:`CameraRig` gestures; fly movement runs on a 60 Hz timer while
W/A/S/D/Q/E are held.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import moderngl
import numpy as np
from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QKeyEvent, QMouseEvent, QNativeGestureEvent, QWheelEvent
from PySide6.QtOpenGLWidgets import QOpenGLWidget

from holoscope.core.camera import Camera
from holoscope.core.camera_rig import CameraRig
from holoscope.render.gl.splat_renderer import OffscreenTarget, RenderSettings

_log = logging.getLogger(__name__)

FLY_KEYS = {
    Qt.Key.Key_W: (1, 0, 0), Qt.Key.Key_S: (-1, 0, 0),
    Qt.Key.Key_D: (0, 1, 0), Qt.Key.Key_A: (0, -1, 0),
    Qt.Key.Key_E: (0, 0, 1), Qt.Key.Key_Q: (0, 0, -1),
}  # fmt: skip


class QtViewport(QOpenGLWidget):
    repaintRequested = Signal()  # emitted from worker threads; queued onto the GUI thread
    frameRendered = Signal(float)  # milliseconds spent in paintGL

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.ctx: moderngl.Context | None = None
        self.view: Any = None  # SplatView / VideoView
        self.rig = CameraRig()
        self.settings = RenderSettings(background=(0.08, 0.08, 0.1))
        self._target: OffscreenTarget | None = None
        self._last_pos = QPointF()
        self._keys: set[int] = set()
        self._fly_clock = QElapsedTimer()
        self._fly_timer = QTimer(self, interval=16, timeout=self._fly_tick)
        self.frames_painted = 0
        self.gl_renderer = ""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.repaintRequested.connect(self.update, Qt.ConnectionType.QueuedConnection)

    # GL lifecycle ----------------------------------------------------------------------
    def initializeGL(self) -> None:
        self.ctx = moderngl.create_context(require=430)
        # moderngl's info table is empty for a context it did not create; ask GL directly.
        raw = self.context().functions().glGetString(0x1F01)  # GL_RENDERER
        self.gl_renderer = raw.decode() if isinstance(raw, bytes) else str(raw or "unknown")

    def device_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def current_camera(self) -> Camera:
        w, h = self.device_size()
        return self.rig.camera(w, h)

    def paintGL(self) -> None:
        if self.ctx is None:
            return
        start = time.perf_counter()
        w, h = self.device_size()
        screen = self.ctx.detect_framebuffer(self.defaultFramebufferObject())
        bg = self.settings.background
        if self.view is None:
            screen.use()
            screen.clear(*bg, 1.0)
            return
        if self._target is None or (self._target.width, self._target.height) != (w, h):
            if self._target is not None:
                self._target.release()
            self._target = OffscreenTarget(self.ctx, w, h)
        self._target.begin(clear=(*bg, 1.0))
        try:
            self.view.paint(self.current_camera(), self.settings)
        except Exception:  # a failing view must not kill painting (nor Qt's event loop)
            _log.exception("painting the view failed")
        self.ctx.copy_framebuffer(dst=screen, src=self._target.fbo)
        screen.use()
        self.frames_painted += 1
        self.frameRendered.emit((time.perf_counter() - start) * 1e3)

    def set_view(self, view: Any) -> None:
        """Install a new view (releasing the old one); the camera frames the new scene."""
        self.makeCurrent()
        try:
            if self.view is not None:
                self.view.release()
            self.view = view
            if view is not None and getattr(view, "interactive", False):
                w, h = self.device_size()
                self.rig.aspect = w / h
                self.rig.set_bounds(view.bounds())
                start = view.initial_camera(w, h) if hasattr(view, "initial_camera") else None
                if start is not None:  # a scene's own stored view (Instant-NGP snapshots)
                    self.rig.set_fov(start.fov_y)
                    self.rig.set_camera_to_world(start.camera_to_world)
        finally:
            self.doneCurrent()
        self.update()

    def with_context(self, fn: Any) -> Any:
        """Run ``fn(ctx)`` with the widget's GL context current (for creating views)."""
        self.makeCurrent()
        try:
            return fn(self.ctx)
        finally:
            self.doneCurrent()

    def screenshot(self) -> QImage:
        """The viewport at device resolution, exactly as shown."""
        return self.grabFramebuffer()

    def reset_view(self) -> None:
        w, h = self.device_size()
        self.rig.reset(aspect=w / h)
        self.update()

    # Input -----------------------------------------------------------------------------
    def _interactive(self) -> bool:
        return self.view is not None and getattr(self.view, "interactive", False)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last_pos = event.position()
        self.setFocus()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self._interactive():
            return
        pos = event.position()
        dx, dy = pos.x() - self._last_pos.x(), pos.y() - self._last_pos.y()
        self._last_pos = pos
        buttons, mods = event.buttons(), event.modifiers()
        if buttons & Qt.MouseButton.MiddleButton or (
            buttons & Qt.MouseButton.LeftButton and mods & Qt.KeyboardModifier.ShiftModifier
        ):
            self.rig.pan_drag(dx, dy, self.height())
        elif buttons & Qt.MouseButton.LeftButton:
            self.rig.orbit_drag(dx, dy)
        elif buttons & Qt.MouseButton.RightButton:
            self.rig.fly_look(dx, dy)
        else:
            return
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self._interactive():
            self.rig.zoom_steps(event.angleDelta().y() / 120.0)
            self.update()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.NativeGesture and self._interactive():
            gesture: QNativeGestureEvent = event  # type: ignore[assignment]
            if gesture.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.rig.zoom_steps(gesture.value() * 4)
                self.update()
                return True
        return super().event(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if not self._interactive() or not hasattr(self.view, "pick"):
            return
        ratio = self.devicePixelRatioF()
        point = self.view.pick(self.current_camera(), event.position().x() * ratio, event.position().y() * ratio)
        if point is not None:
            self.rig.focus(point)
            self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = Qt.Key(event.key())
        if key in (Qt.Key.Key_R, Qt.Key.Key_Home) and self._interactive():
            self.reset_view()
        elif key in FLY_KEYS and self._interactive() and not event.isAutoRepeat():
            self._keys.add(key)
            if not self._fly_timer.isActive():
                self._fly_clock.start()
                self._fly_timer.start()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if not event.isAutoRepeat():
            self._keys.discard(Qt.Key(event.key()))
        if not self._keys:
            self._fly_timer.stop()
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: Any) -> None:
        self._keys.clear()  # a key released while another window had focus must not stick
        self._fly_timer.stop()
        super().focusOutEvent(event)

    def _fly_tick(self) -> None:
        seconds = min(self._fly_clock.restart() / 1000.0, 0.1)
        move = np.sum([FLY_KEYS[k] for k in self._keys], axis=0) if self._keys else np.zeros(3)
        if np.any(move):
            fast = bool(self.window().isActiveWindow() and _shift_held())
            self.rig.fly_move(float(move[0]), float(move[1]), float(move[2]), seconds, fast=fast)
            self.update()

    def release_gl(self) -> None:
        """Free GL resources while the context still exists (called before the window closes)."""
        if self.ctx is None:
            return
        self.makeCurrent()
        try:
            if self.view is not None:
                self.view.release()
                self.view = None
            if self._target is not None:
                self._target.release()
                self._target = None
        finally:
            self.doneCurrent()


def _shift_held() -> bool:
    from PySide6.QtGui import QGuiApplication

    return bool(QGuiApplication.queryKeyboardModifiers() & Qt.KeyboardModifier.ShiftModifier)
