"""What the pictures cost, measured: ``python bench/diagram.py [--count 30] [--rounds 5]``.

In a fresh AWSLAB_HOME on the instant profile, engines on, through awslab's own functions and CLI:

1. `awslab diagram`'s added time over discovery: discovery alone against discovery, verify's
   gather, the Topology and the SVG (what the command does), in-process, best of --rounds;
2. `class verify --html` against `class verify` for --count students (each student's verify also
   draws its stack), best of two runs each, alternated;
3. the size of `awslab report`'s page, after `drill --report` and `demo caching --report`.

Targets (issue 31): diagram at most 0.5 s over discovery; `class verify --html` for 30 students
no more than 10 % over `class verify`; a report page under 1 MB. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def awslab(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "awslab", *args], capture_output=True, text=True, timeout=timeout)


def must(proc: subprocess.CompletedProcess, what: str, ok=(0,)) -> subprocess.CompletedProcess:
    if proc.returncode not in ok:
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    return proc


def diagram_over_discovery(rounds: int) -> tuple[float, float]:
    from awslab.commands._common import new_run, resolve_context
    from awslab.commands.diagram_model import build
    from awslab.commands.drawing_svg import svg
    from awslab.commands.lifecycle import stack_lab
    from awslab.engine.discovery import discover
    from awslab.verify import checks

    ctx = resolve_context({"stack": "week6"}, command="diagram")
    lab = stack_lab(ctx)
    alone, drawn = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        discover(new_run(ctx, "week6"))
        alone.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run = new_run(ctx, "week6")
        svg(build(checks.gather(run, discover(run)), lab))
        drawn.append(time.perf_counter() - t0)
    return min(alone), min(drawn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30, help="Students for the class verify comparison.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Leave the home for a look.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-diagram-"))
    os.environ["AWSLAB_HOME"] = str(home)
    print(f"home {home}; instant profile, engines on; {args.count} students")
    try:
        must(awslab("up", "week6"), "up")
        alone, drawn = diagram_over_discovery(args.rounds)
        print(f"diagram: discovery {alone * 1000:.0f} ms; discovery + gather + Topology + SVG {drawn * 1000:.0f} ms: "
              f"+{(drawn - alone) * 1000:.0f} ms (target: at most +500 ms); best of {args.rounds}")

        must(awslab("drill", "--report"), "drill --report")
        must(awslab("demo", "caching", "--report", "--duration", "1"), "demo caching --report")
        page = home / "report.html"
        t0 = time.monotonic()
        must(awslab("report", "-o", str(page)), "report")
        print(f"report page: {page.stat().st_size / 1024:.0f} KiB with the drill's and caching demo's charts "
              f"(target: under 1024 KiB), written in {time.monotonic() - t0:.1f} s")

        must(awslab("class", "up", "week6", "--count", str(args.count)), "class up")
        plain, html = [], []
        for _ in range(2):
            t0 = time.monotonic()
            must(awslab("class", "verify"), "class verify", ok=(0, 1))
            plain.append(time.monotonic() - t0)
            t0 = time.monotonic()
            must(awslab("class", "verify", "--html", str(home / "grades.html")), "class verify --html", ok=(0, 1))
            html.append(time.monotonic() - t0)
        size = (home / "grades.html").stat().st_size
        print(f"class verify, {args.count} students: {min(plain):.1f} s; with --html {min(html):.1f} s "
              f"({(min(html) / min(plain) - 1) * 100:+.1f} %, target at most +10 %; runs {', '.join(f'{x:.1f}' for x in plain)} "
              f"and {', '.join(f'{x:.1f}' for x in html)} s); the page {size / 1024:.0f} KiB")
        if args.keep:
            print(f"kept: AWSLAB_HOME={home}")
            return
        awslab("class", "down", "--delete-snapshots")
        awslab("down", "--name", "week6", "--yes", "--delete-snapshots")
    finally:
        if not args.keep:
            awslab("local", "stop", timeout=120)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
