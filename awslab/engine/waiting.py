"""Bounded, jittered polling and the retry rules for AWS's eventual consistency.

Retries are layered: botocore's ``standard`` mode (set on every client) absorbs throttling and
5xx; ``retry_eventual`` here retries the domain errors that mean "not yet" (a group or profile not
yet visible, a dependency still draining), naming their error codes.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from botocore.exceptions import ClientError
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from awslab.errors import AwslabError, WaitTimeout

GONE = "<gone>"
T = TypeVar("T")


class Interrupted(AwslabError):
    """The user pressed Ctrl-C; waits stop at their next poll."""

    exit_code = 130


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


@contextlib.contextmanager
def ignoring(*codes: str) -> Iterator[None]:
    """Let an AWS error with one of ``codes`` pass: "not found" on a delete (already done), "already
    associated" on a rerun. Any other error goes on up."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) not in codes:
            raise


def unless_missing(call: Callable[[], T], *codes: str) -> T | None:
    """``call()``, or None when AWS answers with one of ``codes`` (the "not found" of a describe)."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message", "")
    return str(exc)


@dataclass
class Clock:
    """Injectable time, so tests of waiting take no time."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def poll_until(what: str, probe: Callable[[], str], done: Iterable[str], *, failed: Iterable[str] = (),
               timeout_s: float, first_delay_s: float, max_delay_s: float,
               on_progress: Callable[[str, float], None] | None = None, progress_every_s: float = 30.0,
               cancel: threading.Event | None = None, clock: Clock | None = None) -> str:
    """Call ``probe`` until it returns a state in ``done``; return that state.

    Delays grow from ``first_delay_s`` to ``max_delay_s`` with full jitter. Gives up after
    ``timeout_s`` with a WaitTimeout naming ``what`` and the last state seen; a state in ``failed``
    fails at once. ``on_progress(state, elapsed)`` is called when the state changes and every
    ``progress_every_s`` while it does not.
    """
    clock = clock or Clock()
    done, failed = set(done), set(failed)
    start = clock.now()
    delay = first_delay_s
    last_state, last_report = None, start
    while True:
        if cancel is not None and cancel.is_set():
            raise Interrupted(f"stopped waiting for {what} (last seen: {last_state or 'nothing yet'})")
        state = probe()
        now = clock.now()
        elapsed = now - start
        if state in done:
            return state
        if state in failed:
            raise WaitTimeout(f"{what} went to '{state}' after {elapsed:.0f}s", "see the AWS console or `awslab status` for why")
        if on_progress and (state != last_state or now - last_report >= progress_every_s):
            on_progress(state, elapsed)
            last_report = now
        last_state = state
        if elapsed >= timeout_s:
            raise WaitTimeout(f"gave up waiting for {what} after {elapsed:.0f}s; last seen: {state}",
                              "it may still finish: rerun the same command to pick it up")
        pause = min(max_delay_s, delay) * (0.5 + random.random() / 2)
        pause = min(pause, max(0.0, timeout_s - elapsed) + 0.01)
        if cancel is not None:
            if cancel.wait(pause):
                continue
        else:
            clock.sleep(pause)
        delay = min(max_delay_s, delay * 1.6)


def sleep_or_cancel(cancel: threading.Event, seconds: float, what: str) -> None:
    """Sleep, unless Ctrl-C comes first."""
    if cancel.wait(seconds):
        raise Interrupted(f"stopped while retrying {what}")


def status_probe(describe: Callable[[], dict], status_key: str, not_found: Iterable[str], latest: dict) -> Callable[[], str]:
    """A probe for poll_until: the item's status, GONE once AWS says it is not found; the last
    description seen is kept in ``latest``."""
    not_found = frozenset(not_found)

    def probe() -> str:
        try:
            item = describe()
        except ClientError as exc:
            if error_code(exc) in not_found:
                return GONE
            raise
        latest.clear()
        latest.update(item)
        return item[status_key]

    return probe


NOT_VISIBLE = "not visible yet"


def visible_within(probe: Callable[[], str], grace_s: float, clock: Clock | None = None) -> Callable[[], str]:
    """Right after a create AWS may not list the new resource for a moment (eventual consistency):
    GONE within ``grace_s`` of the first probe reads as NOT_VISIBLE; after that it is GONE."""
    clock = clock or Clock()
    started: list[float] = []

    def wrapped() -> str:
        if not started:
            started.append(clock.now())
        state = probe()
        if state == GONE and clock.now() - started[0] < grace_s:
            return NOT_VISIBLE
        return state

    return wrapped


def retry_eventual(codes: Iterable[str], *, within_s: float = 120.0, message_contains: str | None = None):
    """Retry a call while AWS answers with one of ``codes`` ("not visible yet", "still in use").

    Bounded by ``within_s``; the last error is re-raised if it never clears.
    """
    codes = frozenset(codes)

    def matches(exc: BaseException) -> bool:
        if error_code(exc) not in codes:
            return False
        return message_contains is None or message_contains in error_message(exc)

    return retry(retry=retry_if_exception(matches), stop=stop_after_delay(within_s),
                 wait=wait_random_exponential(multiplier=0.5, max=10), reraise=True)
