"""The Multi-AZ standby of ``Engines``' PostgreSQL primaries: a streaming copy that serves
nobody, to which the primary's commits are synchronous; patched (restarted) first in maintenance,
promoted by a failover, rebuilt after it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from awslab.local.engines.base import HOST, START_TIMEOUT_S, STOP_TIMEOUT_S
from awslab.local.engines.children import terminate, wait_gone
from awslab.local.engines.core import EngineCore
from awslab.local.engines.postgres import STANDBY_NAME

log = logging.getLogger("awslab.local.engines")
STANDBY_SUFFIX = ".standby"   # a Multi-AZ standby's key: its primary's and this


class PostgresStandby(EngineCore):
    """The Multi-AZ standby of a PostgreSQL primary (key: the primary's and ``STANDBY_SUFFIX``)."""

    @staticmethod
    def standby_key(key: str) -> str:
        return f"{key}{STANDBY_SUFFIX}"

    @staticmethod
    def owner_of_standby(key: str) -> str | None:
        """The primary whose standby ``key`` is (None: not a standby's key)."""
        return key[: -len(STANDBY_SUFFIX)] if key.endswith(STANDBY_SUFFIX) else None

    def start_standby(self, key: str) -> dict[str, Any]:
        """The Multi-AZ standby of ``key``: a streaming copy that serves nobody, to which the
        primary's commits are synchronous (acknowledged only once the standby has flushed them)."""
        started = time.monotonic()
        # It archives into the instance's backups once promoted.
        entry = self._streaming_copy(self.standby_key(key), key, role="standby",
                                     backups=self._running(key, "postgres").get("backups"))
        self.make_synchronous(key)
        log.info("postgres standby of %r ready on %s:%d in %.2f s", key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def make_synchronous(self, key: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Once the standby streams, the primary's commits wait for it."""
        entry = self._running(key, "postgres")
        self._wait_streaming(entry, STANDBY_NAME, f"the standby of {key!r}", timeout_s)
        self._role_conf(entry, sync=True)
        self._reload(entry)

    def restart_standby(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """The Multi-AZ standby restarted (patched: down for ``pause``) while the primary goes on:
        the primary's commits stop waiting for a standby meanwhile, and wait for it again once it streams."""
        entry = self._running(key, "postgres")
        self._role_conf(entry)
        self._reload(entry)
        sk = self.standby_key(key)
        self.halt(sk)
        if pause is not None:
            pause()
        standby = self.resume(sk)
        self.make_synchronous(key)
        return standby

    def remove_standby(self, key: str) -> None:
        """Single-AZ again: the primary stops waiting for a standby, then the standby goes."""
        if self.alive(key):
            entry = self._running(key, "postgres")
            self._role_conf(entry)
            self._reload(entry)
        self.stop(self.standby_key(key))

    def failover(self, key: str, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """A Multi-AZ failover: the primary stops as in a crash; the standby is promoted while
        ``pause`` runs (the time AWS takes to fail over, its own promotion included: the downtime
        is the longer of the two, not their sum), then takes the key (whatever follows ``key`` now
        reaches it); the old primary is left to ``rebuild_standby``. The new primary's entry."""
        sk = self.standby_key(key)
        primary, standby = self._running(key, "postgres"), self._running(sk, "postgres")
        with contextlib.suppress(ProcessLookupError):
            os.kill(primary["pid"], signal.SIGQUIT)   # immediate shutdown: no checkpoint, clients cut off
        if not wait_gone(primary["pid"], STOP_TIMEOUT_S):
            terminate(primary)
        waiting = threading.Thread(target=pause, name=f"failover-{key}", daemon=True) if pause else None
        if waiting is not None:
            waiting.start()
        self._pg_ctl_promote(standby)
        if waiting is not None:
            waiting.join()
        with self.registry.changing() as engines:
            old = engines[key]
            engines[key] = {**engines[sk], "key": key, "role": "primary", "primary": None}
            engines[sk] = {**old, "key": sk, "role": "standby", "primary": key, "status": "failed",
                           "pid": None, "port": None}
        entry = self.get(key) or {}
        self._role_conf(entry)   # no synchronous standby until one is back
        self._reload(entry)
        return entry

    def rebuild_standby(self, key: str) -> dict[str, Any]:
        """A new standby for ``key`` (after a failover, the old primary's data is replaced by a
        fresh base backup of the new primary, as RDS replaces the failed host)."""
        self.stop(self.standby_key(key))
        return self.start_standby(key)
