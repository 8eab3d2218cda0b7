"""`awslab demo caching`: ElastiCache's caching strategies measured side by side on the lab's real
database and cache (through the stack's host, over TLS with AUTH, as the lab requires).

The workload: reports over the seeded orders table (a full scan with a percentile: milliseconds
of real work on PostgreSQL, or on the MySQL family in MySQL's SQL, ``verify/dialects.py``; not a sleep), asked for with Zipf-skewed popularity as real traffic
is, and a share of writes. Every report carries a *version* (``awslab_demo_versions``); a write
bumps it in the database, so a read that returns an older version than the database's is a stale
read, counted, with how long after the write it was still served.

Each strategy runs the same request stream for the same time:

- ``database-only``: every read is a query;
- ``lazy-ttl``: lazy loading (cache-aside): GET, on a miss query and SET with a TTL; writes go to
  the database only, so a cached value is stale until it expires;
- ``write-through``: writes update the database and the cache; reads fill misses, no TTL;
- ``write-through-ttl``: the same, every key with a TTL (AWS's "Adding TTL": both benefits);
- ``lazy-ttl-jitter``: lazy loading whose TTLs vary by +-20 %, so keys cached together do not
  all expire together.

Then the stampede: one hot key expires under concurrent readers; without protection every reader
that misses queries the database; with single-flight (a lock in Redis, ``SET NX PX``, and a second
look in the cache once it is held) exactly one does.

`demo caching --eviction`, the cache filled past its memory under each eviction policy, is
commands/eviction.py; it reaches the cache through this module's ``connections``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from awslab import ui
from awslab.commands.demo import pct, seed_orders
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import UsageError
from awslab.verify import live
from awslab.verify.dialects import Dialect, db_session

STRATEGIES = ("database-only", "lazy-ttl", "write-through", "write-through-ttl", "lazy-ttl-jitter")
JITTER = 0.2             # lazy-ttl-jitter's TTLs: +-20 %
ZIPF_S = 1.1             # popularity of the k-th report ~ 1 / k^s
PREFIX = "awslab:demo:caching"
ROWS = 200_000           # orders seeded (shared with `demo cache-aside`)
STAMPEDE_S = 0.5         # how long the readers of the hot key read after it expired (the refill is in its first ms)
GUIDE = "ElastiCache User Guide, 'Caching strategies': 'Lazy loading', 'Write-through', 'Adding TTL'"


@dataclass(frozen=True)
class Workload:
    duration_s: float = 3.0   # per strategy
    requests: int | None = None   # instead of the duration: this many requests per strategy, the same for each
    writes_pct: int = 10      # share of requests that are writes
    ttl_s: int = 2
    keys: int = 50            # distinct reports
    readers: int = 16         # concurrent readers of the stampede
    seed: int = 6
    strategies: tuple[str, ...] = STRATEGIES

    def check(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise UsageError(f"unknown strategy '{unknown[0]}'", f"one of: {', '.join(STRATEGIES)}")


@dataclass
class Tally:
    name: str
    reads: int = 0
    writes: int = 0
    hits: int = 0
    db_reads: int = 0
    stale: int = 0
    stale_max_age_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    memory_bytes: int = 0
    evicted: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {"strategy": self.name, "reads": self.reads, "writes": self.writes,
                "p50_ms": round(pct(lat, 50), 3), "p95_ms": round(pct(lat, 95), 3), "p99_ms": round(pct(lat, 99), 3),
                "hit_ratio": round(self.hits / self.reads, 4) if self.reads else 0.0,
                "db_reads": self.db_reads, "db_reads_per_s": round(self.db_reads / self.elapsed_s, 1) if self.elapsed_s else 0.0,
                "stale_reads": self.stale, "stale_max_age_s": round(self.stale_max_age_s, 3),
                "memory_bytes": self.memory_bytes, "evicted_keys": self.evicted}


class Source:
    """The database side: versioned reports (the version read with the report, one query's cost),
    in SQL both engines read but the report's (the dialect's)."""

    def __init__(self, db, dialect: Dialect, keys: int) -> None:
        self.db, self.dialect, self.keys = db, dialect, keys
        self.current: dict[int, int] = {}
        self.changed_at: dict[int, float] = {}

    def prepare(self) -> None:
        self.db.run("CREATE TABLE IF NOT EXISTS awslab_demo_versions (k int PRIMARY KEY, v int NOT NULL)")
        have = {k for (k,) in self.db.run("SELECT k FROM awslab_demo_versions")}
        missing = [k for k in range(self.keys) if k not in have]
        if missing:
            self.db.run("INSERT INTO awslab_demo_versions (k, v) VALUES " + ", ".join(f"({k}, 1)" for k in missing))
        self.current = {k: v for k, v in self.db.run("SELECT k, v FROM awslab_demo_versions WHERE k < :n", n=self.keys)}

    def read(self, k: int, db=None) -> dict:
        db = db or self.db
        (v,) = db.run("SELECT v FROM awslab_demo_versions WHERE k = :k", k=k)[0]
        report = [list(r) for r in db.run(self.dialect.report, buckets=self.keys, k=k)]
        return {"v": v, "r": report}

    def write(self, k: int) -> int:
        # The demo's writes are this session's alone, so the new version is the one it holds plus one
        # (one round trip, as PostgreSQL's UPDATE ... RETURNING, which MySQL lacks).
        self.db.run("UPDATE awslab_demo_versions SET v = v + 1 WHERE k = :k", k=k)
        v = self.current[k] + 1
        self.current[k], self.changed_at[k] = v, time.monotonic()
        return v


def caching(run: Run, work: Workload) -> dict:
    work.check()
    if not run.ctx.is_local:
        raise UsageError("`awslab demo caching` measures the local AWS's engines; on AWS the lab's database and "
                         "cache are private, and running the demo from the EC2 host is not built yet",
                         "run it on the local target (drop --target aws)")
    (dialect, db_connect), cache_connect, reader_connect = connections(run)
    db, cache = db_connect(), cache_connect()
    try:
        seed_orders(db, dialect, ROWS)
        source = Source(db, dialect, work.keys)
        source.prepare()
        tallies = [_strategy(name, work, source, cache) for name in work.strategies]
        spread = _expiry_spread(cache, work)
        stampede = {name: _stampede(protected, work, source, db_connect, cache_connect)
                    for name, protected in (("unprotected", False), ("single_flight", True))}
        reader = _reader(cache, reader_connect) if reader_connect is not None else None
    finally:
        clear_demo_keys(cache)
        db.close()
        cache.close()
    return {"stack": run.stack, "workload": {"duration_s": work.duration_s, "requests": work.requests,
                                             "writes_pct": work.writes_pct,
                                             "ttl_s": work.ttl_s, "keys": work.keys, "zipf_s": ZIPF_S,
                                             "rows": ROWS, "readers": work.readers},
            "strategies": [t.summary() for t in tallies], "ttl_jitter": spread, "stampede": stampede,
            "reader_endpoint": reader}


READER_TRIES = 50


def _reader(cache, reader_connect) -> dict:
    """The cache's reader endpoint: which role answers behind it, and a read there right after a
    write on the primary (replication to the replicas is asynchronous)."""
    reader = reader_connect()
    try:
        role = reader.info("replication").get("role")
        misses, visible = 0, []
        for i in range(READER_TRIES):
            key = f"{PREFIX}:reader:{i}"
            cache.set(key, i)
            written = time.perf_counter()
            got = reader.get(key)
            if got is None or int(got) != i:
                misses += 1
                while (got is None or int(got) != i) and time.perf_counter() - written < 5:
                    got = reader.get(key)
            visible.append((time.perf_counter() - written) * 1000)
        visible.sort()
        return {"role": "replica" if role == "slave" else role, "tries": READER_TRIES, "missed": misses,
                "visible_after_ms_p50": round(pct(visible, 50), 3), "visible_after_ms_max": round(visible[-1], 3)}
    finally:
        reader.close()


def cache_addresses(group, mapping) -> tuple[live.Address, live.Address | None]:
    """Where the host reaches the cache's primary endpoint (required to have its engine) and its
    reader endpoint (None: it has none, or no engine behind it)."""
    node_group = ((group.get("raw") or {}).get("NodeGroups") or [{}])[0]
    primary_ep, reader_ep = node_group.get("PrimaryEndpoint") or {}, node_group.get("ReaderEndpoint") or {}
    primary = live.resolve(mapping, primary_ep.get("Address", ""), primary_ep.get("Port", 0))
    live.require_engine(primary, "the cache")
    reader = live.resolve(mapping, reader_ep["Address"], reader_ep["Port"]) if reader_ep.get("Address") else None
    return primary, reader if reader is not None and reader.usable else None


def connections(run: Run, need_db: bool = True, found: dict | None = None
                ) -> tuple[tuple[Dialect, Callable[[], Any]] | None, Callable[[], Any], Callable[[], Any] | None]:
    """Factories of sessions to the lab's database (with its dialect; None unless ``need_db``), its
    cache's primary and its reader endpoint (None: no replica), as its host sees them."""
    found = found if found is not None else discover(run)
    primary, group, token = found.get("db.primary"), found.get("cache.group"), found.get("cache.auth-token")
    if (need_db and primary is None) or group is None or token is None:
        raise UsageError(f"stack {run.stack} needs its database and cache for the demo", "run `awslab up` first")
    mapping = live.endpoint_map(run, live.host_of(found))
    db = None
    if need_db:
        dialect, db_connect, _ = db_session(run, primary.get("raw") or {}, mapping, "awslab demo")
        db = (dialect, db_connect)
    cache_addr, reader_addr = cache_addresses(group, mapping)
    secret = live.cache_token(run, token.id)
    reader = (lambda: live.redis_connect(reader_addr, secret)) if reader_addr is not None else None
    return db, (lambda: live.redis_connect(cache_addr, secret)), reader


