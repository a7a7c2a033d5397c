"""Where PlayCanvas's splat-transform lives, and a way to run it.

.ci/install-node-tools installs the pinned version into a cache folder outside the repository
and .ci/run exports its path as $HOLOSCOPE_SPLAT_TRANSFORM. Without that variable the default
cache folder is tried, so that the tests also run after a plain `bash .ci/install-node-tools`.
The tests skip, naming the reason, only when no usable splat-transform (and Node) is found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VERSION = "3.10.2"  # the version .ci/install-node-tools pins
TIMEOUT_S = 120


def _default_binary() -> Path:
    tools = os.environ.get("HOLOSCOPE_TOOLS") or str(Path.home() / ".cache" / "holoscope-tools")
    return Path(tools) / f"splat-transform-{VERSION}" / "node_modules" / ".bin" / "splat-transform"


class SplatTransform:
    """Runs ``splat-transform [global options] INPUT OUTPUT`` (always overwriting, quietly)."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def __call__(self, src: Path, dst: Path, *options: str) -> Path:
        cmd = [str(self.binary), "-w", "-q", *options, str(src), str(dst)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        if done.returncode != 0 or not dst.exists():
            raise AssertionError(f"splat-transform failed ({done.returncode}): {' '.join(cmd)}\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")  # fmt: skip
        return dst


@pytest.fixture(scope="session")
def splat_transform() -> SplatTransform:
    env = os.environ.get("HOLOSCOPE_SPLAT_TRANSFORM")
    binary = Path(env) if env else _default_binary()
    how = ("from $HOLOSCOPE_SPLAT_TRANSFORM" if env else
           "in $HOLOSCOPE_TOOLS" if os.environ.get("HOLOSCOPE_TOOLS") else "in the default tools cache")
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (no `node` on PATH): run `bash .ci/install-node-tools` "
                    "to install Node and @playcanvas/splat-transform")  # fmt: skip
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"@playcanvas/splat-transform {VERSION} not found at {binary} ({how}): "
                    "run `bash .ci/install-node-tools` or set HOLOSCOPE_SPLAT_TRANSFORM")  # fmt: skip
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        pytest.fail(f"splat-transform at {binary} cannot be started: {exc}")
    if done.returncode != 0:
        pytest.fail(f"splat-transform at {binary} does not run: {done.stderr.strip()[-500:]}")
    said = (done.stdout + done.stderr).strip()  # 3.10.2 prints its version on standard error
    if f"v{VERSION}" not in said:
        pytest.fail(f"splat-transform at {binary} says {said[-200:]!r}; the tests expect {VERSION}")
    return SplatTransform(binary)
