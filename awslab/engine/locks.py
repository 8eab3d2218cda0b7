"""One mutating command per stack at a time, on this machine.

``up``, ``down``, ``snapshot``, ``restore`` and ``failover`` of a stack hold an exclusive lock on
``<state dir>/locks/<target>-<region>-<stack>.lock`` (flock: the kernel drops it when the process
dies, so a crash or SIGKILL never leaves a stack locked). The holder writes who it is (pid,
command, since) into the file; a second command waits, saying who holds it, or with ``--no-wait``
exits 1 naming the holder. Read-only commands never take it. On a real account the lock is local
to this machine: the tags stay the truth, and a second machine's run adopts what the first made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from awslab.home.state import state_dir
from awslab.engine.waiting import Interrupted
from awslab.errors import OperationError, WaitTimeout

WAIT_BOUND_S = 3 * 60 * 60     # an `up` on AWS may take over an hour; a stuck holder should not block forever
SAY_EVERY_S = 30.0


def lock_path(target: str, region: str, stack: str):
    return state_dir() / "locks" / f"{target}-{region}-{stack}.lock"


def describe_holder(raw: bytes) -> str:
    try:
        holder = json.loads(raw or b"{}")
        since = datetime.fromtimestamp(holder["since"]).strftime("%H:%M:%S")
        return f"`awslab {holder['command']}` (pid {holder['pid']}, since {since})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another awslab command"


@contextlib.contextmanager
def stack_lock(target: str, region: str, stack: str, command: str, *, wait: bool = True,
               say: Callable[[str], None] = lambda line: None, bound_s: float = WAIT_BOUND_S,
               poll_s: float = 0.2) -> Iterator[None]:
    """Hold the stack's lock for the block; wait for it (saying who holds it) or, without ``wait``,
    raise OperationError naming the holder."""
    path = lock_path(target, region, stack)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.monotonic()
    said_at = None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0))
            os.close(fd)
            if not wait:
                raise OperationError(f"stack {stack} is busy: {holder} is changing it",
                                     "wait for it to finish, or run again without --no-wait to wait") from None
            waited = time.monotonic() - started
            if waited > bound_s:
                raise WaitTimeout(f"waited {waited / 60:.0f} min for stack {stack}, still held by {holder}; "
                                  "nothing was changed") from None
            if said_at is None or time.monotonic() - said_at >= SAY_EVERY_S:
                say(f"stack {stack} is busy: {holder} is changing it; waiting"
                    + (f" ({waited:.0f} s so far)" if said_at is not None else " (Ctrl-C to stop)"))
                said_at = time.monotonic()
            try:
                time.sleep(poll_s)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted while waiting for stack {stack}; nothing was changed") from None
            continue
        # The file is removed on release: a lock taken on a file its holder just removed is no lock.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)   # before unlocking: a waiter then retries on a fresh file
        os.close(fd)
