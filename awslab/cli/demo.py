"""`awslab demo cache-aside/caching/redis`: demonstrations on the lab's real engines
(awslab.commands.demo, caching, eviction, redis_demo).
"""

from __future__ import annotations

import click

from awslab.cli._common import begin, target_options
from awslab.errors import UsageError


@click.group()
def demo():
    """Demonstrations on the lab's real engines (local AWS)."""


@demo.command("cache-aside")
@click.option("--requests", "n_requests", default=300, show_default=True, type=click.IntRange(10, 100000),
              help="Requests in the workload.")
@click.option("--rows", default=200000, show_default=True, type=click.IntRange(1000, 10000000), help="Orders to seed.")
@click.option("--reports", default=20, show_default=True, type=click.IntRange(1, 1000), help="Distinct reports asked for.")
@target_options
def demo_cache_aside(n_requests, rows, reports, **opts):
    """Measure an expensive query straight from PostgreSQL and through a Redis cache-aside layer.

    Prints the hit ratio and p50/p95 latency of both, and what they show.
    Example: awslab demo cache-aside --requests 500
    """
    from awslab.commands._common import new_run
    from awslab.commands.demo import cache_aside, print_result

    ctx, output = begin(opts)
    print_result(cache_aside(new_run(ctx, ctx.stack), requests=n_requests, rows=rows, reports=reports), output)


@demo.command("caching")
@click.option("--duration", default=3.0, show_default=True, type=click.FloatRange(0.5, 60),
              help="Seconds each strategy runs the workload.")
@click.option("--requests", default=None, type=click.IntRange(10, 1_000_000),
              help="Instead of --duration: this many requests per strategy (the same stream for each, whatever "
                   "the machine's speed).")
@click.option("--writes", default=10, show_default=True, type=click.IntRange(0, 50), help="Percent of requests that write.")
@click.option("--ttl", default=2, show_default=True, type=click.IntRange(1, 3600), help="TTL in seconds, where one is set.")
@click.option("--keys", default=50, show_default=True, type=click.IntRange(2, 10000), help="Distinct reports (Zipf-skewed).")
@click.option("--readers", default=16, show_default=True, type=click.IntRange(2, 64),
              help="Concurrent readers of the hot key in the stampede.")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help="Run only this strategy (repeatable): database-only, lazy-ttl, write-through, write-through-ttl, "
                   "lazy-ttl-jitter.")
@click.option("--eviction", is_flag=True,
              help="Instead: fill the cache past its memory under eviction policies set by a cache parameter group.")
@click.option("--policy", "policies", multiple=True, metavar="NAME",
              help="With --eviction, this maxmemory-policy (repeatable; default volatile-lru, allkeys-lru, noeviction).")
@click.option("--report", is_flag=True, default=False,
              help="Also keep the figures for the next `awslab report`, which charts them.")
@target_options
def demo_caching(duration, requests, writes, ttl, keys, readers, strategies, eviction, policies, report, **opts):
    """Measure ElastiCache's caching strategies side by side on the lab's database and cache.

    The same Zipf-skewed stream of reads and writes runs through each strategy; the table shows
    read latency p50/p95/p99, hit ratio, database reads per second, stale reads (versioned
    values), memory and evictions; then a hot key's stampede with and without single-flight, and
    what TTL jitter does to expiries. Example: awslab demo caching --duration 5 --writes 20
    """
    from awslab.commands._common import new_run
    from awslab.commands.caching import STRATEGIES, Workload, caching, print_result

    if eviction:
        from awslab.commands.eviction import EVICTION_POLICIES, eviction as fill, print_eviction

        if report:
            raise UsageError("--report goes with the strategies, not --eviction", "awslab demo caching --report")
        ctx, output = begin(opts)
        print_eviction(fill(new_run(ctx, ctx.stack), tuple(policies) or EVICTION_POLICIES), output)
        return
    if policies:
        raise UsageError("--policy goes with --eviction", "awslab demo caching --eviction --policy allkeys-lfu")
    work = Workload(duration_s=duration, requests=requests, writes_pct=writes, ttl_s=ttl, keys=keys, readers=readers,
                    strategies=tuple(strategies) or STRATEGIES)
    work.check()
    ctx, output = begin(opts)
    run = new_run(ctx, ctx.stack)
    result = caching(run, work)
    print_result(result, output)
    if report:
        from awslab.cli._common import progress_for
        from awslab.commands import figures

        figures.save_for_run(run, "caching", result, progress_for(output))


@demo.command("redis")
@click.argument("cases", nargs=-1, metavar="[CASE]...")
@target_options
def demo_redis(cases, **opts):
    """Run what ElastiCache for Redis is used for on the lab's cache, each with what it did.

    CASE: session, leaderboard, rate-limit, messaging (default: all).
    Example: awslab demo redis leaderboard messaging
    """
    from awslab.commands._common import new_run
    from awslab.commands.redis_demo import CASES, check_cases, print_result, redis_uses

    check_cases(cases)
    ctx, output = begin(opts)
    print_result(redis_uses(new_run(ctx, ctx.stack), tuple(cases) or CASES), output)
