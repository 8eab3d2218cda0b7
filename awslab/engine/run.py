"""What a step sees while it runs: clients, the stack's tags, the resources already found or
made, and a bounded wait that reports progress and stops on Ctrl-C."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
)

from awslab.engine.context import Context
from awslab.spec.model import Found, Kinds
from awslab.engine.waiting import (
    Clock,
    error_code,
    ignoring,
    poll_until,
    sleep_or_cancel,
)
from awslab.errors import OperationError, OwnershipError
from awslab.spec.tags import as_tag_list, owned_by, stack_tags

# Upper bounds, sized for real AWS (a Multi-AZ RDS instance can take 20+ minutes, a replica as long).
TIMEOUTS_S = {
    "instance": 15 * 60,
    "db-instance": 75 * 60,
    "db-replica": 75 * 60,
    "replication-group": 60 * 60,
    "db-snapshot": 60 * 60,
    "db-snapshot-copy": 2 * 60 * 60,
    "cache-snapshot": 60 * 60,
    "host-command": 2 * 60,   # the script's own commands time out after 5 s each
    "default": 10 * 60,
}


# How long a resource just created may be missing from describes before that counts as gone.
NOT_VISIBLE_GRACE_S = 60.0


@dataclass
class Run:
    ctx: Context
    stack: str
    lab_name: str
    found: dict[str, Found] = field(default_factory=dict)
    on_event: Callable[..., None] = lambda *a, **k: None
    cancel: threading.Event = field(default_factory=threading.Event)
    clock: Clock = field(default_factory=Clock)
    options: dict[str, Any] = field(default_factory=dict)
    kinds: Kinds = field(default_factory=lambda: Kinds(()))   # the registry handed in (aws/kinds.py)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _memo: dict[str, Any] = field(default_factory=dict)
    _memo_locks: dict[str, threading.Lock] = field(default_factory=dict)

    def client(self, service: str):
        return self.ctx.client(service)

    def tags(self, key: str, name: str | None = None) -> dict[str, str]:
        tags = stack_tags(self.stack, self.lab_name, key)
        if name:
            tags["Name"] = name
        return tags

    def tag_list(self, key: str, name: str | None = None) -> list[dict[str, str]]:
        return as_tag_list(self.tags(key, name))

    def memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """Compute once per run (e.g. the region's AZs), even when steps ask at the same time."""
        with self._lock:
            if name in self._memo:
                return self._memo[name]
            key_lock = self._memo_locks.setdefault(name, threading.Lock())
        with key_lock:
            with self._lock:
                if name in self._memo:
                    return self._memo[name]
            value = compute()
            with self._lock:
                self._memo[name] = value
            return value

    def ref(self, key: str) -> Found:
        with self._lock:
            found = self.found.get(key)
        if found is None:
            raise OperationError(f"{key} is needed but does not exist", "run `awslab up` again")
        return found

    def record(self, found: Found) -> None:
        with self._lock:
            self.found[found.key] = found

    def forget(self, key: str) -> None:
        with self._lock:
            self.found.pop(key, None)

    def wait(self, key: str, what: str, probe: Callable[[], str], done: Iterable[str],
             failed: Iterable[str] = (), kind: str = "default", max_delay_s: float | None = None) -> str:
        """Poll ``probe`` until a ``done`` state, bounded by the kind's timeout; ``max_delay_s``
        caps the polling interval for what finishes in seconds (a command on the host)."""
        p = self.ctx.polling
        return poll_until(
            what, probe, done, failed=failed, timeout_s=TIMEOUTS_S.get(kind, TIMEOUTS_S["default"]),
            first_delay_s=min(p.first_delay_s, max_delay_s or p.first_delay_s),
            max_delay_s=min(p.max_delay_s, max_delay_s or p.max_delay_s), progress_every_s=p.progress_every_s,
            on_progress=lambda state, elapsed: self.on_event("waiting", key=key, what=what, state=state, elapsed=elapsed),
            cancel=self.cancel, clock=self.clock,
        )


def create_or_adopt(run: Run, what: str, create: Callable[[], dict], exists_code: str,
                    describe: Callable[[], dict], tags_of: Callable[[dict], dict[str, str]]) -> dict:
    """Create a resource; when AWS answers that it already exists (a rerun after a crash, or the
    name taken by someone else), adopt it only if it carries this stack's tag."""
    with ignoring(exists_code):
        return create()
    found = describe()
    if not owned_by(tags_of(found), run.stack):
        raise OwnershipError(f"{what} exists but is not stack {run.stack}'s",
                             "awslab will not touch it: rename or delete it, or use another --name")
    return found


# Errors that say AWS did not act on the request (so sending it again is safe).
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
                              "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled",
                              "PriorRequestNotComplete", "EC2ThrottledException", "SlowDown"})
CREATE_ONCE_ATTEMPTS = 8


def create_once(run: Run, what: str, create: Callable[[Any], dict], find: Callable[[], dict | None],
                service: str = "ec2") -> dict:
    """Create a resource AWS offers no idempotency token for (a VPC, a subnet, an internet gateway).

    ``create(client)`` is sent on a client that does not retry by itself. When AWS may have acted
    without our hearing it (a 5xx, a dropped connection, a timeout), ``find()`` looks for the
    resource by the tags it was created with before anything is sent again, so a retry never makes
    a second one. Throttling and failed connects are retried as they are: nothing was made.
    """
    client = run.ctx.client(service, single_attempt=True)
    visible_s = 0.5 if run.ctx.is_local else 10.0
    for attempt in range(1, CREATE_ONCE_ATTEMPTS + 1):
        try:
            return create(client)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if error_code(exc) in THROTTLING_CODES:
                ambiguous = False
            elif status >= 500:
                ambiguous = True
            else:
                raise
            last: BaseException = exc
        except EndpointConnectionError as exc:
            ambiguous, last = False, exc
        except (ConnectionClosedError, HTTPClientError) as exc:
            ambiguous, last = True, exc
        if ambiguous:
            made = _find_within(run, find, visible_s)
            if made is not None:
                return made
        run.on_event("retrying", what=what, attempt=attempt, error=str(last))
        sleep_or_cancel(run.cancel, min(20.0, 0.5 * 2 ** attempt) * random.random(), what)
    raise last


def _find_within(run: Run, find: Callable[[], dict | None], within_s: float) -> dict | None:
    """What a create may have made, allowing AWS a moment to list it."""
    deadline = run.clock.now() + within_s
    while True:
        made = find()
        if made is not None or run.clock.now() >= deadline:
            return made
        sleep_or_cancel(run.cancel, min(1.0, within_s / 5), "a resource AWS may have made")
