"""CloudFormation on the local AWS: the resource types and attributes the lab's template needs that
moto's CloudFormation lacks or reads wrongly (``awslab export cloudformation``).

Each resource is made through the same backend call its API request makes, with its properties
read as that request's parameters, so the rest of the layer (states, checks, the real engines
behind RDS and ElastiCache) applies to it as to one made by `awslab up`:

- ``AWS::RDS::DBInstance``: moto reads ``VpcSecurityGroupIds`` (the property is
  ``VPCSecurityGroups``), drops ``ManageMasterUserPassword`` and ``DeletionProtection``, defaults
  the port to MySQL's and the backup retention to none (CloudFormation's is 1 day), makes a
  read replica before its source is available, and has no ``MasterUserSecret.SecretArn``;
- ``AWS::EC2::Instance`` ignores ``NetworkInterfaces`` and its launch template (IMDSv2); gateways
  and route tables lose their ``Tags``; a subnet's route table association is kept apart from
  the table, so DescribeRouteTables shows none;
- ``AWS::SecretsManager::Secret`` (``GenerateSecretString`` included), ``AWS::ElastiCache::SubnetGroup``,
  ``AWS::ElastiCache::ReplicationGroup`` (its ``AuthToken`` a ``{{resolve:secretsmanager:...}}``
  dynamic reference, resolved here as CloudFormation does), ``AWS::EC2::SecurityGroupEgress``: absent.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.core.utils import camelcase_to_underscores as _moto_snake

from awslab.local.patches._patch import patch

RESOLVE_SECRET = re.compile(r"\{\{resolve:secretsmanager:([^}]+?)\}\}")
BOOLEAN_PROPS = {"MultiAZ", "StorageEncrypted", "ManageMasterUserPassword", "DeletionProtection",
                 "PubliclyAccessible", "AutoMinorVersionUpgrade", "CopyTagsToSnapshot", "AutomaticFailoverEnabled",
                 "MultiAZEnabled", "TransitEncryptionEnabled", "AtRestEncryptionEnabled"}
SOURCE_WAIT_S = 300.0
INTEGER_PROPS = {"AllocatedStorage", "BackupRetentionPeriod", "Port", "NumCacheClusters", "Iops",
                 "SnapshotRetentionLimit", "ReplicasPerNodeGroup", "NumNodeGroups"}


def camelcase_to_underscores(name: str) -> str:
    """A parameter's keyword as moto's responses name it ("AZs" is one word there)."""
    return _moto_snake(name.replace("AZs", "Azs"))


def _value(name: str, value: Any) -> Any:
    """A property as its API parameter would arrive: CloudFormation passes scalars as strings, and
    moto's ``Ref`` of some types (a DB subnet group) hands over the resource itself."""
    if isinstance(value, list):
        return [_value(name, v) for v in value]
    if isinstance(value, CloudFormationModel):
        return getattr(value, "subnet_name", None) or getattr(value, "physical_resource_id", None) or getattr(value, "name", value)
    if name in BOOLEAN_PROPS and isinstance(value, str):
        return value.lower() == "true"
    if name in INTEGER_PROPS and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def resolve_secrets(account_id: str, region: str, text: Any) -> Any:
    """``{{resolve:secretsmanager:ID[:SecretString[:key]]}}`` as CloudFormation resolves it."""
    if not isinstance(text, str) or "{{resolve:secretsmanager:" not in text:
        return text
    import json

    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account_id][region]

    def one(m: re.Match) -> str:
        ref = m.group(1)
        if ref.startswith("arn:"):   # arn:aws:secretsmanager:region:account:secret:name-abc[:SecretString[:key]]
            parts = ref.split(":")
            secret_id, rest = ":".join(parts[:7]), parts[7:]
        else:
            secret_id, *rest = ref.split(":")
        value = backend.get_secret_value(secret_id, None, None)["SecretString"]
        if len(rest) >= 2 and rest[1]:
            value = str(json.loads(value)[rest[1]])
        return value

    return RESOLVE_SECRET.sub(one, text)


DB_INSTANCE = "moto.rds.models:DBInstance"


