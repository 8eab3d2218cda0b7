"""verify: is the lab there, as specified, reachable from the host, and secure?

``gather`` reads (discovery plus the VPC's groups, routes, ACLs and the cache's members) into a
``World``; every check is a pure function of the World and the lab, so checks are tested on
hand-built data. Each check has a stable id, a status (PASS / FAIL / WARN / SKIP), the evidence,
a fix hint for a FAIL, and the AWS Foundational Security Best Practices control where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from awslab.aws import cache, network, security_groups
from awslab.aws.cache import CACHE_SETTINGS
from awslab.aws.database import DB_SETTINGS
from awslab.aws.parameters import CACHE_PARAMETERS, DB_PARAMETERS, values
from awslab.spec.model import READY_STATES, Found, Setting
from awslab.engine.run import Run
from awslab.spec import catalog
from awslab.spec.deployment import instance_replicas, is_cluster
from awslab.spec.lab import Lab
from awslab.spec.topology import desired
from awslab.spec.reachability import (
    Net,
    Peer,
    Source,
    Target,
    evaluate,
    internet_route,
    world_open,
)
from awslab.verify import cluster_checks
from awslab.verify.results import FAIL, PASS, SKIP, WARN, Result


@dataclass
class World:
    """Everything the checks read; plain describe data, no clients."""

    stack: str
    found: dict[str, Found]
    groups: dict[str, dict] = field(default_factory=dict)        # every SG of the VPC, by id
    subnets: dict[str, dict] = field(default_factory=dict)       # every subnet of the VPC, by id
    route_tables: list[dict] = field(default_factory=list)
    nacls: list[dict] = field(default_factory=list)
    cache_members: list[dict] = field(default_factory=list)
    is_local: bool = True
    region: str = ""
    live: list[Result] | None = None   # filled on real AWS by run_live

    def raw(self, key: str) -> dict | None:
        f = self.found.get(key)
        return f.get("raw") if f is not None else None

    def dbs(self) -> list[tuple[str, dict]]:
        """Every DB instance: the stack's own, and a Multi-AZ DB cluster's members (``db.cluster.<id>``)."""
        return [(k, f.get("raw") or {}) for k, f in sorted(self.found.items())
                if f.kind in ("db-instance", "db-replica")] + [
            (f"{k}.{m['DBInstanceIdentifier']}", m) for k, f in sorted(self.found.items()) if f.kind == "db-cluster"
            for m in f.get("members") or []]


def gather(run: Run, found: dict[str, Found]) -> World:
    world = World(run.stack, found, is_local=run.ctx.is_local, region=run.ctx.region)
    vpc = found.get("network.vpc")
    if vpc is not None:
        routing = network.vpc_routing(run, vpc.id)
        world.subnets = {s["SubnetId"]: s for s in routing["subnets"]}
        world.route_tables, world.nacls = routing["route_tables"], routing["nacls"]
        world.groups = security_groups.vpc_groups(run, vpc.id)
    group = found.get("cache.group")
    if group is not None:
        world.cache_members = cache.member_clusters(run, group.id)
    return world


# --- helpers over the World ---------------------------------------------------------------------

def _host_groups(w: World) -> frozenset[str]:
    inst = w.raw("host.instance")
    if inst:
        groups = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
        groups |= {g["GroupId"] for eni in inst.get("NetworkInterfaces", []) for g in eni.get("Groups", [])}
        if groups:
            return frozenset(groups)
    app = w.found.get("sg.app")
    return frozenset({app.id}) if app is not None else frozenset()


def _host_peer(w: World) -> Peer:
    inst = w.raw("host.instance") or {}
    cidrs: tuple[str, ...] = ()
    if inst.get("PrivateIpAddress"):
        cidrs = (f"{inst['PrivateIpAddress']}/32",)
    elif "network.subnet.public" in w.found:
        cidrs = (w.found["network.subnet.public"].get("cidr"),)
    return Peer(_host_groups(w), cidrs, "the host")


def _db_groups(db: dict) -> frozenset[str]:
    return frozenset(g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", []) if g.get("Status", "active") != "removing")


def _cache_groups(w: World) -> frozenset[str]:
    return frozenset(g["SecurityGroupId"] for m in w.cache_members for g in m.get("SecurityGroups", []))


def _subnet_group_subnets(raw: dict | None) -> list[str]:
    return [s["SubnetIdentifier"] for s in (raw or {}).get("Subnets", [])]


def _cidrs(w: World, subnet_ids: list[str]) -> tuple[str, ...]:
    return tuple(w.subnets[s]["CidrBlock"] for s in subnet_ids if s in w.subnets)


# --- the checks ---------------------------------------------------------------------------------

CheckFn = Callable[[World, Lab], list[Result]]


def check_inventory(w: World, lab: Lab) -> list[Result]:
    out = []
    for d in desired(lab, w.stack, w.region):
        f = w.found.get(d.key)
        cid = f"inventory.{d.key}"
        if f is None:
            out.append(Result(cid, FAIL, f"{d.key} ({d.name}) does not exist or is not tagged with stack {w.stack}",
                              f"run `awslab up {lab.name} --name {w.stack}` to recreate it"))
        elif f.state not in READY_STATES:
            status = WARN if f.state in ("creating", "backing-up", "modifying", "rebooting", "pending") else FAIL
            out.append(Result(cid, status, f"{f.id} is {f.state}",
                              "wait for it, then verify again" if status == WARN else "see the AWS console for why"))
        else:
            out.append(Result(cid, PASS, f"{f.id} {f.state}, tagged awslab:stack={w.stack}"))
    return out


def _spec(cid: str, ok: bool, have: str, want: str, hint: str, control: str | None = None,
          missing: bool = False) -> Result:
    if missing:
        return Result(cid, SKIP, f"needs {have}", None, control)
    if ok:
        return Result(cid, PASS, have, None, control)
    return Result(cid, FAIL, f"{have}; the lab asks for {want}", hint, control)


def _as_lab(settings: tuple[Setting, ...], check: str, raw: dict, section) -> bool:
    """Whether every setting the kind's table gives to ``check`` shows the lab's value."""
    compared = [s for s in settings if s.check == check]
    assert compared, f"no setting is checked by {check}"
    return all(s.as_lab(raw, section) for s in compared)


def _parameter_group_checks(w: World, lab: Lab) -> list[Result]:
    """The stack's parameter groups hold the lab's parameters (their tables) and are the ones the
    DB instances and the cache's nodes use: a default group or another stack's is a FAIL."""
    d, c = lab.database, lab.cache
    db_users = {k: [g.get("DBParameterGroupName") for g in raw.get("DBParameterGroups", [])] for k, raw in w.dbs()
                if k == "db.primary" or k.startswith("db.replica.")}
    db_group = "db.parameter-group"
    if is_cluster(d):   # a Multi-AZ DB cluster's engine settings are in its DB cluster parameter group
        db_users, db_group = cluster_checks.parameter_group_users(w), "db.cluster-parameter-group"
    cache_users = {m.get("CacheClusterId"): [(m.get("CacheParameterGroup") or {}).get("CacheParameterGroupName")]
                   for m in w.cache_members}
    return [
        _group_check(w, "spec.db.parameters", db_group, "DB parameter group", db_users, DB_PARAMETERS[d.engine], d,
                     "instance", "aws rds modify-db-parameter-group --db-parameter-group-name {id} --parameters ..."),
        _group_check(w, "spec.cache.parameters", "cache.parameter-group", "cache parameter group", cache_users,
                     CACHE_PARAMETERS, c, "node",
                     "aws elasticache modify-cache-parameter-group --cache-parameter-group-name {id} --parameter-name-values ..."),
    ]


def _group_check(w: World, cid: str, key: str, what: str, users: dict[str, list], table: tuple[Setting, ...], section,
                 user: str, fix: str) -> Result:
    group = w.found.get(key)
    if group is None:
        return Result(cid, SKIP, f"needs the {what} ({key})")
    raw = group.get("raw") or {}
    others = sorted(f"{k} uses {', '.join(str(n) for n in names) or 'no group'}" for k, names in users.items()
                    if group.id not in names)
    shown = ", ".join(f"{n} {raw.get(n, '(engine default)')}" for s in table for n in s.modify)
    want = ", ".join(f"{n} {v}" for n, v in values(table, section).items())
    return _spec(cid, not others and _as_lab(table, cid, raw, section),
                 f"{group.id}: {shown}" + (f"; {'; '.join(others)}" if others else ""),
                 f"{group.id} on every {user}, {want}", fix.format(id=group.id) + " or `awslab up`")


def _engine_fix(db: dict, d, modify: str) -> str:
    """How the primary comes to the lab's version: RDS upgrades in place (as `awslab up` plans it), never down."""
    have = str(db.get("EngineVersion", ""))
    if catalog.version_key(d.engine_version) < catalog.version_key(catalog.version_as_lab(have, d.engine_version)):
        return (f"RDS cannot downgrade {have} to {d.engine_version}: keep --set database.engine_version={catalog.db_major(have)}, "
                "or a new instance (`awslab down` then `awslab up`)")
    major = " --allow-major-version-upgrade" if catalog.db_major(have) != catalog.db_major(d.engine_version) else ""
    return f"`awslab up` upgrades it in place ({modify} --engine-version {d.engine_version}{major})"


