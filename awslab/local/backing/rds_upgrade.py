"""RDS's engine upgrade behind a DB instance (ModifyDBInstance EngineVersion, checked and recorded
by ``patches/rds_versions.py``), made for real on its engines, in RDS's order:

1. the pre-upgrade snapshot: a real copy of the data on the old version;
2. the instance down (``upgrading``): its Multi-AZ standby and its read replicas stopped first
   (RDS upgrades both Multi-AZ servers at once, and the replicas with their primary), then the
   primary upgraded on its own data (``engines.upgrade_postgres``: pg_upgrade for a new major, a
   restart for a minor) and its endpoint reaching it again;
3. the standby made again from the upgraded primary (the instance is ``available`` only once it
   streams), and each replica rebuilt from it (``upgrading`` until it serves again).

No server of the instance runs the old version once the API reports the new one as available."""

from __future__ import annotations

import functools
import logging
from typing import Callable

from awslab.local.backing import hooks
from awslab.local.backing.keys import db_key, snap_key
from awslab.local.side import note, side
from awslab.spec.catalog import db_major

log = logging.getLogger("awslab.local.backing")



def upgraded(backend, db, serve_again: Callable[..., None]) -> None:
    """After ModifyDBInstance: the upgrade ``db`` carries, if any, queued on its engines."""
    change = side(db).upgrade
    if change is not None:
        note(db, upgrade=None)   # taken once
    b = hooks.current
    if change is None or b is None or db.engine != "postgres":
        return
    old, new, snapshot = change
    engines = b.engines
    key = db_key(db.account_id, db.region, db.db_instance_identifier)
    entry = engines.get(key)
    if entry and entry.get("role") == "replica" and db_major(old) == db_major(new):
        # A read replica's own minor upgrade (RDS for PostgreSQL upgrades the replicas first): its
        # server restarts on the new minor, streaming on from its source.
        b.submit(key, lambda: b.engines.upgrade_postgres(key, new), label="upgrading")
        return
    if not entry or entry.get("role") != "primary":
        return
    endpoint = f"{db.address}:{db.port}"
    sk = engines.standby_key(key)
    multi_az = bool(engines.get(sk))
    replicas = [f for f in engines.followers(key) if f != sk]

    snap = backend.database_snapshots.get(snapshot)
    name = snap_key("rds", db.account_id, db.region, snapshot)
    if snap is not None:
        note(snap, engine_key=key)
    b.submit(key, lambda: engines.snapshot(key, name), alias=f"snapshot:{name}", label="upgrading")

    def work() -> None:
        log.info("upgrade %s: %s -> %s (%s, %d replica(s))", endpoint, old, new,
                 "Multi-AZ: both servers" if multi_az else "Single-AZ", len(replicas))
        for follower in replicas:
            engines.halt(follower)
        if multi_az:
            engines.remove_standby(key)
        engines.upgrade_postgres(key, new)   # a new major's pg_upgrade, or a restart on the new minor
        serve_again(key, endpoint, repoint=False)
        if multi_az:
            engines.start_standby(key)

    b.submit(key, work, label="upgrading")
    for follower in replicas:
        b.submit(follower, functools.partial(_rebuild_replica, b, follower, key), after=key, label="upgrading")


def _rebuild_replica(b, follower: str, primary: str) -> None:
    """A read replica of the upgraded primary, made again from it, behind the same endpoint."""
    endpoints = b.endpoints_of(follower)
    b.engines.stop(follower)
    b.engines.start_postgres_replica(follower, primary=primary)
    for endpoint in endpoints:
        b.forwarder.drop(endpoint)
        b.publish_engine(endpoint, follower, "replica")
