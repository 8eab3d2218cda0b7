"""Local AWSes forked from the prepared process (awslab.local.forkserver), as the suite starts them:
each one a process of its own (its state, its lock, its exit code), and a caller the fork server
cannot serve gets a process started the ordinary way."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import boto3
import pytest
from conftest import _home, private_server, server_keys

from awslab.local import forkserver as fs
from awslab.local import manager
from awslab.local.processes import parent_pid, pid_alive
from awslab.local.server import EXIT_LOCKED

pytestmark = [pytest.mark.lifecycle]


def _ec2(server, home):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=server.endpoint_url, **server_keys(home))


def test_forked__each_local_aws_is_a_process_of_its_own_with_its_own_state(forkserver, tmp_path):
    with private_server(tmp_path / "a") as a, private_server(tmp_path / "b") as b:
        assert parent_pid(a.pid) == parent_pid(b.pid) == forkserver["pid"] and a.pid != b.pid
        vpc = _ec2(a, tmp_path / "a").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        seen_by_b = {v["VpcId"] for v in _ec2(b, tmp_path / "b").describe_vpcs()["Vpcs"]}
        assert vpc not in seen_by_b   # the sibling forked from the same image holds none of it
        with urllib.request.urlopen(f"{a.endpoint_url}/awslab/health", timeout=10) as health:
            assert json.loads(health.read())["dir"] == str((tmp_path / "a" / "local").resolve())
    assert not pid_alive(a.pid) and not pid_alive(b.pid)
    # A restart of the home is forked too, and loads what the first one saved.
    with private_server(tmp_path / "a") as again:
        assert again.pid != a.pid and parent_pid(again.pid) == forkserver["pid"]
        assert vpc in {v["VpcId"] for v in _ec2(again, tmp_path / "a").describe_vpcs()["Vpcs"]}


def test_forked__a_second_server_for_a_held_home_exits_locked_and_says_so(forkserver, tmp_path):
    with private_server(tmp_path / "h") as running:
        with _home(tmp_path / "h"):
            ldir = manager.local_dir()
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}   # as the manager asks
        second = fs.spawn(["--state-dir", str(ldir), "--engines", "off"], env, tmp_path / "second.log")
        assert second is not None
        deadline = time.monotonic() + 30
        while second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.returncode == EXIT_LOCKED
        assert f"another local AWS already serves {ldir}" in (tmp_path / "second.log").read_text()
        assert pid_alive(running.pid)


def test_forked__a_caller_whose_environment_differs_gets_a_process_started_the_ordinary_way(forkserver, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTO_ALLOW_NONEXISTENT_REGION", "true")   # read when moto was prepared: not this caller's
    with private_server(tmp_path / "p") as server:
        assert parent_pid(server.pid) == os.getpid()
        assert _ec2(server, tmp_path / "p").describe_vpcs()["Vpcs"]
