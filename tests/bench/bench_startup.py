"""Desktop start-up: process launch to the first painted frame of the built-in demo.

Compared side by side, interleaved, against a peer: a bare PySide6 window with a
QOpenGLWidget that clears and reports its first frame (the cost of Python + Qt + GL alone).
Both run as fresh processes on the same X server (an Xvfb this script starts when DISPLAY is
not set). The app reports whether torch was imported by then (it must not be).

    python tests/bench/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = r"""
import sys
from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication
from PySide6.QtOpenGLWidgets import QOpenGLWidget
import moderngl
fmt = QSurfaceFormat(); fmt.setVersion(4, 3); fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
QSurfaceFormat.setDefaultFormat(fmt)
app = QApplication(sys.argv[:1])
class W(QOpenGLWidget):
    def initializeGL(self):
        self.ctx = moderngl.create_context(require=430)
    def paintGL(self):
        self.ctx.detect_framebuffer(self.defaultFramebufferObject()).clear(0.1, 0.1, 0.1, 1.0)
        print("first-frame torch=False", flush=True)
        app.quit()
w = W(); w.resize(1200, 760); w.show()
app.exec()
"""


def time_to_first_frame(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    elapsed = time.perf_counter() - start
    proc.wait(timeout=60)
    if not line.startswith("first-frame"):
        raise RuntimeError(f"{cmd} did not report a first frame (got {line!r})")
    return elapsed, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = dict(os.environ, HOLOSCOPE_STARTUP_PROBE="1", QT_QPA_PLATFORM="xcb")
    xvfb = None
    if "DISPLAY" not in os.environ:
        if shutil.which("Xvfb") is None:
            print("needs an X server: set DISPLAY or install Xvfb")
            return 2
        display = ":" + str(150 + os.getpid() % 50)
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(1.0)
        env["DISPLAY"] = display
    cache = tempfile.mkdtemp(prefix="holoscope-bench-")
    env["HOLOSCOPE_CACHE"] = cache
    try:
        app_cmd = [sys.executable, "-m", "holoscope"]
        peer_cmd = [sys.executable, "-c", PEER]
        time_to_first_frame(app_cmd, env)  # generates and caches the demo once
        samples: dict[str, list[float]] = {"holoscope (demo, first frame)": [], "bare PySide6 + moderngl window": []}
        torch_seen = False
        for r in range(args.repeats):
            order = [("holoscope (demo, first frame)", app_cmd), ("bare PySide6 + moderngl window", peer_cmd)]
            for name, cmd in order if r % 2 == 0 else order[::-1]:
                seconds, line = time_to_first_frame(cmd, env)
                samples[name].append(seconds)
                torch_seen |= "torch=True" in line
        app_med = statistics.median(samples["holoscope (demo, first frame)"])
        peer_med = statistics.median(samples["bare PySide6 + moderngl window"])
        print(f"start-up to first frame, {args.repeats} interleaved runs each (median / min, seconds)")
        for name, values in samples.items():
            print(f"  {name:<34} {statistics.median(values):6.3f} / {min(values):6.3f}")
        print(f"  ratio holoscope / bare window     {app_med / peer_med:6.2f}x  (target: holoscope under 1.5 s)")
        print(f"  torch imported by the first frame: {'yes' if torch_seen else 'no'}")
        return 0 if app_med < 1.5 and not torch_seen else 1
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


if __name__ == "__main__":
    sys.exit(main())
