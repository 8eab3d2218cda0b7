"""EC2: instances that pass through pending and stay listed as terminated for AWS's hour, ClientToken honoured, deletes refused while in use.

Part of awslab's layer over moto (the table of gaps is in ``awslab.local.patches``)."""

from __future__ import annotations

import functools

from awslab.local import latency
from awslab.local.patches._base import (
    wrap_init_dicts,
)
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


def states() -> None:
    """`pending` before `running`; `shutting-down` before `terminated`; then gone after a while."""
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.instances import Instance, InstanceBackend, InstanceState

    def current(self) -> str:
        return latency.phase(self) or self._state.name

    Instance.state = property(current)
    Instance.state_code = property(lambda self: STATE_CODES.get(current(self), self._state.code))
    Instance.instance_state = property(lambda self: InstanceState(current(self), STATE_CODES.get(current(self), 0)))
    wrap_init_dicts(InstanceBackend, "reservations")

    orig_run = InstanceBackend.run_instances

    @functools.wraps(orig_run)
    def run_instances(self, *a, **kw):
        reservation = orig_run(self, *a, **kw)
        for inst in reservation.instances:
            latency.start(inst, "ec2.run")
        return reservation

    orig_terminate = InstanceBackend.terminate_instances

    @functools.wraps(orig_terminate)
    def terminate_instances(self, instance_ids):
        result = orig_terminate(self, instance_ids)
        now = latency.now()
        lat = latency.current()
        for inst, _ in result:
            latency.start(inst, "ec2.terminate")
            inst._awslab_terminated_at = now + lat.seconds("ec2.terminate")
            inst._awslab_eni_free_at = inst._awslab_terminated_at + lat.seconds("ec2.eni-drain")
            inst._awslab_gone_at = inst._awslab_terminated_at + terminated_retention(lat)
        for reservation in list(dict.values(self.reservations)):
            gone = [getattr(i, "_awslab_gone_at", None) for i in reservation.instances]
            if gone and all(g is not None for g in gone):
                reservation._awslab_gone_at = max(gone)
                if reservation._awslab_gone_at <= now:
                    for i in reservation.instances:
                        self.tags.pop(i.id, None)
        return result

    InstanceBackend.run_instances = run_instances
    InstanceBackend.terminate_instances = terminate_instances

    orig_tagged = EC2Backend.iter_tagged_resources

    @functools.wraps(orig_tagged)
    def iter_tagged_resources(self):
        # DescribeInstances lists a terminated instance for the retention; the tagging API, awslab's
        # (and a user's cleanup tool's) view of what a stack still holds, leaves it out: it bills
        # nothing and can no longer be changed.
        terminated = {i.id for r in dict.values(self.reservations) for i in r.instances if i.state == "terminated"}
        for resource in orig_tagged(self):
            if not (resource.resource_type == "ec2:instance" and resource.arn.rsplit("/", 1)[-1] in terminated):
                yield resource

    EC2Backend.iter_tagged_resources = iter_tagged_resources


