"""`awslab demo caching --eviction`: the lab's cache filled past its memory with keys that have no
TTL, under each ``maxmemory-policy`` set the AWS way (a cache parameter group put on the
replication group, the previous group put back after), then read Zipf-skewed: hit ratio,
evictions, writes refused with Redis's OOM error.

Local AWS only: on AWS it would evict the account's data, so it refuses --target aws before any
call, and its ElastiCache calls (the parameter groups) need no place in the lab's IAM policy
(tests/spec/test_policy.py's LOCAL_ONLY_PATH). It reaches the cache as `demo caching` does
(commands/caching.py).
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from typing import Callable

from botocore.exceptions import ClientError

from awslab import ui
from awslab.commands.caching import PREFIX, ZIPF_S, cache_counters, clear_demo_keys, connections
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import OperationError, UsageError

EVICTION_POLICIES = ("volatile-lru", "allkeys-lru", "noeviction")
VALUE_BYTES = 1024


def eviction(run: Run, policies: tuple[str, ...] = EVICTION_POLICIES, seed: int = 6) -> dict:
    """Fill the lab's cache past its memory with keys that have no TTL, under each eviction policy
    set the AWS way (a cache parameter group's ``maxmemory-policy``, put on the replication group),
    then read Zipf-skewed, loading what is missing: hit ratio, evictions, writes refused. The
    group the cache had is put back at the end."""
    from awslab.local.patches.cache_parameters import EVICTION

    unknown = [p for p in policies if p not in EVICTION.split(",")]
    if unknown:
        raise UsageError(f"unknown eviction policy '{unknown[0]}'", f"one of: {EVICTION.replace(',', ', ')}")
    if not run.ctx.is_local:
        raise UsageError("`awslab demo caching --eviction` fills the local AWS's cache; on AWS it would evict "
                         "your data", "run it on the local target (drop --target aws)")
    found = discover(run)
    group = found.get("cache.group")
    if group is None or found.get("cache.auth-token") is None:
        raise UsageError(f"stack {run.stack} has no cache for the demo", "run `awslab up` first")
    _, cache_connect, _ = connections(run, need_db=False, found=found)
    ec = run.client("elasticache")
    gid = group.id
    member = ec.describe_cache_clusters(CacheClusterId=(group.get("raw") or {}).get("MemberClusters", [gid])[0])
    original = member["CacheClusters"][0].get("CacheParameterGroup", {}).get("CacheParameterGroupName") or "default.redis7"
    family = next((g["CacheParameterGroupFamily"] for g in ec.describe_cache_parameter_groups(
        CacheParameterGroupName=original)["CacheParameterGroups"]), "redis7")
    demo_group = f"{run.stack}-demo-eviction"
    cache = cache_connect()
    out = []
    try:
        try:
            ec.create_cache_parameter_group(CacheParameterGroupName=demo_group, CacheParameterGroupFamily=family,
                                            Description=f"awslab demo caching --eviction ({run.stack})")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "CacheParameterGroupAlreadyExists":
                raise
        ec.modify_replication_group(ReplicationGroupId=gid, CacheParameterGroupName=demo_group, ApplyImmediately=True)
        for policy in policies:
            ec.modify_cache_parameter_group(CacheParameterGroupName=demo_group, ParameterNameValues=[
                {"ParameterName": "maxmemory-policy", "ParameterValue": policy}])
            _until(lambda: cache.config_get("maxmemory-policy").get("maxmemory-policy") == policy,
                   f"the cache to take maxmemory-policy {policy}")
            out.append(_fill_and_read(cache, policy, seed))
    finally:
        clear_demo_keys(cache)
        cache.close()
        ec.modify_replication_group(ReplicationGroupId=gid, CacheParameterGroupName=original, ApplyImmediately=True)
        try:
            ec.delete_cache_parameter_group(CacheParameterGroupName=demo_group)
        except Exception:  # noqa: BLE001 - left for the next run to reuse
            pass
    return {"stack": run.stack, "parameter_group": demo_group, "restored_group": original, "policies": out}


def _until(check: Callable[[], bool], what: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise OperationError(f"timed out after {within_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def _fill_and_read(cache, policy: str, seed: int) -> dict:
    """Keys without TTL written to twice the cache's memory in no particular order (what earlier
    traffic left), then 5,000 Zipf-skewed reads that load each miss (SET): what stayed, what was
    evicted, what was refused."""
    import redis

    clear_demo_keys(cache)
    maxmemory = int(cache.config_get("maxmemory").get("maxmemory") or 0)
    keys = max(100, 2 * maxmemory // VALUE_BYTES) if maxmemory else 10_000
    value = b"x" * VALUE_BYTES
    before = cache_counters(cache)
    refused, oom = 0, ""
    rng = random.Random(seed)
    order = list(range(keys))
    rng.shuffle(order)   # earlier traffic filled it in no particular order
    for start in range(0, keys, 500):
        pipe = cache.pipeline(transaction=False)
        for k in order[start:start + 500]:
            pipe.set(f"{PREFIX}:evict:{k}", value)
        for res in pipe.execute(raise_on_error=False):
            if isinstance(res, redis.exceptions.ResponseError):
                refused += 1
                oom = oom or _said(res)
    cumulative = list(itertools.accumulate(1 / (k + 1) ** ZIPF_S for k in range(keys)))
    hits = reads = 0
    for _ in range(5000):
        k = min(keys - 1, bisect.bisect_left(cumulative, rng.random() * cumulative[-1]))
        reads += 1
        if cache.get(f"{PREFIX}:evict:{k}") is not None:
            hits += 1
            continue
        try:
            cache.set(f"{PREFIX}:evict:{k}", value)
        except redis.exceptions.ResponseError as exc:
            refused += 1
            oom = oom or _said(exc)
    after = cache_counters(cache)
    return {"policy": policy, "maxmemory_bytes": maxmemory, "keys_written": keys, "reads": reads,
            "hit_ratio": round(hits / reads, 4), "evicted_keys": after["evicted_keys"] - before["evicted_keys"],
            "writes_refused": refused, "refusal": oom}


def _said(error) -> str:
    """The error as redis-cli prints it (redis-py keeps the OOM code as the exception's class)."""
    import redis

    return ("OOM " if isinstance(error, redis.exceptions.OutOfMemoryError) else "") + str(error)


def print_eviction(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    rows = [[p["policy"], p["keys_written"], f"{p['hit_ratio']:.0%}", p["evicted_keys"], p["writes_refused"]]
            for p in result["policies"]]
    ui.emit(ui.table(["MAXMEMORY-POLICY", "KEYS WRITTEN (NO TTL)", "HITS", "EVICTED", "WRITES REFUSED"], rows))
    first = result["policies"][0]
    ui.emit(f"\nEach policy set the AWS way: cache parameter group {result['parameter_group']} (maxmemory-policy), "
            f"put on the replication group with ModifyReplicationGroup; the cache's memory is its node type's, scaled "
            f"down ({first['maxmemory_bytes'] // 1024} KiB here). Keys of {VALUE_BYTES} bytes were written to twice "
            "that in no particular order, then read Zipf-skewed, each miss loaded again.")
    refusal = next((p["refusal"] for p in result["policies"] if p["refusal"]), "")
    ui.emit("allkeys-lru evicts the least recently used keys and keeps the hot ones; volatile-lru evicts only keys "
            "with a TTL, and these have none, so once full it refuses writes as noeviction does"
            + (f" (Redis: {refusal})" if refusal else "") + ". ElastiCache's default is volatile-lru: give cached "
            f"keys a TTL, or choose allkeys-lru for a pure cache. The cache is back on {result['restored_group']}.")