def _stream(work: Workload):
    """The same requests for every strategy: (is a write, report), popularity Zipf-skewed."""
    rng = random.Random(work.seed)
    cumulative = list(itertools.accumulate(1 / (k + 1) ** ZIPF_S for k in range(work.keys)))
    total = cumulative[-1]
    while True:
        k = min(work.keys - 1, bisect.bisect_left(cumulative, rng.random() * total))
        yield rng.random() * 100 < work.writes_pct, k


def _strategy(name: str, work: Workload, source: Source, cache) -> Tally:
    clear_demo_keys(cache)
    tally = Tally(name)
    before = cache_counters(cache)
    jitter = random.Random(work.seed + 1)
    uses_cache, through = name != "database-only", name.startswith("write-through")
    ttl = None if name == "write-through" else work.ttl_s

    def expiry() -> int | None:
        if ttl is None:
            return None
        if name == "lazy-ttl-jitter":
            return max(1, round(ttl * 1000 * jitter.uniform(1 - JITTER, 1 + JITTER)))
        return ttl * 1000

    started = time.monotonic()
    deadline = started + work.duration_s
    for n, (is_write, k) in enumerate(_stream(work)):
        now = time.monotonic()
        if (n >= work.requests) if work.requests else (now >= deadline):
            break
        key = f"{PREFIX}:{name}:{k}"
        if is_write:
            tally.writes += 1
            v = source.write(k)
            if through:   # the new version goes to the cache with the write (its report is unchanged)
                held = cache.get(key)
                if held is not None:
                    value = {**json.loads(held), "v": v}
                else:
                    value = source.read(k)
                    tally.db_reads += 1
                cache.set(key, json.dumps(value), px=expiry())
            continue
        t0 = time.perf_counter()
        value = None
        if uses_cache:
            held = cache.get(key)
            if held is not None:
                value = json.loads(held)
                tally.hits += 1
        if value is None:
            value = source.read(k)
            tally.db_reads += 1
            if uses_cache:
                cache.set(key, json.dumps(value), px=expiry())
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
        tally.reads += 1
        if value["v"] < source.current[k]:
            tally.stale += 1
            tally.stale_max_age_s = max(tally.stale_max_age_s, time.monotonic() - source.changed_at[k])
    tally.elapsed_s = time.monotonic() - started
    after = cache_counters(cache)
    tally.memory_bytes = _held(cache, f"{PREFIX}:{name}:*")
    tally.evicted = after["evicted_keys"] - before["evicted_keys"]
    return tally