@patch("moto.cloudformation.parsing", gap="cfn-missing-types", phase="services", kind="derive")
def get_model_map(original):
    """The types below register by being defined (CloudFormationModel's subclasses); moto's map of
    types is cached, so it is cleared to see them."""
    original.cache_clear()
    return original


@patch(DB_INSTANCE, gap=("cfn-db-instance", "cfn-db-backup-retention"), phase="services", kind="replace")
@classmethod
def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    from moto.rds.models import DBInstance, rds_backends

    props = dict(cloudformation_json.get("Properties") or {})
    if props.get("BackupRetentionPeriod") is None and not props.get("SourceDBInstanceIdentifier"):
        props["BackupRetentionPeriod"] = 1   # CloudFormation's default, as CreateDBInstance's
    db_kwargs = {camelcase_to_underscores(k): _value(k, v) for k, v in props.items()
                 if k not in ("VPCSecurityGroups", "DBInstanceIdentifier", "SourceDBInstanceIdentifier")}
    db_kwargs.setdefault("db_instance_class", None)   # as moto passes it (a minimal template)
    db_kwargs["vpc_security_group_ids"] = _value("VPCSecurityGroups", list(props.get("VPCSecurityGroups") or []))
    # Without one, CloudFormation names it <stack>-<logical id>-<suffix>, lowercase.
    db_kwargs["db_instance_identifier"] = (props.get("DBInstanceIdentifier") or resource_name).replace("_", "-").lower()
    if props.get("Engine") and "port" not in db_kwargs:
        db_kwargs["port"] = DBInstance.default_port(props["Engine"])
    backend = rds_backends[account_id][region_name]
    source = _value("SourceDBInstanceIdentifier", props.get("SourceDBInstanceIdentifier"))
    if source:
        db_kwargs["source_db_instance_identifier"] = source
        _until_available(backend, str(source).split(":")[-1])
        return backend.create_db_instance_read_replica(db_kwargs)
    return backend.create_db_instance(db_kwargs)


@patch(DB_INSTANCE, gap="cfn-db-instance", phase="services")
def get_cfn_attribute(original, self, attribute_name: str) -> Any:
    if attribute_name == "MasterUserSecret.SecretArn":
        secret = getattr(self, "master_user_secret", None)
        if secret is None:
            raise UnformattedGetAttTemplateException()
        return secret.secret.arn if hasattr(secret, "secret") else secret.arn
    return original(self, attribute_name)


@patch(DB_INSTANCE, gap="cfn-db-instance", phase="services", kind="replace")
@classmethod
def has_cfn_attr(cls, attr: str) -> bool:
    return attr in ("Endpoint.Address", "Endpoint.Port", "MasterUserSecret.SecretArn")


def _until_available(backend, ident: str, bound_s: float = SOURCE_WAIT_S) -> None:
    """CloudFormation creates a resource once what it references is complete: a read replica's
    source must be available (its engine started), as RDS requires. moto's CloudFormation makes
    everything in one go, so the wait is here (bounded; RDS refuses the replica after it)."""
    import time

    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        db = backend.databases.get(ident)
        if db is None or db.status == "available":
            return
        time.sleep(0.1)


@patch("moto.ec2.models.instances:Instance", "create_from_cloudformation_json", gap="cfn-ec2-resources",
       phase="services", kind="replace")
