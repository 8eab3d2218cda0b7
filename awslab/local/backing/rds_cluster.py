"""RDS's hooks for the Multi-AZ DB cluster (its control plane is ``patches/rds_clusters.py``): for
engine postgres, real engines behind its three members, made, failed over, snapshotted, restored
(from a snapshot, or to a point in time from its WAL archive) and deleted with it, and given back
to a restarted server.

Each member DB instance has its own engine (the key is the member's, whatever its role): the
writer, and two readable standbys whose flush acknowledges the writer's commits, either one
(``engines/pg_cluster.py``). The endpoints are RDS's: the cluster endpoint reaches the writer, the
reader endpoint spreads its connections over the standbys (``Backing.spread``: by turns, past one
that is down), and each member's own endpoint reaches its own engine. Who may connect is the VPC's
say as for an instance; the cluster's endpoints are judged as the member behind them (the members
carry the cluster's security groups and subnet group). A mysql cluster, or one on a machine
without PostgreSQL's binaries, stays control plane only, and its endpoints say so."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from datetime import datetime, timezone

from awslab.local import latency, tls
from awslab.local.backing import hooks
from awslab.local.backing.core import Backing
from awslab.local.backing.keys import db_key, place, snap_key
from awslab.local.backing.rds import epoch
from awslab.local.engines import EngineUnavailable, postgres_bindir
from awslab.local.engines.files import remove_tree
from awslab.local.side import note, side
from awslab.spec.deployment import multi_az_cluster

log = logging.getLogger("awslab.local.backing")


def is_multi_az_cluster(cluster) -> bool:
    return multi_az_cluster(cluster.engine, getattr(cluster, "db_cluster_instance_class", None))


def _jobs(cluster) -> str:
    """The queue of the cluster's own work (its endpoints, a failover, a snapshot; not an engine's
    key): the cluster reads as that work's state (``creating``, ``failing-over``) while it runs."""
    return f"rds-cluster.{place(cluster.account_id, cluster.region)}.{cluster.db_cluster_identifier}"


def _key(cluster, member: str) -> str:
    return db_key(cluster.account_id, cluster.region, member)


def _endpoints(cluster) -> tuple[str, str]:
    """The cluster (writer) endpoint and the reader endpoint, as DescribeDBClusters answers them."""
    return f"{cluster.endpoint}:{cluster.port}", f"{cluster.reader_endpoint}:{cluster.port}"


def _member_endpoints(cluster) -> dict[str, str]:
    return dict(side(cluster).endpoints or {})


def _roles(cluster) -> tuple[str, list[str]]:
    """(the writer, the standbys) as the engines have them (the flags moto keeps follow them)."""
    members = list(side(cluster).members or [])
    writer = side(cluster).writer or members[0]
    return writer, [m for m in members if m != writer]


def _secret(cluster) -> dict:
    secret = getattr(cluster, "master_user_secret", None)
    if secret is not None and getattr(cluster, "manage_master_user_password", False):
        return json.loads(secret.secret.secret_string)
    return {"username": cluster.master_username, "password": getattr(cluster, "master_user_password", None) or ""}


def _major(cluster) -> str | None:
    return str(cluster.engine_version).split(".")[0] if cluster.engine_version else None


def _tls(cluster) -> str:
    """RDS's rds.force_ssl default for the family (on from PostgreSQL 15); the DB cluster parameter
    group's own value is not read yet."""
    major = _major(cluster) or ""
    return tls.REQUIRED if major.isdigit() and int(major) >= 15 else tls.OPTIONAL


def _no_engines(cluster) -> str | None:
    """Why the cluster runs no engines here (None: it does)."""
    if cluster.engine != "postgres":
        return (f"the local AWS runs a Multi-AZ DB cluster's engines for PostgreSQL only, not {cluster.engine}: "
                "control plane only")
    try:
        postgres_bindir(_major(cluster))
    except EngineUnavailable:
        try:
            postgres_bindir(None)
        except EngineUnavailable as exc:
            return f"no PostgreSQL binaries on this machine ({exc}): control plane only"
    return None


def _pg_major(cluster) -> str | None:
    try:
        postgres_bindir(_major(cluster))
        return _major(cluster)
    except EngineUnavailable:
        return None