def _expiry_spread(cache, work: Workload) -> dict:
    """When ``keys`` keys cached at the same moment expire: all within a few ms with one TTL,
    spread over +-20 % of it with jitter (the remaining TTLs read back from Redis)."""
    rng = random.Random(work.seed + 2)
    spread = {}
    for label, jittered in (("no_jitter_spread_ms", False), ("jitter_spread_ms", True)):
        pipe = cache.pipeline(transaction=False)
        for k in range(work.keys):
            ms = round(work.ttl_s * 1000 * (rng.uniform(1 - JITTER, 1 + JITTER) if jittered else 1))
            pipe.set(f"{PREFIX}:spread:{label}:{k}", "1", px=ms)
        pipe.execute()
        pipe = cache.pipeline(transaction=False)
        for k in range(work.keys):
            pipe.pttl(f"{PREFIX}:spread:{label}:{k}")
        left = [ms for ms in pipe.execute() if ms and ms > 0]
        spread[label] = (max(left) - min(left)) if left else 0
    return {"keys": work.keys, "ttl_s": work.ttl_s, "jitter": JITTER, **spread}


def _stampede(protected: bool, work: Workload, source: Source, db_connect, cache_connect) -> dict:
    """One hot key expires while ``readers`` threads read it: how many database queries its refill
    cost. Protected: single-flight (the lock ``SET NX PX``; a second look once it is held)."""
    key, lock = f"{PREFIX}:stampede:{protected}", f"{PREFIX}:stampede:{protected}:lock"
    hot = 0
    seeder = cache_connect()
    seeder.delete(key, lock)
    seeder.set(key, json.dumps(source.read(hot)), px=200)   # expires a moment after the readers start
    sessions = [(db_connect(), cache_connect()) for _ in range(work.readers)]
    queries, lock_guard, misses = [0], threading.Lock(), [0]
    start = threading.Barrier(work.readers)

    def reader(db, cache) -> None:
        start.wait()
        deadline = time.monotonic() + 0.2 + STAMPEDE_S
        while time.monotonic() < deadline:
            if cache.get(key) is not None:
                time.sleep(0.002)
                continue
            with lock_guard:
                misses[0] += 1
            if protected:
                if not cache.set(lock, "1", nx=True, px=2000):
                    time.sleep(0.005)   # another reader refills it: look again shortly
                    continue
                if cache.get(key) is not None:   # refilled between the miss and the lock
                    cache.delete(lock)
                    continue
            value = source.read(hot, db)
            with lock_guard:
                queries[0] += 1
            cache.set(key, json.dumps(value), ex=60)
            if protected:
                cache.delete(lock)

    threads = [threading.Thread(target=reader, args=s, daemon=True) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for db, cache in sessions:
        db.close()
        cache.close()
    seeder.delete(key, lock)
    seeder.close()
    return {"readers": work.readers, "db_queries": queries[0], "misses": misses[0]}


def _held(cache, pattern: str) -> int:
    """Bytes the keys matching ``pattern`` hold (MEMORY USAGE of each): what a strategy keeps in
    the cache. A ``used_memory`` difference would also count client and replication buffers,
    which move by tens of KiB on their own."""
    keys = list(cache.scan_iter(pattern, count=1000))
    pipe = cache.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    return sum(n or 0 for n in pipe.execute()) if keys else 0


def cache_counters(cache) -> dict:
    """The cache server's memory in use and its evictions so far (INFO memory, INFO stats)."""
    memory, stats = cache.info("memory"), cache.info("stats")
    return {"used_memory": int(memory.get("used_memory", 0)), "evicted_keys": int(stats.get("evicted_keys", 0))}


def clear_demo_keys(cache) -> None:
    """Delete every key the caching demos wrote (under ``PREFIX``), 500 at a time."""
    keys = list(cache.scan_iter(f"{PREFIX}:*", count=1000))
    for i in range(0, len(keys), 500):
        cache.delete(*keys[i:i + 500])


def print_result(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    w = result["workload"]
    rows = []
    for s in result["strategies"]:
        stale = f"{s['stale_reads']}" + (f" (up to {s['stale_max_age_s']:.1f} s old)" if s["stale_reads"] else "")
        rows.append([s["strategy"], s["reads"], f"{s['p50_ms']:.2f} / {s['p95_ms']:.2f} / {s['p99_ms']:.2f}",
                     "-" if s["strategy"] == "database-only" else f"{s['hit_ratio']:.0%}", f"{s['db_reads_per_s']:.0f}",
                     stale, _bytes(s["memory_bytes"]), s["evicted_keys"]])
    ui.emit(ui.table(["STRATEGY", "READS", "READ MS p50 / p95 / p99", "HITS", "DB READS/S", "STALE READS",
                      "MEMORY", "EVICTED"], rows))
    st, sp = result["stampede"], result["ttl_jitter"]
    ui.emit(f"\nStampede: one hot key expired under {st['unprotected']['readers']} concurrent readers. Unprotected, "
            f"{st['unprotected']['db_queries']} of them queried the database for it; with single-flight (a lock "
            f"taken with SET NX PX, and a second look in the cache once held), {st['single_flight']['db_queries']}.")
    ui.emit(f"TTL jitter: {sp['keys']} keys cached together with a {sp['ttl_s']} s TTL expire within "
            f"{sp['no_jitter_spread_ms']} ms of each other; with +-{sp['jitter']:.0%} jitter, spread over "
            f"{sp['jitter_spread_ms']} ms, so their refills do not reach the database at once.")
    rd = result.get("reader_endpoint")
    if rd:
        ui.emit(f"Reader endpoint: answered by a {rd['role']}; a read there right after a write on the primary "
                f"missed it {rd['missed']} times in {rd['tries']} (visible after {rd['visible_after_ms_p50']:.2f} ms "
                f"p50, {rd['visible_after_ms_max']:.2f} ms at most): replicas take reads off the primary, "
                "asynchronously.")
    ui.emit("\n" + explain(result))
    per = f"{w['requests']:,} requests" if w.get("requests") else f"{w['duration_s']:g} s"
    ui.emit(f"\nWorkload: {per} per strategy, {w['writes_pct']} % writes, {w['keys']} reports "
            f"(Zipf s={w['zipf_s']}) over {w['rows']:,} orders, TTL {w['ttl_s']} s; the same request stream for "
            f"each strategy, through the stack's host, over TLS with AUTH. Source: {GUIDE}.")


def explain(result: dict) -> str:
    by = {s["strategy"]: s for s in result["strategies"]}
    lines = []
    base, lazy = by.get("database-only"), by.get("lazy-ttl")
    if base and lazy and lazy["p50_ms"]:
        lines.append(f"Lazy loading answers {lazy['hit_ratio']:.0%} of reads from Redis (p50 {lazy['p50_ms']:.2f} ms "
                     f"against {base['p50_ms']:.2f} ms from the database, {base['p50_ms'] / lazy['p50_ms']:.0f}x) and "
                     f"reads the database {lazy['db_reads_per_s']:.0f} times a second instead of "
                     f"{base['db_reads_per_s']:.0f}. Only what is asked for is cached, but a write does not reach "
                     f"the cache: {lazy['stale_reads']} reads returned an older version, for at most the TTL.")
    wt = by.get("write-through")
    if wt:
        lines.append(f"Write-through updates the cache with every write: {wt['stale_reads']} stale reads, at the "
                     "cost of a cache write per database write and of caching data that may never be read "
                     f"({_bytes(wt['memory_bytes'])} here, kept forever without a TTL).")
    wtt = by.get("write-through-ttl")
    if wtt:
        lines.append("Adding a TTL to write-through keeps its freshness and lets unread keys expire; lazy "
                     "loading with a TTL bounds how stale a value can be.")
    return "\n".join(lines)


def _bytes(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"
