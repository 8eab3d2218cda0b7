"""RDS's hooks: each PostgreSQL DB instance's real engine made, replicated, restored (from a
snapshot, or to a point in time from its WAL archive), rebooted or failed over, maintained,
promoted, modified, snapshotted and deleted with it; its backup windows; a restarted server's
instances given their engines back."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from typing import Callable

from awslab.local import latency, tls
from awslab.local.backing import hooks, rds_upgrade
from awslab.local.backing.core import Backing
from awslab.local.backing.keys import db_key, snap_key
from awslab.local.engines import EngineUnavailable, postgres_bindir
from awslab.local.patches import maintenance
from awslab.local.side import note

log = logging.getLogger("awslab.local.backing")



def _db_endpoint(db) -> str:
    return f"{db.address}:{db.port}"


def secret_of(db) -> dict:
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
    """The engine's version when its binaries are at hand: the minor itself where a server of it is
    here (18.6 beside 18.4), else its major; else None (the default ones)."""
    for wanted in (str(version) if version else None, _major(version)):
        try:
            postgres_bindir(wanted)
            return wanted
        except EngineUnavailable:
            continue
    return None


def _with_own_password(db, key: str, entry: dict) -> dict:
    """A restored instance answers to the password of its own secret (the one DescribeDBInstances names)."""
    secret = secret_of(db)
    if secret.get("password"):
        hooks.current.engines.set_postgres_password(key, secret["password"])
    return entry


def _backups_on(db) -> bool:
    return bool(getattr(db, "backup_retention_period", 0))


def epoch(value) -> float | None:
    """A RestoreTime as the API hands it (datetime or ISO-8601 text) in epoch seconds."""
    from datetime import datetime, timezone

    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def restore_window(account: str, region: str, ident: str) -> tuple[float, float] | None:
    """The real restorable window of a DB instance's engine (epoch seconds), when it keeps backups."""
    if hooks.current is None:
        return None
    return hooks.current.engines.restore_window(db_key(account, region, ident))


