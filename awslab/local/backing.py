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

One module (about 600 lines) because RDS's and ElastiCache's hooks share that queue, the endpoint
map and the snapshot files, and so do the revivers that give a restarted server's resources their
engines back (``resume``, ``reconcile``); it is the place to split by service when either grows.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any, Callable

from awslab.home.state import write_json_atomic
from awslab.local import latency, tls
from awslab.local.engines import (
    EngineError,
    Engines,
    EngineUnavailable,
    postgres_bindir,
    redis_server_path,
)
from awslab.local.forwarder import HOST, Forwarder
from awslab.local.network import OUTSIDE, Network, Owner

log = logging.getLogger("awslab.local.backing")
ENDPOINTS_FILE = "endpoints.json"
PORTS_FILE = "endpoint-ports.json"
TUNNEL = "#tunnel"   # suffix of a TLS-only endpoint's tunnel listener (for clients without TLS)
LINK = "link:"       # prefix of a replication stream's link (a follower to its primary, across AZs)


PATHS_SETTLE_S = 0.05   # after a network change, how long more changes may join the same pass


class Backing:
    def __init__(self, local_dir: Path) -> None:
        self.engines = Engines(local_dir / "engines")
        self.endpoints_path = local_dir / ENDPOINTS_FILE
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engine")
        self._jobs: dict[str, Future] = {}
        self._labels: dict[str, str] = {}
        self._lock = threading.Lock()
        self._map_lock = threading.Lock()
        self.reconciling = False   # set while ``reconcile`` walks a running server's resources
        self.forwarder = Forwarder(local_dir / PORTS_FILE)
        self.roles: dict[str, str] = {}   # endpoint -> the engine key that holds its role now
        self.authority = tls.Authority(local_dir / "tls")
        self.tls: dict[str, tuple[str, str]] = {}   # endpoint -> (protocol, tls.REQUIRED | tls.OPTIONAL)
        self.closing = threading.Event()
        self.owners: dict[str, Owner] = {}   # endpoint -> the resource it belongs to (the VPC's say on it)
        self.preludes: dict[str, bytes] = {}   # endpoint -> what the relay says to its engine first
        self.network = Network(local_dir, self.owners)
        self.engines.link, self.engines.unlink = self._link, lambda key: self.forwarder.close(LINK + key)
        self.sources: set[str] = set()   # instances that asked to see the endpoints (``view``)
        self._paths = threading.Event()   # set by a change that may open or close a path
        self._paths_thread: threading.Thread | None = None

    # --- work queues ---

    def submit(self, key: str, work: Callable[[], Any], after: str | None = None, alias: str | None = None,
               label: str = "creating") -> Future:
        """Run ``work`` once the previous job of ``key`` (and the latest job of ``after``) is done;
        ``alias`` names the job too (a snapshot, so that a restore from it can wait for it);
        ``label`` is the state the resource shows while it runs."""
        with self._lock:
            self._labels[key] = label
            waits = [f for f in (self._jobs.get(key), self._jobs.get(after) if after else None) if f is not None]

            def job():
                for f in waits:
                    try:
                        f.result()
                    except Exception:  # noqa: BLE001 - the earlier job's failure is reported by that job
                        pass
                try:
                    return work()
                except (EngineError, EngineUnavailable, ValueError, OSError) as exc:
                    log.warning("engine work for %s failed: %s", key, exc)
                    raise

            fut = self._jobs[key] = self._pool.submit(job)
            if alias:
                self._jobs[alias] = fut
            return fut

    def settle(self, timeout_s: float) -> bool:
        """Wait (bounded) until no engine work is queued or running, jobs that queue more included;
        False if some was still running at the bound."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = [f for f in self._jobs.values() if not f.done()]
            if not pending:
                return True
            futures_wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        return False

    def label(self, key: str) -> str:
        with self._lock:
            return self._labels.get(key, "creating")

    def busy(self, key: str) -> bool:
        """Engine work for ``key`` is queued or running; for a Multi-AZ standby, its primary's
        work counts too (the standby is made inside the primary's creation, which a `reconcile`
        from another stack's `up` must not take for a dead engine and restart)."""
        owner = self.engines.owner_of_standby(key)
        with self._lock:
            futs = [self._jobs.get(k) for k in (key, owner) if k]
        return any(f is not None and not f.done() for f in futs)

    # --- the endpoint map ---

    def secure(self, protocol: str, mode: str | None, *endpoints: str, owner: Owner | None = None,
               open_auth: str | None = None) -> None:
        """How the endpoints take connections: TLS ``required`` or ``optional`` (``protocol``:
        'postgres' or 'redis', whose handshakes differ), or plain (None); ``owner``, the resource
        whose security groups and subnets decide who reaches them; ``open_auth``, for a cache made
        without AUTH, the password its engine has anyway (the relay says it, so clients need none
        while the engine's own port, on this machine, still asks for one)."""
        for e in endpoints:
            if owner is not None:
                self.owners[e] = owner
            if open_auth:
                self.preludes[e] = _redis_command("AUTH", open_auth)
            else:
                self.preludes.pop(e, None)
            if mode is None:
                self.tls.pop(e, None)
            else:
                self.tls[e] = (protocol, mode)

    def publish(self, endpoint: str, **info: Any) -> None:
        """Say in the map what is behind ``endpoint``; an available engine's ``port`` is the
        endpoint's own local address (``forwarder.py``), relayed to that engine (``engine_port``),
        behind TLS where AWS has it (``tls``, with the CA to check it by and, for a TLS-only
        endpoint, a ``tunnel_port`` that clients without TLS can use)."""
        if info.get("status") == "available" and info.get("port"):
            self.roles[endpoint] = info["key"]
            info = {**info, "engine_port": info["port"], "views": {}}
            nearby = {s for s in self.sources | self._remembered_sources(endpoint) if self.network.sees(s, endpoint)}
            for source in (OUTSIDE, *sorted(nearby)):
                info["views"][source] = self._open_view(endpoint, source)
            info.update(info["views"][OUTSIDE])
            protocol, mode = self.tls.get(endpoint, (None, None))
            if mode is not None:
                info.update(tls=mode, ca=str(self.authority.ca_path))
        with self._map_lock:
            data = self.read_map()
            data[endpoint] = info
            write_json_atomic(self.endpoints_path, data)

    def _open_view(self, endpoint: str, source: str) -> dict[str, int]:
        """The listener (and, for a TLS-only endpoint, the tunnel) through which ``source`` sees
        ``endpoint``; every connection to it is put to the VPC first."""
        name = endpoint if source == OUTSIDE else f"{endpoint}@{source}"
        tunnel = endpoint + TUNNEL + ("" if source == OUTSIDE else f"@{source}")
        protocol, mode = self.tls.get(endpoint, (None, None))
        greet = None
        if mode is not None:
            greet = (tls.postgres_greeter if protocol == "postgres" else tls.tls_greeter)(self.authority.server_context(), mode)
        gate = functools.partial(self.network.decide, source, endpoint)
        allows = functools.partial(self.network.allows, source, endpoint)
        local = self.forwarder.listen(name, functools.partial(self._route, endpoint), greet, gate=gate, allows=allows,
                                      prelude=self.preludes.get(endpoint))
        view = {"port": local}
        if mode == tls.REQUIRED:
            client = tls.client_context(self.authority.ca_path)
            wrap = (tls.postgres_wrapper if protocol == "postgres" else tls.tls_wrapper)(client, HOST)
            view["tunnel_port"] = self.forwarder.listen(tunnel, lambda: (HOST, local), wrap=wrap)
        else:
            self.forwarder.close(tunnel)
        return view

    def _remembered_sources(self, endpoint: str) -> set[str]:
        """Instances that saw ``endpoint`` before a restart (their listeners come back on their ports)."""
        return {n.split("@", 1)[1] for n in self.forwarder.remembered() if n.startswith(endpoint + "@")}

    def paths_changed(self) -> None:
        """A rule, a route, an ACL or a resource's network settings changed: every listener is
        plugged or unplugged to match, in its own thread, at once (the change's request is not kept
        waiting; a burst of changes is one pass)."""
        self._paths.set()
        if self._paths_thread is None:
            self._paths_thread = threading.Thread(target=self._follow_paths, name="paths", daemon=True)
            self._paths_thread.start()

    def _follow_paths(self) -> None:
        while not self.closing.is_set():
            self._paths.wait()
            time.sleep(PATHS_SETTLE_S)   # a burst of changes (a stack's rules) is one pass
            self._paths.clear()
            started = time.monotonic()
            try:
                with self.network.one_pass():
                    self.forwarder.refresh()
            except Exception:  # noqa: BLE001 - the next change tries again; a denied path stays held
                log.exception("could not follow a network change")
            spent = time.monotonic() - started
            if spent > 0.1:
                log.info("a network change re-decided every listener in %.0f ms", spent * 1000)

    def view(self, source: str) -> dict[str, dict]:
        """The endpoint map as instance ``source`` sees it (its own listeners opened on first ask):
        each entry's ``port`` and ``tunnel_port`` are that instance's."""
        if source != OUTSIDE and source not in self.sources:
            self.sources.add(source)
            with self._map_lock:   # listeners for the endpoints of its own VPC only: nothing else is routed to it
                data = self.read_map()
                for endpoint, info in data.items():
                    if info.get("status") == "available" and endpoint in self.roles and self.network.sees(source, endpoint):
                        info.setdefault("views", {})[source] = self._open_view(endpoint, source)
                write_json_atomic(self.endpoints_path, data)
        out = {}
        for endpoint, info in self.read_map().items():
            mine = (info.get("views") or {}).get(source)
            if mine:
                info = {k: v for k, v in info.items() if k != "tunnel_port"} | mine
            out[endpoint] = {**info, "source": source}
        return out

    def publish_engine(self, endpoint: str, key: str, role: str) -> None:
        """``endpoint`` now reaches the engine ``key`` (after a failover, a reboot or a promotion)."""
        entry = self.engines.get(key) or {}
        self.publish(endpoint, key=key, role=role, status="available", engine=entry.get("engine"),
                     host=entry.get("host"), port=entry.get("port"), pid=entry.get("pid"))

    def _route(self, endpoint: str) -> tuple[str, int] | None:
        entry = self.engines.get(self.roles.get(endpoint, ""))
        if entry and entry.get("status") == "available" and entry.get("port"):
            return entry["host"], int(entry["port"])
        return None

    def _link(self, follower: str, primary: str) -> int | None:
        """The port of the link through which ``follower`` streams from ``primary``, carrying the
        latency of their AZ pair (half the round trip each way); None when the profile has none
        and no link exists yet (the follower then connects to its primary directly)."""
        rtt = latency.current().round_trip(_az_pair(follower, primary))
        if rtt <= 0 and not self.forwarder.listening(LINK + follower):
            return None

        def route() -> tuple[str, int] | None:
            entry = self.engines.get(primary)
            return (entry["host"], int(entry["port"])) if entry and entry.get("port") else None

        return self.forwarder.listen(LINK + follower, route, delay_s=rtt / 2)

    def endpoints_of(self, key: str) -> list[str]:
        return [e for e, k in list(self.roles.items()) if k == key]

    def unpublish(self, *endpoints: str) -> None:
        for e in endpoints:
            self.roles.pop(e, None)
            self.tls.pop(e, None)
            self.owners.pop(e, None)
            for name in self.forwarder.names(e):
                self.forwarder.close(name)
        with self._map_lock:
            data = self.read_map()
            for e in endpoints:
                data.pop(e, None)
            write_json_atomic(self.endpoints_path, data)

    def read_map(self) -> dict[str, dict]:
        try:
            return json.loads(self.endpoints_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def start_engine(self, endpoint: str | None, key: str, start: Callable[[], dict], after: str | None = None,
                     role: str = "primary", aliases: list[str] = ()) -> Future:
        """Start an engine in the background and publish where it listens, under ``endpoint`` and
        its ``aliases`` (other endpoints AWS gives the same node)."""
        names = [e for e in (endpoint, *aliases) if e]
        for name in names:
            self.publish(name, key=key, role=role, status="starting")

        def work() -> dict:
            try:
                entry = start()
            except EngineUnavailable as exc:
                for name in names:
                    self.publish(name, key=key, role=role, status="unavailable", reason=str(exc))
                raise
            except (EngineError, ValueError, OSError) as exc:
                for name in names:
                    self.publish(name, key=key, role=role, status="failed", reason=str(exc))
                raise
            for name in names:
                self.publish(name, key=key, role=role, status="available", engine=entry["engine"],
                             host=entry["host"], port=entry["port"], pid=entry["pid"])
            return entry

        return self.submit(key, work, after=after)

    def repoint(self, key: str) -> None:
        """A running replica follows its primary's new port; where it listens now is published."""
        self.engines.repoint(key)
        for endpoint, info in self.read_map().items():
            if info.get("key") == key:
                self.publish_engine(endpoint, key, info.get("role", "replica"))

    def stop_engine(self, key: str, *endpoints: str) -> Future:
        """The engine of a deleted resource stopped (the resource reads `deleting` until it is)."""
        self.unpublish(*endpoints)
        return self.submit(key, lambda: self.engines.stop(key), label="deleting")

    def stop_all(self) -> list[int]:
        self.closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.forwarder.close_all()
        pids = self.engines.stop_all()
        write_json_atomic(self.endpoints_path, {})
        return pids

    def halt_all(self) -> list[str]:
        """Stop every engine, keeping its data for the next server of this home (``resume``). Work
        already asked for runs first: a deleted instance's final snapshot must not be lost to a stop."""
        self.closing.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self.forwarder.close_all()
        keys = self.engines.halt_all()
        write_json_atomic(self.endpoints_path, {})
        return keys

    def revive(self, key: str, endpoints: list[str], fresh: Callable[[], Future | None], role: str = "primary",
               after: str | None = None) -> None:
        """The engine of a resource the saved state brought back: adopted or resumed on its data, or,
        when it has none (the server died before it was made), made again as when the resource was."""
        if self.reconciling and (self.busy(key) or self.engines.alive(key)):
            return   # on a running server: only dead engines are brought back
        if self.engines.resumable(key) or (self.engines.get(key) or {}).get("status") == "available":
            before = (self.engines.get(key) or {}).get("last_port") or (self.engines.get(key) or {}).get("port")

            def resume() -> dict:
                entry = self.engines.resume(key)
                if entry.get("port") != before:   # replicas still running follow it to its new port
                    for follower in self.engines.followers(key):
                        self.submit(follower, functools.partial(self.repoint, follower), after=key)
                return entry

            self.start_engine(endpoints[0] if endpoints else None, key, resume,
                              after=after, role=role, aliases=endpoints[1:])
        else:
            self.engines.stop(key)
            fresh()


_backing: Backing | None = None


def busy_state(obj) -> str | None:
    """'creating' (or what the running job says, e.g. 'rebooting') while its engine work runs."""
    key = getattr(obj, "_awslab_engine_key", None)
    if key is None or _backing is None or not _backing.busy(key):
        return None
    return _backing.label(key)


def enable(local_dir: Path) -> Backing:
    """Back the local AWS's RDS and ElastiCache resources by real engines (after patches.apply)."""
    global _backing
    _backing = Backing(local_dir)
    _rds()
    _elasticache()
    threading.Thread(target=_tick, args=(_backing,), name="engine periodic", daemon=True).start()
    return _backing


def instance_view(source: str) -> tuple[dict[str, dict], Path | None]:
    """What instance ``source`` sees (its endpoints, the CA to check them by): instances.py's view."""
    return (_backing.view(source), _backing.authority.ca_path) if _backing is not None else ({}, None)


def paths_changed() -> None:
    if _backing is not None:
        _backing.paths_changed()


def flow_records(since: float = 0.0, action: str | None = None, vpc: str | None = None) -> list[dict]:
    return _backing.network.records(since, action, vpc) if _backing is not None else []


def stop_all() -> None:
    if _backing is not None:
        _backing.stop_all()


def halt_all() -> None:
    if _backing is not None:
        _backing.halt_all()


_revivers: list[Callable[[Backing], set[str]]] = []
_periodic: list[Callable[[Backing], None]] = []   # run every PERIODIC_S on the running server
PERIODIC_S = 1.0


def _tick(b: Backing) -> None:
    while not b.closing.wait(PERIODIC_S):
        for work in _periodic:
            try:
                work(b)
            except Exception:  # noqa: BLE001 - a periodic job's failure must not stop the others
                log.exception("periodic engine work failed")


def resume(state_loaded: bool) -> dict[str, int]:
    """After the saved state is loaded: every DB instance and cache node gets its engine back (its
    data reattached), and engines of resources the state no longer has (made in the moment before
    a crash that the state did not keep) are stopped and removed. Without a loaded state nothing
    is removed: engines left running are stopped, their data kept (``local reset`` removes it)."""
    b = _backing
    assert b is not None
    write_json_atomic(b.endpoints_path, {})
    b.engines.reap_strays()
    if not state_loaded:
        return {"engines": 0, "kept_stopped": len(b.engines.halt_all())}
    claimed: set[str] = set()
    for revive in _revivers:
        claimed |= revive(b)
    orphans = [key for key in b.engines.entries() if key not in claimed]
    for key in orphans:
        log.info("engine %s belongs to no resource of the saved state: removed", key)
        b.engines.stop(key)
    return {"engines": len(claimed), "removed": len(orphans)}


def settle(timeout_s: float) -> bool:
    return _backing.settle(timeout_s) if _backing is not None else True


def reconcile() -> dict[str, int]:
    """On a running server (before `up` changes a stack): every DB instance and cache node whose
    engine died (killed, crashed) or was never made gets it back, on its data where it has some;
    running or busy engines are left alone. ``settle`` then waits for that work."""
    b = _backing
    assert b is not None
    dead = [k for k in b.engines.entries() if not b.busy(k) and not b.engines.alive(k)]
    b.reconciling = True
    try:
        for revive in _revivers:
            revive(b)
    finally:
        b.reconciling = False
    return {"dead": len(dead)}


def _live(backend_dict, attr: str):
    """(region, object) of every resource in ``attr`` of every backend, but those going away."""
    for _, region, backend in backend_dict.iter_backends():
        for obj in list(dict.values(getattr(backend, attr))):
            if getattr(obj, "_awslab_gone_at", None) is None:
                yield backend, region, obj


HOME_ACCOUNT = "123456789012"   # moto's default account: the home's own keys act in it


def _place(account: str, region: str) -> str:
    """Where an engine lives: the region, and the account when it is not the home's own (a
    StackSet's target accounts, roles assumed into them), so two accounts' ``lab-db`` never share
    an engine."""
    return region if account == HOME_ACCOUNT else f"{region}@{account}"


def _db_key(account: str, region: str, ident: str) -> str:
    return f"rds.{_place(account, region)}.{ident}"


def _az_pair(follower: str, primary: str) -> str:
    """``net.cross-az`` or ``net.same-az`` for a follower and its primary: a Multi-AZ standby is in
    another AZ by definition; a read replica where RDS put it."""
    from awslab.local.engines import Engines

    if Engines.owner_of_standby(follower):
        return "net.cross-az"
    azs = []
    for key in (follower, primary):
        service, place, ident = key.split(".", 2)
        region, _, account = place.partition("@")
        try:
            from moto.rds.models import rds_backends
            azs.append(rds_backends[account or HOME_ACCOUNT][region].databases[ident].availability_zone)
        except Exception:  # noqa: BLE001 - not an RDS instance moto knows (any more): across AZs
            return "net.cross-az"
    return "net.same-az" if azs[0] == azs[1] else "net.cross-az"


def _snap_key(service: str, account: str, region: str, ident: str) -> str:
    return f"{service}.{_place(account, region)}.{ident.split(':')[-1]}"


def _db_endpoint(db) -> str:
    return f"{db.address}:{db.port}"


def _secret_of(db) -> dict:
    secret = getattr(db, "master_user_secret", None)
    if secret is not None:
        return json.loads(secret.secret.secret_string)
    # A password given as MasterUserPassword: moto keeps it but will not hand it out.
    return {"username": db.master_username, "password": getattr(db, "_master_user_password", None) or ""}


def _major(version: str | None) -> str | None:
    return str(version).split(".")[0] if version else None


def _db_tls(db) -> str:
    """RDS's ``rds.force_ssl``: as the instance's parameter group sets it, else the family's default
    (on from PostgreSQL 15, off before: TLS is then offered, not required)."""
    group = getattr(db, "db_parameter_group_name", None) or ""
    if group and not group.startswith("default."):
        from moto.rds.models import rds_backends

        try:
            params = rds_backends[db.account_id][db.region].db_parameter_groups[group].parameters
            value = (params.get("rds.force_ssl") or {}).get("ParameterValue")
        except (KeyError, AttributeError):
            value = None
        if value in ("0", "1"):
            return tls.REQUIRED if value == "1" else tls.OPTIONAL
    major = _major(db.engine_version) or ""
    return tls.REQUIRED if major.isdigit() and int(major) >= 15 else tls.OPTIONAL


def _pg_major_available(version: str | None) -> str | None:
    """The engine's major version when its binaries are at hand, else the default ones."""
    try:
        postgres_bindir(_major(version))
        return _major(version)
    except EngineUnavailable:
        return None


def _with_own_password(db, key: str, entry: dict) -> dict:
    """A restored instance answers to the password of its own secret (the one DescribeDBInstances names)."""
    secret = _secret_of(db)
    if secret.get("password"):
        _backing.engines.set_postgres_password(key, secret["password"])
    return entry


# --- RDS ---------------------------------------------------------------------------------------

def _backups_on(db) -> bool:
    return bool(getattr(db, "backup_retention_period", 0))


def _epoch(value) -> float | None:
    """A RestoreTime as the API hands it (datetime or ISO-8601 text) in epoch seconds."""
    from datetime import datetime, timezone

    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def restore_window(account: str, region: str, ident: str) -> tuple[float, float] | None:
    """The real restorable window of a DB instance's engine (epoch seconds), when it keeps backups."""
    if _backing is None:
        return None
    return _backing.engines.restore_window(_db_key(account, region, ident))


def _rds() -> None:
    from moto.rds.models import DBInstance, DBInstanceAutomatedBackup, RDSBackend

    b = _backing
    assert b is not None
    engines = b.engines

    def unsupported(db, why: str) -> None:
        b.publish(_db_endpoint(db), key=_db_key(db.account_id, db.region, db.db_instance_identifier), status="unavailable", reason=why)

    inside = threading.local()   # a restore makes its instance through create_db_instance: one engine, not two

    def after(method: str, hook: Callable[..., None]) -> None:
        _after(RDSBackend, method, hook, inside)

    def start_primary(db, start: Callable[[], dict], role: str = "primary", after_key: str | None = None) -> None:
        """Start the instance's engine (and, for Multi-AZ, its synchronous standby, before the
        instance is available, as RDS creates both)."""
        if db.engine != "postgres":
            unsupported(db, f"the local AWS runs real engines for PostgreSQL only, not {db.engine}")
            return
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        db._awslab_engine_key = key
        b.secure("postgres", _db_tls(db), _db_endpoint(db), owner=("rds", db.account_id, db.region, db.db_instance_identifier))

        def work() -> dict:
            entry = start()
            if db.multi_az and role == "primary":
                engines.start_standby(key)
            return entry

        b.start_engine(_db_endpoint(db), key, work, after=after_key, role=role)

    def created(self, db, db_kwargs) -> None:
        secret = _secret_of(db)
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: engines.start_postgres(key, user=secret["username"], password=secret["password"],
                                                         dbname=db.db_name or "postgres", backups=_backups_on(db),
                                                         major=_pg_major_available(db.engine_version)))

    def replica_created(self, db, db_kwargs) -> None:
        source = db.source_db_instance_identifier or ""
        src_key = _db_key(db.account_id, db.region, source.split(":")[-1])
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: engines.start_postgres_replica(key, primary=src_key), role="replica", after_key=src_key)

    def restored(self, db, *a, **kw) -> None:
        snap_id = kw.get("from_snapshot_id") or (a[0] if a else "")
        snap = _snap_key("rds", db.account_id, db.region, snap_id)
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: _with_own_password(db, key, engines.restore_postgres(key, snapshot=snap,
                                                                                       backups=_backups_on(db))),
                      after_key=f"snapshot:{snap}")

    def restored_to_time(self, db, *a, **kw) -> None:
        # The source's newest base backup before the time asked, and its WAL archive replayed up to it.
        source = kw.get("source_db_identifier") or (a[0] if a else "")
        overrides = a[2] if len(a) > 2 else kw.get("overrides") or {}
        when = None if overrides.get("use_latest_restorable_time") else _epoch(overrides.get("restore_time"))
        src_key = _db_key(db.account_id, db.region, source)
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: _with_own_password(db, key, engines.restore_postgres_to_time(
            key, source=src_key, when=when, backups=_backups_on(db))), after_key=src_key)

    def deleted(self, db, db_instance_identifier, final_db_snapshot_identifier=None, skip_final_snapshot=False,
                delete_automated_backups=True, *a, **kw) -> None:
        key = _db_key(db.account_id, db.region, db_instance_identifier)
        for follower in engines.followers(key):   # AWS promotes a deleted source's read replicas
            if follower != engines.standby_key(key):
                replica = self.databases.get(follower.split(".", 2)[-1])
                b.submit(follower, functools.partial(engines.promote_postgres, follower,
                                                     backups=replica is not None and _backups_on(replica)),
                         label="modifying")
        if final_db_snapshot_identifier and not skip_final_snapshot:
            snap = _snap_key("rds", db.account_id, db.region, final_db_snapshot_identifier)
            b.submit(key, lambda: engines.snapshot(key, snap) if engines.get(key) else None, alias=f"snapshot:{snap}",
                     label="deleting")
        b.submit(key, lambda: engines.stop(engines.standby_key(key)), label="deleting")
        b.stop_engine(key, _db_endpoint(db))
        if delete_automated_backups is not False:
            b.submit(key, lambda: engines.remove_backups(key), label="deleting")

    def serve_again(key: str, endpoint: str, repoint: bool = True) -> None:
        """After a restart or a failover of ``key``: its endpoints drop what was open and reach it
        (in its role: a read replica restarted is still one), and its replicas (``repoint``: it may
        have moved) follow it again."""
        role = "replica" if (engines.get(key) or {}).get("role") == "replica" else "primary"
        for e in b.endpoints_of(key) or [endpoint]:
            b.forwarder.drop(e)
            b.publish_engine(e, key, role)
        if repoint:
            for follower in engines.followers(key):
                if follower != engines.standby_key(key):
                    b.submit(follower, functools.partial(b.repoint, follower), after=key)

    def rebooted(self, db, db_instance_identifier, force_failover=False, *a, **kw) -> None:
        """A reboot restarts the server; with failover the primary crashes, the standby is promoted
        and takes the endpoint, and a new standby is built from it. Open connections drop either way."""
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine != "postgres" or not engines.get(key):
            return
        endpoint = _db_endpoint(db)
        sk = engines.standby_key(key)
        failover = force_failover and engines.alive(sk)

        def down_for_the_reboot() -> None:
            """Unreachable for as long as the latency profile says the reboot lasts (none: instant)."""
            from awslab.local import latency

            while latency.phase(db) is not None:
                time.sleep(0.05)

        def work() -> None:
            started = time.monotonic()
            before = (engines.get(key) or {}).get("port")
            if failover:
                engines.failover(key, pause=down_for_the_reboot)
            else:
                engines.restart(key, pause=down_for_the_reboot)
            serve_again(key, endpoint, repoint=failover or (engines.get(key) or {}).get("port") != before)
            log.info("%s %s: %r serves again after %.2f s", "failover" if failover else "reboot", endpoint, key,
                     time.monotonic() - started)
            if failover:
                b.submit(sk, functools.partial(engines.rebuild_standby, key), after=key)

        b.submit(key, work, label="rebooting")

    def maintained(backend, db, action: str, done: Callable[[], None]) -> None:
        """ApplyPendingMaintenanceAction, now: an OS patch. Single-AZ: the server restarts (its
        downtime). Multi-AZ: the standby first (the primary goes on), then a failover to it, then
        the old primary, back as the standby (the downtime is the failover's)."""
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine != "postgres" or not engines.get(key):
            done()
            return
        endpoint = _db_endpoint(db)
        multi_az = engines.alive(engines.standby_key(key))

        def down_for(transition: str) -> Callable[[], None]:
            """The time the latency profile gives that step (none on instant), scaled."""
            return lambda: time.sleep(latency.current().seconds(transition))

        def work() -> None:
            started = time.monotonic()
            try:
                if multi_az:
                    log.info("maintenance %s %s: patching the standby first", action, endpoint)
                    engines.restart_standby(key)
                    log.info("maintenance %s %s: failing over to the patched standby", action, endpoint)
                    engines.failover(key, pause=down_for("rds.failover"))
                    serve_again(key, endpoint)
                    log.info("maintenance %s %s: patching the old primary, back as the standby", action, endpoint)
                    engines.rebuild_standby(key)
                else:
                    log.info("maintenance %s %s: restarting the server (Single-AZ)", action, endpoint)
                    engines.restart(key, pause=down_for("rds.os-update"))
                    serve_again(key, endpoint)
            finally:
                done()
            log.info("maintenance %s %s done in %.2f s", action, endpoint, time.monotonic() - started)

        b.submit(key, work, label="maintenance")

    from awslab.local.patches import maintenance

    maintenance.on_apply.append(maintained)

    def promoted(self, db, db_kwargs) -> None:
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine != "postgres" or (engines.get(key) or {}).get("role") != "replica":
            return
        endpoint = _db_endpoint(db)

        def work() -> None:
            engines.promote_postgres(key, backups=_backups_on(db))
            b.publish_engine(endpoint, key, "primary")

        b.submit(key, work, label="modifying")

    def modified(self, db, db_instance_identifier, db_kwargs, *a, **kw) -> None:
        """Multi-AZ turned on adds the standby, off removes it; backups on or off start or stop the archive."""
        key = _db_key(db.account_id, db.region, db.db_instance_identifier)
        entry = engines.get(key)
        if db.engine != "postgres" or not entry or entry.get("role") != "primary":
            return
        sk = engines.standby_key(key)
        if db.multi_az and not engines.get(sk):
            b.submit(sk, functools.partial(engines.start_standby, key), after=key)
        elif not db.multi_az and engines.get(sk):
            b.submit(key, functools.partial(engines.remove_standby, key))
        if _backups_on(db) != bool(entry.get("backups")):
            b.submit(key, functools.partial(engines.set_backups, key, _backups_on(db)))

    def snapshot_created(self, snap, db_instance_identifier, db_snapshot_identifier, *a, **kw) -> None:
        key = _db_key(self.account_id, self.region_name, db_instance_identifier)
        name = _snap_key("rds", self.account_id, self.region_name, db_snapshot_identifier)
        snap._awslab_engine_key = key
        b.submit(key, lambda: engines.snapshot(key, name) if engines.get(key) else None, alias=f"snapshot:{name}",
                 label="backing-up")

    def snapshot_copied(self, snap, source_db_snapshot_identifier, target_db_snapshot_identifier, *a, **kw) -> None:
        source = source_db_snapshot_identifier
        region = source.split(":")[3] if source.startswith("arn:") else self.region_name
        src = _snap_key("rds", source.split(":")[4] if source.startswith("arn:") else self.account_id, region, source)
        dst = _snap_key("rds", self.account_id, self.region_name, target_db_snapshot_identifier)
        b.submit(f"snapshot:{dst}", lambda: engines.copy_snapshot(src, dst)
                 if (engines.snapshots_dir / src).exists() else None, after=f"snapshot:{src}")

    def snapshot_deleted(self, snap, db_snapshot_identifier, *a, **kw) -> None:
        engines.delete_snapshot(_snap_key("rds", self.account_id, self.region_name, db_snapshot_identifier))

    def revive(b: Backing) -> set[str]:
        from moto.rds.models import rds_backends

        claimed = set()
        dbs = sorted(_live(rds_backends, "databases"), key=lambda t: bool(t[2].source_db_instance_identifier))
        for backend, region, db in dbs:   # primaries first: a replica follows its primary's new port
            key = _db_key(db.account_id, region, db.db_instance_identifier)
            claimed.add(key)
            source = (db.source_db_instance_identifier or "").split(":")[-1]
            if db.engine != "postgres":
                unsupported(db, f"the local AWS runs real engines for PostgreSQL only, not {db.engine}")
                continue
            db._awslab_engine_key = key
            b.secure("postgres", _db_tls(db), _db_endpoint(db), owner=("rds", db.account_id, db.region, db.db_instance_identifier))
            if source:
                b.revive(key, [_db_endpoint(db)], lambda db=db, backend=backend: replica_created(backend, db, None),
                         role="replica", after=_db_key(db.account_id, region, source))
                continue
            fresh_primary = not engines.resumable(key) and (engines.get(key) or {}).get("status") != "available"
            b.revive(key, [_db_endpoint(db)], lambda db=db, backend=backend: created(backend, db, None))
            if db.multi_az and not fresh_primary:   # a fresh primary makes its standby itself
                sk = engines.standby_key(key)
                claimed.add(sk)
                b.revive(sk, [], lambda key=key, sk=sk: b.submit(sk, functools.partial(engines.start_standby, key),
                                                                 after=key), role="standby", after=key)
        return claimed

    orig_pitr = RDSBackend.restore_db_instance_to_point_in_time

    @functools.wraps(orig_pitr)
    def restore_db_instance_to_point_in_time(self, source_db_identifier, target_db_identifier, overrides):
        """Refused as RDS refuses it: no automated backups, or a time outside what they cover."""
        from moto.rds.exceptions import RDSClientError

        source = self.databases.get(source_db_identifier)
        if source is not None and not _backups_on(source):
            raise RDSClientError("PointInTimeRestoreNotEnabled", "SourceDBInstanceIdentifier refers to a DB "
                                 "instance with BackupRetentionPeriod equal to 0.")
        when = None if overrides.get("use_latest_restorable_time") else _epoch(overrides.get("restore_time"))
        window = restore_window(self.account_id, self.region_name, source_db_identifier) if source is not None else None
        if when is not None and window is not None and not window[0] <= when <= window[1] + 1:
            fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
            raise RDSClientError("InvalidRestoreFault", f"The restore time {fmt(when)} is outside the restorable "
                                 f"window of {source_db_identifier}: {fmt(window[0])} to {fmt(window[1])}.")
        return orig_pitr(self, source_db_identifier, target_db_identifier, overrides)

    RDSBackend.restore_db_instance_to_point_in_time = restore_db_instance_to_point_in_time

    def backup_windows(b: Backing) -> None:
        """Each backup window (a day, scaled by the latency profile): a base backup of every
        instance that keeps backups, and those older than its retention period pruned."""
        from moto.rds.models import rds_backends

        from awslab.local import latency

        window = latency.current().seconds("rds.backup-window")
        if not window:
            return   # instant: no time passes between windows
        for _, region, db in _live(rds_backends, "databases"):
            key = _db_key(db.account_id, region, db.db_instance_identifier)
            entry = engines.get(key) or {}
            if not entry.get("backups") or not engines.alive(key) or b.busy(key):
                continue
            bases = engines.base_backups(key)
            if not bases or time.time() - bases[-1]["finished"] >= window:
                b.submit(f"backup:{key}", functools.partial(engines.base_backup, key), after=key)
            retention = window * (db.backup_retention_period or 0)
            b.submit(f"prune:{key}", functools.partial(engines.prune_backups, key, time.time() - retention))

    _periodic.append(backup_windows)

    def latest_restorable_time(self):
        window = restore_window(self.account_id, self.region, self.db_instance_identifier)
        if window is None:
            return orig_latest.fget(self)
        from datetime import datetime, timezone

        return datetime.fromtimestamp(window[1], timezone.utc).replace(tzinfo=None)

    orig_latest = DBInstance.latest_restorable_time
    DBInstance.latest_restorable_time = property(latest_restorable_time)

    def automated_restore_window(self):
        """DescribeDBInstanceAutomatedBackups' RestoreWindow: what the archive and base backups cover."""
        from datetime import datetime, timezone

        window = restore_window(self.backend.account_id, self.backend.region_name, self.db_instance_identifier)
        if window is None:
            return None
        at = lambda t: datetime.fromtimestamp(t, timezone.utc).replace(tzinfo=None)  # noqa: E731
        return {"EarliestTime": at(window[0]), "LatestTime": at(window[1])}

    DBInstanceAutomatedBackup.restore_window = property(automated_restore_window)

    _revivers.append(revive)
    after("create_db_instance", created)
    after("create_db_instance_read_replica", replica_created)
    after("restore_db_instance_from_db_snapshot", restored)
    after("restore_db_instance_to_point_in_time", restored_to_time)
    after("delete_db_instance", deleted)
    after("reboot_db_instance", rebooted)
    after("promote_read_replica", promoted)
    after("modify_db_instance", modified)
    after("create_db_snapshot", snapshot_created)
    after("copy_db_snapshot", snapshot_copied)
    after("delete_db_snapshot", snapshot_deleted)


