"""The lab's network, for real: every connection to an endpoint of the local AWS has a source (the
stack's host, or this machine outside the VPC) and the VPC decides it as AWS would. Each case of
the rule matrix is proven twice and must agree: by a real connection (answered, or held
unanswered until the client's timeout, never refused) and by verify's path evaluator; the
relay's flow records name the missing rule. One stack serves the whole matrix: rules change
through the EC2 API between cases, as a learner changes them.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from conftest import endpoint_map, eventually, server_keys

pytestmark = [pytest.mark.engines]

PROBE_TIMEOUT_S = 1.5
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


ANSWERED, SILENT, DROPPED = "answered", "connected, no answer", "no connection (timed out)"


def probe(port: int, protocol: str) -> str:
    """What a new connection meets. ANSWERED: PostgreSQL answers an SSLRequest, Redis finishes a
    TLS handshake. DROPPED: the TCP connect itself times out, its SYN unanswered, as AWS drops
    it (a bare probe such as ``nc -z`` sees nothing). SILENT: connected but never answered (a
    connection the relay accepted in the instant a rule went away). Never a refusal."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S)
    except (TimeoutError, socket.timeout):
        return DROPPED
    with s:
        try:
            if protocol == "postgres":
                s.sendall(SSL_REQUEST)
                return ANSWERED if s.recv(1) in (b"S", b"N") else SILENT
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.wrap_socket(s).close()
            return ANSWERED
        except (TimeoutError, socket.timeout):
            return SILENT


def views(server, via: str) -> dict:
    with urllib.request.urlopen(f"{server.endpoint_url}/awslab/endpoints?via={via}", timeout=5) as resp:
        return json.loads(resp.read())["endpoints"]


@pytest.fixture
def client(engines, engine_server):
    """boto3 clients on the engine server: client("ec2")."""
    return lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=engines.endpoint_url,
                                        **server_keys(engine_server[1]))


@pytest.fixture
def ec2(client):
    return client("ec2")


def session(client, stack: str, port: int):
    """A real PostgreSQL session on ``port`` as the master user (its RDS-managed secret)."""
    import pg8000.native

    db = client("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    secret = json.loads(client("secretsmanager").get_secret_value(
        SecretId=db["MasterUserSecret"]["SecretArn"])["SecretString"])
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return pg8000.native.Connection(secret["username"], password=secret["password"], host="127.0.0.1", port=port,
                                    database=db["DBName"], ssl_context=ctx, timeout=5)


def flows(server) -> list[dict]:
    with urllib.request.urlopen(f"{server.endpoint_url}/awslab/flows", timeout=5) as resp:
        return json.loads(resp.read())["flows"]


def _path_status(awslab, stack: str) -> dict[str, str]:
    got = awslab("verify", "--name", stack, "--check", "path", "--output", "json")
    return {r["id"]: r["status"] for r in json.loads(got.out)}


