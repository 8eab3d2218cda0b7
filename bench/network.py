"""Benchmark the local AWS's network in the data path and print figures (run by hand, not a test).

    python bench/network.py [--connections 1000] [--megabytes 200]

A fresh local AWS (instant profile, engines on) in a temporary AWSLAB_HOME; `awslab up week6`;
then, through the stack's host (an allowed path: the relay asks the VPC about every connection,
local/network.py):

- connection setup: a TCP connect and PostgreSQL's SSLRequest answered, through the relay against
  straight to the engine (medians of 300); target: the relay adds at most 1 ms;
- throughput: a COPY of N MB out of the primary, through the relay (TLS, as the lab requires)
  against straight to the engine (plain); target: at least 200 MB/s through the relay;
- many connections: K TLS sessions opened through one endpoint and left idle: errors, and the
  local AWS's RSS growth per connection (target: at most 64 KB each);
- a dropped connection: what a client sees when the VPC says no (the time to its own timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
SETUP_TARGET_MS = 1.0
THROUGHPUT_TARGET_MBPS = 200.0
IDLE_TARGET_KB = 64.0


def awslab(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "awslab", *args], env={**os.environ, "AWSLAB_HOME": str(home)},
                          capture_output=True, text=True, timeout=300)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def handshake_ms(port: int) -> float:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(SSL_REQUEST)
        assert s.recv(1) in (b"S", b"N")
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-net-"))
    try:
        up = awslab(home, "up", "week6", "--set", "database.read_replicas=0", "--yes")
        if up.returncode != 0:
            print(up.stderr, file=sys.stderr)
            return 1
        server = json.loads((home / "local" / "server.json").read_text())
        url = f"http://127.0.0.1:{server['port']}"
        status = json.loads(awslab(home, "status", "--output", "json").stdout)["resources"]
        host = next(r["id"] for r in status if r["key"] == "host.instance")
        with urllib.request.urlopen(f"{url}/awslab/endpoints?via={host}", timeout=10) as resp:
            seen = json.loads(resp.read())["endpoints"]
        db = next(i for e, i in seen.items() if e.startswith("week6-db."))
        relay, engine = db["port"], db["engine_port"]

        for p in (relay, engine):   # warm both paths
            handshake_ms(p)
        via = statistics.median(handshake_ms(relay) for _ in range(300))
        direct = statistics.median(handshake_ms(engine) for _ in range(300))

        import pg8000.native

        line = awslab(home, "connect", "db", "--output", "json")
        how = json.loads(line.stdout)
        passfile = Path(how["lines"][0].split("PGPASSFILE=")[1].split()[0])
        user, password = passfile.read_text().strip().split(":")[3:5]
        ctx = ssl.create_default_context(cafile=how["ca"])
        rows = args.megabytes * 1000
        sql = f"COPY (SELECT repeat('x', 999) FROM generate_series(1, {rows})) TO STDOUT"

        def copy_mbps(port: int, tls: bool) -> float:
            conn = pg8000.native.Connection(user, password=password, host="127.0.0.1", port=port, database="lab",
                                            ssl_context=ctx if tls else False, timeout=60)
            sink = open(os.devnull, "wb")
            t0 = time.perf_counter()
            conn.run(sql, stream=sink)
            elapsed = time.perf_counter() - t0
            conn.close()
            return rows * 1000 / elapsed / 1e6

        through = copy_mbps(relay, True)
        straight = copy_mbps(engine, False)

        before = rss_kb(server["pid"])
        held, errors = [], 0
        for _ in range(args.connections):
            try:
                s = socket.create_connection(("127.0.0.1", relay), timeout=10)
                s.sendall(SSL_REQUEST)
                assert s.recv(1) == b"S"
                held.append(ctx.wrap_socket(s, server_hostname="127.0.0.1"))
            except (OSError, AssertionError):
                errors += 1
        time.sleep(1.0)
        after = rss_kb(server["pid"])
        per_conn = (after - before) / max(1, len(held))
        for s in held:
            s.close()

        outside = json.loads(urllib.request.urlopen(f"{url}/awslab/endpoints", timeout=10).read())["endpoints"]
        t0 = time.perf_counter()
        connected = None
        try:
            with socket.create_connection(("127.0.0.1", outside[next(e for e in outside if e.startswith('week6-db.'))]["port"]),
                                          timeout=3) as s:
                connected = time.perf_counter() - t0
                s.sendall(SSL_REQUEST)
                s.recv(1)
            dropped = "answered (not dropped!)"
        except (TimeoutError, socket.timeout):
            dropped = (f"no {'answer' if connected is not None else 'TCP connection (SYN dropped)'}; the client's own "
                       f"3 s timeout fired after {time.perf_counter() - t0:.2f} s")

        def mark(ok: bool) -> str:
            return "ok" if ok else "OVER"

        print(f"{'figure':44} {'value':>14}  target")
        print(f"{'connection setup through the relay (p50)':44} {via:11.3f} ms  (engine alone {direct:.3f} ms; "
              f"adds {via - direct:.3f} ms, at most {SETUP_TARGET_MS} ms: {mark(via - direct <= SETUP_TARGET_MS)})")
        print(f"{'COPY out through the relay, TLS':44} {through:9.0f} MB/s  (engine alone, plain {straight:.0f} MB/s; "
              f"at least {THROUGHPUT_TARGET_MBPS:.0f}: {mark(through >= THROUGHPUT_TARGET_MBPS)})")
        print(f"{f'{args.connections} idle TLS connections, one endpoint':44} {errors:11d} err  "
              f"(server RSS +{(after - before) / 1024:.1f} MiB, {per_conn:.1f} KB each, at most {IDLE_TARGET_KB:.0f}: "
              f"{mark(per_conn <= IDLE_TARGET_KB)})")
        print(f"{'a private DB from outside the VPC':44} {dropped}")
        return 0
    finally:
        awslab(home, "local", "stop")
        import shutil
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
