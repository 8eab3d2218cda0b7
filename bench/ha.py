"""High availability and recovery on the local AWS, measured: ``python bench/ha.py [--runs 3] [--mb 100]``.

In a fresh AWSLAB_HOME on the instant profile, through the real CLI:

- ``awslab drill`` ``--runs`` times: the Multi-AZ failover's downtime under a write load (last
  acknowledged write before, first after), acknowledged writes lost, and the cache failover's;
- the memory the Multi-AZ standby adds: the proportional set size (PSS, shared pages split
  between their users) of the standby's postmaster and its workers, beside the primary's;
- a point-in-time restore of a database of ``--mb`` MB: rows loaded after the first base backup,
  so the restore copies that backup and replays all of their WAL, as the worst case in the window.

Targets (issue 15): failover downtime <= 3 s, PITR of 100 MB <= 15 s, standby <= 40 MB. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

STACK = "bench"


def awslab(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "awslab.cli", *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"awslab {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done


def pg(what: str):
    import pg8000.native

    env = {}
    for line in awslab("connect", what, "--name", STACK, "--env").stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = (shlex.split(value) or [""])[0]
    password = Path(env["PGPASSFILE"]).read_text().strip().split(":", 4)[4]
    return pg8000.native.Connection(env["PGUSER"], host=env["PGHOST"], port=int(env["PGPORT"]), password=password,
                                    database=env["PGDATABASE"], timeout=60)


def pss_mb(pid: int) -> float:
    """PSS of a process and its children (a postmaster and its workers), in MB."""
    pids = [pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="awslab-bench-ha-")
    os.environ["AWSLAB_HOME"] = home
    try:
        awslab("up", "week6", "--name", STACK)
        drills = [json.loads(awslab("drill", "--name", STACK, "--output", "json").stdout) for _ in range(args.runs)]
        db_down = [d["multi_az"]["downtime_s"] for d in drills]
        cache_down = [d["cache_replica"]["downtime_s"] for d in drills]
        print(f"Multi-AZ failover downtime over {args.runs} drills: median {statistics.median(db_down):.2f} s, "
              f"max {max(db_down):.2f} s (target <= 3 s); acknowledged writes lost: "
              f"{[d['multi_az']['acknowledged_writes_lost'] for d in drills]} of "
              f"{[d['multi_az']['writes_acknowledged'] for d in drills]}")
        print(f"cache failover downtime: median {statistics.median(cache_down):.2f} s; acknowledged keys lost: "
              f"{[d['cache_replica']['acknowledged_writes_lost'] for d in drills]}")
        print(f"replica lag p95 (ms): {[d['read_replica']['lag_ms_p95'] for d in drills]}; read-your-write misses: "
              f"{[d['read_replica']['read_your_write_misses'] for d in drills]} of {drills[0]['read_replica']['read_your_write_tries']}")

        engines = json.loads((Path(home) / "local" / "engines" / "engines.json").read_text())["engines"]
        primary = next(e for k, e in engines.items() if k.endswith(f"{STACK}-db"))
        standby = next(e for k, e in engines.items() if k.endswith(f"{STACK}-db.standby"))
        print(f"memory (PSS): standby {pss_mb(standby['pid']):.1f} MB (target <= 40 MB), "
              f"primary {pss_mb(primary['pid']):.1f} MB")

        db = pg("db")
        started = time.monotonic()
        rows = args.mb * 1024 * 1024 // 1100
        db.run(f"CREATE TABLE big AS SELECT g AS n, repeat(md5(g::text), 31) AS pad FROM generate_series(1, {rows}) g")
        size_mb = db.run("SELECT pg_database_size(current_database())")[0][0] / 1024 / 1024
        print(f"loaded {rows} rows, database {size_mb:.0f} MB, in {time.monotonic() - started:.1f} s")
        time.sleep(0.5)
        noted = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        time.sleep(0.5)
        db.run("DROP TABLE big")
        time.sleep(3)   # the window's end trails the present by the archive interval
        started = time.monotonic()
        awslab("restore", "--name", STACK, "--to-time", noted, "--as", "bench-pitr")
        seconds = time.monotonic() - started
        back = pg("bench-pitr").run("SELECT count(*) FROM big")[0][0]
        print(f"point-in-time restore of a {size_mb:.0f} MB database: {seconds:.1f} s (target <= 15 s), "
              f"{back} of {rows} rows back")
    finally:
        subprocess.run([sys.executable, "-m", "awslab.cli", "down", "--name", STACK, "--yes", "--skip-final-snapshot"],
                       capture_output=True, timeout=600)
        subprocess.run([sys.executable, "-m", "awslab.cli", "local", "reset", "--yes"], capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