# --- ElastiCache -------------------------------------------------------------------------------

def _group_endpoints(group) -> tuple[str | None, str | None]:
    ng = (group.node_groups or [{}])[0]
    primary, reader = ng.get("primary_endpoint_address"), ng.get("reader_endpoint_address")
    return (f"{primary}:{group.port}" if primary else None, f"{reader}:{group.port}" if reader else None)


def _member_endpoint(group, member: str) -> str:
    """A member's own read endpoint, as DescribeReplicationGroups lists it: <member>.<group domain>."""
    primary = (group.node_groups or [{}])[0].get("primary_endpoint_address") or ""
    return f"{member}.{primary.split('.', 1)[-1]}:{group.port}"


def _secure_group(b: Backing, group) -> None:
    """In-transit encryption: every endpoint of the group speaks TLS (TransitEncryptionMode
    ``preferred`` takes plain clients too, ``required``, the default, does not)."""
    primary_ep, reader_ep = _group_endpoints(group)
    endpoints = [e for e in (primary_ep, reader_ep) if e]
    endpoints += [_member_endpoint(group, m) for m in (getattr(group, "_awslab_members", None) or group.member_clusters or [])]
    mode = None
    if getattr(group, "transit_encryption_enabled", False):
        mode = tls.OPTIONAL if getattr(group, "transit_encryption_mode", None) == "preferred" else tls.REQUIRED
    b.secure("redis", mode, *endpoints, owner=_group_owner(group),
             open_auth=None if getattr(group, "auth_token_enabled", False) else getattr(group, "_awslab_auth_token", None))