def test_network__rule_matrix_real_connections_agree_with_verify_paths(awslab, engines, client, ec2, stack):
    up = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    app, db_sg, cache_sg = groups[f"{stack}-app"], groups[f"{stack}-db"], groups[f"{stack}-cache"]
    host = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])
    host = host["Reservations"][0]["Instances"][0]
    seen = views(engines, host["InstanceId"])
    db_ep = next(e for e in seen if e.startswith(f"{stack}-db."))
    cache_ep = next(e for e in seen if e.startswith(f"master.{stack}-cache."))
    outside = endpoint_map(engines)

    def case(db_open: bool, cache_open: bool) -> None:
        """A real connection and verify's evaluator, both, for the DB and the cache (at once: a
        dropped connection costs its timeout)."""
        with ThreadPoolExecutor(max_workers=3) as pool:
            db = pool.submit(probe, seen[db_ep]["port"], "postgres")
            cache = pool.submit(probe, seen[cache_ep]["port"], "redis")
            paths = pool.submit(_path_status, awslab, stack).result()
            assert (db.result() == ANSWERED, cache.result() == ANSWERED) == (db_open, cache_open)
        assert paths == {"path.app-to-db": "PASS" if db_open else "FAIL",
                         "path.app-to-cache": "PASS" if cache_open else "FAIL"}

    def db_rule(**perm):
        return [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, **perm}]

    from_app = db_rule(UserIdGroupPairs=[{"GroupId": app}])
    # As built: the host reaches both; this machine, outside the VPC, reaches neither (private).
    case(True, True)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        answered = list(pool.map(probe, (outside[db_ep]["port"], outside[cache_ep]["port"]), ("postgres", "redis")))
    assert answered == [DROPPED, DROPPED]
    assert time.monotonic() - t0 >= PROBE_TIMEOUT_S * 0.9   # the client's own timeout, never refused

    # Stateful: a session opened before a revoke goes on; a new one times out.
    held = session(client, stack, seen[db_ep]["port"])
    assert held.run("SELECT 1") == [[1]]
    ec2.revoke_security_group_ingress(GroupId=db_sg, IpPermissions=from_app)
    case(False, True)
    assert held.run("SELECT 2") == [[2]]
    held.close()
    # The revoke reached the listener itself: even a bare TCP connect now goes unanswered.
    assert probe(seen[db_ep]["port"], "postgres") == DROPPED

    # A CIDR source: the host's subnet admits it; a /32 that is not the host's does not.
    subnet = next(s["CidrBlock"] for s in ec2.describe_subnets(SubnetIds=[host["SubnetId"]])["Subnets"])
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=db_rule(IpRanges=[{"CidrIp": "10.99.0.7/32"}]))
    case(False, True)
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=db_rule(IpRanges=[{"CidrIp": subnet}]))
    case(True, True)
    ec2.revoke_security_group_ingress(GroupId=db_sg, IpPermissions=db_rule(IpRanges=[{"CidrIp": subnet}]))

    # The wrong port, then the wrong protocol, from the right group.
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5433, "ToPort": 5433, "UserIdGroupPairs": [{"GroupId": app}]},
        {"IpProtocol": "udp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": app}]}])
    case(False, True)
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=from_app)
    case(True, True)

    # Egress narrowed on the host's group: only the cache's port leaves.
    egress = ec2.describe_security_groups(GroupIds=[app])["SecurityGroups"][0]["IpPermissionsEgress"]
    ec2.revoke_security_group_egress(GroupId=app, IpPermissions=egress)
    ec2.authorize_security_group_egress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": cache_sg}]}])
    case(False, True)

    # `up` puts the lab's rules back, and the next connection is let through at once.
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    case(True, True)

    # Every decision is a flow record; a REJECT names the rule that is missing.
    rejected = awslab("flows", "--name", stack, "--rejected", "--output", "json")
    assert rejected.code == 0, rejected.err
    records = json.loads(rejected.out)["records"]
    assert {r["action"] for r in records} == {"REJECT"}
    from_host = [r for r in records if r["srcaddr"] == host["PrivateIpAddress"] and r["dstport"] == 5432]
    assert from_host and any(f"no inbound rule on {db_sg}" in r["reason"] and "admits tcp/5432" in r["reason"]
                             for r in from_host)
    assert any("no outbound rule on" in r["reason"] for r in from_host)
    assert any(r["srcaddr"] == "127.0.0.1" and "not publicly accessible" in r["reason"] for r in records)
    text = awslab("flows", "--name", stack, "--since", "10m")
    assert text.out.splitlines()[0].startswith("version account-id interface-id srcaddr dstaddr")
    assert " ACCEPT OK" in text.out and " REJECT OK" in text.out
    assert awslab("flows", "--name", stack, "--since", "soon").code == 2


def test_network__public_db_reached_from_outside_only_with_a_rule_and_flow_logs_delivered(awslab, engines, client, stack):
    """A DB made publicly accessible in the default VPC's public subnets: this machine reaches it
    once a rule admits its address, and a flow log the learner created receives the records."""
    ec2, rds, logs = client("ec2"), client("rds"), client("logs")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                      {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    logs.create_log_group(logGroupName=f"/{stack}/flows")
    ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL", LogDestinationType="cloud-watch-logs",
                         LogGroupName=f"/{stack}/flows",
                         DeliverLogsPermissionArn="arn:aws:iam::123456789012:role/flow-logs")
    rds.create_db_instance(DBInstanceIdentifier=f"{stack}-pub", Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="learner", MasterUserPassword="not-a-real-secret-1",
                           PubliclyAccessible=True, VpcSecurityGroupIds=[default_sg])
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=f"{stack}-pub",
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ep = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-pub")["DBInstances"][0]["Endpoint"]
    name = f"{ep['Address']}:{ep['Port']}"
    deadline = time.monotonic() + 30
    while endpoint_map(engines).get(name, {}).get("status") != "available":
        assert time.monotonic() < deadline, endpoint_map(engines).get(name)
        time.sleep(0.2)
    port = endpoint_map(engines)[name]["port"]
    try:
        assert probe(port, "postgres") == DROPPED   # public, but no rule admits this machine
        ec2.authorize_security_group_ingress(GroupId=default_sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}])
        assert probe(port, "postgres") == ANSWERED, flows(engines)[-1]["reason"]
        def delivered() -> bool:   # an accepted connection's record is written when it ends
            events = logs.filter_log_events(logGroupName=f"/{stack}/flows")["events"]
            actions = [e["message"].split()[12] for e in events if e["message"].split()[6] == "5432"]
            return "REJECT" in actions and "ACCEPT" in actions
        eventually(delivered, within_s=5)
        events = logs.filter_log_events(logGroupName=f"/{stack}/flows")["events"]
        assert all(len(e["message"].split()) == 14 for e in events)   # version 2: fourteen fields
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-pub", SkipFinalSnapshot=True)


