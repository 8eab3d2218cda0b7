"""Output: progress and logs to stderr, results to stdout (a table, or JSON with --output json).

Progress is one line per event, so it reads the same in a terminal, a CI log or a pipe.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from awslab.spec.model import CREATE, DELETE, FAILOVER, PROMOTE, UPDATE

VERB = {CREATE: ("creating", "created"), UPDATE: ("updating", "updated"), DELETE: ("deleting", "deleted"),
        FAILOVER: ("failing over", "failed over"), PROMOTE: ("promoting", "promoted"), "keep": ("checking", "ready")}


class Progress:
    """Turns executor events into lines on stderr. Thread-safe."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", file=self.stream, flush=True)

    def __call__(self, event: str, **kw: Any) -> None:
        step = kw.get("step")
        if event == "started":
            self.line(f"{VERB[step.action][0]:<10} {step.key} ({step.name})")
        elif event == "done" and step.action != "keep":
            found = kw.get("found")
            ident = found.id if found is not None else step.name
            state = f", {found.state}" if found is not None and step.action != DELETE else ""
            self.line(f"{VERB[step.action][1]:<10} {step.key} ({ident}{state}) in {kw['elapsed']:.1f}s")
        elif event == "failed":
            err = kw["error"]
            self.line(f"{'FAILED':<10} {step.key}: {getattr(err, 'message', None) or err}")
        elif event == "blocked":
            self.line(f"{'skipped':<10} {step.key}: a resource it depends on failed")
        elif event == "waiting":
            self.line(f"{'waiting':<10} {kw['key']}: {kw['what']} is {kw['state']} ({kw['elapsed']:.0f}s)")
        elif event == "retrying":
            self.line(f"{'retrying':<10} {kw['what']} (attempt {kw['attempt']}): {kw['error']}")
        elif event == "note":
            self.line(f"{'note':<10} {kw['key']}: {kw['text']}")
        elif event == "interrupted":
            self.line(f"interrupted; in flight: {', '.join(kw['in_flight']) or 'nothing'}")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def age(created: datetime | None) -> str:
    if created is None:
        return "-"
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    secs = max(0, int((datetime.now(timezone.utc) - created).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, sort_keys=True))


def emit(text: str) -> None:
    print(text)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