def client_tokens() -> None:
    """A request repeated with the same ``ClientToken`` returns what the first one made, as on AWS
    (botocore fills the token in once per call, so its own retries repeat it)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.route_tables import RouteTables

    orig_run = InstanceResponse.run_instances

    @functools.wraps(orig_run)
    def run_instances(self):
        token = self._get_param("ClientToken")
        if token:
            for reservation in dict.values(self.ec2_backend.reservations):
                if reservation.instances and all(i.client_token == token for i in reservation.instances):
                    return ActionResult(reservation)
        return orig_run(self)

    InstanceResponse.run_instances = run_instances

    orig_create_rt = RouteTables.create_route_table

    @functools.wraps(orig_create_rt)
    def create_route_table(self):
        token = self._get_param("ClientToken")
        made = self.ec2_backend.__dict__.setdefault("_awslab_route_table_tokens", {})
        if token and made.get(token) in self.ec2_backend.route_tables:
            return ActionResult({"RouteTable": self.ec2_backend.route_tables[made[token]]})
        result = orig_create_rt(self)
        if token:
            made[token] = result.result["RouteTable"].id
        return result

    RouteTables.create_route_table = create_route_table


def _instance_in_use(inst, now: float) -> bool:
    """An instance holds its subnet and groups until its network interfaces have drained."""
    free_at = getattr(inst, "_awslab_eni_free_at", None)
    if free_at is not None:
        return now < free_at
    return inst._state.name not in ("terminated",)


def _instance_group_ids(inst) -> set[str]:
    ids = {g.id for g in (getattr(inst, "security_groups", None) or []) if hasattr(g, "id")}
    for nic in getattr(inst, "nics", {}).values():
        ids |= {g.id for g in getattr(nic, "group_set", [])}
    return ids


def in_use_deletes() -> None:
    """Deleting what is still in use fails as on AWS."""
    from moto.ec2.exceptions import DependencyViolationError
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.models.subnets import SubnetBackend
    from moto.elasticache.models import elasticache_backends
    from moto.rds.models import RDSBackend, rds_backends

    def instances(ec2):
        return [i for r in dict.values(ec2.reservations) for i in r.instances]

    orig_sg = SecurityGroupBackend.delete_security_group

    @functools.wraps(orig_sg)
    def delete_security_group(self, name=None, group_id=None):
        group = self.get_security_group_from_id(group_id) if group_id else None
        if group is not None:
            now = latency.now()
            in_use = any(group.id in _instance_group_ids(i) and _instance_in_use(i, now) for i in instances(self))
            for groups in self.groups.values():
                for other in groups.values():
                    if other.id == group.id:
                        continue
                    for rule in [*other.ingress_rules, *other.egress_rules]:
                        if (rule.source_group or {}).get("GroupId") == group.id:
                            in_use = True
            rds = rds_backends[self.account_id][self.region_name]
            in_use |= any(group.id in (db.vpc_security_group_ids or []) for db in rds.databases.values())
            cache = elasticache_backends[self.account_id][self.region_name]
            in_use |= any(group.id in (getattr(c, "security_group_ids", None) or [])
                          for c in [*cache.replication_groups.values(), *cache.cache_clusters.values()])
            if in_use:
                raise DependencyViolationError(f"resource {group.id} has a dependent object")
        return orig_sg(self, name=name, group_id=group_id)

    SecurityGroupBackend.delete_security_group = delete_security_group

    orig_subnet = SubnetBackend.delete_subnet

    @functools.wraps(orig_subnet)
    def delete_subnet(self, subnet_id):
        now = latency.now()
        if any(getattr(i, "subnet_id", None) == subnet_id and _instance_in_use(i, now) for i in instances(self)):
            raise DependencyViolationError(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return orig_subnet(self, subnet_id)

    SubnetBackend.delete_subnet = delete_subnet

    orig_dbsg = RDSBackend.delete_subnet_group

    @functools.wraps(orig_dbsg)
    def delete_subnet_group(self, subnet_name):
        users = [db.db_instance_identifier for db in self.databases.values()
                 if getattr(db, "_db_subnet_group_name", None) == subnet_name]
        if users:
            raise rds_error("InvalidDBSubnetGroupStateFault",
                             f"Cannot delete the subnet group '{subnet_name}' because at least one database instance: "
                             f"{users[0]} is still using it.")
        return orig_dbsg(self, subnet_name)

    RDSBackend.delete_subnet_group = delete_subnet_group


def rule_matching() -> None:
    """Revoking a rule matches it on protocol, ports and source alone, as AWS does: moto also
    compared the source group's Description, so a revoke without it found nothing
    (InvalidPermission.NotFound)."""
    from moto.ec2.models.security_groups import SecurityGroupRule

    def source(rule) -> tuple:
        group = rule.source_group or {}
        return group.get("GroupId"), group.get("GroupName")

    def __eq__(self, other) -> bool:
        if not isinstance(other, SecurityGroupRule) or self.ip_protocol != other.ip_protocol:
            return False
        for key in ("CidrIp", "CidrIpv6"):
            if key in self.ip_range and self.ip_range.get(key) != other.ip_range.get(key):
                return False
        if source(self) != source(other) or self.prefix_list_id != other.prefix_list_id:
            return False
        return self.ip_protocol == "-1" or (self.from_port, self.to_port) == (other.from_port, other.to_port)

    SecurityGroupRule.__eq__ = __eq__


def instance_groups() -> None:
    """An instance launched with a network interface lists that interface's groups as its own
    (DescribeInstances' SecurityGroups), as AWS does; moto left the list empty."""
    from moto.ec2.models.instances import InstanceBackend

    orig = InstanceBackend.run_instances

    @functools.wraps(orig)
    def run_instances(self, *a, **kw):
        reservation = orig(self, *a, **kw)
        for inst in reservation.instances:
            primary = (getattr(inst, "nics", None) or {}).get(0)
            if not inst.security_groups and primary is not None:
                inst.security_groups = list(primary.group_set)
        return reservation

    InstanceBackend.run_instances = run_instances
