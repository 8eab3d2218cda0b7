"""ElastiCache Redis: the cache subnet group, the AUTH token's secret and the replication group.

The AUTH token is generated here, stored only in Secrets Manager (tagged with the stack) and read
back only to create the group; it is never printed or logged. Transit encryption is on (AWS
accepts an AUTH token only with it), so are at-rest encryption, a replica in the second AZ and
automatic failover.
"""

from __future__ import annotations

import secrets

from botocore.exceptions import ClientError

from awslab.errors import OwnershipError
from awslab.model import Desired, Found
from awslab.run import Run
from awslab.tagging import owned
from awslab.tags import from_tag_list, owned_by
from awslab.topology import PRIVATE_SUBNETS, names
from awslab.network import availability_zones
from awslab.waiting import GONE, error_code, retry_eventual

_subnet_group_in_use = retry_eventual({"CacheSubnetGroupInUse"}, within_s=15 * 60)


def new_auth_token() -> str:
    # 64 URL-safe characters: within AUTH's 16-128 printable characters, none of the forbidden @ " /.
    return secrets.token_urlsafe(48)


def _tags_of(run: Run, arn: str) -> dict[str, str]:
    return from_tag_list(run.client("elasticache").list_tags_for_resource(ResourceName=arn).get("TagList"))


def discover(run: Run) -> list[Found]:
    ec = run.client("elasticache")
    nm = names(run.stack, run.ctx.region)
    out: list[Found] = []
    try:
        group = ec.describe_replication_groups(ReplicationGroupId=nm["cache.group"])["ReplicationGroups"][0]
    except ClientError as exc:
        if error_code(exc) != "ReplicationGroupNotFoundFault":
            raise
    else:
        if owned(run, group["ARN"], lambda arn: _tags_of(run, arn)):
            out.append(Found("cache.group", "replication-group", group["ReplicationGroupId"], group["Status"],
                             created=group.get("ReplicationGroupCreateTime"), attrs=_group_attrs(group)))
    try:
        sg = ec.describe_cache_subnet_groups(CacheSubnetGroupName=nm["cache.subnet-group"])["CacheSubnetGroups"][0]
    except ClientError as exc:
        if error_code(exc) != "CacheSubnetGroupNotFoundFault":
            raise
    else:
        if owned(run, sg["ARN"], lambda arn: _tags_of(run, arn)):
            out.append(Found("cache.subnet-group", "cache-subnet-group", sg["CacheSubnetGroupName"], "available",
                             attrs={"arn": sg["ARN"], "vpc": sg.get("VpcId"), "raw": sg}))
    try:
        secret = run.client("secretsmanager").describe_secret(SecretId=nm["cache.auth-token"])
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    else:
        if owned_by(from_tag_list(secret.get("Tags")), run.stack) and not secret.get("DeletedDate"):
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

    def create(self, run: Run, d: Desired) -> Found:
        ec = run.client("elasticache")
        try:
            group = ec.create_cache_subnet_group(
                CacheSubnetGroupName=d.name, CacheSubnetGroupDescription=f"awslab {run.stack}: private subnets in two AZs",
                SubnetIds=[run.ref(k).id for k in PRIVATE_SUBNETS], Tags=run.tag_list(d.key, d.name))["CacheSubnetGroup"]
        except ClientError as exc:
            if error_code(exc) != "CacheSubnetGroupAlreadyExists":
                raise
            group = ec.describe_cache_subnet_groups(CacheSubnetGroupName=d.name)["CacheSubnetGroups"][0]
            if not owned_by(_tags_of(run, group["ARN"]), run.stack):
                raise OwnershipError(f"cache subnet group {d.name} exists but is not stack {run.stack}'s",
                                     "awslab will not touch it: use another --name") from None
        return Found(d.key, self.kind, d.name, "available", attrs={"arn": group.get("ARN")})

    def delete(self, run: Run, f: Found) -> None:
        try:
            _subnet_group_in_use(run.client("elasticache").delete_cache_subnet_group)(CacheSubnetGroupName=f.id)
        except ClientError as exc:
            if error_code(exc) != "CacheSubnetGroupNotFoundFault":
                raise


