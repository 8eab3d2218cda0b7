"""EC2: instances that pass through pending and stay listed as terminated for AWS's hour, ClientToken honoured, deletes refused while in use.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local import latency
from awslab.local.patches._base import init_dicts
from awslab.local.patches._patch import patch
from awslab.local.side import note, side
from awslab.local.patches.rds import rds_error

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


def terminated_retention(lat: latency.Latency) -> float:
    """How long a terminated instance stays listed: AWS's hour, times the profile's time scale.

    Not a transition to skip: under ``instant`` too a terminated instance is listed (as
    ``terminated``, with its tags) for the hour, as on AWS, where scripts and waiters
    (``instance_terminated``) rely on seeing it; ``ec2.terminated-retention=S`` sets it."""
    if "ec2.terminated-retention" in lat.explicit:
        return lat.explicit["ec2.terminated-retention"]
    return sum(s for _, s in latency.REALISTIC["ec2.terminated-retention"]) * lat.time_scale


INSTANCE = "moto.ec2.models.instances:Instance"
INSTANCE_BACKEND = "moto.ec2.models.instances:InstanceBackend"


# --- a resource's tags, by its id

@patch("moto.ec2.models.core:TaggedEC2Resource", gap="ec2-tag-lookup", phase="answers", kind="replace")
def get_tags(self) -> list[dict[str, str]]:
    """The resource's own tags, looked up by its id. moto finds them by matching a regular
    expression of the id against every tag of the region (DescribeTags with a resource-id filter),
    so each describe filtered by a tag cost resources x tags: a tenth of the local AWS's CPU while
    the tests ran, more with every stack a server holds. The same dicts, in the same order."""
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    rid = getattr(self, "id", None)
    tags = self.ec2_backend.tags.get(rid) if rid else None
    if not tags:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
    return [{"resource_id": rid, "key": key, "value": value, "resource_type": kind} for key, value in tags.items()]


# --- states: `pending` before `running`; `shutting-down` before `terminated`; then gone after a while

def _current(inst) -> str:
    return latency.phase(inst) or inst._state.name


@patch(INSTANCE, gap="ec2-instance-states", phase="states", kind="replace")
@property
def state(self) -> str:
    return _current(self)


@patch(INSTANCE, gap="ec2-instance-states", phase="states", kind="replace")
@property
def state_code(self) -> int:
    return STATE_CODES.get(_current(self), self._state.code)


@patch(INSTANCE, gap="ec2-instance-states", phase="states", kind="replace")
@property
def instance_state(self):
    from moto.ec2.models.instances import InstanceState

    return InstanceState(_current(self), STATE_CODES.get(_current(self), 0))


patch(INSTANCE_BACKEND, "__init__", gap="ec2-terminated-retention", phase="states")(init_dicts("reservations"))


@patch(INSTANCE_BACKEND, gap="ec2-instance-states", phase="states")
def run_instances(original, self, *a, **kw):
    reservation = original(self, *a, **kw)
    for inst in reservation.instances:
        latency.start(inst, "ec2.run")
    return reservation


@patch(INSTANCE_BACKEND, gap=("ec2-instance-states", "ec2-terminated-retention"), phase="states")
def terminate_instances(original, self, instance_ids):
    result = original(self, instance_ids)
    now = latency.now()
    lat = latency.current()
    for inst, _ in result:
        latency.start(inst, "ec2.terminate")
        terminated_at = now + lat.seconds("ec2.terminate")
        note(inst, terminated_at=terminated_at, eni_free_at=terminated_at + lat.seconds("ec2.eni-drain"),
             gone_at=terminated_at + terminated_retention(lat))
    for reservation in list(dict.values(self.reservations)):
        gone = [side(i).gone_at for i in reservation.instances]
        if gone and all(g is not None for g in gone):
            note(reservation, gone_at=max(gone))
            if max(gone) <= now:
                for i in reservation.instances:
                    self.tags.pop(i.id, None)
    return result


@patch("moto.ec2.models:EC2Backend", gap="ec2-terminated-retention", phase="states")
def iter_tagged_resources(original, self):
    # DescribeInstances lists a terminated instance for the retention; the tagging API, awslab's
    # (and a user's cleanup tool's) view of what a stack still holds, leaves it out: it bills
    # nothing and can no longer be changed.
    terminated = {i.id for r in dict.values(self.reservations) for i in r.instances if i.state == "terminated"}
    for resource in original(self):
        if not (resource.resource_type == "ec2:instance" and resource.arn.rsplit("/", 1)[-1] in terminated):
            yield resource


# --- answers: a request repeated with the same ``ClientToken`` returns what the first one made, as
# on AWS (botocore fills the token in once per call, so its own retries repeat it).

@patch("moto.ec2.responses.instances:InstanceResponse", "run_instances", gap="ec2-client-tokens", phase="answers")
def run_instances_request(original, self):
    from moto.core.responses import ActionResult

    token = self._get_param("ClientToken")
    if token:
        for reservation in dict.values(self.ec2_backend.reservations):
            if reservation.instances and all(i.client_token == token for i in reservation.instances):
                return ActionResult(reservation)
    return original(self)


@patch("moto.ec2.responses.route_tables:RouteTables", gap="ec2-client-tokens", phase="answers")
def create_route_table(original, self):
    from moto.core.responses import ActionResult

    token = self._get_param("ClientToken")
    made = side(self.ec2_backend).route_table_tokens
    if made is None:
        made = note(self.ec2_backend, route_table_tokens={}).route_table_tokens
    if token and made.get(token) in self.ec2_backend.route_tables:
        return ActionResult({"RouteTable": self.ec2_backend.route_tables[made[token]]})
    result = original(self)
    if token:
        made[token] = result.result["RouteTable"].id
    return result


def _instance_in_use(inst, now: float) -> bool:
    """An instance holds its subnet and groups until its network interfaces have drained."""
    free_at = side(inst).eni_free_at
    if free_at is not None:
        return now < free_at
    return inst._state.name not in ("terminated",)


def _instance_group_ids(inst) -> set[str]:
    ids = {g.id for g in (getattr(inst, "security_groups", None) or []) if hasattr(g, "id")}
    for nic in getattr(inst, "nics", {}).values():
        ids |= {g.id for g in getattr(nic, "group_set", [])}
    return ids


# --- rejects: deleting what is still in use fails as on AWS ------------------------------------------

def _instances(ec2):
    return [i for r in dict.values(ec2.reservations) for i in r.instances]


@patch("moto.ec2.models.security_groups:SecurityGroupBackend", gap="ec2-security-group-in-use", phase="rejects")
def delete_security_group(original, self, name=None, group_id=None):
    from moto.ec2.exceptions import DependencyViolationError
    from moto.elasticache.models import elasticache_backends
    from moto.rds.models import rds_backends

    group = self.get_security_group_from_id(group_id) if group_id else None
    if group is not None:
        now = latency.now()
        in_use = any(group.id in _instance_group_ids(i) and _instance_in_use(i, now) for i in _instances(self))
        for groups in self.groups.values():
            for other in groups.values():
                if other.id == group.id:
                    continue
                for rule in [*other.ingress_rules, *other.egress_rules]:
                    if (rule.source_group or {}).get("GroupId") == group.id:
                        in_use = True
        rds = rds_backends[self.account_id][self.region_name]
        in_use |= any(group.id in (db.vpc_security_group_ids or []) for db in rds.databases.values())
        # A DB cluster still being deleted (its members already gone) holds its groups until it is.
        in_use |= any(group.id in (getattr(c, "vpc_security_group_ids", None) or []) for c in rds.clusters.values())
        cache = elasticache_backends[self.account_id][self.region_name]
        in_use |= any(group.id in (getattr(c, "security_group_ids", None) or [])
                      for c in [*cache.replication_groups.values(), *cache.cache_clusters.values()])
        if in_use:
            raise DependencyViolationError(f"resource {group.id} has a dependent object")
    return original(self, name=name, group_id=group_id)


@patch("moto.ec2.models.subnets:SubnetBackend", gap="ec2-subnet-in-use", phase="rejects")
def delete_subnet(original, self, subnet_id):
    from moto.ec2.exceptions import DependencyViolationError

    now = latency.now()
    if any(getattr(i, "subnet_id", None) == subnet_id and _instance_in_use(i, now) for i in _instances(self)):
        raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
    return original(self, subnet_id)


@patch("moto.rds.models:RDSBackend", gap="rds-subnet-group-in-use", phase="rejects")
def delete_subnet_group(original, self, subnet_name):
    users = [db.db_instance_identifier for db in self.databases.values()
             if getattr(db, "_db_subnet_group_name", None) == subnet_name]
    if users:
        raise rds_error("InvalidDBSubnetGroupStateFault",
                         f"Cannot delete the subnet group '{subnet_name}' because at least one database instance: "
                         f"{users[0]} is still using it.")
    # A DB cluster, until it is gone (its members go at once when it is deleted; it reads `deleting`).
    clusters = [c.db_cluster_identifier for c in self.clusters.values() if c.db_subnet_group_name == subnet_name]
    if clusters:
        raise rds_error("InvalidDBSubnetGroupStateFault",
                         f"Cannot delete the subnet group '{subnet_name}' because at least one database cluster: "
                         f"{clusters[0]} is still using it.")
    return original(self, subnet_name)


# --- answers --------------------------------------------------------------------------------------------

def _rule_source(rule) -> tuple:
    group = rule.source_group or {}
    return group.get("GroupId"), group.get("GroupName")


@patch("moto.ec2.models.security_groups:SecurityGroupRule", gap="ec2-rule-matching", phase="answers", kind="replace")
def __eq__(self, other) -> bool:
    """Revoking a rule matches it on protocol, ports and source alone, as AWS does: moto also
    compared the source group's Description, so a revoke without it found nothing
    (InvalidPermission.NotFound)."""
    from moto.ec2.models.security_groups import SecurityGroupRule

    if not isinstance(other, SecurityGroupRule) or self.ip_protocol != other.ip_protocol:
        return False
    for key in ("CidrIp", "CidrIpv6"):
        if key in self.ip_range and self.ip_range.get(key) != other.ip_range.get(key):
            return False
    if _rule_source(self) != _rule_source(other) or self.prefix_list_id != other.prefix_list_id:
        return False
    return self.ip_protocol == "-1" or (self.from_port, self.to_port) == (other.from_port, other.to_port)


@patch(INSTANCE_BACKEND, "run_instances", gap="ec2-instance-groups", phase="answers")
def run_instances_groups(original, self, *a, **kw):
    """An instance launched with a network interface lists that interface's groups as its own
    (DescribeInstances' SecurityGroups), as AWS does; moto left the list empty."""
    reservation = original(self, *a, **kw)
    for inst in reservation.instances:
        primary = (getattr(inst, "nics", None) or {}).get(0)
        if not inst.security_groups and primary is not None:
            inst.security_groups = list(primary.group_set)
    return reservation
