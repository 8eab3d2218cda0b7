"""ElastiCache Redis: the cache subnet group, the AUTH token's secret and the replication group.

The AUTH token is generated here, stored only in Secrets Manager (tagged with the stack) and read
back only to create the group; it is never printed or logged. Transit encryption is on (AWS
accepts an AUTH token only with it), so are at-rest encryption, a replica in the second AZ and
automatic failover.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from botocore.exceptions import ClientError

from awslab.aws._common import availability_zones, owned, snapshot_ready, stack_arns
from awslab.spec.model import (
    Change,
    Desired,
    Found,
    Setting,
    changes_in_place,
    modify_arguments,
    parameters,
)
from awslab.engine.run import NOT_VISIBLE_GRACE_S, Run, create_or_adopt
from awslab.engine.waiting import (
    GONE,
    error_code,
    ignoring,
    retry_eventual,
    status_probe,
    unless_missing,
    visible_within,
)
from awslab.errors import OperationError
from awslab.spec import cfn, pricing
from awslab.spec.tags import (
    TAG_RESOURCE,
    TAG_RESTORED_FROM,
    from_tag_list,
    origin_tags,
    owned_by,
)
from awslab.spec.topology import PRIVATE_SUBNETS, names

_subnet_group_in_use = retry_eventual({"CacheSubnetGroupInUse"}, within_s=15 * 60)


def new_auth_token() -> str:
    # 64 URL-safe characters: within AUTH's 16-128 printable characters, none of the forbidden @ " /.
    return secrets.token_urlsafe(48)


def tags_of(run: Run, arn: str) -> dict[str, str]:
    return from_tag_list(run.client("elasticache").list_tags_for_resource(ResourceName=arn).get("TagList"))


def discover(run: Run) -> list[Found]:
    ec = run.client("elasticache")
    nm = names(run.stack, run.ctx.region)
    out: list[Found] = []
    group = unless_missing(lambda: ec.describe_replication_groups(ReplicationGroupId=nm["cache.group"])["ReplicationGroups"][0],
                           "ReplicationGroupNotFoundFault")
    if group and owned(run, group["ARN"], lambda arn: tags_of(run, arn)):
        out.append(Found("cache.group", "replication-group", group["ReplicationGroupId"], group["Status"],
                             created=group.get("ReplicationGroupCreateTime"), attrs=_group_attrs(group)))
    # Groups restored from snapshots join the stack under their own names: the tagging index finds them.
    for arn in sorted(a for a in stack_arns(run) if ":replicationgroup:" in a):
        gid = arn.rsplit(":", 1)[1]
        if gid == nm["cache.group"]:
            continue
        extra = unless_missing(lambda: ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0],
                               "ReplicationGroupNotFoundFault")
        if extra is None:
            continue
        tags = tags_of(run, arn)
        key = tags.get(TAG_RESOURCE) or f"cache.restored.{gid}"
        out.append(Found(key, "replication-group", gid, extra["Status"], created=extra.get("ReplicationGroupCreateTime"),
                         attrs={**_group_attrs(extra), "restored_from": tags.get(TAG_RESTORED_FROM)}))
    sg = unless_missing(lambda: ec.describe_cache_subnet_groups(CacheSubnetGroupName=nm["cache.subnet-group"])["CacheSubnetGroups"][0],
                        "CacheSubnetGroupNotFoundFault")
    if sg and owned(run, sg["ARN"], lambda arn: tags_of(run, arn)):
        out.append(Found("cache.subnet-group", "cache-subnet-group", sg["CacheSubnetGroupName"], "available",
                         attrs={"arn": sg["ARN"], "vpc": sg.get("VpcId"), "raw": sg}))
    secret = unless_missing(lambda: run.client("secretsmanager").describe_secret(SecretId=nm["cache.auth-token"]),
                            "ResourceNotFoundException")
    if secret and owned_by(from_tag_list(secret.get("Tags")), run.stack) and not secret.get("DeletedDate"):
        out.append(Found("cache.auth-token", "secret", secret["Name"], "available", created=secret.get("CreatedDate"),
                         attrs={"arn": secret["ARN"]}))
    return out


def _group_attrs(group: dict) -> dict:
    node_groups = group.get("NodeGroups") or [{}]
    primary = node_groups[0].get("PrimaryEndpoint") or {}
    reader = node_groups[0].get("ReaderEndpoint") or {}
    return {
        "raw": group,
        "arn": group.get("ARN"), "endpoint": primary.get("Address"), "port": primary.get("Port"),
        "reader_endpoint": reader.get("Address"), "members": group.get("MemberClusters", []),
        "node_type": group.get("CacheNodeType"), "failover": group.get("AutomaticFailover"),
        "transit_encryption": group.get("TransitEncryptionEnabled"), "at_rest_encryption": group.get("AtRestEncryptionEnabled"),
    }


def member_clusters(run: Run, group_id: str) -> list[dict]:
    """The replication group's member clusters: where AWS reports the cache's security groups."""
    ec = run.client("elasticache")
    out = []
    for page in ec.get_paginator("describe_cache_clusters").paginate(ShowCacheNodeInfo=True):
        out += [c for c in page["CacheClusters"] if c.get("ReplicationGroupId") == group_id]
    return out


class CacheSubnetGroup:
    kind = "cache-subnet-group"
    capabilities = frozenset({"export"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        return cfn.Export({"CacheSubnetGroup": {"Type": "AWS::ElastiCache::SubnetGroup", "Properties": {
            "CacheSubnetGroupName": x.name("cache.subnet-group"), "Description": cfn.sub(f"awslab {cfn.STACK}: ElastiCache"),
            "SubnetIds": [cfn.ref(cfn.LOGICAL[key]) for key in PRIVATE_SUBNETS], "Tags": cfn.tags("cache.subnet-group", x.lab)}}})

    def create(self, run: Run, d: Desired) -> Found:
        ec = run.client("elasticache")
        group = create_or_adopt(
            run, f"cache subnet group {d.name}",
            lambda: ec.create_cache_subnet_group(
                CacheSubnetGroupName=d.name, CacheSubnetGroupDescription=f"awslab {run.stack}: private subnets in two AZs",
                SubnetIds=[run.ref(k).id for k in PRIVATE_SUBNETS], Tags=run.tag_list(d.key, d.name))["CacheSubnetGroup"],
            "CacheSubnetGroupAlreadyExists",
            lambda: ec.describe_cache_subnet_groups(CacheSubnetGroupName=d.name)["CacheSubnetGroups"][0],
            lambda g: tags_of(run, g["ARN"]))
        return Found(d.key, self.kind, d.name, "available", attrs={"arn": group.get("ARN")})

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("CacheSubnetGroupNotFoundFault"):
            _subnet_group_in_use(run.client("elasticache").delete_cache_subnet_group)(CacheSubnetGroupName=f.id)


class AuthTokenSecret:
    kind = "secret"
    capabilities = frozenset({"cost", "export"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return [pricing.secret_line("cache AUTH token", region)]

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return [pricing.secret_line("cache AUTH token", region)]

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """Generated by Secrets Manager, passed to the group by a dynamic reference (never a parameter)."""
        return cfn.Export({"CacheAuthToken": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": x.name("cache.auth-token"),
            "Description": cfn.sub(f"awslab {cfn.STACK}: AUTH token of the ElastiCache replication group"),
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
            "Tags": cfn.tags("cache.auth-token", x.lab)}}})

    def create(self, run: Run, d: Desired) -> Found:
        sm = run.client("secretsmanager")
        secret = create_or_adopt(
            run, f"secret {d.name}",
            lambda: sm.create_secret(Name=d.name, SecretString=new_auth_token(), Tags=run.tag_list(d.key),
                                     Description=f"awslab {run.stack}: AUTH token of the ElastiCache replication group"),
            "ResourceExistsException", lambda: sm.describe_secret(SecretId=d.name), lambda s: from_tag_list(s.get("Tags")))
        return Found(d.key, self.kind, d.name, "available", attrs={"arn": secret["ARN"]})

    def delete(self, run: Run, f: Found) -> None:
        # No recovery window: the cache it guarded is gone, and a pending deletion would block the
        # name for the next `up` of this stack (and bill for a week).
        with ignoring("ResourceNotFoundException"):
            run.client("secretsmanager").delete_secret(SecretId=f.id, ForceDeleteWithoutRecovery=True)


def _enabled(state: str) -> bool | None:
    """AutomaticFailover as the lab says it: None while it is being enabled or disabled."""
    return {"enabled": True, "disabled": False}.get(state)


# The replication group's settings, declared once with their AWS names (spec/model.Setting): create
# reads the create parameters, `up`'s in-place diff the modify ones, the export the CloudFormation
# properties, verify the checks. The node type goes into the template as a template parameter.
FAILOVER_PARAMETERS = ("AutomaticFailoverEnabled", "MultiAZEnabled")
CACHE_SETTINGS = (
    Setting("cache.engine", "engine", create=("Engine",), cfn=("Engine",)),
    Setting("cache.engine_version", "engine_version", create=("EngineVersion",), cfn=("EngineVersion",)),
    Setting("cache.node_type", "node_type", create=("CacheNodeType",), modify=("CacheNodeType",),
            describe="CacheNodeType", check="spec.cache.node-type"),
    Setting("cache.automatic_failover", "automatic_failover", create=FAILOVER_PARAMETERS, modify=FAILOVER_PARAMETERS,
            describe="AutomaticFailover", cfn=FAILOVER_PARAMETERS, read=_enabled),
    Setting("cache.at_rest_encryption", "at_rest_encryption", create=("AtRestEncryptionEnabled",),
            describe="AtRestEncryptionEnabled", cfn=("AtRestEncryptionEnabled",)),
    Setting("cache.transit_encryption", "transit_encryption", create=("TransitEncryptionEnabled",),
            describe="TransitEncryptionEnabled", cfn=("TransitEncryptionEnabled",)),
    Setting("cache.port", "port", create=("Port",), cfn=("Port",)),
)


class ReplicationGroup:
    kind = "replication-group"
    capabilities = frozenset({"cost", "export", "failover", "ready", "replace", "settings"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        c = d.spec["cache"]
        return pricing.cache_lines(c.node_type, 1 + c.replicas, region)

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return pricing.cache_lines(f.get("node_type") or "?", len(f.get("members") or []) or 1, region)

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The group from its settings table, its nodes over the two private subnets' AZs; its outputs:
        the primary endpoint and the secret holding its AUTH token."""
        c = x.lab.cache
        count = 1 + c.replicas
        return cfn.Export({"Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
            "ReplicationGroupId": x.name("cache.group"),
            "ReplicationGroupDescription": cfn.sub(f"awslab {cfn.STACK}: the lab's Redis"),
            **parameters(CACHE_SETTINGS, c, "cfn"), "CacheNodeType": cfn.ref("CacheNodeType"),
            "NumCacheClusters": count, "PreferredCacheClusterAZs": [x.azs[i % 2] for i in range(count)],
            "CacheSubnetGroupName": cfn.ref("CacheSubnetGroup"), "CacheParameterGroupName": cfn.ref("CacheParameterGroup"),
            "SecurityGroupIds": [cfn.group_id("CacheSecurityGroup")],
            **({"AuthToken": cfn.sub("{{resolve:secretsmanager:${CacheAuthToken}}}")} if c.transit_encryption else {}),
            "Tags": cfn.tags("cache.group", x.lab)}}},
            {"CacheEndpoint": {"Value": {"Fn::GetAtt": ["Cache", "PrimaryEndPoint.Address"]}},
             "CacheAuthTokenSecretArn": {"Value": cfn.ref("CacheAuthToken")}})

    def create(self, run: Run, d: Desired) -> Found:
        return self._create(run, d, f"awslab {run.stack}: Redis primary and replicas")

    def _create(self, run: Run, d: Desired, description: str, **extra) -> Found:
        c = d.spec["cache"]
        ec = run.client("elasticache")
        token = run.client("secretsmanager").get_secret_value(SecretId=run.ref("cache.auth-token").id)["SecretString"]
        azs = availability_zones(run, d.spec)
        count = 1 + c.replicas
        group = create_or_adopt(
            run, f"replication group {d.name}",
            lambda: ec.create_replication_group(
                ReplicationGroupId=d.name, ReplicationGroupDescription=description,
                **parameters(CACHE_SETTINGS, c, "create"),
                CacheParameterGroupName=run.ref("cache.parameter-group").id,
                NumCacheClusters=count, PreferredCacheClusterAZs=[azs[i % 2] for i in range(count)],
                CacheSubnetGroupName=run.ref("cache.subnet-group").id, SecurityGroupIds=[run.ref("sg.cache").id],
                # AWS takes an AUTH token only with in-transit encryption.
                **({"AuthToken": token} if c.transit_encryption else {}),
                Tags=run.tag_list(d.key, d.name) + origin_tags(d), **extra,
            )["ReplicationGroup"],
            "ReplicationGroupAlreadyExists",
            lambda: ec.describe_replication_groups(ReplicationGroupId=d.name)["ReplicationGroups"][0],
            lambda g: tags_of(run, g["ARN"]))
        found = Found(d.key, "replication-group", d.name, group["Status"], attrs=_group_attrs(group))
        return self.ready(run, d, found)

    def drift(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        c, raw = d.spec["cache"], f.get("raw") or {}
        have = len(raw.get("MemberClusters") or []) - 1
        if raw.get("MemberClusters") and have != c.replicas:
            return (f"cache.replicas: {have} -> {c.replicas} (awslab does not change a group's replica count in "
                    "place yet: AWS's IncreaseReplicaCount / DecreaseReplicaCount)")
        return None

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        """What ModifyReplicationGroup changes in place that differs from the lab (CACHE_SETTINGS)."""
        return changes_in_place(CACHE_SETTINGS, d.spec["cache"], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        run.client("elasticache").modify_replication_group(ReplicationGroupId=f.id, ApplyImmediately=True,
                                                           **modify_arguments(CACHE_SETTINGS, changes))
        return self.ready(run, d, replace(f, state="modifying"))

    def _probe(self, run: Run, f: Found, latest: dict):
        ec = run.client("elasticache")
        return status_probe(lambda: ec.describe_replication_groups(ReplicationGroupId=f.id)["ReplicationGroups"][0],
                            "Status", {"ReplicationGroupNotFoundFault"}, latest)

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        latest: dict = {}
        probe = visible_within(self._probe(run, f, latest), NOT_VISIBLE_GRACE_S, run.clock)
        state = run.wait(f.key, f"ElastiCache replication group {f.id}", probe,
                         done={"available"}, failed={"create-failed", GONE, "deleting"}, kind=self.kind)
        return replace(f, state=state, attrs={**f.attrs, **_group_attrs(latest)})

    def delete(self, run: Run, f: Found) -> None:
        latest: dict = {}
        probe = self._probe(run, f, latest)
        state = run.wait(f.key, f"ElastiCache replication group {f.id} to be deletable", probe,
                         done={"available", "deleting", "create-failed", GONE}, kind=self.kind)
        if state == GONE:
            return
        if state != "deleting":
            with ignoring("ReplicationGroupNotFoundFault", "InvalidReplicationGroupState"):
                run.client("elasticache").delete_replication_group(ReplicationGroupId=f.id, RetainPrimaryCluster=False)
        run.wait(f.key, f"ElastiCache replication group {f.id} to be deleted", probe, done={GONE}, kind=self.kind)

    def failover(self, run: Run, f: Found) -> Found:
        """TestFailover on the group's node group and wait until available; the result in attrs["failover"]."""
        before, _ = _primary_node(run, f.id)
        started = run.clock.now()
        try:
            run.client("elasticache").test_failover(ReplicationGroupId=f.id, NodeGroupId="0001")
        except ClientError as exc:
            if error_code(exc) in ("InvalidReplicationGroupState", "APICallRateForCustomerExceeded"):
                raise OperationError(f"ElastiCache refused the failover: {exc.response['Error'].get('Message')}") from None
            raise
        state = run.wait(f.key, f"ElastiCache replication group {f.id} to fail over", lambda: _primary_node(run, f.id)[1],
                         done={"available"}, kind=self.kind)
        result = {"primary_before": before, "primary_after": _primary_node(run, f.id)[0], "seconds": run.clock.now() - started}
        return replace(f, state=state, attrs={**f.attrs, "failover": result})


# --- snapshots, restores, failover --------------------------------------------------------------

def _snapshot_attrs(snap: dict, region: str) -> dict:
    size_mb = 0.0
    for node in snap.get("NodeSnapshots", []) or []:
        text = str(node.get("CacheSize") or "0").split()
        try:
            size_mb += float(text[0]) * (1024 if len(text) > 1 and text[1].upper().startswith("G") else 1)
        except ValueError:
            pass
    return {"raw": snap, "region": region, "type": snap.get("SnapshotSource", "manual"), "size_gib": size_mb / 1024,
            "group": snap.get("ReplicationGroupId"), "arn": snap.get("ARN")}


def discover_snapshots(run: Run) -> list[Found]:
    """The stack's cache snapshots (names derive from the stack; ownership by tags)."""
    ec = run.client("elasticache")
    out = []
    for page in ec.get_paginator("describe_snapshots").paginate():
        for snap in page["Snapshots"]:
            if not snap["SnapshotName"].startswith(f"{run.stack}-"):
                continue
            if owned_by(tags_of(run, snap["ARN"]), run.stack):
                out.append(Found(f"snapshot.cache.{run.ctx.region}.{snap['SnapshotName']}", "cache-snapshot",
                                 snap["SnapshotName"], snap.get("SnapshotStatus", "available"),
                                 attrs=_snapshot_attrs(snap, run.ctx.region)))
    return out


def find_snapshot(run: Run, name: str) -> dict | None:
    snaps = unless_missing(lambda: run.client("elasticache").describe_snapshots(SnapshotName=name)["Snapshots"],
                           "SnapshotNotFoundFault")
    return snaps[0] if snaps else None


class CacheSnapshot:
    kind = "cache-snapshot"
    capabilities = frozenset({"cost"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return []   # its size is known once it is taken: then ``priced``

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return [pricing.snapshot_line(f"ElastiCache snapshot {f.id}", "cache", f.get("size_gib"), f.get("region") or region)]

    def create(self, run: Run, d: Desired) -> Found:
        ec = run.client("elasticache")
        snap = create_or_adopt(
            run, f"cache snapshot {d.name}",
            lambda: ec.create_snapshot(ReplicationGroupId=d.spec["group"], SnapshotName=d.name,
                                       Tags=run.tag_list(d.key))["Snapshot"],
            "SnapshotAlreadyExistsFault", lambda: ec.describe_snapshots(SnapshotName=d.name)["Snapshots"][0],
            lambda snap: tags_of(run, snap["ARN"]))
        f = Found(d.key, self.kind, d.name, snap.get("SnapshotStatus", "creating"), attrs=_snapshot_attrs(snap, run.ctx.region))
        return snapshot_ready(run, f, f"cache snapshot {d.name}",
                              lambda: ec.describe_snapshots(SnapshotName=d.name)["Snapshots"][0], "SnapshotStatus",
                              {"SnapshotNotFoundFault"}, {"failed", GONE}, lambda snap: _snapshot_attrs(snap, run.ctx.region))

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("SnapshotNotFoundFault"):
            run.client("elasticache").delete_snapshot(SnapshotName=f.id)


class CacheRestore(ReplicationGroup):
    """A new replication group seeded from a cache snapshot, with the lab's settings and the
    stack's AUTH token."""

    kind = "cache-restore"
    capabilities = frozenset({"cost", "failover", "ready", "replace", "settings"})

    export = None   # made by `restore`, not part of the lab's template

    def create(self, run: Run, d: Desired) -> Found:
        return self._create(run, d, f"awslab {run.stack}: restored from {d.spec['snapshot']}",
                            SnapshotName=d.spec["snapshot"])


def _primary_node(run: Run, group_id: str) -> tuple[str, str]:
    """(the cache cluster holding the primary role, the group's status)."""
    group = run.client("elasticache").describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    for member in (group.get("NodeGroups") or [{}])[0].get("NodeGroupMembers", []):
        if member.get("CurrentRole") == "primary":
            return member["CacheClusterId"], group["Status"]
    return "?", group["Status"]


def check_failover(run: Run, group_id: str) -> None:
    """Refuse, before anything is sent, a failover of a group that is not available."""
    _, status = _primary_node(run, group_id)
    if status != "available":
        raise OperationError(f"replication group {group_id} is {status}; a failover needs it available")