def check_spec(w: World, lab: Lab) -> list[Result]:
    d, c = lab.database, lab.cache
    db = w.raw("db.primary")
    ident = (db or {}).get("DBInstanceIdentifier", "the primary")
    modify = f"aws rds modify-db-instance --db-instance-identifier {ident} --apply-immediately"
    out = []
    if is_cluster(d):
        out += cluster_checks.spec_checks(w, lab)
    elif db is None:
        out += [Result(f"spec.db.{n}", SKIP, "needs the primary DB (db.primary)") for n in
                ("engine", "class", "storage", "multi-az", "backups", "maintenance-window")]
    else:
        same_engine = db.get("Engine") == d.engine
        out.append(_spec("spec.db.engine", same_engine and _as_lab(DB_SETTINGS, "spec.db.engine", db, d),
                         f"{db.get('Engine')} {db.get('EngineVersion')}", f"{d.engine} {d.engine_version}",
                         _engine_fix(db, d, modify) if same_engine else
                         "an engine change needs a new instance: `awslab down` then `awslab up`"))
        out.append(_spec("spec.db.class", _as_lab(DB_SETTINGS, "spec.db.class", db, d), db.get("DBInstanceClass", "?"),
                         d.instance_class, f"{modify} --db-instance-class {d.instance_class}"))
        out.append(_spec("spec.db.storage", _as_lab(DB_SETTINGS, "spec.db.storage", db, d),
                         f"{db.get('AllocatedStorage')} GiB {db.get('StorageType')}", f"{d.allocated_storage_gib} GiB {d.storage_type}",
                         f"{modify} --storage-type {d.storage_type} --allocated-storage {d.allocated_storage_gib}"))
        out.append(_spec("spec.db.multi-az", _as_lab(DB_SETTINGS, "spec.db.multi-az", db, d),
                         "Multi-AZ" if db.get("MultiAZ") else "Single-AZ", "Multi-AZ" if d.multi_az else "Single-AZ",
                         f"{modify} --{'' if d.multi_az else 'no-'}multi-az", "RDS.5" if d.multi_az else None))
        retention = db.get("BackupRetentionPeriod", 0)
        out.append(_spec("spec.db.backups", _as_lab(DB_SETTINGS, "spec.db.backups", db, d),
                         f"backups kept {retention} days", f"{d.backup_retention_days} days",
                         f"{modify} --backup-retention-period {d.backup_retention_days}", "RDS.11"))
        window = db.get("PreferredMaintenanceWindow", "?")
        out.append(_spec("spec.db.maintenance-window", _as_lab(DB_SETTINGS, "spec.db.maintenance-window", db, d),
                         f"maintenance window {window}" + ("" if d.maintenance_window else " (RDS's choice: the lab sets none)"),
                         d.maintenance_window, f"{modify} --preferred-maintenance-window {d.maintenance_window}"))
    for i in range(1, instance_replicas(d) + 1):
        key = f"db.replica.{i}"
        replica = w.raw(key)
        if replica is None:
            out.append(Result(f"spec.{key}", SKIP, f"needs read replica {i} ({key}; see inventory.{key})"))
        elif db is not None and replica.get("ReadReplicaSourceDBInstanceIdentifier") not in (
                db.get("DBInstanceIdentifier"), db.get("DBInstanceArn")):
            out.append(Result(f"spec.{key}", FAIL, f"{replica['DBInstanceIdentifier']} replicates from "
                              f"{replica.get('ReadReplicaSourceDBInstanceIdentifier') or 'nothing (promoted)'}",
                              "delete it and run `awslab up` to make a replica of the primary"))
        else:
            out.append(Result(f"spec.{key}", PASS, f"{replica['DBInstanceIdentifier']} replicates from {ident}"))
    out += _parameter_group_checks(w, lab)
    group = w.raw("cache.group")
    if group is None:
        out += [Result(f"spec.cache.{n}", SKIP, "needs the cache (cache.group)") for n in ("node-type", "replicas")]
    else:
        out.append(_spec("spec.cache.node-type", _as_lab(CACHE_SETTINGS, "spec.cache.node-type", group, c),
                         group.get("CacheNodeType", "?"),
                         c.node_type, f"aws elasticache modify-replication-group --replication-group-id {group['ReplicationGroupId']} "
                         f"--cache-node-type {c.node_type} --apply-immediately"))
        members = group.get("MemberClusters", [])
        azs = {m.get("PreferredAvailabilityZone") for m in w.cache_members}
        failover = group.get("AutomaticFailover") in ("enabled", "enabling")
        ok = len(members) == 1 + c.replicas and failover == c.automatic_failover and (c.replicas == 0 or len(azs) >= 2)
        out.append(_spec("spec.cache.replicas", ok,
                         f"{len(members)} nodes in {len(azs)} AZs, automatic failover {group.get('AutomaticFailover')}",
                         f"{1 + c.replicas} nodes in 2 AZs, automatic failover {'enabled' if c.automatic_failover else 'disabled'}",
                         f"aws elasticache increase-replica-count / modify-replication-group --automatic-failover-enabled "
                         f"on {group['ReplicationGroupId']}", "ElastiCache.3" if c.automatic_failover else None))
    return out


