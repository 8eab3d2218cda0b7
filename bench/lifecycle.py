"""Benchmark the lifecycle on a private local AWS and print tables of figures (run by hand, not a test).

    python bench/lifecycle.py                          # instant, then realistic at time scale 0.02
    python bench/lifecycle.py --time-scale 0.005 --time-scale 0.02 --profiles realistic

For each latency profile (``instant``, and ``realistic`` at each ``--time-scale``) a fresh local
AWS is started in a temporary AWSLAB_HOME, and the real CLI runs, each command as its own process:
``up week6``, ``up week6`` again, ``verify``, ``snapshot``, ``down --yes``. Per command: exit
code, wall time, AWS requests sent (mutating; polls = describes a wait repeated because the
resource was not ready yet; other reads) and the peak RSS of that awslab process. Then, for
``up``: the critical path computed from the profile and the topology (bench/critical_path.py) and
the ratio ``up`` / critical path against its bound (1.10); on ``instant`` (no critical path), ``up``
beside its engine floor (when CreateDBInstance was sent, then the primary, its standby and the
replica, each as the local AWS's log times it) against the target of 2 s; for the second ``up``: 0 mutating
requests and at most 15 in all; the fixed costs against theirs: every command's start-up to its
first AWS request (0.3 s), the no-op ``up`` (0.8 s), the local AWS's start (2 s). Last,
``awslab --help`` start-up time beside ``python -c "import click"`` (medians; bound 1.5x). Requests are counted by bench/counted_cli.py, which runs
``awslab.cli.main`` with hooks on botocore; wall time and memory are those of that process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from critical_path import critical_path, describe, shortest_phase  # noqa: E402

# The default time scale for `realistic`: `up` then takes ~30 s (critical path 31.2 s for week6), every
# state the lab's creates pass through lasts longer than the local poll's longest pause (the
# shortest, the host's `pending`, is 0.6 s against 0.5 s), and awslab's fixed cost per command
# (process start-up, discovery, a cold local AWS: ~2-4 s, the same at every scale) is ~10 % of
# the critical path rather than 25 % (0.01) or 50 % (0.005). Try others with --time-scale.
DEFAULT_SCALE = 0.02

UP_BOUND = 1.10            # `up` under realistic takes at most this times the critical path
UP_ENGINES_TARGET_S = 2.0  # `up` with engines on the instant profile
SECOND_UP_MAX_REQUESTS = 15
FIRST_REQUEST_BOUND_S = 0.3   # from the process's start to its first AWS request, for every command
NOOP_UP_BOUND_S = 0.8         # a second `up` (nothing to do), whole process
LOCAL_START_BOUND_S = 2.0     # the local AWS, from spawn to answering
HELP_BOUND_RATIO = 1.5        # `awslab --help` against `python -c "import click"`
READ_PREFIXES = ("Describe", "List", "Get")   # anything else counts as mutating (conservative)
LIFECYCLE = (("up", ("up", "week6")), ("up again", ("up", "week6")), ("verify", ("verify",)),
             ("snapshot", ("snapshot",)), ("down", ("down", "--yes")))


@dataclass
class Result:
    label: str
    argv: tuple[str, ...]
    code: int
    wall_s: float
    max_rss_kib: int
    calls: list[tuple[str, str, int, float]]   # service, operation, probe number in its wait (0: none), time.time()
    http_sent: int
    stderr: str
    spawned_at: float                           # time.time() just before the process was started
    executor_s: float | None = None             # awslab's own "is up ... in X s" (the executor)

    @property
    def mutating(self) -> int:
        return sum(not op.startswith(READ_PREFIXES) for _, op, _, _ in self.calls)

    @property
    def polls(self) -> int:
        return sum(n > 1 for _, op, n, _ in self.calls if op.startswith(READ_PREFIXES))

    @property
    def reads(self) -> int:
        return len(self.calls) - self.mutating - self.polls

    @property
    def to_first_request_s(self) -> float | None:
        """The command's fixed cost: from spawning the process to its first AWS request."""
        return min(c[3] for c in self.calls) - self.spawned_at if self.calls else None


@dataclass
class ProfileRun:
    name: str
    spec: str
    time_scale: float
    results: list[Result] = field(default_factory=list)
    server_start_s: float = 0.0
    server_peak_rss_kib: int | None = None
    critical_s: float = 0.0
    critical_path: list[tuple[str, float]] = field(default_factory=list)
    shortest_phase: tuple[float, str, str] | None = None
    engine_s: dict[str, float] = field(default_factory=dict)   # the engines `up` started: what -> seconds


