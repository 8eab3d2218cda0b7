"""The engine registry: ``engines.json`` under the local AWS's home, key -> entry (no secrets).

Written atomically and guarded by a thread lock plus an flock, so threads and other processes see
whole states, and a different process can stop everything after a crash.

The local AWS reads it on every engine step, and a class of thirty has 150 entries: parsing the
file each time grew with the square of the class. So the registry remembers what it last wrote
(or read) together with the file's identity (inode, size, times), and parses again only when
another process has replaced the file since. Every read hands out a private copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awslab.home.state import write_durably
from awslab.local.engines.base import EngineError
from awslab.local.engines.files import exclusive


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "engines.json"
        self._known: tuple[tuple[int, ...], bytes] | None = None   # (file identity, pickled engines)
        self._known_lock = threading.Lock()

    def _identity(self) -> tuple[int, ...]:
        st = os.stat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _remember(self, identity: tuple[int, ...], engines: dict[str, dict[str, Any]]) -> None:
        with self._known_lock:
            self._known = (identity, pickle.dumps(engines, protocol=pickle.HIGHEST_PROTOCOL))

    def get(self, key: str) -> dict[str, Any] | None:
        return self.read().get(key)

    def entries(self) -> dict[str, dict[str, Any]]:
        return self.read()

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            identity = self._identity()
            with self._known_lock:
                known = self._known
            if known is not None and known[0] == identity:
                return pickle.loads(known[1])
            engines = dict(json.loads(self.path.read_text()).get("engines", {}))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EngineError(f"unreadable engine registry {self.path}: {exc}") from None
        self._remember(identity, engines)
        return engines

    def write(self, engines: dict[str, dict[str, Any]]) -> None:
        # One entry per line: readable, and written by json's C encoder (an indent turns it off).
        lines = ",\n".join(f"  {json.dumps(key)}: {json.dumps(engines[key], sort_keys=True)}" for key in sorted(engines))
        text = f'{{"version": 1, "engines": {{\n{lines}\n}}}}\n'
        write_durably(self.path, text.encode(), ".engines.", ".tmp")
        with contextlib.suppress(OSError):   # as a reader would parse it (lists, not tuples)
            self._remember(self._identity(), json.loads(text)["engines"])

    @contextlib.contextmanager
    def changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under both locks; written back only when changed. Never nest."""
        with exclusive(self.path.with_name("engines.json.lock")):
            engines, before = self.read(), self.read()
            yield engines
            if engines != before:
                self.write(engines)

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        with self.changing() as engines:
            entry = engines[key] = {**engines.get(key, {}), **fields}
        return dict(entry)

    def forget(self, key: str) -> None:
        with self.changing() as engines:
            engines.pop(key, None)
