"""`awslab demo caching` on real engines: each strategy's defining property, measured."""

from __future__ import annotations

import json

import pytest
from conftest import endpoint_map, eventually, server_keys

pytestmark = [pytest.mark.engines]


def test_demo_caching__each_strategy_shows_what_defines_it(awslab, engines, engine_server, stack):
    """The strategies, the use cases, then the eviction policies, on one lab (one `up`)."""
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    # A count of requests, not a duration: what each strategy shows must not depend on how many
    # requests a loaded machine manages in 1.5 s (a run of 25 reads showed no stale read at all).
    got = awslab("demo", "caching", "--name", stack, "--requests", "400", "--ttl", "2", "--keys", "20", "--output", "json")
    assert got.code == 0, got.err
    result = json.loads(got.out)
    by = {s["strategy"]: s for s in result["strategies"]}
    assert list(by) == ["database-only", "lazy-ttl", "write-through", "write-through-ttl", "lazy-ttl-jitter"]
    base, lazy, wt = by["database-only"], by["lazy-ttl"], by["write-through"]
    # Database only: every read is a query, nothing is cached, nothing is stale.
    assert base["hit_ratio"] == 0 and base["db_reads"] == base["reads"] > 0 and base["stale_reads"] == 0
    assert base["memory_bytes"] == 0
    # Lazy loading: most reads hit (a key is read from the database on its first read, and again
    # only once its 2 s TTL is over); a write does not reach the cache, so reads go stale, never for
    # longer than the TTL.
    keys = 20
    assert base["reads"] + base["writes"] == 400 and lazy["reads"] == base["reads"]   # the same stream
    assert lazy["hit_ratio"] >= 0.8 and lazy["db_reads"] < lazy["reads"] / 4, lazy
    assert lazy["hit_ratio"] == round((lazy["reads"] - lazy["db_reads"]) / lazy["reads"], 4), lazy
    assert lazy["stale_reads"] > 0 and 0 < lazy["stale_max_age_s"] <= 2 + 0.25
    # Write-through: never stale; it holds what it wrote.
    for name in ("write-through", "write-through-ttl"):
        assert by[name]["stale_reads"] == 0 and by[name]["writes"] > 0, by[name]
    # Write-through loads a key from the database at most once (on a read or a write that found it
    # missing; no TTL); from then on the cache holds it.
    assert wt["memory_bytes"] > 0 and wt["db_reads"] <= keys and wt["hit_ratio"] >= 0.8, wt
    for s in result["strategies"]:
        assert s["reads"] > 0 and 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] and s["evicted_keys"] == 0
    # TTL jitter spreads the expiries of keys cached together; one TTL expires them together.
    spread = result["ttl_jitter"]
    assert spread["no_jitter_spread_ms"] <= 50 and spread["jitter_spread_ms"] >= 400, spread
    # The stampede: a hot key expiring under 16 readers; single-flight refills it with one query.
    st = result["stampede"]
    assert st["single_flight"]["db_queries"] == 1 and st["single_flight"]["misses"] >= 1
    assert st["unprotected"]["db_queries"] > 1, st
    # The reader endpoint reaches the replica; what it missed right after a write it had soon after.
    rd = result["reader_endpoint"]
    assert rd["role"] == "replica" and 0 <= rd["missed"] <= rd["tries"] == 50
    assert 0 < rd["visible_after_ms_p50"] <= rd["visible_after_ms_max"] < 5000

    text = awslab("demo", "caching", "--name", stack, "--duration", "0.5", "--strategy", "lazy-ttl")
    assert text.code == 0, text.err
    assert "STALE READS" in text.out and "Stampede" in text.out and "'Caching strategies'" in text.out
    assert "database-only" not in text.out.split("\n\n")[0]   # only the strategies asked for

    # What Redis is used for, each case on the same cache.
    uses = awslab("demo", "redis", "--name", stack, "--output", "json")
    assert uses.code == 0, uses.err
    c = json.loads(uses.out)["cases"]
    assert c["session"]["read"]["user"] == "learner-1" and c["session"]["exists_after_expiry"] is False
    assert 0 < c["session"]["ttl_ms_after_renewal"] <= 1500
    assert c["leaderboard"]["top3"][0] == ["chen", 4410] and c["leaderboard"]["dara_rank"] == 3
    assert (c["rate-limit"]["allowed"], c["rate-limit"]["refused"]) == (5, 3)
    m = c["messaging"]
    assert m["pubsub_subscribers_per_message"] == [2, 2, 2] and m["pubsub_received"] == [["order-1", "order-2", "order-3"]] * 2
    assert (m["stream_entries"], m["stream_read_by_group"], m["stream_acked"]) == (3, 3, 3)
    one = awslab("demo", "redis", "leaderboard", "--name", stack)
    assert one.code == 0 and "leaderboard" in one.out and "session store" not in one.out
    _eviction_policies_set_by_a_parameter_group_reach_the_real_server(awslab, engines, engine_server, stack)