def _subnet_group_check(cid: str, w: World, key: str, what: str) -> Result:
    raw = w.raw(key)
    if raw is None:
        return Result(cid, SKIP, f"needs the {what} subnet group ({key})")
    subnets = _subnet_group_subnets(raw)
    azs = {w.subnets.get(s, {}).get("AvailabilityZone") for s in subnets}
    public = [s for s in subnets if internet_route(w.route_tables, s)]
    name = raw.get("DBSubnetGroupName") or raw.get("CacheSubnetGroupName")
    if public:
        return Result(cid, FAIL, f"{name} includes public subnets (routed to an internet gateway): {', '.join(public)}",
                      f"remove {', '.join(public)} from subnet group {name}: keep only the lab's private subnets")
    if len(azs - {None}) < 2:
        return Result(cid, FAIL, f"{name} spans {len(azs - {None})} AZ", f"add a private subnet in a second AZ to {name}")
    return Result(cid, PASS, f"{name}: {len(subnets)} private subnets in {len(azs)} AZs")


def check_network(w: World, lab: Lab) -> list[Result]:
    out = []
    vpc = w.found.get("network.vpc")
    vpc_id = vpc.id if vpc else None
    where = {}
    inst = w.raw("host.instance")
    if inst:
        where["host"] = inst.get("VpcId")
    if w.raw("db.subnet-group"):
        where["database"] = w.raw("db.subnet-group").get("VpcId")
    if w.raw("cache.subnet-group"):
        where["cache"] = w.raw("cache.subnet-group").get("VpcId")
    if vpc_id is None:
        out.append(Result("network.same-vpc", SKIP, "needs the VPC (network.vpc)"))
    else:
        strays = {k: v for k, v in where.items() if v != vpc_id}
        out.append(Result("network.same-vpc", FAIL if strays else PASS,
                          f"{', '.join(f'{k} in {v}' for k, v in strays.items())}; the lab's VPC is {vpc_id}" if strays
                          else f"{', '.join(where) or 'nothing yet'} in {vpc_id}",
                          "recreate them in the lab's VPC with `awslab down` and `awslab up`" if strays else None))
    out.append(_subnet_group_check("network.db-subnets-private", w, "db.subnet-group", "DB"))
    out.append(_subnet_group_check("network.cache-subnets-private", w, "cache.subnet-group", "cache"))
    subnet = (inst or {}).get("SubnetId") or (w.found["network.subnet.public"].id if "network.subnet.public" in w.found else None)
    if subnet is None:
        out.append(Result("network.host-internet-route", SKIP, "needs the host's subnet"))
    else:
        igw = internet_route(w.route_tables, subnet)
        out.append(Result("network.host-internet-route", PASS if igw else FAIL,
                          f"{subnet} routes 0.0.0.0/0 to {igw}" if igw else f"{subnet} has no route to an internet gateway",
                          None if igw else f"add 0.0.0.0/0 -> the lab's internet gateway to the route table of {subnet} "
                          "(SSM needs it), or rerun `awslab up`"))
    return out


