"""CloudFormation's ``AWS::RDS::DBCluster`` (the exported template's Multi-AZ DB cluster) and
``AWS::RDS::DBClusterParameterGroup``, which moto's CloudFormation lacks (its DB cluster is no
CloudFormation model, and its cluster parameter group names no type).

Each is made through the backend call its API request makes (CreateDBCluster,
CreateDBClusterParameterGroup and ModifyDBClusterParameterGroup), with the properties read as that
request's parameters (``cloudformation.as_parameter``), so ``rds_clusters.py``'s rules, states and
members and the real engines behind them (``backing/rds_cluster.py``) apply to a cluster made by a
stack as to one made by `awslab up`. The cluster is created once it is ``available`` with its
three members (``is_created``, read by ``cfn_lifecycle``), answers its ``Fn::GetAtt``s
(``Endpoint.Address``, ``ReadEndpoint.Address``, ``DBClusterArn``...), and is deleted with the
stack through DeleteDBCluster: with a final DB cluster snapshot under ``DeletionPolicy: Snapshot``
(``cfn_resources.delete_resource`` names it as CloudFormation does), without one otherwise.

Like the types in ``cloudformation.py``, each registers by being defined (a direct subclass of
CloudFormationModel), and stays in this module: a saved local AWS names their classes by it.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

from moto.core.common_models import CloudFormationModel

from awslab.local.patches.cfn_lifecycle import SETTLING
from awslab.local.patches.cloudformation import Model, as_parameter, camelcase_to_underscores


def _rds(account_id: str, region_name: str):
    from moto.rds.models import rds_backends

    return rds_backends[account_id][region_name]


class DbClusterParameterGroup(Model, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::RDS::DBClusterParameterGroup", "DBClusterParameterGroupName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json.get("Properties") or {}
        backend = _rds(account_id, region_name)
        group = backend.create_db_cluster_parameter_group(
            db_cluster_parameter_group_name=(props.get("DBClusterParameterGroupName") or resource_name).lower(),
            db_parameter_group_family=props.get("Family"), description=props.get("Description"),
            tags=props.get("Tags") or [])
        # The template's Parameters, set as `up` sets them (ModifyDBClusterParameterGroup, at once).
        parameters = [{"ParameterName": k, "ParameterValue": str(v), "ApplyMethod": "immediate"}
                      for k, v in (props.get("Parameters") or {}).items()]
        if parameters:
            backend.modify_db_cluster_parameter_group(group.name, parameters)
        return cls(group.name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.rds.exceptions import DBParameterGroupNotFoundError

        try:
            _rds(account_id, region_name).delete_db_cluster_parameter_group(self.physical_id)
        except DBParameterGroupNotFoundError:
            pass   # already gone, as CloudFormation takes it


class DbCluster(Model, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::RDS::DBCluster", "DBClusterIdentifier"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = dict(cloudformation_json.get("Properties") or {})
        if props.get("BackupRetentionPeriod") is None:
            props["BackupRetentionPeriod"] = 1   # CloudFormation's default, as CreateDBCluster's
        args = {camelcase_to_underscores(k): as_parameter(k, v) for k, v in props.items()}
        # Without one, CloudFormation names it <stack>-<logical id>-<suffix>, lowercase.
        args["db_cluster_identifier"] = (props.get("DBClusterIdentifier") or resource_name).lower()
        cluster = _rds(account_id, region_name).create_db_cluster(args)
        secret = getattr(cluster, "master_user_secret", None)
        made = cls(cluster.db_cluster_identifier, {
            "Endpoint.Address": cluster.endpoint, "Endpoint.Port": str(cluster.port),
            "ReadEndpoint.Address": cluster.reader_endpoint, "DBClusterArn": cluster.db_cluster_arn,
            "DBClusterResourceId": cluster.db_cluster_resource_id,
            **({"MasterUserSecret.SecretArn": secret.secret_arn} if secret is not None else {})})
        made.account_id, made.region_name = account_id, region_name
        return made

    @property
    def status(self) -> str | None:
        """The cluster's own (``creating`` until its engines serve): what a StackSet's account waits for."""
        return getattr(_rds(self.account_id, self.region_name).clusters.get(self.physical_id), "status", None)

    def is_created(self) -> bool:
        """Available with its writer and two readers, as CloudFormation waits for a DB cluster
        (and as `up` waits for it: aws/db_cluster.DbCluster.ready)."""
        backend = _rds(self.account_id, self.region_name)
        cluster = backend.clusters.get(self.physical_id)
        if cluster is None:
            return True   # gone: settled, one way or the other
        members = [db for db in list(backend.databases.values())
                   if getattr(db, "db_cluster_identifier", None) == self.physical_id]
        return cluster.status not in SETTLING and bool(members) and all(m.status not in SETTLING for m in members)

    def delete(self, account_id: str, region_name: str, final_snapshot: str | None = None) -> None:
        """DeleteDBCluster (its members go with it); ``final_snapshot``: the DB cluster snapshot
        ``DeletionPolicy: Snapshot`` keeps. One already gone or being deleted is taken as gone."""
        backend = _rds(account_id, region_name)
        cluster = backend.clusters.get(self.physical_id)
        if cluster is None or cluster.status == "deleting":
            return
        backend.delete_db_cluster(cluster_identifier=self.physical_id, snapshot_name=final_snapshot)
