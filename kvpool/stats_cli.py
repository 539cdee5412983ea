"""``kvfleet stats``: print a KV pool's access statistics and write a sessions x layers heatmap.

    kvfleet stats snapshot.json            # a JSON dump of KVPool.stats_snapshot()
    kvfleet stats http://host:8000/admin/stats   # GET returning the same JSON
    kvfleet stats --demo --dump demo.json  # a synthetic workload on a real KVPool
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kvpool.stats import SNAPSHOT_VERSION
from kvpool.stats_report import METRICS, format_table, write_heatmap


class StatsSourceError(Exception):
    """The snapshot could not be read; the message says what to check."""


def load_snapshot(source: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Read a stats snapshot from a file path or an http(s) URL. Raises StatsSourceError."""
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=timeout_s) as response:
                data = json.loads(response.read())
        else:
            data = json.loads(Path(source).read_text())
    except (urllib.error.URLError, TimeoutError) as error:
        raise StatsSourceError(f"cannot fetch {source}: {error}; is the admin API running and the URL right?"
                               ) from error
    except OSError as error:
        raise StatsSourceError(f"cannot read {source}: {error}") from error
    except json.JSONDecodeError as error:
        raise StatsSourceError(f"{source} is not JSON ({error}); expected a KVPool.stats_snapshot() dump") from error
    if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION or "sessions" not in data:
        raise StatsSourceError(f"{source} is not a version-{SNAPSHOT_VERSION} KV pool stats snapshot "
                               "(expected keys 'version' and 'sessions')")
    return data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvfleet stats", description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", help="snapshot JSON file or http(s) URL")
    parser.add_argument("--demo", action="store_true", help="run a synthetic workload on a real KVPool instead")
    parser.add_argument("--metric", choices=METRICS, default="bytes", help="heatmap cell value (default: bytes)")
    parser.add_argument("--out", type=Path, default=Path("kvpool_heatmap.png"), help="heatmap PNG path")
    parser.add_argument("--dump", type=Path, help="also write the snapshot JSON here")
    parser.add_argument("--top", type=int, default=20, help="sessions shown (largest first)")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="URL fetch timeout in seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input or unreachable source)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo == bool(args.source):
        parser.print_usage(sys.stderr)
        print("kvfleet stats: give either a SOURCE (file or URL) or --demo", file=sys.stderr)
        return 2
    if args.demo:
        from kvpool.stats_demo import run_demo
        snapshot = run_demo()
    else:
        try:
            snapshot = load_snapshot(args.source, args.timeout_s)
        except StatsSourceError as error:
            print(f"kvfleet stats: {error}", file=sys.stderr)
            return 2
    print(format_table(snapshot, args.top))
    if args.dump:
        args.dump.write_text(json.dumps(snapshot, indent=1))
        print(f"snapshot written to {args.dump}")
    print(f"heatmap ({args.metric}) written to {write_heatmap(snapshot, args.out, args.metric, max(args.top, 1))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
