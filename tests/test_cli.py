"""The CLI's contract: bad input exits 2 with one line and nothing sent that changes anything."""

from __future__ import annotations

import json

import pytest

from conftest import mutating, stack_tagged


@pytest.mark.parametrize("args, fragment", [
    (["up", "week99"], "unknown lab 'week99'"),
    (["up"], "no lab given"),
    (["up", "week6", "--set", "database.nope=1"], "database.nope: unknown setting"),
    (["up", "week6", "--set", "database.multi_az=maybe"], "must be true or false"),
    (["up", "week6", "--set", "host.ssh_cidr=0.0.0.0/0"], "opens SSH to the whole internet"),
    (["up", "week6", "--set", "network.public_subnet_cidr=10.60.10.0/24"], "overlaps"),
    (["up", "week6", "--set", "database.instance_class=db.bogus.huge"], "not an RDS instance class"),
    (["up", "week6", "--name", "Bad_Name"], "invalid stack name 'Bad_Name'"),
    (["up", "week6", "--name", "a--b"], "invalid stack name"),
    (["up", "week6", "--bogus"], "--bogus"),
    (["up", "week6", "--target", "gcp"], "Invalid value for '--target'"),
    (["up", "week6", "--profile", "me"], "--profile applies to --target aws"),
    (["up", "week6", "--endpoint-url", "localhost:5000"], "is not a URL"),
    (["plan", "week6", "--lab-file", "/nonexistent/lab.toml"], "lab file not found"),
    (["status"], "no stack given and none remembered"),
    (["down"], "no stack given and none remembered"),
])
def test_bad_input__exits_2_with_one_line_and_changes_nothing(awslab, api_calls, args, fragment):
    result = awslab(*args)
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.err
    assert result.out == ""
    assert mutating(api_calls) == []


def test_bad_input__target_aws_without_a_region(awslab, monkeypatch, api_calls):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = awslab("up", "week6", "--target", "aws")
    assert result.code == 2 and result.err.startswith("error: no AWS region set for --target aws")
    assert api_calls == []


def test_bad_input__a_malformed_lab_file_names_the_file(awslab, tmp_path, api_calls):
    path = tmp_path / "broken.toml"
    path.write_text("[database]\nmulti_az = 'sometimes'\n")
    result = awslab("up", "--lab-file", str(path))
    assert result.code == 2 and str(path) in result.err and "database.multi_az" in result.err
    assert api_calls == []


def test_bad_input__a_corrupted_state_file_says_how_to_fix_it(awslab, aws_sandbox):
    aws_sandbox.mkdir(parents=True, exist_ok=True)
    (aws_sandbox / "context.json").write_text("{not json")
    result = awslab("status")
    assert result.code == 2 and "corrupted" in result.err and "context.json" in result.err


def test_real_account__without_yes_and_without_a_terminal__refuses_before_creating(awslab, local, aws, stack, api_calls):
    result = awslab("up", "week6", "--name", stack, "--target", "aws", "--region", "us-east-1",
                    "--endpoint-url", local.endpoint_url)
    assert result.code == 2, result
    assert "needs --yes" in result.err and "123456789012" in result.err and "/hour" in result.err
    assert mutating(api_calls) == []
    assert stack_tagged(aws, stack) == []


def test_real_account__with_yes__shows_account_region_and_cost_then_builds(awslab, local, aws, stack):
    up = awslab("up", "week6", "--name", stack, "--target", "aws", "--region", "us-east-1",
                "--endpoint-url", local.endpoint_url, "--yes", "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    assert "AWS account 123456789012" in up.err and "region us-east-1" in up.err
    # The remembered context carries target and endpoint, so a bare `down` acts on the same stack.
    plan = awslab("down", "--dry-run", "--output", "json")
    assert {s["key"] for s in json.loads(plan.out)["steps"]} >= {"db.primary", "cache.group"}
    assert not any(s["key"].startswith("db.replica") for s in json.loads(plan.out)["steps"])
    down = awslab("down", "--yes", "--skip-final-snapshot")
    assert down.code == 0, down.err and "will delete: db.primary" in down.err
    assert stack_tagged(aws, stack) == []


def test_version_and_help(awslab):
    assert awslab("--version").out.startswith("awslab, version ")
    help_text = awslab("--help").out
    for cmd in ("up", "plan", "status", "down", "local"):
        assert f"  {cmd}" in help_text
    assert "--skip-final-snapshot" in awslab("down", "--help").out
