"""The VPC in the data path (runs in the local AWS's process).

Every connection to an RDS or ElastiCache endpoint has a source. The endpoint's local address
(what ``awslab local endpoints`` shows) is the endpoint as seen from *outside* the VPC: this
machine's own shell, the internet, at ``CALLER`` (127.0.0.1). An instance sees the endpoint at a
listener of its own (``<endpoint>@<instance id>``, opened when a client asks for the map through
that instance: ``/awslab/endpoints?via=i-...``), so the relay knows which instance a connection
comes from without root, without address tricks.

``Network.decide`` asks ``spec.reachability.evaluate`` (the evaluator verify's path checks use) on
the region's security groups, subnets, route tables and network ACLs as moto holds them *now*:
a rule changed through the API decides the next connection. A denied connection is held, never
answered or refused, as AWS drops its SYN: the client waits for its own timeout. Decisions are
made per new connection only (security groups are stateful): an open connection outlives a
revoke.

Each decision is a VPC Flow Logs record (version 2 fields, plus the VPC and the reason of a
REJECT in verify's words) appended to ``flows.jsonl`` (``/awslab/flows``, ``awslab flows``), and
delivered to every CloudWatch Logs flow log the learner created for the VPC, subnet or instance.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from awslab.spec.reachability import Net, Peer, Source, Target, Verdict, evaluate

log = logging.getLogger("awslab.local.network")
CALLER = "127.0.0.1"            # this machine, as the VPC sees it
OUTSIDE = "outside"             # the source of a connection to an endpoint's own local address
FLOWS_FILE = "flows.jsonl"
FLOWS_KEEP_BYTES = 4 << 20      # the flow log is cut to its newer half beyond this
SYN_BYTES = 60                  # what AWS sees of a dropped connection: its SYN

VERDICTS_MAX = 4096   # paths kept decided (a class of 30: a few hundred); all forgotten past it
# The operations after which a path may open or close (the listeners' modes follow them).
PATH_CHANGES = frozenset({
    "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress", "ModifySecurityGroupRules", "DeleteSecurityGroup",
    "CreateRoute", "ReplaceRoute", "DeleteRoute", "AssociateRouteTable", "DisassociateRouteTable",
    "ReplaceRouteTableAssociation", "DeleteRouteTable", "AttachInternetGateway", "DetachInternetGateway",
    "CreateNetworkAclEntry", "ReplaceNetworkAclEntry", "DeleteNetworkAclEntry", "ReplaceNetworkAclAssociation",
    "ModifyInstanceAttribute", "ModifyNetworkInterfaceAttribute", "StartInstances", "StopInstances",
    "TerminateInstances", "ModifyDBInstance", "ModifyReplicationGroup", "ModifyCacheCluster",
})

# Owner = (service, account, region, identifier): "rds" and a DB instance, "cache" and a
# replication group.
Owner = tuple[str, str, str, str]


@dataclass
class Decision:
    """One connection's verdict, and the flow record it becomes."""

    allowed: bool
    record: dict[str, Any]   # its "reason" says why, in verify's words
    deliver: Callable[[dict[str, Any]], None]

    def closed(self, sent: int, received: int, packets: int) -> None:
        """The accepted connection ended: its record, with what it carried."""
        self.record.update(bytes=sent + received, packets=max(packets, 1), end=int(time.time()))
        self.deliver(self.record)


