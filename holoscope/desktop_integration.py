"""Per-user desktop integration on Linux (freedesktop.org): menu entry, file types, icon.

:func:`install_desktop` writes three files under ``$XDG_DATA_HOME`` (default
``~/.local/share``), or under ``prefix`` when one is given (``/usr/local/share``, a packaging
staging folder ...)::

    applications/holoscope.desktop               the menu entry; Exec is this installation's launcher
    mime/packages/holoscope-mime.xml             holoscope's file types (.ply splats, .spz, .splat ...)
    icons/hicolor/scalable/apps/holoscope.svg    the icon

then refreshes the databases with ``update-mime-database`` and ``update-desktop-database``, and,
for the user's own data folder only, makes holoscope the default application for its own types
(never for video) with ``xdg-mime default``. A tool that is not installed is skipped; what ran
and what was skipped is logged on the ``holoscope.desktop_integration`` logger at INFO, a tool
that fails at WARNING. :func:`uninstall_desktop` removes exactly those three files and those
default-application entries, and refreshes the databases again. Both are idempotent.

The templates are package data (``holoscope/assets/desktop``, ``holoscope/assets/icons``), read
with importlib.resources, so this works from a wheel, an editable install and a PyInstaller
bundle alike. Standard library only: no Qt.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

from holoscope.core.errors import HoloscopeError, OutputError

log = logging.getLogger(__name__)

APP_ID = "holoscope"
DESKTOP_FILE = f"{APP_ID}.desktop"
MIME_FILE = f"{APP_ID}-mime.xml"
ICON_FILE = f"{APP_ID}.svg"
TOOL_TIMEOUT_S = 60

_MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
# Characters that force an Exec argument into double quotes (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


# ---- package data -------------------------------------------------------------------------------


def _asset(*parts: str) -> bytes:
    try:
        return resources.files("holoscope.assets").joinpath(*parts).read_bytes()
    except FileNotFoundError:
        raise HoloscopeError(
            f"holoscope/assets/{'/'.join(parts)} is missing from this installation (package data); reinstall holoscope"
        ) from None


def desktop_template() -> str:
    """The packaged .desktop entry (``Exec=holoscope %F``)."""
    return _asset("desktop", DESKTOP_FILE).decode("utf-8")


def mime_xml() -> bytes:
    """The packaged shared-mime-info XML."""
    return _asset("desktop", MIME_FILE)


def icon_svg() -> bytes:
    return _asset("icons", ICON_FILE)


def own_mime_types() -> tuple[str, ...]:
    """The MIME types holoscope declares itself (from the packaged XML): the ones it becomes the
    default application for. Video types are only listed in the .desktop entry."""
    root = ET.fromstring(mime_xml())
    return tuple(node.attrib["type"] for node in root.iter(f"{_MIME_NS}mime-type"))


# ---- locations ----------------------------------------------------------------------------------


def _xdg_dir(variable: str, default: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG Base Directory spec: a relative path is invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else Path.home() / default


def data_home() -> Path:
    """``$XDG_DATA_HOME``, else ``~/.local/share``."""
    return _xdg_dir("XDG_DATA_HOME", ".local/share")


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config`` (where ``mimeapps.list`` lives)."""
    return _xdg_dir("XDG_CONFIG_HOME", ".config")


def installed_paths(prefix: Path | None = None) -> list[Path]:
    """The three files :func:`install_desktop` writes, for this prefix."""
    root = Path(prefix).expanduser().absolute() if prefix is not None else data_home()
    return [
        root / "applications" / DESKTOP_FILE,
        root / "mime" / "packages" / MIME_FILE,
        root / "icons" / "hicolor" / "scalable" / "apps" / ICON_FILE,
    ]


# ---- the launcher and the Exec line -------------------------------------------------------------


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def launcher_command() -> list[str]:
    """The command that starts this installation of holoscope, as absolute argv.

    In order: the frozen binary itself (PyInstaller); the ``holoscope`` launcher being run; the
    ``holoscope`` launcher beside this interpreter (its virtual environment's ``bin``); the
    first ``holoscope`` on PATH; else ``<this python> -m holoscope``.
    """
    if getattr(sys, "frozen", False):
        return [os.path.abspath(sys.executable)]
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == APP_ID and _is_executable(argv0):
        return [os.path.abspath(argv0)]
    if sys.executable:
        beside = Path(sys.executable).parent / APP_ID
        if _is_executable(beside):
            return [str(beside)]
    found = shutil.which(APP_ID)
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable) if sys.executable else "python3", "-m", APP_ID]


