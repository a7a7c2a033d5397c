"""Format resolution: forced name, then magic bytes, then extension."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.formats.ply_inria import READER_NAME, write_ply
from holoscope.core import registry
from holoscope.core.errors import CorruptStream, FormatNotRecognized, HoloscopeError, NotAFile, SourceNotFound
from holoscope.core.frames import SplatCloud
from holoscope.core.media import Media, MediaKind
from holoscope.core.registry import FormatSpec, NoFormatsRegistered, open_media, register, resolve
from holoscope.core.sources import Source


def tiny_cloud(n: int = 3) -> SplatCloud:
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return SplatCloud(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        scales=rng.uniform(0.01, 0.1, (n, 3)).astype(np.float32),
        quats=quats,
        opacities=rng.uniform(0.2, 0.8, n).astype(np.float32),
        sh=rng.normal(size=(n, 1, 3)).astype(np.float32),
    )


@pytest.fixture
def ply_file(tmp_path: Path) -> Path:
    path = tmp_path / "scene.ply"
    write_ply(tiny_cloud(), path)
    return path


def test_builtin_ply_is_registered() -> None:
    assert "ply" in registry.format_names()
    spec = {s.name: s for s in registry.formats()}["ply"]
    assert spec.kind is MediaKind.SPLATS
    assert spec.can_write


def test_magic_wins_over_extension(ply_file: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "scene.bin"
    shutil.copyfile(ply_file, renamed)
    assert resolve(renamed).name == "ply"
    media = open_media(renamed)
    assert media.format == "ply"
    assert media.frame(0).count == 3


def test_real_sample_with_wrong_extension(samples_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "scene.bin"
    shutil.copyfile(samples_dir / "splats" / "lod5.ply", renamed)
    media = open_media(renamed)
    assert media.format == "ply"
    assert media.frame(0).count == 111


def test_media_names_the_reader(ply_file: Path) -> None:
    media = open_media(ply_file)
    assert isinstance(media, Media)
    assert media.reader == READER_NAME
    assert media.kind is MediaKind.SPLATS
    assert media.is_static and media.frame_count == 1 and media.duration == 0.0
    assert media.path == str(ply_file)
    assert media.info["splats"] == 3


def test_forced_known_format(ply_file: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "no_extension"
    shutil.copyfile(ply_file, renamed)
    assert open_media(renamed, forced="ply").format == "ply"


def test_forced_unknown_format_lists_valid_names(ply_file: Path) -> None:
    with pytest.raises(FormatNotRecognized) as info:
        open_media(ply_file, forced="nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in registry.format_names():
        assert name in message


def test_forced_format_still_checks_the_source(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound):
        open_media(tmp_path / "missing.ply", forced="ply")


def test_unknown_content_and_extension(tmp_path: Path) -> None:
    path = tmp_path / "mystery.xyz"
    path.write_bytes(b"\x00\x01garbage that no reader knows" * 10)
    with pytest.raises(FormatNotRecognized) as info:
        open_media(path)
    message = str(info.value)
    assert "supported formats" in message
    assert "ply (.ply)" in message
    assert str(path) in message


def test_ply_extension_with_non_ply_bytes_is_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fake.ply"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a PLY")
    opened = []
    import holoscope.codecs.formats.ply_inria as ply_inria

    monkeypatch.setattr(ply_inria, "open_ply", lambda p: opened.append(p))
    with pytest.raises(FormatNotRecognized) as info:
        open_media(path)
    assert opened == []
    assert "ply" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound) as info:
        open_media(tmp_path / "missing.ply")
    assert "missing.ply" in str(info.value)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.ply"
    folder.mkdir()
    with pytest.raises(NotAFile):
        open_media(folder)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.ply"
    path.touch()
    with pytest.raises(CorruptStream) as info:
        open_media(path)
    assert "empty" in str(info.value)


# A custom format registered at run time ------------------------------------------------

OPENED: list[Path] = []


def _open_custom(source: Source) -> Media:
    OPENED.append(source.local_path)  # openers are given a Source
    return Media(MediaKind.VIDEO, "testfmt", "tests.custom", 2, 10.0, lambda i: i, path=source.name)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The built-ins are in the real table already (tests/conftest.py registers them, as the
    # program's entry points do); a copy keeps what a test registers out of the real one.
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))


def test_register_custom_format_wins_by_magic(isolated_registry: None, tmp_path: Path) -> None:
    OPENED.clear()
    spec = FormatSpec(
        name="testfmt",
        description="test format",
        kind=MediaKind.VIDEO,
        extensions=(".tst",),
        opener=_open_custom,
        probe=lambda head: head.startswith(b"TST1"),
        priority=100,
    )
    assert register(spec) is spec
    assert "testfmt" in registry.format_names()
    path = tmp_path / "clip.ply"  # the extension says PLY, the magic says testfmt
    path.write_bytes(b"TST1 payload")
    media = open_media(path)
    assert media.format == "testfmt"
    assert media.reader == "tests.custom"
    assert OPENED == [path]
    assert media.duration == pytest.approx(0.2)
    assert media.frame(1) == 1
    with pytest.raises(IndexError):
        media.frame(2)


def test_custom_format_is_gone_after_the_test() -> None:
    assert "testfmt" not in registry.format_names()


def test_extension_only_format(isolated_registry: None, tmp_path: Path) -> None:
    register(
        FormatSpec(
            name="extonly",
            description="no probe",
            kind=MediaKind.VIDEO,
            extensions=(".ext.only",),
            opener=_open_custom,
        )
    )
    path = tmp_path / "clip.ext.only"
    path.write_bytes(b"whatever")
    assert resolve(path).name == "extonly"
    # A valid PLY still wins by magic whatever the extension-only formats say.
    write_ply(tiny_cloud(), tmp_path / "real.ext.only")
    assert resolve(tmp_path / "real.ext.only").name == "ply"


# Who registers the formats ----------------------------------------------------------------


def test_an_empty_registry_says_so(monkeypatch: pytest.MonkeyPatch, ply_file: Path) -> None:
    monkeypatch.setattr(registry, "_FORMATS", {})
    assert registry.formats() == []
    for call in (lambda: resolve(ply_file), lambda: open_media(ply_file), lambda: open_media(ply_file, forced="ply"),
                 lambda: registry.writer_for(ply_file)):  # fmt: skip
        with pytest.raises(NoFormatsRegistered) as info:
            call()
        assert isinstance(info.value, HoloscopeError)
        assert "no file formats are registered" in str(info.value)


def test_register_builtin_formats_is_idempotent_and_keeps_overrides(isolated_registry: None) -> None:
    from holoscope.codecs.builtin import BUILTIN_FORMATS, register_builtin_formats

    before = registry.formats()
    register_builtin_formats()
    register_builtin_formats()
    assert registry.formats() == before
    assert {s.name for s in BUILTIN_FORMATS} <= set(registry.format_names())
    custom = register(FormatSpec("splat", "a plugin's reader", MediaKind.SPLATS, (".splat",), opener=_open_custom))
    register_builtin_formats()
    assert {s.name: s for s in registry.formats()}["splat"] is custom


def test_builtin_openers_and_writers_are_callables_resolved_on_use() -> None:
    from holoscope.codecs.formats.ply_inria import open_ply

    for spec in registry.formats():
        assert callable(spec.opener) and not isinstance(spec.opener, str), spec.name
        assert spec.writer is None or callable(spec.writer), spec.name
    spec = {s.name: s for s in registry.formats()}["ply"]
    assert isinstance(spec.opener, registry.LazyCallable) and spec.opener.resolve() is open_ply
    assert registry.writer_for("x.ply")[1] is write_ply  # the real function, not the wrapper


def test_dotted_string_openers_are_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        FormatSpec("old", "old style", MediaKind.SPLATS, (".old",), opener="holoscope.codecs.formats.splat:open_splat")  # type: ignore[arg-type]


def test_registering_the_builtins_imports_no_reader(samples_dir: Path) -> None:
    # A fresh process: the registry alone is empty; after the entry point's registration,
    # opening a PLY imports its reader only, never PyAV, the other readers, torch or Qt.
    code = (
        "import sys\n"
        "from holoscope.core import registry\n"
        "assert registry.formats() == []\n"
        "assert not [m for m in sys.modules if m.startswith('holoscope.codecs')], 'core imported codecs'\n"
        "from holoscope.codecs.builtin import register_builtin_formats\n"
        "register_builtin_formats()\n"
        "assert not [m for m in sys.modules if m.startswith('holoscope.codecs.formats.')]\n"
        f"assert registry.open_media({str(samples_dir / 'splats' / 'lod5.ply')!r}).frame(0).count == 111\n"
        "heavy = [m for m in ('av', 'torch', 'PySide6', 'holoscope.codecs.formats.sog', 'holoscope.codecs.formats.spz',\n"
        "         'holoscope.codecs.video.decode') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
