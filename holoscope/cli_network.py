"""The CLI's network side: the options every command that reads input takes (``--no-cache``,
``--allow-cross-origin``), and ``holoscope cache info|clear`` for the on-disk part cache."""

from __future__ import annotations

import argparse
import json
from typing import Any

NO_CACHE_HELP = "do not read or write the on-disk cache of downloaded parts (also $HOLOSCOPE_NO_CACHE=1)"
CROSS_ORIGIN_HELP = ("let a manifest or scene fetched over HTTP name files on another host or scheme "
                     "(refused by default)")  # fmt: skip


def add_network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    parser.add_argument("--allow-cross-origin", action="store_true", help=CROSS_ORIGIN_HELP)


def apply_network_options(args: argparse.Namespace) -> None:
    """Set up the program's HTTP session from the options (only when one was given: the
    network layer is not imported for local work)."""
    changes: dict[str, Any] = {}
    if getattr(args, "no_cache", False):
        changes["use_cache"] = False
    if getattr(args, "allow_cross_origin", False):
        changes["allow_cross_origin"] = True
    if changes:
        from holoscope.core.http import configure

        configure(**changes)


def network_report() -> dict[str, Any]:
    """What the program's HTTP session did so far: for ``info`` of a URL."""
    from holoscope.core.http import default_session

    stats = default_session().stats()
    return {"downloaded_bytes": stats["bytes_downloaded"], "http_requests": stats["requests"],
            "http_retries": stats["retries"], "cache_hit_bytes": stats["cache_hit_bytes"]}  # fmt: skip


def add_cache_command(sub: Any) -> None:
    c = sub.add_parser("cache", help="show or clear the on-disk cache of parts downloaded from URLs")
    c.add_argument("action", choices=("info", "clear"), help="info: where it is and how large; clear: empty it")
    c.add_argument("--json", action="store_true", help="print info as JSON")
    c.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from holoscope.core.http_cache import PartCache

    cache = PartCache()
    if args.action == "clear":
        freed = cache.clear()
        print(f"cleared {cache.root}: {freed:,} bytes freed")
        return 0
    report = {"folder": str(cache.root), "bytes": cache.size(), "limit_bytes": cache.limit}
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key.replace('_', ' '):<12} {value:,}" if isinstance(value, int) else f"{key:<12} {value}")
    return 0
