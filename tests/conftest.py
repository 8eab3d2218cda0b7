"""Fixtures: fake credentials and no AWS config, one real local AWS server per session, and an
in-process runner for the real CLI.

The server is the same process awslab starts for users (``awslab.local.manager.start``), with the
same patches. Each test gets its own AWSLAB_HOME that points at that one server, and its own stack
names, so tests do not see each other's resources.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import boto3
import pytest

def _scratch_in_memory(min_free_bytes: int = 4 << 30) -> None:
    """The suite's scratch files (pytest's tmp dirs, the homes, the engines' data) on tmpfs when the
    machine has room there. The tests start, copy and remove thousands of PostgreSQL clusters of
    1,300 files each; on a disk file system that churn makes every new file slower to create (seen
    here: 25x after a few minutes), and the suite's time would be the disk's, not awslab's. Where
    awslab puts engine data by default is asserted by tests that unset AWSLAB_ENGINES_DIR."""
    import tempfile

    shm = Path("/dev/shm")
    if os.environ.get("AWSLAB_TEST_SCRATCH") == "disk" or not (shm.is_dir() and os.access(shm, os.W_OK)):
        return
    stat = os.statvfs(shm)
    if stat.f_bavail * stat.f_frsize < min_free_bytes:
        return
    scratch = shm / f"awslab-tests-{os.getuid()}"
    scratch.mkdir(exist_ok=True)
    scratch.chmod(0o711)   # as root, the engines' own user must pass through to their data dirs
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None   # gettempdir() reads TMPDIR again (pytest's tmp dirs included)
    # Where the engines live when running as root (the engine user cannot reach pytest's 0700 dirs).
    os.environ.setdefault("AWSLAB_ENGINES_DIR", str(scratch / "engines"))


_scratch_in_memory()


def _bytecode_cached() -> None:
    """Python's bytecode cache on for the suite's processes, and awslab compiled once before they
    start. A machine with PYTHONDONTWRITEBYTECODE set (this project's is) otherwise compiles awslab
    from source in every process: each worker, each of the ~120 CLI processes the tests run and
    every local AWS, and pytest rewrites every test module's asserts again in every worker."""
    import compileall
    import sys

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    if "PYTEST_XDIST_WORKER" not in os.environ:   # the controller, before its workers: once
        compileall.compile_dir(Path(__file__).resolve().parent.parent / "awslab", quiet=1)


_bytecode_cached()

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Any client not pointed at the local AWS goes to a closed local port, never to real AWS.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    # Control-plane tests need no PostgreSQL behind each DB; tests/verify/test_live.py turns the engines on.
    "AWSLAB_LOCAL_ENGINES": "off",
}
CLEARED = ("AWS_PROFILE", "AWS_REGION", "AWSLAB_TARGET", "AWSLAB_PROFILE", "AWSLAB_REGION", "AWSLAB_ENDPOINT_URL",
           "AWSLAB_STACK", "AWSLAB_OUTPUT", "AWSLAB_DEBUG", "XDG_STATE_HOME")


@pytest.fixture(scope="session", autouse=True)
def sdk_cache(tmp_path_factory):
    """awslab keeps botocore's parsed models in $XDG_CACHE_HOME: the tests' own, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="session", autouse=True)
def forkserver(sdk_cache, tmp_path_factory):
    """Each worker's local AWSes forked from one prepared process (awslab.local.forkserver): a
    start costs 0.02-0.2 s of CPU instead of 1.1 s (the suite starts ~70), each server still a
    process of its own with its own state, lock and engines. Its environment is the tests' (what
    prepare() reads must match, else the manager starts a process itself). AWSLAB_TEST_FORKSERVER=off:
    none."""
    from awslab.local import forkserver as fs

    if os.environ.get("AWSLAB_TEST_FORKSERVER") == "off":   # every server started the ordinary way
        yield None
        return
    where = tmp_path_factory.mktemp("forkserver")
    env = {**os.environ, **FAKE_ENV, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    pid = fs.start(where / "sock", where / "forkserver.log", env=env)
    os.environ[fs.ENV] = str(where / "sock")
    yield {"socket": where / "sock", "pid": pid}
    os.environ.pop(fs.ENV, None)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session", autouse=True)
def engine_dirs_removed(tmp_path_factory):
    """At the end, every engine data dir the session's homes made is removed: as root they live
    outside the home (under the temp dir, with a copy of the binaries the engine user can run),
    where pytest's own clean-up never looks."""
    yield
    from awslab.local.engines import Engines

    for registry in tmp_path_factory.getbasetemp().rglob("local/engines"):
        if registry.is_dir():
            with contextlib.suppress(Exception):
                Engines(registry).stop_all()


