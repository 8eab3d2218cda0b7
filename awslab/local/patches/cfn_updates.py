"""CloudFormation's stack updates as AWS makes them: what changed is changed in place, as
CloudFormation changes it (``UpdateStack`` through ModifyDBInstance, ModifyVpcAttribute,
ModifyReplicationGroup and the tags' calls; a changed rule is replaced), and a change the local
AWS does not make in place is refused before anything changes (``UpdateRefused``).

moto's: a DB instance, a VPC or a cache group it cannot update drops out of the stack, which then
fails every later request; a parameter whose default changed is not seen as a change at all.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

from awslab.local.patches._patch import patch
from awslab.local.patches.cloudformation import (
    ReplicationGroup,
    SecurityGroupEgress,
    as_parameter,
    camelcase_to_underscores,
)

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

    props = {k: as_parameter(k, v) for k, v in (parsing.clean_json(resource_json, resources_map).get("Properties")
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
               "DBParameterGroupName": getattr(db, "db_parameter_group_name", None),
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
        kwargs = {camelcase_to_underscores(k): as_parameter(k, v) for k, v in changed.items()}
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
