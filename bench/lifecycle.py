"""Benchmark the lifecycle on a fresh local AWS and print a table of figures (not a test).

    python bench/lifecycle.py [--rounds N]

For each command: wall time, AWS requests sent (all, mutating, reads) and, for `up`, the time
the executor spent; then the CLI's start-up time beside `python -c "import click"` and the peak
memory of this process. Runs in a private AWSLAB_HOME with its own local AWS server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MUTATING = ("Create", "Delete", "Modify", "Authorize", "Revoke", "Attach", "Detach", "Associate", "Disassociate",
            "Run", "Terminate", "Add", "Remove", "Put", "Replace", "Reboot", "Restore", "Tag", "Untag", "Copy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-"))
    os.environ.update(AWSLAB_HOME=str(home), AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))

    from botocore.client import BaseClient

    from awslab.cli import main as cli
    from awslab.local import manager

    calls: list[str] = []
    original = BaseClient._make_api_call

    def counting(self, op, params):
        calls.append(op)
        return original(self, op, params)

    BaseClient._make_api_call = counting
    t = time.perf_counter()
    manager.start()
    server_start = time.perf_counter() - t

    def run(*argv: str) -> tuple[float, list[str]]:
        calls.clear()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                cli(list(argv))
            except SystemExit as exc:
                if exc.code:
                    raise RuntimeError(f"awslab {' '.join(argv)} exited {exc.code}") from None
        return time.perf_counter() - t0, list(calls)

    rows: dict[str, list[tuple[float, list[str]]]] = {}
    try:
        for i in range(args.rounds):
            name = f"bench{i}"
            for label, argv in (("up", ("up", "week6", "--name", name)), ("up again", ("up", "week6", "--name", name)),
                                ("status", ("status", "--name", name)),
                                ("down", ("down", "--name", name, "--yes"))):
                rows.setdefault(label, []).append(run(*argv))
    finally:
        manager.stop()

    print(f"local AWS server start: {server_start:.2f}s  (rounds: {args.rounds}, Python {sys.version.split()[0]})")
    print(f"{'command':<10} {'wall s (median)':>16} {'requests':>9} {'mutating':>9} {'reads':>7}")
    for label, results in rows.items():
        wall = statistics.median(r[0] for r in results)
        ops = results[-1][1]
        mut = sum(op.startswith(MUTATING) for op in ops)
        print(f"{label:<10} {wall:>16.3f} {len(ops):>9} {mut:>9} {len(ops) - mut:>7}")

    def best_of(cmd: list[str], n: int = 5) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    cli_help = best_of([sys.executable, "-m", "awslab", "--help"])
    click_only = best_of([sys.executable, "-c", "import click"])
    print(f"start-up: `awslab --help` {cli_help * 1000:.0f} ms, `python -c 'import click'` {click_only * 1000:.0f} ms")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