@pytest.fixture(autouse=True)
def aws_sandbox(tmp_path, monkeypatch):
    """No test can reach real AWS: fake keys, config files pointing at nothing, a private state dir."""
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    for k in CLEARED:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    home = tmp_path / "awslab-home"
    monkeypatch.setenv("AWSLAB_HOME", str(home))
    yield home
    _stop_servers_started_here(home)


def _stop_servers_started_here(home: Path) -> None:
    """A test that made awslab start its own local AWS must not leave the process behind. Only a
    server that holds this home's lock was started here; a home pointed at a shared or module
    server (``point_at``) holds no lock, and that server lives on."""
    import signal

    from awslab.local import manager

    if not (home / "local" / "server.lock").exists():
        return
    with _home(home):
        holder = manager.lock_holder()
    if holder and holder.get("pid") and str(holder["pid"]) != os.environ.get("AWSLAB_TEST_SHARED_SERVER_PID"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder["pid"], signal.SIGTERM)


@contextlib.contextmanager
def _home(home: Path):
    """AWSLAB_HOME set to ``home`` for a while (the manager finds its files there), then as it was."""
    saved = os.environ.get("AWSLAB_HOME")
    os.environ["AWSLAB_HOME"] = str(home)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWSLAB_HOME", None)
        else:
            os.environ["AWSLAB_HOME"] = saved


@contextlib.contextmanager
def private_server(home: Path, *, engines: bool = False, **start_options):
    """A real local AWS of its own, in the state dir ``home``, started by awslab's own manager and
    stopped with its engines at the end. Engines are off unless a test is about them."""
    from awslab.local import manager

    with _home(home):
        server = manager.start(engines=engines, **start_options)
    try:
        yield server
    finally:
        with _home(home):
            manager.stop()


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """The real local AWS server, engines off, one per test module (per xdist worker): forked from
    the worker's prepared process, a start costs ~0.1 s. (One per worker for the whole session
    kept every module's stacks and final snapshots: each describe, tag search and save of the
    hundreds of tests after paid for all of them, 80 s of CPU on one worker's server.)"""
    home = tmp_path_factory.mktemp("server-home")
    with private_server(home) as server:
        os.environ["AWSLAB_TEST_SHARED_SERVER_PID"] = str(server.pid)
        yield server, home


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory):
    """A local AWS with real engines, one per test module (per xdist worker): the shared one runs
    without engines, for speed. (One per worker for the whole session was tried: its state grew
    with every module's stacks and each save after a change with it; the suite was no faster.)"""
    home = tmp_path_factory.mktemp("engine-server-home")
    with private_server(home, engines=True) as server:
        yield server, home


@pytest.fixture
def engines(engine_server, aws_sandbox):
    """This test's AWSLAB_HOME, pointing at the module's engine server."""
    server, home = engine_server
    point_at(home, aws_sandbox)
    return server


def point_at(server_home: Path, home: Path) -> None:
    """Make the state dir ``home`` use the local AWS whose state dir is ``server_home`` (as if
    awslab had started it there): its identity and the keys it accepts. The environment's keys
    become those keys too, for tests that reach it as `--target aws --endpoint-url`."""
    (home / "local").mkdir(parents=True, exist_ok=True)
    for name in ("server.json", "credentials.json", "aws-credentials"):
        shutil.copy(server_home / "local" / name, home / "local" / name)
    for k, v in server_keys(server_home).items():
        os.environ[k.upper()] = v


def server_keys(server_home: Path) -> dict[str, str]:
    """The access key pair the local AWS of ``server_home`` accepts (boto3's keyword names)."""
    from awslab.local.auth import read_credentials

    creds = read_credentials(server_home / "local")
    assert creds is not None, f"no credentials in {server_home}/local"
    return creds