def _group_owner(group) -> Owner:
    _, _, _, region, account, _ = group.arn.split(":", 5)
    return ("cache", account, region, group.replication_group_id)


def _redis_command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _cluster_endpoint(cluster) -> str | None:
    """A cache cluster of its own's node endpoint (None: a group's member, or not Redis)."""
    node = getattr(cluster, "_awslab_node_endpoint", None)
    if node is None or getattr(cluster, "replication_group_id", None):
        return None
    return f"{node['address']}:{node['port']}"


def _secure_cluster(b: Backing, cluster, account: str, region: str) -> None:
    mode = tls.REQUIRED if getattr(cluster, "transit_encryption_enabled", False) else None
    b.secure("redis", mode, _cluster_endpoint(cluster), owner=("cache", account, region, cluster.cache_cluster_id),
             open_auth=None if getattr(cluster, "auth_token_enabled", False) else cluster._awslab_auth_token)


# A node type's memory (MiB, as AWS lists it) divided by this: one machine runs a class's caches.
CACHE_NODE_MIB = {"cache.t2.micro": 555, "cache.t3.micro": 512, "cache.t4g.micro": 512, "cache.t3.small": 1403,
                  "cache.t4g.small": 1403, "cache.t3.medium": 3164, "cache.t4g.medium": 3164, "cache.m5.large": 6533,
                  "cache.m6g.large": 6533, "cache.m7g.large": 6533, "cache.r6g.large": 13312, "cache.r7g.large": 13312}