class Network:
    def __init__(self, local_dir: Path, owners: dict[str, Owner]) -> None:
        self.flows_path = local_dir / FLOWS_FILE
        self.owners = owners          # endpoint -> what it belongs to (Backing fills it)
        self._lock = threading.Lock()
        self._pass = threading.local()   # a refresh pass's networks, read once per VPC
        self._verdicts: dict[tuple, bool] = {}   # allows(): a path's verdict by what it was decided from

    # --- deciding ---

    def decide(self, source: str, endpoint: str, client: tuple[str, int]) -> Decision:
        start = int(time.time())
        record: dict[str, Any] = {"version": 2, "account-id": "-", "interface-id": "-", "srcaddr": CALLER,
                                  "dstaddr": "-", "srcport": int(client[1]) or "-", "dstport": _port_of(endpoint),
                                  "protocol": 6, "packets": 1, "bytes": SYN_BYTES, "start": start, "end": start,
                                  "action": "REJECT", "log-status": "OK", "vpc-id": "-", "endpoint": endpoint,
                                  "source": source}
        try:
            verdict, facts = self._evaluate(source, endpoint)
        except Exception as exc:  # noqa: BLE001 - a relay never fails open on a lookup it could not do
            log.warning("could not decide %s -> %s: %s", source, endpoint, exc)
            verdict, facts = Verdict(False, missing=[f"the local AWS could not evaluate the path: {exc}"]), {}
        record.update(facts)
        record["reason"] = (verdict.evidence[:1] or [""])[0] if verdict.allowed else "; ".join(verdict.missing)
        if verdict.allowed:
            record["action"] = "ACCEPT"   # written when the connection ends, with what it carried
        else:
            self._write(record)
        return Decision(verdict.allowed, record, self._write)

    def allows(self, source: str, endpoint: str) -> bool:
        """Does the VPC let ``source`` reach ``endpoint`` now (no record: a listener's mode)?

        Asked for every listener after each network change (a class of 30 has hundreds), most of
        them in VPCs the change did not touch: the verdict is kept for what it was decided from
        (the VPC's network as describe calls give it, the source, the target, the port), so an
        unchanged path is not worked out again. ``evaluate`` is a pure function of those."""
        inputs = self._inputs(source, endpoint, None)
        if isinstance(inputs, Verdict):
            return inputs.allowed
        net, net_key, src, target, port = inputs
        key = (net_key, src, target, port)
        allowed = self._verdicts.get(key)
        if allowed is None:
            if len(self._verdicts) >= VERDICTS_MAX:
                self._verdicts.clear()
            allowed = self._verdicts[key] = evaluate(net, src, target, port).allowed
        return allowed

    def sees(self, source: str, endpoint: str) -> bool:
        """Is instance ``source`` in the VPC of ``endpoint`` (the only endpoints routed to it)?"""
        owner = self.owners.get(endpoint)
        if owner is None:
            return False
        _, account, region, _ = owner
        try:
            inst = _ec2(account, region).get_instance(source)
            target = _target(owner)
        except Exception:  # noqa: BLE001 - not in that account and region
            return False
        return target is not None and inst.vpc_id == target.vpc

    def _evaluate(self, source: str, endpoint: str) -> tuple[Verdict, dict[str, Any]]:
        facts: dict[str, Any] = {}
        inputs = self._inputs(source, endpoint, facts)
        if isinstance(inputs, Verdict):
            return inputs, facts
        net, _, src, target, port = inputs
        return evaluate(net, src, target, port), facts

    def _inputs(self, source: str, endpoint: str, facts: dict[str, Any] | None):
        """What a path from ``source`` to ``endpoint`` is decided from: (the VPC's Net, a key of it,
        the Source, the Target, the port), or the Verdict when nothing more is needed to decide;
        ``facts`` (when given) gets the flow record's fields on the way."""
        owner = self.owners.get(endpoint)
        if owner is None:
            return Verdict(False, missing=[f"{endpoint} belongs to no resource the local AWS knows"])
        _, account, region, ident = owner
        ec2 = _ec2(account, region)
        target = _target(owner)
        if target is None:
            return Verdict(False, missing=[f"{ident} no longer exists"])
        if facts is not None:
            facts.update({"account-id": account, "vpc-id": target.vpc or "-", "interface-id": _interface_id(ident),
                          "dstaddr": _address_in(ec2, target.subnets, ident)})
        if source == OUTSIDE:
            src = Source(Peer(frozenset(), (f"{CALLER}/32",), "this machine (outside the VPC)"))
        else:
            try:
                inst = ec2.get_instance(source)
            except Exception:  # noqa: BLE001 - moto's InvalidInstanceID
                return Verdict(False, missing=[f"instance {source} does not exist"])
            state = inst._state.name
            if state != "running":
                return Verdict(False, missing=[f"instance {source} is {state}: it sends nothing"])
            groups = frozenset(g.id for g in inst.security_groups)
            address = inst.private_ip or CALLER
            name = dict.get(ec2.tags, source, {}).get("Name", "")   # not describe_tags: it scans every tag
            src = Source(Peer(groups, (f"{address}/32",), f"{name} ({source})" if name else source), inst.subnet_id, inst.vpc_id)
            if facts is not None:
                facts.update(srcaddr=address, **{"interface-id": _eni_of(inst) or facts["interface-id"]})
        net, net_key = self._net_of(ec2, account, region, target.vpc)
        return net, net_key, src, target, _port_of(endpoint)

    @contextlib.contextmanager
    def one_pass(self):
        """Within it (one thread's pass over every listener after a change), each VPC's network is
        read from moto once, not once per listener."""
        self._pass.nets = {}
        try:
            yield
        finally:
            self._pass.nets = None

    def _net_of(self, ec2, account: str, region: str, vpc: str | None) -> tuple[Net, str]:
        """The VPC's Net and its ``repr`` (all it holds, as a key), read once per pass."""
        nets = getattr(self._pass, "nets", None)
        key = (account, region, vpc)
        if nets is None or key not in nets:
            net = _net(ec2, vpc)
            made = (net, f"{account}/{region}/{vpc}/{net!r}")
            if nets is None:
                return made
            nets[key] = made
        return nets[key]

    # --- the flow log ---

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                with self.flows_path.open("a") as f:
                    f.write(line)
                    size = f.tell()
                if size > FLOWS_KEEP_BYTES:
                    lines = self.flows_path.read_text().splitlines(keepends=True)
                    self.flows_path.write_text("".join(lines[len(lines) // 2:]))
            except OSError as exc:
                log.warning("could not write the flow log: %s", exc)
        with contextlib.suppress(Exception):
            _deliver(record)

    def records(self, since: float = 0.0, action: str | None = None, vpc: str | None = None) -> list[dict]:
        try:
            lines = self.flows_path.read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                r = json.loads(line)
                if r.get("start", 0) >= since and (action is None or r.get("action") == action) \
                        and (vpc is None or r.get("vpc-id") == vpc):
                    out.append(r)
        return out


V2_FIELDS = ("version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport", "protocol",
             "packets", "bytes", "start", "end", "action", "log-status")


def v2_line(record: dict[str, Any]) -> str:
    """The record as VPC Flow Logs' default (version 2) format writes it."""
    return " ".join(str(record.get(f, "-")) for f in V2_FIELDS)


# --- moto, read as describe calls would ---

def _ec2(account: str, region: str):
    from moto.ec2.models import ec2_backends
    return ec2_backends[account][region]


def _net(ec2, vpc: str | None = None) -> Net:
    """The region's network as describe calls return it; only ``vpc``'s when given (a flow that
    leaves its VPC is refused before any of it is read)."""
    groups: dict[str, dict] = {}
    for vpc_id, by_id in list(ec2.groups.items()):
        if vpc is not None and vpc_id != vpc:
            continue
        for gid, g in list(by_id.items()):
            groups[gid] = {"GroupId": gid, "GroupName": g.name, "VpcId": g.vpc_id,
                           "IpPermissions": [_permission(r) for r in list(g.ingress_rules)],
                           "IpPermissionsEgress": [_permission(r) for r in list(g.egress_rules)]}
    subnets = {s.id: {"SubnetId": s.id, "CidrBlock": s.cidr_block, "VpcId": s.vpc_id}
               for per_az in list(ec2.subnets.values()) for s in list(per_az.values())
               if vpc is None or s.vpc_id == vpc}
    tables = []
    for rt in list(ec2.route_tables.values()):
        if vpc is not None and rt.vpc_id != vpc:
            continue
        routes = []
        for r in rt.routes:
            gw = getattr(r.gateway, "id", None) if r.gateway is not None else None
            routes.append({"DestinationCidrBlock": r.destination_cidr_block,
                           "DestinationIpv6CidrBlock": r.destination_ipv6_cidr_block,
                           "GatewayId": gw or ("local" if r.local else None), "State": "active"})
        if _default_vpc_without_gateway(ec2, rt):
            # AWS's default VPC comes with an internet gateway and 0.0.0.0/0 to it in its main table;
            # moto's has neither (adding them would change what its describes return).
            routes.append({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-default-vpc", "State": "active"})
        tables.append({"RouteTableId": rt.id, "Associations": rt.associations, "Routes": routes})
    nacls = []
    for n in list(ec2.network_acls.values()):
        if vpc is not None and n.vpc_id != vpc:
            continue
        entries = [{"RuleNumber": e.rule_number, "Protocol": str(e.protocol), "RuleAction": e.rule_action,
                    "Egress": str(e.egress).lower() == "true", "CidrBlock": e.cidr_block,
                    "Ipv6CidrBlock": e.ipv6_cidr_block,
                    "PortRange": {"From": int(e.port_range_from), "To": int(e.port_range_to)}
                    if e.port_range_from not in (None, "") else None}
                   for e in list(n.network_acl_entries)]
        nacls.append({"NetworkAclId": n.id, "IsDefault": bool(n.default), "Entries": entries,
                      "Associations": [{"SubnetId": a.subnet_id} for a in n.associations]})
    return Net(groups, subnets, tables, nacls)


def _default_vpc_without_gateway(ec2, rt) -> bool:
    vpc = getattr(ec2, "default_vpc", None)
    return (vpc is not None and rt.vpc_id == vpc.id and rt.main_association_id is not None
            and not any(getattr(r.gateway, "id", "").startswith("igw-") for r in rt.routes if r.gateway is not None))


def _permission(rule) -> dict[str, Any]:
    perm: dict[str, Any] = {"IpProtocol": rule.ip_protocol or "-1"}
    if rule.from_port is not None:
        perm.update(FromPort=rule.from_port, ToPort=rule.to_port)
    if rule.ip_range.get("CidrIp"):
        perm["IpRanges"] = [{"CidrIp": rule.ip_range["CidrIp"]}]
    if rule.ip_range.get("CidrIpv6"):
        perm["Ipv6Ranges"] = [{"CidrIpv6": rule.ip_range["CidrIpv6"]}]
    if rule.source_group.get("GroupId"):
        perm["UserIdGroupPairs"] = [{"GroupId": rule.source_group["GroupId"]}]
    return perm


def _target(owner: Owner) -> Target | None:
    """What the endpoint's owner is to the VPC now (None: it no longer exists)."""
    service, account, region, ident = owner
    return _rds_target(account, region, ident) if service == "rds" else _cache_target(account, region, ident)


def _rds_target(account: str, region: str, ident: str) -> Target | None:
    from moto.rds.models import rds_backends
    db = rds_backends[account][region].databases.get(ident)
    if db is None:
        return None
    group = getattr(db, "db_subnet_group", None)
    subnets = tuple(s.id for s in getattr(group, "_subnets", None) or [])
    ec2 = _ec2(account, region)
    vpc = getattr(group, "vpc_id", None)
    if not subnets:   # no DB subnet group: RDS uses the default VPC's default subnets
        defaults = [s for per_az in list(ec2.subnets.values()) for s in list(per_az.values())
                    if getattr(s, "default_for_az", False)]
        subnets, vpc = tuple(s.id for s in defaults), (defaults[0].vpc_id if defaults else None)
    cidrs = tuple(_subnet_cidr(ec2, s) for s in subnets)
    return Target(Peer(frozenset(db.vpc_security_group_ids or []), tuple(c for c in cidrs if c), ident),
                  subnets, vpc, bool(getattr(db, "publicly_accessible", False)))


def _cache_target(account: str, region: str, ident: str) -> Target | None:
    """A replication group (its members' groups and subnets), or a cache cluster of its own."""
    from moto.elasticache.models import elasticache_backends
    backend = elasticache_backends[account][region]
    group = backend.replication_groups.get(ident)
    clusters = [backend.cache_clusters.get(m) for m in list(group.member_clusters or [])] if group is not None \
        else [backend.cache_clusters.get(ident)]
    clusters = [c for c in clusters if c is not None]
    if group is None and not clusters:
        return None
    groups: set[str] = set()
    subnet_group = getattr(group, "cache_subnet_group_name", None)
    for cluster in clusters:
        groups |= set(getattr(cluster, "security_group_ids", None) or [])
        subnet_group = subnet_group or getattr(cluster, "cache_subnet_group_name", None)
    groups = groups or set(getattr(group, "security_group_ids", None) or [])
    sg = backend.cache_subnet_groups.get(subnet_group) if subnet_group else None
    subnets = tuple(getattr(sg, "subnet_ids", None) or [])
    ec2 = _ec2(account, region)
    if subnets:
        vpc = next((s["VpcId"] for s in [_subnet(ec2, subnets[0])] if s), None)
    else:   # no cache subnet group: ElastiCache uses the default VPC's default subnets and group
        defaults = [s for per_az in list(ec2.subnets.values()) for s in list(per_az.values())
                    if getattr(s, "default_for_az", False)]
        subnets, vpc = tuple(s.id for s in defaults), (defaults[0].vpc_id if defaults else None)
        if not groups and vpc is not None:
            groups = {g.id for g in list(ec2.groups.get(vpc, {}).values()) if g.name == "default"}
    cidrs = tuple(c for c in (_subnet_cidr(ec2, s) for s in subnets) if c)
    return Target(Peer(frozenset(groups), cidrs, ident), subnets, vpc, public=False)   # never public on AWS


def _subnet(ec2, subnet_id: str) -> dict | None:
    try:
        s = ec2.get_subnet(subnet_id)
    except Exception:  # noqa: BLE001 - moto's InvalidSubnetID
        return None
    return {"CidrBlock": s.cidr_block, "VpcId": s.vpc_id}


def _subnet_cidr(ec2, subnet_id: str) -> str | None:
    s = _subnet(ec2, subnet_id)
    return s["CidrBlock"] if s else None


def _address_in(ec2, subnets: tuple[str, ...], ident: str) -> str:
    """A stable private address for a resource moto gives none: in its first subnet."""
    cidr = _subnet_cidr(ec2, subnets[0]) if subnets else None
    if not cidr:
        return "-"
    net = ipaddress.ip_network(cidr, strict=False)
    offset = 4 + int(hashlib.sha1(ident.encode()).hexdigest(), 16) % max(1, net.num_addresses - 8)
    return str(net.network_address + offset)


def _interface_id(ident: str) -> str:
    return "eni-" + hashlib.sha1(ident.encode()).hexdigest()[:17]


def _eni_of(inst) -> str | None:
    with contextlib.suppress(Exception):
        return inst.nics[0].id
    return None


def _port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[-1])


def _deliver(record: dict[str, Any]) -> None:
    """The record, to each CloudWatch Logs flow log of its VPC, subnet or interface that wants it."""
    from moto.logs.models import logs_backends
    account, vpc = record.get("account-id"), record.get("vpc-id")
    if account in (None, "-"):
        return
    from moto.ec2.models import ec2_backends
    for region, ec2 in list(ec2_backends[account].items()):
        for fl in list(ec2.flow_logs.values()):
            if fl.resource_id not in (vpc, record.get("interface-id")):
                continue
            if fl.traffic_type not in ("ALL", record["action"]) or (fl.log_destination_type or "cloud-watch-logs") != "cloud-watch-logs":
                continue
            logs = logs_backends[account][region]
            group = logs.groups.get(fl.log_group_name)
            if group is None:
                continue
            stream = record.get("interface-id", "-") + "-all"
            if stream not in group.streams:
                logs.create_log_stream(fl.log_group_name, stream)
            logs.put_log_events(fl.log_group_name, stream,
                                [{"timestamp": int(record["start"]) * 1000, "message": v2_line(record)}])