def install() -> None:
    """Hook the cluster's engines to moto's RDS backend (``enable`` calls it after rds.py's)."""
    from moto.rds.models import DBCluster, RDSBackend

    b = hooks.current
    assert b is not None
    engines = b.engines
    inside = threading.local()   # DeleteDBCluster takes its final snapshot through CreateDBClusterSnapshot

    def after(method: str, hook) -> None:
        hooks.after(RDSBackend, method, hook, inside)

    def remember(cluster) -> None:
        """What the engines need of the cluster, kept on it (saved with the state): its members,
        their endpoints, the writer."""
        members = sorted(cluster.members, key=lambda m: m.db_instance_identifier)
        ids = tuple(m.db_instance_identifier for m in members)
        note(cluster, members=ids, endpoints={m.db_instance_identifier: f"{m.address}:{m.port}" for m in members},
             writer=next((m.db_instance_identifier for m in members if m.is_cluster_writer), ids[0]),
             engine_key=_jobs(cluster))
        for m in members:
            note(m, engine_key=_key(cluster, m.db_instance_identifier))

    def unsupported(cluster, why: str) -> None:
        log.info("DB cluster %s: %s", cluster.db_cluster_identifier, why)
        writer, _ = _roles(cluster)
        for e in _endpoints(cluster):
            b.publish(e, key=_key(cluster, writer), status="unavailable", reason=why)
        for member, e in _member_endpoints(cluster).items():
            b.publish(e, key=_key(cluster, member), status="unavailable", reason=why)

    def secure(cluster) -> None:
        writer, standbys = _roles(cluster)
        owner = lambda member: ("rds", cluster.account_id, cluster.region, member)  # noqa: E731
        writer_ep, reader_ep = _endpoints(cluster)
        mode = _tls(cluster)
        for member, e in _member_endpoints(cluster).items():
            b.secure("postgres", mode, e, owner=owner(member))
        b.secure("postgres", mode, writer_ep, owner=owner(writer))
        b.secure("postgres", mode, reader_ep, owner=owner(standbys[0] if standbys else writer))

    def show(endpoint: str, key: str, role: str) -> None:
        """``endpoint`` reaches engine ``key`` when it runs; else it says what its engine's own
        endpoint says (starting, failed, unavailable and why)."""
        if engines.alive(key):
            b.publish_engine(endpoint, key, role)
            return
        entry = engines.get(key) or {}
        said = next((i["reason"] for i in b.read_map().values() if i.get("key") == key and i.get("reason")), None)
        b.publish(endpoint, key=key, role=role, status=entry.get("status") if entry.get("status") in
                  ("starting", "failed") else "unavailable", reason=said or f"its engine {key} is not running")

    def publish(cluster) -> None:
        """Every endpoint reaches its engine as the roles are now: the cluster endpoint the writer,
        the reader endpoint the standbys by turns, each member's endpoint its own engine."""
        if side(cluster).deleted:
            return   # deleted while this work was queued: its endpoints are gone for good
        writer, standbys = _roles(cluster)
        writer_ep, reader_ep = _endpoints(cluster)
        secure(cluster)
        keys = [_key(cluster, s) for s in standbys]
        show(writer_ep, _key(cluster, writer), "primary")
        b.spread[reader_ep] = keys
        show(reader_ep, next((k for k in keys if engines.alive(k)), keys[0]), "replica")
        for member, e in _member_endpoints(cluster).items():
            show(e, _key(cluster, member), "primary" if member == writer else "replica")

    def start(cluster, snapshot: str | None = None, to_time: tuple[str, float | None] | None = None) -> None:
        """The writer (new, restored from the engine snapshot ``snapshot``, or ``to_time``: a source
        writer's backups replayed to a time; a restore with the cluster's own password), then its
        two standbys (at once), then the endpoints: the cluster reads ``creating`` until all three
        serve. With backups the writer archives its WAL, into an archive its standbys share (the
        one promoted by a failover goes on with it)."""
        remember(cluster)
        note(cluster, snapshot=snapshot, to_time=to_time)   # made again so if the server dies first
        why = _no_engines(cluster)
        if why:
            unsupported(cluster, why)
            return
        secure(cluster)
        writer, standbys = _roles(cluster)
        wk, sks = _key(cluster, writer), [_key(cluster, s) for s in standbys]
        endpoints = _member_endpoints(cluster)
        for e in _endpoints(cluster):
            b.publish(e, key=wk, status="starting")
        secret, backups = _secret(cluster), bool(getattr(cluster, "backup_retention_period", 0))
        if snapshot is None and to_time is None:
            b.start_engine(endpoints[writer], wk, functools.partial(
                engines.start_postgres, wk, user=secret["username"], password=secret["password"],
                dbname=cluster.database_name or "postgres", major=_pg_major(cluster), backups=backups))
        else:
            def restore() -> dict:
                if to_time is not None:
                    entry = engines.restore_postgres_to_time(wk, source=to_time[0], when=to_time[1], backups=backups)
                else:
                    entry = engines.restore_postgres(wk, snapshot=snapshot, backups=backups)
                if secret.get("password"):
                    engines.set_postgres_password(wk, secret["password"])
                return entry

            b.start_engine(endpoints[writer], wk, restore, after=to_time[0] if to_time else f"snapshot:{snapshot}")
        for s, sk in zip(standbys, sks):
            b.start_engine(endpoints[s], sk, functools.partial(engines.start_cluster_standby, sk, writer=wk, standbys=sks),
                           after=wk, role="replica")
        b.submit(_jobs(cluster), functools.partial(publish, cluster), after=[wk, *sks])

    def created(self, cluster, *a, **kw) -> None:
        if is_multi_az_cluster(cluster):
            start(cluster)

    def restored(self, cluster, from_snapshot_id, *a, **kw) -> None:
        """RestoreDBClusterFromSnapshot: a new cluster whose writer starts on the snapshot's data."""
        if is_multi_az_cluster(cluster):
            start(cluster, snapshot=snap_key("rds", self.account_id, self.region_name, from_snapshot_id))

    def restored_to_time(self, cluster, db_cluster_identifier, source_db_cluster_identifier, restore_type="full-copy",
                         restore_to_time=None, use_latest_restorable_time=False, *a, **kw) -> None:
        """RestoreDBClusterToPointInTime: a new cluster whose writer is the source writer's newest
        base backup before the time, its archive replayed up to the time (across the source's
        failovers: the archive is the cluster's, not one member's)."""
        source = self.clusters.get(source_db_cluster_identifier)
        if not is_multi_az_cluster(cluster) or source is None or not side(source).members:
            return
        when = None if use_latest_restorable_time else epoch(restore_to_time)
        start(cluster, to_time=(_key(source, _roles(source)[0]), when))

    def failed_over(self, cluster, db_cluster_identifier, target_db_instance_identifier=None, *a, **kw) -> None:
        """The writer crashes (here, in the request: what it acknowledged is then fixed) and the
        standby that received the most WAL is promoted; or, with a member asked for, the writer stops
        as in a switchover (every acknowledged commit flushed there first) and it is promoted. The writer endpoint
        reaches it, the other standby follows it, and the old writer is made anew as a standby."""
        if not is_multi_az_cluster(cluster) or not side(cluster).members or _no_engines(cluster):
            return
        old, standbys = _roles(cluster)
        wk = _key(cluster, old)
        if not engines.alive(wk):
            return
        writer_ep, reader_ep = _endpoints(cluster)
        asked = target_db_instance_identifier if target_db_instance_identifier in standbys else None
        if asked:   # a switchover to that member: it must hold all that was acknowledged
            engines.stop_writer(wk)
        else:       # the most caught-up standby holds it: a crash loses nothing acknowledged
            engines.crash_writer(wk)
        for e in (writer_ep, reader_ep, _member_endpoints(cluster).get(old)):
            if e:
                b.forwarder.drop(e)
        best = engines.most_caught_up([_key(cluster, s) for s in standbys])
        new = asked or next((s for s in standbys if _key(cluster, s) == best), None) or \
            next((m.db_instance_identifier for m in cluster.members if m.is_cluster_writer), standbys[0])
        for m in cluster.members:   # DescribeDBClusters' IsClusterWriter: the one the engines promote
            m.is_cluster_writer = m.db_instance_identifier == new
        note(cluster, writer=new)
        nk, others = _key(cluster, new), [_key(cluster, s) for s in standbys if s != new]
        quorum = [*others, wk]
        log.info("DB cluster %s: failover from %s to %s%s", cluster.db_cluster_identifier, old, new,
                 " (asked for)" if asked else " (the most caught-up standby)")

        def promote() -> None:
            latency.wait_out(cluster)   # no writer for as long as the profile says a failover takes (rds.cluster.failover)
            promoted = engines.promote_cluster_standby(nk, others=others)
            publish(cluster)
            for other in others:
                if other in promoted["ahead"]:   # it had WAL the new writer never got: made anew
                    engines.rebuild_cluster_standby(other, writer=nk, standbys=quorum)
                else:
                    engines.make_quorum(nk, quorum, streaming=other)
            publish(cluster)

        def rebuild_old_writer() -> None:
            engines.rebuild_cluster_standby(wk, writer=nk, standbys=quorum)
            publish(cluster)

        b.submit(_jobs(cluster), promote, after=[nk, *others], label="failing-over")
        b.submit(wk, rebuild_old_writer, after=_jobs(cluster), label="rebooting")

    def snapshot_created(self, snap, db_cluster_identifier, db_cluster_snapshot_identifier, snapshot_type="manual",
                         *a, **kw) -> None:
        cluster = self.clusters.get(db_cluster_identifier)
        if cluster is None or snapshot_type != "manual" or not side(cluster).members:
            return
        take_snapshot(cluster, db_cluster_snapshot_identifier, "backing-up")

    def take_snapshot(cluster, name: str, label: str) -> None:
        """A copy of the writer's data as an engine snapshot (as a DB snapshot's is), taken once the
        cluster's queued work (a failover) is done, from whichever member writes then."""
        snap = snap_key("rds", cluster.account_id, cluster.region, name)

        def work() -> None:
            wk = _key(cluster, _roles(cluster)[0])
            if engines.alive(wk):
                engines.snapshot(wk, snap)

        b.submit(_jobs(cluster), work, after=[_key(cluster, m) for m in side(cluster).members],
                 alias=f"snapshot:{snap}", label=label)

    def snapshot_deleted(self, snap, db_snapshot_identifier, *a, **kw) -> None:
        engines.delete_snapshot(snap_key("rds", self.account_id, self.region_name, db_snapshot_identifier))

    def deleted(self, cluster, cluster_identifier, snapshot_name=None, *a, **kw) -> None:
        """The members' engines stop with the cluster, after its final snapshot (kept as a DB
        snapshot's data is)."""
        if not is_multi_az_cluster(cluster) or not side(cluster).members:
            return
        note(cluster, deleted=True)
        if snapshot_name and not _no_engines(cluster):
            take_snapshot(cluster, snapshot_name, "deleting")
        b.unpublish(*_endpoints(cluster), *_member_endpoints(cluster).values())
        keys = [_key(cluster, m) for m in side(cluster).members]
        archive = next((e["backups"] for k in keys if (e := engines.get(k) or {}).get("backups")), None)
        for key in keys:
            b.submit(key, functools.partial(engines.stop, key), after=_jobs(cluster), label="deleting")
        if archive:   # its automated backups go with it (the final snapshot is what is kept)
            b.submit(_jobs(cluster), functools.partial(remove_tree, archive), after=keys, label="deleting")

    def revive(b: Backing) -> set[str]:
        """A restarted server's clusters: the writer resumed on its data, then its standbys (they
        follow its new port), then the quorum and the endpoints; a cluster whose writer was never
        made is made again as when it was created."""
        from moto.rds.models import rds_backends

        claimed: set[str] = set()
        for _, _, cluster in hooks.live(rds_backends, "clusters"):
            if not is_multi_az_cluster(cluster) or not side(cluster).members:
                continue
            writer, standbys = _roles(cluster)
            wk, sks = _key(cluster, writer), [_key(cluster, s) for s in standbys]
            claimed |= {wk, *sks}
            why = _no_engines(cluster)
            if why:
                unsupported(cluster, why)
                continue
            if b.reconciling and (b.busy(_jobs(cluster)) or all(b.busy(k) or engines.alive(k) for k in (wk, *sks))):
                continue   # on a running server: only a cluster with a dead engine is seen to
            if not engines.resumable(wk) and (engines.get(wk) or {}).get("status") != "available":
                for key in (wk, *sks):
                    engines.stop(key)
                start(cluster, snapshot=side(cluster).snapshot,
                      to_time=side(cluster).to_time)
                continue
            remember_keys(cluster)
            secure(cluster)
            endpoints = _member_endpoints(cluster)
            b.revive(wk, [endpoints[writer]], lambda: None)
            for s, sk in zip(standbys, sks):
                fresh = functools.partial(b.start_engine, endpoints[s], sk, functools.partial(
                    engines.start_cluster_standby, sk, writer=wk, standbys=sks), after=wk, role="replica")
                b.revive(sk, [endpoints[s]], fresh, role="replica", after=wk)

            def again(cluster=cluster, wk=wk, sks=sks) -> None:
                streaming = next((k for k in sks if engines.alive(k)), None)
                if engines.alive(wk) and streaming:
                    engines.make_quorum(wk, sks, streaming=streaming)
                publish(cluster)

            b.submit(_jobs(cluster), again, after=[wk, *sks])
        return claimed

    def remember_keys(cluster) -> None:
        note(cluster, engine_key=_jobs(cluster))
        for m in cluster.members:
            note(m, engine_key=_key(cluster, m.db_instance_identifier))

    orig_pitr = RDSBackend.restore_db_cluster_to_point_in_time

    @functools.wraps(orig_pitr)
    def restore_db_cluster_to_point_in_time(self, db_cluster_identifier, source_db_cluster_identifier, *a, **kw):
        """Refused as RDS refuses it: a time outside what the source's backups cover."""
        from moto.rds.exceptions import RDSClientError

        source = self.clusters.get(source_db_cluster_identifier)
        when = kw.get("restore_to_time")
        window = restore_window(source) if source is not None and side(source).members else None
        at = epoch(when) if when and not kw.get("use_latest_restorable_time") else None
        if at is not None and window is not None and not window[0] <= at <= window[1] + 1:
            fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
            raise RDSClientError("InvalidRestoreFault", f"The restore time {fmt(at)} is outside the restorable "
                                 f"window of {source_db_cluster_identifier}: {fmt(window[0])} to {fmt(window[1])}.")
        return orig_pitr(self, db_cluster_identifier, source_db_cluster_identifier, *a, **kw)

    RDSBackend.restore_db_cluster_to_point_in_time = restore_db_cluster_to_point_in_time

    orig_failover = RDSBackend.failover_db_cluster

    @functools.wraps(orig_failover)
    def failover_db_cluster(self, db_cluster_identifier, *a, **kw):
        """Refused while no reader's engine runs: the writer would be crashed with no one to take
        its place (RDS fails over only to a healthy reader)."""
        from moto.rds.exceptions import RDSClientError

        cluster = self.clusters.get(db_cluster_identifier)
        if cluster is not None and side(cluster).members and not _no_engines(cluster):
            writer, standbys = _roles(cluster)
            if engines.alive(_key(cluster, writer)) and not any(engines.alive(_key(cluster, s)) for s in standbys):
                raise RDSClientError("InvalidDBClusterStateFault", f"DbCluster {db_cluster_identifier} has no reader "
                                     "in a valid state to fail over to.")
        return orig_failover(self, db_cluster_identifier, *a, **kw)

    RDSBackend.failover_db_cluster = failover_db_cluster

    def restore_window(cluster) -> tuple[float, float] | None:
        """What the cluster's backups cover (epoch seconds): its writer's archive and base backups."""
        return engines.restore_window(_key(cluster, _roles(cluster)[0]))

    orig_latest = DBCluster.latest_restorable_time

    def latest_restorable_time(self):
        window = restore_window(self) if side(self).members else None
        if window is None:
            return orig_latest.fget(self)
        return datetime.fromtimestamp(window[1], timezone.utc).replace(tzinfo=None)

    DBCluster.latest_restorable_time = property(latest_restorable_time)

    def earliest_restorable_time(self):
        """Where the window starts: the first base backup, not the moment moto made the cluster (a
        time between the two would pass the window DescribeDBClusters shows and still be refused)."""
        window = restore_window(self) if side(self).members else None
        if window is None:
            return self.__dict__.get("earliest_restorable_time")
        return datetime.fromtimestamp(window[0], timezone.utc).replace(tzinfo=None)

    def set_earliest(self, value) -> None:   # moto's __init__ assigns it; kept as the fallback
        self.__dict__["earliest_restorable_time"] = value

    DBCluster.earliest_restorable_time = property(earliest_restorable_time, set_earliest)

    hooks.revivers.append(revive)
    after("create_db_cluster", created)
    after("restore_db_cluster_from_snapshot", restored)
    after("restore_db_cluster_to_point_in_time", restored_to_time)
    after("failover_db_cluster", failed_over)
    after("create_db_cluster_snapshot", snapshot_created)
    after("delete_db_cluster_snapshot", snapshot_deleted)
    after("delete_db_cluster", deleted)
