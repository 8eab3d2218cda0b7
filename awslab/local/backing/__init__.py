"""Real engines behind the local AWS's emulated databases and caches (runs in the server process).

Each RDS PostgreSQL instance gets a real PostgreSQL server on 127.0.0.1 (master user and the
password of its RDS-managed secret), each read replica a streaming replica of it, each Redis
replication group a redis-server primary with the AUTH token and replicas following it. A DB or
cache snapshot is a real copy of the data (pg_basebackup / an RDB file) and a restore starts a new
engine from it. Engines start when the resource is created (the resource stays ``creating`` until
its engine takes connections) and stop, their data removed, when it is deleted; the server stops
them all when it stops.

The endpoint stays what AWS would return; ``<local dir>/endpoints.json`` maps each emulated
endpoint ``address:port`` to the engine's real ``127.0.0.1:port`` (or says why there is none), and
awslab's client side (``awslab.verify.live.endpoint_map``, through the server's
``/awslab/endpoints``) reads it wherever it connects.

Engine work runs on a small pool of threads, one queue per resource, so a request never waits for
an ``initdb``; a replica's start waits for its primary's.

The package, by what each part holds: ``core`` the ``Backing`` (the work queues and the endpoint
map, the listeners and links it opens), ``keys`` which engine is whose (per account and region),
``hooks`` what the two services' hooks share (the server's one ``Backing``, the revivers and
periodic work they register, the wrapper that runs a hook after a moto method), ``rds`` and
``elasticache`` each service's hooks and revivers (``rds_mysql`` RDS's MySQL family, on MariaDB;
``rds_cluster`` the Multi-AZ DB cluster's writer and readable standbys). This module is what the server calls:
``enable`` installs RDS's hooks, then ElastiCache's; ``resume`` and ``reconcile`` run every
service's revivers, which give a restarted server's resources their engines back.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from awslab.home.state import write_json_atomic
from awslab.local.backing import elasticache, hooks, rds, rds_cluster, rds_mysql
from awslab.local.backing.core import ENDPOINTS_FILE, LINK, PATHS_SETTLE_S, PORTS_FILE, TUNNEL, Backing
from awslab.local.backing.elasticache import CACHE_MEMORY_SCALE, CACHE_NODE_MIB
from awslab.local.backing.hooks import PERIODIC_S
from awslab.local.backing.keys import HOME_ACCOUNT
from awslab.local.backing.rds import restore_window
from awslab.local.engines import EngineUnavailable, postgres_bindir, redis_server_path
from awslab.local.network import OUTSIDE
from awslab.local.side import side

# What the server, the patches and the tests use of the backing.
__all__ = ["CACHE_MEMORY_SCALE", "CACHE_NODE_MIB", "ENDPOINTS_FILE", "HOME_ACCOUNT", "LINK", "PATHS_SETTLE_S",
           "PERIODIC_S", "PORTS_FILE", "TUNNEL", "Backing", "busy_state", "describe_endpoints", "enable",
           "engines_available", "flow_records", "halt_all", "instance_view", "paths_changed", "read_endpoints",
           "reconcile", "restore_window", "resume", "settle", "stop_all"]

log = logging.getLogger("awslab.local.backing")


def busy_state(obj) -> str | None:
    """'creating' (or what the running job says, e.g. 'rebooting') while its engine work runs."""
    key = side(obj).engine_key
    if key is None or hooks.current is None or not hooks.current.busy(key):
        return None
    return hooks.current.label(key)


def enable(local_dir: Path) -> Backing:
    """Back the local AWS's RDS and ElastiCache resources by real engines (after patches.apply)."""
    hooks.current = Backing(local_dir)
    rds.install()
    rds_mysql.install()
    rds_cluster.install()
    elasticache.install()
    threading.Thread(target=_tick, args=(hooks.current,), name="engine periodic", daemon=True).start()
    return hooks.current


def instance_view(source: str) -> tuple[dict[str, dict], Path | None]:
    """What instance ``source`` sees (its endpoints, the CA to check them by): instances.py's view."""
    return (hooks.current.view(source), hooks.current.authority.ca_path) if hooks.current is not None else ({}, None)


