"""State you can trust, tried as a new user would, each with a real local AWS and real engines of
its own: the stacks and their data survive `local stop`/`start` and a SIGKILL of the server; a
stale or corrupt server.json never starts a second server nor loses a stack; a server killed
during `up` is recovered from and the rerun completes; one mutating command per stack at a time;
`local reset` is the one way to throw it all away.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import engine_processes, engines_of, eventually, shell

from awslab.local.engines import pid_alive
from awslab.local.persistence import SAVE_AT_MOST_S

pytestmark = [pytest.mark.lifecycle, pytest.mark.engines]


@pytest.fixture
def home(aws_sandbox, monkeypatch):
    """This test's own local AWS (started by the first command), engines on."""
    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "on")
    yield aws_sandbox
    engines_of(aws_sandbox, stop=True)


def _server_pid(home: Path) -> int:
    return json.loads((home / "local" / "server.json").read_text())["pid"]


# week6's engines: the primary, its Multi-AZ standby, the read replica, the cache's two nodes.
WEEK6_ENGINES = 5


def _resources(awslab, stack: str) -> list[tuple]:
    status = awslab("status", "--name", stack, "--output", "json")
    assert status.code == 0, status.err
    return sorted((r["key"], r["id"], r.get("endpoint")) for r in json.loads(status.out)["resources"])


def _write_data(awslab, stack: str) -> tuple[str, str]:
    db = awslab("connect", "db", "--name", stack).out.strip()
    cache = awslab("connect", "cache", "--name", stack).out.strip()
    shell(db, "-c", "\"CREATE TABLE notes (t text); INSERT INTO notes VALUES ('kept')\"")
    assert shell(cache, "SET", "greeting", "hello") == "OK"
    return db, cache


def _read_data(awslab, stack: str) -> tuple[str, str, str]:
    db = awslab("connect", "db", "--name", stack).out.strip()
    replica = awslab("connect", "replica", "--name", stack).out.strip()
    cache = awslab("connect", "cache", "--name", stack).out.strip()
    return (shell(db, "-tAc", "'SELECT t FROM notes'"), shell(replica, "-tAc", "'SELECT t FROM notes'"),
            shell(cache, "GET", "greeting"))


def test_local_stop_start__every_stack_comes_back_with_its_ids_endpoints_and_data(awslab, home, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    before = _resources(awslab, stack)
    _write_data(awslab, stack)
    address = json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)["local_address"]
    engines = engines_of(home)
    dirs = [Path(e["dir"]) for e in engines.values()]
    assert len(engines) == WEEK6_ENGINES and all(pid_alive(e["pid"]) for e in engines.values())

    stop = awslab("local", "stop")
    assert stop.code == 0 and "kept" in stop.out, stop.err
    eventually(lambda: not any(pid_alive(e["pid"]) for e in engines.values()))
    assert all(d.exists() for d in dirs) and (home / "local" / "state.pickle").stat().st_mode & 0o777 == 0o600

    start = awslab("local", "start")
    assert start.code == 0, start.err
    assert _resources(awslab, stack) == before
    assert _read_data(awslab, stack) == ("kept", "kept", "hello")
    # The endpoint's local address is the same: a learner's psql line still works.
    assert json.loads(awslab("connect", "db", "--name", stack, "--output", "json").out)["local_address"] == address
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out

    # `local reset` is the one way to throw it all away.
    reset = awslab("local", "reset", "--yes")
    assert reset.code == 0, reset.err
    assert not any(d.exists() for d in dirs) and not (home / "local" / "state.pickle").exists()
    assert engine_processes(home) == []
    assert "no primary DB" in awslab("connect", "db", "--name", stack).err


def test_local_reset__asks_first_and_refuses_without_a_terminal(awslab, home):
    refused = awslab("local", "reset")
    assert refused.code == 2 and "--yes" in refused.err


