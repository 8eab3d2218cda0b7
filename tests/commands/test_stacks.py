"""Every stack at a glance, owners and expiry, the sweeper, classes, and acting on a stack from its
tags alone: against real local AWS servers (the shared one, a private one for the sweeper, one
with engines for the class and the empty-home case)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import interrupt_when, point_at, private_server

from awslab.spec import pricing

pytestmark = pytest.mark.lifecycle


def _stacks(awslab) -> dict:
    out = awslab("stacks", "--output", "json")
    assert out.code == 0, out.err
    return json.loads(out.out)


@pytest.fixture
def own_server(tmp_path, aws_sandbox):
    """A local AWS of this test's own: `stacks` lists every stack of a server, and the shared one
    holds every earlier test's."""
    with private_server(tmp_path / "server") as server:
        point_at(tmp_path / "server", aws_sandbox)
        yield server


def test_stacks__owner_expiry_state_cost_now_and_the_snapshots_of_stacks_gone(awslab, own_server, stack, api_calls):
    a, b = f"{stack}-a", f"{stack}-b"
    assert awslab("up", "week6", "--name", a, "--owner", "ada@example.com", "--ttl", "2h").code == 0
    assert awslab("up", "week6", "--name", b, "--set", "database.read_replicas=0").code == 0
    rows = {r["stack"]: r for r in _stacks(awslab)["stacks"]}
    ra, rb = rows[a], rows[b]
    assert ra["lab"] == "week6" and ra["owner"] == "ada@example.com" and ra["state"] == "complete"
    assert ra["expires"] and ra["time_left"].endswith("left") and ra["time_left"].startswith(("1h59m", "2h00m"))
    assert rb["expires"] is None and rb["owner"]   # the caller, when none was given
    assert ra["resources"] == rb["resources"] + 1   # the read replica
    # Priced from what exists: the replica's hourly price is the difference.
    assert ra["estimated_hourly_usd"] - rb["estimated_hourly_usd"] == pytest.approx(
        pricing.RDS_HOURLY["postgres"]["db.t3.micro"] + 20 * pricing.RDS_STORAGE_GB_MONTH["gp3"] / pricing.HOURS_PER_MONTH,
        abs=1e-3)
    text = awslab("status", "--name", a)
    assert "owner ada@example.com" in text.out and "left); `awslab sweep` removes it after that" in text.out

    assert awslab("down", "--name", b, "--yes").code == 0
    api_calls.clear()
    listing = _stacks(awslab)
    assert b not in {r["stack"] for r in listing["stacks"]}
    # Only the live stack is discovered (one DescribeInstances, one DescribeDBInstances): b left
    # nothing but its final snapshot, which is still listed.
    assert (api_calls.count(("ec2", "DescribeInstances")), api_calls.count(("rds", "DescribeDBInstances"))) == (1, 1)
    orphans = [s for s in listing["orphaned_snapshots"] if s["stack"] == b]
    assert [s["id"].startswith(f"{b}-db-final-") for s in orphans] == [True]
    assert orphans[0]["monthly_usd"] == pytest.approx(20 * pricing.RDS_SNAPSHOT_GB_MONTH)
    text = awslab("stacks").out
    assert "snapshots of stacks that no longer exist" in text and orphans[0]["id"] in text
    assert awslab("down", "--name", a, "--yes", "--delete-snapshots").code == 0
    assert awslab("down", "--name", b, "--yes", "--delete-snapshots").code == 0


