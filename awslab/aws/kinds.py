"""The lab's registry of resource kinds: the explicit map from a kind to its handler (the
contract is ``ResourceKind`` in spec/model.py, optional capabilities declared, not probed) and
the areas whose ``discover`` finds what exists. Handed to the planner and the executor where a
command starts its run (commands/_common.py); a new kind is one handler here and its line below.
"""

from __future__ import annotations

from awslab.aws import cache, database, db_cluster, host, network, parameters, security_groups
from awslab.aws.cache import (
    AuthTokenSecret,
    CacheRestore,
    CacheSnapshot,
    CacheSubnetGroup,
    ReplicationGroup,
)
from awslab.aws.database import DbInstance, DbReplica, DbRestore, DbSubnetGroup
from awslab.aws.db_cluster import DbCluster, DbClusterParameterGroup, DbClusterRestore, DbClusterSnapshot
from awslab.aws.db_snapshots import DbSnapshot, DbSnapshotCopy
from awslab.aws.host import HostCommand, Instance, InstanceProfile
from awslab.aws.network import InternetGateway, RouteTable, Subnet, Vpc
from awslab.aws.parameters import CacheParameterGroup, DbParameterGroup
from awslab.aws.security_groups import SecurityGroup, SecurityGroupRules

from awslab.spec.model import Kinds

# In the order `awslab export` writes the kinds' CloudFormation forms (their ``export`` capability):
# the network, the host, then the data stores, each after what it refers to.
KINDS = Kinds(
    (Vpc(), InternetGateway(), Subnet(), RouteTable(), SecurityGroup(), SecurityGroupRules(),
     InstanceProfile(), Instance(), DbSubnetGroup(), DbParameterGroup(), CacheParameterGroup(),
     DbClusterParameterGroup(), DbCluster(), DbInstance(), DbReplica(),
     CacheSubnetGroup(), AuthTokenSecret(), ReplicationGroup(),
     DbSnapshot(), DbSnapshotCopy(), CacheSnapshot(), DbRestore(), CacheRestore(), HostCommand(),
     DbClusterSnapshot(), DbClusterRestore()),
    areas=(network.discover, security_groups.discover, host.discover, database.discover, cache.discover,
           parameters.discover, db_cluster.discover),
)