def test_sigkill_of_the_server__the_next_command_says_so_and_brings_everything_back(awslab, home, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    before = _resources(awslab, stack)
    _write_data(awslab, stack)
    time.sleep(SAVE_AT_MOST_S + 0.5)   # the most a change waits to be saved, and the save itself
    os.kill(_server_pid(home), signal.SIGKILL)
    status = awslab("status", "--name", stack)
    assert status.code == 0, status.err
    assert "is not running" in status.err and "saved state" in status.err
    assert _resources(awslab, stack) == before
    assert _read_data(awslab, stack) == ("kept", "kept", "hello")
    # The engines the killed server left running were adopted, not duplicated.
    assert len(engine_processes(home)) == WEEK6_ENGINES


@pytest.mark.parametrize("damage", ["corrupt", "stale"])
def test_a_damaged_server_json__never_a_second_server_nor_a_lost_stack(awslab, home, stack, damage):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    before = _resources(awslab, stack)
    pid = _server_pid(home)
    info = home / "local" / "server.json"
    if damage == "corrupt":
        info.write_text('{"pid": ')
    else:
        info.write_text(json.dumps({**json.loads(info.read_text()), "pid": 1, "port": 9, "token": "old"}))

    status = awslab("status", "--name", stack)
    assert status.code == 0, status.err
    assert f"was {damage if damage == 'stale' else 'unreadable'}" in status.err and f"(pid {pid})" in status.err
    assert _server_pid(home) == pid and _resources(awslab, stack) == before

    info.write_text("garbage")
    stop = awslab("local", "stop")
    assert stop.code == 0 and f"pid {pid}" in stop.out
    eventually(lambda: not pid_alive(pid))
    assert engine_processes(home) == []
    assert _resources(awslab, stack) == before   # started again, from the saved state


def test_a_second_server_in_the_same_home_refuses_to_start(awslab, home):
    assert awslab("local", "start").code == 0
    done = subprocess.run([sys.executable, "-m", "awslab.local.server", "--state-dir", str(home / "local")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "another local AWS already serves" in done.stdout


def test_sigkill_of_the_server_during_up__the_rerun_completes_and_verify_passes(awslab, home, stack, monkeypatch):
    assert awslab("local", "start").code == 0
    pid = _server_pid(home)
    # Kill it once the database exists (the engines are being made): `up` fails saying what happened.
    killer = threading.Thread(target=_kill_when_db_exists, args=(home, stack, pid), daemon=True)
    killer.start()
    first = awslab("up", "week6", "--name", stack)
    killer.join(timeout=60)
    assert first.code != 0 and "the local AWS stopped answering" in first.err
    rerun = awslab("up", "week6", "--name", stack)
    assert rerun.code == 0, rerun.err
    assert "is not running" in rerun.err
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out
    # No engine is left over from the killed server: four, each the registry's.
    registered = {e["pid"] for e in engines_of(home).values()}
    assert set(engine_processes(home)) == registered and len(registered) == WEEK6_ENGINES


def _kill_when_db_exists(home: Path, stack: str, pid: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(k.endswith(f"{stack}-db") for k in engines_of(home)):
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def test_two_ups_of_one_stack__one_waits_naming_the_other_and_verify_passes(awslab, home, stack):
    assert awslab("local", "start").code == 0
    results = {}

    def run(name):
        results[name] = subprocess.run([sys.executable, "-m", "awslab", "up", "week6", "--name", stack],
                                       capture_output=True, text=True, timeout=300, env=dict(os.environ))

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results.values()), {n: r.stderr[-800:] for n, r in results.items()}
    waited = [r for r in results.values() if "is busy: `awslab up` (pid" in r.stderr]
    assert len(waited) == 1
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out
    assert len(engines_of(home)) == WEEK6_ENGINES


def test_no_wait__exits_1_naming_the_holder_and_read_only_commands_never_wait(awslab, home, stack):
    from awslab.engine.locks import stack_lock

    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    with stack_lock("local", "us-east-1", stack, "down"):
        refused = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0", "--no-wait")
        assert refused.code == 1 and f"stack {stack} is busy: `awslab down` (pid {os.getpid()}" in refused.err
        assert awslab("down", "--name", stack, "--no-wait", "--yes").code == 1
        assert awslab("status", "--name", stack).code == 0
        assert awslab("verify", "--name", stack).code == 0
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot", "--no-wait").code == 0


def test_ctrl_c_while_waiting_for_the_stack__nothing_was_changed(awslab, home, stack):
    from conftest import interrupt_when

    from awslab.engine.locks import stack_lock

    assert awslab("local", "start").code == 0
    with stack_lock("local", "us-east-1", stack, "down"):
        code, err = interrupt_when(["up", "week6", "--name", stack], lambda line: "is busy" in line)
    assert code == 130 and "nothing was changed" in err
    assert json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"] == []


def test_an_engine_killed_on_a_running_server__up_brings_it_back_on_its_data(awslab, home, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    _write_data(awslab, stack)
    engines = engines_of(home)
    killed = {k: e["pid"] for k, e in engines.items() if k.endswith((f"{stack}-db", f"{stack}-cache-001"))}
    assert len(killed) == 2
    time.sleep(1.5)   # Redis saves within a second of a change (redis.conf `save 1 1`); PostgreSQL at commit
    for pid in killed.values():
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: not any(pid_alive(p) for p in killed.values()))
    assert awslab("verify", "--name", stack, "--check", "live").code == 1   # the data plane is down
    # Someone took the primary's port meanwhile: it comes back elsewhere, and its running replica
    # must follow it there.
    db_key = next(k for k in killed if k.endswith("-db"))
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # the killed server's connections linger
    squatter.bind(("127.0.0.1", engines[db_key]["port"]))
    squatter.listen()
    try:
        up = awslab("up", "week6", "--name", stack)
    finally:
        squatter.close()
    assert up.code == 0 and "(0 changed)" in up.err, up.err
    assert engines_of(home)[db_key]["port"] != engines[db_key]["port"]
    eventually(lambda: all(engines_of(home)[k].get("status") == "available" for k in killed))
    assert all(engines_of(home)[k]["pid"] != pid for k, pid in killed.items())
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out
    assert _read_data(awslab, stack) == ("kept", "kept", "hello")


def test_up_racing_down__one_waits_and_the_stack_is_cleanly_gone(awslab, home, stack):
    # The DB's deletion lasts 4 s, so down still holds the stack when up (a process starting) asks for it.
    assert awslab("local", "start", "--latency", "rds.delete=4").code == 0
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    results = {}

    def run(name, *args):
        results[name] = subprocess.run([sys.executable, "-m", "awslab", *args], capture_output=True, text=True,
                                       timeout=300, env=dict(os.environ))

    down = threading.Thread(target=run, args=("down", "down", "--name", stack, "--yes", "--skip-final-snapshot"))
    up = threading.Thread(target=run, args=("up", "up", "week6", "--name", stack, "--set", "database.read_replicas=0"))
    from awslab.engine.locks import lock_path

    lock = lock_path("local", "us-east-1", stack)
    down.start()
    # up starts once down holds the stack's lock (down writes its name into the lock file), not after
    # a fixed pause that a loaded machine can outlast before down's process has even started.
    eventually(lambda: lock.exists() and b'"command": "down"' in lock.read_bytes(), within_s=60)
    up.start()
    down.join()
    up.join()
    assert results["down"].returncode == 0, results["down"].stderr[-800:]
    assert results["up"].returncode == 0, results["up"].stderr[-800:]
    assert "is busy: `awslab down` (pid" in results["up"].stderr
    # The up ran after the down: the stack is whole again, and verify passes.
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out


def test_a_transition_in_flight_resumes_on_the_saved_timeline(awslab, aws_sandbox, monkeypatch):
    """A DB `creating` when the local AWS stops is still on its way when it starts again (its
    latency profile is kept with the state) and becomes available when its time is up."""
    import boto3
    from conftest import server_keys

    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "off")
    assert awslab("local", "start", "--latency", "rds.create=12").code == 0
    info = json.loads((aws_sandbox / "local" / "server.json").read_text())

    def rds():
        port = json.loads((aws_sandbox / "local" / "server.json").read_text())["port"]
        return boto3.client("rds", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            **server_keys(aws_sandbox))

    # The timeline starts when the server takes the request, so no earlier than this; a loaded
    # machine's answer can come a second or more after that (a CI run's once did).
    started = time.monotonic()
    rds().create_db_instance(DBInstanceIdentifier="inflight", Engine="postgres", EngineVersion="16",
                             DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="labadmin",
                             ManageMasterUserPassword=True)
    time.sleep(SAVE_AT_MOST_S + 0.5)
    assert awslab("local", "stop").code == 0
    restart = awslab("local", "start")
    assert restart.code == 0 and "latency instant {'rds.create': 12.0}" in restart.out   # the profile came back too
    assert json.loads((aws_sandbox / "local" / "server.json").read_text())["pid"] != info["pid"]
    # Still on its way: in one of rds.create's phases (creating 9.3 s, then backing-up 2.7 s of the
    # 12), whichever a loaded machine's stop and start took it to; `available` only if the stop and
    # the start outlasted the rest of the 12 s (the timeline goes on while the server is down, as
    # AWS's time does: a loaded CI's restart once did), never before.
    status = rds().describe_db_instances(DBInstanceIdentifier="inflight")["DBInstances"][0]["DBInstanceStatus"]
    asked = time.monotonic() - started   # at most this much timeline had passed when the server answered
    assert status in ("creating", "backing-up") or (status == "available" and asked >= 12 - 0.5), (status, asked)
    eventually(lambda: rds().describe_db_instances(DBInstanceIdentifier="inflight")["DBInstances"][0]
               ["DBInstanceStatus"] == "available", within_s=25)
    assert time.monotonic() - started >= 12 - 0.5   # not before its time


def test_a_save_that_fails__every_command_says_so_and_stop_never_claims_the_data_is_kept(awslab, aws_sandbox,
                                                                                          monkeypatch):
    """A save that cannot be written (here its file is taken by a directory, as a full disk or a
    state pickle refuses) is not silent: every command warns with the cause and the log, `local
    status` shows it, `local stop` exits 1 saying what is lost, and what was saved before is what
    the next start loads; a later good save clears the warning."""
    import boto3
    from conftest import server_keys

    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "off")
    assert awslab("local", "start").code == 0
    port = json.loads((aws_sandbox / "local" / "server.json").read_text())["port"]
    ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       **server_keys(aws_sandbox))
    kept = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    state = aws_sandbox / "local" / "state.pickle"
    eventually(state.exists)
    time.sleep(SAVE_AT_MOST_S + 0.5)
    saved = state.read_bytes()
    state.unlink()
    (state / "blocker").mkdir(parents=True)   # the next save's rename fails
    lost = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    unsaved = aws_sandbox / "local" / "state.unsaved.json"
    eventually(unsaved.exists, within_s=SAVE_AT_MOST_S + 5)

    status = awslab("status", "--name", "nothing-here")
    assert "warning: the local AWS has not been able to save its state since" in status.err, status.err
    assert "IsADirectoryError" in status.err and str(aws_sandbox / "local" / "server.log") in status.err
    assert "a stop or a crash keeps only the state saved at" in status.err
    assert "WARNING: the local AWS has not been able to save" in awslab("local", "status").out

    stop = awslab("local", "stop")
    assert stop.code == 1 and "changes made after that are lost" in stop.err, (stop.out, stop.err)
    assert "kept for the next start" not in stop.out + stop.err
    # What the server last saved is untouched (a failed save writes no part of a state).
    (state / "blocker").rmdir()
    state.rmdir()
    state.write_bytes(saved)
    state.chmod(0o600)
    assert awslab("local", "start").code == 0
    assert not unsaved.exists()   # the new server starts from what was kept
    port = json.loads((aws_sandbox / "local" / "server.json").read_text())["port"]
    ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                       **server_keys(aws_sandbox))
    vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert kept in vpcs and lost not in vpcs
    ec2.create_vpc(CidrBlock="10.3.0.0/16")
    time.sleep(SAVE_AT_MOST_S + 0.5)
    after = awslab("status", "--name", "nothing-here")
    assert "not been able to save" not in after.err
    stop = awslab("local", "stop")
    assert stop.code == 0 and "kept for the next start" in stop.out