def paths_changed() -> None:
    if hooks.current is not None:
        hooks.current.paths_changed()


def flow_records(since: float = 0.0, action: str | None = None, vpc: str | None = None) -> list[dict]:
    return hooks.current.network.records(since, action, vpc) if hooks.current is not None else []


def stop_all() -> None:
    if hooks.current is not None:
        hooks.current.stop_all()


def halt_all() -> None:
    if hooks.current is not None:
        hooks.current.halt_all()


def _tick(b: Backing) -> None:
    while not b.closing.wait(PERIODIC_S):
        for work in hooks.periodic:
            try:
                work(b)
            except Exception:  # noqa: BLE001 - a periodic job's failure must not stop the others
                log.exception("periodic engine work failed")


def resume(state_loaded: bool) -> dict[str, int]:
    """After the saved state is loaded: every DB instance and cache node gets its engine back (its
    data reattached), and engines of resources the state no longer has (made in the moment before
    a crash that the state did not keep) are stopped and removed. Without a loaded state nothing
    is removed: engines left running are stopped, their data kept (``local reset`` removes it)."""
    b = hooks.current
    assert b is not None
    write_json_atomic(b.endpoints_path, {})
    b.engines.reap_strays()
    if not state_loaded:
        return {"engines": 0, "kept_stopped": len(b.engines.halt_all())}
    claimed: set[str] = set()
    for revive in hooks.revivers:
        claimed |= revive(b)
    orphans = [key for key in b.engines.entries() if key not in claimed]
    for key in orphans:
        log.info("engine %s belongs to no resource of the saved state: removed", key)
        b.engines.stop(key)
    return {"engines": len(claimed), "removed": len(orphans)}


def settle(timeout_s: float) -> bool:
    return hooks.current.settle(timeout_s) if hooks.current is not None else True


def reconcile() -> dict[str, int]:
    """On a running server (before `up` changes a stack): every DB instance and cache node whose
    engine died (killed, crashed) or was never made gets it back, on its data where it has some;
    running or busy engines are left alone. ``settle`` then waits for that work."""
    b = hooks.current
    assert b is not None
    dead = [k for k in b.engines.entries() if not b.busy(k) and not b.engines.alive(k)]
    b.reconciling = True
    try:
        for revive in hooks.revivers:
            revive(b)
    finally:
        b.reconciling = False
    return {"dead": len(dead)}


def describe_endpoints(local_dir: Path, via: str | None = None) -> dict[str, dict]:
    """The endpoint map (as instance ``via`` sees it, when given), each read replica with its lag now
    (RDS's ReplicaLag), each MariaDB Multi-AZ primary with its standby's (``standby_lag_s``)."""
    if hooks.current is None:
        return read_endpoints(local_dir)
    endpoints = hooks.current.view(via or OUTSIDE)
    engines = hooks.current.engines
    for info in endpoints.values():
        key = info.get("key")
        if not key or info.get("status") != "available" or info.get("engine") not in ("postgres", "mariadb"):
            continue
        if info.get("role") == "replica":
            field, lagging = "replica_lag_s", key
        elif info.get("role") == "primary" and info.get("engine") == "mariadb" and engines.alive(engines.standby_key(key)):
            # A new MariaDB standby replays its primary's binary log; until it has, a failover waits for it.
            field, lagging = "standby_lag_s", engines.standby_key(key)
        else:
            continue
        try:
            info[field] = engines.replica_lag(lagging)
        except Exception:  # noqa: BLE001 - a lag that cannot be read is left out, never an error
            pass
    return endpoints


def read_endpoints(local_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((local_dir / ENDPOINTS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def engines_available() -> dict[str, str]:
    """What this machine can run: {'postgres': 'ok' | reason, 'redis': ...}."""
    out = {}
    for name, probe in (("postgres", postgres_bindir), ("redis", redis_server_path)):
        try:
            probe()
            out[name] = "ok"
        except EngineUnavailable as exc:
            out[name] = str(exc)
    return out
