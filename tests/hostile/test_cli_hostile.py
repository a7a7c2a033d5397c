"""Hostile inputs through the real command line (``python -m holoscope``), one process per
command under a 2 GB address-space limit and a 20 s timeout.

Every input is generated here (bombs of a few KB, sparse files, FIFOs, odd names, damaged
copies of the real samples). Each test runs its cases a few at a time and fails with the list
of every case that went wrong; see ``cases.py`` for what a right ending is. Cases marked
legitimate (``expect=0``) must succeed cleanly; ``either(0, 2)`` marks the few where a clean
refusal and a clean success are both right.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from .cases import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    Arg,
    Case,
    assert_all_pass,
    damaged_copies,
    either,
    mp4_boxes,
    ply_header,
    ply_rows,
    reading_commands,
    rewrite_zip,
    run_cases,
    sog_files,
    sparse_file,
    spz_v3_bomb,
    spz_v4_bomb,
    uniform_webp,
    write_folder,
    write_ply_rows,
    write_video,
    write_zip,
    zip_with_deflated_member,
)
from .conftest import mode

# A test runs dozens of commands; a hanging reader costs each of them its full 20 s timeout.
pytestmark = pytest.mark.timeout(900)

GB = 1 << 30
ALL = ("info", "render", "convert")
EXTRA = ("info", "render")  # a reviewer's extra case: the reader is shared, render allocates most


def _src(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    return folder


def _run(cases: list[Case]) -> None:
    assert_all_pass(run_cases(cases))


# 1. Small files that decode to gigabytes -----------------------------------------------------


def _compressed_ply_header(chunks: int | str, vertices: int | str) -> bytes:
    bounds = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
              "max_scale_x", "max_scale_y", "max_scale_z")  # fmt: skip
    packed = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
    return (
        f"ply\nformat binary_little_endian 1.0\nelement chunk {chunks}\n"
        + "".join(f"property float {b}\n" for b in bounds)
        + f"element vertex {vertices}\n"
        + "".join(f"property uint {p}\n" for p in packed)
        + "end_header\n"
    ).encode()


def test_small_files_that_decode_to_gigabytes(tmp_path):
    src = _src(tmp_path)
    inputs: dict[str, tuple[Path, str, tuple[str, ...]]] = {}  # name -> (input, text the error names, commands)

    def add(name: str, path: Path, commands: tuple[str, ...] = ALL) -> None:
        inputs[name] = (path, path.name, commands)

    # SOG: 30-byte lossless WebPs that declare huge images.
    add("sog 4096x4096 images, count 16.7M", write_zip(src / "bomb-4096.sog", sog_files(4096**2, 4096, 4096)))
    add("sog 8192x8192 images, count 67M", write_zip(src / "bomb-8192.sog", sog_files(8192**2, 8192, 8192)))
    add("sog 8192x8192 images, count 4", write_zip(src / "bomb-8192-count4.sog", sog_files(4, 8192, 8192)))
    # The same in the largest WebP, and unbundled (extra cases: the reader is the same for every
    # command, so info and render, which allocates the most, stand for all three).
    add("sog 16384x16384 images, count 2^28", write_zip(src / "bomb-16384.sog", sog_files(16384**2, 16384, 16384)), EXTRA)
    add("sog folder, 4096x4096 images, count 16.7M",
        write_folder(src / "bomb-4096-folder", sog_files(4096**2, 4096, 4096)), EXTRA)  # fmt: skip
    folder = write_folder(src / "bomb-8192-count4-folder", sog_files(4, 8192, 8192))
    inputs["sog folder's meta.json, 8192x8192 images, count 4"] = (folder / "meta.json", folder.name, EXTRA)
    small = sog_files(4, 2, 2)
    meta_head = json.dumps(json.loads(small["meta.json"]))[:-1].encode() + b', "pad": "'
    add("sog zip bomb: meta.json inflates to 200 MB",
        zip_with_deflated_member(src / "zipbomb-meta.sog", "meta.json", meta_head, ord(" "), 200 << 20,
                                 {k: v for k, v in small.items() if k != "meta.json"}), EXTRA)  # fmt: skip
    add("sog zip bomb: means_l.webp inflates to 200 MB",
        zip_with_deflated_member(src / "zipbomb-webp.sog", "means_l.webp", small["means_l.webp"], 0, 200 << 20,
                                 {k: v for k, v in small.items() if k != "means_l.webp"}), EXTRA)  # fmt: skip

    shn = sog_files(4, 2, 2)
    meta = json.loads(shn["meta.json"])
    meta["shN"] = {"count": 65536, "bands": 3, "codebook": [0.0] * 256,
                   "files": ["shN_centroids.webp", "shN_labels.webp"]}  # fmt: skip
    shn["meta.json"] = json.dumps(meta).encode()
    shn["shN_centroids.webp"] = uniform_webp(960, 16384)
    shn["shN_labels.webp"] = uniform_webp(2, 2)
    add("sog shN palette image 960x16384", write_zip(src / "bomb-shn.sog", shn), EXTRA)
    digits = sog_files(4, 2, 2)
    digits["meta.json"] = digits["meta.json"].replace(b'"count": 4', b'"count": ' + b"9" * 5000)
    add("sog meta.json count of 5000 digits", write_zip(src / "digits.sog", digits), EXTRA)

    # SPZ: headers claiming millions of splats over streams that inflate that far.
    add("spz v4 zstd, 10M SH3 splats of zeros", spz_v4_bomb(src / "bomb-v4.spz", 10_000_000))
    add("spz v4 zstd, 8M SH3 splats at a plausible 56:1",
        spz_v4_bomb(src / "bomb-v4-56to1.spz", 8_000_000, every=100), EXTRA)  # fmt: skip
    add("spz v3 gzip, 10M SH3 splats of zeros", spz_v3_bomb(src / "bomb-v3.spz", 10_000_000))
    add("spz v3 gzip, 8M SH3 splats at a plausible 45:1",
        spz_v3_bomb(src / "bomb-v3-45to1.spz", 8_000_000, every=200), EXTRA)  # fmt: skip
    add("spz v3 gzip header claims 2^28 splats over 100k",
        spz_v3_bomb(src / "lie-v3.spz", 100_000, declared=1 << 28), EXTRA)  # fmt: skip
    header = struct.pack("<4sIIBBBBI12x", b"NGSP", 4, 1000, 3, 12, 0, 255, 1 << 30)
    (src / "lie-v4-streams.spz").write_bytes(header + bytes(64))
    add("spz v4: 255 streams, table of contents past the end", src / "lie-v4-streams.spz", EXTRA)
    add("spz v4 toc claims 2^63-byte streams",
        spz_v4_bomb(src / "lie-v4-toc.spz", 1000, toc_sizes=[(1 << 63) - 1] * 6), EXTRA)  # fmt: skip

    # PLY: list properties and counts that plyfile would allocate up front or parse row by row.
    for fmt in ("binary_little_endian", "ascii"):
        head = f"ply\nformat {fmt} 1.0\nelement vertex 250000000\nproperty list uchar float x\nend_header\n".encode()
        body = (b"\0" if fmt != "ascii" else b"0\n") * ((168 - len(head)) // (1 if fmt != "ascii" else 2))
        path = src / f"list-{fmt.split('_')[0]}.ply"
        path.write_bytes((head + body).ljust(168, b"\0" if fmt != "ascii" else b"\n"))
        assert path.stat().st_size == 168
        add(f"ply 168 bytes, list property, 2.5e8 vertices ({fmt.split('_')[0]})", path)
    rows = ply_rows(1)
    (src / "claims-1e9.ply").write_bytes(ply_header(10**9) + rows.tobytes())
    add("ply header claims 1e9 vertices (binary)", src / "claims-1e9.ply")
    (src / "claims-1e9-ascii.ply").write_bytes(ply_header(10**9, fmt="ascii") + b" ".join([b"0"] * 17) + b"\n")
    add("ply header claims 1e9 vertices (ascii)", src / "claims-1e9-ascii.ply", EXTRA)
    (src / "claims-2e63.ply").write_bytes(ply_header(2**63) + rows.tobytes())
    add("ply header claims 2^63 vertices", src / "claims-2e63.ply", EXTRA)
    (src / "claims-minus-1.ply").write_bytes(ply_header(-1) + rows.tobytes())
    add("ply header claims -1 vertices", src / "claims-minus-1.ply", EXTRA)

    # Compressed PLY: chunk and vertex counts far beyond the bytes present.
    (src / "huge.compressed.ply").write_bytes(_compressed_ply_header(4_000_000_000, 10**12) + bytes(64))
    add("compressed ply claims 4e9 chunks, 1e12 vertices", src / "huge.compressed.ply")
    (src / "consistent.compressed.ply").write_bytes(_compressed_ply_header(3_906_250, 10**9) + bytes(64))
    add("compressed ply claims 1e9 vertices in 3.9M chunks", src / "consistent.compressed.ply")
    sparse_file(src / "one-chunk.compressed.ply", 48 + 16_000_000 + 2000, _compressed_ply_header(1, 1_000_000))
    add("compressed ply: 1 chunk for 1M vertices (sparse)", src / "one-chunk.compressed.ply", EXTRA)

    cases = []
    for name, (path, needle, commands) in inputs.items():
        cases += reading_commands(name, path, tmp_path, needle=needle, commands=commands)
    _run(cases)


# 2. Big or sparse files ----------------------------------------------------------------------


def test_big_and_sparse_files(tmp_path, splat_samples):
    src = _src(tmp_path)
    big: list[tuple[str, Path, dict]] = []
    fast = {"max_seconds": 10}
    # A valid file followed by a hole: reading just what the header describes (exit 0) is as
    # right as refusing the size (exit 2), if it is fast.
    tail = {"max_seconds": 10, "expect": either(0, 2), "commands": EXTRA}
    extra = {"max_seconds": 10, "commands": EXTRA}

    big.append(("splat 8 GB sparse", sparse_file(src / "huge.splat", 8 * GB), fast))
    big.append(("ksplat 8 GB sparse", sparse_file(src / "huge.ksplat", 8 * GB), fast))
    ksplat = splat_samples["minimal.ksplat"].read_bytes()
    big.append(("ksplat header then 8 GB sparse", sparse_file(src / "huge-headed.ksplat", 8 * GB, ksplat), tail))
    v4 = splat_samples["minimal-v4.spz"].read_bytes()
    big.append(("spz v4 then 8 GB sparse", sparse_file(src / "huge-tail.spz", 8 * GB, v4), tail))
    wave = splat_samples["wave_0001.sog"].read_bytes()
    big.append(("sog zip then 8 GB sparse", sparse_file(src / "huge-tail.sog", 8 * GB, wave), tail))
    n = 100_000_000  # an INRIA PLY whose 1e8 rows really are there (6.8 GB of holes)
    head = ply_header(n)
    big.append(("ply 1e8 vertices, sizes consistent (sparse)",
                sparse_file(src / "huge-1e8.ply", len(head) + 68 * n, head), extra))  # fmt: skip
    head = ply_header(n, fmt="ascii")
    big.append(("ascii ply 1e8 vertices on an 8 GB sparse file", sparse_file(src / "huge-ascii.ply", 8 * GB, head), extra))
    n = 50_000_000
    head = _compressed_ply_header(math.ceil(n / 256), n)
    size = len(head) + 48 * math.ceil(n / 256) + 16 * n
    big.append(("compressed ply 5e7 vertices, sizes consistent (sparse)",
                sparse_file(src / "huge-5e7.compressed.ply", size, head), extra))  # fmt: skip
    big.append(("ply: 200 MB of zeros and no end_header (sparse)", sparse_file(src / "no-end.ply", 200 << 20, b"ply\n"), fast))
    big.append(("compressed ply: 200 MB of zeros and no end_header (sparse)",
                sparse_file(src / "no-end.compressed.ply", 200 << 20,
                            b"ply\nformat binary_little_endian 1.0\nelement chunk 1\n"), extra))  # fmt: skip
    # A real 190 MB header line (a comment, which plyfile accepts line by line), deleted after.
    long_line = src / "long-comment.ply"
    with open(long_line, "wb") as fh:
        fh.write(b"ply\nformat binary_little_endian 1.0\ncomment ")
        block = b"a" * (1 << 20)
        for _ in range(190):
            fh.write(block)
    big.append(("ply: a 190 MB comment line and no end_header", long_line, fast))

    cases = []
    for name, path, options in big:
        options = dict(options)
        needle = path.name if options.get("expect", 2) == 2 else None
        cases += reading_commands(name, path, tmp_path, needle=needle, **options)
    # Video followed by a huge hole: the container is fine, the tail is not; info must be fast
    # (it may describe the 5 frames or refuse the file), render and convert refuse video.
    for container, tail in (("mkv", 8), ("mkv", 64), ("mp4", 8)):
        path = write_video(src / f"five-{tail}g.{container}", 5, codec="ffv1" if container == "mkv" else "libx264")
        os.truncate(path, path.stat().st_size + tail * GB)
        name = f"{container} 5 frames + {tail} GB sparse tail"
        cases += reading_commands(name, path, tmp_path, commands=("info",), expect=either(0, 2), max_seconds=8)
        others = ("render", "convert") if (container, tail) == ("mkv", 8) else ("render",)
        cases += reading_commands(name, path, tmp_path, commands=others, needle=path.name, max_seconds=8)
    try:
        _run(cases)
    finally:
        long_line.unlink()


# 3. Special files ----------------------------------------------------------------------------


def _unzip(data: bytes, folder: Path) -> Path:
    import io
    import zipfile

    folder.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            (folder / Path(info.filename).name).write_bytes(zf.read(info))
    return folder


def test_special_files(tmp_path, splat_samples):
    src = _src(tmp_path)
    wave = splat_samples["wave_0001.sog"].read_bytes()
    inputs: list[tuple[str, Path | str, str | None, tuple[str, ...]]] = []

    fifo = src / "pipe.ply"
    os.mkfifo(fifo)
    inputs.append(("a FIFO", fifo, "pipe.ply", ALL))
    inputs.append(("/dev/zero", "/dev/zero", "/dev/zero", ALL))
    inputs.append(("/dev/null", "/dev/null", "/dev/null", ALL))
    inputs.append(("/proc/self/status", "/proc/self/status", "status", ALL))
    (src / "folder").mkdir()
    inputs.append(("a directory", src / "folder", "folder", ALL))

    sog = _unzip(wave, src / "fifo-member-sog")
    (sog / "means_u.webp").unlink()
    os.mkfifo(sog / "means_u.webp")
    inputs.append(("sog folder whose means_u.webp is a FIFO", sog, "fifo-member-sog", ALL))
    inputs.append(("meta.json of a sog folder whose means_u.webp is a FIFO", sog / "meta.json", "fifo-member-sog", ALL))
    sog = _unzip(wave, src / "fifo-meta-sog")
    (sog / "meta.json").unlink()
    os.mkfifo(sog / "meta.json")
    inputs.append(("sog folder whose meta.json is a FIFO", sog, "fifo-meta-sog", EXTRA))
    sog = _unzip(wave, src / "devzero-member-sog")
    (sog / "means_u.webp").unlink()
    (sog / "means_u.webp").symlink_to("/dev/zero")
    inputs.append(("sog folder whose means_u.webp links to /dev/zero", sog, "devzero-member-sog", EXTRA))
    sog = _unzip(wave, src / "folder-member-sog")
    (sog / "scales.webp").unlink()
    (sog / "scales.webp").mkdir()
    inputs.append(("sog folder whose scales.webp is a folder", sog, "folder-member-sog", EXTRA))

    sock_path = src / "socket.ply"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    inputs.append(("a unix socket", sock_path, "socket.ply", EXTRA))
    (src / "loop.ply").symlink_to("loop.ply")
    inputs.append(("a symlink loop", src / "loop.ply", "loop.ply", EXTRA))
    (src / "dangling.ply").symlink_to("nowhere.ply")
    inputs.append(("a dangling symlink", src / "dangling.ply", "dangling.ply", EXTRA))
    (src / "zero.ply").symlink_to("/dev/zero")
    inputs.append(("scene.ply linking to /dev/zero", src / "zero.ply", "zero.ply", EXTRA))

    cases = []
    for name, path, needle, commands in inputs:
        cases += reading_commands(name, path, tmp_path, needle=needle, commands=commands)
    cases.append(Case("'-' as input (stdin is not read) [info]", ["info", "-"], out_dir=tmp_path / "out" / "dash"))
    for fmt in ("ply", "sog"):  # a forced format skips the probe: the check must not
        cases.append(Case(f"a FIFO with --format {fmt} [info]", ["info", fifo, "--format", fmt],
                          out_dir=tmp_path / "out" / f"fifo-forced-{fmt}", needle="pipe.ply"))  # fmt: skip
    try:
        _run(cases)
    finally:
        sock.close()


def test_input_in_an_unreadable_folder(world_dir, unprivileged, lod4):
    user = "root" if unprivileged == "self" else unprivileged
    locked = world_dir / "locked"
    locked.mkdir()
    shutil.copyfile(lod4, locked / "scene.ply")
    locked.chmod(0)
    secret = world_dir / "secret.ply"
    shutil.copyfile(lod4, secret)
    secret.chmod(0)
    traverse = world_dir / "traverse-only"
    traverse.mkdir()
    shutil.copyfile(lod4, traverse / "scene.ply")
    (traverse / "scene.ply").chmod(0o644)
    traverse.chmod(0o111)
    readonly = world_dir / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    public = world_dir / "public.ply"
    shutil.copyfile(lod4, public)
    public.chmod(0o644)

    def readonly_untouched(case: Case, res) -> list[str]:
        left = os.listdir(readonly)
        return [f"left in the read-only folder: {left}"] if left else []

    cases = []
    cases += reading_commands("input inside a mode-000 folder", locked / "scene.ply", world_dir,
                              needle=("permission", "scene.ply"), user=user)  # fmt: skip
    cases += reading_commands("a mode-000 input file", secret, world_dir, needle=("permission", "secret.ply"), user=user)
    cases += reading_commands("input inside a traverse-only (--x) folder", traverse / "scene.ply", world_dir,
                              expect=0, image=True, user=user)  # fmt: skip
    out = world_dir / "out"
    cases += [
        Case("render -o into a read-only folder", ["render", public, "-o", readonly / "out.png", "--size", "64x64"],
             out_dir=out / "ro-render", needle="readonly", user=user, check=readonly_untouched),
        Case("render -o video into a read-only folder",
             ["render", public, "-o", readonly / "out.mp4", "--size", "64x64", "--orbit", "2"],
             out_dir=out / "ro-render-mp4", needle="readonly", user=user, check=readonly_untouched),
        Case("convert into a read-only folder", ["convert", public, readonly / "out.ply"],
             out_dir=out / "ro-convert", needle="readonly", user=user, check=readonly_untouched),
        Case("render -o into a mode-000 folder", ["render", public, "-o", locked / "out.png", "--size", "64x64"],
             out_dir=out / "locked-render", needle="locked", user=user),
    ]  # fmt: skip
    _run(cases)


def test_long_and_odd_file_names(tmp_path, lod4):
    src = _src(tmp_path)
    long300 = "n" * 296
    cases = reading_commands("a 300-character input name", src / f"{long300}.ply", tmp_path,
                             needle=("too long", long300[:40]), commands=("info", "render"))  # fmt: skip
    deep = src / ("d/" * 2100 + "x.ply")  # beyond PATH_MAX, each part short
    cases += reading_commands("a 4200-character input path", deep, tmp_path, needle="x.ply", commands=("info",))
    out = tmp_path / "out"
    for ext in ("png", "mp4"):
        name = f"{long300}.{ext}"
        extra = [] if ext == "png" else ["--orbit", "2"]
        cases.append(Case(f"render -o a 300-character .{ext} name",
                          ["render", lod4, "-o", out / f"long-render-{ext}" / name, "--size", "64x64", *extra],
                          out_dir=out / f"long-render-{ext}", needle="too long"))  # fmt: skip
    cases.append(Case("convert to a 300-character name", ["convert", lod4, out / "long-convert" / f"{long300}.ply"],
                      out_dir=out / "long-convert", needle="too long"))  # fmt: skip
    # The longest legal names (255 bytes): temporary names beside them must not overflow.
    for ext in ("png", "mp4", "ply", "spz"):
        name = "m" * (254 - len(ext)) + "." + ext
        assert len(name) == 255
        folder = out / f"max-name-{ext}"
        if ext in ("png", "mp4"):
            extra = [] if ext == "png" else ["--orbit", "2"]
            args = ["render", lod4, "-o", folder / name, "--size", "64x64", *extra]
        else:
            args = ["convert", lod4, folder / name]
        cases.append(Case(f"a 255-byte output name .{ext}", args, expect=0, out_dir=folder, outputs=(name,)))
    # Non-UTF-8 bytes in names, in and out: success, printable output.
    odd = os.fsencode(src) + b"/scene\xff.ply"
    shutil.copyfile(lod4, odd)
    cases += reading_commands("input name with byte 0xff", odd, tmp_path, expect=0)
    for ext, cmd in (("png", "render"), ("mp4", "render"), ("ply", "convert"), ("sog", "convert")):
        name = b"out\xff." + ext.encode()
        folder = out / f"odd-out-{ext}"
        target = os.fsencode(folder) + b"/" + name
        args = ["render", lod4, "-o", target, "--size", "64x64"] + (["--orbit", "2"] if ext == "mp4" else [])
        if cmd == "convert":
            args = ["convert", lod4, target]
        cases.append(Case(f"output name with byte 0xff .{ext}", args, expect=0, out_dir=folder, outputs=(name,)))
    # Control characters: a file that exists, and messages about files that do not.
    shutil.copyfile(lod4, src / "new\nline.ply")
    cases += reading_commands("input name with a newline", src / "new\nline.ply", tmp_path, expect=0, image=True)
    cases += reading_commands("missing input named with a newline", src / "bad\nname.ply", tmp_path,
                              needle="name.ply", commands=("info",))  # fmt: skip
    cases += reading_commands("missing input named with an escape sequence", src / "esc\x1b[2J.ply", tmp_path,
                              needle="esc", commands=("info",))  # fmt: skip
    _run(cases)


# 4. Output streams ---------------------------------------------------------------------------


def test_standard_output_streams(tmp_path, lod4):
    out = tmp_path / "out"
    missing = tmp_path / "missing.ply"
    cases = [
        Case("info | head -0", ["info", lod4], expect=EXIT_BROKEN_PIPE, stdout="closed-pipe", out_dir=out / "pipe"),
        Case("info --json | head -0", ["info", lod4, "--json"], expect=EXIT_BROKEN_PIPE, stdout="closed-pipe",
             out_dir=out / "pipe-json"),
        Case("--formats | head -0", ["--formats"], expect=EXIT_BROKEN_PIPE, stdout="closed-pipe", out_dir=out / "pipe-formats"),
        # Help text is written at exit: a silent 0 is as good as 141 there, a traceback is not.
        Case("info --help | head -0", ["info", "--help"], expect=either(0, EXIT_BROKEN_PIPE), stdout="closed-pipe",
             out_dir=out / "pipe-help"),
        Case("info > /dev/full", ["info", lod4], stdout="dev-full", out_dir=out / "full", needle="standard output"),
        Case("info --json > /dev/full", ["info", lod4, "--json"], stdout="dev-full", out_dir=out / "full-json",
             needle="standard output"),
        Case("render -o out.png > /dev/full", ["render", lod4, "-o", out / "full-render" / "out.png", "--size", "64x64"],
             stdout="dev-full", out_dir=out / "full-render", needle="standard output", may_leave=("out.png",)),
        Case("info >&- (stdout closed)", ["info", lod4], expect=either(2, EXIT_BROKEN_PIPE), stdout="closed",
             out_dir=out / "closed", needle="standard output"),
        Case("info of a missing file 2> /dev/full", ["info", missing], stderr="dev-full", out_dir=out / "err-full"),
        Case("info > /dev/full 2> /dev/full", ["info", lod4], stdout="dev-full", stderr="dev-full",
             out_dir=out / "both-full"),
    ]  # fmt: skip
    _run(cases)


# 5. Signals ----------------------------------------------------------------------------------


def test_signals_leave_no_partial_output(tmp_path, demo_ready):
    out = tmp_path / "out"
    long_render = ["--orbit", "2000", "--size", "320x240"]
    cases = []
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        folder = out / f"render-{sig.name}"
        cases.append(Case(f"{sig.name} during render -o out.mp4", ["render", "demo", "-o", folder / "out.mp4", *long_render],
                          expect=128 + sig, out_dir=folder, signals=(sig,)))  # fmt: skip
    for sig in (signal.SIGTERM, signal.SIGINT):  # impatient users press twice
        folder = out / f"render-twice-{sig.name}"
        cases.append(Case(f"{sig.name} twice during render -o out.mp4",
                          ["render", "demo", "-o", folder / "out.mp4", *long_render],
                          expect=either(128 + sig, -sig), out_dir=folder, signals=(sig, sig)))  # fmt: skip
    folder = out / "render-sequence"
    cases.append(Case("SIGTERM during render -o %04d.png (sequence)",
                      ["render", "demo", "-o", folder / "%04d.png", *long_render],
                      expect=128 + signal.SIGTERM, out_dir=folder, signals=(signal.SIGTERM,)))  # fmt: skip
    folder = out / "convert-sog"
    cases.append(Case("SIGTERM during convert demo out.sog", ["convert", "demo", folder / "out.sog"],
                      expect=128 + signal.SIGTERM, out_dir=folder, signals=(signal.SIGTERM,),
                      signal_ready="start", signal_delay=3.0))  # fmt: skip
    assert_all_pass(run_cases(cases, jobs=2))  # each render runs several threads: two at a time


# 6. Options and camera paths -----------------------------------------------------------------


FOV = ("fov", "field of view")


def test_hostile_options(tmp_path, lod4):
    out = tmp_path / "out"
    # (name, extra options, expected exit, needle); size and orbit are added unless given.
    options = [
        ("--size 16384x16384", ["--size", "16384x16384"], 2, None),
        ("--size -5x5", ["--size", "-5x5"], 2, "size"),
        ("--size 0x0", ["--size", "0x0"], 2, "size"),
        ("--size 99999999999999999999x2", ["--size", "99999999999999999999x2"], 2, "size"),
        ("--size 64x64x64", ["--size", "64x64x64"], 2, "size"),
        ("--fov inf", ["--fov", "inf"], 2, FOV),
        ("--fov nan", ["--fov", "nan"], 2, FOV),
        ("--fov 0", ["--fov", "0"], 2, FOV),
        ("--fov 1e-300", ["--fov", "1e-300"], 2, FOV),
        ("--fov 180", ["--fov", "180"], 2, FOV),
        ("--fov -10", ["--fov", "-10"], 2, FOV),
        ("--fps 0.0001", ["--fps", "0.0001"], either(0, 2), None),
        ("--fps inf", ["--fps", "inf"], 2, "fps"),
        ("--fps nan", ["--fps", "nan"], 2, "fps"),
        ("--fps -30", ["--fps", "-30"], 2, "fps"),
        ("--orbit 0", ["--orbit", "0"], 2, "orbit"),
        ("--orbit -1", ["--orbit", "-1"], 2, "orbit"),
        ("--orbit 1000000000", ["--orbit", "1000000000"], 2, "orbit"),
        ("--orbit 10**30", ["--orbit", "1" + "0" * 30], 2, "orbit"),
        ("--background nan,0,0", ["--background", "nan,0,0"], 2, "background"),
        ("--background inf,0,0", ["--background", "inf,0,0"], 2, "background"),
        ("--background 1,2", ["--background", "1,2"], 2, "background"),
        ("--crf 999", ["--crf", "999"], 2, "crf"),
        ("--crf -1", ["--crf", "-1"], 2, "crf"),
        ("--sh-degree 99", ["--sh-degree", "99"], 2, "sh"),
        ("--up sideways", ["--up", "sideways"], 2, "up"),
        ("--codec ffv1 into .mp4", ["--codec", "ffv1"], 2, "ffv1"),
        ("--format nonsense", ["--format", "nonsense"], 2, "nonsense"),
        ("--max-memory 1K", ["--max-memory", "1K"], 2, "memory"),
        ("--max-memory bogus", ["--max-memory", "bogus"], 2, "memory"),
        ("--max-memory -5G", ["--max-memory", "-5G"], 2, "memory"),
        ("--max-memory 99999T", ["--max-memory", "99999T"], 2, "memory"),
        ("--max-memory 64M (legitimate)", ["--max-memory", "64M"], 0, None),
        ("--camera-path and --orbit", ["--camera-path", str(lod4), "--orbit", "3"], 2, None),
    ]
    cases = []
    for i, (name, extra, expect, needle) in enumerate(options):
        folder = out / f"opt-{i:02d}"
        args = ["render", lod4, "-o", folder / "out.mp4", *extra]
        if "--size" not in extra:
            args += ["--size", "64x64"]
        if "--orbit" not in extra and "--camera-path" not in extra:
            args += ["--orbit", "2"]
        cases.append(Case(f"render {name}", args, expect=expect, out_dir=folder, needle=needle, outputs=("out.mp4",)))
    folder = out / "wide-png"
    cases.append(Case("render --size 16384x2 -o out.png", ["render", lod4, "-o", folder / "out.png", "--size", "16384x2"],
                      expect=either(0, 2), out_dir=folder, outputs=("out.png",)))  # fmt: skip
    for name, target in (("an unknown extension", "out.xyz"), ("an existing folder", "."), ("an empty name", "")):
        folder = out / f"bad-output-{len(cases)}"
        cases.append(Case(f"render -o {name}", ["render", lod4, "-o", target, "--size", "64x64"], out_dir=folder))
    for cmd, target in (("render", "out.mp4"), ("render", "out.png"), ("convert", "out.ply")):
        folder = out / f"folder-named-{target}"
        (folder / target).mkdir(parents=True)
        args = ["render", lod4, "-o", folder / target, "--size", "64x64", "--orbit", "2"] if cmd == "render" else \
            ["convert", lod4, folder / target]  # fmt: skip
        cases.append(Case(f"{cmd} onto an existing folder named {target}", args, out_dir=folder, needle=target,
                          may_leave=(target,)))  # fmt: skip
    for name, extra, needle in (("--sh-degree 7", ["--sh-degree", "7"], "sh"), ("--flip-axes q", ["--flip-axes", "q"], "flip"),
                                ("--to nonsense", ["--to", "nonsense"], ("nonsense", "writable formats")),
                                ("--spz-version 2", ["--spz-version", "2"], "version"),
                                ("--max-memory 1K", ["--max-memory", "1K"], "memory")):  # fmt: skip
        folder = out / f"convert-{len(cases)}"
        target = folder / ("out.spz" if "spz" in name else "out.ply")
        cases.append(Case(f"convert {name}", ["convert", lod4, target, *extra], out_dir=folder, needle=needle))
    cases.append(Case("info --max-memory 1K", ["info", lod4, "--max-memory", "1K"], out_dir=out / "info-mem", needle="memory"))
    _run(cases)


def _camera(fov: float = 50.0, matrix: list | None = None) -> dict:
    c2w = matrix if matrix is not None else [1, 0, 0, 2, 0, 1, 0, 2, 0, 0, 1, 12, 0, 0, 0, 1]
    return {"camera_to_world": c2w, "fov": fov, "aspect": 1.0}


def _path_doc(**over) -> dict:
    doc = {"render_width": 64, "render_height": 64, "fps": 10, "camera_path": [_camera(), _camera()]}
    doc.update(over)
    return doc


def test_hostile_camera_paths(tmp_path, lod4):
    src = _src(tmp_path)
    docs: dict[str, str | bytes] = {
        "render_width 1e300": json.dumps(_path_doc(render_width=1e300)),
        "render_width -1": json.dumps(_path_doc(render_width=-1)),
        "render_width 1.5e4 x 1.5e4 floats": json.dumps(_path_doc(render_width=1.5e4, render_height=1.5e4)),
        "render_width 10**400 (an integer)": '{"render_width": 1' + "0" * 400 + ', "render_height": 64, "fps": 10, '
                                             '"camera_path": [' + json.dumps(_camera()) + "]}",
        "render_width of 5000 digits": '{"render_width": ' + "9" * 5000 + ', "render_height": 64, "fps": 10, '
                                       '"camera_path": [' + json.dumps(_camera()) + "]}",
        "render_width true": json.dumps(_path_doc(render_width=True)),
        "render_width 1e400 (inf)": json.dumps(_path_doc()).replace('"render_width": 64', '"render_width": 1e400'),
        "NaN matrix": json.dumps(_path_doc(camera_path=[_camera(matrix=[math.nan] * 16)])),
        "singular (all-zero) matrix": json.dumps(_path_doc(camera_path=[_camera(matrix=[0.0] * 16)])),
        "matrix of 1e300": json.dumps(_path_doc(camera_path=[_camera(matrix=[1e300] * 16)])),
        "15-number matrix": json.dumps(_path_doc(camera_path=[_camera(matrix=[1.0] * 15)])),
        "fov 0 in the path": json.dumps(_path_doc(camera_path=[_camera(fov=0)])),
        "fov 180 in the path": json.dumps(_path_doc(camera_path=[_camera(fov=180)])),
        "fov 1e-300 in the path": json.dumps(_path_doc(camera_path=[_camera(fov=1e-300)])),
        "fps 0": json.dumps(_path_doc(fps=0)),
        "fps 1e300": json.dumps(_path_doc(fps=1e300)),
        "an empty camera_path list": json.dumps(_path_doc(camera_path=[])),
        "a top-level JSON list": "[]",
        "JSON nested 100,000 levels deep": "[" * 100_000 + "]" * 100_000,
        "JSON object nested 100,000 levels deep": '{"a":' * 100_000 + "1" + "}" * 100_000,
        "bytes that are not UTF-8": b'{"camera_path": [\xff\xfe]}',
    }
    paths: dict[str, Path] = {}
    for i, (name, text) in enumerate(docs.items()):
        path = src / f"cams-{i:02d}.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths[name] = path
    # 70 MB of valid JSON: 230,000 cameras (deleted after the test).
    huge = src / "cams-70mb.json"
    one = json.dumps(_camera())
    count = (70 << 20) // (len(one) + 1)
    huge.write_text('{"render_width": 64, "render_height": 64, "fps": 10, "camera_path": [' + ",".join([one] * count) + "]}")
    paths["70 MB JSON (230k cameras)"] = huge
    fifo = src / "cams-fifo.json"
    os.mkfifo(fifo)
    paths["a FIFO"] = fifo
    (src / "cams-folder.json").mkdir()
    paths["a folder"] = src / "cams-folder.json"
    (src / "cams-loop.json").symlink_to("cams-loop.json")
    paths["a symlink loop"] = src / "cams-loop.json"
    paths["a missing file"] = src / "cams-missing.json"
    paths["/dev/zero"] = Path("/dev/zero")

    cases = []
    out = tmp_path / "out"
    for i, (name, path) in enumerate(paths.items()):
        folder = out / f"cams-{i:02d}"
        # A frame too big for memory may be refused by the encoder's budget, naming the size.
        needle = (path.name, "15000x15000") if "1.5e4" in name else path.name
        cases.append(Case(f"camera path: {name}", ["render", lod4, "-o", folder / "out.mp4", "--camera-path", path],
                          out_dir=folder, needle=needle))  # fmt: skip
    try:
        _run(cases)
    finally:
        huge.unlink()


# 7. Values and file modes --------------------------------------------------------------------


def test_non_finite_and_extreme_values(tmp_path):
    src = _src(tmp_path)
    rows = ply_rows(64)
    nan = rows.copy()
    for f in nan.dtype.names:
        nan[f] = np.nan
    write_ply_rows(src / "all-nan.ply", nan)
    half = rows.copy()
    half["x"][::2] = np.nan
    write_ply_rows(src / "half-nan.ply", half)
    extreme = rows.copy()
    extreme["x"][:6] = 1e30
    extreme["y"][6:12] = -1e30
    for i in range(3):
        extreme[f"scale_{i}"][12:18] = 80.0  # exp(80) = 5.5e34: finite in float32
    extreme["opacity"][18:24] = 1e30
    extreme["f_dc_0"][24:30] = 1e30
    write_ply_rows(src / "extreme.ply", extreme)
    far = rows.copy()
    far["x"], far["y"], far["z"] = 1e30, -1e30, 1e30
    write_ply_rows(src / "all-far.ply", far)
    zero_scale = rows.copy()
    zero_scale["scale_0"][:8] = -1000.0  # exp underflows to a zero scale
    write_ply_rows(src / "zero-scales.ply", zero_scale)
    splat = np.zeros(16, np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))]))
    splat["position"] = np.random.default_rng(1).normal(0, 1, (16, 3))
    splat["scale"] = 0.05
    splat["scale"][:4] = -0.5
    splat["rgba"] = 200
    splat["rot"] = (255, 128, 128, 128)
    (src / "negative-scales.splat").write_bytes(splat.tobytes())

    cases = reading_commands("all splats NaN", src / "all-nan.ply", tmp_path, needle=("nan", "non-finite"))
    cases += reading_commands("half the splats NaN", src / "half-nan.ply", tmp_path, expect=0, image=True)
    cases += reading_commands("extreme but finite values", src / "extreme.ply", tmp_path, expect=0, image=True)
    cases += reading_commands("extreme values, video", src / "extreme.ply", tmp_path, expect=0, commands=("render",))
    cases += reading_commands("every splat at 1e30", src / "all-far.ply", tmp_path, expect=either(0, 2), image=True)
    out = tmp_path / "out"
    # Zero scales (an underflowed log scale) and negative ones (.splat's sign, which the renderer
    # squares away) are legitimate: SOG stores the floored |scale| and the result reads back.
    for source in ("zero-scales.ply", "negative-scales.splat"):
        folder = out / f"to-sog-{source}"
        cases.append(Case(f"convert {source} to .sog", ["convert", src / source, folder / "out.sog"],
                          expect=0, out_dir=folder, outputs=("out.sog",)))  # fmt: skip
    _run(cases)
    from holoscope.codecs.formats.sog import read_sog

    for source, count in (("zero-scales.ply", len(rows)), ("negative-scales.splat", 16)):
        back = read_sog(out / f"to-sog-{source}" / "out.sog")
        assert back.count == count and np.isfinite(back.scales).all() and (back.scales > 0).all()


def test_output_file_modes(tmp_path, lod4):
    out = tmp_path / "out"
    cases = []
    targets = [("render", "png"), ("render", "mp4"), ("convert", "ply"), ("convert", "spz"), ("convert", "splat"),
               ("convert", "sog")]  # fmt: skip
    for umask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        for cmd, ext in targets if umask == 0o022 else targets[::2]:
            folder = out / f"{cmd}-{ext}-{umask:03o}"
            name = f"out.{ext}"
            if cmd == "render":
                args = ["render", lod4, "-o", folder / name, "--size", "64x64"] + (["--orbit", "2"] if ext == "mp4" else [])
            else:
                args = ["convert", lod4, folder / name]

            def check(case, res, target=folder / name, want=expected):
                if res.rc != 0 or not target.exists():
                    return []
                got = mode(target)
                return [] if got == want else [f"mode {got:04o}, expected {want:04o} under the umask"]

            cases.append(Case(f"{cmd} .{ext} under umask {umask:03o}", args, expect=0, out_dir=folder,
                              outputs=(name,), umask=umask, check=check))  # fmt: skip
    _run(cases)


# 8. What already passes: damaged samples, path traversal in SOG, damaged video -----------------


def test_damaged_samples(tmp_path, splat_samples):
    src = _src(tmp_path)
    cases = []
    for name, path in splat_samples.items():
        data = path.read_bytes()
        for label, damaged, expect in damaged_copies(name, data):
            target = src / f"{label}-{name}"
            target.write_bytes(damaged)
            needle = target.name if expect == 2 else None
            commands = ALL if label == "cut-half" else ("info",)
            cases += reading_commands(f"{name} {label}", target, tmp_path, expect=expect, needle=needle, commands=commands)
    _run(cases)


def test_sog_path_traversal(tmp_path, splat_samples):
    src = _src(tmp_path)
    wave = splat_samples["wave_0001.sog"].read_bytes()

    def with_names(mapping: dict[str, str], rename_members: bool = False) -> bytes:
        def change(member: str, body: bytes) -> bytes | None:
            if member.endswith("meta.json"):
                text = body.decode()
                for old, new in mapping.items():
                    text = text.replace(f'"{old}"', json.dumps(new))
                return text.encode()
            return None

        data = rewrite_zip(wave, change)
        if rename_members:  # the members themselves carry the hostile names
            import io
            import zipfile

            srcz = zipfile.ZipFile(io.BytesIO(data))
            sink = io.BytesIO()
            with zipfile.ZipFile(sink, "w") as dst:
                for info in srcz.infolist():
                    body = srcz.read(info)
                    info.filename = mapping.get(info.filename, info.filename)
                    dst.writestr(info, body)
            data = sink.getvalue()
        return data

    inputs = {
        "meta names ../../../../etc/passwd": with_names({"means_l.webp": "../../../../etc/passwd"}),
        "meta names /etc/passwd": with_names({"means_l.webp": "/etc/passwd"}),
        "meta and member named ../means_l.webp": with_names({"means_l.webp": "../means_l.webp"}, rename_members=True),
        "meta names C:\\evil.webp": with_names({"means_l.webp": "C:\\evil.webp"}),
    }
    cases = []
    for i, (name, data) in enumerate(inputs.items()):
        path = src / f"traversal-{i}.sog"
        path.write_bytes(data)
        cases += reading_commands(f"sog zip: {name}", path, tmp_path, needle=path.name)
    # Unbundled: the file named outside the folder exists and is a valid image.
    outside = _unzip(wave, src / "unbundled-plain")
    shutil.copyfile(outside / "means_l.webp", src / "outside.webp")
    for i, bad in enumerate(("../outside.webp", "sub/../../outside.webp")):
        folder = _unzip(wave, src / f"unbundled-{i}")
        meta = json.loads((folder / "meta.json").read_text())
        meta["means"]["files"][0] = bad
        (folder / "meta.json").write_text(json.dumps(meta))
        (folder / "sub").mkdir()
        cases += reading_commands(f"sog folder: meta names {bad}", folder, tmp_path, needle=folder.name)
    _run(cases)


def test_damaged_video(tmp_path):
    src = _src(tmp_path)
    mp4 = write_video(src / "clip.mp4", 10, codec="libx264").read_bytes()
    mkv = write_video(src / "clip.mkv", 10, codec="ffv1").read_bytes()
    boxes = mp4_boxes(mp4)
    assert b"moov" in boxes and b"mdat" in boxes, boxes
    inputs: list[tuple[str, bytes, str, object]] = []
    inputs.append(("mp4 truncated at half", mp4[: len(mp4) // 2], "cut.mp4", 2))
    start, size = boxes[b"moov"]
    corrupt = bytearray(mp4)
    corrupt[start + 8 : start + size] = b"\xff" * (size - 8)
    inputs.append(("mp4 with a corrupted moov", bytes(corrupt), "bad-moov.mp4", 2))
    inputs.append(("mp4 holding only its ftyp box", mp4[: boxes[b"ftyp"][1]], "ftyp-only.mp4", 2))
    start, size = boxes[b"mdat"]
    zeroed = bytearray(mp4)
    zeroed[start + 8 : start + size] = bytes(size - 8)
    inputs.append(("mp4 with zeroed media data", bytes(zeroed), "zero-mdat.mp4", either(0, 2)))
    inputs.append(("mkv truncated at half", mkv[: len(mkv) // 2], "cut.mkv", either(0, 2)))
    cases = []
    for name, data, filename, info_expect in inputs:
        path = src / filename
        path.write_bytes(data)
        needle = filename if info_expect == 2 else None
        cases += reading_commands(name, path, tmp_path, expect=info_expect, needle=needle, commands=("info",), max_seconds=10)
        cases += reading_commands(name, path, tmp_path, needle=filename, commands=("render", "convert"), max_seconds=10)
    _run(cases)


# 9. Splat sequences inherit every reader's checks ----------------------------------------------


def sequence_commands(name: str, source: Arg, work: Path, *, expect: int | frozenset[int] = EXIT_ERROR,
                      needle: str | tuple[str, ...] | None = None, max_seconds: float | None = None) -> list[Case]:  # fmt: skip
    """``info``, ``render`` (a 64x64 video) and ``convert`` to numbered PLYs of one sequence."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in name)[:80]
    cases = []
    for cmd in ("info", "render", "convert"):
        out = work / "out" / f"{slug}.{cmd}"
        if cmd == "info":
            args, outputs = ["info", source], ()
        elif cmd == "render":
            args, outputs = ["render", source, "-o", out / "out.mp4", "--size", "64x64"], ("out.mp4",)
        else:
            args, outputs = ["convert", source, out / "%04d.ply"], ()
        cases.append(Case(f"{name} [{cmd}]", args, expect=expect, out_dir=out, outputs=outputs, needle=needle,
                          max_seconds=max_seconds, may_leave=("0001.ply", "0002.ply", "0003.ply", "0004.ply")))  # fmt: skip
    return cases