def net_of(w: World) -> Net:
    return Net(w.groups, w.subnets, w.route_tables, w.nacls)


def host_source(w: World) -> Source:
    inst = w.raw("host.instance") or {}
    subnet = inst.get("SubnetId") or (w.found["network.subnet.public"].id if "network.subnet.public" in w.found else None)
    vpc = w.found["network.vpc"].id if "network.vpc" in w.found else None
    return Source(_host_peer(w), subnet, inst.get("VpcId") or vpc)


def _path(cid: str, w: World, port: int, dst_groups: frozenset[str], dst_name: str, dst_subnets: list[str]) -> Result:
    host = host_source(w)
    if not host.peer.groups:
        return Result(cid, SKIP, "needs the host's security group (sg.app)")
    target = Target(Peer(dst_groups, _cidrs(w, dst_subnets), dst_name), tuple(dst_subnets), host.vpc)
    verdict = evaluate(net_of(w), host, target, port)
    if not verdict.allowed:
        hint = []
        if dst_groups and not verdict.inbound:
            hint.append(f"aws ec2 authorize-security-group-ingress --group-id {sorted(dst_groups)[0]} --protocol tcp "
                        f"--port {port} --source-group {sorted(host.peer.groups)[0]}")
        if dst_groups and not verdict.outbound:
            hint.append(f"aws ec2 authorize-security-group-egress --group-id {sorted(host.peer.groups)[0]} --ip-permissions "
                        f"IpProtocol=tcp,FromPort={port},ToPort={port},UserIdGroupPairs=[{{GroupId={sorted(dst_groups)[0]}}}]")
        if not dst_groups:
            hint.append(f"attach the lab's group to {dst_name}")
        elif len(hint) < len(verdict.missing):
            hint.append("allow the flow (and its replies on 1024-65535) in the network ACLs named")
        return Result(cid, FAIL, "; ".join(verdict.missing), "; ".join(hint) + (" (or rerun `awslab up`)" if dst_groups else ""))
    return Result(cid, PASS, f"host -> {dst_name} tcp/{port}: {verdict.inbound[0]}; {verdict.outbound[0]}")


