"""The IAM policy: shipped file == `awslab policy`, it allows every operation awslab can call,
parliament finds nothing unexplained, and the whole lifecycle runs under it with IAM enforced."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import boto3
import pytest
from botocore import xform_name
from botocore.session import get_session

from awslab.policies import actions, lab_policy, render
from conftest import repo_root

SERVICES = {"ec2": "ec2", "rds": "rds", "elasticache": "elasticache", "iam": "iam", "secretsmanager": "secretsmanager",
            "ssm": "ssm", "sts": "sts", "resourcegroupstaggingapi": "tag"}

# parliament's findings we accept, and why.
SUPPRESSED = {
    # AWS's own pattern splits RunInstances by resource type (instance and volume tagged on create,
    # the stack's subnet and group by resource tag, Amazon's image by owner, a new interface);
    # parliament checks each statement alone and wants every resource type in each.
    ("RESOURCE_MISMATCH", "ec2:RunInstances"),
    # CreateDBInstanceReadReplica can also name a Multi-AZ DB cluster; the lab makes instance
    # replicas only, so no cluster resource is granted.
    ("RESOURCE_MISMATCH", "rds:CreateDBInstanceReadReplica"),
}


def test_policy__the_shipped_file_is_what_awslab_policy_prints(awslab):
    printed = awslab("policy", "week6")
    assert printed.code == 0
    assert json.loads(printed.out) == json.loads((repo_root() / "policies" / "week6.json").read_text())
    assert printed.out == render(lab_policy("week6"))


def _operations_in_source() -> set[tuple[str, str]]:
    """Every (service, Operation) whose boto3 method name appears called in awslab's code."""
    session = get_session()
    by_method: dict[str, set[tuple[str, str]]] = {}
    for service in SERVICES:
        for op in session.get_service_model(service).operation_names:
            by_method.setdefault(xform_name(op), set()).add((service, op))
    called: set[tuple[str, str]] = set()
    for path in (repo_root() / "awslab").rglob("*.py"):
        if "local" in path.parts:
            continue  # the local AWS's own server code, not awslab's calls to AWS
        text = path.read_text()
        names = set(re.findall(r"\.([a-z_0-9]+)\)?\(", text)) | set(re.findall(r'get_paginator\("([a-z_0-9]+)"\)', text))
        for name in names:
            called |= by_method.get(name, set())
    return called


def test_policy__allows_every_operation_awslab_can_call():
    allowed = actions(lab_policy("week6"))
    ops = _operations_in_source()
    assert len(ops) > 60
    by_method: dict[str, list[tuple[str, str]]] = {}
    for service, op in ops:
        by_method.setdefault(xform_name(op), []).append((service, op))
    missing = []
    for method, candidates in by_method.items():
        # A method name some services share (delete_snapshot: EC2 and ElastiCache) must be allowed for one.
        if not any(f"{SERVICES[s]}:{op}" in allowed for s, op in candidates):
            missing.append(candidates)
    assert missing == []


def test_policy__parliament_finds_nothing_unexplained():
    parliament = pytest.importorskip("parliament")
    findings = parliament.analyze_policy_string(render(lab_policy("week6"))).findings
    unexplained = []
    for f in findings:
        detail = f.detail if isinstance(f.detail, list) else [f.detail]
        acts = {d.get("action") for d in detail if isinstance(d, dict)} or {None}
        if not all((f.issue, a) in SUPPRESSED for a in acts):
            unexplained.append((f.issue, f.detail))
    assert unexplained == []


# --- the lifecycle under only this policy, with IAM enforced --------------------------------------

@pytest.fixture
def enforced(tmp_path):
    """A local AWS of its own with IAM enforcement on, and the keys of a user holding only the policy."""
    from awslab.local import manager

    old = os.environ.get("AWSLAB_HOME")
    os.environ["AWSLAB_HOME"] = str(tmp_path / "enforced-server")
    try:
        server = manager.start()
    finally:
        os.environ["AWSLAB_HOME"] = old or ""
    iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="admin", aws_secret_access_key="admin")

    def user_with(policy: dict, name: str) -> dict:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="awslab", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    keys = {"full": user_with(lab_policy("week6"), "lab-user")}
    without = lab_policy("week6")
    for stmt in without["Statement"]:
        stmt["Action"] = [a for a in stmt["Action"] if a != "rds:CreateDBInstanceReadReplica"]
    keys["no-replica"] = user_with(without, "no-replica-user")
    # From here on every request is checked against the caller's policies.
    urllib.request.urlopen(urllib.request.Request(f"{server.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                                  headers={"Content-Type": "text/plain"}))
    yield server, keys
    os.environ["AWSLAB_HOME"] = str(tmp_path / "enforced-server")
    try:
        manager.stop()
    finally:
        os.environ["AWSLAB_HOME"] = old or ""


def _cli(server, keys, home, *args):
    env = dict(os.environ, AWSLAB_HOME=str(home), **keys)
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_SECURITY_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "awslab", *args, "--target", "aws", "--region", "us-east-1",
                           "--endpoint-url", server.endpoint_url, "--yes"],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.lifecycle
def test_enforced__the_whole_lifecycle_runs_under_only_the_policy(enforced, tmp_path):
    server, keys = enforced
    home = tmp_path / "user-home"
    steps = [("up", "week6", "--name", "pol"), ("status",), ("verify", "--check", "inventory"),
             ("snapshot",), ("failover",), ("down", "--delete-snapshots")]
    for args in steps:
        result = _cli(server, keys["full"], home, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    denied = _cli(server, keys["no-replica"], tmp_path / "other", "up", "week6", "--name", "pol2")
    assert denied.returncode == 1
    assert "CreateDBInstanceReadReplica" in denied.stderr and ("AccessDenied" in denied.stderr or "not authorized" in denied.stderr)
