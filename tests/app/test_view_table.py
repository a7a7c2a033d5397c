"""Views chosen by a table: each view declares its capabilities, the window shows only the
controls that apply, and the render rate shown is measured (never a misleading ``0 fps``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from holoscope.app.info_panel import RenderRate
from holoscope.app.view_table import VIEW_TABLE, Capabilities, register_view, view_class_for
from holoscope.core.errors import HoloscopeError
from holoscope.core.media import MediaKind

from .conftest import wait_for_media
from .test_video_playback import numbered_video  # noqa: F401  (the module-scoped fixture)

CAMERA_WIDGETS = ("up_box", "fov_box", "sh_box", "scale_slider")


# The table and the capabilities (no window) ---------------------------------------------
def test_every_kind_in_the_table_resolves_to_a_view_with_its_capabilities():
    caps = {kind: Capabilities.of(view_class_for(kind)) for kind in VIEW_TABLE}
    assert caps[MediaKind.SPLATS] == Capabilities(interactive=True, exportable=True)
    assert caps[MediaKind.VIDEO] == Capabilities(timed=True)
    assert caps[MediaKind.SPLAT_SEQUENCE] == Capabilities(interactive=True, timed=True)
    assert caps[MediaKind.NEURAL_SCENE] == Capabilities(interactive=True, progressive=True)
    assert [k for k, c in caps.items() if c.progressive] == [MediaKind.NEURAL_SCENE]
    assert set(VIEW_TABLE) == set(MediaKind), "every kind of media has a view"
    assert Capabilities.of(None) == Capabilities()


def test_a_kind_without_a_view_is_refused_and_entries_are_checked(monkeypatch):
    monkeypatch.delitem(VIEW_TABLE, MediaKind.NEURAL_SCENE)  # as if no view were registered for it
    with pytest.raises(HoloscopeError, match="neural-scene media cannot be shown yet"):
        view_class_for(MediaKind.NEURAL_SCENE)
    monkeypatch.setitem(VIEW_TABLE, MediaKind.NEURAL_SCENE, VIEW_TABLE[MediaKind.SPLATS])
    assert view_class_for(MediaKind.NEURAL_SCENE) is view_class_for(MediaKind.SPLATS)
    with pytest.raises(ValueError):
        register_view(MediaKind.NEURAL_SCENE, "somewhere.else:View")
    with pytest.raises(ValueError):
        register_view(MediaKind.NEURAL_SCENE, "holoscope.app.views")


def test_the_table_imports_views_lazily():
    """Importing the table imports no Qt and no view; a splat view never imports the video view."""
    code = (
        "import sys\n"
        "from holoscope.app.view_table import view_class_for\n"
        "from holoscope.core.media import MediaKind\n"
        "assert not [m for m in sys.modules if m.startswith(('PySide6', 'holoscope.app.views', 'holoscope.app.video', 'holoscope.render'))], sorted(sys.modules)\n"
        "view_class_for(MediaKind.SPLATS)\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'holoscope.app.video_view', 'holoscope.app.sequence_view', 'av'))"
        " or 'video_renderer' in m or m == 'av']\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_render_rate_is_measured_while_painting_and_idle_after():
    rate = RenderRate()
    assert rate.describe(0.0) == "no frame painted yet"
    for i in range(25):  # 24 frames per second for one second
        rate.add(10 + i / 24, 4.0)
    now = 10 + 24 / 24 + 0.01
    assert rate.fps(now) == pytest.approx(24, rel=0.05)
    assert rate.describe(now) == "24 fps, 4.0 ms/frame"
    later = now + 2.0  # nothing painted since: idle, with the last paint's cost
    assert rate.fps(later) is None and rate.describe(later) == "4.0 ms/frame (idle)"
    rate.add(later, 7.5)  # one paint after a pause: a cost, not a made-up rate
    assert rate.fps(later) is None and rate.describe(later) == "7.5 ms/frame"


# The window --------------------------------------------------------------------------
def visible_controls(win) -> dict[str, bool]:
    return {name: getattr(win, name).isVisible() for name in CAMERA_WIDGETS}


def test_toolbar_shows_only_the_controls_that_apply(window, qtbot, samples_dir, numbered_video):  # noqa: F811
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    assert window.capabilities == Capabilities(interactive=True, exportable=True)
    qtbot.waitUntil(lambda: all(visible_controls(window).values()), timeout=2000)
    assert not window.timeline.isVisible()
    assert window.export_action.isEnabled() and window.record_action.isEnabled()

    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    assert window.capabilities == Capabilities(timed=True)
    # (QToolBar hides a widget whose action was hidden at its next layout pass)
    qtbot.waitUntil(lambda: not any(visible_controls(window).values()), timeout=2000)
    assert window.timeline.isVisible() and window.toolbar.isVisible()
    assert window.open_action.isVisible() and window.screenshot_action.isEnabled()
    assert not window.export_action.isEnabled() and not window.record_action.isEnabled()
    assert not window.reset_action.isEnabled()

    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])  # and back
    wait_for_media(qtbot, window, "lod4.ply")
    qtbot.waitUntil(lambda: all(visible_controls(window).values()), timeout=2000)
    assert not window.timeline.isVisible()


def test_a_kind_without_a_view_shows_the_non_modal_error(window, qtbot, samples_dir, monkeypatch):
    window.open_paths([str(samples_dir / "splats" / "lod4.ply")])
    wait_for_media(qtbot, window, "lod4.ply")
    shown = window.viewport.view
    monkeypatch.delitem(VIEW_TABLE, MediaKind.SPLATS)
    window.open_paths([str(samples_dir / "splats" / "lod5.ply")])
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=20000)
    assert "cannot be shown yet" in window.error_box.text()
    assert not window.error_box.isModal()
    assert window.viewport.view is shown and window.media_path.endswith("lod4.ply")


def shown_fps(text: str) -> float:
    found = re.search(r"(\d+(?:\.\d+)?) fps", text)
    return float(found.group(1)) if found else 0.0


def test_status_shows_a_real_render_rate_while_a_video_plays(window, qtbot, numbered_video):  # noqa: F811
    window.open_paths([str(numbered_video)])
    wait_for_media(qtbot, window, "numbered.mp4")
    window.toggle_play()
    qtbot.waitUntil(lambda: shown_fps(window.status_label.text()) > 0, timeout=5000)
    assert "ms/frame" in window.status_label.text()
    window.pause()
    qtbot.wait(int(RenderRate.IDLE_AFTER * 1000) + 300)
    window.refresh_info()
    assert "(idle)" in window.status_label.text() and " 0 fps" not in window.status_label.text()


def test_status_and_info_panel_show_a_real_rate_while_the_wave_plays(window, qtbot, samples_dir):
    wave = samples_dir / "splat-sequences" / "wave"
    if not wave.is_dir():
        pytest.skip("the wave sample sequence is not in the samples folder")
    window.open_paths([str(wave)])
    wait_for_media(qtbot, window, "wave")
    window.info_panel.show()
    window.toggle_play()
    qtbot.waitUntil(lambda: shown_fps(window.status_label.text()) > 0, timeout=10000)
    window.refresh_info()
    assert shown_fps(window.info_panel.rows["Render"]) > 0
    window.pause()
