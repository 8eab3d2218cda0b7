"""Parameter groups as the lab's own resources (a DB parameter group and a cache parameter group
per stack): found as AWS finds them. DescribeDBParameterGroups of a name it does not have is an
error, the Resource Groups Tagging API lists both kinds (``rds:pg``, ``elasticache:parametergroup``)
with their tags, and CloudFormation names a DB parameter group after its ``DBParameterGroupName``.
The cache parameter groups themselves are ``cache_parameters``'s.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local.patches._patch import patch
from awslab.local.patches.cache_parameters import groups
from awslab.local.patches.rds import RDS_BACKEND, rds_error


@patch(RDS_BACKEND, gap="rds-parameter-group-not-found", phase="services")
def describe_db_parameter_groups(original, self, db_parameter_group_kwargs):
    found = original(self, db_parameter_group_kwargs)
    name = db_parameter_group_kwargs.get("db_parameter_group_name")
    if name and not found:
        raise rds_error("DBParameterGroupNotFound", f"DBParameterGroup not found: {name}")
    return found


# CloudFormation names a DB parameter group after its DBParameterGroupName property when it has one.
patch("moto.rds.models:DBParameterGroup", "cloudformation_name_type", gap="cfn-db-parameter-group-name",
      phase="services", kind="replace")(staticmethod(lambda: "DBParameterGroupName"))


@patch(RDS_BACKEND, "iter_tagged_resources", gap="parameter-group-tagging", phase="services")
def db_parameter_groups_tagged(original, self):
    from moto.core.resource_tagging import TaggedResource

    yield from original(self)
    for group in list(self.db_parameter_groups.values()):
        tags = {t["Key"]: t["Value"] for t in self.list_tags_for_resource(group.arn)}
        yield TaggedResource(arn=group.arn, tags=tags, resource_type="rds:pg")


@patch("moto.elasticache.models:ElastiCacheBackend", "iter_tagged_resources", gap="parameter-group-tagging",
       phase="services")
def cache_parameter_groups_tagged(original, self):
    from moto.core.resource_tagging import TaggedResource

    yield from original(self)
    for group in list(groups(self).values()):
        tags = self.tagging_service.get_tag_dict_for_resource(group["arn"])
        if tags:
            yield TaggedResource(arn=group["arn"], tags=tags, resource_type="elasticache:parametergroup")
