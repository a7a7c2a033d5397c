"""Opening inputs: regular files only, never blocking, each failure one clear error."""

from __future__ import annotations

import os
import threading

import pytest

from holoscope.core.errors import CorruptStream, NotAFile, SourceNotFound, SourceUnreadable, display_path
from holoscope.core.files import check_regular, open_regular, read_limited


def test_regular_file_opens_and_reads(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"hello")
    with open_regular(path) as fh:
        assert fh.read() == b"hello"
    assert check_regular(path).st_size == 5
    assert read_limited(path, 5) == b"hello"
    with pytest.raises(CorruptStream, match="larger than the 4 bytes"):
        read_limited(path, 4)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(NotAFile, open_regular, fifo).value))
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "open_regular blocked on a FIFO"
    assert "FIFO" in str(outcome[0])
    with pytest.raises(NotAFile, match="FIFO"):
        check_regular(fifo)


@pytest.mark.parametrize("special,kind", [("/dev/null", "device"), ("/dev/zero", "device")])
def test_devices_are_refused(special, kind):
    with pytest.raises(NotAFile, match=kind):
        open_regular(special)


def test_folder_missing_loop_and_long_names(tmp_path):
    with pytest.raises(NotAFile, match="directory"):
        open_regular(tmp_path)
    with pytest.raises(SourceNotFound, match="no such file"):
        open_regular(tmp_path / "missing.ply")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(SourceUnreadable, match="symlink loop"):
        open_regular(loop)
    with pytest.raises(SourceUnreadable, match="name too long"):
        open_regular(tmp_path / ("x" * 300 + ".ply"))
    with pytest.raises(SourceNotFound, match="invalid file name"):
        open_regular(str(tmp_path / "nul\0.ply"))


def test_unreadable_file_as_another_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    path = tmp_path / "secret.ply"
    path.write_bytes(b"ply\n")
    os.chmod(path, 0o600)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, try, report the error class name
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                open_regular(path)
                name = "opened"
            except Exception as exc:  # noqa: BLE001
                name = f"{type(exc).__name__}: {exc}"
            os.write(w, name.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as fh:
        result = fh.read().decode()
    assert result.startswith("SourceUnreadable") or result.startswith("SourceNotFound"), result
    assert "permission denied" in result


def test_display_path_escapes_undecodable_bytes_and_controls():
    raw = os.fsdecode(b"scene\xff.ply")
    shown = display_path(raw)
    assert shown == "scene\\xff.ply"
    shown.encode("utf-8")  # printable anywhere
    assert display_path("a\nb") == "a\\nb"
    assert display_path(b"plain.ply") == "plain.ply"
