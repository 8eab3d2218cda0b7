"""Network reachability, evaluated the way AWS does, on plain describe data. Pure: no AWS.

One evaluator (``evaluate``) decides whether a TCP flow from a source (an instance, or the
outside world) reaches a target (an RDS instance or a cache); verify's path checks ask it on
describe data, and the local AWS's endpoint relay asks it on every new connection, so what verify
says and what a client meets cannot disagree.

Security groups are stateful allow-lists: a flow is allowed when any rule of any group attached
to the destination admits it inbound and any rule of any group attached to the source admits it
outbound. A rule admits a peer by group reference (the peer is a member of that group) or by CIDR
(the rule's block contains the peer's address). Network ACLs are stateless and ordered: the
lowest-numbered matching entry decides, and the return traffic on ephemeral ports must be allowed
too. A subnet is public when its route table (its own, or the VPC's main table) sends 0.0.0.0/0 or
::/0 to an internet gateway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

ALL = "-1"
TCP = ("tcp", "6")
EPHEMERAL = (1024, 65535)
WORLD = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Peer:
    """One end of a flow: the groups attached to it and the addresses it may have."""

    groups: frozenset[str] = frozenset()
    cidrs: tuple[str, ...] = ()   # its address (/32) when known, else the blocks it lives in
    name: str = ""


@dataclass
class Verdict:
    allowed: bool
    evidence: list[str] = field(default_factory=list)   # the rules that allowed it
    missing: list[str] = field(default_factory=list)    # what would be needed, when not allowed
    inbound: list[str] = field(default_factory=list)    # the target's rules that admit the flow
    outbound: list[str] = field(default_factory=list)   # the source's rules that let it out


@dataclass(frozen=True)
class Net:
    """A VPC's (or several VPCs') network as describe calls return it."""

    groups: dict[str, dict]                     # security groups by id
    subnets: dict[str, dict]                    # subnets by id
    route_tables: list[dict] = field(default_factory=list)
    nacls: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """Where a connection comes from: an instance (its subnet, address and groups) or, with no
    subnet, the outside world (this machine's shell, the internet) at ``peer.cidrs``."""

    peer: Peer
    subnet: str | None = None
    vpc: str | None = None

    @property
    def outside(self) -> bool:
        return self.subnet is None


@dataclass(frozen=True)
class Target:
    """What a connection goes to: its groups, the subnets it may live in, and whether AWS gives it
    an address outside the VPC at all (a publicly accessible DB; a cache never)."""

    peer: Peer
    subnets: tuple[str, ...]
    vpc: str | None = None
    public: bool = False


def evaluate(net: Net, src: Source, dst: Target, port: int) -> Verdict:
    """Would AWS let a new TCP connection from ``src`` reach ``dst`` on ``port``? The missing
    pieces are named in verify's words, the first the one to fix first."""
    missing: list[str] = []
    if not dst.peer.groups:
        return Verdict(False, missing=[f"{dst.peer.name} has no security group"])
    if src.outside:
        if not dst.public:
            missing.append(f"{dst.peer.name} is not publicly accessible: nothing outside its VPC reaches it")
        elif not any(internet_route(net.route_tables, s) for s in dst.subnets):
            missing.append(f"the subnets of {dst.peer.name} have no route to an internet gateway")
    elif dst.vpc and src.vpc and src.vpc != dst.vpc:
        missing.append(f"{src.peer.name} is in {src.vpc}, {dst.peer.name} in {dst.vpc}: no route between them")
    inbound = groups_admit(net.groups, dst.peer.groups, "ingress", port, src.peer)
    outbound = ["the outside world has no security group"] if src.outside else \
        groups_admit(net.groups, src.peer.groups, "egress", port, dst.peer)
    if not inbound:
        names = ", ".join(_group_label(net, g) for g in sorted(dst.peer.groups))
        missing.append(f"no inbound rule on {names} admits tcp/{port} from {src.peer.name}")
    if not outbound:
        names = ", ".join(_group_label(net, g) for g in sorted(src.peer.groups))
        missing.append(f"no outbound rule on {names} allows tcp/{port} to {dst.peer.name}")
    if src.peer.cidrs:
        for s in dst.subnets:
            if s in net.subnets:
                missing += nacls_allow_flow(net.nacls, src.subnet, src.peer.cidrs[0], s, net.subnets[s]["CidrBlock"], port)
    evidence = inbound[:1] + ([] if src.outside else outbound[:1])
    return Verdict(not missing, evidence, missing, inbound, [] if src.outside else outbound)


def _group_label(net: Net, gid: str) -> str:
    g = net.groups.get(gid)
    return f"{gid} ({g['GroupName']})" if g and g.get("GroupName") else gid


def _covers_port(perm: dict, port: int) -> bool:
    proto = str(perm.get("IpProtocol", ALL))
    if proto == ALL:
        return True
    if proto not in TCP:
        return False
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    if lo is None or hi is None:
        return True
    return int(lo) <= port <= int(hi)


def _contains(block: str, cidrs: tuple[str, ...]) -> bool:
    try:
        outer = ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False
    if not cidrs:
        return False
    for c in cidrs:
        inner = ipaddress.ip_network(c, strict=False)
        if inner.version != outer.version or not inner.subnet_of(outer):
            return False
    return True


def rule_admits(perm: dict, port: int, peer: Peer) -> tuple[str, str] | None:
    """(its ports, the matching group or block) when this permission admits ``peer`` on ``port``."""
    if not _covers_port(perm, port):
        return None
    for pair in perm.get("UserIdGroupPairs", []):
        if pair.get("GroupId") in peer.groups:
            return _ports(perm), f"group {pair['GroupId']}"
    for r in perm.get("IpRanges", []):
        if _contains(r.get("CidrIp", ""), peer.cidrs):
            return _ports(perm), r["CidrIp"]
    for r in perm.get("Ipv6Ranges", []):
        if _contains(r.get("CidrIpv6", ""), peer.cidrs):
            return _ports(perm), r["CidrIpv6"]
    return None


def _ports(perm: dict) -> str:
    proto = str(perm.get("IpProtocol", ALL))
    if proto == ALL:
        return "all traffic"
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    return f"{proto}/{lo}" if lo == hi else f"{proto}/{lo}-{hi}"


def groups_admit(groups: dict[str, dict], attached: frozenset[str], direction: str, port: int, peer: Peer) -> list[str]:
    """Which rules of the ``attached`` groups admit ``peer`` on ``port`` (``ingress`` or ``egress``)."""
    field_name = "IpPermissions" if direction == "ingress" else "IpPermissionsEgress"
    found = []
    for gid in sorted(attached):
        for perm in groups.get(gid, {}).get(field_name, []):
            how = rule_admits(perm, port, peer)
            if how:
                ports, who = how
                found.append(f"{gid} {direction} {ports} {'from' if direction == 'ingress' else 'to'} {who}")
    return found


def world_open(groups: dict[str, dict], attached: frozenset[str], port: int) -> list[str]:
    """Ingress rules of the ``attached`` groups that admit the whole internet on ``port``."""
    found = []
    for gid in sorted(attached):
        for perm in groups.get(gid, {}).get("IpPermissions", []):
            if not _covers_port(perm, port):
                continue
            blocks = [r.get("CidrIp") for r in perm.get("IpRanges", [])] + [r.get("CidrIpv6") for r in perm.get("Ipv6Ranges", [])]
            for block in blocks:
                if block and ipaddress.ip_network(block, strict=False).prefixlen == 0:
                    found.append(f"{gid} ingress {_ports(perm)} from {block}")
    return found


def nacl_allows(entries: list[dict], egress: bool, port_range: tuple[int, int], cidr: str) -> bool:
    """Does this network ACL let TCP on ``port_range`` to/from ``cidr`` through? First match wins."""
    net = ipaddress.ip_network(cidr, strict=False)
    for entry in sorted((e for e in entries if bool(e.get("Egress")) == egress), key=lambda e: e["RuleNumber"]):
        block = entry.get("CidrBlock") or entry.get("Ipv6CidrBlock")
        if not block:
            continue
        rule_net = ipaddress.ip_network(block, strict=False)
        if rule_net.version != net.version or not net.subnet_of(rule_net):
            continue
        proto = str(entry.get("Protocol", ALL))
        if proto not in (ALL, *TCP):
            continue
        if proto != ALL:
            rng = entry.get("PortRange") or {}
            lo, hi = rng.get("From", 0), rng.get("To", 65535)
            if not (lo <= port_range[0] and port_range[1] <= hi):
                continue
        return entry.get("RuleAction") == "allow"
    return False


def nacl_for(nacls: list[dict], subnet_id: str) -> dict | None:
    for nacl in nacls:
        if any(a.get("SubnetId") == subnet_id for a in nacl.get("Associations", [])):
            return nacl
    return next((n for n in nacls if n.get("IsDefault")), None)


def nacls_allow_flow(nacls: list[dict], src_subnet: str | None, src_cidr: str, dst_subnet: str, dst_cidr: str, port: int) -> list[str]:
    """Problems the ACLs cause for TCP from src to dst on ``port`` (and its replies); [] = none."""
    problems = []
    src, dst = nacl_for(nacls, src_subnet) if src_subnet else None, nacl_for(nacls, dst_subnet)
    if src is not None:
        if not nacl_allows(src.get("Entries", []), True, (port, port), dst_cidr):
            problems.append(f"{src['NetworkAclId']} outbound tcp/{port} to {dst_cidr}")
        if not nacl_allows(src.get("Entries", []), False, EPHEMERAL, dst_cidr):
            problems.append(f"{src['NetworkAclId']} inbound replies (tcp/1024-65535) from {dst_cidr}")
    if dst is not None:
        if not nacl_allows(dst.get("Entries", []), False, (port, port), src_cidr):
            problems.append(f"{dst['NetworkAclId']} inbound tcp/{port} from {src_cidr}")
        if not nacl_allows(dst.get("Entries", []), True, EPHEMERAL, src_cidr):
            problems.append(f"{dst['NetworkAclId']} outbound replies (tcp/1024-65535) to {src_cidr}")
    return problems


def route_table_for(route_tables: list[dict], subnet_id: str) -> dict | None:
    for rt in route_tables:
        if any(a.get("SubnetId") == subnet_id for a in rt.get("Associations", [])):
            return rt
    return next((rt for rt in route_tables if any(a.get("Main") for a in rt.get("Associations", []))), None)


def internet_route(route_tables: list[dict], subnet_id: str) -> str | None:
    """The internet gateway the subnet's default route goes to, or None (a private subnet)."""
    rt = route_table_for(route_tables, subnet_id)
    for route in (rt or {}).get("Routes", []):
        dest = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
        gw = route.get("GatewayId") or ""
        if dest in WORLD and gw.startswith("igw-") and route.get("State", "active") == "active":
            return gw
    return None
