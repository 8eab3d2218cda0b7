"""What `awslab diagram` draws, as a plain value: a ``Topology`` built by ``build`` from verify's
World (awslab/verify/checks.py: discovery plus the VPC's groups, subnets, routes and the cache's
members), never from the lab file, so after a failover the primary is where RDS now says it is.

The VPC, its AZs, the subnets (public when their route table sends 0.0.0.0/0 to an internet
gateway), the host, the DB instances with the Multi-AZ standby in the secondary AZ RDS reports,
the cache's nodes with their current roles, the security groups, and one edge per path verify
checks. Nothing here decides whether a path is open: each edge carries the verify result that
judged it (``checks.db_paths``, ``check_paths``, ``check_network``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from awslab.spec import catalog
from awslab.spec.lab import Lab
from awslab.spec.reachability import internet_route
from awslab.verify import checks
from awslab.verify.checks import World
from awslab.verify.results import FAIL, PASS

INTERNET = "internet"                 # the id of the outside world's node
HOST, DB, STANDBY, CACHE = "host", "db", "standby", "cache"


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    az: str
    public: bool          # its route table sends 0.0.0.0/0 to an internet gateway
    name: str = ""


@dataclass(frozen=True)
class Node:
    """A thing that runs somewhere: the host, a DB instance (or the Multi-AZ standby), a cache node."""

    id: str               # the diagram's id: a letter, then letters, digits and underscores
    kind: str             # HOST, DB, STANDBY or CACHE
    name: str             # its AWS id: i-..., week6-db, week6-cache-001
    role: str             # what it is now: "DB primary (Multi-AZ)", "read replica of week6-db", "cache replica"
    az: str | None
    public: bool          # in a public subnet (the host), else a private one
    state: str = ""
    endpoint: str = ""    # address:port where AWS gives it one
    extra: tuple[str, ...] = ()     # more lines: addresses, the group's primary/reader endpoint
    groups: tuple[str, ...] = ()    # the security groups' names (ids when unnamed)


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    members: tuple[str, ...] = ()   # names of the nodes it is attached to
    rules: tuple[str, ...] = ()     # "in tcp/5432 from week6-app", "out all to 0.0.0.0/0"


@dataclass(frozen=True)
class Edge:
    """A path verify checks, as verify judged it."""

    source: str           # a node id, or INTERNET
    target: str
    port: str             # "tcp/5432"
    check: str            # verify's check id: path.app-to-db, path.app-to-cache, network.host-internet-route
    status: str           # PASS / FAIL / WARN / SKIP
    detail: str           # verify's evidence: the rules that allow it, or what is missing
    hint: str = ""        # verify's fix, for a FAIL
    seen: str = ""        # what really happened: the last connection the VPC decided on it (local flow log)

    @property
    def allowed(self) -> bool:
        return self.status == PASS

    @property
    def blocked(self) -> bool:
        return self.status == FAIL

    @property
    def verdict(self) -> str:
        return {PASS: "allowed", FAIL: "BLOCKED"}.get(self.status, f"not checked ({self.status})")


@dataclass(frozen=True)
class Topology:
    stack: str
    region: str
    vpc: str
    vpc_cidr: str
    azs: tuple[str, ...]
    subnets: tuple[Subnet, ...]
    nodes: tuple[Node, ...]
    groups: tuple[Group, ...]
    edges: tuple[Edge, ...]
    when: str = ""        # when it was discovered (UTC)

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)


def now_text() -> str:
    """When a drawing was made, as every page shows it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def diagram_id(prefix: str, name: str) -> str:
    """An id every format accepts (Mermaid's is the strictest): ``prefix_`` and the name's letters,
    digits and underscores, so none is a keyword (``end``) or starts with Mermaid's edge letters."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


# --- from verify's World to a Topology (pure) ---------------------------------------------------

def _tag(raw: dict, key: str) -> str:
    return next((t.get("Value", "") for t in raw.get("Tags", []) or [] if t.get("Key") == key), "")


def _subnets(world: World) -> tuple[Subnet, ...]:
    out = [Subnet(sid, s.get("CidrBlock", ""), s.get("AvailabilityZone", ""),
                  internet_route(world.route_tables, sid) is not None, _tag(s, "Name"))
           for sid, s in world.subnets.items()]
    if not out:   # the VPC's own list was not read (a half-made stack): the stack's subnets as discovered
        public = {sid for f in world.found.values() if f.kind == "route-table"
                  if str((f.get("routes") or {}).get("0.0.0.0/0", "")).startswith("igw-")
                  for sid in (f.get("associations") or {})}
        out = [Subnet(f.id, f.get("cidr", ""), f.get("az", ""), f.id in public, (f.get("tags") or {}).get("Name", ""))
               for f in world.found.values() if f.kind == "subnet"]
    return tuple(sorted(out, key=lambda s: (not s.public, s.az, s.cidr)))


def _endpoint(ep: dict | None) -> str:
    ep = ep or {}
    return f"{ep['Address']}:{ep.get('Port')}" if ep.get("Address") else ""


def _group_names(world: World, ids) -> tuple[str, ...]:
    return tuple(sorted((world.groups.get(g) or {}).get("GroupName") or g for g in ids))


def _host_nodes(world: World, by_subnet: dict[str, Subnet]) -> list[Node]:
    out = []
    for key, f in sorted(world.found.items()):
        if f.kind != "instance":
            continue
        raw = f.get("raw") or {}
        subnet = by_subnet.get(raw.get("SubnetId", ""))
        ids = {g["GroupId"] for g in raw.get("SecurityGroups", [])}
        ids |= {g["GroupId"] for eni in raw.get("NetworkInterfaces", []) for g in eni.get("Groups", [])}
        addresses = " / ".join(a for a in (f.get("private_ip"), f.get("public_ip") and f"public {f.get('public_ip')}") if a)
        out.append(Node(diagram_id("n", f.id), HOST, f.id, "EC2 host" if key == "host.instance" else f"EC2 instance ({key})",
                        f.get("az") or (subnet.az if subnet else None), subnet.public if subnet else True, f.state,
                        "", tuple(x for x in (f.get("type") or "", addresses) if x), _group_names(world, ids)))
    return out


def _db_nodes(world: World) -> list[Node]:
    out = []
    for key, raw in world.dbs():
        cluster = None if key in world.found else world.found[key.rsplit(".", 1)[0]]   # a cluster's member
        f = world.found[key] if cluster is None else cluster
        ident = raw.get("DBInstanceIdentifier", f.id)
        groups = _group_names(world, [g["VpcSecurityGroupId"] for g in raw.get("VpcSecurityGroups", [])])
        source = raw.get("ReadReplicaSourceDBInstanceIdentifier")
        if cluster is not None:
            role = (f"writer of Multi-AZ DB cluster {cluster.id}" if ident == cluster.get("writer") else
                    f"reader of Multi-AZ DB cluster {cluster.id} (readable standby, quorum commit)")
        elif source:
            role = f"read replica of {source.rsplit(':', 1)[-1]} (async)"
        elif key == "db.primary":
            role = "DB primary" + (" (Multi-AZ)" if raw.get("MultiAZ") else " (Single-AZ)")
        elif key.startswith("db.restored."):
            role = "restored DB instance"
        else:
            role = "DB instance (standalone)"
        engine = " ".join(x for x in (raw.get("Engine"), raw.get("EngineVersion"), raw.get("DBInstanceClass")) if x)
        out.append(Node(diagram_id("n", ident), DB, ident, role, raw.get("AvailabilityZone"), False, f.state,
                        _endpoint(raw.get("Endpoint")), (engine,) if engine else (), groups))
        if raw.get("MultiAZ") and raw.get("SecondaryAvailabilityZone"):
            # RDS names the standby's AZ and nothing else of it: it has no endpoint and serves nothing.
            out.append(Node(diagram_id("n", f"{ident}_standby"), STANDBY, f"{ident} standby",
                            f"Multi-AZ standby of {ident} (sync)", raw["SecondaryAvailabilityZone"], False, f.state, "",
                            ("no endpoint: takes over on failover",), groups))
    return out


def _cache_nodes(world: World) -> list[Node]:
    out = []
    members = {m.get("CacheClusterId"): m for m in world.cache_members}
    for key, f in sorted(world.found.items()):
        if f.kind != "replication-group":
            continue
        raw = f.get("raw") or {}
        for ng in raw.get("NodeGroups", []) or []:
            for m in ng.get("NodeGroupMembers", []) or []:
                cid = m.get("CacheClusterId", "")
                role = m.get("CurrentRole") or "node"
                cluster = members.get(cid) or {}
                via = ng.get("PrimaryEndpoint") if role == "primary" else ng.get("ReaderEndpoint")
                out.append(Node(diagram_id("n", cid), CACHE, cid, f"cache {role} ({raw.get('ReplicationGroupId', f.id)})",
                                m.get("PreferredAvailabilityZone") or cluster.get("PreferredAvailabilityZone"), False,
                                f.state, _endpoint(m.get("ReadEndpoint")),
                                (f"via {_endpoint(via)}",) if _endpoint(via) else (),
                                _group_names(world, [g["SecurityGroupId"] for g in cluster.get("SecurityGroups", [])])))
    out.sort(key=lambda n: ("primary" not in n.role, n.name))
    return out


def _ports(perm: dict) -> str:
    proto = str(perm.get("IpProtocol", "-1"))
    if proto == "-1":
        return "all"
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    return f"{proto}/{lo}" if lo == hi else f"{proto}/{lo}-{hi}"


def _rules(world: World, g: dict) -> tuple[str, ...]:
    """The group's rules in a line each, as the console lists them (who, not whether a path is open)."""
    out = []
    for direction, field, word in (("in", "IpPermissions", "from"), ("out", "IpPermissionsEgress", "to")):
        for perm in g.get(field, []):
            peers = [(world.groups.get(p["GroupId"]) or {}).get("GroupName") or p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
            peers += [r.get("CidrIp") for r in perm.get("IpRanges", [])] + [r.get("CidrIpv6") for r in perm.get("Ipv6Ranges", [])]
            out += [f"{direction} {_ports(perm)} {word} {p}" for p in peers if p]
    return tuple(out) or ("no rules",)


def _groups(world: World, nodes: list[Node]) -> tuple[Group, ...]:
    stack_ids = {f.id for f in world.found.values() if f.kind == "security-group"}
    out = []
    for gid, g in sorted(world.groups.items(), key=lambda kv: kv[1].get("GroupName", kv[0])):
        name = g.get("GroupName") or gid
        members = tuple(n.name for n in nodes if name in n.groups or gid in n.groups)
        if gid in stack_ids or members:
            out.append(Group(gid, name, members, _rules(world, g)))
    return tuple(out)


def last_connection(flows: list[dict], source: str, node: Node) -> str:
    """The last connection from instance ``source`` to any endpoint of ``node`` in the VPC's flow
    records, in a few words ("" if none): what really happened beside what verify judges now."""
    names = {node.endpoint} | {x.removeprefix("via ") for x in node.extra if x.startswith("via ")}
    mine = [r for r in flows if r.get("source") == source and r.get("endpoint") in names]
    if not mine:
        return ""
    last = max(mine, key=lambda r: (r.get("end") or r.get("start") or 0))
    when = datetime.fromtimestamp(last.get("end") or last.get("start") or 0, timezone.utc).strftime("%H:%M:%S UTC")
    if last.get("action") == "ACCEPT":
        return f"last connection {when}: ACCEPT (flow log)"
    return f"last connection {when}: REJECT, the VPC dropped it (flow log)"


def build(world: World, lab: Lab, when: str = "", flows: list[dict] | None = None) -> Topology:
    """The Topology of a verify World (awslab/verify/checks.py), each edge verify's own result;
    ``flows``: the VPC's flow records (local AWS), each edge then says its last real connection."""
    subnets = _subnets(world)
    by_subnet = {s.id: s for s in subnets}
    nodes = _host_nodes(world, by_subnet) + _db_nodes(world) + _cache_nodes(world)
    host_id = world.found["host.instance"].id if "host.instance" in world.found else None
    host = next((n for n in nodes if n.kind == HOST and n.name == host_id), None)
    edges: list[Edge] = []
    if host is not None:
        route = next(r for r in checks.check_network(world, lab) if r.id == "network.host-internet-route")
        igw = re.search(r"igw-[0-9a-f]+", route.detail)
        edges.append(Edge(INTERNET, host.id, f"tcp/{catalog.HTTPS_PORT} (SSM){' via ' + igw.group(0) if igw else ''}",
                          route.id, route.status, route.detail, route.hint or ""))
        for key, r in checks.db_paths(world, lab).items():
            ident = dict(world.dbs()).get(key, {}).get("DBInstanceIdentifier") or world.found[key].id
            target = diagram_id("n", ident)
            node = next((n for n in nodes if n.id == target), None)
            edges.append(Edge(host.id, target, f"tcp/{lab.database.port}", r.id, r.status, r.detail, r.hint or "",
                              last_connection(flows or [], host_id or "", node) if node else ""))
        cache = next((r for r in checks.check_paths(world, lab) if r.id == "path.app-to-cache"), None)
        primary = next((n for n in nodes if n.kind == CACHE and "primary" in n.role
                        and n.role.endswith(f"({(world.raw('cache.group') or {}).get('ReplicationGroupId')})")), None)
        if cache is not None and primary is not None:
            edges.append(Edge(host.id, primary.id, f"tcp/{lab.cache.port}", cache.id, cache.status, cache.detail,
                              cache.hint or "", last_connection(flows or [], host_id or "", primary)))
    azs = sorted({s.az for s in subnets if s.az} | {n.az for n in nodes if n.az})
    vpc = world.found.get("network.vpc")
    return Topology(world.stack, world.region, vpc.id if vpc else "", (vpc.get("cidr") if vpc else "") or "",
                    tuple(azs), subnets, tuple(nodes), _groups(world, nodes), tuple(edges), when)
