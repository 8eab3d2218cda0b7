"""The PostgreSQL engines of a Multi-AZ DB cluster, part of ``Engines``: a writer and two readable
standbys, each a member DB instance's own engine (its key stays with its member whatever its role).

Unlike a Multi-AZ instance's standby, a cluster's standbys serve reads (hot standbys, as read
replicas are), and the writer's commits wait for ANY one of them (quorum commit: RDS acknowledges
a commit once one reader has it), so one standby down costs no write. A failover crashes the
writer, promotes the standby that received the most WAL (every acknowledged commit is on one of
them, so on that one), points the other at it (it follows the new timeline: it never received
more than the promoted one had), and the old writer comes back as a standby made anew (its last
unacknowledged WAL may be on no one else: it cannot simply follow)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Any

from awslab.local.engines.base import HOST, START_TIMEOUT_S, STOP_TIMEOUT_S
from awslab.local.engines.children import is_ours, terminate, wait_gone
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import slug
from awslab.local.engines.postgres import quorum_of

log = logging.getLogger("awslab.local.engines")


class PostgresCluster(EngineCore):
    """A Multi-AZ DB cluster's writer and readable standbys (keys: its members' own)."""

    def start_cluster_standby(self, key: str, *, writer: str, standbys: list[str]) -> dict[str, Any]:
        """A readable standby of ``writer`` (a streaming replica that serves reads); once it streams,
        the writer's commits wait for ANY one of ``standbys``."""
        started = time.monotonic()
        # Its archive is the writer's: once promoted it goes on with it (archive_mode = on archives
        # nothing while it replays).
        entry = self._streaming_copy(key, writer, role="replica", cluster=True,
                                     backups=self._running(writer, "postgres").get("backups"))
        self.make_quorum(writer, standbys, streaming=key)
        log.info("postgres cluster standby %r of %r ready on %s:%d in %.2f s", key, writer, HOST, entry["port"],
                 time.monotonic() - started)
        return entry

    def make_quorum(self, writer: str, standbys: list[str], *, streaming: str | None = None,
                    timeout_s: float = START_TIMEOUT_S) -> None:
        """The writer's commits wait for ANY one of ``standbys`` (once ``streaming`` streams: before
        that none may, and a commit would wait for nothing that can answer)."""
        entry = self._running(writer, "postgres")
        if streaming is not None:
            self._wait_streaming(entry, slug(streaming), f"{streaming!r} (from {writer!r})", timeout_s)
        self._role_conf(entry, quorum=quorum_of([slug(k) for k in standbys]))
        self._reload(entry)

    def received_lsn(self, key: str) -> int | None:
        """How far ``key`` has received its writer's WAL (bytes), None when it cannot say (down)."""
        if not self.alive(key):
            return None
        try:
            # Briefly: a failover asks this inside its request (a standby that hangs is no candidate).
            rows = self._query(self.get(key) or {}, "SELECT pg_last_wal_receive_lsn() - '0/0'::pg_lsn", timeout=3)
        except Exception:  # noqa: BLE001 - a standby that cannot answer is not a candidate
            return None
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def crash_writer(self, writer: str) -> None:
        """The writer stops as in a crash (immediate shutdown: no checkpoint, its clients cut off,
        nothing more committed); its entry stays, without a process, until it is rebuilt."""
        self._end_writer(writer, signal.SIGQUIT)

    def stop_writer(self, writer: str) -> None:
        """The writer stops for a switchover to a member asked for: a fast shutdown, in which
        PostgreSQL's WAL senders send each standby still streaming the WAL up to the shutdown
        checkpoint and wait for it to be flushed there, so the member asked for holds every commit
        that was acknowledged, whichever standby acknowledged it (a crash would leave it only on the
        other). Bounded; then as ``crash_writer``."""
        self._end_writer(writer, signal.SIGINT, signal.SIGQUIT)

    def _end_writer(self, writer: str, *signals: int) -> None:
        """Each signal in turn to the writer's postmaster, each given STOP_TIMEOUT_S, then killed;
        its entry kept, without a process, until it is rebuilt."""
        entry = self.get(writer)
        if entry is None:
            return
        if is_ours(entry):
            for sig in signals:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(entry["pid"], sig)
                if wait_gone(entry["pid"], STOP_TIMEOUT_S):
                    break
            else:
                terminate(entry)
        self.registry.update(writer, status="failed", pid=None, port=None)

    def most_caught_up(self, standbys: list[str]) -> str | None:
        """The standby that received the most WAL (the first named, on a tie), None if none answers."""
        received = {k: lsn for k in standbys if (lsn := self.received_lsn(k)) is not None}
        return max(received, key=lambda k: (received[k], -standbys.index(k))) if received else None

    def promote_cluster_standby(self, key: str, *, others: list[str]) -> dict[str, Any]:
        """``key`` becomes the writer (after ``crash_writer``): promoted, asynchronous until a standby
        is back; each of ``others`` that is no further along follows it, the rest are left to
        ``rebuild_cluster_standby``. The new writer's entry."""
        reached = self.received_lsn(key)
        ahead = [o for o in others if (lsn := self.received_lsn(o)) is None or reached is None or lsn > reached]
        entry = self._running(key, "postgres")
        self._pg_ctl_promote(entry)
        entry = self.registry.update(key, role="primary", primary=None)
        self._role_conf(entry)
        self._reload(entry)
        for other in others:
            self.registry.update(other, primary=key)
            if other not in ahead:
                self.repoint(other)   # a new primary_conninfo: its walreceiver follows the new timeline
        return {**entry, "ahead": ahead}

    def rebuild_cluster_standby(self, key: str, *, writer: str, standbys: list[str]) -> dict[str, Any]:
        """``key`` made anew as a standby of ``writer`` (the old writer after a failover, or a standby
        that had WAL the new writer never got): its data replaced by a copy of the writer's."""
        self.stop(key)
        return self.start_cluster_standby(key, writer=writer, standbys=standbys)
