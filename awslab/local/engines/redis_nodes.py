"""Redis servers of ``Engines``: a primary (requirepass + masterauth), a replica, a restore from
a snapshot's dump.rdb, the roles swapped by a failover, its parameter group's values set."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from awslab.local.engines.base import HOST
from awslab.local.engines.binaries import redis_library
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import chown_tree, write_private_for
from awslab.local.engines.redis_server import redis_client, redis_conf, redis_ready

log = logging.getLogger("awslab.local.engines")


class RedisNodes(EngineCore):
    """Redis servers: primaries, replicas, restores, and the roles a failover swaps."""

    def start_redis(self, key: str, *, password: str) -> dict[str, Any]:
        """A new Redis primary: requirepass + masterauth, bind 127.0.0.1, its data saved within a second."""
        return self._start_redis(key, password=password, role="primary")

    def start_redis_replica(self, key: str, *, primary: str, password: str) -> dict[str, Any]:
        """A Redis replica of `primary` (replicaof, authenticating with masterauth)."""
        src = self._running(primary, "redis")
        return self._start_redis(key, password=password, role="replica", primary=primary, replicaof=src["port"])

    def restore_redis(self, key: str, *, snapshot: str, password: str) -> dict[str, Any]:
        """A new Redis primary that loads the snapshot's dump.rdb."""
        snap = self._snapshot_path(snapshot, must_exist=True)
        self._snapshot_meta(snap, "redis")
        return self._start_redis(key, password=password, role="primary", rdb=snap / "dump.rdb", snapshot=snapshot)

    def _start_redis(self, key: str, *, password: str, role: str, primary: str | None = None,
                     replicaof: int | None = None, rdb: Path | None = None, snapshot: str | None = None) -> dict:
        server = self._redis_server_path()
        redis_library()
        fields: dict[str, Any] = {"engine": "redis", "role": role, "server": str(server)}
        fields.update({k: v for k, v in (("primary", primary), ("snapshot", snapshot)) if v})
        entry = self._reserve(key, **fields)
        started = time.monotonic()
        who = self.who()
        with self._starting(key):
            data = Path(entry["datadir"])
            if rdb is not None:
                shutil.copyfile(rdb, data / "dump.rdb")
                chown_tree(data, who)
            write_private_for(data / "redis.conf", redis_conf(data, password, replicaof), who)
            self._save_secret(Path(entry["dir"]), {"password": password})
            binary = str(self._runnable(server))
            conf = str(data / "redis.conf")
            entry = self._launch(key, lambda port: [binary, conf, "--port", str(port)], who,
                                 lambda port: redis_ready(port, password))
        log.info("redis %s %r ready on %s:%d in %.2f s", role, key, HOST, entry["port"], time.monotonic() - started)
        return entry

    def promote_redis(self, key: str) -> None:
        """REPLICAOF NO ONE: the replica becomes a writable primary."""
        entry = self._running(key, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", "NO", "ONE")
        self.registry.update(key, role="primary", primary=None)

    def configure_redis(self, key: str, settings: dict[str, str]) -> None:
        """CONFIG SET each setting on the running server (its cache parameter group's values)."""
        entry = self._running(key, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            pipe = client.pipeline(transaction=False)   # one round trip; the first refused one raises
            for name, value in settings.items():
                pipe.execute_command("CONFIG", "SET", name, value)
            pipe.execute()

    def follow_redis(self, key: str, *, primary: str) -> None:
        """REPLICAOF the engine `primary`: a former primary rejoins as a replica after a failover."""
        entry = self._running(key, "redis")
        src = self._running(primary, "redis")
        with redis_client(entry["port"], self._load_secret(Path(entry["dir"]))["password"]) as client:
            client.execute_command("REPLICAOF", HOST, str(src["port"]))
        self.registry.update(key, role="replica", primary=primary)