def test_hostile_sequences(tmp_path):
    src = tmp_path / "src"
    good = src / "with-fifo"
    good.mkdir(parents=True)
    for i in (1, 3, 4):
        write_ply_rows(good / f"f{i}.ply", ply_rows(20, seed=i))
    os.mkfifo(good / "f2.ply")  # a frame that is a FIFO: refused, never waited on; the rest plays
    bombs = src / "bombs"
    bombs.mkdir()
    for i in range(3):  # every frame a 168-byte list bomb: nothing can play
        (bombs / f"f{i}.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 250000000\n"
                                          b"property list uchar int idx\nproperty float x\nend_header\n")
    empties = src / "empties"
    empties.mkdir()
    for i in range(3000):
        (empties / f"f{i}.ply").write_bytes(b"")
    huge_list = sparse_file(src / "huge.txt", 70 << 20, b"f1.ply\n")
    missing = src / "missing.lst"
    missing.write_text("".join(f"gone/frame_{i}.ply\n" for i in range(200_000)))
    spz_bombs = src / "spz-bombs"
    spz_bombs.mkdir()
    for i in range(2):
        spz_v4_bomb(spz_bombs / f"f{i}.spz", 20_000_000, 3)
    cases = sequence_commands("sequence with a FIFO frame", good, tmp_path, expect=0, max_seconds=15)
    cases += sequence_commands("sequence of list bombs", bombs, tmp_path, needle="no frame", max_seconds=10)
    cases += sequence_commands("3000 empty frames", empties, tmp_path, needle="no frame", max_seconds=15)
    cases += sequence_commands("70 MB frame list", huge_list, tmp_path, needle="larger than", max_seconds=5)
    cases += sequence_commands("200k missing listed frames", missing, tmp_path, needle="none of", max_seconds=15)
    cases += sequence_commands("glob matching nothing", str(src / "nothing-*.ply"), tmp_path, needle="matches no")
    cases += sequence_commands("sequence of SPZ bombs", spz_bombs, tmp_path, needle="no frame", max_seconds=10)
    _run(cases)