CACHE_MEMORY_SCALE = 64


def _cache_settings(backend, resource) -> dict[str, str]:
    """What the servers of a replication group or cache cluster run with: its parameter group's
    values, and ``maxmemory`` from its node type (less ``reserved-memory-percent``), scaled down."""
    from awslab.local.patches import cache_parameters

    params = cache_parameters.effective(backend, getattr(resource, "cache_parameter_group_name", None))
    settings = {p: params[p] for p in cache_parameters.APPLIED}
    mib = CACHE_NODE_MIB.get(getattr(resource, "cache_node_type", None) or "", 512)
    usable = mib * (100 - int(params["reserved-memory-percent"])) / 100 / CACHE_MEMORY_SCALE
    settings["maxmemory"] = str(int(usable * 1024 * 1024))
    return settings


def _configure_cache(b: Backing, backend, resource) -> None:
    """Its servers set as its parameter group says (after whatever engine work is queued for them)."""
    if getattr(resource, "replication_group_id", None) and hasattr(resource, "member_clusters"):
        members = getattr(resource, "_awslab_members", None) or list(resource.member_clusters or [])
    elif _cluster_endpoint(resource) is not None:
        members = [resource.cache_cluster_id]
    else:
        return
    settings = _cache_settings(backend, resource)
    for member in members:
        key = _member_key(backend.account_id, backend.region_name, member)
        # A parameter change leaves the cache available (immediate parameters): the label is the
        # queued work's, if any (a creation goes on reading `creating`).
        b.submit(key, functools.partial(_set_redis, b, key, settings),
                 label=b.label(key) if b.busy(key) else "available")


