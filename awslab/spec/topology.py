"""The lab's resources and how they depend on each other: one table, read forwards to build and
backwards to tear down.

``desired(lab, stack, region)`` is pure: the same lab and stack always give the same resources,
names and dependencies, so planning needs no AWS. ``plan_down`` (awslab.engine.plan) reverses the
same ``EDGES`` for whatever discovery found, so ``down`` needs no lab file.
"""

from __future__ import annotations

from awslab.spec.deployment import instance_replicas, is_cluster
from awslab.spec.model import Desired
from awslab.spec.lab import Lab

PRIVATE_SUBNETS = ("network.subnet.private-a", "network.subnet.private-b")
CLUSTER_SUBNET = "network.subnet.private-c"   # the third AZ a Multi-AZ DB cluster needs

# key -> (kind, dependencies). Replicas are numbered: db.replica.1, db.replica.2, ...
EDGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "network.vpc": ("vpc", ()),
    "network.igw": ("internet-gateway", ("network.vpc",)),
    "network.subnet.public": ("subnet", ("network.vpc",)),
    "network.subnet.private-a": ("subnet", ("network.vpc",)),
    "network.subnet.private-b": ("subnet", ("network.vpc",)),
    CLUSTER_SUBNET: ("subnet", ("network.vpc",)),
    "network.routes.public": ("route-table", ("network.igw", "network.subnet.public")),
    "sg.app": ("security-group", ("network.vpc",)),
    "sg.db": ("security-group", ("network.vpc",)),
    "sg.cache": ("security-group", ("network.vpc",)),
    "sg.rules": ("security-group-rules", ("sg.app", "sg.db", "sg.cache")),
    "host.profile": ("instance-profile", ()),
    # The host waits for its route to the internet so its user data can install the clients.
    "host.instance": ("instance", ("network.subnet.public", "network.routes.public", "sg.app", "host.profile")),
    "db.subnet-group": ("db-subnet-group", PRIVATE_SUBNETS + (CLUSTER_SUBNET,)),
    "db.parameter-group": ("db-parameter-group", ()),
    "db.primary": ("db-instance", ("db.subnet-group", "db.parameter-group", "sg.db")),
    "db.replica": ("db-replica", ("db.primary", "db.parameter-group")),
    # database.deployment = "cluster": a Multi-AZ DB cluster instead of db.primary and its replicas.
    "db.cluster-parameter-group": ("db-cluster-parameter-group", ()),
    "db.cluster": ("db-cluster", ("db.subnet-group", "db.cluster-parameter-group", "sg.db")),
    "cache.subnet-group": ("cache-subnet-group", PRIVATE_SUBNETS),
    "cache.parameter-group": ("cache-parameter-group", ()),
    "cache.auth-token": ("secret", ()),
    "cache.group": ("replication-group", ("cache.subnet-group", "cache.parameter-group", "sg.cache", "cache.auth-token")),
}


# Families of numbered resources whose count the lab sets: key prefix -> the lab setting.
COUNTED = {"db.replica.": "database.read_replicas"}

