"""core/sources.py: files, bytes and folders behind one small interface, every failure a
holoscope error naming the source."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from holoscope.core.errors import CorruptStream, NotAFile, SourceNotFound
from holoscope.core.sources import BytesSource, FileSource, FolderSource, Source, source_for


def test_file_source_reads_ranges_head_and_size(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4)
    src = FileSource(path)
    assert src.size == 1024 and src.local_path == path and src.label == path
    assert src.name == str(path) and src.uri.startswith("file://") and src.uri.endswith("data.bin")
    assert src.head(4) == b"\x00\x01\x02\x03"
    assert src.read_range(254, 4) == b"\xfe\xff\x00\x01"
    assert src.read_range(1020, 100) == bytes(range(252, 256))  # short at the end
    assert src.read_range(5000, 10) == b""
    with src.open() as fh:
        assert fh.seekable() and fh.read(2) == b"\x00\x01"
        assert np.fromfile(fh, np.uint8, count=2).tolist() == [2, 3]  # a real descriptor


def test_bytes_source(tmp_path: Path) -> None:
    src = BytesSource(b"hello world", name="greeting.txt")
    assert src.size == 11 and src.local_path is None and src.label == "greeting.txt"
    assert src.uri == "memory:greeting.txt"
    assert src.head(5) == b"hello" and src.read_range(6, 100) == b"world"
    with src.open() as fh:
        fh.seek(6)
        assert fh.read() == b"world"
    with pytest.raises(ValueError):
        src.read_range(-1, 2)


def test_bytes_source_is_a_file_object_zipfile_can_use() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("meta.json", "{}")
    src = BytesSource(buf.getvalue(), name="x.sog")
    with src.open() as fh, zipfile.ZipFile(fh) as zf:
        assert zf.read("meta.json") == b"{}"


def test_read_limited_does_not_trust_the_size() -> None:
    src = BytesSource(b"x" * 100, name="big")
    assert src.read_limited(100) == b"x" * 100
    with pytest.raises(CorruptStream, match="big: .*larger than the 99 bytes"):
        src.read_limited(99)


def test_file_source_errors_name_the_file(tmp_path: Path) -> None:
    missing = FileSource(tmp_path / "missing.ply")
    assert missing.size is None
    with pytest.raises(SourceNotFound, match="missing.ply: no such file"):
        missing.head(10)
    with pytest.raises(NotAFile, match="directory"):
        FileSource(tmp_path).open()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_file_source_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)
    src = FileSource(fifo)
    assert src.size is None
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(NotAFile, src.head, 16).value))
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "FileSource blocked on a FIFO"
    assert "FIFO" in str(outcome[0])


def test_folder_source(tmp_path: Path) -> None:
    (tmp_path / "a.ply").write_bytes(b"ply\n")
    (tmp_path / "sub").mkdir()
    src = FolderSource(tmp_path)
    assert src.is_folder and src.size is None and src.uri.endswith("/")
    assert sorted(src.names()) == ["a.ply", "sub"]
    assert src.has("a.ply") and not src.has("sub") and not src.has("nope")
    member = src.member("a.ply")
    assert isinstance(member, FileSource) and member.head(3) == b"ply"
    with pytest.raises(NotAFile, match="directory"):
        src.open()
    with pytest.raises(NotAFile):
        src.head(4)
    with pytest.raises(SourceNotFound):
        FolderSource(tmp_path / "gone").names()


def test_source_for(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    given = BytesSource(b"x")
    assert source_for(given) is given
    assert isinstance(source_for(path), FileSource) and source_for(str(path)).head(3) == b"abc"
    assert isinstance(source_for(tmp_path), FolderSource)
    assert isinstance(source_for(b"abc"), BytesSource) and source_for(bytearray(b"ab")).size == 2
    assert isinstance(source_for(tmp_path / "missing"), FileSource)  # the read says what is wrong
    with pytest.raises(TypeError):
        source_for(42)  # type: ignore[arg-type]


def test_a_new_source_needs_only_open() -> None:
    """An HTTP source will plug in like this: ``open`` (and optionally faster range reads)."""

    class Reversed(Source):
        def __init__(self, data: bytes) -> None:
            self._data, self.name, self.uri = data[::-1], "rev", "test:rev"

        def open(self):  # noqa: ANN202
            return io.BytesIO(self._data)

    src = Reversed(b"0123456789")
    assert src.head(3) == b"987" and src.read_range(8, 5) == b"10" and src.size is None
    assert src.label == "rev"
