"""The executor on fake resource kinds: concurrency on the graph, failure isolation, Ctrl-C."""

from __future__ import annotations

import threading
import time

import pytest

from awslab.engine import executor
from awslab.engine.context import Context
from awslab.spec.model import CREATE, DELETE, Desired, Found, Kinds, Plan, Step
from awslab.engine.run import Run


class Recorder:
    def __init__(self, delays=None, fail=()):
        self.delays = delays or {}
        self.fail = set(fail)
        self.events: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def log(self, what, key):
        with self.lock:
            self.events.append((what, key, time.monotonic()))


class FakeKind:
    kind = "fake"
    capabilities = frozenset()

    def __init__(self, rec: Recorder):
        self.rec = rec

    def create(self, run, d: Desired) -> Found:
        self.rec.log("start", d.key)
        time.sleep(self.rec.delays.get(d.key, 0.0))
        if d.key in self.rec.fail:
            raise RuntimeError(f"{d.key} broke")
        self.rec.log("end", d.key)
        return Found(d.key, "fake", d.key, "available")

    def delete(self, run, f: Found) -> None:
        self.rec.log("delete", f.key)


def _plan(edges: dict[str, tuple[str, ...]], action=CREATE) -> Plan:
    steps = []
    for key, deps in edges.items():
        d = Desired(key, "fake", key, deps)
        steps.append(Step(key, "fake", action, deps, d, Found(key, "fake", key, "available") if action == DELETE else None))
    return Plan("s", tuple(steps))


@pytest.fixture
def rec():
    return Recorder()


def _run(rec: Recorder, events=None):
    """A run handed a registry of its own: the fake kind alone (nothing global is changed)."""
    return Run(ctx=Context(target="local", region="us-east-1", endpoint_url="http://127.0.0.1:1"), stack="s",
               lab_name="lab", on_event=(lambda e, **k: events.append((e, k))) if events is not None else (lambda *a, **k: None),
               kinds=Kinds([FakeKind(rec)]))


def test_execute__independent_branches_run_at_the_same_time(rec):
    rec.delays = {"db": 0.3, "cache": 0.3}
    outcome = executor.execute(_plan({"vpc": (), "db": ("vpc",), "cache": ("vpc",), "replica": ("db",)}), _run(rec))
    assert outcome.ok
    t = {(w, k): ts for w, k, ts in rec.events}
    # db and cache overlap (each started before the other ended): in parallel, whatever the machine's load,
    # where a wall-clock bound would flake on a busy CI worker.
    assert t[("start", "cache")] < t[("end", "db")] and t[("start", "db")] < t[("end", "cache")]
    assert t[("start", "replica")] >= t[("end", "db")]
    assert t[("start", "db")] >= t[("end", "vpc")]


def test_execute__a_step_starts_as_soon_as_its_own_dependencies_finish(rec):
    rec.delays = {"slow": 0.5, "fast": 0.0}
    executor.execute(_plan({"slow": (), "fast": (), "after-fast": ("fast",)}), _run(rec))
    t = {(w, k): ts for w, k, ts in rec.events}
    assert t[("start", "after-fast")] < t[("end", "slow")]  # no batch barrier


def test_execute__a_failure_blocks_dependents_only(rec):
    rec.fail = {"db"}
    events = []
    outcome = executor.execute(_plan({"vpc": (), "db": ("vpc",), "replica": ("db",), "cache": ("vpc",)}), _run(rec, events))
    assert set(outcome.failed) == {"db"} and outcome.blocked == ["replica"]
    assert "cache" in outcome.done and not outcome.ok
    assert ("blocked", "replica") in {(e, k["step"].key) for e, k in events if "step" in k}


def test_execute__delete_plan_runs_in_dependency_order(rec):
    # In a delete plan, deps are what must be gone first.
    executor.execute(_plan({"vpc": ("subnet",), "subnet": ("instance",), "instance": ()}, DELETE), _run(rec))
    assert [k for w, k, _ in rec.events if w == "delete"] == ["instance", "subnet", "vpc"]
