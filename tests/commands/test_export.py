"""`awslab export cloudformation`: cfn-lint finds nothing, and the template is the same lab awslab
builds: its resources, names, tags, rules and safety settings (no AWS needed)."""

from __future__ import annotations

import pytest
import yaml
from conftest import cloudformation_created, endpoint_map, eventually

from awslab.commands.export import render_yaml, template
from awslab.spec.lab import load_lab
from awslab.spec.tags import TAG_LAB, TAG_RESOURCE, TAG_STACK
from awslab.spec.topology import desired, names

VARIANTS = {
    "week6": (),
    "ssh, two replicas, Single-AZ": ("host.ssh_cidr=203.0.113.10/32", "database.read_replicas=2",
                                     "database.multi_az=false"),
    "mysql": ("database.engine=mysql", "database.engine_version=8.4", "database.master_username=admin"),
    # A Multi-AZ DB cluster on io1 (Iops required) with a maintenance window; the default cluster
    # (gp3, no Iops) is linted by the cluster test below.
    "cluster, io1": ("database.deployment=cluster", "database.storage_type=io1", "database.allocated_storage_gib=100",
                     "database.iops=1000", "database.maintenance_window=sun:05:00-sun:05:30"),
}
CLUSTER = ["database.deployment=cluster"]


def _lint(text: str) -> list[str]:
    from cfnlint.api import ManualArgs, lint

    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in lint(text, config=ManualArgs(regions=["us-east-1"]))]


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_template__cfn_lint_finds_nothing(overrides):
    text = render_yaml(template(load_lab("week6", None, list(overrides)), "alice"))
    assert "&id" not in text and "*id" not in text   # CloudFormation rejects YAML aliases
    assert _lint(text) == []