@classmethod
def create_instance(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """``AWS::EC2::Instance`` as RunInstances makes it: moto's reads neither ``NetworkInterfaces``
    (the subnet, groups and public address) nor the launch template (IMDSv2)."""
    from moto.ec2.models import ec2_backends

    props = cloudformation_json["Properties"]
    backend = ec2_backends[account_id][region_name]
    nics = [{"DeviceIndex": int(n.get("DeviceIndex", 0)), "SubnetId": n.get("SubnetId"),
             "Groups": list(n.get("GroupSet") or []),
             "AssociatePublicIpAddress": str(n.get("AssociatePublicIpAddress", "")).lower() == "true"}
            for n in props.get("NetworkInterfaces") or []]
    template = props.get("LaunchTemplate") or {}
    metadata = dict(props.get("MetadataOptions") or {})
    if template.get("LaunchTemplateId"):
        lt = backend.get_launch_template(template["LaunchTemplateId"])
        metadata = {**(lt.latest_version().data.get("MetadataOptions") or {}), **metadata}
    reservation = backend.run_instances(
        props["ImageId"], 1, props.get("UserData"), [],
        instance_type=props.get("InstanceType", "m1.small"), is_instance_type_default=not props.get("InstanceType"),
        placement=props.get("AvailabilityZone"), region_name=region_name, subnet_id=props.get("SubnetId"),
        key_name=props.get("KeyName"), security_group_ids=list(props.get("SecurityGroupIds") or []), nics=nics,
        private_ip=props.get("PrivateIpAddress"), associate_public_ip=None,
        tags={"instance": {t["Key"]: t["Value"] for t in props.get("Tags") or []}},
        metadata_options=metadata, client_token=f"cfn-{resource_name}"[:64])
    instance = reservation.instances[0]
    if props.get("IamInstanceProfile"):
        backend.associate_iam_instance_profile(instance_id=instance.id,
                                               iam_instance_profile_name=props["IamInstanceProfile"])
    return instance


@patch("moto.cloudformation.parsing:ResourceMap", "_delete_resource", gap="cfn-snapshot-on-delete", phase="services")
def delete_resource(original, self, parsed_resource, resource_json) -> None:
    """``DeletionPolicy: Snapshot`` on a DB instance: deleting the stack (or the resource) keeps a
    final snapshot, named as CloudFormation names it (``<stack>-snapshot-<logical id>-<suffix>``,
    lowercase); moto deletes the instance without one."""
    from moto.rds.models import DBInstance, rds_backends

    if (resource_json.get("DeletionPolicy") == "Snapshot" and isinstance(parsed_resource, DBInstance)
            and not parsed_resource.source_db_instance_identifier):
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
        logical = getattr(parsed_resource, "logical_resource_id", None) or "db"
        snapshot = re.sub(r"-+", "-", f"{self['AWS::StackName']}-snapshot-{logical}-{suffix}".lower())
        rds_backends[self._account_id][self._region_name].delete_db_instance(
            parsed_resource.db_instance_identifier, final_db_snapshot_identifier=snapshot)
        return
    original(self, parsed_resource, resource_json)


# A stack's delete removes its gateway attachment, route, subnet association, route table and
# gateway (moto's CloudFormation leaves them, so the VPC never goes: "has dependencies").

def _quietly(call, *a, **kw) -> None:
    from moto.ec2.exceptions import EC2ClientError

    try:
        call(*a, **kw)
    except EC2ClientError as exc:   # already gone, as CloudFormation takes it
        if "NotFound" not in exc.code and "Gateway.NotAttached" not in exc.code:
            raise


def _ec2(account_id: str, region_name: str):
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region_name]


@patch("moto.ec2.models.vpn_gateway:VPCGatewayAttachment", "delete", gap="cfn-network-deletes", phase="services",
       kind="add")
def detach(self, account_id: str, region_name: str) -> None:
    if self.gateway_id and self.gateway_id.startswith("igw-"):
        _quietly(_ec2(account_id, region_name).detach_internet_gateway, self.gateway_id, self.vpc_id)


@patch("moto.ec2.models.subnets:SubnetRouteTableAssociation", "delete", gap="cfn-network-deletes",
       phase="services", kind="add")
def disassociate(self, account_id: str, region_name: str) -> None:
    backend = _ec2(account_id, region_name)
    table = backend.route_tables.get(self.route_table_id)
    for assoc, subnet in list(getattr(table, "_associations", {}).items()):
        if subnet == self.subnet_id:
            _quietly(backend.disassociate_route_table, assoc)


@patch("moto.ec2.models.route_tables:RouteTable", "delete", gap="cfn-network-deletes", phase="services", kind="add")
def delete_table(self, account_id: str, region_name: str) -> None:
    _quietly(_ec2(account_id, region_name).delete_route_table, self.id)


