"""The executor: the only code that creates, changes or deletes.

It walks the plan's dependency graph and starts every step as soon as its own dependencies are
done (the database and the cache never wait for each other), on a thread pool. A failed step
stops only what depends on it; independent branches finish. Ctrl-C sets the run's cancel flag,
which every wait checks at its next poll, and the executor reports what was in flight.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from awslab.spec.model import (
    READY_STATES,
    CREATE,
    DELETE,
    FAILOVER,
    KEEP,
    PROMOTE,
    UPDATE,
    Plan,
    Step,
)
from awslab.engine.run import Run
from awslab.engine.waiting import Interrupted

MAX_WORKERS = 16
INTERRUPT_GRACE_S = 10.0
# Whether this process has started a step that changes AWS: a Ctrl-C before it changed nothing.
_changing = threading.Event()


def changes_started() -> bool:
    return _changing.is_set()


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)   # not started: a dependency failed
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def run_step(run: Run, step: Step) -> None:
    handler = run.kinds[step.kind]
    waits = run.kinds.can(step.kind, "ready")
    if step.action == CREATE:
        run.record(handler.create(run, step.desired))
    elif step.action == UPDATE:
        # Settings changed in place: the planned changes, applied as planned (not diffed again).
        found = (handler.apply(run, step.desired, step.found, step.changes) if step.changes
                 else handler.complete(run, step.desired, step.found))
        if waits and found.state not in READY_STATES:
            found = handler.ready(run, step.desired, found)
        run.record(found)
    elif step.action == KEEP:
        found = step.found
        # Kept but not yet usable (an earlier run stopped while it was being created): wait for it.
        if waits and found.state not in READY_STATES:
            found = handler.ready(run, step.desired, found)
        run.record(found)
    elif step.action == DELETE:
        handler.delete(run, step.found)
        run.forget(step.key)
    elif step.action == FAILOVER:
        run.record(handler.failover(run, step.found))
    elif step.action == PROMOTE:
        promoted = handler.promote(run, step.desired, step.found)
        run.forget(step.key)   # it is no longer a replica: it lives on under its new key
        run.record(promoted)
    else:  # pragma: no cover - the planner makes only the actions above
        raise ValueError(f"unknown action {step.action}")


def execute(plan: Plan, run: Run, max_workers: int = MAX_WORKERS) -> Outcome:
    """Run the plan's steps on the dependency graph; return what was done, failed and blocked."""
    steps = {s.key: s for s in plan.steps}
    remaining = dict(steps)
    outcome = Outcome()
    running: dict[Future, Step] = {}
    started_at: dict[str, float] = {}
    t0 = time.monotonic()
    finished: set[str] = set()

    def startable() -> list[Step]:
        return [s for s in remaining.values() if all(d in finished or d not in steps for d in s.deps)]

    def blocked_by_failure(s: Step) -> bool:
        return any(d in outcome.failed or d in outcome.blocked for d in s.deps)

    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(steps))), thread_name_prefix="step")
    try:
        while remaining or running:
            changed = True
            while changed:  # propagate failures to everything downstream
                changed = False
                for s in list(remaining.values()):
                    if blocked_by_failure(s):
                        outcome.blocked.append(s.key)
                        del remaining[s.key]
                        run.on_event("blocked", step=s)
                        changed = True
            for s in startable():
                del remaining[s.key]
                started_at[s.key] = time.monotonic()
                if s.action != KEEP:
                    _changing.set()
                    run.on_event("started", step=s)
                running[pool.submit(run_step, run, s)] = s
            if not running:
                break
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                s = running.pop(fut)
                exc = fut.exception()
                took = time.monotonic() - started_at[s.key]
                if exc is None:
                    finished.add(s.key)
                    outcome.done.append(s.key)
                    run.on_event("done", step=s, found=run.found.get(s.key), elapsed=took)
                else:
                    outcome.failed[s.key] = exc
                    run.on_event("failed", step=s, error=exc, elapsed=took)
    except KeyboardInterrupt:
        run.cancel.set()
        in_flight = [s.key for s in running.values()]
        run.on_event("interrupted", in_flight=in_flight)
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for fut in list(running):
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except BaseException:  # noqa: BLE001 - each step's own error is moot after Ctrl-C
                pass
        raise Interrupted(f"interrupted; in flight: {', '.join(in_flight) or 'nothing'}",
                          "rerun the same command: it picks up where this one stopped") from None
    finally:
        pool.shutdown(wait=not run.cancel.is_set())
    outcome.elapsed_s = time.monotonic() - t0
    return outcome
