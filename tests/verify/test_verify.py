"""awslab verify: a clean stack verifies; each fault a learner makes fails exactly the check that
names it, with a fix; the path evaluator works on hand-built data without AWS."""

from __future__ import annotations

import json
import re

import pytest

from awslab.spec.reachability import (
    Peer,
    groups_admit,
    internet_route,
    nacl_allows,
    nacls_allow_flow,
    world_open,
)


def _verify(awslab, stack, *extra):
    result = awslab("verify", "--name", stack, "--output", "json", *extra)
    return result, (json.loads(result.out) if result.out.strip().startswith("[") else None)


def _ids(aws, stack):
    ec2 = aws("ec2")
    flt = [{"Name": "tag:awslab:stack", "Values": [stack]}]
    groups = {next(t["Value"] for t in g["Tags"] if t["Key"] == "awslab:resource"): g["GroupId"]
              for g in ec2.describe_security_groups(Filters=flt)["SecurityGroups"]}
    subnets = {next(t["Value"] for t in s["Tags"] if t["Key"] == "awslab:resource"): s["SubnetId"]
               for s in ec2.describe_subnets(Filters=flt)["Subnets"]}
    inst = [i for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]][0]
    return groups, subnets, inst["InstanceId"]


def test_verify__a_fresh_stack_passes_every_non_live_check(awslab, local, stack):
    assert awslab("up", "week6", "--name", stack).code == 0
    result, checks = _verify(awslab, stack)
    assert result.code == 0, result.err
    assert {c["status"] for c in checks if not c["id"].startswith("live.")} == {"PASS"}
    assert {c["status"] for c in checks if c["id"].startswith("live.")} == {"SKIP"}
    assert all(set(c) >= {"id", "status", "detail", "hint"} for c in checks)
    assert {"path.app-to-db", "path.app-to-cache", "security.db-not-public", "network.db-subnets-private"} <= {c["id"] for c in checks}
    text = awslab("verify", "--name", stack)
    assert text.code == 0 and "0 FAIL" in text.out
    only = _verify(awslab, stack, "--check", "security.db", "--check", "path")[1]
    assert {c["id"].split(".")[0] for c in only} == {"security", "path"} and len(only) == 5
    awslab("down", "--name", stack, "--yes", "--skip-final-snapshot")


def _rule_ids(ec2, group_id, egress, port, peer):
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    ids = [r["SecurityGroupRuleId"] for r in rules if r["IsEgress"] == egress and r.get("FromPort") == port
           and (r.get("ReferencedGroupInfo") or {}).get("GroupId") == peer]
    assert ids, rules
    return ids


