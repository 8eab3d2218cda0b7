"""The exported template's Multi-AZ DB cluster (``database.deployment = "cluster"``): an
``AWS::RDS::DBCluster`` and its ``AWS::RDS::DBClusterParameterGroup`` in place of the DB instance,
its parameter group and its read replicas (a cluster serves reads on its two readable standbys:
``spec/deployment.instance_replicas`` makes no replica for it, and neither does the template).

Every setting comes from the table `up` creates the cluster from (``aws/db_cluster.CLUSTER_SETTINGS``,
its CloudFormation names) and the Iops it sends (``spec/deployment.iops_argument``: io1/io2 need
them); what awslab always sets (managed password, never public, tags copied to snapshots, a final
snapshot on delete) is set as ``aws/db_cluster.DbCluster.create`` sets it. The outputs are the
writer endpoint (``DbEndpoint``, as the instance's), the reader endpoint and the master secret.
"""

from __future__ import annotations

from awslab.aws.db_cluster import CLUSTER_SETTINGS
from awslab.aws.parameters import DB_PARAMETERS, db_family, values
from awslab.commands.export_parts import minor, ref, sub, tags
from awslab.spec.deployment import iops_argument
from awslab.spec.lab import Lab
from awslab.spec.model import parameters


def cluster_resources(lab: Lab) -> tuple[dict[str, dict], dict[str, dict]]:
    """(resources, outputs) of the lab's Multi-AZ DB cluster, named and tagged as `up` names them
    (``spec/topology.names``: the cluster ``<stack>-db``, its group ``<stack>-db-cluster``)."""
    d = lab.database
    r: dict[str, dict] = {}
    r["DbClusterParameterGroup"] = {"Type": "AWS::RDS::DBClusterParameterGroup", "Properties": {
        "DBClusterParameterGroupName": sub("${StackName}-db-cluster"), "Family": db_family(d),
        "Description": sub("awslab ${StackName}: the DB cluster's parameters"),
        "Parameters": values(DB_PARAMETERS[d.engine], d), "Tags": tags("db.cluster-parameter-group", lab)}}
    r["DbCluster"] = {"Type": "AWS::RDS::DBCluster", "DeletionPolicy": "Snapshot", "UpdateReplacePolicy": "Snapshot",
                      "Properties": {
                          "DBClusterIdentifier": sub("${StackName}-db"), **parameters(CLUSTER_SETTINGS, d, "cfn"),
                          **iops_argument(d), "EngineVersion": minor(d.engine, d.engine_version),
                          "DBClusterInstanceClass": ref("DbClusterInstanceClass"),
                          "CopyTagsToSnapshot": True, "ManageMasterUserPassword": True, "PubliclyAccessible": False,
                          "DBSubnetGroupName": ref("DbSubnetGroup"),
                          "DBClusterParameterGroupName": ref("DbClusterParameterGroup"),
                          "VpcSecurityGroupIds": [{"Fn::GetAtt": ["DbSecurityGroup", "GroupId"]}],
                          "Tags": tags("db.cluster", lab)}}
    if not iops_argument(d):
        # cfn-lint's E3692 asks every Multi-AZ DB cluster for Iops, after CreateDBCluster's reference
        # ("required to create a Multi-AZ DB cluster"); RDS refuses Iops on gp3 under 400 GiB, whose
        # baseline is set by no one (spec/deployment.py). Told so here, for this resource only.
        r["DbCluster"]["Metadata"] = {"cfn-lint": {"config": {"ignore_checks": ["E3692"]}}}
    outputs = {
        "DbEndpoint": {"Value": {"Fn::GetAtt": ["DbCluster", "Endpoint.Address"]}},
        "DbReaderEndpoint": {"Value": {"Fn::GetAtt": ["DbCluster", "ReadEndpoint.Address"]}},
        "DbMasterSecretArn": {"Value": {"Fn::GetAtt": ["DbCluster", "MasterUserSecret.SecretArn"]}},
    }
    return r, outputs
