"""Which view shows which kind of media, and what each view supports.

The window never branches on :class:`MediaKind`: it looks the view class up here, builds it,
and enables or shows its controls from the view's :class:`Capabilities`. Each view class
declares them as class attributes:

- ``interactive``: the camera applies (orbit/pan/zoom, up axis, FOV, keyframes, reset view);
- ``timed``: frames in time (the timeline, play/pause/step);
- ``progressive``: the picture refines while the view is still (hash-grid scenes, streamed LOD);
- ``exportable``: File > Export Video can render it headless.

An attribute a view leaves out counts as ``False``. The table holds dotted names, resolved on
first use, so opening a PLY never imports the video view (nor its renderer), and this module
imports nothing from Qt or GL.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from holoscope.core.errors import HoloscopeError
from holoscope.core.media import MediaKind

# kind -> "module:Class"; resolved inside holoscope.app only.
VIEW_TABLE: dict[MediaKind, str] = {
    MediaKind.SPLATS: "holoscope.app.views:SplatView",
    MediaKind.VIDEO: "holoscope.app.video_view:VideoView",
    MediaKind.SPLAT_SEQUENCE: "holoscope.app.sequence_view:SplatSequenceView",
    MediaKind.SPLAT_VIDEO: "holoscope.app.sequence_view:GaussianVideoView",  # plays as a sequence does
    MediaKind.NEURAL_VIDEO: "holoscope.app.video_view:VideoView",  # .nerv: rgb24 VideoFrames
    MediaKind.NEURAL_SCENE: "holoscope.app.scene_view:NeuralSceneView",  # hash-grid scenes, progressive
}


@dataclass(frozen=True)
class Capabilities:
    interactive: bool = False
    timed: bool = False
    progressive: bool = False
    exportable: bool = False

    @classmethod
    def of(cls, view: Any) -> "Capabilities":
        """The capabilities a view (class or instance) declares; ``None`` supports nothing."""
        if view is None:
            return cls()
        return cls(**{name: bool(getattr(view, name, False)) for name in cls.__dataclass_fields__})


def register_view(kind: MediaKind, target: str) -> None:
    """Show ``kind`` with the view class named ``"package.module:Class"`` (replaces an entry)."""
    module, sep, name = target.partition(":")
    if not sep or not module.startswith("holoscope.app.") or not name:
        raise ValueError(f"a view is named 'holoscope.app.<module>:<Class>', not {target!r}")
    VIEW_TABLE[kind] = target


def view_class_for(kind: MediaKind) -> type:
    """The view class for ``kind`` (imported now); a kind without a view is a HoloscopeError."""
    target = VIEW_TABLE.get(kind)
    if target is None:
        raise HoloscopeError(f"{kind.value} media cannot be shown yet")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# A streamed-LOD scene (lod-meta.json) is SPLATS too, but it streams by need: never read whole.
LOD_VIEW = "holoscope.app.lod_view:LodView"


def make_view(ctx: Any, media: Any, request_repaint: Any) -> Any:
    """Build the view for ``media`` (the GL context current, as the viewport arranges)."""
    if getattr(media, "lod_scene", None) is not None:
        module, _, name = LOD_VIEW.partition(":")
        return getattr(importlib.import_module(module), name)(ctx, media, request_repaint)
    return view_class_for(media.kind)(ctx, media, request_repaint)
