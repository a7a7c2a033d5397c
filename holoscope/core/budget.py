"""The decode budget: how many bytes one decode may allocate before it starts.

Every reader and decoder works out (or bounds) what a file will decode to *before* allocating
it: element counts times row sizes, image dimensions from their headers, inflated stream sizes.
It then calls :func:`require`, which refuses with one clear :class:`BudgetExceeded` line naming
the file, the bytes it would need and the budget. A 945-byte file that decodes to gigabytes is
refused in microseconds instead of exhausting memory.

The budget is, in order of precedence: :func:`set_limit` (the CLI's ``--max-memory``), the
``HOLOSCOPE_MAX_MEMORY`` environment variable, or a default derived from what this process can
really get: available RAM, the cgroup's memory limit and the address-space limit
(``ulimit -v``), whichever is smallest, less headroom for everything else the process holds.
"""

from __future__ import annotations

import os
import re
import resource
import threading
from dataclasses import dataclass
from pathlib import Path

from holoscope.core.errors import BudgetExceeded, InvalidArgument

ENV_VAR = "HOLOSCOPE_MAX_MEMORY"
# The share of the free memory or address space one decode may take: the rest is for the
# renderer, the encoder, the GUI and the copies a caller makes of the result.
DEFAULT_SHARE = 0.6
# Address space that libraries map without touching (thread stacks, GL drivers, codecs).
ADDRESS_SPACE_HEADROOM = 384 << 20
MIN_BUDGET = 64 << 20

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Budget:
    limit: int  # bytes
    source: str  # where the figure came from, for the error message


_lock = threading.Lock()
_override: Budget | None = None


def parse_bytes(text: str, minimum: int = MIN_BUDGET) -> int:
    """'2G', '512M', '1.5GiB', '800MB', '1048576' -> bytes (binary units: 1G = 2**30), at least
    ``minimum`` (a decode budget's floor by default; 0 for sizes such as the cache's)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"memory size must look like 2G, 512M or 1500000000, got {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not minimum <= value <= 1 << 50:
        raise InvalidArgument(f"memory size {text!r} is out of range ({format_bytes(minimum)} .. 1 PiB)")
    return int(value)


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_used() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_budget() -> Budget:
    """What this process can really allocate now, times :data:`DEFAULT_SHARE`."""
    candidates: list[tuple[int, str]] = []
    available = _meminfo_available()
    if available is not None:
        candidates.append((available, "available memory"))
    cg_max, cg_now = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_now is not None:
        candidates.append((max(cg_max - cg_now, 0), "the cgroup memory limit"))
    for limit_kind, label in ((resource.RLIMIT_AS, "the address-space limit (ulimit -v)"),
                              (resource.RLIMIT_DATA, "the data-segment limit (ulimit -d)")):  # fmt: skip
        soft, _ = resource.getrlimit(limit_kind)
        if soft != resource.RLIM_INFINITY:
            used = _address_space_used() or 0
            candidates.append((max(soft - used - ADDRESS_SPACE_HEADROOM, 0), label))
    if not candidates:
        return Budget(4 << 30, "the built-in default")
    free, source = min(candidates)
    return Budget(max(int(free * DEFAULT_SHARE), MIN_BUDGET), source)


def current() -> Budget:
    """The budget in force: :func:`set_limit`, else ``$HOLOSCOPE_MAX_MEMORY``, else the default."""
    with _lock:
        if _override is not None:
            return _override
    env = os.environ.get(ENV_VAR)
    if env:
        return Budget(parse_bytes(env), ENV_VAR)
    return default_budget()


def set_limit(nbytes: int | None, source: str = "--max-memory") -> None:
    """Fix the budget for this process (``None`` goes back to the environment / default)."""
    global _override
    with _lock:
        _override = None if nbytes is None else Budget(int(nbytes), source)


def require(nbytes: float, *, what: str, path: str | Path | None = None) -> None:
    """Refuse a decode that would need more than the budget, before anything is allocated.

    ``what`` says what would be decoded ("4,000,000 splats with SH degree 3"); the message
    names the file, the estimate, the budget and how to change it.
    """
    budget = current()
    if nbytes > budget.limit:
        raise BudgetExceeded(
            f"decoding {what} needs about {format_bytes(nbytes)}, over the {format_bytes(budget.limit)} "
            f"memory budget (from {budget.source}; change it with --max-memory or {ENV_VAR})",
            path=path,
        )


# Bytes per decoded element, shared by the readers' estimates --------------------------------


def splat_cloud_bytes(count: int, sh_degree: int = 3) -> int:
    """Bytes of an activated SplatCloud: means, scales (3 float32), quats (4), opacity, SH."""
    coeffs = (sh_degree + 1) ** 2
    return int(count) * (4 * (3 + 3 + 4 + 1) + 4 * 3 * coeffs)


def require_splats(count: int, sh_degree: int, *, path: str | Path | None, peak_factor: float = 3.0,
                   extra: int = 0) -> None:  # fmt: skip
    """Budget check for a reader about to decode ``count`` splats.

    ``peak_factor`` covers the reader's temporaries (raw records, float64 work arrays, the
    finiteness pass) on top of the finished cloud; ``extra`` adds bytes held alongside (the
    compressed input, an inflated stream).
    """
    need = splat_cloud_bytes(count, sh_degree) * peak_factor + extra
    require(need, what=f"{count:,} splats with SH degree {sh_degree}", path=path)