def _set_redis(b: Backing, key: str, settings: dict[str, str]) -> None:
    if b.engines.alive(key):
        b.engines.configure_redis(key, settings)


def _member_key(account: str, region: str, member: str) -> str:
    return f"cache.{_place(account, region)}.{member}"


def _elasticache() -> None:
    from moto.elasticache.models import ElastiCacheBackend

    b = _backing
    assert b is not None

    def created(self, group, *a, **kw) -> None:
        token = kw.get("auth_token") or getattr(group, "auth_token", None) or ""
        if not token:
            # Without AUTH the engine would be open to anything on this machine; awslab always sets one.
            token = secrets.token_urlsafe(24)
        group._awslab_auth_token = token   # moto keeps only "enabled"; a revived group's engines need it
        members = list(group.member_clusters or [])
        if not members:
            return
        primary_ep, reader_ep = _group_endpoints(group)
        first = _member_key(self.account_id, self.region_name, members[0])
        group._awslab_engine_key = first
        group._awslab_members = members
        _secure_group(b, group)
        snapshot = kw.get("snapshot_name")
        if snapshot:
            snap = _snap_key("elasticache", self.account_id, self.region_name, snapshot)
            start = functools.partial(b.engines.restore_redis, first, snapshot=snap, password=token)
        else:
            start = functools.partial(b.engines.start_redis, first, password=token)
        b.start_engine(primary_ep, first, start, aliases=[_member_endpoint(group, members[0])],
                       after=f"snapshot:{_snap_key('elasticache', self.account_id, self.region_name, snapshot)}" if snapshot else None)
        for i, member in enumerate(members[1:]):
            key = _member_key(self.account_id, self.region_name, member)
            endpoints = ([reader_ep] if i == 0 and reader_ep else []) + [_member_endpoint(group, member)]
            b.start_engine(endpoints[0], key, functools.partial(b.engines.start_redis_replica, key, primary=first,
                                                                password=token),
                           after=first, role="replica", aliases=endpoints[1:])
        _configure_cache(b, self, group)

    def cluster_created(self, cluster, *a, **kw) -> None:
        """A cache cluster of its own: one Redis behind its node's endpoint (AUTH as asked; without
        one, the relay authenticates for the client)."""
        endpoint = _cluster_endpoint(cluster)
        if endpoint is None:
            return
        key = _member_key(self.account_id, self.region_name, cluster.cache_cluster_id)
        password = kw.get("auth_token") or getattr(cluster, "_awslab_auth_token", None) or secrets.token_urlsafe(24)
        cluster._awslab_auth_token, cluster._awslab_engine_key = password, key
        _secure_cluster(b, cluster, self.account_id, self.region_name)
        snapshot = kw.get("snapshot_name") or getattr(cluster, "snapshot_name", None)
        if snapshot:
            snap = _snap_key("elasticache", self.account_id, self.region_name, snapshot)
            start = functools.partial(b.engines.restore_redis, key, snapshot=snap, password=password)
        else:
            start = functools.partial(b.engines.start_redis, key, password=password)
        b.start_engine(endpoint, key, start, after=f"snapshot:{snap}" if snapshot else None)
        _configure_cache(b, self, cluster)

    def cluster_deleted(self, cluster, cache_cluster_id, *a, **kw) -> None:
        endpoint = _cluster_endpoint(cluster)
        if endpoint is not None:
            b.stop_engine(_member_key(self.account_id, self.region_name, cache_cluster_id), endpoint)

    def deleted(self, group, replication_group_id, *a, **kw) -> None:
        members = getattr(group, "_awslab_members", None) or list(group.member_clusters or [])
        primary_ep, reader_ep = _group_endpoints(group)
        for member in reversed(members):
            key = _member_key(self.account_id, self.region_name, member)
            b.stop_engine(key, *[e for e in (primary_ep, reader_ep, _member_endpoint(group, member)) if e])

    def snapshot_created(self, snap, snapshot_name, replication_group_id=None, cache_cluster_id=None, *a, **kw) -> None:
        group = self.replication_groups.get(replication_group_id) if replication_group_id else None
        key = getattr(group, "_awslab_engine_key", None)
        if key is None and cache_cluster_id:
            key = _member_key(self.account_id, self.region_name, cache_cluster_id)
        if key is None:
            return
        name = _snap_key("elasticache", self.account_id, self.region_name, snapshot_name)
        snap._awslab_engine_key = key
        b.submit(key, lambda: b.engines.snapshot(key, name) if b.engines.get(key) else None, alias=f"snapshot:{name}")

    def snapshot_deleted(self, snap, snapshot_name, *a, **kw) -> None:
        b.engines.delete_snapshot(_snap_key("elasticache", self.account_id, self.region_name, snapshot_name))

    def failed_over(self, result, replication_group_id, node_group_id, *a, **kw) -> None:
        group = self.replication_groups.get(replication_group_id)
        members = getattr(group, "_awslab_members", None)
        if group is None or not members or len(members) < 2:
            return
        old, new = _member_key(self.account_id, self.region_name, members[0]), _member_key(self.account_id, self.region_name, members[1])
        primary_ep, reader_ep = _group_endpoints(group)

        def swap() -> None:
            b.engines.promote_redis(new)
            b.engines.follow_redis(old, primary=new)
            # The primary endpoint follows the new primary, the reader the old one; clients of both drop.
            for endpoint, key, role in ((primary_ep, new, "primary"), (reader_ep, old, "replica")):
                if endpoint and endpoint in b.roles:
                    b.forwarder.drop(endpoint)
                    b.publish_engine(endpoint, key, role)

        group._awslab_members = [members[1], members[0], *members[2:]]
        group._awslab_engine_key = new
        b.submit(new, swap, after=old, label="modifying")

    def revive(b: Backing) -> set[str]:
        from moto.elasticache.models import elasticache_backends

        claimed = set()
        for backend, region, cluster in _live(elasticache_backends, "cache_clusters"):
            endpoint = _cluster_endpoint(cluster)
            if endpoint is None or getattr(cluster, "_awslab_gone_at", None) is not None:
                continue
            key = _member_key(backend.account_id, region, cluster.cache_cluster_id)
            claimed.add(key)
            _secure_cluster(b, cluster, backend.account_id, region)
            b.revive(key, [endpoint], functools.partial(cluster_created, backend, cluster))
            _configure_cache(b, backend, cluster)
        for backend, region, group in _live(elasticache_backends, "replication_groups"):
            members = getattr(group, "_awslab_members", None) or list(group.member_clusters or [])
            if not members:
                continue
            keys = [_member_key(backend.account_id, region, m) for m in members]
            claimed |= set(keys)
            _secure_group(b, group)
            if b.reconciling and (b.busy(keys[0]) or b.engines.alive(keys[0])):
                pass   # the primary runs: only its replicas may need bringing back (below)
            elif not b.engines.resumable(keys[0]) and (b.engines.get(keys[0]) or {}).get("status") != "available":
                for key in keys:   # no primary to resume: the group's engines are made again
                    b.engines.stop(key)
                created(backend, group, auth_token=getattr(group, "_awslab_auth_token", None))
                continue
            primary_ep, reader_ep = _group_endpoints(group)
            for i, (member, key) in enumerate(zip(members, keys)):
                own = _member_endpoint(group, member)
                endpoints = [e for e in ([primary_ep] if i == 0 else [reader_ep] if i == 1 else []) if e] + [own]
                fresh = functools.partial(b.start_engine, endpoints[0], key, functools.partial(
                    b.engines.start_redis_replica, key, primary=keys[0], password=getattr(group, "_awslab_auth_token", "")),
                    after=keys[0], role="replica", aliases=endpoints[1:])
                b.revive(key, endpoints, fresh, role="primary" if i == 0 else "replica",
                         after=None if i == 0 else keys[0])
            _configure_cache(b, backend, group)
        return claimed

    from awslab.local.patches import cache_parameters

    cache_parameters.on_changed.append(lambda backend, resource: _configure_cache(b, backend, resource))
    _revivers.append(revive)
    for method, hook in (("create_replication_group", created), ("delete_replication_group", deleted),
                         ("create_cache_cluster", cluster_created), ("delete_cache_cluster", cluster_deleted),
                         ("create_snapshot", snapshot_created), ("delete_snapshot", snapshot_deleted),
                         ("test_failover", failed_over)):
        _after(ElastiCacheBackend, method, hook)


