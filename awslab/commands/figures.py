"""What `drill --report` and `demo caching --report` keep for `awslab report`: their result, where
and when it was measured, and (for the drill) the write load's timeline, as JSON in the awslab
home (home/state.py: ``figures/<stack>/<name>.json``).

Each is tagged with the VPC it was measured on: a stack removed and built again under the same
name has a new VPC, and the report leaves the old one's figures out instead of showing them as
this stack's.
"""

from __future__ import annotations

from datetime import datetime, timezone

from awslab import ui
from awslab.home import state

MAX_BINS = 240      # a timeline's resolution: enough to see a sub-second outage, a few KB of JSON


def timeline(acked: list[tuple[int, float]], errors: list[float], started: float, bin_s: float = 0.05) -> dict:
    """A write load's acknowledged writes and failures per time bin, seconds relative to the moment
    the failover was asked for, and the outage as drill's ``Load.downtime`` measures it: from the
    last write acknowledged before the first failure after ``started`` to the first one after it."""
    times = [t for _, t in acked] + list(errors)
    if not times:
        return {"bin_s": bin_s, "start_s": 0.0, "acked": [], "errors": [], "down_from_s": None, "down_to_s": None}
    lo, hi = min(times), max(times)
    while (hi - lo) / bin_s > MAX_BINS:
        bin_s *= 2
    n = int((hi - lo) / bin_s) + 1
    ok, bad = [0] * n, [0] * n
    for _, t in acked:
        ok[int((t - lo) / bin_s)] += 1
    for t in errors:
        bad[int((t - lo) / bin_s)] += 1
    failures = sorted(t for t in errors if t >= started)
    down_from = down_to = None
    if failures:
        before = [t for _, t in acked if t < failures[0]]
        after = [t for _, t in acked if t > failures[0]]
        down_from = (before[-1] if before else started) - started
        down_to = (after[0] if after else hi) - started
    r = lambda x: None if x is None else round(x, 4)  # noqa: E731
    return {"bin_s": bin_s, "start_s": r(lo - started), "acked": ok, "errors": bad,
            "down_from_s": r(down_from), "down_to_s": r(down_to)}


def vpc_of(found: dict) -> str:
    vpc = found.get("network.vpc")
    return vpc.id if vpc is not None else ""


def save(stack: str, name: str, result: dict, found: dict, progress: ui.Progress | None = None) -> None:
    """Keep ``result`` as the stack's ``name`` figures (drill, caching) for the next `awslab report`."""
    path = state.save_figures(stack, name, {
        "name": name, "stack": stack, "vpc": vpc_of(found),
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "result": result})
    if progress is not None:
        progress.line(f"saved the {name} figures to {path}: `awslab report` shows them")


def save_for_run(run, name: str, result: dict, progress: ui.Progress | None = None) -> None:
    """``save`` for a command that did not keep its discovery (`demo caching`): one more describe."""
    from awslab.engine.discovery import discover

    save(run.stack, name, result, run.found or discover(run), progress)


def load(stack: str, found: dict) -> tuple[dict[str, dict], list[str]]:
    """The stack's figures measured on its present VPC, and the names of those left out (older stacks')."""
    vpc, kept, stale = vpc_of(found), {}, []
    for name, data in state.load_figures(stack).items():
        if isinstance(data.get("result"), dict) and data.get("vpc") == vpc:
            kept[name] = data
        else:
            stale.append(name)
    return kept, stale
