"""The embedded local AWS: its process lifecycle, and the gaps awslab's layer closes over moto."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from awslab.local import manager


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_start_status_stop__one_detached_process_reused_then_stopped(awslab, aws_sandbox):
    started = awslab("local", "start")
    assert started.code == 0 and "started" in started.out, started
    info = json.loads((aws_sandbox / "local" / "server.json").read_text())
    assert _alive(info["pid"])
    again = awslab("local", "start")
    assert "already running" in again.out and str(info["pid"]) in again.out
    status = json.loads(awslab("local", "status", "--output", "json").out)
    assert status["running"] and status["pid"] == info["pid"]
    assert status["endpoint_url"] == f"http://127.0.0.1:{info['port']}"
    # Any SDK can use it, with the lines `awslab local env` prints (and no key printed).
    env_lines = awslab("local", "env").out
    assert f"export AWS_ENDPOINT_URL={status['endpoint_url']}" in env_lines
    keys = json.loads((aws_sandbox / "local" / "credentials.json").read_text())
    assert all(v not in env_lines for v in keys.values())
    done = subprocess.run(["bash", "-c", f'eval "$({sys.executable} -m awslab local env)" && '
                                        f'{sys.executable} -c "import boto3; print(boto3.client(\'sts\').get_caller_identity()[\'Account\'])"'],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "123456789012", done.stderr
    stopped = awslab("local", "stop")
    assert stopped.code == 0 and str(info["pid"]) in stopped.out
    assert not _alive(info["pid"]) or _zombie(info["pid"])
    assert awslab("local", "stop").out.strip() == "local AWS was not running"
    assert "not running" in awslab("local", "status").out


def _zombie(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not _alive(pid)


def test_local_stop__never_signals_a_process_that_is_not_its_server(awslab, aws_sandbox):
    # A state file naming someone else's process (same pid alive, wrong token) is not ours to stop.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (aws_sandbox / "local").mkdir(parents=True)
        (aws_sandbox / "local" / "server.json").write_text(json.dumps(
            {"pid": other.pid, "host": "127.0.0.1", "port": 9, "token": "nope"}))
        assert awslab("local", "stop").out.strip() == "local AWS was not running"
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_local_start__a_taken_port_is_a_usage_error(awslab):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        result = awslab("local", "start", "--port", str(port))
    assert result.code == 2 and f"port {port}" in result.err and "in use" in result.err


def test_first_use__starts_the_local_aws_by_itself(awslab, aws_sandbox, stack):
    result = awslab("plan", "week6", "--name", stack)
    try:
        assert result.code == 0, result.err
        assert manager.find() is not None
    finally:
        manager.stop()


# --- gaps closed by the server process itself ------------------------------------------------

def test_iam__the_ssm_managed_policy_exists_and_attaches(aws, stack):
    iam = aws("iam")
    iam.create_role(RoleName=stack, AssumeRolePolicyDocument="{}")
    iam.attach_role_policy(RoleName=stack, PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=stack)["AttachedPolicies"]] == [
        "AmazonSSMManagedInstanceCore"]


def test_local_stop__a_server_that_goes_just_as_it_is_killed_is_simply_gone(aws_sandbox, monkeypatch):
    """`local stop` waits for the server, then SIGKILLs it; one that exits between the last look and
    the kill is gone, not an error (the suite saw a traceback from exactly that)."""
    import signal

    server = manager.LocalServer(pid=4242, host="127.0.0.1", port=9, log=aws_sandbox / "server.log")
    monkeypatch.setattr(manager, "find", lambda: server)
    monkeypatch.setattr(manager, "STOP_TIMEOUT_S", 0.05)
    alive = iter([True] * 50)
    monkeypatch.setattr(manager, "pid_alive", lambda pid: next(alive, False))
    sent = []

    def kill(pid, sig):
        sent.append(sig)
        if sig == signal.SIGKILL:
            raise ProcessLookupError(pid)

    monkeypatch.setattr(manager.os, "kill", kill)
    monkeypatch.setattr(manager, "lock_holder", lambda: {"pid": 1})   # not "no server": no engines halted
    assert manager.stop() is server
    assert sent == [signal.SIGTERM, signal.SIGKILL]