@patch("moto.ec2.models.route_tables:Route", "delete", gap="cfn-network-deletes", phase="services", kind="add")
def delete_route(self, account_id: str, region_name: str) -> None:
    _quietly(_ec2(account_id, region_name).delete_route, self.route_table.id, self.destination_cidr_block)


@patch("moto.ec2.models.internet_gateways:InternetGateway", "delete", gap="cfn-network-deletes", phase="services",
       kind="add")
def delete_gateway(self, account_id: str, region_name: str) -> None:
    _quietly(_ec2(account_id, region_name).delete_internet_gateway, self.id)


# What an update changes in place, per type, as CloudFormation does (its "Update requires: No
# interruption / Some interruptions"); any other change of a resource is refused, never guessed.
DB_IN_PLACE = ("BackupRetentionPeriod", "DBInstanceClass", "MultiAZ", "AllocatedStorage", "DeletionProtection",
               "CopyTagsToSnapshot", "StorageType", "PreferredBackupWindow", "PreferredMaintenanceWindow",
               "MaxAllocatedStorage", "Tags")
CACHE_IN_PLACE = ("CacheNodeType", "AutomaticFailoverEnabled", "MultiAZEnabled", "SnapshotRetentionLimit",
                  "ReplicationGroupDescription", "Tags")
VPC_IN_PLACE = ("Tags", "EnableDnsSupport", "EnableDnsHostnames")


class UpdateRefused(Exception):
    """A resource change the local AWS does not make (CloudFormation replaces the resource, or
    changes it with an interruption the local AWS does not emulate): the stack's update fails
    before anything is changed, with this message."""


# An update changes what changed, in place (moto's: a DB instance, a VPC or a cache group it
# cannot update drops out of the stack, which then fails every later request; a parameter whose
# default changed is not seen as a change at all).
RESOURCE_MAP = "moto.cloudformation.parsing:ResourceMap"


@patch(RESOURCE_MAP, gap="cfn-stack-updates", phase="services")
def update(original, self, template, parameters=None):
    # Every change is checked before any is made: a refused one leaves the stack as it was.
    for name in self.build_resource_diff(template, parameters)["Modify"]:
        _update_one(self[name], name, template["Resources"][name], self, self._account_id, self._region_name,
                    apply=False)
    original(self, template, parameters)


@patch(RESOURCE_MAP, gap="cfn-stack-updates", phase="services", kind="replace")
def build_resource_diff(self, other_template, parameters=None):
    """moto's diff counts every parameter passed as changed (it compares with the parameters given
    at creation, not their values) and misses a changed default: the values are compared here."""
    from moto.cloudformation import parsing

    old, new = self._resource_json_map, other_template["Resources"]
    slots = other_template.get("Parameters") or {}
    given = dict(parameters or {})
    changed = [p for p, slot in slots.items() if p in self.resolved_parameters
               and not str(slot.get("Type", "")).startswith("AWS::SSM::")
               and str(given.get(p, slot.get("Default"))) != str(self.resolved_parameters[p])]
    return {"Add": [n for n in new if n not in old],
            "Modify": [n for n in new if n in old and (new[n] != old[n] or any(
                p in parsing.get_references_from_template(new[n]) for p in changed))],
            "Remove": [n for n in old if n not in new]}


def _update_one(original, logical_id, resource_json, resources_map, account_id, region_name, apply=True):
    """The resource, changed (or, for a rule, replaced, as CloudFormation replaces one)."""
    from moto.cloudformation import parsing
    from moto.ec2.models.security_groups import SecurityGroupIngress
    from moto.ec2.models.vpcs import VPC
    from moto.rds.models import DBInstance

    props = {k: _value(k, v) for k, v in (parsing.clean_json(resource_json, resources_map).get("Properties")
                                          or {}).items()}
    if isinstance(original, DBInstance):
        _update_db(original, props, account_id, region_name, apply)
    elif isinstance(original, VPC):
        _update_vpc(original, props, account_id, region_name, apply)
    elif isinstance(original, ReplicationGroup):
        _update_cache(original, props, account_id, region_name, apply)
    elif isinstance(original, (SecurityGroupIngress, SecurityGroupEgress)):
        if apply:   # a rule has no name: the new one is made, the old one revoked
            original.delete(account_id, region_name)
            return parsing.parse_and_create_resource(logical_id, resource_json, resources_map, account_id,
                                                     region_name)
    else:
        raise UpdateRefused(f"Update of {resource_json['Type']} {logical_id} is not emulated in place by the "
                            "local AWS: delete and create the stack instead")
    return original