def _resolved(value, stack: str, region: str = "us-east-1"):
    """A Fn::Sub of the stack name and region, as CloudFormation resolves it."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${StackName}", stack).replace("${AWS::Region}", region)
    if value == {"Ref": "StackName"}:
        return stack
    return value


def test_the_template__is_the_lab_awslab_builds_named_and_tagged_as_awslab_does():
    lab = load_lab("week6")
    tpl = yaml.safe_load(render_yaml(template(lab, "alice")))
    res = tpl["Resources"]
    tagged = {}
    for logical, r in res.items():
        tags = {t["Key"]: _resolved(t["Value"], "alice") for t in r["Properties"].get("Tags", [])}
        if TAG_RESOURCE in tags:
            assert tags[TAG_STACK] == "alice" and tags[TAG_LAB] == "week6", logical
            tagged[tags[TAG_RESOURCE]] = (logical, r)
    # Every resource `up` makes (the rules are properties of groups here), replicas included.
    wanted = {d.key for d in desired(lab, "alice", "us-east-1")} - {"sg.rules"}
    assert set(tagged) == wanted
    nm = names("alice", "us-east-1")
    by = {k: r["Properties"] for k, (_, r) in tagged.items()}
    assert _resolved(by["db.primary"]["DBInstanceIdentifier"], "alice") == nm["db.primary"]
    assert _resolved(by["cache.group"]["ReplicationGroupId"], "alice") == nm["cache.group"]
    assert _resolved(by["cache.auth-token"]["Name"], "alice") == nm["cache.auth-token"]
    assert _resolved(by["db.replica.1"]["DBInstanceIdentifier"], "alice") == "alice-db-replica-1"
    assert _resolved(res["HostInstanceProfile"]["Properties"]["InstanceProfileName"], "alice") == nm["host.profile"]
    for key in ("sg.app", "sg.db", "sg.cache", "db.subnet-group", "cache.subnet-group"):
        field = {"sg": "GroupName", "db": "DBSubnetGroupName", "cache": "CacheSubnetGroupName"}[key.split(".")[0]]
        assert _resolved(by[key][field], "alice") == nm[key]

    # awslab's rules for money and data.
    db = res["Db"]
    assert db["DeletionPolicy"] == "Snapshot" and db["UpdateReplacePolicy"] == "Snapshot"
    assert db["Properties"]["ManageMasterUserPassword"] is True and "MasterUserPassword" not in db["Properties"]
    assert db["Properties"]["StorageEncrypted"] and db["Properties"]["MultiAZ"] and not db["Properties"]["PubliclyAccessible"]
    assert db["Properties"]["EngineVersion"].startswith("16.") and db["Properties"]["BackupRetentionPeriod"] == 7
    cache = res["Cache"]["Properties"]
    assert cache["TransitEncryptionEnabled"] and cache["AtRestEncryptionEnabled"] and cache["NumCacheClusters"] == 2
    assert cache["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${CacheAuthToken}}}"}   # never a parameter
    launch = res["HostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert launch["HttpTokens"] == "required"
    opens = [r for r in res.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert {(o["Properties"]["FromPort"], next(iter(o["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"])))
            for o in opens} == {(5432, "AppSecurityGroup"), (6379, "AppSecurityGroup")}
    assert not any(o["Properties"].get("CidrIp") for o in opens)   # no port open to the world
    assert {"DbEndpoint", "DbMasterSecretArn", "CacheEndpoint", "CacheAuthTokenSecretArn"} <= set(tpl["Outputs"])


def test_the_cluster_template__is_the_cluster_up_makes_with_the_settings_up_sends(monkeypatch):
    """A Multi-AZ DB cluster in place of the instance and its replicas (a cluster has none), its
    settings those CreateDBCluster sends (the same table), cfn-lint finding nothing."""
    from types import SimpleNamespace

    from awslab.aws import db_cluster
    from awslab.spec.model import Desired, Found

    for overrides in (CLUSTER, VARIANTS["cluster, io1"]):
        lab = load_lab("week6", None, list(overrides))
        tpl = yaml.safe_load(render_yaml(template(lab, "alice", list(overrides))))
        res = tpl["Resources"]
        keys = {t["Value"] for r in res.values() for t in r["Properties"].get("Tags", []) if t["Key"] == TAG_RESOURCE}
        assert keys == {d.key for d in desired(lab, "alice", "us-east-1")} - {"sg.rules"}
        assert not [r for r in res.values() if r["Type"] == "AWS::RDS::DBInstance"]
        assert lab.database.read_replicas == 1   # the lab's, which a cluster's readable standbys serve

        # What `up` sends: DbCluster.create against a stub RDS client that keeps the request.
        sent: dict = {}

        class Rds:
            def create_db_cluster(self, **kw):
                sent.update(kw)
                return {"DBCluster": {"Status": "creating"}}

        refs = {"db.cluster-parameter-group": "alice-db-cluster", "db.subnet-group": "alice-db", "sg.db": "sg-1"}
        run = SimpleNamespace(client=lambda service: Rds(), ref=lambda key: Found(key, "x", refs[key], "available"),
                              tag_list=lambda key, name: [], stack="alice")
        monkeypatch.setattr(db_cluster.DbCluster, "ready", lambda self, run, d, f: f)
        db_cluster.DbCluster().create(run, Desired("db.cluster", "db-cluster", "alice-db", (), {"database": lab.database}))

        # The template's references as CloudFormation resolves them in a stack named "alice".
        by_ref = {"DbSubnetGroup": refs["db.subnet-group"], "DbClusterParameterGroup": refs["db.cluster-parameter-group"],
                  "DbClusterInstanceClass": tpl["Parameters"]["DbClusterInstanceClass"]["Default"]}

        def resolved(value):
            if isinstance(value, list):
                return [resolved(v) for v in value]
            if isinstance(value, dict) and "Ref" in value:
                return by_ref[value["Ref"]]
            if value == {"Fn::GetAtt": ["DbSecurityGroup", "GroupId"]}:
                return refs["sg.db"]
            return _resolved(value, "alice")

        props = {k: resolved(v) for k, v in res["DbCluster"]["Properties"].items()}
        # Every parameter `up` sends, the same in the template (the engine version aside: a major
        # sent, RDS's minor for it written; the tags: CloudFormation's own values, checked above).
        assert set(sent) - {"Tags"} == set(props) - {"Tags"}
        assert {k: v for k, v in props.items() if k not in ("EngineVersion", "Tags")} == {
            k: v for k, v in sent.items() if k not in ("EngineVersion", "Tags")}
        assert props["EngineVersion"].startswith(sent["EngineVersion"] + ".")
        assert ("Iops" in props) == (lab.database.storage_type == "io1")
        assert res["DbCluster"]["DeletionPolicy"] == res["DbCluster"]["UpdateReplacePolicy"] == "Snapshot"
        assert _resolved(props["DBClusterIdentifier"], "alice") == names("alice", "us-east-1")["db.cluster"]
        group = res["DbClusterParameterGroup"]["Properties"]
        assert _resolved(group["DBClusterParameterGroupName"], "alice") == "alice-db-cluster"
        assert group["Parameters"] == {"rds.force_ssl": "1"}
        assert len(res["DbSubnetGroup"]["Properties"]["SubnetIds"]) == 3
        assert {o: tpl["Outputs"][o]["Value"]["Fn::GetAtt"] for o in ("DbEndpoint", "DbReaderEndpoint")} == {
            "DbEndpoint": ["DbCluster", "Endpoint.Address"], "DbReaderEndpoint": ["DbCluster", "ReadEndpoint.Address"]}
    # The default cluster (gp3 under 400 GiB: no Iops, as RDS requires there); io1 is in VARIANTS.
    assert _lint(render_yaml(template(load_lab("week6", None, CLUSTER), "alice", CLUSTER))) == []


def test_export_cli__writes_the_file_and_refuses_a_bad_name(awslab, tmp_path):
    out = tmp_path / "lab.yaml"
    done = awslab("export", "cloudformation", "week6", "--name", "alice", "-o", str(out))
    assert done.code == 0 and yaml.safe_load(out.read_text())["Parameters"]["StackName"]["Default"] == "alice"
    bad = awslab("export", "cloudformation", "week6", "--name", "Bad_Name")
    assert bad.code == 2 and "invalid stack name 'Bad_Name'" in bad.err and bad.out == ""
    # A folder that does not exist: one line, exit 2 (was "unexpected FileNotFoundError"), for the diagram too.
    for args in (("export", "cloudformation", "week6"), ("diagram",)):
        nowhere = awslab(*args, "-o", str(tmp_path / "no-such-folder" / "lab.svg"))
        assert nowhere.code == 2 and nowhere.err.count("\n") == 1, nowhere.err
        assert "the folder" in nowhere.err and "does not exist" in nowhere.err


@pytest.mark.lifecycle
@pytest.mark.engines
def test_deployed_on_the_local_aws__verify_passes_as_after_up_and_down_removes_it(awslab, engines, stack):
    import json
    import os

    import boto3

    keys = {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    cfn = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=engines.endpoint_url, **keys)
    made, built = f"{stack}-cfn", f"{stack}-up"
    text = render_yaml(template(load_lab("week6"), made))
    cfn.create_stack(StackName=made, TemplateBody=text, Capabilities=["CAPABILITY_NAMED_IAM"])
    rds = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url, **keys)
    ec = boto3.client("elasticache", region_name="us-east-1", endpoint_url=engines.endpoint_url, **keys)

    # CREATE_COMPLETE only once every DB instance and the cache are available (moto said it while
    # they were still being made).
    eventually(lambda: cloudformation_created(cfn, rds, ec, made, 2), within_s=60)
    described = cfn.describe_stacks(StackName=made)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs["DbEndpoint"] == f"{made}-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com"
    assert outputs["CacheAuthTokenSecretArn"].split(":secret:")[1].startswith(f"awslab/{made}/cache-auth-token-")

    assert awslab("up", "week6", "--name", built).code == 0

    def checks(name: str) -> dict[str, str]:
        out = awslab("verify", "--name", name, "--output", "json")
        return {r["id"]: r["status"] for r in json.loads(out.out)}

    from_template, from_up = checks(made), checks(built)
    assert from_template == from_up and set(from_template.values()) == {"PASS"}
    assert {"live.host-to-db", "live.db.replica.1", "live.host-to-cache", "path.app-to-db"} <= set(from_template)

    down = awslab("down", "--name", made, "--yes", "--output", "json")
    assert down.code == 0, down.err
    assert awslab("status", "--name", made, "--output", "json").out.count('"key"') == 0
    snaps = boto3.client("rds", region_name="us-east-1", endpoint_url=engines.endpoint_url, **keys).describe_db_snapshots(
        SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].startswith(f"{made}-db-final-") for s in snaps
            if s["DBInstanceIdentifier"] == f"{made}-db"] == [True]
    assert awslab("down", "--name", built, "--yes", "--delete-snapshots").code == 0
    assert awslab("down", "--name", made, "--yes", "--delete-snapshots").code == 0


@pytest.mark.lifecycle
@pytest.mark.engines
def test_cluster_deployed_on_the_local_aws__verify_passes_as_after_up_and_the_stack_deletes_it_keeping_a_snapshot(
        awslab, engines, stack):
    """The cluster template on the local AWS's CloudFormation: made as CreateDBCluster makes it (three
    members, real engines), CREATE_COMPLETE once they serve, its outputs the cluster's endpoints,
    verify as after `up` of the same lab; DeleteStack deletes it with a final DB cluster snapshot."""
    import json
    import os

    import boto3

    keys = {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    cfn, rds = (boto3.client(s, region_name="us-east-1", endpoint_url=engines.endpoint_url, **keys) for s in ("cloudformation", "rds"))
    made, built = f"{stack}-cfn", f"{stack}-up"
    cfn.create_stack(StackName=made, TemplateBody=render_yaml(template(load_lab("week6", None, CLUSTER), made, CLUSTER)),
                     Capabilities=["CAPABILITY_NAMED_IAM"])

    def complete() -> bool:
        status = cfn.describe_stacks(StackName=made)["Stacks"][0]["StackStatus"]
        if status != "CREATE_COMPLETE":
            assert status == "CREATE_IN_PROGRESS", status
            return False
        cluster = rds.describe_db_clusters(DBClusterIdentifier=f"{made}-db")["DBClusters"][0]
        members = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [f"{made}-db"]}])["DBInstances"]
        assert cluster["Status"] == "available" and [m["DBInstanceStatus"] for m in members] == ["available"] * 3
        return True

    eventually(complete, within_s=90)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=f"{made}-db")["DBClusters"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=made)["Stacks"][0]["Outputs"]}
    assert (outputs["DbEndpoint"], outputs["DbReaderEndpoint"], outputs["DbMasterSecretArn"]) == (
        cluster["Endpoint"], cluster["ReaderEndpoint"], cluster["MasterUserSecret"]["SecretArn"])
    assert cluster["DBClusterParameterGroup"] == f"{made}-db-cluster" and cluster["StorageEncrypted"]
    assert not [r for r in rds.describe_db_instances()["DBInstances"] if r["DBInstanceIdentifier"].startswith(f"{made}-db-replica")]
    # Real engines behind the writer and the reader endpoints, as after CreateDBCluster.
    endpoints = [f"{cluster[e]}:{cluster['Port']}" for e in ("Endpoint", "ReaderEndpoint")]
    assert [endpoint_map(engines).get(e, {}).get("status") for e in endpoints] == ["available", "available"]

    assert awslab("up", "week6", "--name", built, "--set", CLUSTER[0]).code == 0

    def checks(name: str) -> dict[str, str]:
        out = awslab("verify", "--name", name, "--output", "json")
        return {r["id"]: r["status"] for r in json.loads(out.out)}

    from_template, from_up = checks(made), checks(built)
    # Every check passes, the live ones through the cluster's writer and reader endpoints too.
    assert from_template == from_up, (from_template, from_up)
    assert {k for k, v in from_template.items() if v != "PASS"} == set()
    assert {"live.host-to-db", "live.db-reader"} <= set(from_template)
    assert {"live.host-to-cache", "inventory.db.cluster", "spec.db.multi-az", "spec.db.parameters"} <= set(from_template)

    cfn.delete_stack(StackName=made)

    def deleted() -> bool:
        listed = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == made]
        return all(s["StackStatus"] == "DELETE_COMPLETE" for s in listed) and not rds.describe_db_instances(
            Filters=[{"Name": "db-cluster-id", "Values": [f"{made}-db"]}])["DBInstances"]

    eventually(deleted, within_s=60)
    finals = [s["DBClusterSnapshotIdentifier"] for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")[
        "DBClusterSnapshots"] if s["DBClusterIdentifier"] == f"{made}-db"]
    assert len(finals) == 1 and finals[0].startswith(f"{made}-snapshot-dbcluster-"), finals
    assert not set(endpoints) & set(endpoint_map(engines))
    assert awslab("status", "--name", made, "--output", "json").out.count('"key"') == 0
    assert awslab("down", "--name", built, "--yes", "--delete-snapshots").code == 0
    assert awslab("down", "--name", made, "--yes", "--delete-snapshots").code == 0
    assert not [s for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
                if s["DBClusterIdentifier"] == f"{made}-db"]