# 10. Neural video: .nerv streams and NeRV checkpoints ------------------------------------------


def nerv_commands(name: str, source: Arg, work: Path, info: int | frozenset[int], render: int | frozenset[int],
                  needle: str | None) -> list[Case]:  # fmt: skip
    """``info`` and ``render`` (every frame to a 32x32 MP4) of one .nerv; ``convert`` to PLY is
    always refused (a neural video is not a splat scene)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in name)[:80]
    out = work / "out" / slug
    return [
        Case(f"{name} [info]", ["info", source], expect=info, out_dir=out / "info", needle=needle if info == 2 else None,
             max_seconds=15),
        Case(f"{name} [render]", ["render", source, "-o", out / "render" / "out.mp4", "--size", "32x32"],
             expect=render, out_dir=out / "render", outputs=("out.mp4",), needle=needle if render == 2 else None,
             max_seconds=15),
        Case(f"{name} [convert]", ["convert", source, out / "convert" / "out.ply"], out_dir=out / "convert",
             outputs=("out.ply",), max_seconds=15),
    ]  # fmt: skip


def test_damaged_nerv_streams(tmp_path):
    pytest.importorskip("torch")
    from holoscope.codecs.nerv import stream
    from tests.nerv_data import repack, write_tiny_nerv

    src = _src(tmp_path)
    good = write_tiny_nerv(src / "good.nerv", frames=12, fps=10)
    data = good.read_bytes()
    header = stream.parse_header(data[: stream.needed_bytes(data)], good)

    def flipped(offset: int) -> bytes:
        out = bytearray(data)
        out[offset] ^= 0x5A
        return bytes(out)

    from holoscope.codecs.nerv.config import NervConfig

    pe = NervConfig(family="nerv", height=18, width=32, frame_count=6, fps=10.0, fc_dim=8, fc_h=9, fc_w=16,
                    strides=(2,), kernels=(3,), channels=(6,), head_kernel=1, pe_base=1.25, pe_levels=4,
                    stem_dims=(16,))  # fmt: skip
    rng = np.random.default_rng(0)
    pe_weights = {}
    for name, shape in (("stem.0.weight", (16, 8)), ("stem.0.bias", (16,)), ("stem.2.weight", (8 * 144, 16)),
                        ("stem.2.bias", (8 * 144,)), ("layers.0.conv.conv.weight", (24, 8, 3, 3)),
                        ("layers.0.conv.conv.bias", (24,)), ("head_layers.0.weight", (3, 6, 1, 1)),
                        ("head_layers.0.bias", (3,))):  # fmt: skip
        pe_weights[name] = stream.quantise(rng.normal(size=shape), 8)
    pe_path = src / "pe.nerv"
    stream.write_nerv(pe_path, pe.to_dict(), pe_weights, None, fps=10, frames=6)
    pe_data = pe_path.read_bytes()
    weights, chunk = header.weights, header.chunks[1]
    inputs = [  # label, bytes, file name, info's and render's exit codes
        ("intact nerv", data, "intact.nerv", 0, 0),
        ("nerv cut at half", data[: len(data) // 2], "cut.nerv", 2, 2),
        ("nerv missing its last byte", data[:-1], "short.nerv", 2, 2),
        ("nerv with a bad header checksum", flipped(18), "crc.nerv", 2, 2),
        ("nerv with damaged weights", flipped(weights.offset + weights.length // 2), "weights.nerv", either(0, 2), 2),
        # A damaged embedding chunk: its frames are skipped with a warning, the rest plays.
        ("nerv with a damaged embedding chunk", flipped(chunk.offset + chunk.length // 2), "chunk.nerv", 0, 0),
        ("empty nerv", b"", "empty.nerv", 2, 2),
        ("intact NeRV (frame-time) stream", pe_data, "pe-intact.nerv", 0, 0),
        ("NeRV stream cut at half", pe_data[: len(pe_data) // 2], "pe-cut.nerv", 2, 2),
        ("nerv magic only", data[:4], "magic.nerv", 2, 2),
    ]
    forged = {
        "nerv claiming a billion frames": lambda h: h.update(frames=10**9),
        "nerv with a 2^48-value tensor": lambda h: h["weights"]["tensors"][0].update(shape=[1 << 24, 1 << 24]),
        "nerv whose config does not fit its tensors": lambda h: h["config"].update(fc_dim=h["config"]["fc_dim"] + 3),
        "nerv with an unknown family": lambda h: h["config"].update(family="hinerv"),
        "nerv of a 2^20-wide picture": lambda h: h["config"].update(width=1 << 20),
    }
    for label, edit in forged.items():
        path = src / ("".join(ch if ch.isalnum() else "-" for ch in label) + ".nerv")
        path.write_bytes(data)
        repack(path, edit)
        inputs.append((label, path.read_bytes(), path.name, either(0, 2), 2))
    cases = []
    for label, body, name, info, render in inputs:
        path = src / name
        path.write_bytes(body)
        cases += nerv_commands(label, path, tmp_path, info, render, needle=name)
    _run(cases)


def test_hostile_nerv_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    import pickle

    src = _src(tmp_path)

    class Payload:  # what a malicious pickle does: call os.system when loaded
        def __reduce__(self):
            return os.system, ("touch pwned",)

    state = {"stem.0.weight": torch.zeros(68, 16, 1, 1), "stem.0.bias": torch.zeros(68)}
    torch.save({"epoch": 1, "state_dict": state}, src / "good-ish.pth")
    whole = (src / "good-ish.pth").read_bytes()
    (src / "cut.pth").write_bytes(whole[: len(whole) // 2])
    torch.save({"model": Payload()}, src / "evil-zip.pth")
    (src / "evil-pickle.pth").write_bytes(pickle.dumps({"model": Payload()}, protocol=2))
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 3, 7, 7)}}, src / "resnet.pth")
    torch.save([1, 2, 3], src / "list.pth")
    (src / "text.pth").write_text("not a checkpoint\n")
    (src / "empty.pth").write_bytes(b"")
    video = write_video(src / "clip.mkv", 4, (48, 32))

    def nothing_ran(case: Case, res) -> list[str]:
        return ["the pickle's payload ran"] if (case.out_dir / "pwned").exists() else []

    cases = []
    for name in ("cut.pth", "evil-zip.pth", "evil-pickle.pth", "resnet.pth", "list.pth", "text.pth", "empty.pth",
                 "good-ish.pth"):  # fmt: skip
        for extra in ((), ("--video", video)):
            label = f"checkpoint {name}" + (" with a video" if extra else "")
            out = tmp_path / "out" / "".join(ch if ch.isalnum() else "-" for ch in label)
            cases.append(Case(label, ["convert", src / name, out / "out.nerv", *extra], out_dir=out,
                              outputs=("out.nerv",), needle=name, check=nothing_ran, max_seconds=15))  # fmt: skip
    _run(cases)


# 11. Hash-grid scenes: Instant-NGP snapshots and .hgz ------------------------------------------


def scene_commands(name: str, source: Path, work: Path, expect: int | frozenset[int], needle: str | None,
                   extra: tuple = ()) -> list[Case]:  # fmt: skip
    """``info``, ``render`` (a 24x16 PNG) and ``convert`` to .hgz of one snapshot."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in name)[:80]
    out = work / "out" / slug
    need = needle if expect == EXIT_ERROR else None
    return [
        Case(f"{name} [info]", ["info", source, *extra], expect=expect, out_dir=out / "info", needle=need,
             max_seconds=15),
        Case(f"{name} [render]", ["render", source, "-o", out / "render" / "out.png", "--size", "24x16", *extra],
             expect=expect, out_dir=out / "render", outputs=("out.png",), needle=need, max_seconds=20),
        Case(f"{name} [convert]", ["convert", source, out / "convert" / "out.hgz", *extra], expect=expect,
             out_dir=out / "convert", outputs=("out.hgz",), needle=need, max_seconds=15),
    ]  # fmt: skip


