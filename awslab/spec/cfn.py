"""The lab's CloudFormation form, as each resource kind's ``export`` capability writes its part of it
(commands/export.py assembles the parts in the registry's order): what a part is handed
(``ExportFor``: the lab, its resources' names under the template's parameters), what it returns
(``Export``), the logical ids parts refer to each other by, and what every part writes the same
way (a ``Fn::Sub`` or a ``Ref``, awslab's tags on a resource, an engine's minor version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from awslab.spec import catalog
from awslab.spec.deployment import is_cluster
from awslab.spec.lab import Lab
from awslab.spec.tags import TAG_LAB, TAG_RESOURCE, TAG_STACK
from awslab.spec.topology import CLUSTER_SUBNET, PRIVATE_SUBNETS, names, replica_name

# The template's own parameters that names derive from: awslab's stack name and the region.
STACK = "${StackName}"
REGION = "${AWS::Region}"

# The logical id of each resource parts refer to by its topology key (a Ref, a GetAtt).
LOGICAL = {
    "network.vpc": "Vpc", "network.igw": "InternetGateway", "network.subnet.public": "PublicSubnet",
    "network.subnet.private-a": "PrivateSubnetA", "network.subnet.private-b": "PrivateSubnetB",
    CLUSTER_SUBNET: "PrivateSubnetC", "db.cluster-parameter-group": "DbClusterParameterGroup", "db.cluster": "DbCluster",
    "network.routes.public": "PublicRouteTable", "sg.app": "AppSecurityGroup", "sg.db": "DbSecurityGroup",
    "sg.cache": "CacheSecurityGroup", "host.profile": "HostInstanceProfile", "host.instance": "Host",
    "db.subnet-group": "DbSubnetGroup", "db.parameter-group": "DbParameterGroup", "db.primary": "Db",
    "cache.subnet-group": "CacheSubnetGroup", "cache.parameter-group": "CacheParameterGroup",
    "cache.auth-token": "CacheAuthToken", "cache.group": "Cache",
}


@dataclass(frozen=True)
class ExportFor:
    """What a kind's ``export`` is handed: the lab (with the --set list it was built with, its lab
    file, its class: the stack's record on its VPC), and names as `up` gives them
    (``topology.names``), the stack name and region the template's parameters."""

    lab: Lab
    overrides: tuple[str, ...] = ()
    lab_file: str | None = None
    klass: str | None = None

    @cached_property
    def names(self) -> dict[str, str]:
        return names(STACK, REGION)

    def name(self, key: str) -> dict:
        """``key``'s physical name, a ``Fn::Sub`` of the template's parameters."""
        return sub(self.names[key])

    def replica_name(self, n: int) -> dict:
        return sub(replica_name(STACK, n))

    @property
    def cluster(self) -> bool:
        """A Multi-AZ DB cluster in place of the DB instance and its replicas."""
        return is_cluster(self.lab.database)

    @property
    def private_subnets(self) -> tuple[str, ...]:
        """The DB subnet group's subnets (a cluster needs a third AZ's)."""
        return PRIVATE_SUBNETS + ((CLUSTER_SUBNET,) if self.cluster else ())

    @property
    def azs(self) -> list:
        """The AZ of each private subnet: the lab's, or the region's first ones."""
        zones = self.lab.network.availability_zones
        return [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} if not zones else zones[i]
                for i in range(len(self.private_subnets))]


@dataclass(frozen=True)
class Export:
    """A kind's part of the template: its resources and outputs, by logical id. The outputs list
    the endpoints and secrets a learner connects with first: a part whose outputs are not those
    (the host's id) says ``outputs_last``."""

    resources: dict[str, dict]
    outputs: dict[str, dict] = field(default_factory=dict)
    outputs_last: bool = False


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def ref(name: str) -> dict:
    return {"Ref": name}


def group_id(logical: str) -> dict:
    return {"Fn::GetAtt": [logical, "GroupId"]}


def tags(key: str, lab: Lab, name: str | None = None) -> list[dict]:
    out = [{"Key": TAG_STACK, "Value": ref("StackName")}, {"Key": TAG_LAB, "Value": lab.name},
           {"Key": TAG_RESOURCE, "Value": key}]
    if name is not None:
        out.append({"Key": "Name", "Value": sub(name)})
    return out


def minor(engine: str, version: str) -> str:
    """The minor RDS picks for a major (a template names the version it gets; cfn-lint flags majors)."""
    return catalog.DB_ENGINES.get(engine, {}).get("default_minors", {}).get(version, version)
