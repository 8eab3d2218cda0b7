"""The usual connectivity probes, run on the stack's host, as on AWS: a learner's ``aws ssm
send-command`` with ``bash -c '</dev/tcp/<db endpoint>/5432'`` (or socat, nc where this machine has
them), or the same typed at `awslab shell`'s prompt, reaches the endpoint by its AWS name while the
DB's rule admits the host, and times out once it is revoked (the VPC drops the SYN: never a quick
refusal). verify's live checks are the host's own connections (one SSM command per verify): they
FAIL after the revoke, naming the command, and PASS once `awslab up` has put the rule back. The
shims' rewriting is proven pure below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from conftest import server_keys

from awslab.verify.results import FAIL, PASS, SKIP, WARN, Result

HOSTS = {"db.example.rds.amazonaws.com": {"5432": {"host": "127.0.0.1", "port": 41000},
                                          "3306": {"host": "127.0.0.1", "port": 43000}},
         "master.c.cache.amazonaws.com": {"6379": {"host": "127.0.0.1", "port": 42000}}}
DB = "db.example.rds.amazonaws.com"


def _aws_env(awslab) -> dict[str, str]:
    """The AWS CLI's environment after `eval "$(awslab local env)"` (this test's home)."""
    printed = awslab("local", "env").out
    done = subprocess.run(["bash", "-c", 'eval "$1" && env -0', "local-env", printed],
                          capture_output=True, text=True, timeout=30, check=True)
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if item)


def _typed_in_shell(stack: str, line: str) -> str:
    """What `awslab shell` shows when ``line`` is typed at its prompt in a terminal, then exit."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "awslab", "shell", "--name", stack], stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)

    def read_until(text: str) -> str:
        seen, deadline = b"", time.monotonic() + 30
        while text.encode() not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return seen.decode(errors="replace")

    try:
        shown = read_until("]$ ")
        os.write(master, line.encode() + b"\r")
        shown += read_until("OPEN-42")
        os.write(master, b"exit\r")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return shown