def test_a_stack_delete_in_flight_goes_on_after_a_restart(awslab, aws_sandbox, monkeypatch):
    """A CloudFormation stack whose delete was under way when the local AWS stopped is deleted
    when it starts again, as CloudFormation goes on with it; it was left DELETE_IN_PROGRESS for
    good, with its security group (and anything else still to delete) kept."""
    import boto3
    from conftest import server_keys

    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "off")
    assert awslab("local", "start", "--latency", "rds.delete=4").code == 0

    def client(service: str):
        port = json.loads((aws_sandbox / "local" / "server.json").read_text())["port"]
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            **server_keys(aws_sandbox))

    vpc = client("ec2").create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    template = {"Resources": {
        "Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "db", "VpcId": vpc}},
        "Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Delete", "Properties": {
            "DBInstanceIdentifier": "midway", "Engine": "postgres", "EngineVersion": "16",
            "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20", "MasterUsername": "labadmin",
            "MasterUserPassword": "a-long-password-1", "VPCSecurityGroups": [{"Fn::GetAtt": ["Group", "GroupId"]}]}}}}
    client("cloudformation").create_stack(StackName="midway", TemplateBody=json.dumps(template))
    eventually(lambda: client("cloudformation").describe_stacks(StackName="midway")["Stacks"][0]["StackStatus"]
               == "CREATE_COMPLETE")
    group = next(r["PhysicalResourceId"] for r in
                 client("cloudformation").describe_stack_resources(StackName="midway")["StackResources"]
                 if r["LogicalResourceId"] == "Group")
    client("cloudformation").delete_stack(StackName="midway")
    time.sleep(SAVE_AT_MOST_S + 0.5)   # the DB `deleting`, the group waiting for it, all saved
    assert awslab("local", "stop").code == 0
    restart = awslab("local", "start")
    assert restart.code == 0

    def stack_status() -> str:
        listed = [s["StackStatus"] for s in client("cloudformation").list_stacks()["StackSummaries"]
                  if s["StackName"] == "midway"]
        return listed[0] if listed else "<none>"

    eventually(lambda: stack_status() == "DELETE_COMPLETE", within_s=20)
    assert not client("ec2").describe_security_groups(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroups"]
    assert not [d for d in client("rds").describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"] == "midway"]
    assert "CloudFormation deletes resumed: midway" in (aws_sandbox / "local" / "server.log").read_text()