def db_paths(w: World, lab: Lab) -> dict[str, Result]:
    """path.app-to-db for each DB instance, by its key (db.primary, db.replica.1, ...): the check
    reports the first that fails, the diagram draws each."""
    subnets = _subnet_group_subnets(w.raw("db.subnet-group"))
    return {key: _path("path.app-to-db", w, lab.database.port, _db_groups(db), db.get("DBInstanceIdentifier", key), subnets)
            for key, db in w.dbs()}


def check_paths(w: World, lab: Lab) -> list[Result]:
    out = []
    results = list(db_paths(w, lab).values())
    if not results:
        out.append(Result("path.app-to-db", SKIP, "needs the database (db.primary)"))
    else:
        failed = [r for r in results if r.status != PASS]
        out.append(failed[0] if failed else Result("path.app-to-db", PASS,
                                                   f"{len(results)} DB instance(s): " + results[0].detail.split(": ", 1)[1]))
    if w.raw("cache.group") is None:
        out.append(Result("path.app-to-cache", SKIP, "needs the cache (cache.group)"))
    else:
        out.append(_path("path.app-to-cache", w, lab.cache.port, _cache_groups(w), w.raw("cache.group")["ReplicationGroupId"],
                         _subnet_group_subnets(w.raw("cache.subnet-group"))))
    return out


