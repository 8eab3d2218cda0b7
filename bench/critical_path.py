"""The critical path of `awslab up`, computed from the latency profile and the topology (not measured).

    python bench/critical_path.py [--lab week6] [--latency realistic] [--time-scale 0.01]

Every resource the lab wants (``awslab.spec.topology.desired``) takes, under a profile, the time of the
timelines the local AWS plays for its create (``awslab.local.latency``: the durations are read from
there, never copied here); API-only resources take ~0. A resource can start only once its
dependencies (the ``deps`` of each Desired) are done, so ``up`` cannot finish before the longest
path through that graph. This file only says *which* transitions a kind's create goes through
(the same mapping ``awslab/local/patches/`` applies); an unknown kind is an error, so a new kind
in the topology has to be placed here before the figure is trusted again.
"""

from __future__ import annotations

import argparse
from typing import Callable

from awslab.spec.model import Desired
from awslab.local import latency
from awslab.spec.lab import Lab, load_lab
from awslab.spec.topology import desired

# Kind -> the transitions (``latency.REALISTIC`` keys) its create plays, in order, on the local AWS
# and that awslab waits out before the step is done (see local/patches/rds.py: create_db_instance,
# create_db_instance_read_replica, create_replication_group, run_instances).
CREATE_TRANSITIONS: dict[str, Callable[[Desired], tuple[str, ...]]] = {
    "db-instance": lambda d: ("rds.create.multi_az",) if d.spec["database"].multi_az else ("rds.create",),
    "db-replica": lambda d: ("rds.replica",),
    "replication-group": lambda d: ("elasticache.create",),
    "instance": lambda d: ("ec2.run",),
    "db-cluster": lambda d: ("rds.cluster.create",),
}
# Kinds whose create is API calls only: no timeline on the local AWS.
API_ONLY = frozenset({"vpc", "internet-gateway", "subnet", "route-table", "security-group", "security-group-rules",
                      "instance-profile", "db-subnet-group", "cache-subnet-group", "secret",
                      "db-parameter-group", "db-cluster-parameter-group", "cache-parameter-group"})


def create_seconds(d: Desired, lat: latency.Latency) -> float:
    """How long the local AWS keeps ``d`` in transitional states after its create, under ``lat``."""
    if d.kind in API_ONLY:
        return 0.0
    if d.kind not in CREATE_TRANSITIONS:
        raise KeyError(f"bench/critical_path.py does not know how long a '{d.kind}' takes to create ({d.key}): "
                       "add it to CREATE_TRANSITIONS or API_ONLY")
    transitions = CREATE_TRANSITIONS[d.kind](d)
    for t in transitions:
        if t not in latency.REALISTIC:
            raise KeyError(f"latency.py has no transition '{t}' (used for {d.kind})")
    return sum(lat.seconds(t) for t in transitions)


def shortest_phase(lab: Lab, lat: latency.Latency, stack: str = "bench",
                   region: str = "us-east-1") -> tuple[float, str, str] | None:
    """The shortest transitional state any of the lab's creates passes through: (seconds, key, state).

    A state shorter than the client's poll interval may never be seen: below that, a run measures
    the polling more than the timelines."""
    out = None
    for d in desired(lab, stack, region):
        if d.kind in API_ONLY or d.kind not in CREATE_TRANSITIONS:
            continue
        for t in CREATE_TRANSITIONS[d.kind](d):
            for state, secs in lat.phases(t):
                if out is None or secs < out[0]:
                    out = (secs, d.key, state)
    return out


def durations(lab: Lab, lat: latency.Latency, stack: str = "bench", region: str = "us-east-1") -> dict[str, tuple[float, tuple[str, ...]]]:
    """key -> (create seconds, deps within the lab)."""
    want = desired(lab, stack, region)
    keys = {d.key for d in want}
    return {d.key: (create_seconds(d, lat), tuple(k for k in d.deps if k in keys)) for d in want}


def critical_path(lab: Lab, lat: latency.Latency, stack: str = "bench",
                  region: str = "us-east-1") -> tuple[float, list[tuple[str, float]]]:
    """The longest path through the dependency graph: (seconds, [(key, its own seconds), ...] in order)."""
    graph = durations(lab, lat, stack, region)
    finish: dict[str, float] = {}
    depth: dict[str, int] = {}          # keys on the chosen chain ending here (ties go to the longer chain)
    via: dict[str, str | None] = {}
    visiting: set[str] = set()

    def end(key: str) -> float:
        if key in finish:
            return finish[key]
        if key in visiting:
            raise ValueError(f"dependency cycle through {key}")
        visiting.add(key)
        own, deps = graph[key]
        prev = max(sorted(deps), key=lambda dep: (end(dep), depth[dep]), default=None)
        visiting.discard(key)
        finish[key] = (finish[prev] if prev else 0.0) + own
        depth[key] = (depth[prev] if prev else 0) + 1
        via[key] = prev
        return finish[key]

    for key in graph:
        end(key)
    last = max(graph, key=lambda k: (finish[k], depth[k]))
    chain = []
    k: str | None = last
    while k is not None:
        chain.append(k)
        k = via[k]
    chain.reverse()
    return finish[last], [(k, graph[k][0]) for k in chain]


def describe(total: float, path: list[tuple[str, float]]) -> str:
    return " -> ".join(f"{k} ({s:.1f}s)" if s else k for k, s in path) + f"  = {total:.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="week6")
    parser.add_argument("--latency", default="realistic", help="a profile spec, as for `awslab local start --latency`")
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="lab override, as for `awslab up`")
    args = parser.parse_args()
    lab = load_lab(args.lab, overrides=args.set)
    lat = latency.parse(args.latency, args.time_scale)
    graph = durations(lab, lat)
    print(f"lab {lab.name}, latency {args.latency}, time scale {args.time_scale:g}")
    print(f"{'resource':<26} {'create s':>9}  depends on")
    for key, (secs, deps) in graph.items():
        print(f"{key:<26} {secs:>9.2f}  {', '.join(deps) or '-'}")
    total, path = critical_path(lab, lat)
    print(f"\ncritical path: {describe(total, path)}")


if __name__ == "__main__":
    main()
