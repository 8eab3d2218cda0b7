"""RDS's hooks for the MySQL family (engines ``mysql`` and ``mariadb``): each DB instance backed by
a real MariaDB server (``engines/mariadb_instances.py``) when this machine has one (MySQL-compatible
MariaDB 10.11 stands in for MySQL 8.0, said wherever it shows), else the control plane only with
that reason in the endpoint map. The primary, its Multi-AZ standby (semi-synchronous), read
replicas, reboots and forced failovers, promotion, Multi-AZ turned on and off,
``require_secure_transport`` from the instance's parameter group, snapshots, restores from a
snapshot or to a point in time, deletes (a final snapshot; replicas promoted), and a restarted
server's instances given their engines back. ``rds.py`` leaves these engines to this module."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable

from awslab.local import latency
from awslab.local.backing import hooks
from awslab.local.backing.keys import db_key, snap_key
from awslab.local.engines import EngineUnavailable
from awslab.local.engines import mariadb
from awslab.local.side import note

log = logging.getLogger("awslab.local.backing")
FAMILY = ("mysql", "mariadb")
ENGINE = "mariadb"


def handles(db) -> bool:
    """Whether ``db``'s engine is this module's (rds.py leaves it alone)."""
    return getattr(db, "engine", None) in FAMILY and not hooks.in_cluster(db)



def _endpoint(db) -> str:
    return f"{db.address}:{db.port}"


def _owner(db) -> tuple:
    return ("rds", db.account_id, db.region, db.db_instance_identifier)


def _secret_of(db) -> dict:
    from awslab.local.backing.rds import secret_of

    return secret_of(db)


def _backups_on(db) -> bool:
    return bool(getattr(db, "backup_retention_period", 0))


def require_tls(db) -> bool:
    """RDS's ``require_secure_transport`` as the instance's parameter group sets it (the default
    groups of MySQL 8.0 and MariaDB leave it off: TLS offered, plain taken too)."""
    group = getattr(db, "db_parameter_group_name", None) or ""
    if not group or group.startswith("default."):
        return False
    from moto.rds.models import rds_backends

    try:
        params = rds_backends[db.account_id][db.region].db_parameter_groups[group].parameters
        value = (params.get("require_secure_transport") or {}).get("ParameterValue")
    except (KeyError, AttributeError):
        return False
    return str(value).upper() in ("1", "ON", "TRUE")


def install() -> None:
    """Hook the MySQL family's engines to moto's RDS backend (after ``rds.install``)."""
    from moto.rds.models import RDSBackend

    b = hooks.current
    assert b is not None
    engines = b.engines
    inside = threading.local()
    hooks.elsewhere.update(FAMILY)

    def after(method: str, hook: Callable[..., None]) -> None:
        hooks.after(RDSBackend, method, lambda self, result, *a, **kw: hook(self, result, *a, **kw)
                    if handles(result) else None, inside)

    def publish(db, key: str, role: str, **info) -> None:
        """The endpoint's entry: TLS is the server's own (the relay copies bytes), checked by the home's CA."""
        entry = engines.get(key) or {}
        extra = {"tls": "required" if require_tls(db) else "optional", "ca": str(b.authority.ca_path),
                 "stands_in": mariadb.stand_in(db.engine, db.engine_version)}
        if info.get("status", "available") == "available":
            info = {"status": "available", "engine": ENGINE, "host": entry.get("host"), "port": entry.get("port"),
                    "pid": entry.get("pid"), **info}
        b.publish(_endpoint(db), key=key, role=role, **extra, **info)

    def unavailable(db, why: str) -> None:
        b.publish(_endpoint(db), key=db_key(db.account_id, db.region, db.db_instance_identifier), status="unavailable",
                  reason=why)

    def no_server() -> str | None:
        if mariadb.available():
            return None
        try:
            mariadb.mariadbd_path()
        except EngineUnavailable as exc:
            return f"control plane only: {exc}"
        return "control plane only: mariadbd does not say its version"

    def start(db, work: Callable[[], dict], role: str = "primary", after_key: str | None = None) -> None:
        """The instance's engine made in the background (its standby too when Multi-AZ), the
        endpoint published once it takes connections."""
        why = no_server()
        if why:
            unavailable(db, why)
            return
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        note(db, engine_key=key)
        b.secure("mariadb", None, _endpoint(db), owner=_owner(db))
        b.authority.ensure()
        publish(db, key, role, status="starting")

        def job() -> dict:
            try:
                entry = work()
                if db.multi_az and role == "primary":
                    engines.start_mariadb_standby(key)
            except Exception as exc:
                publish(db, key, role, status="failed", reason=str(exc))
                raise
            publish(db, key, role)
            return entry

        b.submit(key, job, after=after_key)

    def created(self, db, *a, **kw) -> None:
        secret = _secret_of(db)
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        start(db, lambda: _with_backups(key, engines.start_mariadb(
            key, user=secret["username"], password=secret["password"], dbname=db.db_name or "",
            engine_version=db.engine_version, require_tls=require_tls(db), tls_source=b.authority.folder), db))

    def _with_backups(key: str, entry: dict, db) -> dict:
        return engines.registry.update(key, backups=_backups_on(db))

    def replica_created(self, db, *a, **kw) -> None:
        source = (db.source_db_instance_identifier or "").split(":")[-1]
        src_key, key = db_key(db.account_id, db.region, source), db_key(db.account_id, db.region, db.db_instance_identifier)
        start(db, lambda: engines.start_mariadb_replica(key, primary=src_key), role="replica", after_key=src_key)

    def restored(self, db, *a, **kw) -> None:
        snap = snap_key("rds", db.account_id, db.region, kw.get("from_snapshot_id") or (a[0] if a else ""))
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        password = _secret_of(db).get("password") or None
        start(db, lambda: engines.restore_mariadb(key, snapshot=snap, password=password, require_tls=require_tls(db),
                                                  tls_source=b.authority.folder, backups=_backups_on(db)),
              after_key=f"snapshot:{snap}")

    def restored_to_time(self, db, *a, **kw) -> None:
        from awslab.local.backing.rds import epoch as _epoch

        source = kw.get("source_db_identifier") or (a[0] if a else "")
        overrides = a[2] if len(a) > 2 else kw.get("overrides") or {}
        when = None if overrides.get("use_latest_restorable_time") else _epoch(overrides.get("restore_time"))
        src_key, key = db_key(db.account_id, db.region, source), db_key(db.account_id, db.region, db.db_instance_identifier)
        password = _secret_of(db).get("password") or None
        start(db, lambda: engines.restore_mariadb_to_time(key, source=src_key, when=when, password=password,
                                                          require_tls=require_tls(db), tls_source=b.authority.folder,
                                                          backups=_backups_on(db)), after_key=src_key)

    def deleted(self, db, db_instance_identifier, final_db_snapshot_identifier=None, skip_final_snapshot=False,
                *a, **kw) -> None:
        # moto's DeleteDBInstance calls its backend with keywords: the parameter keeps moto's name.
        key = db_key(db.account_id, db.region, db_instance_identifier)
        for follower in engines.followers(key):   # AWS promotes a deleted source's read replicas
            if follower != engines.standby_key(key):
                b.submit(follower, functools.partial(engines.promote_mariadb, follower), label="modifying")
        if final_db_snapshot_identifier and not skip_final_snapshot:
            snap = snap_key("rds", db.account_id, db.region, final_db_snapshot_identifier)
            b.submit(key, lambda: engines.snapshot(key, snap) if engines.get(key) else None, alias=f"snapshot:{snap}",
                     label="deleting")
        b.submit(key, lambda: engines.stop(engines.standby_key(key)), label="deleting")
        b.stop_engine(key, _endpoint(db))

    def serve_again(db, key: str) -> None:
        """After a restart or a failover: open connections dropped, the endpoint reaches the
        engine where it listens now, its replicas (and standby) follow it there."""
        role = "replica" if (engines.get(key) or {}).get("role") == "replica" else "primary"
        for e in b.endpoints_of(key) or [_endpoint(db)]:
            b.forwarder.drop(e)
        publish(db, key, role)
        for follower in engines.followers(key):
            b.submit(follower, functools.partial(engines.repoint, follower), after=key)

    def rebooted(self, db, ident, force_failover=False, *a, **kw) -> None:
        """A reboot restarts the server; with failover the primary crashes, the standby applies all
        it received and takes the endpoint, and a new standby is built from the new primary."""
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if not engines.get(key):
            return
        sk = engines.standby_key(key)
        failover = force_failover and engines.alive(sk)

        def down_for_the_reboot() -> None:
            latency.wait_out(db)

        def work() -> None:
            started = time.monotonic()
            if failover:
                engines.failover_mariadb(key, pause=down_for_the_reboot)
            else:
                engines.restart(key, pause=down_for_the_reboot)
            serve_again(db, key)
            log.info("%s %s: %r serves again after %.2f s", "failover" if failover else "reboot", _endpoint(db), key,
                     time.monotonic() - started)
            if failover:
                b.submit(sk, functools.partial(engines.rebuild_mariadb_standby, key), after=key)
            elif engines.get(sk):
                b.submit(sk, lambda: engines.make_mariadb_synchronous(key), after=key)

        b.submit(key, work, label="rebooting")

    def maintained(backend, db, action: str, done: Callable[[], None]) -> None:
        """An OS patch applied to a MySQL-family instance, as RDS applies it: Multi-AZ, a failover to
        the standby (its downtime), the old primary rebuilt as the new standby; Single-AZ, the
        server down for the patch's reboot (rds.os-update, the latency profile's)."""
        if not handles(db):
            return
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if not engines.get(key):
            done()
            return
        from awslab.local.patches import maintenance

        sk = engines.standby_key(key)
        multi_az = engines.alive(sk)

        def down_for(transition: str) -> Callable[[], None]:
            return maintenance.pause(db, action, transition)

        def work() -> None:
            try:
                if multi_az:
                    engines.failover_mariadb(key, pause=down_for("rds.failover"))
                    serve_again(db, key)
                    engines.rebuild_mariadb_standby(key)
                else:
                    engines.restart(key, pause=down_for("rds.os-update"))
                    serve_again(db, key)
                log.info("maintenance %s %s done (%s)", action, _endpoint(db), "Multi-AZ" if multi_az else "Single-AZ")
            finally:
                done()

        b.submit(key, work, label="maintenance")

    def promoted(self, db, *a, **kw) -> None:
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if (engines.get(key) or {}).get("role") != "replica":
            return

        def work() -> None:
            engines.promote_mariadb(key, backups=_backups_on(db))
            publish(db, key, "primary")

        b.submit(key, work, label="modifying")

    def modified(self, db, ident, *a, **kw) -> None:
        """Multi-AZ turned on adds the standby, off removes it."""
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        entry = engines.get(key)
        if not entry or entry.get("role") != "primary":
            return
        sk = engines.standby_key(key)
        if db.multi_az and not engines.get(sk):
            b.submit(sk, functools.partial(engines.start_mariadb_standby, key), after=key)
        elif not db.multi_az and engines.get(sk):
            b.submit(key, functools.partial(engines.remove_mariadb_standby, key))
        if _backups_on(db) != bool(entry.get("backups")):
            engines.registry.update(key, backups=_backups_on(db), window_start=time.time())

    def parameters_modified(self, group, name, *a, **kw) -> None:
        """require_secure_transport is dynamic: the instances of the group take it at once."""
        for db in list(self.databases.values()):
            if getattr(db, "db_parameter_group_name", None) != name or not handles(db):
                continue
            key = db_key(db.account_id, db.region, db.db_instance_identifier)
            if engines.alive(key):
                b.submit(key, functools.partial(engines.set_mariadb_tls, key, require_tls(db)), label="modifying")
                role = "replica" if db.source_db_instance_identifier else "primary"
                b.submit(key, lambda db=db, key=key, role=role: publish(db, key, role), label="modifying")

    def revive(b_) -> set[str]:
        from moto.rds.models import rds_backends

        claimed = set()
        dbs = sorted(hooks.live(rds_backends, "databases"), key=lambda t: bool(t[2].source_db_instance_identifier))
        for backend, region, db in dbs:   # primaries first: a replica follows its primary's new port
            if not handles(db):
                continue
            key = db_key(db.account_id, region, db.db_instance_identifier)
            claimed.add(key)
            if no_server():
                unavailable(db, no_server() or "")
                continue
            if b.reconciling and (b.busy(key) or engines.alive(key)):
                continue
            note(db, engine_key=key)
            b.secure("mariadb", None, _endpoint(db), owner=_owner(db))
            source = (db.source_db_instance_identifier or "").split(":")[-1]
            role = "replica" if source else "primary"
            if not engines.resumable(key):
                engines.stop(key)
                (replica_created if source else created)(backend, db)
                continue
            sk = engines.standby_key(key)
            if db.multi_az:
                claimed.add(sk)

            def again(db=db, key=key, sk=sk, role=role) -> None:
                engines.resume(key)
                if db.multi_az and engines.resumable(sk):
                    engines.resume(sk)
                    engines.make_mariadb_synchronous(key)
                elif db.multi_az:
                    engines.rebuild_mariadb_standby(key)
                publish(db, key, role)

            b.submit(key, again, after=db_key(db.account_id, region, source) if source else None)
        return claimed

    hooks.revivers.append(revive)
    after("create_db_instance", created)
    after("create_db_instance_read_replica", replica_created)
    after("restore_db_instance_from_db_snapshot", restored)
    after("restore_db_instance_to_point_in_time", restored_to_time)
    after("delete_db_instance", deleted)
    after("reboot_db_instance", rebooted)
    after("promote_read_replica", promoted)
    after("modify_db_instance", modified)
    from awslab.local.patches import maintenance as maintenance_patch

    maintenance_patch.on_apply.append(maintained)
    hooks.after(RDSBackend, "modify_db_parameter_group", parameters_modified, inside)