def _fault(name):
    """Apply one fault by hand, as a learner would with the AWS CLI."""

    def apply(aws, stack):
        ec2, rds, ec = aws("ec2"), aws("rds"), aws("elasticache")
        groups, subnets, instance = _ids(aws, stack)
        if name == "db-open-to-world":
            ec2.authorize_security_group_ingress(GroupId=groups["sg.db"], IpProtocol="tcp", FromPort=5432, ToPort=5432,
                                                 CidrIp="0.0.0.0/0")
        elif name == "db-public":
            rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-db", PubliclyAccessible=True, ApplyImmediately=True)
        elif name == "cache-rule-revoked":
            ec2.revoke_security_group_ingress(GroupId=groups["sg.cache"], SecurityGroupRuleIds=_rule_ids(
                ec2, groups["sg.cache"], egress=False, port=6379, peer=groups["sg.app"]))
        elif name == "host-egress-to-db-revoked":
            ec2.revoke_security_group_egress(GroupId=groups["sg.app"], SecurityGroupRuleIds=_rule_ids(
                ec2, groups["sg.app"], egress=True, port=5432, peer=groups["sg.db"]))
        elif name == "public-subnet-in-db-group":
            rds.modify_db_subnet_group(DBSubnetGroupName=f"{stack}-db", SubnetIds=[
                subnets["network.subnet.private-a"], subnets["network.subnet.private-b"], subnets["network.subnet.public"]])
        elif name == "backups-off":
            rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-db", BackupRetentionPeriod=0, ApplyImmediately=True)
        elif name == "imdsv1-allowed":
            ec2.modify_instance_metadata_options(InstanceId=instance, HttpTokens="optional")
        elif name == "ssh-open-to-world":
            ec2.authorize_security_group_ingress(GroupId=groups["sg.app"], IpProtocol="tcp", FromPort=22, ToPort=22,
                                                 CidrIp="0.0.0.0/0")
        elif name == "replica-deleted":
            rds.delete_db_instance(DBInstanceIdentifier=f"{stack}-db-replica-1", SkipFinalSnapshot=True)
        elif name == "multi-az-off":
            rds.modify_db_instance(DBInstanceIdentifier=f"{stack}-db", MultiAZ=False, ApplyImmediately=True)
        elif name == "cache-group-removed":
            default = ec2.describe_security_groups(Filters=[
                {"Name": "vpc-id", "Values": [ec2.describe_security_groups(GroupIds=[groups["sg.app"]])["SecurityGroups"][0]["VpcId"]]},
                {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
            ec.modify_replication_group(ReplicationGroupId=f"{stack}-cache", SecurityGroupIds=[default], ApplyImmediately=True)
        elif name == "host-terminated":
            ec2.terminate_instances(InstanceIds=[instance])
        else:  # pragma: no cover
            raise ValueError(name)

    return apply


FAULTS = [
    ("db-open-to-world", "security.data-ports-not-world", "revoke-security-group-ingress"),
    ("db-public", "security.db-not-public", "--no-publicly-accessible"),
    ("cache-rule-revoked", "path.app-to-cache", "authorize-security-group-ingress"),
    ("host-egress-to-db-revoked", "path.app-to-db", "authorize-security-group-egress"),
    ("public-subnet-in-db-group", "network.db-subnets-private", "remove"),
    ("backups-off", "spec.db.backups", "--backup-retention-period 7"),
    ("imdsv1-allowed", "security.host-imdsv2", "--http-tokens required"),
    ("ssh-open-to-world", "security.ssh-not-world", "revoke-security-group-ingress"),
    ("replica-deleted", "inventory.db.replica.1", "awslab up"),
    ("multi-az-off", "spec.db.multi-az", "--multi-az"),
    ("cache-group-removed", "path.app-to-cache", "authorize-security-group-ingress"),
    ("host-terminated", "inventory.host.instance", "awslab up"),
]


@pytest.mark.parametrize("fault, failing, fix", FAULTS, ids=[f[0] for f in FAULTS])
def test_verify__a_fault_fails_exactly_its_check_with_a_fix(awslab, local, aws, stack, fault, failing, fix):
    assert awslab("up", "week6", "--name", stack).code == 0
    _fault(fault)(aws, stack)
    result, checks = _verify(awslab, stack)
    assert result.code == 1, result.err
    failed = {c["id"]: c for c in checks if c["status"] == "FAIL"}
    assert set(failed) == {failing}, failed
    assert fix in failed[failing]["hint"]
    # Unrelated checks still pass (live checks are SKIP locally; a few need what the fault removed).
    not_pass = {c["id"] for c in checks if c["status"] != "PASS" and not c["id"].startswith("live.")}
    assert not_pass - {failing} <= {"spec.db.replica.1", "security.host-imdsv2"}, not_pass
    text = awslab("verify", "--name", stack)
    assert "to fix:" in text.out and failing in text.out
    awslab("down", "--name", stack, "--yes", "--skip-final-snapshot")


# --- the evaluator, without AWS -----------------------------------------------------------------

def _perm(port, groups=(), cidrs=(), v6=(), proto="tcp", to=None):
    return {"IpProtocol": proto, "FromPort": port, "ToPort": to if to is not None else port,
            "UserIdGroupPairs": [{"GroupId": g} for g in groups], "IpRanges": [{"CidrIp": c} for c in cidrs],
            "Ipv6Ranges": [{"CidrIpv6": c} for c in v6]}


GROUPS = {
    "sg-db": {"GroupId": "sg-db", "IpPermissions": [_perm(5432, groups=["sg-app"])], "IpPermissionsEgress": []},
    "sg-app": {"GroupId": "sg-app", "IpPermissions": [],
               "IpPermissionsEgress": [_perm(5432, cidrs=["10.60.10.0/23"]), _perm(443, cidrs=["0.0.0.0/0"])]},
    "sg-wide": {"GroupId": "sg-wide", "IpPermissions": [_perm(0, proto="-1", cidrs=["10.0.0.0/8"]), _perm(22, v6=["::/0"])],
                "IpPermissionsEgress": []},
}
HOST = Peer(frozenset({"sg-app"}), ("10.60.0.5/32",))
DB = Peer(frozenset({"sg-db"}), ("10.60.10.0/24", "10.60.11.0/24"))


def test_groups_admit__by_group_reference_not_by_membership_of_another_group():
    assert groups_admit(GROUPS, frozenset({"sg-db"}), "ingress", 5432, HOST) == ["sg-db ingress tcp/5432 from group sg-app"]
    stranger = Peer(frozenset({"sg-other"}), ("10.60.0.9/32",))
    assert groups_admit(GROUPS, frozenset({"sg-db"}), "ingress", 5432, stranger) == []
    assert groups_admit(GROUPS, frozenset({"sg-db"}), "ingress", 3306, HOST) == []


def test_groups_admit__cidr_must_contain_every_address_of_the_peer():
    assert groups_admit(GROUPS, frozenset({"sg-app"}), "egress", 5432, DB)  # /23 holds both /24s
    half_outside = Peer(frozenset(), ("10.60.10.0/24", "10.60.12.0/24"))
    assert groups_admit(GROUPS, frozenset({"sg-app"}), "egress", 5432, half_outside) == []


def test_groups_admit__all_traffic_rules_and_rules_are_unions_across_groups():
    anyone_inside = Peer(frozenset(), ("10.1.2.3/32",))
    assert groups_admit(GROUPS, frozenset({"sg-db", "sg-wide"}), "ingress", 6379, anyone_inside) == [
        "sg-wide ingress all traffic from 10.0.0.0/8"]


def test_world_open__ipv4_and_ipv6():
    assert world_open(GROUPS, frozenset({"sg-wide"}), 22) == ["sg-wide ingress tcp/22 from ::/0"]
    assert world_open(GROUPS, frozenset({"sg-app", "sg-db"}), 443) == []  # egress to the world is not exposure


def test_nacls__first_match_wins_and_replies_need_ephemeral_ports():
    entries = [
        {"RuleNumber": 100, "Egress": False, "Protocol": "6", "PortRange": {"From": 5432, "To": 5432},
         "CidrBlock": "10.60.0.0/24", "RuleAction": "deny"},
        {"RuleNumber": 200, "Egress": False, "Protocol": "-1", "CidrBlock": "0.0.0.0/0", "RuleAction": "allow"},
        {"RuleNumber": 32767, "Egress": False, "Protocol": "-1", "CidrBlock": "0.0.0.0/0", "RuleAction": "deny"},
    ]
    assert not nacl_allows(entries, False, (5432, 5432), "10.60.0.5/32")
    assert nacl_allows(entries, False, (5432, 5432), "10.70.0.5/32")
    assert not nacl_allows(entries, True, (1024, 65535), "10.60.0.5/32")  # no egress entries: denied
    nacls = [{"NetworkAclId": "acl-1", "IsDefault": True, "Associations": [], "Entries": entries}]
    problems = nacls_allow_flow(nacls, "subnet-host", "10.60.0.5/32", "subnet-db", "10.60.10.0/24", 5432)
    assert "acl-1 inbound tcp/5432 from 10.60.0.5/32" in problems and any("replies" in p for p in problems)


def test_internet_route__explicit_association_then_the_main_table():
    tables = [
        {"RouteTableId": "rtb-main", "Associations": [{"Main": True}],
         "Routes": [{"DestinationCidrBlock": "10.60.0.0/16", "GatewayId": "local"}]},
        {"RouteTableId": "rtb-pub", "Associations": [{"SubnetId": "subnet-pub"}],
         "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}]},
        {"RouteTableId": "rtb-v6", "Associations": [{"SubnetId": "subnet-v6"}],
         "Routes": [{"DestinationIpv6CidrBlock": "::/0", "GatewayId": "igw-2"}]},
    ]
    assert internet_route(tables, "subnet-pub") == "igw-1"
    assert internet_route(tables, "subnet-v6") == "igw-2"
    assert internet_route(tables, "subnet-private") is None  # falls back to the main table


def test_live_script__carries_arns_not_secrets_and_parses_only_real_connections():
    from awslab.verify.results import FAIL, PASS
    from awslab.verify.ssm import LiveTarget, live_script, parse_live

    script = live_script([LiveTarget("db", "db.example", 5432, "arn:aws:secretsmanager:r:1:secret:rds!db-x", "postgres", "labadmin", "lab"),
                          LiveTarget("cache", "cache.example", 6379, "arn:aws:secretsmanager:r:1:secret:awslab/s/cache-auth-token-y")],
                         "eu-west-1")
    assert "rds!db-x" in script and "cache-auth-token-y" in script and "--region eu-west-1" in script
    assert "PGPASSWORD=" in script and "REDISCLI_AUTH=" in script and "--tls" in script and "sslmode=require" in script
    # moto's SSM answers "Success" with empty output: that is no connection.
    assert parse_live("", "db", "SELECT 1")[0] == FAIL
    assert parse_live("AWSLAB db tcp FAIL\n", "db", "SELECT 1") == (FAIL, "TCP connect failed or timed out (5 s)")
    status, detail = parse_live("AWSLAB db tcp OK 3\nAWSLAB db login OK 12\n", "db", "SELECT 1")
    assert status == PASS and "TCP connect 3 ms" in detail and "SELECT 1 12 ms" in detail
    assert parse_live("AWSLAB cache tcp OK 2\nAWSLAB cache login FAIL\n", "cache", "PING")[0] == FAIL
    assert "not tried" in parse_live("AWSLAB cache tcp OK 2\nAWSLAB cache login NOCLIENT\n", "cache", "PING")[1]


def test_live_on_a_real_target__ssm_answering_without_output_is_not_a_pass(awslab, local, stack):
    # --target aws at the local endpoint: SSM "succeeds" but runs nothing, as moto does.
    assert awslab("up", "week6", "--name", stack, "--target", "aws", "--region", "us-east-1",
                  "--endpoint-url", local.endpoint_url, "--yes").code == 0
    result = awslab("verify", "--check", "live", "--output", "json")
    checks = json.loads(result.out)
    assert {c["id"]: c["status"] for c in checks} == {"live.host-to-db": "FAIL", "live.host-to-cache": "FAIL"}
    assert result.code == 1
    # The command was sent and waited for until SSM said it was over.
    assert all(re.search(r"\(SSM command [0-9a-f-]{36}: Success\)", c["detail"]) for c in checks), checks
    awslab("down", "--yes", "--skip-final-snapshot")


def test_verify__an_explicit_security_override_is_a_warn_not_silence(awslab, local, stack):
    refused = awslab("up", "week6", "--name", stack, "--set", "database.storage_encrypted=false")
    assert refused.code == 2 and "security.allow_unencrypted_storage" in refused.err
    up = awslab("up", "week6", "--name", stack, "--set", "database.storage_encrypted=false",
                "--set", "security.allow_unencrypted_storage=true", "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    result, checks = _verify(awslab, stack)
    by_id = {c["id"]: c for c in checks}
    assert by_id["security.db-encrypted"]["status"] == "WARN" and result.code == 0
    awslab("down", "--name", stack, "--yes", "--skip-final-snapshot")


# --- the checks as pure functions of a hand-built World (no AWS) -------------------------------------

def _world(db: dict, groups: dict):
    from awslab.spec.model import Found
    from awslab.verify.checks import World

    return World("s", {"db.primary": Found("db.primary", "db-instance", db["DBInstanceIdentifier"], "available",
                                           attrs={"raw": db})}, groups=groups, is_local=False, region="us-east-1")


def _db(public: bool = False) -> dict:
    return {"DBInstanceIdentifier": "s-db", "PubliclyAccessible": public,
            "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-db", "Status": "active"}]}


def _by_id(results) -> dict:
    return {r.id: r for r in results}


def test_check_security__a_public_db_fails_rds2_with_the_fix():
    from awslab.spec.lab import load_lab
    from awslab.verify.checks import check_security
    from awslab.verify.results import FAIL, PASS

    lab = load_lab("week6")
    private = _by_id(check_security(_world(_db(), {"sg-db": {"GroupId": "sg-db", "IpPermissions": []}}), lab))
    assert private["security.db-not-public"].status == PASS
    public = _by_id(check_security(_world(_db(public=True), {"sg-db": {"GroupId": "sg-db", "IpPermissions": []}}), lab))
    failed = public["security.db-not-public"]
    assert failed.status == FAIL and failed.control == "RDS.2" and "--no-publicly-accessible" in failed.hint


def test_check_security__the_db_port_open_to_the_world_fails_naming_the_group_and_the_revoke():
    from awslab.spec.lab import load_lab
    from awslab.verify.checks import check_security
    from awslab.verify.results import FAIL, PASS

    lab = load_lab("week6")
    rule = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    open_ = _by_id(check_security(_world(_db(), {"sg-db": {"GroupId": "sg-db", "IpPermissions": [rule]}}), lab))
    result = open_["security.data-ports-not-world"]
    assert result.status == FAIL and "sg-db" in result.detail and "revoke-security-group-ingress --group-id sg-db" in result.hint
    narrow = {**rule, "IpRanges": [{"CidrIp": "10.60.0.0/16"}]}
    closed = _by_id(check_security(_world(_db(), {"sg-db": {"GroupId": "sg-db", "IpPermissions": [narrow]}}), lab))
    assert closed["security.data-ports-not-world"].status == PASS