def edge_for(key: str, kind: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Kind and dependencies of a key, numbered replicas and restores included; KeyError for an unknown key.
    A restore of a Multi-AZ DB cluster (``kind`` db-cluster) is ordered as the stack's cluster:
    it uses the cluster's parameter group, which must outlive it."""
    if key.startswith("db.replica."):
        return EDGES["db.replica"]
    if key.startswith("db.restored.") and kind == "db-cluster":
        return EDGES["db.cluster"]
    if key.startswith(("db.restored.", "db.promoted.")):
        return EDGES["db.primary"]
    if key.startswith("cache.restored."):
        return EDGES["cache.group"]
    return EDGES[key]


def names(stack: str, region: str) -> dict[str, str]:
    """Physical names. IAM is global, so its names carry the region too."""
    return {
        "network.vpc": f"{stack}-vpc",
        "network.igw": f"{stack}-igw",
        "network.subnet.public": f"{stack}-public",
        "network.subnet.private-a": f"{stack}-private-a",
        "network.subnet.private-b": f"{stack}-private-b",
        CLUSTER_SUBNET: f"{stack}-private-c",
        "network.routes.public": f"{stack}-public",
        "sg.app": f"{stack}-app",
        "sg.db": f"{stack}-db",
        "sg.cache": f"{stack}-cache",
        "sg.rules": f"{stack} rules",
        "host.profile": f"awslab-{stack}-{region}-host",
        "host.instance": f"{stack}-host",
        "db.subnet-group": f"{stack}-db",
        "db.parameter-group": f"{stack}-db",
        "db.primary": f"{stack}-db",
        "db.cluster-parameter-group": f"{stack}-db-cluster",
        "db.cluster": f"{stack}-db",
        "cache.subnet-group": f"{stack}-cache",
        "cache.parameter-group": f"{stack}-cache",
        "cache.auth-token": f"awslab/{stack}/cache-auth-token",
        "cache.group": f"{stack}-cache",
    }


def replica_name(stack: str, n: int) -> str:
    return f"{stack}-db-replica-{n}"


def desired(lab: Lab, stack: str, region: str, record: dict[str, str] | None = None) -> list[Desired]:
    """Every resource the lab wants, in a stable order; ``record``: the stack-record tags (spec/tags.py)
    its VPC should carry ("" for one to remove; a key left out is left as it is)."""
    nm = names(stack, region)
    n, h, d, c = lab.network, lab.host, lab.database, lab.cache
    specs: dict[str, dict] = {
        "network.vpc": {"cidr": n.vpc_cidr, "record": dict(record or {})},
        "network.igw": {},
        "network.subnet.public": {"cidr": n.public_subnet_cidr, "az_index": 0, "public": True},
        "network.subnet.private-a": {"cidr": n.private_subnet_cidrs[0], "az_index": 0, "public": False},
        "network.subnet.private-b": {"cidr": n.private_subnet_cidrs[1], "az_index": 1, "public": False},
        "network.routes.public": {},
        "sg.app": {"description": f"awslab {stack}: the EC2 host"},
        "sg.db": {"description": f"awslab {stack}: RDS, reachable from the host only"},
        "sg.cache": {"description": f"awslab {stack}: ElastiCache, reachable from the host only"},
        "sg.rules": {"db_port": d.port, "cache_port": c.port, "ssh_cidr": h.ssh_cidr},
        "host.profile": {"managed_policy_arns": list(h.managed_policy_arns)},
        "host.instance": {"instance_type": h.instance_type, "ami_parameter": h.ami_parameter, "db_engine": d.engine},
        "db.subnet-group": {},
        "db.parameter-group": {"database": d},
        "db.primary": {"database": d},
        "cache.subnet-group": {},
        "cache.parameter-group": {"cache": c},
        "cache.auth-token": {},
        "cache.group": {"cache": c},
    }
    if is_cluster(d):
        specs = _cluster_specs(specs, n, d)
    out: list[Desired] = []
    for key, spec in specs.items():
        kind, deps = EDGES[key]
        out.append(Desired(key, kind, nm[key], deps, {**spec, "azs": n.availability_zones}))
    kind, deps = EDGES["db.replica"]
    for i in range(1, instance_replicas(d) + 1):
        out.append(Desired(f"db.replica.{i}", kind, replica_name(stack, i), deps, {"database": d}))
    return out


def _cluster_specs(specs: dict[str, dict], n, d) -> dict[str, dict]:
    """A Multi-AZ DB cluster's resources in place of the instance's: a third private subnet (its
    AZ), a subnet group over the three, a DB cluster parameter group, the cluster."""
    out: dict[str, dict] = {}
    for key, spec in specs.items():
        if key in ("db.primary", "db.parameter-group"):
            continue
        if key == "db.subnet-group":
            spec = {"subnets": PRIVATE_SUBNETS + (CLUSTER_SUBNET,)}
        out[key] = spec
        if key == "network.subnet.private-b":
            out[CLUSTER_SUBNET] = {"cidr": n.cluster_subnet_cidr, "az_index": 2, "public": False}
        if key == "db.subnet-group":
            out["db.cluster-parameter-group"] = {"database": d}
            out["db.cluster"] = {"database": d}
    return out
