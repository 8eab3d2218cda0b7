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
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.core.utils import camelcase_to_underscores as _moto_snake

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


def apply() -> None:
    _db_instance()   # the types below register by being defined (CloudFormationModel's subclasses)
    _instance()
    _tags_kept()
    _route_table_association()
    from moto.cloudformation import parsing

    parsing.get_model_map.cache_clear()


def _db_instance() -> None:
    from moto.rds.models import DBInstance, rds_backends

    original_attr = DBInstance.get_cfn_attribute

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
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

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "MasterUserSecret.SecretArn":
            secret = getattr(self, "master_user_secret", None)
            if secret is None:
                raise UnformattedGetAttTemplateException()
            return secret.secret.arn if hasattr(secret, "secret") else secret.arn
        return original_attr(self, attribute_name)

    DBInstance.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
    DBInstance.get_cfn_attribute = get_cfn_attribute

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Endpoint.Address", "Endpoint.Port", "MasterUserSecret.SecretArn")

    DBInstance.has_cfn_attr = has_cfn_attr


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


def _instance() -> None:
    """``AWS::EC2::Instance`` as RunInstances makes it: moto's reads neither ``NetworkInterfaces``
    (the subnet, groups and public address) nor the launch template (IMDSv2)."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import Instance

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
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

    Instance.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


def _route_table_association() -> None:
    """``AWS::EC2::SubnetRouteTableAssociation`` as AssociateRouteTable makes it: moto's keeps it
    apart, so DescribeRouteTables shows the subnet unassociated (and on the main table)."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.subnets import SubnetRouteTableAssociation

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        backend = ec2_backends[account_id][region_name]
        backend.associate_route_table(props["RouteTableId"], subnet_id=props["SubnetId"])
        return cls(props["RouteTableId"], props["SubnetId"])

    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


def _tags_kept() -> None:
    """Gateways and route tables made by moto's CloudFormation lose their ``Tags``: awslab finds
    resources by them."""
    from moto.ec2.models.internet_gateways import InternetGateway
    from moto.ec2.models.route_tables import RouteTable

    for cls in (InternetGateway, RouteTable):
        original = cls.create_from_cloudformation_json.__func__

        def create(klass, resource_name, cloudformation_json, account_id, region_name, _original=original, **kwargs):
            made = _original(klass, resource_name, cloudformation_json, account_id, region_name, **kwargs)
            for tag in (cloudformation_json.get("Properties") or {}).get("Tags") or []:
                made.add_tag(tag["Key"], tag["Value"])
            return made

        cls.create_from_cloudformation_json = classmethod(create)


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
        return cls(props["ReplicationGroupId"], {
            "PrimaryEndPoint.Address": ng.get("primary_endpoint_address") if isinstance(ng, dict) else None,
            "PrimaryEndPoint.Port": port,
            "ReaderEndPoint.Address": ng.get("reader_endpoint_address") if isinstance(ng, dict) else None,
            "ReaderEndPoint.Port": port})

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
        return cls(f"{props['GroupId']}-egress-{resource_name}")