def check_security(w: World, lab: Lab) -> list[Result]:
    out = []
    dbs = w.dbs()
    public = [db.get("DBInstanceIdentifier") for _, db in dbs if db.get("PubliclyAccessible")]
    out.append(Result("security.db-not-public", FAIL if public else (PASS if dbs else SKIP),
                      f"publicly accessible: {', '.join(public)}" if public else (f"{len(dbs)} DB instance(s) private" if dbs else "needs the database"),
                      f"aws rds modify-db-instance --db-instance-identifier {public[0]} --no-publicly-accessible --apply-immediately"
                      if public else None, "RDS.2"))
    exposed = []
    for _, db in dbs:
        exposed += world_open(w.groups, _db_groups(db), lab.database.port)
    exposed += world_open(w.groups, _cache_groups(w), lab.cache.port)
    exposed = sorted(set(exposed))
    out.append(Result("security.data-ports-not-world", FAIL if exposed else PASS,
                      "open to the internet: " + "; ".join(exposed) if exposed else
                      f"no group on the DB or cache admits tcp/{lab.database.port} or tcp/{lab.cache.port} from 0.0.0.0/0 or ::/0",
                      f"revoke it: aws ec2 revoke-security-group-ingress --group-id {exposed[0].split()[0]} --protocol tcp "
                      f"--port {lab.database.port if f'/{lab.database.port}' in exposed[0] else lab.cache.port} --cidr "
                      f"{exposed[0].rsplit(' ', 1)[1]}" + (" (for ::/0 use --ip-permissions with Ipv6Ranges)" if "::/0" in exposed[0] else "")
                      if exposed else None, "EC2.19"))
    attached = set(_host_groups(w))
    for _, db in dbs:
        attached |= _db_groups(db)
    attached |= _cache_groups(w)
    ssh = world_open(w.groups, frozenset(attached), catalog.SSH_PORT)
    out.append(Result("security.ssh-not-world", FAIL if ssh else PASS,
                      "SSH open to the internet: " + "; ".join(ssh) if ssh else "no attached group admits tcp/22 from the internet",
                      f"revoke it and use SSM Session Manager (or --set host.ssh_cidr=YOUR.IP/32): aws ec2 "
                      f"revoke-security-group-ingress --group-id {ssh[0].split()[0]} --protocol tcp --port 22 --cidr "
                      f"{ssh[0].rsplit(' ', 1)[1]}" if ssh else None, "EC2.13"))
    inst = w.raw("host.instance")
    if inst is None:
        out.append(Result("security.host-imdsv2", SKIP, "needs the host (host.instance)", None, "EC2.8"))
    else:
        tokens = inst.get("MetadataOptions", {}).get("HttpTokens")
        out.append(Result("security.host-imdsv2", PASS if tokens == "required" else FAIL, f"HttpTokens={tokens}",
                          None if tokens == "required" else f"aws ec2 modify-instance-metadata-options --instance-id "
                          f"{inst['InstanceId']} --http-tokens required --http-endpoint enabled", "EC2.8"))
    unencrypted = [db.get("DBInstanceIdentifier") for _, db in dbs if not db.get("StorageEncrypted")]
    allowed = lab.security.allow_unencrypted_storage and not lab.database.storage_encrypted
    out.append(Result("security.db-encrypted", (WARN if allowed else FAIL) if unencrypted else (PASS if dbs else SKIP),
                      f"not encrypted: {', '.join(unencrypted)}" if unencrypted else ("storage encrypted" if dbs else "needs the database"),
                      "encryption cannot be turned on in place: snapshot, copy the snapshot encrypted, restore" if unencrypted else None,
                      "RDS.3"))
    db = w.raw("db.primary") or w.raw("db.cluster")
    if db is None:
        out.append(Result("security.db-managed-password", SKIP, "needs the primary DB"))
    else:
        secret = (db.get("MasterUserSecret") or {}).get("SecretArn")
        out.append(Result("security.db-managed-password", PASS if secret else FAIL,
                          f"master password managed by RDS in {secret}" if secret else "the master password is not managed by RDS",
                          None if secret else (f"aws rds modify-db-instance --db-instance-identifier {db['DBInstanceIdentifier']} "
                                               if "DBInstanceIdentifier" in db else
                                               f"aws rds modify-db-cluster --db-cluster-identifier {db.get('DBClusterIdentifier')} ")
                          + "--manage-master-user-password --apply-immediately"))
    group = w.raw("cache.group")
    if group is None:
        out.append(Result("security.cache-encryption", SKIP, "needs the cache", None, "ElastiCache.4"))
        out.append(Result("security.cache-auth-tls", SKIP, "needs the cache", None, "ElastiCache.5"))
    else:
        rest = bool(group.get("AtRestEncryptionEnabled"))
        bad = WARN if lab.security.allow_unencrypted_cache else FAIL
        out.append(Result("security.cache-encryption", PASS if rest else bad, f"at-rest encryption {'on' if rest else 'off'}",
                          None if rest else "at-rest encryption is set at creation: recreate the group (`awslab down`, `awslab up`)",
                          "ElastiCache.4"))
        tls, auth = bool(group.get("TransitEncryptionEnabled")), bool(group.get("AuthTokenEnabled"))
        out.append(Result("security.cache-auth-tls", PASS if tls and auth else bad,
                          f"in-transit encryption {'on' if tls else 'off'}, AUTH {'on' if auth else 'off'}",
                          None if tls and auth else "turn on TLS and an AUTH token: aws elasticache modify-replication-group "
                          "--transit-encryption-enabled --auth-token ... --auth-token-update-strategy ROTATE", "ElastiCache.5"))
    return out


def check_live(w: World, lab: Lab) -> list[Result]:
    """Connections from the host. Never PASS without a real connection."""
    return w.live or [Result("live.host-to-db", SKIP, "not run"), Result("live.host-to-cache", SKIP, "not run")]


CHECK_PREFIXES = ("inventory.", "spec.", "network.", "path.", "security.", "live.")
CHECKS: tuple[CheckFn, ...] = (check_inventory, check_spec, check_network, check_paths, check_security, check_live)


def run_checks(w: World, lab: Lab, selected: tuple[str, ...] = ()) -> list[Result]:
    results = [r for fn in CHECKS for r in fn(w, lab)]
    if selected:
        results = [r for r in results if any(r.id.startswith(p) for p in selected)]
    return results