def install() -> None:
    """Hook the engines to moto's RDS backend (``enable`` calls it first)."""
    from moto.rds.models import DBInstance, DBInstanceAutomatedBackup, RDSBackend

    b = hooks.current
    assert b is not None
    engines = b.engines

    def unsupported(db, why: str) -> None:
        b.publish(_db_endpoint(db), key=db_key(db.account_id, db.region, db.db_instance_identifier), status="unavailable", reason=why)

    inside = threading.local()   # a restore makes its instance through create_db_instance: one engine, not two

    def after(method: str, hook: Callable[..., None]) -> None:
        hooks.after(RDSBackend, method, hook, inside)

    def start_primary(db, start: Callable[[], dict], role: str = "primary", after_key: str | None = None) -> None:
        """Start the instance's engine (and, for Multi-AZ, its synchronous standby, before the
        instance is available, as RDS creates both)."""
        if db.engine in hooks.elsewhere:
            return   # another module's engines (rds_mysql.py: the MySQL family)
        if db.engine != "postgres":
            unsupported(db, f"the local AWS runs real engines for PostgreSQL only, not {db.engine}")
            return
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        note(db, engine_key=key)
        b.secure("postgres", _db_tls(db), _db_endpoint(db), owner=("rds", db.account_id, db.region, db.db_instance_identifier))

        def work() -> dict:
            entry = start()
            if db.multi_az and role == "primary":
                engines.start_standby(key)
            return entry

        b.start_engine(_db_endpoint(db), key, work, after=after_key, role=role)

    def created(self, db, db_kwargs) -> None:
        secret = secret_of(db)
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: engines.start_postgres(key, user=secret["username"], password=secret["password"],
                                                         dbname=db.db_name or "postgres", backups=_backups_on(db),
                                                         major=_pg_major_available(db.engine_version)))

    def replica_created(self, db, db_kwargs) -> None:
        source = db.source_db_instance_identifier or ""
        src_key = db_key(db.account_id, db.region, source.split(":")[-1])
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: engines.start_postgres_replica(key, primary=src_key), role="replica", after_key=src_key)

    def restored(self, db, *a, **kw) -> None:
        snap_id = kw.get("from_snapshot_id") or (a[0] if a else "")
        snap = snap_key("rds", db.account_id, db.region, snap_id)
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: _with_own_password(db, key, engines.restore_postgres(key, snapshot=snap,
                                                                                       backups=_backups_on(db))),
                      after_key=f"snapshot:{snap}")

    def restored_to_time(self, db, *a, **kw) -> None:
        # The source's newest base backup before the time asked, and its WAL archive replayed up to it.
        source = kw.get("source_db_identifier") or (a[0] if a else "")
        overrides = a[2] if len(a) > 2 else kw.get("overrides") or {}
        when = None if overrides.get("use_latest_restorable_time") else epoch(overrides.get("restore_time"))
        src_key = db_key(db.account_id, db.region, source)
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        start_primary(db, lambda: _with_own_password(db, key, engines.restore_postgres_to_time(
            key, source=src_key, when=when, backups=_backups_on(db))), after_key=src_key)

    def deleted(self, db, db_instance_identifier, final_db_snapshot_identifier=None, skip_final_snapshot=False,
                delete_automated_backups=True, *a, **kw) -> None:
        if db.engine in hooks.elsewhere:
            return
        key = db_key(db.account_id, db.region, db_instance_identifier)
        for follower in engines.followers(key):   # AWS promotes a deleted source's read replicas
            if follower != engines.standby_key(key):
                replica = self.databases.get(follower.split(".", 2)[-1])
                b.submit(follower, functools.partial(engines.promote_postgres, follower,
                                                     backups=replica is not None and _backups_on(replica)),
                         label="modifying")
        if final_db_snapshot_identifier and not skip_final_snapshot:
            snap = snap_key("rds", db.account_id, db.region, final_db_snapshot_identifier)
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
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine != "postgres" or not engines.get(key) or hooks.in_cluster(db):
            return
        endpoint = _db_endpoint(db)
        sk = engines.standby_key(key)
        failover = force_failover and engines.alive(sk)

        def down_for_the_reboot() -> None:   # as long as the latency profile says the reboot lasts
            latency.wait_out(db)

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
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine in hooks.elsewhere:
            return   # its own engines' module applies it (rds_mysql.py)
        if db.engine != "postgres" or not engines.get(key) or hooks.in_cluster(db):
            done()
            return
        endpoint = _db_endpoint(db)
        multi_az = engines.alive(engines.standby_key(key))

        def down_for(transition: str) -> Callable[[], None]:   # the latency profile's, none on instant
            return maintenance.pause(db, action, transition)

        def work() -> None:
            started = time.monotonic()
            try:
                if multi_az:
                    log.info("maintenance %s %s: patching the standby first", action, endpoint)
                    engines.restart_standby(key, pause=down_for("rds.os-update"))
                    log.info("maintenance %s %s: failing over to the patched standby", action, endpoint)
                    engines.failover(key, pause=down_for("rds.failover"))
                    serve_again(key, endpoint)
                    log.info("maintenance %s %s: patching the old primary, back as the standby", action, endpoint)
                    engines.rebuild_standby(key)
                else:
                    # Down for the OS patch's reboot (rds.os-update), not a bare restart: on AWS a
                    # Single-AZ patch costs minutes, more than a Multi-AZ failover.
                    log.info("maintenance %s %s: restarting the server (Single-AZ)", action, endpoint)
                    engines.restart(key, pause=down_for("rds.os-update"))
                    serve_again(key, endpoint)
            finally:
                done()
            log.info("maintenance %s %s done in %.2f s", action, endpoint, time.monotonic() - started)

        b.submit(key, work, label="maintenance")

    maintenance.on_apply.append(maintained)
    hooks.periodic.append(lambda b: maintenance.apply_due())   # a window that arrived: applied as `immediate` is

    def promoted(self, db, db_kwargs) -> None:
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        if db.engine != "postgres" or (engines.get(key) or {}).get("role") != "replica":
            return
        endpoint = _db_endpoint(db)

        def work() -> None:
            engines.promote_postgres(key, backups=_backups_on(db))
            b.publish_engine(endpoint, key, "primary")

        b.submit(key, work, label="modifying")

    def modified(self, db, db_instance_identifier, db_kwargs, *a, **kw) -> None:
        """Multi-AZ turned on adds the standby, off removes it; backups on or off start or stop the
        archive; a new engine version upgrades the engines (``rds_upgrade``)."""
        rds_upgrade.upgraded(self, db, serve_again)
        key = db_key(db.account_id, db.region, db.db_instance_identifier)
        entry = engines.get(key)
        if db.engine != "postgres" or not entry or entry.get("role") != "primary" or hooks.in_cluster(db):
            return
        sk = engines.standby_key(key)
        if db.multi_az and not engines.get(sk):
            b.submit(sk, functools.partial(engines.start_standby, key), after=key)
        elif not db.multi_az and engines.get(sk):
            b.submit(key, functools.partial(engines.remove_standby, key))
        if _backups_on(db) != bool(entry.get("backups")):
            b.submit(key, functools.partial(engines.set_backups, key, _backups_on(db)))

    def parameters_modified(self, group, db_parameter_group_name, *a, **kw) -> None:
        """rds.force_ssl is dynamic on RDS: the instances that use the group take it at once, for
        the connections made from then on (open ones keep theirs)."""
        for db in list(self.databases.values()):
            if getattr(db, "db_parameter_group_name", None) != db_parameter_group_name or db.engine != "postgres" \
                    or hooks.in_cluster(db):
                continue
            key = db_key(db.account_id, db.region, db.db_instance_identifier)
            entry, endpoint = engines.get(key), _db_endpoint(db)
            b.secure("postgres", _db_tls(db), endpoint, owner=("rds", db.account_id, db.region, db.db_instance_identifier))
            if entry and entry.get("status") == "available" and b.roles.get(endpoint) == key:
                b.publish_engine(endpoint, key, "replica" if db.source_db_instance_identifier else "primary")

    def snapshot_created(self, snap, db_instance_identifier, db_snapshot_identifier, *a, **kw) -> None:
        key = db_key(self.account_id, self.region_name, db_instance_identifier)
        name = snap_key("rds", self.account_id, self.region_name, db_snapshot_identifier)
        note(snap, engine_key=key)
        b.submit(key, lambda: engines.snapshot(key, name) if engines.get(key) else None, alias=f"snapshot:{name}",
                 label="backing-up")

    def snapshot_copied(self, snap, source_db_snapshot_identifier, target_db_snapshot_identifier, *a, **kw) -> None:
        source = source_db_snapshot_identifier
        region = source.split(":")[3] if source.startswith("arn:") else self.region_name
        src = snap_key("rds", source.split(":")[4] if source.startswith("arn:") else self.account_id, region, source)
        dst = snap_key("rds", self.account_id, self.region_name, target_db_snapshot_identifier)
        b.submit(f"snapshot:{dst}", lambda: engines.copy_snapshot(src, dst)
                 if (engines.snapshots_dir / src).exists() else None, after=f"snapshot:{src}")

    def snapshot_deleted(self, snap, db_snapshot_identifier, *a, **kw) -> None:
        engines.delete_snapshot(snap_key("rds", self.account_id, self.region_name, db_snapshot_identifier))

    def revive(b: Backing) -> set[str]:
        from moto.rds.models import rds_backends

        claimed = set()
        dbs = sorted(hooks.live(rds_backends, "databases"), key=lambda t: bool(t[2].source_db_instance_identifier))
        for backend, region, db in dbs:   # primaries first: a replica follows its primary's new port
            if db.engine in hooks.elsewhere or hooks.in_cluster(db):
                continue   # rds_mysql's reviver; rds_cluster's for a cluster's members
            key = db_key(db.account_id, region, db.db_instance_identifier)
            claimed.add(key)
            source = (db.source_db_instance_identifier or "").split(":")[-1]
            if db.engine != "postgres":
                unsupported(db, f"the local AWS runs real engines for PostgreSQL only, not {db.engine}")
                continue
            note(db, engine_key=key)
            b.secure("postgres", _db_tls(db), _db_endpoint(db), owner=("rds", db.account_id, db.region, db.db_instance_identifier))
            if source:
                b.revive(key, [_db_endpoint(db)], lambda db=db, backend=backend: replica_created(backend, db, None),
                         role="replica", after=db_key(db.account_id, region, source))
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
        when = None if overrides.get("use_latest_restorable_time") else epoch(overrides.get("restore_time"))
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

        window = latency.current().seconds("rds.backup-window")
        if not window:
            return   # instant: no time passes between windows
        for _, region, db in hooks.live(rds_backends, "databases"):
            key = db_key(db.account_id, region, db.db_instance_identifier)
            entry = engines.get(key) or {}
            if not entry.get("backups") or not engines.alive(key) or b.busy(key) or entry.get("role") != "primary":
                continue   # a cluster's readers share its writer's archive: the writer's base backups serve it
            bases = engines.base_backups(key)
            if not bases or time.time() - bases[-1]["finished"] >= window:
                b.submit(f"backup:{key}", functools.partial(engines.base_backup, key), after=key)
            retention = window * (db.backup_retention_period or 0)
            b.submit(f"prune:{key}", functools.partial(engines.prune_backups, key, time.time() - retention))

    hooks.periodic.append(backup_windows)

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

    hooks.revivers.append(revive)
    after("create_db_instance", created)
    after("create_db_instance_read_replica", replica_created)
    after("restore_db_instance_from_db_snapshot", restored)
    after("restore_db_instance_to_point_in_time", restored_to_time)
    after("delete_db_instance", deleted)
    after("reboot_db_instance", rebooted)
    after("promote_read_replica", promoted)
    after("modify_db_instance", modified)
    after("modify_db_parameter_group", parameters_modified)
    after("create_db_snapshot", snapshot_created)
    after("copy_db_snapshot", snapshot_copied)
    after("delete_db_snapshot", snapshot_deleted)