class AuthTokenSecret:
    kind = "secret"

    def create(self, run: Run, d: Desired) -> Found:
        sm = run.client("secretsmanager")
        try:
            secret = sm.create_secret(Name=d.name, SecretString=new_auth_token(), Tags=run.tag_list(d.key),
                                      Description=f"awslab {run.stack}: AUTH token of the ElastiCache replication group")
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            secret = sm.describe_secret(SecretId=d.name)
            if not owned_by(from_tag_list(secret.get("Tags")), run.stack):
                raise OwnershipError(f"secret {d.name} exists but is not stack {run.stack}'s",
                                     "awslab will not touch it: use another --name") from None
        return Found(d.key, self.kind, d.name, "available", attrs={"arn": secret["ARN"]})

    def delete(self, run: Run, f: Found) -> None:
        # No recovery window: the cache it guarded is gone, and a pending deletion would block the
        # name for the next `up` of this stack (and bill for a week).
        try:
            run.client("secretsmanager").delete_secret(SecretId=f.id, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise


class ReplicationGroup:
    kind = "replication-group"

    def create(self, run: Run, d: Desired) -> Found:
        c = d.spec["cache"]
        ec = run.client("elasticache")
        token = run.client("secretsmanager").get_secret_value(SecretId=run.ref("cache.auth-token").id)["SecretString"]
        azs = availability_zones(run, d.spec)
        count = 1 + c.replicas
        try:
            group = ec.create_replication_group(
                ReplicationGroupId=d.name, ReplicationGroupDescription=f"awslab {run.stack}: Redis primary and replicas",
                Engine=c.engine, EngineVersion=c.engine_version, CacheNodeType=c.node_type,
                NumCacheClusters=count, PreferredCacheClusterAZs=[azs[i % 2] for i in range(count)],
                AutomaticFailoverEnabled=c.automatic_failover, MultiAZEnabled=c.automatic_failover,
                CacheSubnetGroupName=run.ref("cache.subnet-group").id, SecurityGroupIds=[run.ref("sg.cache").id],
                AtRestEncryptionEnabled=c.at_rest_encryption, TransitEncryptionEnabled=c.transit_encryption,
                AuthToken=token, Port=c.port, Tags=run.tag_list(d.key, d.name),
            )["ReplicationGroup"]
        except ClientError as exc:
            if error_code(exc) != "ReplicationGroupAlreadyExistsFault":
                raise
            group = ec.describe_replication_groups(ReplicationGroupId=d.name)["ReplicationGroups"][0]
            if not owned_by(_tags_of(run, group["ARN"]), run.stack):
                raise OwnershipError(f"replication group {d.name} exists but is not stack {run.stack}'s",
                                     "awslab will not touch it: use another --name") from None
        finally:
            del token
        found = Found(d.key, self.kind, d.name, group["Status"], attrs=_group_attrs(group))
        return self.ready(run, d, found)

    def _probe(self, run: Run, f: Found, latest: dict):
        ec = run.client("elasticache")

        def probe() -> str:
            try:
                group = ec.describe_replication_groups(ReplicationGroupId=f.id)["ReplicationGroups"][0]
            except ClientError as exc:
                if error_code(exc) == "ReplicationGroupNotFoundFault":
                    return GONE
                raise
            latest.clear()
            latest.update(group)
            return group["Status"]

        return probe

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        latest: dict = {}
        f.state = run.wait(f.key, f"ElastiCache replication group {f.id}", self._probe(run, f, latest),
                           done={"available"}, failed={"create-failed", GONE, "deleting"}, kind=self.kind)
        f.attrs.update(_group_attrs(latest))
        return f

    def delete(self, run: Run, f: Found) -> None:
        latest: dict = {}
        probe = self._probe(run, f, latest)
        state = run.wait(f.key, f"ElastiCache replication group {f.id} to be deletable", probe,
                         done={"available", "deleting", "create-failed", GONE}, kind=self.kind)
        if state == GONE:
            return
        if state != "deleting":
            try:
                run.client("elasticache").delete_replication_group(ReplicationGroupId=f.id, RetainPrimaryCluster=False)
            except ClientError as exc:
                if error_code(exc) not in ("ReplicationGroupNotFoundFault", "InvalidReplicationGroupState"):
                    raise
        run.wait(f.key, f"ElastiCache replication group {f.id} to be deleted", probe, done={GONE}, kind=self.kind)