@pytest.mark.engines
def test_host_probes__dev_tcp_and_socat_reach_the_db_by_name_then_time_out_when_revoked_and_verify_agrees(
        awslab, engines, engine_server, stack):
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    env = _aws_env(awslab)
    exe = str(Path(sys.executable).with_name("aws"))

    def aws(*args: str) -> dict:
        done = subprocess.run([exe, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    client = lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=engines.endpoint_url,  # noqa: E731
                                          **server_keys(engine_server[1]))
    ec2, ssm = client("ec2"), client("ssm")
    host = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])
    host = host["Reservations"][0]["Instances"][0]["InstanceId"]
    address = client("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]["Endpoint"]["Address"]

    def run(*commands: str, timeout: int | None = None) -> dict:
        """A learner's command through the AWS CLI, waited for; what get-command-invocation says."""
        params = {"commands": list(commands), **({"executionTimeout": [str(timeout)]} if timeout else {})}
        sent = aws("ssm", "send-command", "--instance-ids", host, "--document-name", "AWS-RunShellScript",
                   "--parameters", json.dumps(params))["Command"]
        deadline = time.monotonic() + 60
        while ssm.get_command_invocation(CommandId=sent["CommandId"], InstanceId=host)["Status"] in ("Pending", "InProgress"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        return aws("ssm", "get-command-invocation", "--command-id", sent["CommandId"], "--instance-id", host)

    # As written on AWS; then through a variable (bash's /dev/tcp in a child bash: its shim resolves
    # the name), a script file, and socat's TCP address.
    probes = [f"bash -c '</dev/tcp/{address}/5432' && echo literal-open",
              f"DB={address}",
              'timeout 5 bash -c "</dev/tcp/$DB/5432" && echo variable-open',
              'echo "</dev/tcp/$DB/5432" > probe.sh && bash probe.sh && echo script-open']
    opened = ["literal-open", "variable-open", "script-open"]
    for tool, line in (("socat", 'socat -u OPEN:/dev/null "TCP:$DB:5432,connect-timeout=5" && echo socat-open'),
                       ("nc", "nc -z -w 5 $DB 5432 && echo nc-open")):
        if shutil.which(tool):
            probes.append(line)
            opened.append(f"{tool}-open")
    got = run(*probes)
    assert got["Status"] == "Success" and got["StandardOutputContent"].split() == opened, got
    # Typed at `awslab shell`'s prompt, in a terminal (the interactive bash reads the line itself).
    typed = _typed_in_shell(stack, f"echo > /dev/tcp/{address}/5432 && echo OPEN-$((40+2))")
    assert "OPEN-42" in typed and "[ec2-user@" in typed, typed

    # The learner revokes the host's way in, with the AWS CLI.
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    aws("ec2", "revoke-security-group-ingress", "--group-id", groups[f"{stack}-db"], "--protocol", "tcp",
        "--port", "5432", "--source-group", groups[f"{stack}-app"])

    # Dropped, as the VPC drops it: the connect waits until the command's own timeout stops it.
    got = run(f"bash -c '</dev/tcp/{address}/5432' && echo literal-open", timeout=2)
    assert (got["Status"], got["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut"), got
    assert "open" not in got["StandardOutputContent"] and "refused" not in got["StandardErrorContent"].lower(), got
    # timeout(1) says which: 124 when it had to stop the probe (a refusal would end it with 1 at once).
    got = run(f"DB={address}", 'timeout 2 bash -c "</dev/tcp/$DB/5432"; echo "bash $?"',
              *(['socat -u OPEN:/dev/null "TCP:$DB:5432,connect-timeout=2"; echo "socat $?"'] if shutil.which("socat") else []))
    assert got["StandardOutputContent"].split("\n")[0] == "bash 124", got
    assert "refused" not in got["StandardErrorContent"].lower(), got
    if shutil.which("socat"):
        assert "socat 1" in got["StandardOutputContent"] and "timed out" in got["StandardErrorContent"].lower(), got

    # verify's live checks are the host's own connections: FAIL, naming the SSM command that tried.
    verify = awslab("verify", "--name", stack, "--check", "live", "--output", "json")
    live = {r["id"]: r for r in json.loads(verify.out)}
    assert verify.code == 1 and live["live.host-to-db"]["status"] == "FAIL", verify.out
    assert live["live.host-to-cache"]["status"] == "PASS", verify.out
    detail = live["live.host-to-db"]["detail"]
    assert "from the host: TCP connect failed or timed out" in detail, detail
    command_id = detail.split("SSM command ")[1].split(":")[0]
    evidence = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", host)
    assert "AWSLAB db tcp FAIL" in evidence["StandardOutputContent"], evidence
    assert "AWSLAB cache tcp OK" in evidence["StandardOutputContent"], evidence

    # `awslab up` puts the rule back: the host connects again, and verify PASSes from the host.
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    verify = awslab("verify", "--name", stack, "--check", "live", "--output", "json")
    live = {r["id"]: r for r in json.loads(verify.out)}
    assert verify.code == 0 and live["live.host-to-db"]["status"] == "PASS", verify.out
    assert live["live.host-to-db"]["detail"].startswith("from the host: TCP connect "), verify.out
    assert "SSM command " in live["live.host-to-db"]["detail"] and "login + SELECT 1 over TLS" in live["live.host-to-db"]["detail"]


# --- the shims' rewriting (pure: no server) ---------------------------------------------------------

def test_host_probes__bash_moves_dev_tcp_in_a_command_string_and_in_a_script_it_runs(tmp_path):
    from awslab.local.shim import bash_args

    assert bash_args(["-c", f"</dev/tcp/{DB}/5432 && echo open", "probe"], HOSTS) == \
        ["-c", "</dev/tcp/127.0.0.1/41000 && echo open", "probe"]
    assert bash_args(["-ec", f"exec 3<>/dev/tcp/{DB}/3306"], HOSTS) == ["-ec", "exec 3<>/dev/tcp/127.0.0.1/43000"]
    script = tmp_path / "probe.sh"
    script.write_text("</dev/tcp/master.c.cache.amazonaws.com/6379 && echo \"$1\"\n")
    # Run as -c TEXT: $0 and the arguments as given, the file itself unchanged.
    assert bash_args(["-x", "-o", "pipefail", str(script), "arg"], HOSTS) == \
        ["-x", "-o", "pipefail", "-c", "</dev/tcp/127.0.0.1/42000 && echo \"$1\"\n", str(script), "arg"]
    assert "master.c.cache.amazonaws.com" in script.read_text()
    # Not an endpoint (another name, another port), or nothing to move: untouched.
    for args in (["-c", "</dev/tcp/example.com/80"], ["-c", f"</dev/tcp/{DB}/6379"], ["-c", "echo hi"], ["--norc", "-i"]):
        assert bash_args(args, HOSTS) == args
    plain = tmp_path / "plain.sh"
    plain.write_text("</dev/tcp/example.com/80\n")
    assert bash_args([str(plain)], HOSTS) == [str(plain)]


@pytest.mark.parametrize("args, want", [
    (["-zv", DB, "5432"], ["-zv", "127.0.0.1", "41000"]),
    (["-z", "-w", "3", DB, "3306"], ["-z", "-w", "3", "127.0.0.1", "43000"]),
    ([DB, "5432"], ["127.0.0.1", "41000"]),                                  # telnet's form
    (["-zv", DB, "5430-5440"], ["-zv", DB, "5430-5440"]),                    # a range: as written
    (["-zv", DB, "22"], ["-zv", DB, "22"]),                                  # a port the endpoint has not
    (["-zv", "example.com", "5432"], ["-zv", "example.com", "5432"]),
    (["-u", "OPEN:/dev/null", f"TCP:{DB}:5432,connect-timeout=3"], ["-u", "OPEN:/dev/null", "TCP:127.0.0.1:41000,connect-timeout=3"]),
    (["-", "tcp4-connect:master.c.cache.amazonaws.com:6379"], ["-", "tcp4-connect:127.0.0.1:42000"]),
])
def test_host_probes__nc_telnet_socat_move_an_endpoint_and_its_port(args, want):
    from awslab.local.shim import probe_args

    assert probe_args(args, HOSTS) == want


@pytest.mark.parametrize("args, env, want, env_want", [
    (["-h", DB, "-P", "3306", "-u", "admin", "--ssl", "-e", "SELECT 1"], {},
     ["--ssl-ca=/ca.pem", "-h", "127.0.0.1", "-P", "43000", "-u", "admin", "--ssl", "-e", "SELECT 1"], {}),
    ([f"--host={DB}", "--port=3306", "-padmin-password"], {}, ["-h", "127.0.0.1", "-P", "43000", "-padmin-password"], {}),
    ([f"-h{DB}", "-u", "admin"], {}, ["-P", "43000", "-h", "127.0.0.1", "-u", "admin"], {}),   # -p is a password here
    (["-u", "admin"], {"MYSQL_HOST": DB}, ["-P", "43000", "-u", "admin"], {"MYSQL_HOST": "127.0.0.1"}),
    (["-h", "elsewhere.example.com", "-P", "3306"], {}, ["-h", "elsewhere.example.com", "-P", "3306"], {}),
])
def test_host_probes__mysql_takes_the_endpoint_name_as_on_aws(args, env, want, env_want):
    from awslab.local.shim import mysql_args

    assert mysql_args(args, env, HOSTS, "/ca.pem") == want
    assert {k: env[k] for k in env_want} == env_want


# --- the host's evidence and the deeper checks', one result per check (pure) ---------------------

def test_host_probes__the_hosts_connection_decides_and_the_deeper_checks_add_their_findings():
    from awslab.verify.live_local import merged

    host = [Result("live.host-to-db", FAIL, "TCP connect failed or timed out (5 s) (SSM command c-1: Success)", "see path"),
            Result("live.host-to-cache", PASS, "TCP connect 3 ms (SSM command c-1: Success)")]
    deeper = [Result("live.host-to-db", FAIL, "timed out after 5 s", "flows"), Result("live.db.replica.1", SKIP, "needs"),
              Result("live.host-to-cache", PASS, "AUTH + PING over TLS")]
    got = {r.id: r for r in merged(host, deeper)}
    assert [r.id for r in merged(host, deeper)] == ["live.host-to-db", "live.db.replica.1", "live.host-to-cache"]
    assert got["live.host-to-db"].status == FAIL and "SSM command c-1" in got["live.host-to-db"].detail
    assert got["live.host-to-db"].hint == "flows; see path"   # the missing rule, then the host's own output
    assert got["live.host-to-cache"].status == PASS
    assert got["live.host-to-cache"].detail == "from the host: TCP connect 3 ms (SSM command c-1: Success); AUTH + PING over TLS"
    # The host connects, the deeper check finds more wrong (TLS not required): FAIL with its hint.
    got = merged([Result("live.host-to-db", PASS, "TCP connect 3 ms (SSM command c-2: Success)")],
                 [Result("live.host-to-db", FAIL, "takes a connection without TLS", "see the server log")])
    assert (got[0].status, got[0].hint) == (FAIL, "see the server log") and "SSM command c-2" in got[0].detail
    # No PASS without the host: a refused command is SSM's WARN, even where the deeper check connected.
    got = merged([Result("live.host-to-db", WARN, "SSM Run Command refused: InvalidInstanceId", "agent?")],
                 [Result("live.host-to-db", PASS, "login + SELECT 1")])
    assert got[0].status == WARN and got[0].hint == "agent?"


def test_host_probes__a_role_session_runs_commands_only_for_whoever_opened_it_may(aws, local, local_server, stack):
    """A role session the owner opened acts for the owner (class verify --stackset reaches a student's
    host through its StackSet role); one an IAM user opened is refused as that user is."""
    from botocore.exceptions import ClientError

    iam = aws("iam")
    role = iam.create_role(RoleName=f"{stack}-ops", AssumeRolePolicyDocument=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}))["Role"]
    iam.create_user(UserName=f"{stack}-student")
    student = iam.create_access_key(UserName=f"{stack}-student")["AccessKey"]

    def send_as(keys: dict) -> str:
        session = boto3.client("sts", region_name="us-east-1", endpoint_url=local.endpoint_url, **keys).assume_role(
            RoleArn=role["Arn"], RoleSessionName="verify")["Credentials"]
        ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=local.endpoint_url,
                           aws_access_key_id=session["AccessKeyId"], aws_secret_access_key=session["SecretAccessKey"],
                           aws_session_token=session["SessionToken"])
        with pytest.raises(ClientError) as caught:
            ssm.send_command(InstanceIds=["i-0123456789abcdef0"], DocumentName="AWS-RunShellScript",
                             Parameters={"commands": ["id"]})
        return caught.value.response["Error"]["Code"]

    assert send_as(server_keys(local_server[1])) == "InvalidInstanceId"   # past the owner's check: SSM's own answer
    assert send_as({"aws_access_key_id": student["AccessKeyId"],
                    "aws_secret_access_key": student["SecretAccessKey"]}) == "AccessDeniedException"
