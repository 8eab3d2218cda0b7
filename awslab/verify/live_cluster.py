"""verify's live checks of a Multi-AZ DB cluster (``database.deployment = "cluster"``) on the local AWS.

On AWS a learner writes through the cluster (writer) endpoint and reads through the reader
endpoint, which spreads its connections over the two readable standbys. So do these checks, from
the stack's host (its security groups and subnet decide, as for an instance): on the writer
endpoint a login over TLS, a row written and read back, the writer not in recovery; on the reader
endpoint that row readable (the lag measured), ``pg_is_in_recovery()`` true, and a write refused
with PostgreSQL's read-only error: that refusal is what shows the endpoint reaches a standby, so
it is part of the PASS. ``live_local`` runs them beside the host's own connections, as it runs ``live_mysql``
(they build on ``live``).
"""

from __future__ import annotations

import time
import uuid

from awslab.engine.run import Run
from awslab.verify import live
from awslab.verify.results import FAIL, PASS, SKIP

WRITER, READER = "live.host-to-db", "live.db-reader"
READ_ONLY = "read-only transaction"   # PostgreSQL's refusal (SQLSTATE 25006) on a hot standby


def endpoints(cluster: dict) -> tuple[dict, dict]:
    """The cluster (writer) endpoint and the reader endpoint, in an instance's Endpoint shape."""
    port = cluster.get("Port", 0)
    return {"Address": cluster.get("Endpoint", ""), "Port": port}, {"Address": cluster.get("ReaderEndpoint", ""), "Port": port}


def check_cluster(run: Run, cluster: dict, mapping, database: str) -> list[tuple]:
    """(id, status, detail, hint) for the writer endpoint and the reader endpoint."""
    writer_ep, reader_ep = endpoints(cluster)
    addr = live.resolve(mapping, writer_ep["Address"], writer_ep["Port"])
    reader = live.resolve(mapping, reader_ep["Address"], reader_ep["Port"])
    if not addr.usable:
        status = FAIL if addr.status == "failed" else SKIP
        return [(WRITER, status, f"{addr.endpoint}: {addr.reason or addr.status}", None),
                (READER, FAIL if reader.status == "failed" else SKIP,
                 f"{reader.endpoint}: {reader.reason or reader.status}" if not reader.usable
                 else "needs the writer's engine (to write the row it reads back)", None)]
    user, password = live.db_credentials(run, cluster)
    t0 = time.perf_counter()
    try:
        conn = live.pg_connect(addr, user, password, database)
        (recovery,) = conn.run("SELECT pg_is_in_recovery()")[0]
    except Exception as exc:  # noqa: BLE001 - any failure to log in is the finding
        why, hint = live.why_failed(exc, "see `awslab local status` and the server log")
        out = [(WRITER, FAIL, f"{addr.endpoint} (writer endpoint): login failed: {why}", hint)]
        # The reader endpoint is tried anyway: a learner's rule may admit one and not the other.
        return out + [_reader_row(reader, user, password, database, None, None)]
    try:
        if recovery:   # a standby refuses the write below: say what was reached instead
            return [(WRITER, FAIL, f"{addr.endpoint} (writer endpoint): reached a server in recovery, not the writer",
                     "a failover in progress? rerun `awslab verify`; `awslab local endpoints` lists where each answers"),
                    _reader_row(reader, user, password, database, None, None)]
        marker = uuid.uuid4().hex
        conn.run("CREATE TABLE IF NOT EXISTS awslab_verify (marker text PRIMARY KEY, written timestamptz DEFAULT now())")
        conn.run("INSERT INTO awslab_verify (marker) VALUES (:m)", m=marker)
        written = time.perf_counter()
        if not conn.run("SELECT 1 FROM awslab_verify WHERE marker = :m", m=marker):
            out = [(WRITER, FAIL, f"{addr.endpoint} (writer endpoint): a row written was not read back", "see the server log")]
        else:
            out = [(WRITER, PASS, f"{addr.endpoint} -> 127.0.0.1:{addr.port} (writer endpoint): login, a row written "
                    f"and read back{live.tls_words(addr)} in {live.ms_since(t0)}", None)]
            out[0] = live.tls_verdict(out[0], addr, lambda: live.pg_connect(addr, user, password, database, plain=True).close())
        out.append(_reader_row(reader, user, password, database, marker, written))
        conn.run("DELETE FROM awslab_verify WHERE written < now() - interval '1 hour'")
    finally:
        conn.close()
    return out


def _reader_row(reader: live.Address, user, password, database, marker: str | None, written: float | None) -> tuple:
    """The reader endpoint: a standby (in recovery), the writer's row readable, a write refused."""
    if not reader.usable:
        return (READER, FAIL if reader.status == "failed" else SKIP, f"{reader.endpoint}: {reader.reason or reader.status}", None)
    try:
        conn = live.pg_connect(reader, user, password, database)
        (recovery,) = conn.run("SELECT pg_is_in_recovery()")[0]
    except Exception as exc:  # noqa: BLE001
        why, hint = live.why_failed(exc, "see `awslab local status` and the server log")
        return (READER, FAIL, f"{reader.endpoint} (reader endpoint): login failed: {why}", hint)
    try:
        if not recovery:
            return (READER, FAIL, f"{reader.endpoint} (reader endpoint): reached the writer, not a readable standby",
                    "see the server log; `awslab local endpoints` lists where each endpoint answers")
        lag = ""
        if marker is not None and written is not None:
            while not (live.has_table(conn) and conn.run("SELECT 1 FROM awslab_verify WHERE marker = :m", m=marker)):
                if time.perf_counter() - written > live.REPLICATION_BOUND_S:
                    return (READER, FAIL, f"{reader.endpoint}: a row written through the writer endpoint was not "
                            f"readable here after {live.REPLICATION_BOUND_S:.0f} s", "are the standbys streaming? see the server log")
                time.sleep(0.02)
            lag = f"; a row written through the writer endpoint was readable here after {(time.perf_counter() - written) * 1000:.0f} ms"
        # An INSERT where the table is there (a CREATE TABLE if not: a missing table is refused first).
        write = ("INSERT INTO awslab_verify (marker) VALUES ('awslab-reader-probe')" if live.has_table(conn)
                 else "CREATE TABLE awslab_verify_probe (n int)")
        try:
            conn.run(write)
        except Exception as exc:  # noqa: BLE001 - the refusal is the finding
            if READ_ONLY not in str(exc):
                return (READER, FAIL, f"{reader.endpoint}: a write failed, but not as a standby refuses it: "
                        f"{type(exc).__name__}", "see the server log")
        else:
            return (READER, FAIL, f"{reader.endpoint} (reader endpoint): took a write", "see the server log")
        return (READER, PASS, f"{reader.endpoint} -> 127.0.0.1:{reader.port} (reader endpoint): a readable standby "
                f"(pg_is_in_recovery() true){live.tls_words(reader)}{lag}; a write was refused (read-only transaction)", None)
    finally:
        conn.close()
