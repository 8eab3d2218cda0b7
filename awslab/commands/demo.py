"""`awslab demo cache-aside`: what a cache in front of a database buys, measured on the real engines.

A table of orders is seeded in the lab's database (PostgreSQL, or MySQL's SQL on the MySQL family:
``verify/dialects.py``); a report query (a full scan with a
percentile per category) is genuinely costly. The same stream of requests, skewed towards a few
hot reports as real traffic is, runs twice: straight to the database, then through a cache-aside
layer on the lab's Redis (GET; on a miss, query and SET with a TTL). Both sides' latencies are
measured, and every cached answer is checked against the database's.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass

from awslab import ui
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import OperationError
from awslab.verify import live
from awslab.verify.dialects import Dialect, db_session

TTL_S = 60


@dataclass
class Side:
    name: str
    latencies_ms: list[float]
    hits: int = 0

    def summary(self) -> dict:
        lat = sorted(self.latencies_ms)
        return {"requests": len(lat), "hit_ratio": self.hits / len(lat) if lat else 0.0,
                "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "mean_ms": statistics.fmean(lat) if lat else 0.0}


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def cache_aside(run: Run, *, requests: int, rows: int, reports: int, seed: int = 6) -> dict:
    found = discover(run)
    primary, group, token = found.get("db.primary"), found.get("cache.group"), found.get("cache.auth-token")
    if primary is None or group is None or token is None:
        raise OperationError(f"stack {run.stack} needs its database and cache for the demo", "run `awslab up` first")
    mapping = live.endpoint_map(run, live.host_of(found))
    dialect, db_connect, _ = db_session(run, primary.get("raw") or {}, mapping, "awslab demo cache-aside")
    cache_ep = ((group.get("raw") or {}).get("NodeGroups") or [{}])[0].get("PrimaryEndpoint") or {}
    cache_addr = live.resolve(mapping, cache_ep.get("Address", ""), cache_ep.get("Port", 0))
    live.require_engine(cache_addr, "the cache")
    db = db_connect()
    cache = live.redis_connect(cache_addr, live.cache_token(run, token.id))
    try:
        seeded = seed_orders(db, dialect, rows)
        rng = random.Random(seed)
        # Skewed like real traffic: a few reports are asked for far more often than the rest.
        stream = [min(reports - 1, int(reports * rng.random() ** 3)) for _ in range(requests)]
        direct = Side("database only", [])
        expected: dict[int, list] = {}
        for k in stream:
            t0 = time.perf_counter()
            rows_out = db.run(dialect.report, buckets=reports, k=k)
            direct.latencies_ms.append((time.perf_counter() - t0) * 1000)
            expected[k] = [list(r) for r in rows_out]
        cache.delete(*[f"awslab:demo:report:{k}" for k in range(reports)])
        aside = Side("cache-aside (Redis, then database on a miss)", [])
        for k in stream:
            t0 = time.perf_counter()
            key = f"awslab:demo:report:{k}"
            hit = cache.get(key)
            if hit is not None:
                answer = json.loads(hit)
                aside.hits += 1
            else:
                answer = [list(r) for r in db.run(dialect.report, buckets=reports, k=k)]
                cache.set(key, json.dumps(answer), ex=TTL_S)
            aside.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if answer != expected[k]:
                raise OperationError(f"the cached report {k} differs from the database's", "this is a bug in the demo")
    finally:
        db.close()
        cache.close()
    return {"rows": seeded, "distinct_reports": len(set(stream)), "ttl_s": TTL_S,
            "direct": direct.summary(), "cache_aside": aside.summary()}


SEED_ROWS_AT_ONCE = 25_000   # a statement each: well inside a session's 5 s read timeout on a busy machine


def seed_orders(db, dialect: Dialect, rows: int) -> int:
    """The demo's orders table holding at least ``rows`` orders, inserted a batch at a time (one
    INSERT of 200,000 outlasted the session's 5 s read timeout on a loaded machine: "The read
    operation timed out")."""
    db.run(dialect.orders_table)
    have = db.run("SELECT count(*) FROM awslab_demo_orders")[0][0]
    if have < rows:
        for done in range(have, rows, SEED_ROWS_AT_ONCE):
            db.run(dialect.seed_orders, n=min(SEED_ROWS_AT_ONCE, rows - done))
        db.run(dialect.analyze_orders)
    return max(have, rows)


def explain(result: dict) -> str:
    d, c = result["direct"], result["cache_aside"]
    speed = d["mean_ms"] / c["mean_ms"] if c["mean_ms"] else float("inf")
    return (f"{c['requests']} requests over {result['distinct_reports']} distinct reports ({result['rows']} orders).\n"
            f"The database answers every request by scanning the table: p50 {d['p50_ms']:.1f} ms. Through the cache, "
            f"{c['hit_ratio']:.0%} of requests were hits answered by Redis (p50 {c['p50_ms']:.2f} ms); only the first "
            f"request for each report paid the query, so p95 {c['p95_ms']:.1f} ms stays near the database's cost.\n"
            f"On average the cache-aside path was {speed:.0f}x faster. The price: answers up to {result['ttl_s']} s "
            f"stale (the TTL), and a cold cache is no faster than no cache. A primary-key lookup would gain "
            f"little: caches pay off for expensive, repeated reads.")


def print_result(result: dict, output: str) -> None:
    """Both distributions as a table (or JSON), then what they show."""
    if output == "json":
        ui.emit_json(result)
        return
    rows = [[name, s["requests"], f"{s['hit_ratio']:.0%}", f"{s['p50_ms']:.2f}", f"{s['p95_ms']:.2f}", f"{s['mean_ms']:.2f}"]
            for name, s in (("database only", result["direct"]), ("cache-aside", result["cache_aside"]))]
    ui.emit(ui.table(["PATH", "REQUESTS", "HIT RATIO", "P50 MS", "P95 MS", "MEAN MS"], rows))
    ui.emit("\n" + explain(result))