@patch("moto.cloudformation.parsing", gap="cfn-stack-updates", phase="services", kind="replace")
def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):
    changed = _update_one(resources_map[logical_id], logical_id, resource_json, resources_map, account_id,
                          region_name)
    changed.logical_resource_id = logical_id
    return changed


@patch("moto.ec2.models.security_groups:SecurityGroupIngress", "delete", gap="cfn-network-deletes",
       phase="services", kind="add")
def revoke_ingress(self, account_id: str, region_name: str) -> None:
    """The rule revoked with its resource (moto kept it)."""
    from moto.ec2.exceptions import (
        InvalidPermissionNotFoundError,
        InvalidSecurityGroupNotFoundError,
    )
    from moto.ec2.models import ec2_backends

    p = self.properties
    peer = p.get("SourceSecurityGroupId")
    try:
        ec2_backends[account_id][region_name].revoke_security_group_ingress(
            group_name_or_id=self.security_group.id, ip_protocol=str(p["IpProtocol"]), from_port=p.get("FromPort"),
            to_port=p.get("ToPort"), ip_ranges=[{"CidrIp": p["CidrIp"]}] if p.get("CidrIp") else [],
            source_groups=[{"GroupId": peer}] if peer else [])
    except (InvalidPermissionNotFoundError, InvalidSecurityGroupNotFoundError):
        pass   # already gone, as CloudFormation treats it


def _changed(props: dict, allowed: tuple[str, ...], current: dict, what: str) -> dict:
    """The properties that differ from ``current``; refused if one AWS would replace the resource for."""
    out = {}
    for key, value in props.items():
        if key in current and str(current[key]).lower() == str(value).lower():
            continue
        if key not in allowed:
            raise UpdateRefused(f"{what}: the local AWS does not change {key} in an update (it changes "
                                f"{', '.join(allowed)} in place); delete and create the stack instead")
        out[key] = value
    return out


def _tags_to(tags: list[dict]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def _update_db(db, props: dict, account_id: str, region_name: str, apply: bool = True) -> None:
    from moto.rds.models import rds_backends

    current = {"DBInstanceIdentifier": db.db_instance_identifier, "Engine": db.engine,
               "EngineVersion": db.engine_version, "DBInstanceClass": db.db_instance_class,
               "AllocatedStorage": db.allocated_storage, "StorageType": db.storage_type,
               "StorageEncrypted": db.storage_encrypted, "MultiAZ": db.multi_az,
               "BackupRetentionPeriod": db.backup_retention_period, "MasterUsername": db.master_username,
               "ManageMasterUserPassword": bool(getattr(db, "master_user_secret", None)), "DBName": db.db_name,
               "DeletionProtection": db.deletion_protection, "PubliclyAccessible": db.publicly_accessible,
               "DBSubnetGroupName": getattr(db, "_db_subnet_group_name", None),
               "CopyTagsToSnapshot": db.copy_tags_to_snapshot, "Tags": None,
               "SourceDBInstanceIdentifier": db.source_db_instance_identifier,
               "VPCSecurityGroups": None, "Port": db.port}
    if str(props.get("EngineVersion", "")).split(".")[0] == str(db.engine_version).split(".")[0]:
        props = {k: v for k, v in props.items() if k != "EngineVersion"}   # a major: the minor RDS chose stands
    if props.get("SourceDBInstanceIdentifier"):
        props = {k: v for k, v in props.items() if k != "SourceDBInstanceIdentifier"}
    props = {k: v for k, v in props.items() if k != "VPCSecurityGroups" or
             sorted(v) != sorted(g for g in db.vpc_security_group_ids)}
    changed = _changed(props, DB_IN_PLACE, current, f"DB instance {db.db_instance_identifier}")
    if not apply:
        return
    backend = rds_backends[account_id][region_name]
    tags = changed.pop("Tags", None)
    if tags is not None and _tags_to(tags) != _tags_to(db.tags):
        arn = db.db_instance_arn
        backend.remove_tags_from_resource(arn, [t["Key"] for t in db.tags if t["Key"] not in _tags_to(tags)])
        backend.add_tags_to_resource(arn, tags)
    if changed:
        kwargs = {camelcase_to_underscores(k): _value(k, v) for k, v in changed.items()}
        backend.modify_db_instance(db.db_instance_identifier, {**kwargs, "apply_immediately": True})


def _update_vpc(vpc, props: dict, account_id: str, region_name: str, apply: bool = True) -> None:
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region_name]
    current = {"CidrBlock": vpc.cidr_block, "Tags": None,
               "EnableDnsSupport": vpc.enable_dns_support, "EnableDnsHostnames": vpc.enable_dns_hostnames}
    changed = _changed(props, VPC_IN_PLACE, current, f"VPC {vpc.id}")
    if not apply:
        return
    if "Tags" in changed:
        want = _tags_to(changed.pop("Tags"))
        have = {k: v for k, v in dict(backend.tags.get(vpc.id) or {}).items() if not k.startswith("aws:")}
        gone = [k for k in have if k not in want]
        if gone:
            backend.delete_tags([vpc.id], {k: None for k in gone})
        backend.create_tags([vpc.id], want)
    for key, attr in (("EnableDnsSupport", "enable_dns_support"), ("EnableDnsHostnames", "enable_dns_hostnames")):
        if key in changed:
            backend.modify_vpc_attribute(vpc.id, attr, str(changed[key]).lower() == "true")


