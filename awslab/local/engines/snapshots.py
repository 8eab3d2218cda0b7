"""Engine snapshots of ``Engines``: a consistent copy of a running engine (pg_basebackup for
PostgreSQL, SAVE + dump.rdb for Redis) under ``snapshots/<name>/``, copied and deleted by name."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from awslab.local.engines.base import SNAPSHOT_META, EngineError
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import check_name, make_dir, remove_tree
from awslab.local.engines.redis_server import redis_save

log = logging.getLogger("awslab.local.engines")


class EngineSnapshots(EngineCore):
    """Snapshots of running engines, by name, under ``snapshots_dir``."""

    def _snapshot_path(self, snapshot: str, *, must_exist: bool = False) -> Path:
        path = self.snapshots_dir / check_name(snapshot, "snapshot name")
        if must_exist and not (path / SNAPSHOT_META).exists():
            raise EngineError(f"no engine snapshot {snapshot!r}")
        return path

    @staticmethod
    def _snapshot_meta(snap: Path, engine: str) -> dict[str, Any]:
        meta = dict(json.loads((snap / SNAPSHOT_META).read_text()))
        if meta.get("engine") != engine:
            raise EngineError(f"snapshot {snap.name!r} is of {meta.get('engine')}, not {engine}")
        return meta

    def snapshot(self, key: str, snapshot: str) -> Path:
        """A consistent copy of a running engine: pg_basebackup for postgres, SAVE + dump.rdb for redis."""
        entry = self.get(key)
        if entry is None:
            raise EngineError(f"no engine {key!r}")
        entry = self._running(key, entry["engine"])
        path = self._snapshot_path(snapshot)
        if path.exists():
            raise EngineError(f"engine snapshot {snapshot!r} already exists")
        make_dir(self.snapshots_dir, 0o700)
        make_dir(path, 0o700)
        started = time.monotonic()
        try:
            secret = self._load_secret(Path(entry["dir"]))
            meta = {"engine": entry["engine"], "source": key, "created": time.time()}
            if entry["engine"] == "postgres":
                self._basebackup(entry, secret, path / "data", who=None, log_path=path / "snapshot.log", replica=False)
                meta.update({k: entry[k] for k in ("user", "dbname", "version", "bindir")})
                self._save_secret(path, secret)
            else:
                redis_save(entry["port"], secret["password"])
                shutil.copyfile(Path(entry["datadir"]) / "dump.rdb", path / "dump.rdb")
            (path / SNAPSHOT_META).write_text(json.dumps(meta, indent=2))
        except BaseException:
            remove_tree(path)
            raise
        log.info("snapshot %r of %r taken in %.2f s", snapshot, key, time.monotonic() - started)
        return path

    def copy_snapshot(self, source: str, target: str) -> Path:
        """A copy of a snapshot under another name (a cross-region copy of the emulated snapshot)."""
        src = self._snapshot_path(source, must_exist=True)
        dst = self._snapshot_path(target)
        remove_tree(dst)
        shutil.copytree(src, dst, symlinks=True)
        return dst

    def delete_snapshot(self, snapshot: str) -> None:
        remove_tree(self._snapshot_path(snapshot))