def _aws_env(awslab) -> dict[str, str]:
    """The AWS CLI's environment after `eval "$(awslab local env)"` (this test's home)."""
    import subprocess

    printed = awslab("local", "env").out
    shell = subprocess.run(["bash", "-c", 'eval "$1" && env -0', "local-env", printed],
                           capture_output=True, text=True, timeout=30, check=True)
    return dict(item.split("=", 1) for item in shell.stdout.split("\0") if item)


def test_ssm__run_command_really_runs_on_the_host_through_the_aws_cli(awslab, engines, engine_server, client, stack):
    import subprocess
    import sys
    from pathlib import Path

    from botocore.exceptions import ClientError

    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    env = _aws_env(awslab)
    exe = str(Path(sys.executable).with_name("aws"))

    def aws(*args: str, ok: bool = True) -> dict | str:
        done = subprocess.run([exe, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        if not ok:
            assert done.returncode != 0
            return done.stderr
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    ec2, rds, ssm = client("ec2"), client("rds"), client("ssm")
    host = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])
    host = host["Reservations"][0]["Instances"][0]["InstanceId"]
    listed = aws("ssm", "describe-instance-information")["InstanceInformationList"]
    assert [i["PingStatus"] for i in listed if i["InstanceId"] == host] == ["Online"]

    def run(*commands: str, timeout: int | None = None) -> dict:
        params = {"commands": list(commands), **({"executionTimeout": [str(timeout)]} if timeout else {})}
        sent = aws("ssm", "send-command", "--instance-ids", host, "--document-name", "AWS-RunShellScript",
                   "--parameters", json.dumps(params))["Command"]
        assert sent["Status"] == "Pending"
        deadline = time.monotonic() + 30
        while ssm.get_command_invocation(CommandId=sent["CommandId"], InstanceId=host)["Status"] in ("Pending", "InProgress"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # What the learner reads, through the AWS CLI.
        return aws("ssm", "get-command-invocation", "--command-id", sent["CommandId"], "--instance-id", host)

    # The lab's exercise, as on AWS: the secret read on the host by its role, psql to the endpoint's
    # AWS name, TLS checked with the RDS bundle named as AWS's guide names it.
    db = rds.describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]
    secret = db["MasterUserSecret"]["SecretArn"]
    login = (f"export PGPASSWORD=$(aws secretsmanager get-secret-value --secret-id '{secret}' --query SecretString "
             "--output text | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"password\"])')")
    psql = (f"psql 'host={db['Endpoint']['Address']} port=5432 user={db['MasterUsername']} dbname={db['DBName']} "
            "sslmode=verify-full sslrootcert=global-bundle.pem connect_timeout=2' -tAc 'SELECT 40 + 2'")
    got = run(login, psql)
    assert (got["Status"], got["ResponseCode"], got["StandardOutputContent"]) == ("Success", 0, "42\n"), got

    # verify's live checks on AWS are this very script (bash's /dev/tcp to the endpoints' names, the
    # secrets read by the host's role, psql and redis-cli over TLS): it passes on the lab's host.
    from awslab.verify.ssm import LiveTarget, live_script, parse_live

    group = client("elasticache").describe_replication_groups(ReplicationGroupId=f"{stack}-cache")["ReplicationGroups"][0]
    cache_ep = group["NodeGroups"][0]["PrimaryEndpoint"]
    token_arn = client("secretsmanager").describe_secret(SecretId=f"awslab/{stack}/cache-auth-token")["ARN"]
    script = live_script([LiveTarget("db", db["Endpoint"]["Address"], 5432, secret, "postgres", db["MasterUsername"],
                                     db["DBName"]),
                          LiveTarget("cache", cache_ep["Address"], cache_ep["Port"], token_arn)], "us-east-1")
    got = run(*script.splitlines()[1:])
    out = got["StandardOutputContent"]
    assert parse_live(out, "db", "SELECT 1")[0] == "PASS" and "AWSLAB db login OK" in out, got
    assert parse_live(out, "cache", "PING")[0] == "PASS" and "AWSLAB cache login OK" in out, got

    got = run("echo to-stdout", "echo to-stderr >&2", "exit 3")
    assert (got["Status"], got["ResponseCode"]) == ("Failed", 3)
    assert got["StandardOutputContent"] == "to-stdout\n" and got["StandardErrorContent"] == "to-stderr\n"

    got = run("echo $$ > sleeper.pid", "sleep 60", timeout=1)
    assert (got["Status"], got["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    listed = ssm.list_command_invocations(InstanceId=host, Details=True)["CommandInvocations"]
    assert {p["Status"] for i in listed for p in i["CommandPlugins"]} == {"Success", "Failed", "TimedOut"}
    pid = int((engine_server[1] / "local" / "instances" / host / "sleeper.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()   # the command's process was stopped, not left running

    # The VPC decides the host's connections too: with the DB's rule revoked the same psql times out.
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"]}
    rule = [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": groups[f"{stack}-app"]}]}]
    ec2.revoke_security_group_ingress(GroupId=groups[f"{stack}-db"], IpPermissions=rule)
    got = run(login, psql)
    assert got["Status"] == "Failed" and "timeout expired" in got["StandardErrorContent"], got
    shell = awslab("shell", "--name", stack, "-c", psql.replace("SELECT 40 + 2", "SELECT 1"))
    assert shell.code != 0
    ec2.authorize_security_group_ingress(GroupId=groups[f"{stack}-db"], IpPermissions=rule)

    # Bad input, as AWS answers it; nothing runs (the same API the CLI calls above).
    def refused(instance: str, document: str = "AWS-RunShellScript") -> str:
        with pytest.raises(ClientError) as caught:
            ssm.send_command(InstanceIds=[instance], DocumentName=document, Parameters={"commands": ["id"]})
        return caught.value.response["Error"]["Code"]

    assert refused("i-0123456789abcdef0") == "InvalidInstanceId"
    assert refused(host, "AWS-NoSuchThing") == "InvalidDocument"
    unmanaged = ec2.run_instances(ImageId=ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"],
                                  MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    assert refused(unmanaged) == "InvalidInstanceId"   # no role that lets its agent talk to SSM
    ec2.terminate_instances(InstanceIds=[unmanaged])
    bad = awslab("shell", "i-0123456789abcdef0", "--name", stack, "-c", "true")
    assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1

    # Only the local AWS's owner runs commands on this machine: an IAM user's keys are refused.
    iam = client("iam")
    iam.create_user(UserName=f"{stack}-student")
    keys = iam.create_access_key(UserName=f"{stack}-student")["AccessKey"]
    student = boto3.client("ssm", region_name="us-east-1", endpoint_url=engines.endpoint_url,
                           aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"])
    with pytest.raises(ClientError) as refused:
        student.send_command(InstanceIds=[host], DocumentName="AWS-RunShellScript", Parameters={"commands": ["id"]})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    # ... unless the owner says this user acts for them (and its policy allows SendCommand).
    iam.tag_user(UserName=f"{stack}-student", Tags=[{"Key": "awslab:run-commands", "Value": "true"}])
    iam.attach_user_policy(UserName=f"{stack}-student", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMFullAccess")
    sent = student.send_command(InstanceIds=[host], DocumentName="AWS-RunShellScript", Parameters={"commands": ["id"]})
    assert sent["Command"]["Status"] == "Pending"


HOSTS = {"db.example.rds.amazonaws.com": {"5432": {"host": "127.0.0.1", "port": 41000, "tunnel_port": 41001}},
         "master.c.cache.amazonaws.com": {"6379": {"host": "127.0.0.1", "port": 42000, "tunnel_port": 42001}}}


@pytest.mark.parametrize("name, args, tls, want, env_want", [
    ("psql", ["host=db.example.rds.amazonaws.com port=5432 user=u sslmode=verify-full sslrootcert=global-bundle.pem",
              "-c", "select 1"], True,
     ["host=127.0.0.1 port=41000 user=u sslmode=verify-full sslrootcert=global-bundle.pem", "-c", "select 1"], {}),
    ("psql", ["-h", "db.example.rds.amazonaws.com", "-p", "5432", "-U", "u"], True,
     ["-h", "127.0.0.1", "-p", "41000", "-U", "u"], {"PGSSLROOTCERT": "/ca.pem"}),
    ("psql", ["--host=db.example.rds.amazonaws.com", "-U", "u"], True, ["--host", "127.0.0.1", "-U", "u"],
     {"PGPORT": "41000"}),
    ("psql", ["postgresql://u@db.example.rds.amazonaws.com:5432/lab?sslmode=require"], True,
     ["postgresql://u@127.0.0.1:41000/lab?sslmode=require"], {}),
    # A client built without TLS: the endpoint's tunnel speaks it, the client goes plain.
    ("psql", ["host=db.example.rds.amazonaws.com port=5432 sslmode=verify-full sslrootcert=global-bundle.pem user=u"],
     False, ["host=127.0.0.1 port=41001 sslmode=disable user=u"], {}),
    ("redis-cli", ["--tls", "-h", "master.c.cache.amazonaws.com", "PING"], True,
     ["--tls", "--cacert", "/ca.pem", "-h", "127.0.0.1", "-p", "42000", "PING"], {}),
    # No -p: the port goes right after the host (redis-cli takes no option after the command).
    ("redis-cli", ["-h", "master.c.cache.amazonaws.com", "GET", "hello"], True,
     ["-h", "127.0.0.1", "-p", "42000", "GET", "hello"], {}),
    ("redis-cli", ["--tls", "--cacert", "x.pem", "-h", "master.c.cache.amazonaws.com", "-p", "6379", "PING"], False,
     ["-h", "127.0.0.1", "-p", "42001", "PING"], {}),
    ("psql", ["-h", "elsewhere.example.com", "-p", "5432"], True, ["-h", "elsewhere.example.com", "-p", "5432"], {}),
])
def test_shim__an_endpoint_name_becomes_the_instances_view_of_it(name, args, tls, want, env_want):
    """The host's psql / redis-cli take the endpoints' AWS names as written on AWS (pure: no server)."""
    from awslab.local.shim import rewrite

    env: dict = {}
    assert rewrite(name, args, env, HOSTS, "/ca.pem", tls=tls) == want
    assert {k: env[k] for k in env_want} == env_want


def test_shim__bash_dev_tcp_to_an_endpoint_name_reaches_the_instances_view(tmp_path):
    """bash resolves /dev/tcp/<name>/<port> itself: a command's text is moved to the instance's view
    (known name and port), anything else left as written."""
    from awslab.local.shim import dev_tcp

    (tmp_path / "hosts.json").write_text(json.dumps({"hosts": HOSTS}))
    script = ("timeout 5 bash -c '</dev/tcp/db.example.rds.amazonaws.com/5432' && "
              "echo > /dev/tcp/master.c.cache.amazonaws.com/6379; </dev/tcp/db.example.rds.amazonaws.com/3306; "
              "</dev/tcp/example.com/80")
    assert dev_tcp(script, tmp_path) == ("timeout 5 bash -c '</dev/tcp/127.0.0.1/41000' && "
                                         "echo > /dev/tcp/127.0.0.1/42000; </dev/tcp/db.example.rds.amazonaws.com/3306; "
                                         "</dev/tcp/example.com/80")
    assert dev_tcp(script, tmp_path / "nowhere") == script


def test_cache_cluster__one_of_its_own_has_a_real_redis_behind_its_node(awslab, engines, client, ec2, stack):
    """CreateCacheCluster without a replication group (what the AWS CLI's and Ansible's first
    examples make): its node's endpoint, a real Redis behind it, reached from the host as its
    security group says, with AUTH over TLS or, made without AUTH, with none; gone with the cluster."""
    import redis
    from botocore.exceptions import ClientError

    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    ec = client("elasticache")
    cache_sg = next(g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["SecurityGroups"] if g["GroupName"] == f"{stack}-cache")
    host = ec2.describe_instances(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]},
                                           {"Name": "instance-state-name", "Values": ["running"]}])
    host = host["Reservations"][0]["Instances"][0]["InstanceId"]
    common = {"Engine": "redis", "CacheNodeType": "cache.t3.micro", "NumCacheNodes": 1,
              "CacheSubnetGroupName": f"{stack}-cache", "SecurityGroupIds": [cache_sg]}
    with pytest.raises(ClientError) as refused:   # AWS: AUTH needs encryption in transit
        ec.create_cache_cluster(CacheClusterId=f"{stack}-bad", AuthToken="a-token-of-16-chars-or-more", **common)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    token = "not-a-real-token-0123456789"
    ec.create_cache_cluster(CacheClusterId=f"{stack}-plain", **common)
    ec.create_cache_cluster(CacheClusterId=f"{stack}-tls", TransitEncryptionEnabled=True, AuthToken=token, **common)

    def node(cid: str) -> dict:
        got = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
        return got["CacheNodes"][0]["Endpoint"]

    plain, tls_ep = node(f"{stack}-plain"), node(f"{stack}-tls")
    described = ec.describe_cache_clusters(CacheClusterId=f"{stack}-plain")["CacheClusters"][0]
    # What Ansible's elasticache module reads on every run: in a VPC, no cache security groups (never absent).
    assert described["CacheSecurityGroups"] == [] and described["SecurityGroups"][0]["SecurityGroupId"] == cache_sg
    assert re.fullmatch(rf"{stack}-plain\.[a-z0-9]{{6}}\.0001\.use1\.cache\.amazonaws\.com", plain["Address"]), plain
    assert plain["Port"] == tls_ep["Port"] == 6379

    def seen(ep: dict) -> dict | None:
        got = views(engines, host).get(f"{ep['Address']}:{ep['Port']}") or {}
        return got if got.get("status") == "available" and got.get("port") else None

    eventually(lambda: bool(seen(plain)) and bool(seen(tls_ep)), within_s=30)
    bare = redis.Redis(host="127.0.0.1", port=seen(plain)["port"], socket_timeout=3, protocol=2)
    assert bare.ping() and bare.set("k", "v") and bare.get("k") == b"v"   # no AUTH asked, as made
    bare.close()
    ca = endpoint_map(engines)[f"{tls_ep['Address']}:6379"]["ca"]
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=seen(tls_ep)["port"], socket_timeout=3, ssl=True, ssl_ca_certs=ca,
                    ssl_check_hostname=False, protocol=2).ping()
    secure = redis.Redis(host="127.0.0.1", port=seen(tls_ep)["port"], password=token, socket_timeout=3, ssl=True,
                         ssl_ca_certs=ca, ssl_check_hostname=False, protocol=2)
    assert secure.ping()
    secure.close()
    # Private: this machine, outside the VPC, is not let in.
    assert probe(endpoint_map(engines)[f"{plain['Address']}:6379"]["port"], "postgres") == DROPPED
    for cid in (f"{stack}-plain", f"{stack}-tls"):
        ec.delete_cache_cluster(CacheClusterId=cid)
    eventually(lambda: f"{plain['Address']}:6379" not in endpoint_map(engines), within_s=30)


def test_allows__a_path_is_decided_once_for_what_it_was_decided_from(monkeypatch, tmp_path):
    """A listener's mode after a network change: the same VPC network, source, target and port give
    the kept verdict without deciding again; any change in them (a rule) is decided afresh."""
    from awslab.local import network
    from awslab.spec.reachability import Net, Peer, Source, Target, Verdict

    decided = []

    def evaluate(net, src, target, port):
        decided.append(port)
        return Verdict("sg-db" in net.groups and bool(net.groups["sg-db"]["IpPermissions"]))

    monkeypatch.setattr(network, "evaluate", evaluate)
    paths = network.Network(tmp_path, {})
    rules: list = [{"FromPort": 5432}]
    src = Source(Peer(frozenset({"sg-app"}), ("10.0.1.5/32",), "host"), "subnet-a", "vpc-1")
    target = Target(Peer(frozenset({"sg-db"}), (), "db"), ("subnet-b",), "vpc-1")

    def inputs(source, endpoint, facts):
        now = Net(groups={"sg-db": {"IpPermissions": [dict(r) for r in rules]}}, subnets={})
        return now, f"vpc-1/{now!r}", src, target, 5432

    monkeypatch.setattr(paths, "_inputs", inputs)   # what the VPC looks like now, as moto holds it
    assert [paths.allows("i-1", "db.example") for _ in range(3)] == [True] * 3 and len(decided) == 1
    rules.clear()                      # the rule revoked: decided again, and closed
    assert paths.allows("i-1", "db.example") is False and len(decided) == 2
    rules.append({"FromPort": 5432})   # put back: the path as it was before, its verdict kept
    assert paths.allows("i-1", "db.example") is True and len(decided) == 2
    monkeypatch.setattr(network, "VERDICTS_MAX", 1)
    rules[0]["ToPort"] = 5432          # another network past the bound: all forgotten, decided again
    assert paths.allows("i-1", "db.example") is True and len(decided) == 3
