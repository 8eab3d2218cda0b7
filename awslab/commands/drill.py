"""`awslab drill`: the week's availability-versus-performance lesson, measured on the real engines.

Three copies of the data, three promises. The Multi-AZ standby is synchronous and serves nothing:
a failover costs a short outage and no acknowledged write. A read replica is asynchronous and
serves reads: it lags, so a read right after a write can miss it. A cache replica is asynchronous
too: its failover can lose the last writes. The drill runs a steady, numbered write load through
each primary endpoint, forces the failovers through the one executor (as `awslab failover`
does), and checks every acknowledged write afterwards, one by one.

Local target only: it needs the engines' addresses from this machine. On real AWS the same load
would have to run from the lab's host through SSM, which this command does not do yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from awslab import ui
from awslab.commands import figures
from awslab.commands._common import local_profile, progress_run, raise_if_failed
from awslab.commands.single_az import require_room, single_az_beside
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.engine.executor import execute
from awslab.engine.plan import plan_failover
from awslab.engine.run import Run
from awslab.errors import EXIT_OK, OperationError, UsageError
from awslab.spec.model import Found
from awslab.verify import live
from awslab.verify.dialects import DIALECTS, Dialect, db_session

LOAD_BEFORE_S = 1.0      # steady load before a failover is forced
LOAD_AFTER_S = 1.0       # and after the resource is available again
MIN_WRITES = 100         # ... and at least this many writes acknowledged on each side (a slow machine)
MAX_WAIT_S = 20.0        # the most either side waits for them
LAG_SAMPLE_S = 3.0       # replica lag sampled under load for this long
COMMITS = 200            # commits timed each way (Multi-AZ against Single-AZ)
WARM_UP = 20             # ... after these, untimed
STANDBY_WAIT_S = 120.0   # the most the drill waits for a new standby to catch up
RYOW_TRIES = 20          # read-your-own-write attempts on the replica
RYOW_BATCH = 500         # rows each attempt writes in one transaction (an order with its lines, say)
SINGLE_AZ_SUFFIX = "-db-1az-commit"   # the Single-AZ instance a MySQL-family drill commits on

# What AWS documents, beside what the drill measures: (figure, source).
AWS_REFERENCE = {
    "multi_az_failover": ("60-120 s", "RDS User Guide, 'Failover process for Amazon RDS'"),
    "multi_az_loss": ("0", "synchronous replication: a commit waits for the standby"),
    "multi_az_commit": ("+ a cross-AZ round trip (~1 ms)", "RDS User Guide, 'Multi-AZ DB instance deployments': "
                        "synchronous replication to the standby in another AZ"),
    "replica_lag": ("seconds", "RDS User Guide, 'Monitoring read replication' (CloudWatch ReplicaLag)"),
    "cache_failover": ("~1 min", "ElastiCache User Guide, 'Testing automatic failover' (TestFailover)"),
    "cache_loss": ("some", "ElastiCache replication is asynchronous: the last writes may be lost"),
}


@dataclass
class Load:
    """A numbered write load through one endpoint, reconnecting as a client would."""
    write: Callable[[Any, int], Any]
    connect: Callable[[], Any]
    acked: list[tuple[int, float]] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn, n = None, 0
        while not self.stop.is_set():
            if conn is None:
                try:
                    conn = self.connect()
                except Exception:  # noqa: BLE001 - the endpoint is down: retry, as an application would
                    time.sleep(0.02)
                    continue
            n += 1
            try:
                self.write(conn, n)
                self.acked.append((n, time.time()))
            except Exception:  # noqa: BLE001 - the connection dropped (or the write failed): not acknowledged
                self.errors.append(time.time())
                conn = None
            time.sleep(0.005)

    def downtime(self, since: float) -> float:
        """From the last write acknowledged before the first failure after ``since`` to the first after it."""
        failures = [t for t in self.errors if t >= since]
        if not failures:
            return 0.0
        before = [t for _, t in self.acked if t < failures[0]]
        after = [t for _, t in self.acked if t > failures[0]]
        return (after[0] if after else time.time()) - (before[-1] if before else since)


def _under_load(load: Load, force) -> float:
    """Run the load, force the failover once it is steady, keep it up until writes are acknowledged
    again; the time the failover was asked for."""
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    steady(load, 0, LOAD_BEFORE_S)
    started = time.time()
    force()
    steady(load, len(load.acked), LOAD_AFTER_S)
    load.stop.set()
    thread.join(10)
    return started


def multi_az_primary(found: dict, stack: str, command: str, verb: str, single_az: str) -> Found:
    """The stack's primary, a Multi-AZ DB instance, which ``command``'s drill measures; else a usage
    error (exit 2) that names what the stack has instead (a cluster, no primary: nothing to ``verb``,
    a Single-AZ instance: ``single_az``) and how to have the instance."""
    primary = found.get("db.primary")
    if primary is None and "db.cluster" in found:
        raise UsageError(f"stack {stack} is a Multi-AZ DB cluster; {command} measures a Multi-AZ DB instance",
                         f"awslab drill --compare --name {stack} measures the cluster against one")
    if primary is None:
        raise UsageError(f"stack {stack} has no primary DB to {verb}", "run `awslab up week6` first")
    if not primary.get("multi_az"):
        raise UsageError(f"{primary.id} is Single-AZ: {single_az}", "awslab up week6 --set database.multi_az=true")
    return primary


def reconnecting(connect: Callable[[], Any], within_s: float = MAX_WAIT_S):
    """A connection, retried for a while: right after a failover, a server may still be taking
    its new role (a client retries, as an application would)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return connect()
        except Exception:  # noqa: BLE001 - retried until the bound, then raised
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def steady(load: Load, base: int, at_least_s: float) -> None:
    """At least ``at_least_s`` and MIN_WRITES more acknowledged writes (bounded by MAX_WAIT_S)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < MAX_WAIT_S and (
            time.monotonic() - t0 < at_least_s or len(load.acked) - base < MIN_WRITES):
        time.sleep(0.02)


def drill(ctx: Context, stack: str, *, output: str, progress: ui.Progress, report: bool = False) -> int:
    if not ctx.is_local:
        raise UsageError("awslab drill measures the local AWS's real engines; it is local-only for now",
                         "run it on the local target; on AWS use `awslab failover` and CloudWatch's ReplicaLag")
    run = progress_run(ctx, stack, "", progress)
    run.found.update(discover(run))
    found = run.found
    primary = multi_az_primary(found, stack, "awslab drill", "drill", "there is no standby to fail over to")
    group = found.get("cache.group")
    replicas = sorted(k for k in found if k.startswith("db.replica."))
    if not replicas:
        raise UsageError(f"stack {stack} has no read replica to measure", "awslab up week6 --set database.read_replicas=1")
    if group is None or "cache.auth-token" not in found:
        raise UsageError(f"stack {stack} has no cache to fail over", "run `awslab up week6` first")
    via = live.host_of(found)
    mapping = live.endpoint_map(run, via)
    raw = primary.get("raw") or {}
    dialect, connect_db, _ = db_session(run, raw, mapping, "awslab drill")
    replica = found[replicas[0]]
    _, connect_replica, replica_addr = db_session(run, raw, mapping, "awslab drill", what="the read replica",
                                                  endpoint=(replica.get("raw") or {})["Endpoint"])

    if dialect.commit_modes is None:
        require_room(run, stack)
    _standby_in_step(run, via, dialect, connect_db, primary)

    result = {"stack": stack, "engine": dialect.engine, "profile": local_profile(ctx),
              "commit": _commit_cost(run, progress, dialect, primary, connect_db),
              "multi_az": _multi_az(run, primary, connect_db),
              "read_replica": _replica(run, dialect, replica, replica_addr, via, connect_db, connect_replica),
              "cache_replica": _cache(run, group, found["cache.auth-token"].id, mapping),
              "aws_reference": {**AWS_REFERENCE, **dialect.aws_reference}}
    print_result(result, output)
    if report:
        figures.save(stack, "drill", result, found, progress)
    return EXIT_OK


def _standby_in_step(run: Run, via: str | None, dialect: Dialect, connect_db, primary) -> None:
    """Wait (bounded) until the primary's commits wait for its standby and the standby has applied
    what it received: after a failover the new standby catches up first (a MySQL-family one replays
    the primary's binary log); until then a commit is not the Multi-AZ one, and a failover waits
    for the standby rather than measuring its promotion."""
    conn = reconnecting(connect_db)
    raw = primary.get("raw") or {}
    addr = live.resolve(live.endpoint_map(run, via), raw["Endpoint"]["Address"], raw["Endpoint"]["Port"])
    try:
        deadline, said = time.monotonic() + STANDBY_WAIT_S, False
        while not dialect.standby_in_step(run, via, conn, addr):
            if time.monotonic() > deadline:
                raise OperationError(f"{primary.id}'s standby did not catch up within {STANDBY_WAIT_S:.0f} s: its "
                                     "commits do not wait for it yet, so there is no Multi-AZ promise to measure",
                                     "wait a little (a new standby replays what the primary wrote) and run it again")
            if not said:
                ui.err(f"waiting for {primary.id}'s standby to catch up (the last failover's new standby)")
                said = True
            time.sleep(0.2)
    finally:
        conn.close()


def _commit_cost(run: Run, progress: ui.Progress, dialect: Dialect, primary, connect_db) -> dict:
    """Commit latency on the primary as it is (Multi-AZ: each commit waits for the standby in the
    other AZ) and as a Single-AZ instance commits: the same instance with the session's wait for the
    standby turned off where the engine allows it (PostgreSQL), else a Single-AZ instance made beside it."""
    if dialect.commit_modes is not None:
        on, alone = dialect.commit_modes
        return _timed_commits(_session(connect_db(), on), _session(connect_db(), alone))
    with single_az_beside(run, progress, primary, f"{run.stack}{SINGLE_AZ_SUFFIX}", "drill") as single:
        mapping = live.endpoint_map(run, live.host_of(run.found))   # again: the new instance's listener
        _, connect_single, _ = db_session(run, single.get("raw") or {}, mapping, "awslab drill", what=single.id)
        return _timed_commits(_session(connect_db()), _session(reconnecting(connect_single)))


def _session(conn, mode: str | None = None):
    if mode:
        conn.run(mode)
    conn.run("CREATE TABLE IF NOT EXISTS awslab_drill_commits (n int)")
    return conn


def _timed_commits(multi, single) -> dict:
    """COMMITS single-row commits on each session, taken in turn (a busy machine weighs on both alike),
    after WARM_UP untimed ones (a new server's first commits are slower); p50 and p95 of each, in ms."""
    times: dict[str, list[float]] = {"multi_az": [], "single_az": []}
    try:
        for i in range(WARM_UP + COMMITS):
            for label, conn in (("multi_az", multi), ("single_az", single)):
                t0 = time.perf_counter()
                conn.run("INSERT INTO awslab_drill_commits VALUES (1)")
                if i >= WARM_UP:
                    times[label].append((time.perf_counter() - t0) * 1000)
        for conn in (multi, single):
            conn.run("DROP TABLE IF EXISTS awslab_drill_commits")
    finally:
        multi.close()
        single.close()
    out = {}
    for label, ms in times.items():
        ms.sort()
        out[f"{label}_ms_p50"] = round(ms[len(ms) // 2], 3)
        out[f"{label}_ms_p95"] = round(ms[int(len(ms) * 0.95)], 3)
    out["difference_ms_p50"] = round(out["multi_az_ms_p50"] - out["single_az_ms_p50"], 3)
    return out


def _multi_az(run: Run, primary, connect_db) -> dict:
    setup = connect_db()
    setup.run("DROP TABLE IF EXISTS awslab_drill")
    setup.run("CREATE TABLE awslab_drill (n int PRIMARY KEY)")
    setup.close()
    load = Load(write=lambda c, n: c.run("INSERT INTO awslab_drill (n) VALUES (:n)", n=n), connect=connect_db)
    ui.err(f"writing to {primary.id} under load, then forcing a Multi-AZ failover")
    started = _under_load(load, lambda: raise_if_failed(execute(plan_failover(run.stack, primary), run), "failover", run))
    check = reconnecting(connect_db)
    present = {r[0] for r in check.run("SELECT n FROM awslab_drill")}
    check.close()
    lost = sorted(n for n, _ in load.acked if n not in present)
    return {"synchronous": True, "serves_reads": False, "writes_acknowledged": len(load.acked),
            "acknowledged_writes_lost": len(lost), "lost": lost[:20],
            "connections_dropped": any(t >= started for t in load.errors),
            "downtime_s": round(load.downtime(started), 3), "timeline": figures.timeline(load.acked, load.errors, started)}


def _replica(run: Run, dialect: Dialect, replica, addr: live.Address, via: str | None, connect_db,
             connect_replica) -> dict:
    reader = reconnecting(connect_replica)
    monitor = reconnecting(connect_db)
    lag = dialect.lag_sampler(run, via, monitor, reader, addr)
    load = Load(write=lambda c, n: c.run("INSERT INTO awslab_drill (n) VALUES (:n)", n=1_000_000 + n), connect=connect_db)
    thread = threading.Thread(target=load.run, daemon=True)
    ui.err(f"sampling {replica.id}'s replica lag under the same load")
    thread.start()
    samples, deadline = [], time.monotonic() + LAG_SAMPLE_S
    while time.monotonic() < deadline:
        sample = lag()
        if sample is not None:
            samples.append(sample)
        time.sleep(0.02)
    load.stop.set()
    thread.join(10)
    monitor.close()
    writer, misses, visible = reconnecting(connect_db), 0, []

    def seen(lo: int, hi: int) -> int:
        """The batch's rows the replica has: none while it has not yet replayed the table's creation
        (after the failover above, under load, a replica may be that far behind, on AWS too)."""
        try:
            return reader.run("SELECT count(*) FROM awslab_drill WHERE n BETWEEN :lo AND :hi", lo=lo, hi=hi)[0][0]
        except Exception as exc:  # noqa: BLE001 - only the missing table is caught; the rest is raised
            if dialect.no_table(exc):
                return 0
            raise

    for i in range(RYOW_TRIES):   # a batch committed on the primary, read back at once on the replica
        lo, hi = 2_000_000 + i * RYOW_BATCH, 2_000_000 + (i + 1) * RYOW_BATCH - 1
        # One statement, one transaction, in SQL both engines read (the numbers are the drill's own).
        writer.run("INSERT INTO awslab_drill (n) VALUES " + ", ".join(f"({n})" for n in range(lo, hi + 1)))
        committed = time.perf_counter()
        got = seen(lo, hi)
        if got < RYOW_BATCH:
            misses += 1
        while got < RYOW_BATCH and time.perf_counter() - committed < MAX_WAIT_S:   # when it did arrive
            got = seen(lo, hi)
        visible.append((time.perf_counter() - committed) * 1000)
    writer.close()
    reader.close()
    samples.sort()
    pct = lambda p: round(samples[min(len(samples) - 1, int(p / 100 * len(samples)))], 2) if samples else 0.0  # noqa: E731
    return {"synchronous": False, "serves_reads": True, "lag_ms_p50": pct(50), "lag_ms_p95": pct(95),
            "lag_ms_max": round(max(samples, default=0.0), 2), "samples": len(samples),
            "read_your_write_misses": misses, "read_your_write_tries": RYOW_TRIES,
            # The lag a reader meets: from the commit on the primary to the rows visible here.
            "visible_after_ms_p50": round(sorted(visible)[len(visible) // 2], 2) if visible else 0.0,
            "visible_after_ms_max": round(max(visible, default=0.0), 2)}


def _cache(run: Run, group, token_id: str, mapping) -> dict:
    ep = ((group.get("raw") or {}).get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
    addr = live.resolve(mapping, ep.get("Address", ""), ep.get("Port", 0))
    live.require_engine(addr, "the cache")
    token = live.cache_token(run, token_id)
    connect = lambda: _redis_once(addr, token)  # noqa: E731
    first = connect()
    first.delete(*[k for k in first.scan_iter("awslab:drill:*")] or ["awslab:drill:none"])
    first.close()
    load = Load(write=lambda c, n: c.set(f"awslab:drill:{n}", n), connect=connect)
    ui.err(f"writing to {group.id} under load, then forcing a cache failover")
    started = _under_load(load, lambda: raise_if_failed(execute(plan_failover(run.stack, group), run), "failover", run))
    check = reconnecting(lambda: _pinged(connect()))
    present = {int(k.split(b":")[-1]) for k in check.scan_iter("awslab:drill:*")}
    check.close()
    lost = sorted(n for n, _ in load.acked if n not in present)
    return {"synchronous": False, "serves_reads": True, "writes_acknowledged": len(load.acked),
            "acknowledged_writes_lost": len(lost), "connections_dropped": any(t >= started for t in load.errors),
            "downtime_s": round(load.downtime(started), 3), "timeline": figures.timeline(load.acked, load.errors, started)}


def _pinged(client):
    client.ping()
    return client


def _redis_once(addr, token):
    """A client on one connection that is never silently remade (a drop must show)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=addr.host, port=addr.port, password=token, socket_timeout=5, socket_connect_timeout=2,
                       single_connection_client=True, retry=Retry(NoBackoff(), 0), protocol=2, **live.redis_tls(addr))


def print_result(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    m, r, c, ref = result["multi_az"], result["read_replica"], result["cache_replica"], result["aws_reference"]
    k, prof, d = result["commit"], result["profile"], DIALECTS[result.get("engine", "postgres")]
    rows = [
        ["commit p50 (Single-AZ alike)", f"{k['multi_az_ms_p50']:.2f} ms ({k['single_az_ms_p50']:.2f} ms: "
         f"{k['difference_ms_p50']:+.2f} ms; AWS {ref['multi_az_commit'][0]})", "-", "-"],
        ["replication", d.replication, "asynchronous", "asynchronous"],
        ["serves reads", "no", "yes", "yes (reader endpoint)"],
        ["failover downtime", f"{m['downtime_s']:.2f} s (AWS {ref['multi_az_failover'][0]})", "-",
         f"{c['downtime_s']:.2f} s (AWS {ref['cache_failover'][0]})"],
        ["acknowledged writes lost", f"{m['acknowledged_writes_lost']} of {m['writes_acknowledged']} "
         f"(AWS {ref['multi_az_loss'][0]})", "-",
         f"{c['acknowledged_writes_lost']} of {c['writes_acknowledged']} (AWS {ref['cache_loss'][0]})"],
        ["open connections", "dropped" if m["connections_dropped"] else "kept", "-",
         "dropped" if c["connections_dropped"] else "kept"],
        [d.lag_label, "0 (commits wait for it)",
         f"{r['lag_ms_p50']:.1f} / {r['lag_ms_p95']:.1f} / {r['lag_ms_max']:.1f} ms (AWS {ref['replica_lag'][0]})", "-"],
        ["read right after a write", "-", f"missed {r['read_your_write_misses']} of {r['read_your_write_tries']}; "
         f"visible after {r['visible_after_ms_p50']:.1f} ms (max {r['visible_after_ms_max']:.1f})", "-"],
    ]
    ui.emit(ui.table(["", "MULTI-AZ STANDBY", "READ REPLICA", "CACHE REPLICA"], rows))
    ui.emit(f"\nThe standby is {d.standby}, so the failover lost "
            f"{m['acknowledged_writes_lost']} acknowledged writes and cost {m['downtime_s']:.2f} s of downtime; it "
            "served no reads meanwhile. The read replica is asynchronous: it serves reads but trails the primary "
            f"(a committed batch became visible there after {r['visible_after_ms_p50']:.1f} ms, p50; "
            f"{d.lag_words.format(p50=r['lag_ms_p50'])}), so a read right after a write missed it "
            f"{r['read_your_write_misses']} times in {r['read_your_write_tries']}: read your own writes from the "
            "primary. The cache replica is asynchronous too: its failover may lose the last writes "
            f"({c['acknowledged_writes_lost']} lost here). The local figures are faster than AWS's: no DNS change, "
            "no new host; the shape of the trade-off is the same.")
    ui.emit(f"\nA commit on the Multi-AZ primary took {k['multi_az_ms_p50']:.2f} ms (p50) against "
            f"{k['single_az_ms_p50']:.2f} ms for {d.single_az}: the "
            f"difference is the synchronous round trip to the standby's AZ "
            f"({prof['cross_az_round_trip_ms']:.2f} ms on this profile) and the standby's own write.")
    ui.emit(f"Measured on {prof['words']}; `awslab local start --latency realistic` puts AWS's cross-AZ round trip (~1 ms) in every "
              "replication stream (`instant` has none).")
    if d.note:
        ui.emit(d.note)
    ui.emit("\nAWS figures: " + "; ".join(f"{fig}: {src}" for fig, src in ref.values()))
