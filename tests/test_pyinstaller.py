"""The one-folder app built from packaging/holoscope.spec: it builds, the binary is the CLI, and
`holoscope render` works headless from the bundle (EGL from the system, package data inside).

Slow (a full PyInstaller build, about 30 s to a few minutes); skipped when PyInstaller is not
installed (`pip install pyinstaller`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import holoscope

pytest.importorskip("PyInstaller")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC = REPO_ROOT / "packaging" / "holoscope.spec"
BUILD_TIMEOUT_S = 840


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    """Build the spec once for this module; the one-folder app (dist/holoscope)."""
    tmp = tmp_path_factory.mktemp("pyinstaller")
    # PyInstaller's own cache goes to the temporary folder too, never the user's home.
    env = {**os.environ, "PYINSTALLER_CONFIG_DIR": str(tmp / "config")}
    argv = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            "--distpath", str(tmp / "dist"), "--workpath", str(tmp / "build"), str(SPEC)]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, f"PyInstaller failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    app = tmp / "dist" / "holoscope"
    size = sum(p.stat().st_size for p in app.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nPyInstaller one-folder build: {elapsed:.0f} s, {size / 2**20:.0f} MiB in {app}")
    return app


def run_app(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(app_dir / "holoscope"), *args], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, **(env or {})})  # fmt: skip


def test_binary_prints_the_version(app_dir):
    out = run_app(app_dir, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"holoscope {holoscope.__version__}"


def test_binary_renders_headless(app_dir, tmp_path):
    from tests.video_reference import read_image

    png = tmp_path / "out.png"
    out = run_app(app_dir, "render", "demo", "-o", str(png), "--size", "64x48",
                  env={"HOLOSCOPE_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert out.returncode == 0, out.stderr
    image = read_image(png)
    assert image.shape == (48, 64, 3)
    assert image.std() > 5  # the demo scene, not a blank frame
    assert list((tmp_path / "cache").rglob("demo-*.ply"))  # the demo went to HOLOSCOPE_CACHE


def test_bundle_holds_package_data_and_every_module(app_dir):
    internal = app_dir / "_internal"
    source = REPO_ROOT / "holoscope" / "assets"
    for folder, pattern in (("shaders", "*.glsl"), ("icons", "*"), ("desktop", "*")):
        expected = {p.name for p in (source / folder).glob(pattern) if p.is_file()}
        assert expected and expected <= {p.name for p in (internal / "holoscope" / "assets" / folder).iterdir()}, folder
    listing = subprocess.run([sys.executable, "-m", "PyInstaller.utils.cliutils.archive_viewer", "-r", "-b",
                              str(app_dir / "holoscope")], capture_output=True, text=True, check=True).stdout  # fmt: skip
    bundled = {line.strip() for line in listing.splitlines()}
    # Readers are imported lazily by their loaders and the Qt app on demand: all must be inside.
    for path in (REPO_ROOT / "holoscope").rglob("*.py"):
        rel = path.relative_to(REPO_ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        assert module in bundled, module
    # moderngl's context backends, imported by name at run time
    assert {"egl", "x11"} <= {p.name.split(".")[0] for p in (internal / "glcontext").glob("*.so")}


def test_bundle_leaves_out_torch_and_unused_qt(app_dir):
    internal = app_dir / "_internal"
    names = {p.name for p in internal.iterdir()}
    assert not {"torch", "torchvision", "torchaudio", "triton"} & names
    assert not any(n.startswith(("libstdc++.so", "libgcc_s.so")) for n in names)  # the system's, for Mesa
    qt = internal / "PySide6" / "Qt"
    for plugin in ("libqxcb.so", "libqwayland.so"):  # the desktop window on X11 and Wayland
        assert (qt / "plugins" / "platforms" / plugin).is_file(), plugin
    qt_libs = {p.name.split(".")[0] for p in (qt / "lib").iterdir()}
    for unused in ("libQt6WebEngineCore", "libQt63DCore", "libQt6Qml", "libQt6Quick", "libQt6Multimedia", "libQt6Pdf"):
        assert unused not in qt_libs, unused
