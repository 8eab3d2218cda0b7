"""Automated backups of ``Engines``' PostgreSQL instances: the WAL archive and base backups,
the restorable window they give, their pruning, and a point-in-time restore from them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from awslab.local.engines.base import TOOL_TIMEOUT_S, EngineError
from awslab.local.engines.core import EngineCore
from awslab.local.engines.files import chown_tree, make_dir, remove_tree, slug
from awslab.local.engines.postgres import ARCHIVE_TIMEOUT_S, as_standalone

log = logging.getLogger("awslab.local.engines")


class PostgresBackups(EngineCore):
    """A PostgreSQL instance's automated backups and the point-in-time restores they allow."""

    def backups_dir(self, key: str) -> Path:
        """Where the instance ``key`` keeps its automated backups: ``wal/`` (the archive, written
        by the engine) and ``base/<time>/`` (base backups)."""
        return self.base() / "_backups" / slug(key)

    def _new_backups(self, key: str) -> str:
        path = self.backups_dir(key)
        remove_tree(path)
        make_dir(path.parent, 0o711)
        make_dir(path, 0o711)
        make_dir(path / "wal", 0o700, self.who())
        make_dir(path / "base", 0o700)
        return str(path)

    def set_backups(self, key: str, on: bool) -> None:
        """Automated backups turned on (the archive starts, after a first base backup) or off (the
        archive stops and what it kept is removed), for the instance and its standby."""
        entry = self._running(key, "postgres")
        backups = self._new_backups(key) if on else None
        for k in (key, self.standby_key(key)):
            if self.get(k):
                e = self.registry.update(k, backups=backups)
                self._role_conf(e, sync=k == key and self.alive(self.standby_key(key)))
                if self.alive(k):
                    self._reload(e)
        if on:
            self.base_backup(key)
        else:
            self.remove_backups(key)
        log.info("backups of %r %s", entry["key"], "on" if on else "off")

    def remove_backups(self, key: str) -> None:
        remove_tree(self.backups_dir(key))

    def base_backup(self, key: str) -> dict[str, Any]:
        """A base backup of the running instance into its backups (the start of its restorable window)."""
        entry = self._running(key, "postgres")
        if not entry.get("backups"):
            raise EngineError(f"postgres {key!r} keeps no backups")
        secret = self._load_secret(Path(entry["dir"]))
        return self._keep_base_backup(entry, lambda data: self._basebackup(
            entry, secret, data, who=None, log_path=Path(entry["backups"]) / "base.log", replica=False))

    def _keep_base_backup(self, entry: dict[str, Any], take: Callable[[Path], None]) -> dict[str, Any]:
        """``take`` a base backup into a new dir of the instance's backups, with its times and facts."""
        target, started = self._take_base_backup(entry, take)
        return self._record_base_backup(entry, target, started)

    def _take_base_backup(self, entry: dict[str, Any], take: Callable[[Path], None]) -> tuple[Path, float]:
        """The files of a base backup (not yet listed: ``_record_base_backup`` lists it)."""
        started = time.time()
        target = Path(entry["backups"]) / "base" / f"{started:.3f}"
        make_dir(target, 0o700)
        try:
            take(target / "data")
        except BaseException:
            remove_tree(target)
            raise
        return target, started

    def _record_base_backup(self, entry: dict[str, Any], target: Path, started: float) -> dict[str, Any]:
        """List a base backup from now on: its window starts at ``finished``, this moment."""
        meta = {"started": started, "finished": time.time(), "source": entry["key"],
                **{k: entry[k] for k in ("user", "dbname", "version", "bindir")}}
        (target / "backup.json").write_text(json.dumps(meta, indent=2))
        log.info("base backup of %r in %.2f s", entry["key"], meta["finished"] - started)
        return meta

    def base_backups(self, key: str) -> list[dict[str, Any]]:
        """The base backups instance ``key`` keeps, oldest first."""
        entry = self.get(key) or {}
        return self.base_backups_in(Path(entry["backups"])) if entry.get("backups") else []

    def base_backups_in(self, backups: Path) -> list[dict[str, Any]]:
        out = []
        for meta in sorted((backups / "base").glob("*/backup.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append({**json.loads(meta.read_text()), "path": str(meta.parent)})
        return sorted(out, key=lambda m: m["finished"])

    def restore_window(self, key: str) -> tuple[float, float] | None:
        """(earliest, latest) restorable times of instance ``key`` (epoch seconds), from its base
        backups and its WAL archive; None when it keeps none. The latest trails the present by
        the archive interval while the instance runs, else is its last archived segment."""
        entry = self.get(key)
        if not entry or not entry.get("backups"):
            return None
        bases = self.base_backups_in(Path(entry["backups"]))
        if not bases:
            return None
        if self.alive(key):
            latest = time.time() - ARCHIVE_TIMEOUT_S
        else:
            segments = [p.stat().st_mtime for p in (Path(entry["backups"]) / "wal").iterdir()]
            latest = max(segments, default=bases[-1]["finished"])
        return bases[0]["finished"], max(latest, bases[0]["finished"])

    def prune_backups(self, key: str, older_than: float) -> int:
        """Remove base backups finished before ``older_than`` (the retention period), keeping the
        newest such one (it starts the window), and the WAL only they needed; how many removed."""
        entry = self.get(key) or {}
        if not entry.get("backups"):
            return 0
        bases = self.base_backups_in(Path(entry["backups"]))
        old = [b for b in bases if b["finished"] < older_than][:-1]
        for b in old:
            remove_tree(Path(b["path"]))
        if old:
            keep_from = min(b["started"] for b in bases if b not in old)
            for seg in (Path(entry["backups"]) / "wal").iterdir():
                if seg.stat().st_mtime < keep_from - 60 and not seg.name.endswith(".history"):
                    seg.unlink()
        return len(old)

    def _archive_now(self, key: str) -> None:
        """Make the instance's WAL up to now reach its archive: a commit record after any time
        asked for (recovery stops at the first commit past its target), then a segment switch,
        waited for in the archive."""
        entry = self._running(key, "postgres")
        self._query(entry, "SELECT txid_current()")
        name = self._query(entry, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + TOOL_TIMEOUT_S
        while not (Path(entry["backups"]) / "wal" / name).exists():
            if time.monotonic() > deadline:
                raise EngineError(f"WAL segment {name} of {key!r} did not reach the archive; see {entry['log']}")
            time.sleep(0.05)

    def restore_postgres_to_time(self, key: str, *, source: str, when: float | None,
                                 backups: bool = False) -> dict[str, Any]:
        """A new standalone server with ``source``'s data as of ``when`` (None: the latest): its
        newest base backup from before ``when``, then its archived WAL replayed up to ``when``."""
        src = self.get(source)
        if not src or not src.get("backups"):
            raise EngineError(f"postgres {source!r} keeps no backups to restore from")
        archive = Path(src["backups"])
        if self.alive(source):
            self._archive_now(source)
        bases = [b for b in self.base_backups_in(archive) if when is None or b["finished"] <= when]
        if not bases:
            raise EngineError(f"no base backup of {source!r} before {when}")
        base = bases[-1]
        secret = self._load_secret(Path(src["dir"]))
        entry = self._reserve(key, engine="postgres", role="primary", user=base["user"], dbname=base["dbname"],
                              version=base["version"], bindir=base["bindir"], restored_from=source, restored_to=when)
        started = time.monotonic()
        with self._starting(key):
            data = Path(entry["datadir"])
            remove_tree(data)
            shutil.copytree(Path(base["path"]) / "data", data, symlinks=True)
            as_standalone(data)
            (data / "recovery.signal").touch()
            os.chmod(data, 0o700)
            chown_tree(data, self.who())
            target = None
            if when is not None:
                target = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}+00"
            self._role_conf(entry, recover_from=archive, recover_to=target)
            self._save_secret(Path(entry["dir"]), secret)
            # It takes logins while it replays; from a cold base backup (a template's files) its
            # password is the one it has once the replay reaches its source's first moments.
            entry = self._launch_postgres(key, Path(base["bindir"]), secret["user"], secret["password"],
                                          catching_up=True)
            deadline = time.monotonic() + TOOL_TIMEOUT_S
            while self._query(entry, "SELECT pg_is_in_recovery()")[0][0]:
                if time.monotonic() > deadline:
                    raise EngineError(f"postgres {key!r} was still replaying WAL after {TOOL_TIMEOUT_S:.0f} s; "
                                      f"see {entry['log']}")
                time.sleep(0.05)
            entry = self.registry.update(key, backups=self._new_backups(key) if backups else None)
            self._role_conf(entry)
            self._reload(entry)
        if backups:
            self.base_backup(key)
        log.info("postgres %r restored from %r to %s in %.2f s (base backup of %s)", key, source, target or "latest",
                 time.monotonic() - started, time.strftime("%H:%M:%S", time.gmtime(base["finished"])))
        return entry