def _after(cls, method: str, hook: Callable[..., None], inside: threading.local | None = None) -> None:
    """Wrap ``cls.method`` so that ``hook(backend, result, *args)`` runs after it. A hook's failure is
    logged, never raised: the control plane must answer even if an engine cannot start. With
    ``inside``, calls made from within another wrapped call run no hook of their own."""
    orig = getattr(cls, method, None)
    if orig is None:
        return

    @functools.wraps(orig)
    def wrapper(self, *a, **kw):
        outer = getattr(inside, "method", None) if inside is not None else None
        if inside is not None:
            inside.method = outer or method
        try:
            result = orig(self, *a, **kw)
        finally:
            if inside is not None:
                inside.method = outer
        if outer is not None:
            return result
        try:
            hook(self, result, *a, **kw)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("engine hook %s failed", method)
        return result

    setattr(cls, method, wrapper)


def describe_endpoints(local_dir: Path, via: str | None = None) -> dict[str, dict]:
    """The endpoint map (as instance ``via`` sees it, when given), each PostgreSQL read replica
    with its lag now (RDS's ReplicaLag)."""
    if _backing is None:
        return read_endpoints(local_dir)
    endpoints = _backing.view(via or OUTSIDE)
    for info in endpoints.values():
        if info.get("role") == "replica" and info.get("engine") == "postgres" and info.get("status") == "available":
            try:
                info["replica_lag_s"] = _backing.engines.replica_lag(info["key"])
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
