"""The engine registry: ``engines.json`` under the local AWS's home, key -> entry (no secrets).

Written atomically and guarded by a thread lock plus an flock, so threads and other processes see
whole states, and a different process can stop everything after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awslab.local.engines.base import EngineError
from awslab.local.engines.files import exclusive


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "engines.json"

    def get(self, key: str) -> dict[str, Any] | None:
        return self.read().get(key)

    def entries(self) -> dict[str, dict[str, Any]]:
        return self.read()

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self.path.read_text()).get("engines", {}))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EngineError(f"unreadable engine registry {self.path}: {exc}") from None

    def write(self, engines: dict[str, dict[str, Any]]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".engines.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"version": 1, "engines": engines}, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under both locks; written back only when changed. Never nest."""
        with exclusive(self.path.with_name("engines.json.lock")):
            engines = self.read()
            before = json.dumps(engines, sort_keys=True)
            yield engines
            if json.dumps(engines, sort_keys=True) != before:
                self.write(engines)

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        with self.changing() as engines:
            entry = engines[key] = {**engines.get(key, {}), **fields}
        return dict(entry)

    def forget(self, key: str) -> None:
        with self.changing() as engines:
            engines.pop(key, None)
