"""Replication between ``Engines``' MariaDB servers: a follower (read replica or Multi-AZ standby)
replicating its primary's binary log over GTID and TLS as ``rdsrepladmin``; the Multi-AZ
standby's lossless semi-synchronous commits (``AFTER_SYNC``: a commit is acknowledged only once
the standby has it in its relay log); a failover that crashes the primary, lets the standby apply
all it received and makes it the primary; a read replica promoted; ReplicaLag as RDS reports it
for MySQL (``Seconds_Behind_Master``)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from awslab.local.engines import mariadb
from awslab.local.engines.base import HOST, START_TIMEOUT_S, STOP_TIMEOUT_S, EngineError
from awslab.local.engines.children import terminate, wait_gone
from awslab.local.engines.core import EngineCore

log = logging.getLogger("awslab.local.engines")
ENGINE = "mariadb"


class MariadbReplication(EngineCore):
    """Followers, the semi-synchronous standby and failover of MariaDB primaries."""

    def _follow(self, entry: dict[str, Any], primary: str, *, again: bool = False) -> None:
        """``entry`` replicates ``primary`` (from the start of its binary log, or, ``again``, from
        where it stopped) through the link of their AZ pair."""
        src = self._running(primary, ENGINE)
        secret = self._load_secret(Path(src["dir"]))
        # The link of their AZ pair (``PostgresInstances._upstream_port``, shared through ``Engines``).
        port = self._upstream_port(entry["key"], primary, src["port"])  # type: ignore[attr-defined]
        ca = Path(entry["tls"]) / "ca.pem" if entry.get("tls") else None
        tls = f", MASTER_SSL = 1, MASTER_SSL_CA = {mariadb.quote(str(ca))}" if ca else ""
        mariadb.run(Path(entry["socket"]), "STOP SLAVE",
                    f"CHANGE MASTER TO MASTER_HOST = '{HOST}', MASTER_PORT = {int(port)}, "
                    f"MASTER_USER = {mariadb.quote(mariadb.REPL_USER)}, "
                    f"MASTER_PASSWORD = {mariadb.quote(secret['repl_password'])}, "
                    f"MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1{tls}",
                    *([] if again else ["SET GLOBAL gtid_slave_pos = ''"]), "START SLAVE")

    def start_mariadb_replica(self, key: str, *, primary: str, role: str = "replica") -> dict[str, Any]:
        """A read replica (or, ``role`` standby, the Multi-AZ standby) of ``primary``: a new server
        with its primary's users, replicating everything the primary wrote since it was made."""
        src = self._running(primary, ENGINE)
        secret = self._load_secret(Path(src["dir"]))
        tls = Path(src["tls"]) if src.get("tls") else None
        return self.start_mariadb(key, user=secret["user"], password=secret["password"], dbname=secret.get("dbname", ""),
                                  engine_version=src.get("engine_version", ""), require_tls=bool(src.get("require_tls")),
                                  tls_source=tls, role=role, primary=primary, repl_password=secret["repl_password"])

    def _received(self, key: str, timeout_s: float) -> None:
        """Wait until follower ``key`` has received (in its relay log) everything its primary has
        written. Received, not applied: a semi-synchronous commit waits for the standby's receipt, and
        a failover applies all it received first; a new standby replaying a long binary log would
        otherwise keep its primary asynchronous until it had applied it all."""
        entry = self._running(key, ENGINE)
        primary = self._running(entry["primary"], ENGINE)
        want = _gtid_seqs(mariadb.run(Path(primary["socket"]), "SELECT @@gtid_binlog_pos")[0][0])
        deadline = time.monotonic() + timeout_s
        while True:
            have = _gtid_seqs(mariadb.status(Path(entry["socket"]), "SHOW SLAVE STATUS").get("Gtid_IO_Pos") or "")
            if all(have.get(domain, -1) >= seq for domain, seq in want.items()):
                return
            if time.monotonic() > deadline:
                raise EngineError(f"{key!r} did not receive its primary's binary log up to {want} within {timeout_s:.0f} s")
            time.sleep(0.05)

    # --- the Multi-AZ standby ---

    def start_mariadb_standby(self, key: str) -> dict[str, Any]:
        """The Multi-AZ standby of ``key``: a follower that serves nobody; the primary's commits are
        semi-synchronous to it once it has received all its primary wrote."""
        sk = self.standby_key(key)
        entry = self.start_mariadb_replica(sk, primary=key, role="standby")
        self.make_mariadb_synchronous(key)
        return entry

    def make_mariadb_synchronous(self, key: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Once the standby has received all the primary wrote and acknowledges, the primary's commits wait for it."""
        entry = self._running(key, ENGINE)
        self._received(self.standby_key(key), timeout_s)
        socket = Path(entry["socket"])
        mariadb.run(socket, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
        deadline = time.monotonic() + timeout_s
        while mariadb.status(socket, "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'").get("Value") in (None, "0"):
            if time.monotonic() > deadline:
                raise EngineError(f"the standby of {key!r} did not acknowledge within {timeout_s:.0f} s")
            time.sleep(0.05)

    def _asynchronous(self, key: str) -> None:
        entry = self.get(key) or {}
        if self.alive(key) and entry.get("engine") == ENGINE:
            mariadb.run(Path(entry["socket"]), "SET GLOBAL rpl_semi_sync_master_enabled = OFF")

    def remove_mariadb_standby(self, key: str) -> None:
        """Single-AZ again: the primary stops waiting for a standby, then the standby goes."""
        self._asynchronous(key)
        self.stop(self.standby_key(key))

    def restart_mariadb_standby(self, key: str) -> dict[str, Any]:
        """The standby restarted (patched) while the primary goes on, asynchronous meanwhile."""
        self._asynchronous(key)
        sk = self.standby_key(key)
        self.halt(sk)
        standby = self.resume(sk)
        self.make_mariadb_synchronous(key)
        return standby

    def rebuild_mariadb_standby(self, key: str) -> dict[str, Any]:
        """A new standby for ``key`` after a failover (the old primary's data is discarded, as RDS
        replaces the failed host)."""
        self.stop(self.standby_key(key))
        return self.start_mariadb_standby(key)

    def failover_mariadb(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """A Multi-AZ failover: the primary stops as in a crash (SIGKILL: no clean shutdown, its
        clients cut off), ``pause``, the standby applies every transaction it received (with
        AFTER_SYNC that is every acknowledged commit), stops replicating, becomes writable and takes
        the key; the old primary is left to ``rebuild_mariadb_standby``."""
        sk = self.standby_key(key)
        primary, standby = self._running(key, ENGINE), self._running(sk, ENGINE)
        with contextlib.suppress(ProcessLookupError):
            os.kill(primary["pid"], signal.SIGKILL)
        if not wait_gone(primary["pid"], STOP_TIMEOUT_S):
            terminate(primary)
        if pause is not None:
            pause()
        self._apply_received(standby)
        socket = Path(standby["socket"])
        mariadb.run(socket, "STOP SLAVE")
        self._binlogged_tail(primary, standby)
        mariadb.run(socket, "RESET SLAVE ALL", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
                    "SET GLOBAL read_only = OFF")
        with self.registry.changing() as engines:
            old = engines[key]
            engines[key] = {**engines[sk], "key": key, "role": "primary", "primary": None,
                            "backups": old.get("backups"), "window_start": old.get("window_start") or old.get("created")}
            engines[sk] = {**old, "key": sk, "role": "standby", "primary": key, "status": "failed",
                           "pid": None, "port": None}
        entry = self.get(key) or {}
        self._write_conf(entry)
        return entry

    def _binlogged_tail(self, primary: dict[str, Any], standby: dict[str, Any]) -> None:
        """What the crashed primary's binary log holds past what the standby received, applied to
        the standby before it takes the endpoint: transactions written and synced there
        (sync_binlog = 1) but not yet acknowledged when it died. RDS's standby shares the primary's
        storage, so they survive a failover there; without them a read replica that had received
        one would hold a transaction its new primary lacks and could never follow it (its GTID
        ahead: MariaDB's error 1236), as loaded runs of a failover under writes found. A torn last
        event (the crash mid-write) ends the replay; its transaction is lost, as on AWS."""
        datadir = Path(primary["datadir"])
        try:
            names = [Path(line).name for line in (datadir / "binlog.index").read_text().split()]
        except OSError:
            return
        have = mariadb.run(Path(standby["socket"]), "SELECT @@gtid_current_pos")[0][0]
        try:
            self._replay(standby, [datadir / n for n in names if (datadir / n).is_file()], None, after=have or None)
        except EngineError as exc:
            log.warning("failover of %r: the old primary's binary log applied up to a torn event (%s)", primary["key"], exc)

    def _apply_received(self, standby: dict[str, Any], timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the standby's SQL thread has applied its whole relay log."""
        socket = Path(standby["socket"])
        deadline = time.monotonic() + timeout_s
        while True:
            st = mariadb.status(socket, "SHOW SLAVE STATUS")
            done = (st.get("Master_Log_File") == st.get("Relay_Master_Log_File")
                    and st.get("Read_Master_Log_Pos") == st.get("Exec_Master_Log_Pos"))
            if not st or done or st.get("Slave_SQL_Running") != "Yes":
                return
            if time.monotonic() > deadline:
                raise EngineError(f"the standby {standby['key']!r} did not apply its relay log within {timeout_s:.0f} s")
            time.sleep(0.02)

    def promote_mariadb(self, key: str, *, backups: bool = True) -> None:
        """PromoteReadReplica: the replica applies what it received, stops following, takes writes."""
        entry = self._running(key, ENGINE)
        if entry.get("role") != "replica":
            return
        self._apply_received(entry)
        mariadb.run(Path(entry["socket"]), "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF")
        entry = self.registry.update(key, role="primary", primary=None, backups=backups, window_start=time.time())
        self._write_conf(entry)

    def set_mariadb_tls(self, key: str, required: bool) -> None:
        """``require_secure_transport`` is dynamic: new connections take it at once (open ones keep theirs)."""
        for k in (key, self.standby_key(key)):
            entry = self.get(k)
            if entry and entry.get("engine") == ENGINE:
                entry = self.registry.update(k, require_tls=required)
                self._write_conf(entry)
                if self.alive(k):
                    mariadb.run(Path(entry["socket"]), f"SET GLOBAL require_secure_transport = {'ON' if required else 'OFF'}")

    def set_mariadb_password(self, key: str, password: str) -> None:
        """The master user's password changed (a restored instance's own secret; ModifyDBInstance)."""
        entry = self._running(key, ENGINE)
        secret = self._load_secret(Path(entry["dir"]))
        mariadb.run(Path(entry["socket"]), "SET sql_log_bin = 0",
                    f"ALTER USER {mariadb.quote(secret['user'])}@'%' IDENTIFIED BY PASSWORD "
                    f"{mariadb.quote(mariadb.native_hash(password))}")
        self._save_secret(Path(entry["dir"]), {**secret, "password": password})

    def replica_lag(self, key: str) -> float | None:
        """RDS's ReplicaLag for MySQL and MariaDB: the replica's Seconds_Behind_Master."""
        entry = self.get(key)
        if not entry or entry.get("engine") != ENGINE:
            return super().replica_lag(key)   # type: ignore[misc]
        st = mariadb.status(Path(self._running(key, ENGINE)["socket"]), "SHOW SLAVE STATUS")
        value = st.get("Seconds_Behind_Master")
        return None if value is None else float(value)


def _gtid_seqs(pos: str) -> dict[str, int]:
    """A GTID position (``domain-server-seq`` per domain, comma-separated) as {domain: seq}."""
    out = {}
    for part in filter(None, (p.strip() for p in pos.split(","))):
        domain, _, seq = part.split("-")
        out[domain] = int(seq)
    return out