def clean_env(home: Path) -> dict[str, str]:
    """No real AWS: fake keys, no config files, a private state dir, nothing inherited from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AWSLAB_"))}
    env.update(AWSLAB_HOME=str(home), AWSLAB_TARGET="local", AWS_CONFIG_FILE=str(home / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               # Any client not pointed at the local AWS goes to a closed local port, never to real AWS.
               AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return env


def run_cli(label: str, argv: tuple[str, ...], env: dict[str, str], home: Path) -> Result:
    calls_file = home / f"calls-{label.replace(' ', '-')}.json"
    err_file = home / f"stderr-{label.replace(' ', '-')}.txt"
    with open(err_file, "w") as err_fh:
        spawned_at, t0 = time.time(), time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(HERE / "counted_cli.py"), *argv],
                                env={**env, "BENCH_CALLS_FILE": str(calls_file)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_fh)
        _, status, usage = os.wait4(proc.pid, 0)    # reaps it: its own rusage (peak RSS), not all children's
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = err_file.read_text()
    data = json.loads(calls_file.read_text()) if calls_file.exists() else {"calls": [], "http_sent": 0}
    executor = re.search(r"is up \(\d+ changed\) in ([0-9.]+)s", err)
    result = Result(label, argv, proc.returncode, wall, usage.ru_maxrss, [tuple(c) for c in data["calls"]],
                    data["http_sent"], err, spawned_at, float(executor.group(1)) if executor else None)
    if result.code not in (0,):
        print(f"  ! awslab {' '.join(argv)} exited {result.code}:\n    " + "\n    ".join(err.strip().splitlines()[-8:]),
              file=sys.stderr)
    return result


def peak_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_profile(spec: str, time_scale: float, keep: bool, warm: bool) -> ProfileRun:
    from awslab.local import latency
    from awslab.spec.lab import load_lab

    name = spec if spec == "instant" else f"{spec} x{time_scale:g}"
    pr = ProfileRun(name, spec, time_scale)
    lab, lat = load_lab("week6"), latency.parse(spec, time_scale)
    pr.critical_s, pr.critical_path = critical_path(lab, lat)
    pr.shortest_phase = shortest_phase(lab, lat)
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-"))
    env = clean_env(home)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)     # the manager finds its state dir through AWSLAB_HOME
    from awslab.local import manager

    print(f"[{name}] AWSLAB_HOME={home}", file=sys.stderr)
    try:
        t0 = time.perf_counter()
        server = manager.start(latency=spec, time_scale=time_scale)
        pr.server_start_s = time.perf_counter() - t0
        try:
            if warm:   # moto sets up each service's backend on its first request; pay that here, unmeasured
                print(f"[{name}] awslab status (warm-up, not measured)", file=sys.stderr)
                run_cli("warm-up", ("status", "--name", "week6"), env, home)
            for label, argv in LIFECYCLE:
                print(f"[{name}] awslab {' '.join(argv)}", file=sys.stderr)
                pr.results.append(run_cli(label, argv, env, home))
                if label == "up":
                    pr.engine_s = engine_times(home / "local" / "server.log")
            pr.server_peak_rss_kib = peak_rss_kib(server.pid)
        finally:
            manager.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    return pr


# The engines' own lines in the local AWS's log (awslab/local/engines): how long each took to start.
ENGINE_LINES = {
    "primary": re.compile(r"postgres '[^']*week6-db' ready on \S+ in ([0-9.]+) s \((from the template|initdb)"),
    "standby": re.compile(r"postgres standby of '[^']*week6-db' ready on \S+ in ([0-9.]+) s"),
    "replica": re.compile(r"postgres replica '[^']*week6-db-replica-1' of '[^']*' ready on \S+ in ([0-9.]+) s"),
}


def engine_times(log: Path) -> dict[str, float]:
    text = log.read_text(errors="replace") if log.exists() else ""
    out: dict[str, float] = {}
    for what, pattern in ENGINE_LINES.items():
        match = pattern.search(text)
        if match:
            out[what] = float(match.group(1))
            if what == "primary":
                out["from the template"] = float(match.group(2) == "from the template")
    return out


def engine_floor_line(pr: ProfileRun) -> str:
    """`up` beside its floor: when CreateDBInstance was sent, then the engines the lab waits on one
    after another (the primary, its Multi-AZ standby inside the primary's creation, then the replica)."""
    up, e = pr.results[0], pr.engine_s
    sent = min((c[3] for c in up.calls if c[1] == "CreateDBInstance"), default=None)
    if sent is None or not {"primary", "standby", "replica"} <= e.keys():
        return "engine floor: n/a (no engines in the local AWS's log)"
    chain = e["primary"] + e["standby"] + e["replica"]
    floor = (sent - up.spawned_at) + chain
    how = "from the template" if e.get("from the template") else "initdb"
    return (f"engine floor: CreateDBInstance sent at {sent - up.spawned_at:.2f} s + engines {chain:.2f} s (primary "
            f"{e['primary']:.2f} s {how}, standby {e['standby']:.2f} s, replica {e['replica']:.2f} s) = {floor:.2f} s; "
            f"up {up.wall_s:.2f} s  (target {UP_ENGINES_TARGET_S:.1f} s: {_verdict(up.wall_s, UP_ENGINES_TARGET_S)})")


def ratio_line(pr: ProfileRun) -> str:
    up = pr.results[0]
    if pr.critical_s <= 0:
        return (f"up / critical path: n/a (critical path 0 s under {pr.name}; up took {up.wall_s:.2f} s)\n"
                + up_breakdown(up, 0.0))
    ratio = up.wall_s / pr.critical_s
    verdict = "ok" if ratio <= UP_BOUND else "OVER"
    line = (f"up / critical path: {up.wall_s:.2f} s / {pr.critical_s:.2f} s = {ratio:.3f}  "
            f"(bound {UP_BOUND:.2f}: {verdict})")
    return line + "\n" + up_breakdown(up, pr.critical_s)


def up_breakdown(up: Result, critical_s: float) -> str:
    """Where `up`'s wall time went: process start-up, discovery and planning, the executor, the rest."""
    if not up.calls or up.executor_s is None:
        return "  (no breakdown: no requests or no 'is up' line)"
    first = min(c[3] for c in up.calls)
    first_mut = min((c[3] for c in up.calls if not c[1].startswith(READ_PREFIXES)), default=first)
    startup, discovery = first - up.spawned_at, first_mut - first
    tail = up.wall_s - (first_mut - up.spawned_at) - up.executor_s
    exe = f"executor {up.executor_s:.2f} s"
    if critical_s > 0:
        exe += f" (critical path + {up.executor_s - critical_s:.2f} s, ratio {up.executor_s / critical_s:.3f})"
    return (f"  = start-up to first request {startup:.2f} s + discovery and plan {discovery:.2f} s + {exe}"
            f" + summary and exit {tail:.2f} s")


def second_up_line(pr: ProfileRun) -> str:
    again = pr.results[1]
    ok = again.mutating == 0 and len(again.calls) <= SECOND_UP_MAX_REQUESTS
    ops = ", ".join(f"{s}.{o}" for s, o, _, _ in again.calls)
    return (f"second up: {again.mutating} mutating, {len(again.calls)} requests in all "
            f"(bound 0 mutating, <= {SECOND_UP_MAX_REQUESTS}: {'ok' if ok else 'OVER'})\n  {ops}")


def print_profile(pr: ProfileRun) -> None:
    print(f"\n== latency {pr.name}  (local AWS start {pr.server_start_s:.2f} s"
          + (f", its peak RSS {pr.server_peak_rss_kib / 1024:.0f} MiB)" if pr.server_peak_rss_kib else ")"))
    head = (f"{'command':<18} {'exit':>4} {'wall s':>8} {'1st req s':>9} {'requests':>8} {'mutating':>8} {'polls':>6} "
            f"{'reads':>6} {'peak RSS MiB':>12}")
    print(head)
    print("-" * len(head))
    for r in pr.results:
        retries = r.http_sent - len(r.calls)
        note = f"  (+{retries} HTTP retries)" if retries > 0 else ""
        first = f"{r.to_first_request_s:>9.2f}" if r.to_first_request_s is not None else f"{'-':>9}"
        print(f"{'awslab ' + ' '.join(r.argv):<18} {r.code:>4} {r.wall_s:>8.2f} {first} {len(r.calls):>8} {r.mutating:>8} "
              f"{r.polls:>6} {r.reads:>6} {r.max_rss_kib / 1024:>12.0f}{note}")
    print("(1st req: from spawning the process to its first AWS request; polls: describes a wait repeated\n"
          " because the resource was not ready yet; reads: other describes, lists and gets, each wait's first\n"
          " look included; mutating: every other operation)")
    print(f"critical path: {describe(pr.critical_s, pr.critical_path)}")
    from awslab.engine.context import LOCAL_POLLING

    if pr.shortest_phase and pr.shortest_phase[0] < LOCAL_POLLING.max_delay_s:
        secs, key, state = pr.shortest_phase
        print(f"note: {key} is '{state}' for only {secs:.2f} s, less than the local poll's longest pause "
              f"({LOCAL_POLLING.max_delay_s} s): at this scale polling granularity weighs on the figures")
    print(ratio_line(pr))
    if pr.critical_s <= 0:
        print(engine_floor_line(pr))
    print(second_up_line(pr))
    print(fixed_cost_lines(pr))


def _verdict(value: float, bound: float) -> str:
    return "ok" if value <= bound else "OVER"


def fixed_cost_lines(pr: ProfileRun) -> str:
    """What every command pays whatever the lab's latency: start-up, a no-op `up`, the local AWS's start."""
    firsts = [(r.to_first_request_s, r.label) for r in pr.results if r.to_first_request_s is not None]
    worst, worst_label = max(firsts) if firsts else (float("nan"), "-")
    again = pr.results[1].wall_s
    return "\n".join([
        f"start-up to first request: worst {worst:.2f} s ({worst_label}), median "
        f"{statistics.median(f for f, _ in firsts):.2f} s  (bound {FIRST_REQUEST_BOUND_S:.2f}: "
        f"{_verdict(worst, FIRST_REQUEST_BOUND_S)})" if firsts else "start-up to first request: no requests",
        f"no-op up: {again:.2f} s  (bound {NOOP_UP_BOUND_S:.2f}: {_verdict(again, NOOP_UP_BOUND_S)})",
        f"local AWS start: {pr.server_start_s:.2f} s  (bound {LOCAL_START_BOUND_S:.2f}: "
        f"{_verdict(pr.server_start_s, LOCAL_START_BOUND_S)})",
    ])


def median_time(cmd: list[str], n: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_startup(n: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="awslab-bench-startup-"))
    env = clean_env(home)
    script = Path(sys.executable).parent / "awslab"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "awslab"]
    try:
        median_time(cli + ["--help"], 1, env)            # warm the file cache
        awslab_help = median_time(cli + ["--help"], n, env)
        click_only = median_time([sys.executable, "-c", "import click"], n, env)
        bare = median_time([sys.executable, "-c", "pass"], n, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n== start-up (median of {n})")
    print(f"awslab --help              {awslab_help * 1000:6.0f} ms   ({' '.join(Path(c).name for c in cli)})")
    print(f"python -c 'import click'   {click_only * 1000:6.0f} ms")
    print(f"python -c 'pass'           {bare * 1000:6.0f} ms")
    print(f"awslab --help - import click: {(awslab_help - click_only) * 1000:.0f} ms; ratio {awslab_help / click_only:.2f} "
          f"(bound {HELP_BOUND_RATIO:.2f}: {_verdict(awslab_help / click_only, HELP_BOUND_RATIO)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="instant,realistic", help="comma-separated: instant, realistic")
    parser.add_argument("--time-scale", type=float, action="append", dest="scales",
                        help=f"time scale(s) for realistic (repeatable; default {DEFAULT_SCALE}: `up` ~30 s)")
    parser.add_argument("--startup-runs", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=1, help="run each profile this many times (a fresh local AWS each)")
    parser.add_argument("--warm", action="store_true",
                        help="run `awslab status` (not measured) before `up`, so the local AWS has set up its "
                             "per-service backends: leaves moto's first-request cost out of `up`")
    parser.add_argument("--keep", action="store_true", help="keep each temporary AWSLAB_HOME (server log, request counts)")
    args = parser.parse_args()
    scales = args.scales or [DEFAULT_SCALE]
    print(f"awslab lifecycle benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
          f"{', local AWS warmed before up' if args.warm else ''})")
    ratios: list[str] = []
    for profile in [p.strip() for p in args.profiles.split(",") if p.strip()]:
        for scale in ([1.0] if profile == "instant" else scales):
            for _ in range(args.rounds):
                pr = run_profile(profile, scale, args.keep, args.warm)
                print_profile(pr)
                sys.stdout.flush()
                if pr.critical_s > 0:
                    ratios.append(f"{pr.name:<18} up {pr.results[0].wall_s:6.2f} s  critical path {pr.critical_s:6.2f} s  "
                                  f"ratio {pr.results[0].wall_s / pr.critical_s:.3f}  "
                                  f"(executor only {(pr.results[0].executor_s or 0) / pr.critical_s:.3f})")
    if len(ratios) > 1:
        print(f"\n== up / critical path (bound {UP_BOUND:.2f})")
        print("\n".join(ratios))
    if args.startup_runs > 0:
        print_startup(args.startup_runs)


if __name__ == "__main__":
    main()
