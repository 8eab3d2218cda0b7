"""A class on one machine, measured: ``python bench/class.py [--students 30] [--concurrency 4]``.

In a fresh AWSLAB_HOME on the instant profile, with real engines, through the real CLI:
``awslab class up week6 --count N`` (the time, and each student's), then what the N stacks cost
this machine: memory (RSS summed over every process of the local AWS and its engines, which
counts shared pages once per process, and PSS, which splits them), processes, disk (the home's
bytes on disk, and how much of it is PostgreSQL's binaries: none should be), then ``class
verify`` and ``class down`` times.

Targets (issue 32): 30 stacks of week6 within 4 GiB RSS, `class up` of 30 within 30 s at concurrency 4 on
2 cores. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def awslab(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "awslab", *args], capture_output=True, text=True, timeout=timeout)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def memory_kb(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def disk_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="Leave the class and the home for a look.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-class-"))
    os.environ["AWSLAB_HOME"] = str(home)
    print(f"home {home}; {args.students} students of week6, {args.concurrency} at a time, instant profile, engines on")
    try:
        started = awslab("local", "start", timeout=120)
        if started.returncode != 0:
            raise SystemExit(f"local start failed: {started.stderr.strip()[-400:]}")
        server_pid = json.loads((home / "local" / "server.json").read_text())["pid"]
        base_rss, base_pss = memory_kb(descendants(server_pid))

        t0 = time.monotonic()
        up = awslab("class", "up", "week6", "--count", str(args.students), "--concurrency", str(args.concurrency),
                    "--output", "json")
        up_s = time.monotonic() - t0
        result = json.loads(up.stdout) if up.stdout.strip() else {"students": []}
        per = sorted(s["seconds"] for s in result["students"])
        failed = [s for s in result["students"] if s["result"] != "up"]
        print(f"class up: {up_s:.1f} s for {len(per)} stacks ({len(failed)} failed); per student median "
              f"{per[len(per) // 2]:.1f} s, max {per[-1]:.1f} s" if per else f"class up failed: {up.stderr[-400:]}")

        pids = descendants(server_pid)
        rss, pss = memory_kb(pids)
        names = {}
        for p in pids:
            try:
                comm = Path(f"/proc/{p}/comm").read_text().strip()
            except OSError:
                continue
            names[comm] = names.get(comm, 0) + 1
        print(f"memory: RSS {rss / 1024 / 1024:.2f} GiB summed over {len(pids)} processes "
              f"({(rss - base_rss) / 1024 / max(1, args.students):.0f} MiB per stack), "
              f"PSS {pss / 1024 / 1024:.2f} GiB ({(pss - base_pss) / 1024 / max(1, args.students):.0f} MiB per stack); "
              f"the local AWS alone before: RSS {base_rss / 1024:.0f} MiB")
        print("processes: " + ", ".join(f"{n} {c}" for c, n in sorted(names.items(), key=lambda kv: -kv[1])[:6]))
        # The engines' data lives in the home, or (running as root, for the engines' own account) in
        # a directory of /var/lib/awslab/engines named after it.
        from awslab.local.engines import Engines

        fallback = Engines(home / "local" / "engines").fallback_base()
        places = [home] + ([fallback] if fallback.exists() else [])
        disk = sum(disk_bytes(p) for p in places)
        binaries = sum(disk_bytes(d) for p in places for d in p.rglob("pginstall") if d.is_dir())
        print(f"disk: {disk / 1024 / 1024:.0f} MiB ({disk / 1024 / 1024 / max(1, args.students):.1f} MiB per stack) in "
              f"{' and '.join(str(p) for p in places)}; of it copies of PostgreSQL binaries: {binaries / 1024 / 1024:.0f} MiB")

        t0 = time.monotonic()
        verify = awslab("class", "verify", "--concurrency", str(args.concurrency), "--output", "json")
        sheet = json.loads(verify.stdout)["students"] if verify.stdout.strip() else []
        print(f"class verify: {time.monotonic() - t0:.1f} s; {sum(1 for s in sheet if s['grade'] == 'PASS')} of "
              f"{len(sheet)} pass every check")
        failures: dict[str, int] = {}
        for s in sheet:
            for f in s["failures"]:
                failures[f] = failures.get(f, 0) + 1
        for f, n in sorted(failures.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {n} x {f[:900]}")
        if args.keep:
            print(f"kept: AWSLAB_HOME={home}")
            return
        t0 = time.monotonic()
        down = awslab("class", "down", "--concurrency", str(args.concurrency), "--delete-snapshots", "--output", "json")
        print(f"class down: {time.monotonic() - t0:.1f} s (exit {down.returncode})")
    finally:
        if not args.keep:
            awslab("local", "stop", timeout=300)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