def test_hostile_hash_grid_scenes(tmp_path):
    pytest.importorskip("torch")
    import gzip as gz
    import zlib

    from holoscope.codecs.hashgrid.hgz import write_hgz
    from holoscope.codecs.hashgrid.msgpack import packb
    from holoscope.codecs.hashgrid.writer import write_snapshot
    from tests.hashgrid_data import analytic_nerf, image_snapshot

    src = _src(tmp_path)
    scene = analytic_nerf()
    doc = scene.snapshot.document
    write_snapshot(src / "good.ingp", doc)
    data = (src / "good.ingp").read_bytes()
    raw = packb(doc)
    write_hgz(scene.snapshot, src / "good.hgz")
    hgz = (src / "good.hgz").read_bytes()
    image = image_snapshot(40, 24)
    write_snapshot(src / "image.msgpack", image.document)

    def edited(edit) -> bytes:
        copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
        copy["snapshot"] = dict(doc["snapshot"])
        copy["encoding"] = dict(doc["encoding"])
        edit(copy)
        return gz.compress(packb(copy), mtime=0)

    def flipped(body: bytes, offset: int) -> bytes:
        out = bytearray(body)
        out[offset] ^= 0x5A
        return bytes(out)

    bomb = zlib.compressobj(1, zlib.DEFLATED, 31)
    bomb_body = bomb.compress(b"\x00" * (64 << 20)) * 1  # 64 MB of zeros per piece, repeated below
    bomb_file = src / "bomb.ingp"
    with open(bomb_file, "wb") as fh:  # about 3 GB inflated, a few MB on disk
        fh.write(bomb_body)
        for _ in range(47):
            fh.write(bomb.compress(b"\x00" * (64 << 20)))
        fh.write(bomb.flush())
    inputs = [  # label, bytes (or None: the file exists already), file name, expected, needle
        ("intact nerf snapshot", data, "intact.ingp", 0, None),
        ("intact raw msgpack snapshot", raw, "intact.msgpack", 0, None),
        ("intact hgz", hgz, "intact.hgz", 0, None),
        ("snapshot cut at half", data[: len(data) // 2], "cut.ingp", EXIT_ERROR, "cut.ingp"),
        ("snapshot missing its last byte", data[:-1], "short.ingp", EXIT_ERROR, "short.ingp"),
        ("raw msgpack cut at half", raw[: len(raw) // 2], "cut.msgpack", EXIT_ERROR, "cut.msgpack"),
        ("gzip bomb", None, "bomb.ingp", EXIT_ERROR, "bomb.ingp"),
        ("deeply nested msgpack", b"\x81\xa8snapshot" + b"\x91" * 200_000, "deep.msgpack", EXIT_ERROR, "deep.msgpack"),
        ("msgpack declaring a 4 GB map", b"\xdf\xff\xff\xff\xff", "huge.msgpack", EXIT_ERROR, "huge.msgpack"),
        ("volume-mode snapshot", edited(lambda d: d["snapshot"].update(mode="volume")), "volume.ingp", EXIT_ERROR,
         "volume"),
        ("version-0 snapshot", edited(lambda d: d["snapshot"].update(version=0)), "v0.ingp", EXIT_ERROR, "version"),
        ("params_binary shorter than n_params", edited(lambda d: d["snapshot"].update(
            params_binary=d["snapshot"]["params_binary"][:-2])), "params.ingp", EXIT_ERROR, "params_binary"),
        ("config describing other parameters", edited(lambda d: d["encoding"].update(n_levels=9)), "config.ingp",
         EXIT_ERROR, "parameters"),
        ("absurd table size", edited(lambda d: d["encoding"].update(log2_hashmap_size=40)), "table.ingp",
         EXIT_ERROR, "log2_hashmap_size"),
        ("billions of parameters claimed", edited(lambda d: d["encoding"].update(log2_hashmap_size=32, n_levels=128)),
         "billions.ingp", EXIT_ERROR, "parameters"),
        ("unknown params_type", edited(lambda d: d["snapshot"].update(params_type="bfloat16")), "type.ingp",
         EXIT_ERROR, "params_type"),
        ("density grid of the wrong size", edited(lambda d: d["snapshot"].update(
            density_grid_binary=d["snapshot"]["density_grid_binary"][:1000])), "grid.ingp", EXIT_ERROR, "grid"),
        ("hgz cut at half", hgz[: len(hgz) // 2], "cut.hgz", EXIT_ERROR, "cut.hgz"),
        ("hgz with a bad header checksum", flipped(hgz, 18), "crc.hgz", EXIT_ERROR, "crc.hgz"),
        ("hgz with damaged tables", flipped(hgz, len(hgz) - 200), "tables.hgz", EXIT_ERROR, "tables.hgz"),
        ("hgz magic only", hgz[:4], "magic.hgz", EXIT_ERROR, "magic.hgz"),
        ("empty snapshot", b"", "empty.ingp", EXIT_ERROR, "empty.ingp"),
    ]  # fmt: skip
    cases = []
    for label, body, name, expect, needle in inputs:
        if body is not None:
            (src / name).write_bytes(body)
        cases += scene_commands(label, src / name, tmp_path, expect, needle)
    cases += scene_commands("image snapshot without its size", src / "image.msgpack", tmp_path, EXIT_ERROR,
                            "--image-size")  # fmt: skip
    cases += scene_commands("image snapshot with its size", src / "image.msgpack", tmp_path, 0, None,
                            ("--image-size", "40x24"))  # fmt: skip
    cases.append(Case("image size 0x5", ["info", src / "image.msgpack", "--image-size", "0x5"],
                      out_dir=tmp_path / "out" / "size0", needle="--image-size"))  # fmt: skip
    _run(cases)


# Streamed-LOD scenes (lod-meta.json and the chunk folders it names) ------------------------------


def test_hostile_streamed_lod_scenes(tmp_path):
    from holoscope.codecs.formats.lod_write import write_lod
    from tests.codecs.test_lod import spread_cloud

    src = _src(tmp_path)
    good = src / "good"
    write_lod(spread_cloud(3000, degree=0), good / "lod-meta.json", chunk_count=1000, chunk_min=100)
    meta = json.loads((good / "lod-meta.json").read_text())
    first = meta["filenames"][0]

    def variant(name: str, edit=None, text: str | None = None, remove: str | None = None) -> Path:
        folder = src / name
        shutil.copytree(good, folder)
        body = json.loads(json.dumps(meta))
        if edit is not None:
            edit(body)
        (folder / "lod-meta.json").write_text(text if text is not None else json.dumps(body))
        if remove is not None:
            shutil.rmtree(folder / remove.split("/")[0])
        return folder / "lod-meta.json"

    def first_lod(body: dict) -> dict:
        node = body["tree"]
        while "children" in node:
            node = node["children"][0]
        return next(iter(node["lods"].values()))

    inputs = [  # label, the lod-meta.json, expected, needle
        ("intact scene", good / "lod-meta.json", 0, None),
        ("not JSON", variant("notjson", text="{\"lodLevels\": 2, \"tree\": "), EXIT_ERROR, "lod-meta.json"),
        ("counts that disagree with the tree", variant("counts", lambda b: b.update(counts=[c + 1 for c in b["counts"]])),
         EXIT_ERROR, "count"),
        ("a chunk read past its file's splats", variant("offset", lambda b: first_lod(b).update(offset=10**9)),
         EXIT_ERROR, "splat"),
        ("a billion splats claimed", variant("billion", lambda b: (first_lod(b).update(count=10**9),
                                                                   b.update(count=10**9))),
         EXIT_ERROR, ("count", "splat")),
        ("a chunk folder missing", variant("missing", remove=first), EXIT_ERROR, "missing"),
        ("a file name climbing out with ..", variant("dotdot", lambda b: b["filenames"].__setitem__(0, "../x/meta.json")),
         EXIT_ERROR, ".."),
        ("an absolute file name", variant("absolute", lambda b: b["filenames"].__setitem__(0, "/etc/meta.json")),
         EXIT_ERROR, "outside the scene"),
        ("zero levels", variant("levels", lambda b: b.update(lodLevels=0)), EXIT_ERROR, "lodLevels"),
        ("a tree nested without end", variant("deep", text=json.dumps({**meta, "tree": "T"}).replace(
            '"T"', '{"children": [' * 5000 + "{}" + "]}" * 5000)), EXIT_ERROR, ("tree", "deep", "nest")),
    ]  # fmt: skip
    cases = []
    for label, path, expect, needle in inputs:
        slug = "".join(ch if ch.isalnum() else "-" for ch in label)[:60]
        out = tmp_path / "out" / slug
        need = needle if expect == EXIT_ERROR else None
        cases += [
            Case(f"{label} [info]", ["info", path], expect=expect, out_dir=out / "info", needle=need, max_seconds=15),
            Case(f"{label} [render]", ["render", path, "-o", out / "render" / "out.png", "--size", "24x16"],
                 expect=expect, out_dir=out / "render", outputs=("out.png",), needle=need, max_seconds=30),
            Case(f"{label} [convert]", ["convert", path, out / "convert" / "out.ply"], expect=expect,
                 out_dir=out / "convert", outputs=("out.ply",), needle=need, max_seconds=15),
        ]  # fmt: skip
    _run(cases)
