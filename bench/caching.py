"""Benchmark `awslab demo caching`'s load and print figures (run by hand, not a test).

    python bench/caching.py [--clients 8] [--seconds 3]

A fresh local AWS (instant profile, engines on) in a temporary AWSLAB_HOME; `awslab up week6`;
then, through the stack's host and over TLS with AUTH, as the demo connects:

- one client's GET round trip (p50, and the operations per second one client makes);
- N clients at once (each its own connection): cache operations per second, the target being at
  least 5,000 so that the demo's figures are the cache's, not the load generator's;
- the whole `awslab demo caching` run (target: at most 60 s) and `--eviction`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OPS_TARGET = 5000
DEMO_TARGET_S = 60.0


def awslab(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "awslab", *args], env={**os.environ, "AWSLAB_HOME": str(home)},
                          capture_output=True, text=True, timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-cache-"))
    os.environ["AWSLAB_HOME"] = str(home)
    try:
        up = awslab(home, "up", "week6")
        if up.returncode != 0:
            print(up.stderr, file=sys.stderr)
            return 1
        from awslab.commands._common import new_run
        from awslab.commands.redis_demo import cache_session
        from awslab.engine.context import resolve
        from awslab.local.manager import THIS_HOME

        ctx = resolve("local", None, None, None, stack="week6", local=THIS_HOME)
        connect = cache_session(new_run(ctx, "week6"))
        one = connect()
        one.set("bench:k", "v" * 200)
        lat = []
        for _ in range(2000):
            t0 = time.perf_counter()
            one.get("bench:k")
            lat.append((time.perf_counter() - t0) * 1000)
        one.close()
        p50 = statistics.median(lat)

        counts = [0] * args.clients
        stop = time.monotonic() + args.seconds
        clients = [connect() for _ in range(args.clients)]

        def load(i: int) -> None:
            c = clients[i]
            while time.monotonic() < stop:
                c.get("bench:k")
                counts[i] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ops = sum(counts) / (time.monotonic() - t0)
        for c in clients:
            c.close()

        t0 = time.monotonic()
        demo = awslab(home, "demo", "caching", "--output", "json")
        demo_s = time.monotonic() - t0
        t0 = time.monotonic()
        evict = awslab(home, "demo", "caching", "--eviction", "--output", "json")
        evict_s = time.monotonic() - t0
        lazy = next((s for s in json.loads(demo.stdout)["strategies"] if s["strategy"] == "lazy-ttl"), {}) \
            if demo.returncode == 0 else {}

        def mark(ok: bool) -> str:
            return "ok" if ok else "OVER"

        print(f"{'figure':48} value")
        print(f"{'one client, GET round trip through the host (p50)':48} {p50:.3f} ms ({1000 / p50:,.0f} ops/s)")
        print(f"{f'{args.clients} clients at once, cache operations':48} {ops:,.0f} ops/s (at least {OPS_TARGET:,}: "
              f"{mark(ops >= OPS_TARGET)})")
        print(f"{'awslab demo caching (5 strategies x 3 s, stampede)':48} {demo_s:.1f} s (at most {DEMO_TARGET_S:.0f}: "
              f"{mark(demo_s <= DEMO_TARGET_S and demo.returncode == 0)}); lazy-ttl p50 {lazy.get('p50_ms', 0):.2f} ms")
        print(f"{'awslab demo caching --eviction (3 policies)':48} {evict_s:.1f} s (exit {evict.returncode})")
        return 0
    finally:
        awslab(home, "local", "reset", "--yes")
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