def _update_cache(made, props: dict, account_id: str, region_name: str, apply: bool = True) -> None:
    from moto.elasticache.models import elasticache_backends

    backend = elasticache_backends[account_id][region_name]
    group = backend.replication_groups[made.physical_id]
    # As the template said it at creation (or last update), with what the group reads now on top.
    current = {**getattr(made, "props", {}), "CacheNodeType": group.cache_node_type,
               "AutomaticFailoverEnabled": group.automatic_failover == "enabled",
               "MultiAZEnabled": group.multi_az == "enabled", "SnapshotRetentionLimit": group.snapshot_retention_limit}
    changed = _changed({k: v for k, v in props.items() if k != "AuthToken"}, CACHE_IN_PLACE, current,
                       f"replication group {group.replication_group_id}")
    if apply:
        made.props = {**getattr(made, "props", {}), **changed}
    if changed and apply:
        backend.modify_replication_group(
            replication_group_id=group.replication_group_id,
            replication_group_description=changed.get("ReplicationGroupDescription"), engine=None,
            cache_node_type=changed.get("CacheNodeType"),
            automatic_failover_enabled=None if "AutomaticFailoverEnabled" not in changed
            else str(changed["AutomaticFailoverEnabled"]).lower() == "true",
            multi_az_enabled=None if "MultiAZEnabled" not in changed else str(changed["MultiAZEnabled"]).lower() == "true",
            snapshot_retention_limit=None if "SnapshotRetentionLimit" not in changed
            else int(changed["SnapshotRetentionLimit"]))


@patch("moto.ec2.models.subnets:SubnetRouteTableAssociation", "create_from_cloudformation_json",
       gap="cfn-ec2-resources", phase="services", kind="replace")
