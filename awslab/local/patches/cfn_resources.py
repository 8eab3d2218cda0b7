"""CloudFormation's resource types that moto has but makes or deletes otherwise than AWS, made and
deleted here through the same backend calls their API requests make (with the properties read as
those requests' parameters by ``cloudformation.as_parameter``), so the rest of the layer applies
to them as to resources made by `awslab up`:

- ``AWS::RDS::DBInstance``: moto reads ``VpcSecurityGroupIds`` (the property is
  ``VPCSecurityGroups``), drops ``ManageMasterUserPassword`` and ``DeletionProtection``, defaults
  the port to MySQL's and the backup retention to none (CloudFormation's is 1 day), makes a
  read replica before its source is available, has no ``MasterUserSecret.SecretArn``, and
  ignores ``DeletionPolicy: Snapshot``;
- ``AWS::IAM::Role`` drops ``ManagedPolicyArns`` (attached here as AttachRolePolicy attaches them);
- ``AWS::EC2::Instance`` ignores ``NetworkInterfaces`` and its launch template (IMDSv2); gateways
  and route tables lose their ``Tags``; a subnet's route table association is kept apart from
  the table, so DescribeRouteTables shows none;
- a stack's delete leaves its gateway attachment, routes, subnet associations, route tables,
  gateways and ingress rules (moto has no delete for them), so its VPC never goes.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

from awslab.local.patches._patch import patch
from awslab.local.patches.cloudformation import as_parameter, camelcase_to_underscores

DB_INSTANCE = "moto.rds.models:DBInstance"
SOURCE_WAIT_S = 300.0


@patch(DB_INSTANCE, gap=("cfn-db-instance", "cfn-db-backup-retention"), phase="services", kind="replace")
@classmethod
def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    from moto.rds.models import DBInstance, rds_backends

    props = dict(cloudformation_json.get("Properties") or {})
    if props.get("BackupRetentionPeriod") is None and not props.get("SourceDBInstanceIdentifier"):
        props["BackupRetentionPeriod"] = 1   # CloudFormation's default, as CreateDBInstance's
    db_kwargs = {camelcase_to_underscores(k): as_parameter(k, v) for k, v in props.items()
                 if k not in ("VPCSecurityGroups", "DBInstanceIdentifier", "SourceDBInstanceIdentifier")}
    db_kwargs.setdefault("db_instance_class", None)   # as moto passes it (a minimal template)
    db_kwargs["vpc_security_group_ids"] = as_parameter("VPCSecurityGroups", list(props.get("VPCSecurityGroups") or []))
    # Without one, CloudFormation names it <stack>-<logical id>-<suffix>, lowercase.
    db_kwargs["db_instance_identifier"] = (props.get("DBInstanceIdentifier") or resource_name).replace("_", "-").lower()
    if props.get("Engine") and "port" not in db_kwargs:
        db_kwargs["port"] = DBInstance.default_port(props["Engine"])
    backend = rds_backends[account_id][region_name]
    source = as_parameter("SourceDBInstanceIdentifier", props.get("SourceDBInstanceIdentifier"))
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


@patch("moto.ec2.models.subnets:SubnetRouteTableAssociation", "create_from_cloudformation_json",
       gap="cfn-ec2-resources", phase="services", kind="replace")
@classmethod
def create_association(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """``AWS::EC2::SubnetRouteTableAssociation`` as AssociateRouteTable makes it: moto's keeps it
    apart, so DescribeRouteTables shows the subnet unassociated (and on the main table)."""
    props = cloudformation_json["Properties"]
    _ec2(account_id, region_name).associate_route_table(props["RouteTableId"], subnet_id=props["SubnetId"])
    return cls(props["RouteTableId"], props["SubnetId"])


# moto's AWS::IAM::Role drops ``ManagedPolicyArns``: the lab's host role then lacks
# AmazonSSMManagedInstanceCore, so SSM would not manage a host a template (or a StackSet) made.
@patch("moto.iam.models:Role", "create_from_cloudformation_json", gap="cfn-iam-role-managed-policies", phase="services")
def create_role(original, klass, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    role = original(klass, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    backend = iam_backends[account_id][get_partition(region_name)]
    for arn in (cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or []:
        backend.attach_role_policy(arn, role.name)   # AttachRolePolicy's checks: an unknown ARN fails
    return role


# ... and CloudFormation detaches them again when it deletes the role (DeleteRole refuses a role
# with a managed policy attached).
@patch("moto.iam.models:Role", "delete_from_cloudformation_json", gap="cfn-iam-role-managed-policies",
       phase="services")
def delete_role(original, klass, resource_name, cloudformation_json, account_id, region_name):
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    backend = iam_backends[account_id][get_partition(region_name)]
    for role in [r for r in backend.roles.values() if r.name == resource_name]:
        for arn in list(role.managed_policies):
            backend.detach_role_policy(arn, role.name)
    return original(klass, resource_name, cloudformation_json, account_id, region_name)


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


@patch("moto.cloudformation.parsing:ResourceMap", "_delete_resource", gap="cfn-snapshot-on-delete", phase="services")
def delete_resource(original, self, parsed_resource, resource_json) -> None:
    """``DeletionPolicy: Snapshot`` on a DB instance or a DB cluster (``cfn_db_cluster.py``):
    deleting the stack (or the resource) keeps a final snapshot, named as CloudFormation names it
    (``<stack>-snapshot-<logical id>-<suffix>``, lowercase); moto deletes the instance without one."""
    from moto.rds.models import DBInstance, rds_backends

    from awslab.local.patches.cfn_db_cluster import DbCluster

    if resource_json.get("DeletionPolicy") != "Snapshot":
        original(self, parsed_resource, resource_json)
        return
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    logical = getattr(parsed_resource, "logical_resource_id", None) or "db"
    snapshot = re.sub(r"-+", "-", f"{self['AWS::StackName']}-snapshot-{logical}-{suffix}".lower())
    if isinstance(parsed_resource, DBInstance) and not parsed_resource.source_db_instance_identifier:
        rds_backends[self._account_id][self._region_name].delete_db_instance(
            parsed_resource.db_instance_identifier, final_db_snapshot_identifier=snapshot)
    elif isinstance(parsed_resource, DbCluster):
        parsed_resource.delete(self._account_id, self._region_name, final_snapshot=snapshot)
    else:
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
