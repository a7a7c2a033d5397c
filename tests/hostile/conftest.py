"""Fixtures of the hostile-input suite: the real samples, the built-in demo (cached once), a
world-accessible folder and a way to run a command without root's power to read anything."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .cases import ADDRESS_SPACE_LIMIT, LAUNCHER, NOBODY


@pytest.fixture(scope="session")
def splat_samples(samples_dir) -> dict[str, Path]:
    """Every splat sample by name, plus one SOG frame of the wave sequence."""
    found = {p.name: p for p in sorted((samples_dir / "splats").iterdir()) if p.is_file()}
    wave = samples_dir / "splat-sequences" / "wave" / "wave_0001.sog"
    if wave.is_file():
        found[wave.name] = wave
    if "lod4.ply" not in found:
        pytest.skip("the lod4.ply sample is missing")
    return found


@pytest.fixture(scope="session")
def lod4(splat_samples) -> Path:
    return splat_samples["lod4.ply"]


@pytest.fixture(scope="session")
def demo_ready(_private_cache) -> Path:
    """The demo scene, generated into the session's private cache before any command needs it
    (commands inherit $HOLOSCOPE_CACHE, so a signal never lands during its generation)."""
    from holoscope.assets.demo import demo_path

    return demo_path()


def _unlock(folder: Path) -> None:
    for root, dirs, _ in os.walk(folder):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o755)
            except OSError:
                pass


@pytest.fixture
def world_dir():
    """A fresh folder under the system temp folder that any user may enter (pytest's own
    temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="holoscope-hostile-"))
    folder.chmod(0o755)
    yield folder
    os.chmod(folder, 0o755)
    _unlock(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _probe(user: str, folder: Path) -> bool:
    """Can a command started as ``user`` (through launch.py) run holoscope but not read a
    mode-000 file?"""
    secret = folder / "probe-secret"
    secret.write_text("x")
    secret.chmod(0)
    code = "import holoscope, sys\ntry:\n    open(sys.argv[1]).read()\nexcept PermissionError:\n    sys.exit(0)\nsys.exit(3)\n"
    launch = [sys.executable, str(LAUNCHER), str(ADDRESS_SPACE_LIMIT), "-", user, "0", "--"]
    try:
        proc = subprocess.run([*launch, sys.executable, "-c", code, str(secret)], cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)  # fmt: skip
        return proc.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        secret.unlink()


@pytest.fixture(scope="session")
def unprivileged():
    """How to run a command that file permissions apply to: 'nobody' (uid 65534) when that user
    can run this interpreter, else 'nocaps' (root without CAP_DAC_OVERRIDE/READ_SEARCH).
    As a non-root user permissions apply anyway: 'self'."""
    if os.geteuid() != 0:
        return "self"
    folder = Path(tempfile.mkdtemp(prefix="holoscope-probe-"))
    try:
        folder.chmod(0o777)
        if _probe("nobody", folder):
            return "nobody"
        if _probe("nocaps", folder):
            return "nocaps"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    pytest.skip("running as root, and neither user nobody (cannot run this Python: "
                f"{sys.executable} is not reachable for uid {NOBODY}) nor root without the DAC "
                "capabilities (prctl refused) can be used to test an unreadable folder")  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