def quote_exec_arg(arg: str) -> str:
    """One argument of an Exec value, quoted and escaped per the Desktop Entry specification.

    Reserved characters put the argument in double quotes, inside which ``" ` $ \\`` take a
    backslash; then the string-value escaping doubles every backslash, and ``%`` becomes ``%%``
    (field codes).
    """
    if "\n" in arg or "\r" in arg:
        raise OutputError(f"the launcher path {arg!r} contains a line break and cannot go in a desktop entry")
    arg = arg.replace("%", "%%")
    if any(ch in _EXEC_RESERVED for ch in arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return arg.replace("\\", "\\\\")


def desktop_entry(command: list[str] | None = None) -> str:
    """The packaged entry with ``Exec=`` pointing at ``command`` (default: :func:`launcher_command`)."""
    argv = launcher_command() if command is None else command
    exec_line = "Exec=" + " ".join(quote_exec_arg(a) for a in argv) + " %F"
    text, n = re.subn(r"^Exec=.*$", lambda _m: exec_line, desktop_template(), count=1, flags=re.MULTILINE)
    if n != 1:  # a packaging bug, not a user error
        raise RuntimeError(f"the packaged {DESKTOP_FILE} has no Exec line")
    return text


# ---- install / uninstall ------------------------------------------------------------------------


def _check_platform() -> None:
    if sys.platform.startswith(("win", "darwin")):
        raise HoloscopeError(
            "desktop integration follows the freedesktop.org standards (Linux, BSD); on Windows "
            "and macOS the installer registers holoscope's file types (see packaging/README.md)"
        )


def _write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write atomically (temporary file + rename); skip when the content is already there."""
    try:
        if path.is_file() and path.read_bytes() == data:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(
            f"cannot install the desktop integration here ({exc.strerror or exc}); "
            "the folder must be writable by you",
            path=path,
        ) from exc


def _run_tool(argv: list[str]) -> bool:
    """Run a desktop database tool if it is installed. False when it is absent or failed."""
    exe = shutil.which(argv[0])
    if exe is None:
        log.info("skipped %s: not installed", argv[0])
        return False
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s could not run: %s", argv[0], exc)
        return False
    # update-mime-database reports an unparsable package on stderr but still exits 0.
    failed = proc.returncode != 0 or "Failed to parse" in proc.stderr
    if failed:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        log.warning("%s failed (exit %d): %s", argv[0], proc.returncode, detail[0] if detail else "no message")
        return False
    log.info("ran %s", " ".join(argv))
    return True


def _refresh_databases(root: Path) -> None:
    # Only folders that exist: a refresh must not create a database where there was none.
    if (root / "mime" / "packages").is_dir():
        _run_tool(["update-mime-database", str(root / "mime")])
    if (root / "applications").is_dir():
        _run_tool(["update-desktop-database", str(root / "applications")])


def _is_user_data_home(prefix: Path | None) -> bool:
    if prefix is None:
        return True
    try:
        return Path(prefix).resolve() == data_home().resolve()
    except OSError:
        return False


def install_desktop(prefix: Path | None = None) -> list[Path]:
    """Install the menu entry, MIME types and icon; returns the three files written.

    ``prefix`` replaces ``$XDG_DATA_HOME`` (for example ``/usr/local/share`` or a staging folder);
    default applications are only set when installing into the user's own data folder.
    Raises :class:`OutputError` when a folder cannot be written.
    """
    _check_platform()
    desktop, mime, icon = paths = installed_paths(prefix)
    _write_file(desktop, desktop_entry().encode("utf-8"))
    _write_file(mime, mime_xml())
    _write_file(icon, icon_svg())
    root = desktop.parent.parent
    _refresh_databases(root)
    if _is_user_data_home(prefix):
        _run_tool(["xdg-mime", "default", DESKTOP_FILE, *own_mime_types()])
    else:
        log.info("skipped xdg-mime default: %s is not your own data folder", root)
    return paths


def uninstall_desktop(prefix: Path | None = None) -> list[Path]:
    """Remove what :func:`install_desktop` wrote; returns the files that were there and are gone."""
    _check_platform()
    removed: list[Path] = []
    paths = installed_paths(prefix)
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot remove the desktop integration ({exc.strerror or exc})", path=path) from exc
        removed.append(path)
    if _is_user_data_home(prefix):
        remove_default_applications(config_home() / "mimeapps.list", own_mime_types(), DESKTOP_FILE)
    _refresh_databases(paths[0].parent.parent)
    return removed


def remove_default_applications(mimeapps: Path, mime_types: tuple[str, ...], desktop_id: str) -> bool:
    """Drop ``desktop_id`` from the ``[Default Applications]`` and ``[Added Associations]`` entries
    of ``mime_types`` in a ``mimeapps.list``, leaving every other line as it was. True if changed.

    This undoes ``xdg-mime default`` (which has no "unset").
    """
    try:
        lines = mimeapps.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", mimeapps, exc)
        return False
    wanted = set(mime_types)
    section = ""
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section in ("[Default Applications]", "[Added Associations]") and "=" in stripped:
            key, value = (part.strip() for part in stripped.split("=", 1))
            if key in wanted:
                apps = [a for a in value.split(";") if a]
                kept = [a for a in apps if a != desktop_id]
                if len(kept) != len(apps):
                    if not kept:
                        continue
                    line = f"{key}={';'.join(kept)}{';' if value.endswith(';') else ''}\n"
        out.append(line)
    if out == lines:
        return False
    try:
        _write_file(mimeapps, "".join(out).encode("utf-8"), mode=mimeapps.stat().st_mode & 0o777)
    except OutputError as exc:
        log.warning("%s", exc)
        return False
    log.info("removed %s as default application from %s", desktop_id, mimeapps)
    return True
