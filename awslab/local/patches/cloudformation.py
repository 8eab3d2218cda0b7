"""CloudFormation on the local AWS: the resource types the lab's template needs that moto's
CloudFormation lacks (``awslab export cloudformation``), and what the ``cfn_*`` modules share: a
property read as its API request's parameter (``as_parameter``, ``camelcase_to_underscores``), a
``{{resolve:secretsmanager:...}}`` dynamic reference resolved (``resolve_secrets``).

``AWS::SecretsManager::Secret`` (``GenerateSecretString`` included), ``AWS::ElastiCache::SubnetGroup``,
``AWS::ElastiCache::ReplicationGroup`` (its ``AuthToken`` a dynamic reference, resolved as
CloudFormation does), ``AWS::ElastiCache::ParameterGroup`` and ``AWS::EC2::SecurityGroupEgress`` are absent from moto: each is made here
through the same backend call its API request makes, so the rest of the layer (states, checks,
the real engines behind ElastiCache) applies to it as to one made by `awslab up`. (They stay in
this module: a saved local AWS names their classes by it.)

The companions: ``cfn_db_cluster`` (the Multi-AZ DB cluster and its parameter group, absent from
moto too), ``cfn_resources`` (moto's own types made and deleted as AWS does), ``cfn_updates``
(stack updates in place), ``cfn_lifecycle`` (a stack's create and delete as CloudFormation runs
them), ``cfn_getatt`` (dotted ``Fn::GetAtt`` names).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

import re
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.core.utils import camelcase_to_underscores as _moto_snake

from awslab.local.patches._patch import patch

RESOLVE_SECRET = re.compile(r"\{\{resolve:secretsmanager:([^}]+?)\}\}")
BOOLEAN_PROPS = {"MultiAZ", "StorageEncrypted", "ManageMasterUserPassword", "DeletionProtection",
                 "PubliclyAccessible", "AutoMinorVersionUpgrade", "CopyTagsToSnapshot", "AutomaticFailoverEnabled",
                 "MultiAZEnabled", "TransitEncryptionEnabled", "AtRestEncryptionEnabled"}
INTEGER_PROPS = {"AllocatedStorage", "BackupRetentionPeriod", "Port", "NumCacheClusters", "Iops",
                 "SnapshotRetentionLimit", "ReplicasPerNodeGroup", "NumNodeGroups"}


def camelcase_to_underscores(name: str) -> str:
    """A parameter's keyword as moto's responses name it ("AZs" is one word there)."""
    return _moto_snake(name.replace("AZs", "Azs"))


def as_parameter(name: str, value: Any) -> Any:
    """A property as its API parameter would arrive: CloudFormation passes scalars as strings, and
    moto's ``Ref`` of some types (a DB subnet group) hands over the resource itself."""
    if isinstance(value, list):
        return [as_parameter(name, v) for v in value]
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


@patch("moto.cloudformation.parsing", gap="cfn-missing-types", phase="services", kind="derive")
def get_model_map(original):
    """The types below register by being defined (CloudFormationModel's subclasses); moto's map of
    types is cached, so it is cleared to see them."""
    original.cache_clear()
    return original


class Model:
    """A resource made by a backend call; ``physical_resource_id`` is what Ref returns. Each type
    subclasses CloudFormationModel directly: moto's parser finds the direct subclasses only."""

    TYPE = ""
    NAME_PROPERTY = ""

    def __init__(self, physical_id: str, attrs: dict[str, Any] | None = None) -> None:
        self.physical_id = physical_id
        self.attrs = attrs or {}

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY   # the property that names it, if the type has one

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


class Secret(Model, CloudFormationModel):
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


class CacheSubnetGroup(Model, CloudFormationModel):
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


class ReplicationGroup(Model, CloudFormationModel):
    TYPE = "AWS::ElastiCache::ReplicationGroup"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.elasticache.models import elasticache_backends

        props = dict(cloudformation_json.get("Properties") or {})
        props.setdefault("ReplicationGroupId", resource_name.lower())
        if "AuthToken" in props:
            props["AuthToken"] = resolve_secrets(account_id, region_name, props["AuthToken"])
        args = {camelcase_to_underscores(p): as_parameter(p, props.get(p)) for p in REPLICATION_GROUP_PARAMS}
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
        made.props = {p: as_parameter(p, v) for p, v in props.items() if p != "AuthToken"}   # what an update compares
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


class CacheParameterGroup(Model, CloudFormationModel):
    """``AWS::ElastiCache::ParameterGroup``: no name property, so CloudFormation names it
    (``<stack>-<logical id>-<suffix>``, lower case); ``Properties`` are its parameters."""

    TYPE = "AWS::ElastiCache::ParameterGroup"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.elasticache.models import elasticache_backends

        from awslab.local.patches.cache_parameters import create_group

        props = cloudformation_json.get("Properties") or {}
        name = resource_name.lower()
        create_group(elasticache_backends[account_id][region_name], name, props.get("CacheParameterGroupFamily", ""),
                     props.get("Description", ""), props.get("Tags") or [], props.get("Properties") or {})
        return cls(name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.elasticache.models import elasticache_backends

        from awslab.local.patches.cache_parameters import delete_group

        delete_group(elasticache_backends[account_id][region_name], self.physical_id)


class SecurityGroupEgress(Model, CloudFormationModel):
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