@classmethod
def create_association(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """``AWS::EC2::SubnetRouteTableAssociation`` as AssociateRouteTable makes it: moto's keeps it
    apart, so DescribeRouteTables shows the subnet unassociated (and on the main table)."""
    props = cloudformation_json["Properties"]
    _ec2(account_id, region_name).associate_route_table(props["RouteTableId"], subnet_id=props["SubnetId"])
    return cls(props["RouteTableId"], props["SubnetId"])


# Gateways and route tables made by moto's CloudFormation lose their ``Tags``: awslab finds
# resources by them.
@patch("moto.ec2.models.internet_gateways:InternetGateway", "create_from_cloudformation_json",
       gap="cfn-ec2-resources", phase="services")
@patch("moto.ec2.models.route_tables:RouteTable", "create_from_cloudformation_json",
       gap="cfn-ec2-resources", phase="services")
def create_with_tags(original, klass, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    made = original(klass, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    for tag in (cloudformation_json.get("Properties") or {}).get("Tags") or []:
        made.add_tag(tag["Key"], tag["Value"])
    return made


class _Model:
    """A resource made by a backend call; ``physical_resource_id`` is what Ref returns. Each type
    subclasses CloudFormationModel directly: moto's parser finds the direct subclasses only."""

    TYPE = ""
    NAME_PROPERTY = ""

    def __init__(self, physical_id: str, attrs: dict[str, Any] | None = None) -> None:
        self.physical_id = physical_id
        self.attrs = attrs or {}

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name in self.attrs:
            return self.attrs[attribute_name]
        raise UnformattedGetAttTemplateException()


class Secret(_Model, CloudFormationModel):
    TYPE = "AWS::SecretsManager::Secret"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        import json

        from moto.secretsmanager.models import secretsmanager_backends

        props = cloudformation_json.get("Properties") or {}
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        gen = props.get("GenerateSecretString")
        if value is None and gen is not None:
            value = backend.get_random_password(
                password_length=int(gen.get("PasswordLength", 32)), exclude_characters=gen.get("ExcludeCharacters", ""),
                exclude_numbers=str(gen.get("ExcludeNumbers", False)).lower() == "true",
                exclude_punctuation=str(gen.get("ExcludePunctuation", False)).lower() == "true",
                exclude_uppercase=str(gen.get("ExcludeUppercase", False)).lower() == "true",
                exclude_lowercase=str(gen.get("ExcludeLowercase", False)).lower() == "true",
                include_space=str(gen.get("IncludeSpace", False)).lower() == "true",
                require_each_included_type=str(gen.get("RequireEachIncludedType", True)).lower() == "true",
            )
            value = json.loads(value)["RandomPassword"]   # the API's answer, as text
        made = backend.create_secret(name=props.get("Name") or resource_name, secret_string=value, secret_binary=None,
                                     description=props.get("Description"), tags=props.get("Tags") or [],
                                     kms_key_id=props.get("KmsKeyId"), client_request_token=None,
                                     replica_regions=[], force_overwrite=False)
        arn = json.loads(made)["ARN"]
        return cls(arn, {"Id": arn})

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.secretsmanager.models import secretsmanager_backends

        secretsmanager_backends[account_id][region_name].delete_secret(
            self.physical_id, recovery_window_in_days=None, force_delete_without_recovery=True)


class CacheSubnetGroup(_Model, CloudFormationModel):
    TYPE = "AWS::ElastiCache::SubnetGroup"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.elasticache.models import elasticache_backends

        props = cloudformation_json.get("Properties") or {}
        name = props.get("CacheSubnetGroupName") or resource_name.lower()
        elasticache_backends[account_id][region_name].create_cache_subnet_group(
            cache_subnet_group_name=name, cache_subnet_group_description=props.get("Description", ""),
            subnet_ids=list(props.get("SubnetIds") or []), tags=props.get("Tags") or [])
        return cls(name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.elasticache.models import elasticache_backends

        elasticache_backends[account_id][region_name].delete_cache_subnet_group(self.physical_id)


REPLICATION_GROUP_PARAMS = (
    "ReplicationGroupId", "ReplicationGroupDescription", "GlobalReplicationGroupId", "PrimaryClusterId",
    "AutomaticFailoverEnabled", "MultiAZEnabled", "NumCacheClusters", "PreferredCacheClusterAZs", "NumNodeGroups",
    "ReplicasPerNodeGroup", "NodeGroupConfiguration", "CacheNodeType", "Engine", "EngineVersion",
    "CacheParameterGroupName", "CacheSubnetGroupName", "CacheSecurityGroupNames", "SecurityGroupIds", "Tags",
    "SnapshotArns", "SnapshotName", "PreferredMaintenanceWindow", "Port", "NotificationTopicArn",
    "AutoMinorVersionUpgrade", "SnapshotRetentionLimit", "SnapshotWindow", "AuthToken", "TransitEncryptionEnabled",
    "AtRestEncryptionEnabled", "KmsKeyId", "UserGroupIds", "LogDeliveryConfigurations", "DataTieringEnabled",
    "NetworkType", "IpDiscovery", "TransitEncryptionMode", "ClusterMode", "ServerlessCacheSnapshotName")


class ReplicationGroup(_Model, CloudFormationModel):
    TYPE = "AWS::ElastiCache::ReplicationGroup"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.elasticache.models import elasticache_backends

        props = dict(cloudformation_json.get("Properties") or {})
        props.setdefault("ReplicationGroupId", resource_name.lower())
        if "AuthToken" in props:
            props["AuthToken"] = resolve_secrets(account_id, region_name, props["AuthToken"])
        args = {camelcase_to_underscores(p): _value(p, props.get(p)) for p in REPLICATION_GROUP_PARAMS}
        args["replication_group_id"] = props["ReplicationGroupId"]
        for listed in ("preferred_cache_cluster_azs", "node_group_configuration", "tags", "log_delivery_configurations"):
            args[listed] = args[listed] or []
        group = elasticache_backends[account_id][region_name].create_replication_group(**args)
        ng = (getattr(group, "node_groups", None) or [{}])[0]
        port = str(props.get("Port") or 6379)
        made = cls(props["ReplicationGroupId"], {
            "PrimaryEndPoint.Address": ng.get("primary_endpoint_address") if isinstance(ng, dict) else None,
            "PrimaryEndPoint.Port": port,
            "ReaderEndPoint.Address": ng.get("reader_endpoint_address") if isinstance(ng, dict) else None,
            "ReaderEndPoint.Port": port})
        made.account_id, made.region_name = account_id, region_name
        made.props = {p: _value(p, v) for p, v in props.items() if p != "AuthToken"}   # what an update compares
        return made

    @property
    def status(self) -> str | None:
        """The group's own (``creating`` until ``available``): what CloudFormation waits for."""
        from moto.elasticache.models import elasticache_backends

        group = elasticache_backends[self.account_id][self.region_name].replication_groups.get(self.physical_id)
        return getattr(group, "status", None)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.elasticache.models import elasticache_backends

        elasticache_backends[account_id][region_name].delete_replication_group(self.physical_id, None)


class SecurityGroupEgress(_Model, CloudFormationModel):
    TYPE = "AWS::EC2::SecurityGroupEgress"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.ec2.models import ec2_backends

        props = cloudformation_json.get("Properties") or {}
        backend = ec2_backends[account_id][region_name]
        peer = props.get("DestinationSecurityGroupId")
        backend.authorize_security_group_egress(
            group_name_or_id=props["GroupId"], ip_protocol=str(props["IpProtocol"]),
            from_port=props.get("FromPort"), to_port=props.get("ToPort"),
            ip_ranges=[{"CidrIp": props["CidrIp"], "Description": props.get("Description")}] if props.get("CidrIp") else [],
            source_groups=[{"GroupId": peer, "Description": props.get("Description")}] if peer else [])
        made = cls(f"{props['GroupId']}-egress-{resource_name}")
        made.rule = {"group_name_or_id": props["GroupId"], "ip_protocol": str(props["IpProtocol"]),
                     "from_port": props.get("FromPort"), "to_port": props.get("ToPort"),
                     "ip_ranges": [{"CidrIp": props["CidrIp"]}] if props.get("CidrIp") else [],
                     "source_groups": [{"GroupId": peer}] if peer else []}
        return made

    def delete(self, account_id: str, region_name: str) -> None:
        """The rule revoked (moto kept it: two groups whose rules name each other never went)."""
        from moto.ec2.exceptions import (
            InvalidPermissionNotFoundError,
            InvalidSecurityGroupNotFoundError,
        )
        from moto.ec2.models import ec2_backends

        try:
            ec2_backends[account_id][region_name].revoke_security_group_egress(**self.rule)
        except (InvalidPermissionNotFoundError, InvalidSecurityGroupNotFoundError):
            pass   # already gone, as CloudFormation treats it