@pytest.mark.parametrize("args, says", [
    (["--ttl", "0m"], "is no time at all"),
    (["--ttl", "soon"], "is not a duration"),
    (["--expires-at", "tomorrow"], "is not an RFC 3339 time"),
    (["--expires-at", "2026-12-03T18:00:00"], "with a zone"),
    (["--expires-at", "2020-01-01T00:00:00Z"], "is in the past"),
    (["--ttl", "1h", "--expires-at", "2099-01-01T00:00:00Z"], "both given"),
])
def test_bad_expiry__exit_2_one_line_nothing_made(awslab, local, stack, aws, args, says):
    out = awslab("up", "week6", "--name", stack, *args)
    assert out.code == 2 and says in out.err and len(out.err.strip().splitlines()) <= 2
    assert aws("ec2").describe_vpcs(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Vpcs"] == []


def _cli(*args: str, home: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "awslab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "AWSLAB_HOME": str(home)})


def test_sweep__removes_only_expired_stacks_keeps_their_final_snapshot_and_two_at_once_do_no_harm(
        awslab, own_server, aws_sandbox):
    for name, args in (("soon", ["--ttl", "1s"]), ("later", ["--ttl", "2h"]), ("never", [])):
        assert awslab("up", "week6", "--name", name, "--set", "database.read_replicas=0", *args).code == 0
    time.sleep(1.5)
    dry = awslab("sweep", "--dry-run", "--output", "json")
    assert dry.code == 0
    assert [(r["stack"], r["action"]) for r in json.loads(dry.out)["results"]] == [("soon", "would remove")]
    assert {r["stack"] for r in _stacks(awslab)["stacks"]} == {"soon", "later", "never"}

    both = [_cli("sweep", "--output", "json", home=aws_sandbox) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in both]
    assert [p.returncode for p in both] == [0, 0], [o[1] for o in outs]
    actions = [r["action"] for o in outs for r in json.loads(o[0])["results"]]
    # One removed it; the other found it claimed by the first, or (started later) not due any more.
    assert actions.count("removed") == 1, actions
    assert all(a == "removed" or a.startswith("skipped: being removed by ") for a in actions), actions
    listing = _stacks(awslab)
    assert {r["stack"] for r in listing["stacks"]} == {"later", "never"}
    finals = [s["id"] for s in listing["orphaned_snapshots"] if s["stack"] == "soon"]
    assert len(finals) == 1 and finals[0].startswith("soon-db-final-")
    assert json.loads(awslab("sweep", "--output", "json").out)["results"] == []   # nothing due: a no-op

    # Old snapshots go only when asked, and only snapshots.
    time.sleep(1.1)
    old = awslab("sweep", "--snapshots-older-than", "1s", "--output", "json")
    assert old.code == 0
    assert [(r["kind"], r["snapshot"], r["action"]) for r in json.loads(old.out)["results"]] == [
        ("snapshot", finals[0], "deleted")]
    assert _stacks(awslab)["orphaned_snapshots"] == []
    assert awslab("sweep", "--snapshots-older-than", "forever").code == 2


def test_class_roster__every_name_checked_before_anything_is_made(awslab, local, aws, tmp_path):
    klass = f"c{uuid.uuid4().hex[:6]}"
    roster = tmp_path / "students.csv"
    roster.write_text("student,owner\nada,ada@example.com\nBob Smith,bob@example.com\n")
    out = awslab("class", "up", "week6", "--class", klass, "--roster", str(roster))
    assert out.code == 2 and "student 'Bob Smith' does not make a valid stack name" in out.err and ":3:" in out.err
    roster.write_text("student\nada\nada\n")
    assert "listed twice" in awslab("class", "up", "week6", "--class", klass, "--roster", str(roster)).err
    roster.write_text("name\nada\n")
    assert "no 'student' column" in awslab("class", "up", "week6", "--class", klass, "--roster", str(roster)).err
    assert awslab("class", "up", "week6", "--class", klass).code == 2   # neither --count nor --roster
    assert "out of range" in awslab("class", "up", "week6", "--class", klass, "--count", "3", "--concurrency", "0").err
    assert aws("ec2").describe_vpcs(Filters=[{"Name": "tag:awslab:class", "Values": [klass]}])["Vpcs"] == []


def test_class_up__a_command_without_name_still_acts_on_the_users_own_stack(awslab, local):
    """`class up` runs each student's `up` with --name (3 students, 2 at a time: the third forked by
    the launcher): none of them becomes the stack a command without --name acts on, so an
    instructor's `down --yes` after a class removes their own stack, never a student's."""
    own = f"own{uuid.uuid4().hex[:6]}"
    assert awslab("up", "week6", "--name", own, "--set", "database.read_replicas=0").code == 0
    klass = f"c{uuid.uuid4().hex[:6]}"
    up = awslab("class", "up", "week6", "--class", klass, "--count", "3", "--concurrency", "2",
                "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    assert json.loads(awslab("status", "--output", "json").out)["stack"] == own
    down = awslab("down", "--yes", "--skip-final-snapshot", "--output", "json")
    assert down.code == 0 and json.loads(down.out)["stack"] == own, down.err
    rows = {r["stack"]: r["state"] for r in _stacks(awslab)["stacks"] if r["stack"].startswith(klass)}
    assert rows == {f"{klass}-s0{i}": "complete" for i in (1, 2, 3)}
    assert awslab("class", "down", "--class", klass, "--skip-final-snapshot").code == 0


def test_class_up_interrupted__says_who_finished_and_a_rerun_converges(awslab, local, latency):
    """Ctrl-C during `class up`: the running student's `up` is interrupted too, the error says who
    finished, who stopped part-way and who never began (never "nothing was changed"), a stack
    missing resources is never called complete, and a rerun finishes the class."""
    klass = f"c{uuid.uuid4().hex[:6]}"
    latency("realistic", 0.01)   # each `up` takes a few seconds: one is running when Ctrl-C comes
    args = ["class", "up", "week6", "--class", klass, "--count", "3", "--concurrency", "1",
            "--set", "database.read_replicas=0"]
    code, err = interrupt_when(args, lambda line: f"({klass}-s01): ok" in line)
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    # What the message says agrees with what exists (how far the running student got before the
    # interrupt reached it depends on this machine's load; that someone was cut short does not).
    said = re.match(r"error: interrupted: (\d) of 3 stacks finished their `up`(?:; \d stopped part-way or failed "
                    r"\(([^)]*)\))?(?:; (\d) never began)?", last)
    assert said and int(said[1]) < 3, last
    assert "nothing was changed" not in err and "`awslab class status` shows what exists" in last
    stopped = said[2].split(", ") if said[2] else []
    assert int(said[1]) + len(stopped) + int(said[3] or 0) == 3, last
    rows = {r["stack"]: r["state"] for r in _stacks(awslab)["stacks"] if r["stack"].startswith(klass)}
    assert rows[f"{klass}-s01"] == "complete"
    for name in stopped:
        assert rows.get(name) in (None, "partial"), rows   # whatever it made, never "complete"
    assert len([n for n, state in rows.items() if state == "complete"]) == int(said[1]), (rows, last)
    latency("instant")
    again = awslab(*args)
    assert again.code == 0, again.err
    rows = {r["stack"]: r["state"] for r in _stacks(awslab)["stacks"] if r["stack"].startswith(klass)}
    assert rows == {f"{klass}-s0{i}": "complete" for i in (1, 2, 3)}
    assert awslab("class", "down", "--class", klass, "--skip-final-snapshot").code == 0


@pytest.mark.engines
def test_class__up_break_two_grade_them_rerun_converges_down_leaves_final_snapshots(awslab, engines, tmp_path):
    import boto3

    klass = f"c{uuid.uuid4().hex[:6]}"
    roster = tmp_path / "students.csv"
    roster.write_text("student,owner,ttl\nada,ada@example.com,3h\nbob,bob@example.com,\ncyd,,\n")
    up = awslab("class", "up", "week6", "--class", klass, "--roster", str(roster), "--concurrency", "3",
                "--set", "database.read_replicas=0", "--ttl", "1h", "--output", "json")
    assert up.code == 0, up.err
    assert [(s["student"], s["result"]) for s in json.loads(up.out)["students"]] == [
        ("ada", "up"), ("bob", "up"), ("cyd", "up")]
    assert sum(1 for line in up.err.splitlines() if f"({klass}-" in line and "): ok in" in line) == 3   # one line each
    status = json.loads(awslab("class", "status", "--output", "json").out)   # the class is remembered
    by = {s["stack"]: s for s in status["stacks"]}
    assert set(by) == {f"{klass}-ada", f"{klass}-bob", f"{klass}-cyd"}
    assert by[f"{klass}-ada"]["owner"] == "ada@example.com" and by[f"{klass}-ada"]["time_left"].startswith("2h59m")
    assert by[f"{klass}-bob"]["time_left"].startswith("59m") and all(s["state"] == "complete" for s in by.values())

    keys = {k: v for k, v in os.environ.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                       aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                       aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [f"{klass}-ada"]}])["SecurityGroups"]}
    ec2.revoke_security_group_ingress(GroupId=groups[f"{klass}-ada-cache"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": groups[f"{klass}-ada-app"]}]}])
    rds.modify_db_instance(DBInstanceIdentifier=f"{klass}-bob-db", MultiAZ=False, ApplyImmediately=True)

    grades = tmp_path / "grades.csv"
    verify = awslab("class", "verify", "--csv", str(grades), "--output", "json")
    assert verify.code == 1
    sheet = {s["student"]: s for s in json.loads(verify.out)["students"]}
    assert {n: s["grade"] for n, s in sheet.items()} == {"ada": "FAIL", "bob": "FAIL", "cyd": "PASS"}, verify.out[-6000:]
    # Paper and practice agree: the path is judged closed and a real connection from the host times out.
    assert [f.split(":")[0] for f in sheet["ada"]["failures"]] == ["path.app-to-cache", "live.host-to-cache"]
    assert [f.split(":")[0] for f in sheet["bob"]["failures"]] == ["spec.db.multi-az"]
    assert sheet["ada"]["path"].endswith("/1") and sheet["bob"]["spec"].endswith("/1") and sheet["cyd"]["failed"] == 0
    assert sheet["cyd"]["live"] and sheet["cyd"]["live"].endswith("/0") and not sheet["cyd"]["live"].startswith("0/")
    rows = list(csv.DictReader(grades.open()))
    assert [(r["student"], r["grade"]) for r in rows] == [("ada", "FAIL"), ("bob", "FAIL"), ("cyd", "PASS")]
    assert "path.app-to-cache" in rows[0]["failures"] and rows[2]["failures"] == ""
    text = awslab("class", "verify").out
    assert "1 of 3 pass every check" in text

    again = awslab("class", "up", "week6", "--class", klass, "--roster", str(roster), "--set", "database.read_replicas=0",
                   "--ttl", "1h")
    assert again.code == 0   # converges: the two broken labs are repaired
    regraded = json.loads(awslab("class", "verify", "--output", "json").out)["students"]
    assert [s["grade"] for s in regraded] == ["PASS"] * 3

    down = awslab("class", "down", "--output", "json")
    assert down.code == 0 and [s["result"] for s in json.loads(down.out)["students"]] == ["removed"] * 3
    listing = _stacks(awslab)
    assert not [r for r in listing["stacks"] if r["stack"].startswith(klass)]
    finals = sorted(s["stack"] for s in listing["orphaned_snapshots"] if s["stack"].startswith(klass))
    assert finals == [f"{klass}-ada", f"{klass}-bob", f"{klass}-cyd"]
    assert awslab("class", "down").code == 0   # nothing left: a quiet success
    for s in listing["orphaned_snapshots"]:
        if s["stack"].startswith(klass):
            rds.delete_db_snapshot(DBSnapshotIdentifier=s["id"])


@pytest.mark.engines
def test_a_stack_from_its_tags_alone__verify_status_and_down_from_an_empty_home(awslab, engines, stack, tmp_path,
                                                                              monkeypatch):
    made = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0", "--owner", "ada@example.com")
    assert made.code == 0, made.err
    elsewhere = tmp_path / "another-machine"
    monkeypatch.setenv("AWSLAB_HOME", str(elsewhere))   # no state, no record of the stack
    target = ["--target", "aws", "--endpoint-url", engines.endpoint_url]
    verify = awslab("verify", "--name", stack, *target, "--output", "json")
    assert verify.code == 0, [r for r in json.loads(verify.out) if r["status"] == "FAIL"]
    results = {r["id"]: r["status"] for r in json.loads(verify.out)}
    # The --set of the `up` came from the tags: no replica expected; and the real engines were checked.
    assert results["live.host-to-db"] == "PASS" and "live.db.replica.1" not in results
    assert "owner ada@example.com" in awslab("status", "--name", stack, *target).out
    assert awslab("down", "--name", stack, *target, "--yes", "--delete-snapshots").code == 0
