"""Planning: compare what the lab wants with what exists and return the steps. Pure: no AWS.

``plan_up`` creates what is missing, completes what is half-made (a gateway not attached, a rule
missing) and keeps the rest. ``plan_down`` deletes everything found, each resource only after
everything that depends on it: the topology's edges read backwards. The recovery planners:
``plan_snapshot`` (the DB's and the cache's, and a copy to another region after the DB's),
``plan_restore`` (one new instance or group, kept when a rerun finds it), ``plan_delete_snapshots``,
``plan_failover``, and ``plan_host_command`` (verify's round-trip from the host through SSM).
"""

from __future__ import annotations

from awslab.spec.model import (
    CREATE,
    Change,
    DELETE,
    FAILOVER,
    KEEP,
    PROMOTE,
    REPLACE,
    UPDATE,
    Desired,
    Found,
    Kinds,
    Plan,
    Step,
)
from awslab.spec.topology import COUNTED, EDGES, edge_for


def plan_up(stack: str, desired: list[Desired], found: dict[str, Found], kinds: Kinds) -> Plan:
    """Per desired resource: create it (missing), update it in place (half-made, or settings AWS
    changes in place differ), replace it (differs where AWS cannot change it: shown, never run),
    or keep it; and delete the members of a counted family the lab no longer wants (a replica
    when read_replicas goes down)."""
    wanted = {d.key for d in desired}
    steps = []
    for d in desired:
        f = found.get(d.key)
        deps = tuple(k for k in d.deps if k in wanted)
        if f is None:
            holder = _name_held(d, found)
            if holder is not None:   # e.g. a promoted replica keeps its name: AWS would refuse a second one
                steps.append(Step(d.key, d.kind, REPLACE, deps, d, None,
                                  f"its name {d.name} is held by the stack's {holder.key} (delete that, or "
                                  f"change the lab so it is not needed, e.g. --set database.read_replicas=0)"))
                continue
            steps.append(Step(d.key, d.kind, CREATE, deps, d, None, "missing"))
            continue
        handler = kinds[d.kind]
        if kinds.can(d.kind, "replace") and (why := handler.drift(d, f, found)):
            steps.append(Step(d.key, d.kind, REPLACE, deps, d, f, why))
        elif kinds.can(d.kind, "settings") and (changes := handler.changes(d, f)):
            steps.append(Step(d.key, d.kind, UPDATE, deps, d, f, changes=changes))
        elif kinds.can(d.kind, "update") and (why := handler.incomplete(d, f, found)):
            steps.append(Step(d.key, d.kind, UPDATE, deps, d, f, why))
        else:
            steps.append(Step(d.key, d.kind, KEEP, deps, d, f, f.state))
    for family, setting in COUNTED.items():
        have = sorted(k for k in found if k.startswith(family) and k[len(family):].isdigit())
        keep = sum(1 for k in wanted if k.startswith(family) and k[len(family):].isdigit())
        for key in have:
            if key not in wanted:
                f = found[key]
                steps.append(Step(key, f.kind, DELETE, (), None, f, changes=(Change(setting, len(have), keep),)))
    return Plan(stack, tuple(steps))


# Kinds that share one namespace of names (a DB subnet group may share a DB instance's name).
_DB_INSTANCES = frozenset({"db-instance", "db-replica"})


def _name_held(d: Desired, found: dict[str, Found]) -> Found | None:
    """Another of the stack's DB instances under the name ``d`` would get (a promoted replica)."""
    if d.kind not in _DB_INSTANCES:
        return None
    return next((f for f in found.values() if f.key != d.key and f.id == d.name and f.kind in _DB_INSTANCES), None)


def _deps_of(f: Found) -> tuple[str, ...]:
    try:
        return edge_for(f.key, f.kind)[1]
    except KeyError:
        # A resource tagged with a key this version does not know: order it like its kind.
        for kind, deps in EDGES.values():
            if kind == f.kind:
                return deps
        return ()