def _eviction_policies_set_by_a_parameter_group_reach_the_real_server(awslab, engines, engine_server, stack):
    import boto3

    def clients(service: str):
        return boto3.client(service, region_name="us-east-1", endpoint_url=engines.endpoint_url,
                            **server_keys(engine_server[1]))

    ec = clients("elasticache")
    server = _server(engines, clients, stack)
    # The lab's own group (the cache.parameter-group kind) holds its maxmemory-policy; `up` changes
    # it in place (ModifyCacheParameterGroup) and the real server follows, then back.
    member = ec.describe_cache_clusters(CacheClusterId=f"{stack}-cache-001")["CacheClusters"][0]
    assert member["CacheParameterGroup"]["CacheParameterGroupName"] == f"{stack}-cache"
    assert server.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    changed = awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0",
                     "--set", "cache.maxmemory_policy=allkeys-lru")
    # The group, and the stack's record of its --set on its VPC.
    assert changed.code == 0 and "updated    cache.parameter-group" in changed.err and "(2 changed)" in changed.err, changed.err
    eventually(lambda: server.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru", within_s=10)
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    eventually(lambda: server.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru", within_s=10)
    # The AWS way, by hand: a group, a policy, the replication group on it; the server follows.
    ec.create_cache_parameter_group(CacheParameterGroupName=f"{stack}-lfu", CacheParameterGroupFamily="redis6.x",
                                    Description="lfu")
    ec.modify_cache_parameter_group(CacheParameterGroupName=f"{stack}-lfu", ParameterNameValues=[
        {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lfu"}])
    listed = {p["ParameterName"]: p for p in ec.describe_cache_parameters(CacheParameterGroupName=f"{stack}-lfu")["Parameters"]}
    assert listed["maxmemory-policy"]["ParameterValue"] == "allkeys-lfu" and listed["maxmemory-policy"]["Source"] == "user"
    ec.modify_replication_group(ReplicationGroupId=f"{stack}-cache", CacheParameterGroupName=f"{stack}-lfu",
                                ApplyImmediately=True)
    eventually(lambda: server.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lfu", within_s=10)
    assert 0 < int(server.config_get("maxmemory")["maxmemory"]) <= 512 * 1024 * 1024 // 64   # cache.t3.micro, scaled
    ec.modify_replication_group(ReplicationGroupId=f"{stack}-cache", CacheParameterGroupName=f"{stack}-cache",
                                ApplyImmediately=True)
    eventually(lambda: server.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru", within_s=10)
    ec.delete_cache_parameter_group(CacheParameterGroupName=f"{stack}-lfu")

    got = awslab("demo", "caching", "--eviction", "--name", stack, "--output", "json")
    assert got.code == 0, got.err
    by = {p["policy"]: p for p in json.loads(got.out)["policies"]}
    # Keys without a TTL: allkeys-lru evicts the cold ones and keeps the hot; volatile-lru has
    # nothing it may evict, so it refuses writes as noeviction does.
    assert by["allkeys-lru"]["evicted_keys"] > 0 and by["allkeys-lru"]["writes_refused"] == 0
    assert by["allkeys-lru"]["hit_ratio"] > by["volatile-lru"]["hit_ratio"]
    for policy in ("volatile-lru", "noeviction"):
        assert by[policy]["evicted_keys"] == 0 and by[policy]["writes_refused"] > 0
        assert by[policy]["refusal"].startswith("OOM command not allowed when used memory > 'maxmemory'")
    # The cache is back on the group it had, the demo's group gone, the server as before.
    member = ec.describe_cache_clusters(CacheClusterId=f"{stack}-cache-001")["CacheClusters"][0]
    assert member["CacheParameterGroup"]["CacheParameterGroupName"] == f"{stack}-cache"
    names = [g["CacheParameterGroupName"] for g in ec.describe_cache_parameter_groups()["CacheParameterGroups"]]
    assert f"{stack}-demo-eviction" not in names
    eventually(lambda: server.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru", within_s=10)
    server.close()


def _server(engines, clients, stack):
    """The cache's primary server itself, on its engine port (what the server runs with)."""
    import redis

    endpoint = next(e for e in endpoint_map(engines) if e.startswith(f"master.{stack}-cache."))
    token = clients("secretsmanager").get_secret_value(SecretId=f"awslab/{stack}/cache-auth-token")["SecretString"]
    return redis.Redis(host="127.0.0.1", port=endpoint_map(engines)[endpoint]["engine_port"], password=token, protocol=2)


@pytest.mark.parametrize("args, says", [
    (["--strategy", "write-behind"], "unknown strategy 'write-behind'"),
    (["--duration", "0"], "--duration"),
    (["--writes", "80"], "--writes"),
    (["--ttl", "0"], "--ttl"),
])
def test_demo_caching__bad_input_is_one_line_and_exit_2(awslab, local, stack, args, says):
    got = awslab("demo", "caching", "--name", stack, *args)
    assert got.code == 2 and says in got.err and len(got.err.strip().splitlines()) == 1, got.err


def test_demo_caching__a_stack_without_its_database_and_cache_is_refused(awslab, local, stack):
    got = awslab("demo", "caching", "--name", stack)
    assert got.code == 2 and "needs its database and cache" in got.err and len(got.err.strip().splitlines()) == 1
    got = awslab("demo", "redis", "--name", stack)
    assert got.code == 2 and "has no cache" in got.err and len(got.err.strip().splitlines()) == 1
    got = awslab("demo", "redis", "pubsub", "--name", stack)
    assert got.code == 2 and "unknown use case 'pubsub'" in got.err and len(got.err.strip().splitlines()) == 1
    for args, says in ((["--eviction", "--policy", "lru"], "unknown eviction policy 'lru'"),
                       (["--policy", "allkeys-lru"], "--policy goes with --eviction"),
                       (["--eviction"], "has no cache")):
        got = awslab("demo", "caching", "--name", stack, *args)
        assert got.code == 2 and says in got.err and len(got.err.strip().splitlines()) == 1, got.err
