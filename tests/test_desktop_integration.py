"""Per-user desktop integration: the packaged .desktop entry, MIME types and icon, installed into
a temporary XDG data folder, checked with the freedesktop tools when they are installed
(Debian: desktop-file-utils, shared-mime-info, libxml2-utils, xdg-utils)."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from holoscope import desktop_integration as di
from holoscope.core.errors import OutputError

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "holoscope" / "assets"

# Extensions holoscope opens -> the MIME type its shared-mime-info package gives them.
SPLAT_EXTENSIONS = {
    "ply": "application/x-gaussian-splat-ply",
    "compressed.ply": "application/x-compressed-ply",
    "spz": "application/x-spz",
    "splat": "application/x-splat",
    "ksplat": "application/x-ksplat",
    "sog": "application/x-sog",
    "gsv": "application/x-gaussian-video",
    "nerv": "application/x-nerv",
    "hgz": "application/x-hash-grid-scene",
    "ingp": "application/x-instant-ngp-snapshot",
}
VIDEO_TYPES = ("video/mp4", "video/x-matroska", "video/webm", "video/quicktime")


def needs_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = {"desktop-file-validate": "desktop-file-utils", "update-desktop-database": "desktop-file-utils",
                   "update-mime-database": "shared-mime-info", "xmllint": "libxml2-utils", "xdg-mime": "xdg-utils"}[name]
        pytest.skip(f"{name} is not installed (Debian package {package})")
    return path


def read_desktop_entry(text: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    return parser["Desktop Entry"]


def parse_exec(value: str) -> list[str]:
    """argv of an Exec value per the Desktop Entry spec: string-value unescaping, then arguments
    split on spaces, where a double-quoted argument takes backslash escapes for " ` $ and
    backslash; then field codes (%F dropped, %% -> %)."""
    text = value.replace("\\\\", "\x00").replace("\\s", " ").replace("\x00", "\\")
    args: list[str] = []
    current: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == " ":
            if current is not None:
                args.append(current)
            current = None
        elif ch == '"':
            current = current or ""
            i += 1
            while text[i] != '"':
                if text[i] == "\\" and text[i + 1] in '"`$\\':
                    i += 1
                current += text[i]
                i += 1
        else:
            current = (current or "") + ch
        i += 1
    if current is not None:
        args.append(current)
    return [a.replace("%%", "%") for a in args if a not in ("%F", "%f", "%U", "%u")]


def semicolon_list(value: str) -> list[str]:
    return [v for v in value.split(";") if v]


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    """A private XDG environment: data, config and home folders under tmp_path, no desktop session."""
    dirs = {name: tmp_path / name for name in ("data", "config", "home")}
    for path in dirs.values():
        path.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(dirs["data"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs["config"]))
    monkeypatch.setenv("HOME", str(dirs["home"]))
    for var in ("XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION", "KDE_SESSION_VERSION",
                "GNOME_DESKTOP_SESSION_ID", "XDG_SESSION_DESKTOP"):
        monkeypatch.delenv(var, raising=False)
    return dirs


# ---- packaged files -------------------------------------------------------------------------------


def test_packaged_files_are_package_data():
    assert di.desktop_template() == (ASSETS / "desktop" / "holoscope.desktop").read_text(encoding="utf-8")
    assert di.mime_xml() == (ASSETS / "desktop" / "holoscope-mime.xml").read_bytes()
    assert di.icon_svg() == (ASSETS / "icons" / "holoscope.svg").read_bytes()
    # One copy only: packaging/linux/ points at holoscope/assets/desktop/ instead of duplicating it.
    assert sorted(p.name for p in (REPO_ROOT / "packaging" / "linux").iterdir()) == ["README.md"]


def test_icon_is_a_small_svg():
    data = di.icon_svg()
    assert len(data) < 4096
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.attrib["viewBox"] == "0 0 256 256"


def test_mime_package_declares_every_splat_extension():
    root = ET.fromstring(di.mime_xml())
    ns = "{http://www.freedesktop.org/standards/shared-mime-info}"
    globs = {g.attrib["pattern"]: t.attrib["type"] for t in root.iter(f"{ns}mime-type") for g in t.iter(f"{ns}glob")}
    assert globs == {f"*.{ext}": mime for ext, mime in SPLAT_EXTENSIONS.items()}
    assert set(di.own_mime_types()) == set(SPLAT_EXTENSIONS.values())


def test_packaged_desktop_entry():
    entry = read_desktop_entry(di.desktop_template())
    assert entry["Type"] == "Application"
    assert entry["Name"] == "holoscope"
    assert entry["Exec"] == "holoscope %F"
    assert entry["Icon"] == "holoscope"
    assert entry["Terminal"] == "false"
    assert entry["GenericName"] and entry["Comment"]
    assert semicolon_list(entry["Categories"]) == ["Graphics", "Viewer", "AudioVideo", "Video"]
    assert set(semicolon_list(entry["MimeType"])) == {*SPLAT_EXTENSIONS.values(), *VIDEO_TYPES}


def test_desktop_integration_is_qt_free():
    code = "import sys, holoscope.desktop_integration; print([m for m in sys.modules if m.startswith(('PySide6', 'torch', 'moderngl'))])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- Exec line --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/opt/holoscope/holoscope", "/home/a b/my apps/holoscope",
                                  '/tmp/we"ird/$HOME/`x`/back\\slash/50%/holoscope'])
def test_exec_quoting_round_trips(path, tmp_path):
    text = di.desktop_entry([path])
    assert parse_exec(read_desktop_entry(text)["Exec"]) == [path]
    if shutil.which("desktop-file-validate"):
        (tmp_path / "holoscope.desktop").write_text(text, encoding="utf-8")
        out = subprocess.run(["desktop-file-validate", str(tmp_path / "holoscope.desktop")], capture_output=True, text=True, check=False)
        assert out.returncode == 0 and "error:" not in out.stdout, out.stdout


def test_exec_falls_back_to_python_dash_m(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    monkeypatch.setattr(di.shutil, "which", lambda name: None)
    assert di.launcher_command() == ["/nonexistent/python3", "-m", "holoscope"]


def test_exec_uses_the_frozen_binary(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "dist" / "holoscope" / "holoscope"))
    assert di.launcher_command() == [str(tmp_path / "dist" / "holoscope" / "holoscope")]


# ---- install / uninstall ----------------------------------------------------------------------------


def test_install_writes_the_three_files(xdg):
    paths = di.install_desktop()
    data = xdg["data"]
    assert paths == [
        data / "applications" / "holoscope.desktop",
        data / "mime" / "packages" / "holoscope-mime.xml",
        data / "icons" / "hicolor" / "scalable" / "apps" / "holoscope.svg",
    ]
    desktop, mime, icon = paths
    entry = read_desktop_entry(desktop.read_text(encoding="utf-8"))
    assert set(semicolon_list(entry["MimeType"])) >= set(SPLAT_EXTENSIONS.values())
    argv = parse_exec(entry["Exec"])
    launcher = Path(argv[0])
    assert launcher.is_absolute() and launcher.is_file() and os.access(launcher, os.X_OK), argv
    assert argv[1:] in ([], ["-m", "holoscope"]), argv
    assert mime.read_bytes() == di.mime_xml()
    assert icon.read_bytes() == di.icon_svg()
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert not list(path.parent.glob(".*.tmp"))


def test_installed_launcher_runs(xdg):
    desktop = di.install_desktop()[0]
    argv = parse_exec(read_desktop_entry(desktop.read_text(encoding="utf-8"))["Exec"])
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("holoscope ")


def test_install_and_uninstall_are_idempotent(xdg):
    first = di.install_desktop()
    contents = [p.read_bytes() for p in first]
    assert di.install_desktop() == first
    assert [p.read_bytes() for p in first] == contents
    assert di.uninstall_desktop() == first
    assert not any(p.exists() for p in first)
    assert di.uninstall_desktop() == []


def test_explicit_prefix_leaves_the_user_alone(xdg, tmp_path):
    stage = tmp_path / "stage" / "usr" / "share"
    paths = di.install_desktop(prefix=stage)
    assert all(p.is_file() and stage in p.parents for p in paths)
    assert not any(xdg["data"].iterdir())
    assert not (xdg["config"] / "mimeapps.list").exists()  # defaults are for the user's own folder only
    assert di.uninstall_desktop(prefix=stage) == paths


def test_uninstall_of_nothing_creates_nothing(xdg):
    assert di.uninstall_desktop() == []
    assert not any(xdg["data"].iterdir())


def test_unwritable_prefix_raises_output_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(OutputError, match="cannot install the desktop integration"):
        di.install_desktop(prefix=blocker)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_prefix_raises_output_error(tmp_path):
    prefix = tmp_path / "ro"
    prefix.mkdir()
    prefix.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="writable"):
            di.install_desktop(prefix=prefix)
    finally:
        prefix.chmod(0o755)


# ---- the freedesktop tools --------------------------------------------------------------------------


def test_desktop_files_validate(xdg):
    tool = needs_tool("desktop-file-validate")
    packaged = ASSETS / "desktop" / "holoscope.desktop"
    installed = di.install_desktop()[0]
    for path in (packaged, installed):
        out = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
        # Hints (Graphics and AudioVideo are both main categories) are not errors.
        assert out.returncode == 0 and "error:" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_mime_xml_is_well_formed():
    tool = needs_tool("xmllint")
    out = subprocess.run([tool, "--noout", str(ASSETS / "desktop" / "holoscope-mime.xml")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_update_mime_database_accepts_the_package(tmp_path):
    tool = needs_tool("update-mime-database")
    (tmp_path / "mime" / "packages").mkdir(parents=True)
    (tmp_path / "mime" / "packages" / "holoscope-mime.xml").write_bytes(di.mime_xml())
    out = subprocess.run([tool, str(tmp_path / "mime")], capture_output=True, text=True, check=False)
    # It exits 0 even when a package does not parse: read the output too.
    assert out.returncode == 0 and "Failed" not in out.stderr, out.stderr
    for mime in SPLAT_EXTENSIONS.values():
        assert (tmp_path / "mime" / f"{mime}.xml").is_file(), mime
    globs = (tmp_path / "mime" / "globs2").read_text()
    assert "40:application/x-gaussian-splat-ply:*.ply" in globs  # below the default weight 50
    assert "60:application/x-compressed-ply:*.compressed.ply" in globs


def test_install_updates_the_databases(xdg):
    needs_tool("update-mime-database")
    needs_tool("update-desktop-database")
    needs_tool("xdg-mime")
    data, config = xdg["data"], xdg["config"]
    (config / "mimeapps.list").write_text("# mine\n[Default Applications]\ntext/plain=editor.desktop\n"
                                          "application/x-spz=other.desktop;holoscope.desktop;\n")
    di.install_desktop()
    assert (data / "mime" / "application" / "x-spz.xml").is_file()
    cache = (data / "applications" / "mimeinfo.cache").read_text()
    assert "application/x-spz=holoscope.desktop;" in cache
    assert "video/mp4=holoscope.desktop;" in cache
    defaults = (config / "mimeapps.list").read_text()
    for mime in SPLAT_EXTENSIONS.values():
        assert f"{mime}=holoscope.desktop" in defaults
    assert "video/mp4" not in defaults  # never the default video player

    di.uninstall_desktop()
    assert not (data / "mime" / "application" / "x-spz.xml").exists()
    assert "holoscope" not in (data / "applications" / "mimeinfo.cache").read_text()
    assert (config / "mimeapps.list").read_text() == "# mine\n[Default Applications]\ntext/plain=editor.desktop\n"


def test_remove_default_applications_keeps_other_apps(tmp_path):
    mimeapps = tmp_path / "mimeapps.list"
    mimeapps.write_text(textwrap.dedent("""\
        [Default Applications]
        application/x-spz=holoscope.desktop
        application/x-sog=a.desktop;holoscope.desktop;b.desktop;
        application/x-splat=holoscope.desktop;
        image/png=holoscope.desktop

        [Added Associations]
        application/x-ksplat=holoscope.desktop;c.desktop;
        """))
    mimeapps.chmod(0o600)
    assert di.remove_default_applications(mimeapps, di.own_mime_types(), "holoscope.desktop")
    assert mimeapps.read_text() == textwrap.dedent("""\
        [Default Applications]
        application/x-sog=a.desktop;b.desktop;
        image/png=holoscope.desktop

        [Added Associations]
        application/x-ksplat=c.desktop;
        """)
    assert stat.S_IMODE(mimeapps.stat().st_mode) == 0o600
    assert not di.remove_default_applications(mimeapps, di.own_mime_types(), "holoscope.desktop")


def test_file_managers_recognise_the_types(xdg, tmp_path):
    """Qt's QMimeDatabase (what KDE and Qt file dialogs use) reads the installed database:
    names, and content for files whose name says nothing."""
    pytest.importorskip("PySide6.QtCore")
    needs_tool("update-mime-database")
    di.install_desktop()
    files = tmp_path / "files"
    files.mkdir()
    gaussian_header = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float f_dc_0\nend_header\n"
    compressed_header = (b"ply\nformat binary_little_endian 1.0\nelement chunk 1\nproperty float min_x\n"
                         b"element vertex 1\nproperty uint packed_position\nend_header\n")
    samples = {
        "scene.ply": gaussian_header, "scene.compressed.ply": compressed_header, "scene.spz": b"\x1f\x8b\x08\x00",
        "scene.splat": bytes(32), "scene.ksplat": bytes(32), "scene.sog": b"PK\x03\x04",
        "scene.gsv": b"HSGV\x01\x00\x00\x00", "unnamed-gsv": b"HSGV\x01\x00\x00\x00",
        "scene.nerv": b"HSNV\x01\x00\x00\x00", "unnamed-nerv": b"HSNV\x01\x00\x00\x00",
        "scene.hgz": b"HSHG\x01\x00\x00\x00", "unnamed-hgz": b"HSHG\x01\x00\x00\x00", "scene.ingp": b"\x1f\x8b\x08\x00",
        "unnamed-gaussian": gaussian_header, "unnamed-compressed": compressed_header, "unnamed-spz": b"NGSP\x04\x00\x00\x00",
        "unnamed-gzip": b"\x1f\x8b\x08\x00",
    }
    expected = {
        **{f"scene.{ext}": mime for ext, mime in SPLAT_EXTENSIONS.items()},
        "unnamed-gaussian": "application/x-gaussian-splat-ply", "unnamed-compressed": "application/x-compressed-ply",
        "unnamed-spz": "application/x-spz", "unnamed-gzip": "application/gzip",  # the gzip rule is below gzip's own
        "unnamed-gsv": "application/x-gaussian-video", "unnamed-nerv": "application/x-nerv",
        "unnamed-hgz": "application/x-hash-grid-scene",
    }
    for name, data in samples.items():
        (files / name).write_bytes(data)
    code = ("import sys; from PySide6.QtCore import QMimeDatabase; db = QMimeDatabase()\n"
            "for p in sys.argv[1:]: print(db.mimeTypeForFile(p).name())")
    names = sorted(samples)
    out = subprocess.run([sys.executable, "-c", code, *(str(files / n) for n in names)],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "XDG_DATA_DIRS": "/usr/share"})
    assert out.returncode == 0, out.stderr
    assert dict(zip(names, out.stdout.split())) == expected


def test_missing_tools_are_skipped_and_logged(xdg, monkeypatch, caplog):
    monkeypatch.setattr(di.shutil, "which", lambda name: None)
    caplog.set_level("INFO", logger="holoscope.desktop_integration")
    assert all(p.is_file() for p in di.install_desktop())
    for tool in ("update-mime-database", "update-desktop-database", "xdg-mime"):
        assert f"skipped {tool}: not installed" in caplog.text
    assert not (xdg["data"] / "mime" / "mime.cache").exists()