def plan_down(stack: str, found: dict[str, Found]) -> Plan:
    """Delete every found resource after all that depend on it (replica before primary, ...)."""
    dependents: dict[str, list[str]] = {k: [] for k in found}
    for key, f in found.items():
        for dep in _deps_of(f):
            if dep in dependents:
                dependents[dep].append(key)
    steps = [Step(k, f.kind, DELETE, tuple(sorted(dependents[k])), None, f, f.state)
             for k, f in sorted(found.items())]
    return Plan(stack, tuple(steps))


def plan_failover(stack: str, target: Found) -> Plan:
    """A forced failover of ``target`` (the Multi-AZ primary, or the cache's replication group)."""
    return Plan(stack, (Step(target.key, target.kind, FAILOVER, (), None, target, "forced failover"),))


def plan_promote(stack: str, replica: Found, retention_days: int) -> Plan:
    """PromoteReadReplica on ``replica``: it becomes a standalone instance of the stack, with
    automated backups kept ``retention_days``, under the key ``db.promoted.<id>``."""
    desired = Desired(f"db.promoted.{replica.id}", "db-instance", replica.id, (), {"retention": retention_days})
    return Plan(stack, (Step(replica.key, replica.kind, PROMOTE, (), desired, replica, "promote to standalone"),))


def plan_snapshot(stack: str, name: str, region: str, primary: Found | None, group: Found | None, *,
                  copy_to: str | None = None, kms_key: str | None = None) -> Plan:
    """Manual snapshots named ``name`` of the primary DB (or the stack's Multi-AZ DB cluster) and
    of the cache; the DB instance's copied to ``copy_to`` once it is available."""
    steps = []
    db_key = f"snapshot.db.{region}.{name}"
    if primary is not None and primary.kind == "db-cluster":   # CreateDBClusterSnapshot; no copy (refused before)
        key = f"snapshot.db-cluster.{region}.{name}"
        steps.append(Step(key, "db-cluster-snapshot", CREATE, (), Desired(key, "db-cluster-snapshot", name, (),
                                                                          {"cluster": primary.id})))
    elif primary is not None:
        steps.append(Step(db_key, "db-snapshot", CREATE, (), Desired(db_key, "db-snapshot", name, (), {"instance": primary.id})))
        if copy_to:
            key = f"snapshot.db.{copy_to}.{name}"
            steps.append(Step(key, "db-snapshot-copy", CREATE, (db_key,), Desired(
                key, "db-snapshot-copy", name, (db_key,), {"region": copy_to, "source_key": db_key, "kms_key": kms_key})))
    if group is not None:
        key = f"snapshot.cache.{region}.{name}"
        steps.append(Step(key, "cache-snapshot", CREATE, (), Desired(key, "cache-snapshot", name, (), {"group": group.id})))
    return Plan(stack, tuple(steps))


def plan_restore(stack: str, desired: Desired, found: dict[str, Found]) -> Plan:
    """One new instance or group (a restore; the maintenance drill's Single-AZ instance): created,
    or kept (and waited for) when a rerun finds it."""
    existing = found.get(desired.key)
    action = KEEP if existing is not None else CREATE
    return Plan(stack, (Step(desired.key, desired.kind, action, (), desired, existing),))


def plan_delete_snapshots(stack: str, snaps: list[Found]) -> Plan:
    """Deletes of manual, final and copied snapshots (automated ones go with their instance)."""
    return Plan(stack, tuple(Step(s.key, s.kind if s.kind != "db-snapshot-copy" else "db-snapshot", DELETE, (), None, s)
                             for s in snaps if s.get("type") != "automated"))


def plan_host_command(stack: str, instance_id: str, script: str, comment: str) -> Plan:
    """One shell script run on the host through SSM Run Command, waited for until it is over."""
    key = "verify.host-command"
    return Plan(stack, (Step(key, "host-command", CREATE, (), Desired(
        key, "host-command", comment, (), {"instance": instance_id, "script": script})),))