def signed_post(server, server_home: Path, path: str, data: bytes) -> bytes:
    """POST to one of the local AWS's own endpoints (moto's /moto-api/ ...), signed as its owner."""
    import urllib.request

    from awslab.local import manager

    with _home(server_home):
        req = manager.signed_request(f"{server.endpoint_url}{path}", "POST", data, {"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


@pytest.fixture
def local(local_server, aws_sandbox):
    """This test's AWSLAB_HOME, pointing at the module's server."""
    server, server_home = local_server
    point_at(server_home, aws_sandbox)
    return server


@pytest.fixture
def latency(local):
    """Set the shared server's latency profile for this test: latency("realistic", 0.003)."""
    from awslab.local import manager

    def use(profile: str, time_scale: float = 1.0) -> dict:
        return manager.set_latency(local, profile, time_scale)

    yield use
    manager.set_latency(local, "instant", 1.0)


@pytest.fixture
def aws(local, local_server):
    """boto3 clients on the local AWS: aws("ec2"), aws("rds", region="us-west-2")."""

    clients: dict = {}
    keys = server_keys(local_server[1])

    def make(service: str, region: str = "us-east-1"):
        if (service, region) not in clients:
            clients[service, region] = boto3.client(service, region_name=region, endpoint_url=local.endpoint_url, **keys)
        return clients[service, region]

    return make


@pytest.fixture
def stack():
    """A stack name no other test uses."""
    return f"t{uuid.uuid4().hex[:8]}"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


@pytest.fixture
def awslab():
    """Run the real CLI in-process: awslab("up", "week6") -> CliResult(code, out, err)."""
    from awslab.cli import main

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def api_calls(monkeypatch):
    """Every AWS operation awslab sends, in order: a list of (service, operation)."""
    from botocore.client import BaseClient

    calls: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


MUTATING_PREFIXES = ("Create", "Delete", "Modify", "Authorize", "Revoke", "Attach", "Detach", "Associate",
                     "Disassociate", "Run", "Terminate", "Add", "Remove", "Put", "Replace", "Reboot", "Restore",
                     "Tag", "Untag", "Start", "Stop", "Copy", "Update")


def mutating(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [c for c in calls if c[1].startswith(MUTATING_PREFIXES)]


def stack_tagged(aws, stack: str, region: str | None = None) -> list[str]:
    """ARNs of everything in the local AWS tagged with the stack (the tagging API, as the AWS CLI sees it)."""
    tagging = aws("resourcegroupstaggingapi", region) if region else aws("resourcegroupstaggingapi")
    arns = []
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=[{"Key": "awslab:stack", "Values": [stack]}]):
        arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    return arns


def interrupt_when(args: list[str], seen: Callable[[str], bool], within_s: float = 60.0) -> tuple[int, str]:
    """Run awslab as a process, press Ctrl-C (SIGINT) once a progress line satisfies ``seen``;
    return its exit code and everything it wrote to stderr."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "awslab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if not line or seen(line):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, "".join(lines) + rest


def cloudformation_created(cfn, rds, elasticache, made: str, instances: int) -> bool:
    """For ``eventually``: the CloudFormation stack ``made`` is CREATE_COMPLETE, and then every one of
    its ``instances`` DB instances and its cache are available (CloudFormation waits for each
    resource to stabilize: complete before them would be a lie)."""
    status = cfn.describe_stacks(StackName=made)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        assert status == "CREATE_IN_PROGRESS", status
        return False
    dbs = [d["DBInstanceStatus"] for d in rds.describe_db_instances()["DBInstances"]
           if d["DBInstanceIdentifier"].startswith(f"{made}-")]
    group = elasticache.describe_replication_groups(ReplicationGroupId=f"{made}-cache")["ReplicationGroups"][0]["Status"]
    assert dbs == ["available"] * instances and group == "available", (dbs, group)
    return True


def tags_of(tag_list) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list or []}


def ec2_tagged(aws, stack: str) -> dict[str, list[dict]]:
    """The stack's EC2 resources by type, as describes list them (terminated instances left out)."""
    ec2 = aws("ec2")
    flt = [{"Name": "tag:awslab:stack", "Values": [stack]}]
    return {
        "vpcs": ec2.describe_vpcs(Filters=flt)["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=flt)["Subnets"],
        "igws": ec2.describe_internet_gateways(Filters=flt)["InternetGateways"],
        "route_tables": ec2.describe_route_tables(Filters=flt)["RouteTables"],
        "groups": ec2.describe_security_groups(Filters=flt)["SecurityGroups"],
        "instances": [i for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]
                      if i["State"]["Name"] != "terminated"],
    }


def copies(aws, stack: str) -> Counter:
    """How many of each of the stack's resources exist: (type, awslab:resource) -> count."""
    counts: Counter = Counter()
    for kind, items in ec2_tagged(aws, stack).items():
        for item in items:
            counts[kind, tags_of(item.get("Tags"))["awslab:resource"]] += 1
    tagging = aws("resourcegroupstaggingapi")
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=[{"Key": "awslab:stack", "Values": [stack]}]):
        for r in page["ResourceTagMappingList"]:
            if r["ResourceARN"].startswith("arn:aws:ec2:"):
                continue   # counted above, by describes
            kind = r["ResourceARN"].split(":")[2] + ":" + r["ResourceARN"].split(":")[5].split("/")[0]
            counts[kind, tags_of(r["Tags"]).get("awslab:resource", r["ResourceARN"])] += 1
    return counts


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# --- the suite's time, by kind of test ------------------------------------------------------------

# Seconds of test time (setup + call + teardown, summed over workers) each kind may take on the
# project's 2-core machine, so that a test that got slow shows up in review rather than in a
# 40-minute CI run. Exceeding one fails nothing: the summary says so, with the slowest tests.
# engines: the live checks and, since the local AWS keeps its state, its stop/start, SIGKILL and
# damaged-server.json cases, each on a server and engines of its own (measured 155-193 s).
# Seconds of test time per kind (summed over workers), printed against what was spent. engines: the
# HA and recovery tests (failover, PITR, promotion, drill, backup windows) add about 80 s to it.
BUDGETS_S = {"policy": 420, "faults": 420, "kill": 300, "engines": 320, "lifecycle": 420, "other": 120}
_GROUPS = ("policy", "faults", "kill", "engines", "lifecycle")
_spent: dict[str, float] = {}
_group_of: dict[str, str] = {}


def pytest_xdist_auto_num_workers(config):
    """Two workers per core (``-n auto``): a lifecycle test waits on backoff sleeps, polls and the
    processes it starts about as long as it computes, so a 2-core machine runs the suite in ~250 s
    with four workers against ~340 s with two (each worker has its own local AWS, ~250 MiB)."""
    return max(2, 2 * (os.cpu_count() or 1))


def pytest_collection_modifyitems(items):
    """A test on the local AWS server is a lifecycle test, whichever module it is in; a pure test
    beside it is not (``-m "not lifecycle"`` keeps it)."""
    for item in items:
        if "local" in item.fixturenames and "lifecycle" not in item.keywords:
            item.add_marker(pytest.mark.lifecycle)


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, all) jiffies of the whole machine since boot (Linux's /proc/stat), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    return sum(fields) - idle, sum(fields)


_cpu_at_start = _cpu_ticks()


def pytest_runtest_logreport(report):
    _spent[report.nodeid] = _spent.get(report.nodeid, 0.0) + report.duration
    _group_of[report.nodeid] = next((g for g in _GROUPS if g in report.keywords), "other")


def pytest_terminal_summary(terminalreporter):
    if not _spent:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time by kind of test (budgets in tests/conftest.py)")
    by_group: dict[str, list[float]] = {}
    for nodeid, seconds in _spent.items():
        by_group.setdefault(_group_of[nodeid], []).append(seconds)
    for group in (*_GROUPS, "other"):
        times = by_group.get(group)
        if times:
            spent, budget = sum(times), BUDGETS_S[group]
            write(f"{group:<10} {len(times):>4} tests {spent:>7.1f} s  budget {budget:>4} s"
                  f"{'  OVER BUDGET' if spent > budget else ''}")
    now = _cpu_ticks()
    if now and _cpu_at_start and now[1] > _cpu_at_start[1]:
        # Whether the cores or the waits bound the run: near 100 % more workers would not help.
        write(f"the machine's cores were busy {100 * (now[0] - _cpu_at_start[0]) / (now[1] - _cpu_at_start[1]):.0f} % "
              f"of the run ({os.cpu_count()} cores)")
    write("slowest ten:")
    for nodeid, seconds in sorted(_spent.items(), key=lambda kv: -kv[1])[:10]:
        write(f"  {seconds:6.1f} s  {nodeid}")


SYSTEM_DONE_ENV = "AWSLAB_CI_SYSTEM_DONE"   # .ci/run: the file its background apt-get writes its exit code to
SYSTEM_WAIT_S = 300.0


def system_binary(*candidates: str) -> str:
    """The path of a program from the system's packages (MariaDB's server, Chromium), the first of
    ``candidates`` found. Under .ci/run, which installs them beside pip's install, this waits
    (bounded) for that install and fails the test if the program is still missing; elsewhere a
    machine without it skips the test, saying which package brings it."""
    import time

    def found() -> str | None:
        return next((hit for c in candidates if (hit := shutil.which(c))), None)

    done = os.environ.get(SYSTEM_DONE_ENV)
    if done:
        deadline = time.monotonic() + SYSTEM_WAIT_S
        while not Path(done).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        path = found()
        if path is None:
            outcome = Path(done).read_text().strip() if Path(done).exists() else f"not done in {SYSTEM_WAIT_S:.0f} s"
            pytest.fail(f"{' or '.join(candidates)} not installed by .ci/run (apt-get: {outcome}; "
                        f"see .ci/.cache/system-packages.log)")
        return path
    path = found()
    if path is None:
        pytest.skip(f"needs {' or '.join(candidates)} from the system's packages (on Debian/Ubuntu: "
                    f"apt-get install chromium mariadb-server); .ci/run installs them")
    return path


def engines_of(home: Path, stop: bool = False) -> dict[str, dict]:
    """The engine registry of ``home``'s local AWS; with ``stop``, every engine in it is killed
    (a test must never leave one behind, whatever it did)."""
    import json
    import signal

    from awslab.local.engines.children import is_ours

    path = home / "local" / "engines" / "engines.json"
    entries = json.loads(path.read_text())["engines"] if path.exists() else {}
    if stop:
        for e in entries.values():
            # Only the engine the entry started (its pid, start time and command): the suite makes
            # tens of thousands of processes, so a stopped engine's pid may be another test's now.
            if is_ours(e):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(e["pid"], signal.SIGKILL)
    return entries


def engine_processes(home: Path) -> list[int]:
    """Every running PostgreSQL server (postmaster) whose data is under ``home``'s engine dirs,
    registered or not, and every live redis-server of its registry (whose command line names its
    port, not its dir)."""
    from awslab.local.engines import Engines, pid_alive

    root = home / "local" / "engines"
    dirs = {str(root), str(Engines(root).fallback_base())}
    dirs |= {str(Path(e["dir"]).parent) for e in engines_of(home).values()}
    out = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if ("postgres" in cmd or "redis-server" in cmd) and any(d + os.sep in cmd for d in dirs) and pid_alive(pid):
            out.append(pid)
    out += [e["pid"] for e in engines_of(home).values()
            if e.get("engine") == "redis" and e.get("pid") and pid_alive(e["pid"])]
    return sorted(set(out))


def shell(line: str, *args: str) -> str:
    """Run a line `awslab connect` printed, as a user pasting it would."""
    import subprocess

    done = subprocess.run(["bash", "-c", line + "".join(f" {a}" for a in args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def host_of(awslab, stack: str) -> str:
    """The stack's EC2 host (the source of the lab's connections)."""
    import json

    records = json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]
    return next(r["id"] for r in records if r["key"] == "host.instance")


def eventually(check, within_s: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def endpoint_map(server, via: str | None = None) -> dict:
    """What the local AWS says is behind each emulated endpoint (``/awslab/endpoints``), as this
    machine sees it, or as instance ``via`` does (its own ports: its security groups decide)."""
    import json
    import urllib.request

    query = f"?via={via}" if via else ""
    with urllib.request.urlopen(server.endpoint_url + "/awslab/endpoints" + query, timeout=5) as resp:
        return json.loads(resp.read())["endpoints"]


def drill_shape(result: dict) -> dict:
    """The keys of `awslab drill -o json`, and each part's own: equal for every engine (DRILL_SHAPE), so
    one report and one script read them all."""
    return {k: sorted(v) if isinstance(v, dict) else type(v).__name__ for k, v in sorted(result.items())}


DRILL_SHAPE = {
    "aws_reference": ["cache_failover", "cache_loss", "multi_az_commit", "multi_az_failover", "multi_az_loss",
                      "replica_lag"],
    "cache_replica": ["acknowledged_writes_lost", "connections_dropped", "downtime_s", "serves_reads", "synchronous",
                      "timeline", "writes_acknowledged"],
    "commit": ["difference_ms_p50", "multi_az_ms_p50", "multi_az_ms_p95", "single_az_ms_p50", "single_az_ms_p95"],
    "engine": "str",
    "multi_az": ["acknowledged_writes_lost", "connections_dropped", "downtime_s", "lost", "serves_reads", "synchronous",
                 "timeline", "writes_acknowledged"],
    "profile": ["cross_az_round_trip_ms", "explicit", "profile", "time_scale", "words"],
    "read_replica": ["lag_ms_max", "lag_ms_p50", "lag_ms_p95", "read_your_write_misses", "read_your_write_tries",
                     "samples", "serves_reads", "synchronous", "visible_after_ms_max", "visible_after_ms_p50"],
    "stack": "str",
}
