"""A model-based test of the local AWS and the lifecycle: random sequences of commands, as a learner
types them, against a local AWS of its own with real engines, checking after every step what must
always hold against a model of what should exist.

The steps: `up` (a replica or none), writing a row with psql, `snapshot` (copied to another region
or not), `restore` of the DB (from a snapshot, or to the latest time) and of the cache, `failover`
of the DB and of the cache, `promote`, deleting a restored or promoted instance with the AWS API (as
with the AWS CLI), `local stop`/`start`, a SIGKILL of the server, `down` (keeping or deleting the
snapshots), Ctrl-C in the middle of `up`, `down` or `failover` (then the command rerun), a class of
two built and removed beside the stack (`class up`/`status`/`down`), and the lab's exported template
deployed and deleted through CloudFormation. What always holds: every save of the local AWS succeeds; the primary holds every row
written to it (through failovers, restarts and kills); a DB restored from a snapshot holds the rows
of that moment; `stacks` and `status` agree, and say complete while the stack has all its lab
wants (partial once its replica is promoted); every DB
instance has its own master secret and that secret exists; every engine process under the home
is one the local AWS knows; `down` leaves nothing tagged with the stack in any region but the
snapshots it listed as kept, and nothing at all with `--delete-snapshots`; an interrupted command
says "nothing was changed" only when nothing was, and its rerun converges; a class's stacks are
complete while they stand and leave nothing; CloudFormation says CREATE_COMPLETE only once every DB
instance and the cache are available, and its delete leaves only the primary's final snapshot.

A sequence is a seeded random walk: each step one of the steps possible now, the ones taken least
so far more likely, so a short walk still visits most of them. The suite runs ``AWSLAB_MODEL_SEEDS``
(default 2) walks of ``AWSLAB_MODEL_STEPS`` (default 8) steps, each its own test, plus the
sequences that once failed (``REGRESSIONS``, replayed as written). More on demand:
``AWSLAB_MODEL_SEEDS=30 AWSLAB_MODEL_STEPS=25 pytest tests/local/test_model.py``. A failure names
the seed and the sequence as a line ``REGRESSIONS`` takes; ``AWSLAB_MODEL_SHRINK=1`` first cuts
it down to the steps that still fail (each try replays it on a fresh stack).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest
from conftest import (
    cloudformation_created,
    engine_processes,
    engines_of,
    eventually,
    interrupt_when,
    server_keys,
    shell,
)

from awslab.local.persistence import SAVE_AT_MOST_S

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]

SEEDS = int(os.environ.get("AWSLAB_MODEL_SEEDS", "2"))
STEPS = int(os.environ.get("AWSLAB_MODEL_STEPS", "8"))
SHRINK = os.environ.get("AWSLAB_MODEL_SHRINK") == "1"
COPY_REGION = "us-west-2"
MAX_EXTRAS = 2   # restored or promoted DB instances at once: each is an engine and a second or two

# Sequences that failed once, replayed step by step: the first lost the local AWS's state (the
# tagging API's pagination made every later save fail), the second deleted the primary's secret
# with the promoted replica. (A copy forgotten by `down` after a rerun of `up` is
# tests/commands/test_recovery.py's.)
REGRESSIONS = [
    "up:1 snapshot:0 restore-cache:0 restore-snapshot:0 failover:cache snapshot:0 restore-cache:1 restart",
    "up:1 promote delete-extra:0 restart write failover:db",
]


class Walk:
    """One stack's life in ``home``, driven through the in-process CLI ``awslab``."""

    def __init__(self, awslab, home: Path) -> None:
        self.awslab, self.home = awslab, home
        self.stack = f"m{uuid.uuid4().hex[:7]}"
        self.up = False
        self.replicas = 0
        self.replica = False          # the stack's read replica is still a replica
        self.rows: list[str] = []     # what the primary holds, in order
        self.snapshots: list[tuple[str, list[str]]] = []   # (id, the rows of its moment)
        self.extras: list[str] = []   # restored or promoted DB instances in the stack
        self.cache_restored = False
        self.taken: list[str] = []    # the steps so far, as REGRESSIONS writes them
        self.count = 0

    # --- the steps: name -> (possible now?, run(arg)) ----------------------------------------------

    def steps(self) -> dict[str, tuple[bool, list[str]]]:
        """Each step, whether it can be taken now, and the arguments it can take."""
        up = self.up
        return {
            "up": (not up, ["0", "1"]),
            "up-again": (up and not self.extras, [""]),
            "write": (up, [""]),
            "snapshot": (up, ["0", "copy"]),
            "restore-snapshot": (up and bool(self.snapshots) and len(self.extras) < MAX_EXTRAS,
                                 [str(i) for i in range(len(self.snapshots))]),
            "restore-latest": (up and len(self.extras) < MAX_EXTRAS, [""]),
            "restore-cache": (up and bool(self.snapshots) and not self.cache_restored,
                              [str(i) for i in range(len(self.snapshots))]),
            "failover": (up, ["db", "cache"]),
            "promote": (up and self.replica and len(self.extras) < MAX_EXTRAS, [""]),
            "delete-extra": (up and bool(self.extras), [str(i) for i in range(len(self.extras))]),
            "restart": (up, [""]),
            "kill": (up, [""]),
            "down": (up, ["keep", "delete"]),
            # Ctrl-C after that many progress lines (a command may finish first: then it is not interrupted).
            "interrupt": (True, [f"{cmd}-{n}" for cmd in (("down", "failover") if up else ("up",)) for n in (2, 6)]),
            "class": (True, [""]),
            "cfn": (True, [""]),
        }

    def take(self, name: str, arg: str) -> None:
        self.taken.append(f"{name}:{arg}" if arg else name)
        getattr(self, "do_" + name.replace("-", "_"))(arg)
        self.check()

    def do_up(self, arg: str) -> None:
        self.replicas = int(arg)
        self.run("up", "week6", "--name", self.stack, "--set", f"database.read_replicas={self.replicas}")
        self.up, self.replica, self.extras, self.cache_restored = True, self.replicas == 1, [], False
        self.psql("db", "CREATE TABLE notes (n serial PRIMARY KEY, t text)")
        self.rows = []
        self.do_write("")

    def do_up_again(self, _: str) -> None:   # a rerun changes nothing
        again = self.run("up", "week6", "--name", self.stack, "--set", f"database.read_replicas={self.replicas}")
        assert "(0 changed)" in again.err + again.out, again.err[-1000:]

    def do_write(self, _: str) -> None:
        self.count += 1
        row = f"row{self.count}"
        self.psql("db", f"INSERT INTO notes (t) VALUES ('{row}')")
        self.rows.append(row)

    def do_snapshot(self, arg: str) -> None:
        time.sleep(1.0)   # snapshot names are to the second
        copy = arg == "copy"
        made = json.loads(self.run("snapshot", "--name", self.stack, "--output", "json",
                                   *(["--copy-to-region", COPY_REGION] if copy else [])).out)
        assert {s["service"] for s in made} == {"db", "cache"}
        assert (COPY_REGION in {s["region"] for s in made}) == copy
        self.snapshots.append((made[0]["id"], list(self.rows)))

    def do_restore_snapshot(self, arg: str) -> None:
        snap, rows = self.snapshots[int(arg) % len(self.snapshots)]
        name = f"{self.stack}-r{len(self.taken)}"
        self.run("restore", snap, "--name", self.stack, "--as", name)
        self.extras.append(name)
        assert self.rows_of(name) == rows   # the rows of the snapshot's moment, no more, no fewer

    def do_restore_latest(self, _: str) -> None:
        name = f"{self.stack}-p{len(self.taken)}"
        self.run("restore", "--to-time", "latest", "--name", self.stack, "--as", name)
        self.extras.append(name)

    def do_restore_cache(self, arg: str) -> None:
        snap, _ = self.snapshots[int(arg) % len(self.snapshots)]
        self.run("restore", snap, "--cache", "--name", self.stack, "--as", f"{self.stack}-c")
        self.cache_restored = True

    def do_failover(self, arg: str) -> None:
        self.run("failover", "--name", self.stack, *(["--cache"] if arg == "cache" else []))

    def do_promote(self, _: str) -> None:
        name = f"{self.stack}-db-replica-1"
        self.run("promote", name, "--name", self.stack)
        self.replica = False
        self.extras.append(name)

    def do_delete_extra(self, arg: str) -> None:
        name = self.extras[int(arg) % len(self.extras)]
        rds = self.client("rds")
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)

        def gone() -> bool:
            try:
                rds.describe_db_instances(DBInstanceIdentifier=name)
            except rds.exceptions.DBInstanceNotFoundFault:
                return True
            return False

        eventually(gone, within_s=60)
        self.extras.remove(name)

    def do_restart(self, _: str) -> None:
        stop = self.run("local", "stop")
        assert "kept for the next start" in stop.out, stop.out
        self.run("local", "start")

    def do_kill(self, _: str) -> None:
        info = self.home / "local" / "server.json"
        if info.exists():
            time.sleep(SAVE_AT_MOST_S + 0.5)   # the most a SIGKILL may lose is the last second
            pid = json.loads(info.read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            eventually(lambda: _dead(pid))
        self.run("local", "start")

    def do_down(self, arg: str) -> None:
        done = self.run("down", "--name", self.stack, "--yes", *(["--delete-snapshots"] if arg == "delete" else []))
        self.up, self.replica, self.rows, self.extras, self.cache_restored = False, False, [], [], False
        left = self.tagged("us-east-1") + self.tagged(COPY_REGION)
        if arg == "delete":
            assert left == [], left
            self.snapshots = []
        else:   # only snapshots, each one down named as kept
            assert all(":snapshot" in a for a in left), left
            assert all(a.rsplit(":", 1)[-1].split("/")[-1] in done.out for a in left), (left, done.out)

    def do_interrupt(self, arg: str) -> None:
        """Ctrl-C once ``n`` progress lines of the command are out, then the command again: what the
        interrupted one said is true, and the rerun converges (checked by the step it reruns)."""
        cmd, n = arg.rsplit("-", 1)
        args = {"up": ["up", "week6", "--name", self.stack, "--set", "database.read_replicas=1"],
                "down": ["down", "--name", self.stack, "--yes"],
                "failover": ["failover", "--name", self.stack]}[cmd]
        lines: list[str] = []
        before = sorted(self.tagged("us-east-1"))
        code, err = interrupt_when(args, lambda line: lines.append(line) is None and len(lines) >= int(n))
        assert code in (0, 130), (code, err[-2000:])
        if code == 130:
            assert "rerun the same command" in err, err[-2000:]
            if "nothing was changed" in err:
                assert sorted(self.tagged("us-east-1")) == before, err[-2000:]
        {"up": lambda: self.do_up("1"), "down": lambda: self.do_down("keep"),
         "failover": lambda: self.do_failover("db")}[cmd]()

    def do_class(self, _: str) -> None:
        """A class of two beside the stack: complete while it stands, nothing left once removed."""
        klass = f"{self.stack}k"
        up = self.run("class", "up", "week6", "--class", klass, "--count", "2", "--concurrency", "2",
                      "--set", "database.read_replicas=0", "--set", "database.multi_az=false", "--output", "json")
        assert [s["result"] for s in json.loads(up.out)["students"]] == ["up", "up"], up.out
        status = json.loads(self.run("class", "status", "--class", klass, "--output", "json").out)["stacks"]
        assert sorted((s["stack"], s["state"]) for s in status) == [(f"{klass}-s01", "complete"),
                                                                    (f"{klass}-s02", "complete")], status
        self.run("class", "down", "--class", klass, "--skip-final-snapshot")
        for student in (f"{klass}-s01", f"{klass}-s02"):
            assert self.tagged("us-east-1", student) == [], student

    def do_cfn(self, _: str) -> None:
        """The lab's exported template deployed and deleted through CloudFormation, as a user would."""
        made = f"{self.stack}f"
        template = self.home.parent / f"{made}.yaml"
        self.run("export", "cloudformation", "week6", "--name", made, "--set", "database.read_replicas=0",
                 "--set", "database.multi_az=false", "-o", str(template))
        cfn, rds, ec = self.client("cloudformation"), self.client("rds"), self.client("elasticache")
        cfn.create_stack(StackName=made, TemplateBody=template.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"])

        eventually(lambda: cloudformation_created(cfn, rds, ec, made, 1), within_s=90)
        cfn.delete_stack(StackName=made)

        def deleted() -> bool:
            stacks = cfn.describe_stacks()["Stacks"]   # a deleted stack is no longer listed by name
            return all(st["StackName"] != made for st in stacks)

        eventually(deleted, within_s=90)
        left = self.tagged("us-east-1", made)
        # DeletionPolicy Snapshot: the primary's final snapshot, and nothing else (a terminated host no longer bills).
        ec2 = self.client("ec2")
        terminated = {f"arn:aws:ec2:us-east-1:123456789012:instance/{i['InstanceId']}"
                      for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])["Reservations"]
                      for i in r["Instances"]}
        left = [a for a in left if a not in terminated]
        assert len(left) == 1 and ":snapshot:" in left[0], left
        rds.delete_db_snapshot(DBSnapshotIdentifier=left[0].rsplit(":", 1)[-1])

    def finish(self) -> None:
        """Remove what the walk left, and check that removing it leaves nothing in any region."""
        if self.up or self.snapshots:
            self.run("down", "--name", self.stack, "--yes", "--delete-snapshots")
        for region in ("us-east-1", COPY_REGION):
            assert self.tagged(region) == [], f"left in {region} after the last down"

    # --- what always holds -------------------------------------------------------------------------

    def check(self) -> None:
        log = self.home / "local" / "server.log"
        assert not (self.home / "local" / "state.unsaved.json").exists()
        assert not log.exists() or "saving the local AWS's state failed" not in log.read_text()
        if self.up:
            assert self.rows_of("db") == self.rows, "the primary lost rows"
        listed = json.loads(self.run("stacks", "--output", "json").out)["stacks"]
        row = next((r for r in listed if r["stack"] == self.stack), None)
        if self.up:
            # A promoted replica leaves the stack short of what its lab wants until `up` makes another.
            want = "partial" if self.replicas and not self.replica else "complete"
            assert row is not None and row["state"] == want, row
            status = json.loads(self.run("status", "--name", self.stack, "--output", "json").out)
            assert len(status["resources"]) == row["resources"], (status, row)
            assert ("db.replica.1" in {r["key"] for r in status["resources"]}) == self.replica
            rds, secrets = self.client("rds"), self.client("secretsmanager")
            arns = [d["MasterUserSecret"]["SecretArn"] for d in rds.describe_db_instances()["DBInstances"]
                    if d.get("MasterUserSecret")]
            assert len(arns) == len(set(arns)), "two DB instances hold one secret"
            for arn in arns:
                secrets.describe_secret(SecretId=arn)   # ResourceNotFoundException if it went
        else:
            assert row is None, row
        known = {e["pid"] for e in engines_of(self.home).values() if e.get("pid")}
        assert set(engine_processes(self.home)) <= known, "an engine process nobody owns"

    # --- helpers ---------------------------------------------------------------------------------

    def run(self, *args: str):
        result = self.awslab(*args)
        assert result.code == 0, f"awslab {' '.join(args)}: exit {result.code}\n{result.err[-2000:]}"
        return result

    def client(self, service: str, region: str = "us-east-1"):
        if not (self.home / "local" / "server.json").exists():   # a step that is the walk's first AWS call
            self.run("local", "start")
        port = json.loads((self.home / "local" / "server.json").read_text())["port"]
        return boto3.client(service, region_name=region, endpoint_url=f"http://127.0.0.1:{port}",
                            **server_keys(self.home))

    def psql(self, target: str, sql: str) -> str:
        line = self.run("connect", target, "--name", self.stack).out.strip()
        return shell(line, "-tAc", f'"{sql}"')

    def rows_of(self, target: str) -> list[str]:
        out = self.psql(target, "SELECT t FROM notes ORDER BY n")
        return out.splitlines() if out else []

    def tagged(self, region: str, stack: str | None = None) -> list[str]:
        tagging = self.client("resourcegroupstaggingapi", region)
        arns = []
        for page in tagging.get_paginator("get_resources").paginate(
                TagFilters=[{"Key": "awslab:stack", "Values": [stack or self.stack]}]):
            arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
        return arns


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def random_walk(walk: Walk, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    taken: Counter = Counter()
    for _ in range(steps):
        possible = {name: args for name, (ok, args) in walk.steps().items() if ok}
        names = sorted(possible)
        name = rng.choices(names, weights=[1 / (1 + taken[n]) ** 2 for n in names])[0]
        taken[name] += 1
        walk.take(name, rng.choice(possible[name]))


def replay(walk: Walk, sequence: list[str]) -> None:
    for step in sequence:
        name, _, arg = step.partition(":")
        ok, _ = walk.steps()[name]
        if ok:   # a step a shorter sequence no longer allows is skipped (shrinking removes its cause)
            walk.take(name, arg)


def _run(awslab, home: Path, play) -> None:
    walk = Walk(awslab, home)
    try:
        play(walk)
        walk.finish()
    except AssertionError as exc:
        failed = list(walk.taken)
        if SHRINK:
            failed = _shrink(awslab, home, failed)
        raise AssertionError(f"{exc}\nthe sequence (a line for REGRESSIONS): {' '.join(failed)!r}") from exc
    finally:
        print(f"\n{walk.stack}: {' '.join(walk.taken)}")


def _shrink(awslab, home: Path, sequence: list[str]) -> list[str]:
    """The shortest sequence found, removing one step at a time, that still fails."""
    i = len(sequence) - 1
    while i >= 0:
        shorter = sequence[:i] + sequence[i + 1:]
        walk = Walk(awslab, home)
        try:
            replay(walk, shorter)
            walk.finish()
        except AssertionError:
            sequence = shorter
        i -= 1
    return sequence


@pytest.fixture
def model_home(aws_sandbox, monkeypatch):
    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "on")
    yield aws_sandbox
    engines_of(aws_sandbox, stop=True)


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
def test_a_random_walk_of_commands_loses_leaks_and_misreports_nothing(awslab, model_home, seed):
    _run(awslab, model_home, lambda walk: random_walk(walk, seed, STEPS))


@pytest.mark.parametrize("sequence", REGRESSIONS)
def test_a_sequence_that_once_failed(awslab, model_home, sequence):
    _run(awslab, model_home, lambda walk: replay(walk, sequence.split()))
