"""`awslab demo redis`: what ElastiCache for Redis is used for, each case run on the lab's real cache
(through the stack's host, over TLS with AUTH) and printed with what it did.

- session store: a session hash with a TTL, read back, renewed on use, gone after it expires;
- leaderboard: a sorted set, the top three and one player's rank, updated with one command;
- rate limiter: a fixed window per client (INCR with an expiry): the requests past the limit refused;
- messaging: publish/subscribe (every subscriber gets each message, none kept) and a stream (kept,
  read by a consumer group, acknowledged).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from awslab import ui
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import UsageError
from awslab.verify import live

PREFIX = "awslab:demo:redis"
CASES = ("session", "leaderboard", "rate-limit", "messaging")
WHY = {
    "session": "ElastiCache User Guide, 'Common ElastiCache use cases': session stores (fast reads, expiry by TTL)",
    "leaderboard": "ElastiCache User Guide, 'Common ElastiCache use cases': gaming leaderboards (Redis sorted sets)",
    "rate-limit": "a counter per client and window (INCR, EXPIRE), atomic on the server",
    "messaging": "ElastiCache User Guide, 'Common ElastiCache use cases': messaging (Redis pub/sub), and streams",
}


def check_cases(cases) -> None:
    """Refuse a CASE that is not one of ``CASES``."""
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise UsageError(f"unknown use case '{unknown[0]}'", f"one of: {', '.join(CASES)}")


def cache_session(run: Run) -> Callable[[], Any]:
    """A factory of sessions to the lab's cache primary, as its host sees it."""
    if not run.ctx.is_local:
        raise UsageError("`awslab demo redis` runs on the local AWS's engines; on AWS the lab's cache is private "
                         "and running the demo from the EC2 host is not built yet", "run it on the local target")
    found = discover(run)
    group, token = found.get("cache.group"), found.get("cache.auth-token")
    if group is None or token is None:
        raise UsageError(f"stack {run.stack} has no cache for the demo", "run `awslab up` first")
    from awslab.commands.caching import cache_addresses

    addr, _ = cache_addresses(group, live.endpoint_map(run, live.host_of(found)))
    secret = live.cache_token(run, token.id)
    return lambda: live.redis_connect(addr, secret)


def redis_uses(run: Run, cases: tuple[str, ...] = CASES) -> dict:
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise UsageError(f"unknown use case '{unknown[0]}'", f"one of: {', '.join(CASES)}")
    connect = cache_session(run)
    r = connect()
    try:
        run_case = {"session": _session, "leaderboard": _leaderboard, "rate-limit": _rate_limit,
                    "messaging": lambda r: _messaging(r, connect)}
        out = {}
        for case in cases:
            t0 = time.perf_counter()
            result = run_case[case](r)
            out[case] = {**result, "ms": round((time.perf_counter() - t0) * 1000, 1), "for": WHY[case]}
        return {"stack": run.stack, "cases": out}
    finally:
        for key in list(r.scan_iter(f"{PREFIX}:*", count=1000)):
            r.delete(key)
        r.close()


def _session(r) -> dict:
    sid = uuid.uuid4().hex[:12]
    key = f"{PREFIX}:session:{sid}"
    r.hset(key, mapping={"user": "learner-1", "cart": "3 items", "theme": "dark"})
    r.pexpire(key, 1500)
    read = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
    r.pexpire(key, 1500)   # renewed on use, as a session store slides its expiry
    ttl_ms = r.pttl(key)
    time.sleep(1.6)
    return {"session": sid, "read": read, "ttl_ms_after_renewal": ttl_ms, "exists_after_expiry": bool(r.exists(key))}


def _leaderboard(r) -> dict:
    key = f"{PREFIX}:leaderboard"
    r.zadd(key, {"ana": 3120, "ben": 2890, "chen": 4410, "dara": 1750, "eli": 3560})
    before = [(m.decode(), int(s)) for m, s in r.zrevrange(key, 0, 2, withscores=True)]
    r.zincrby(key, 1500, "dara")   # one command moves a player, the order kept by the server
    after = [(m.decode(), int(s)) for m, s in r.zrevrange(key, 0, 2, withscores=True)]
    return {"top3": before, "top3_after_dara_scores_1500": after, "dara_rank": int(r.zrevrank(key, "dara")) + 1,
            "players": int(r.zcard(key))}


def _rate_limit(r, limit: int = 5, requests: int = 8) -> dict:
    window = int(time.time())
    key = f"{PREFIX}:rate:client-42:{window}"
    allowed = refused = 0
    for _ in range(requests):
        pipe = r.pipeline()   # MULTI/EXEC: the count and its expiry together
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        if count <= limit:
            allowed += 1
        else:
            refused += 1
    return {"limit_per_second": limit, "requests": requests, "allowed": allowed, "refused": refused}


def _messaging(r, connect) -> dict:
    channel = f"{PREFIX}:orders"
    listeners = [connect() for _ in range(2)]
    pubsubs = [c.pubsub(ignore_subscribe_messages=True) for c in listeners]
    for p in pubsubs:
        p.subscribe(channel)
        p.get_message(timeout=1.0)
    received: list[list[str]] = [[], []]

    def listen(i: int) -> None:
        deadline = time.monotonic() + 3
        while len(received[i]) < 3 and time.monotonic() < deadline:
            msg = pubsubs[i].get_message(timeout=0.2)
            if msg and msg.get("type") == "message":
                received[i].append(msg["data"].decode())

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    delivered = [int(r.publish(channel, f"order-{n}")) for n in range(1, 4)]
    for t in threads:
        t.join(5)
    for p, c in zip(pubsubs, listeners):
        p.close()
        c.close()
    stream, group = f"{PREFIX}:stream", "billing"
    for n in range(1, 4):
        r.xadd(stream, {"order": f"order-{n}"})
    r.xgroup_create(stream, group, id="0")
    entries = r.xreadgroup(group, "worker-1", {stream: ">"}, count=10)
    ids = [eid for _, items in entries for eid, _ in items]
    acked = int(r.xack(stream, group, *ids)) if ids else 0
    return {"pubsub_subscribers_per_message": delivered, "pubsub_received": received,
            "stream_entries": int(r.xlen(stream)), "stream_read_by_group": len(ids), "stream_acked": acked}


def print_result(result: dict, output: str) -> None:
    if output == "json":
        ui.emit_json(result)
        return
    c = result["cases"]
    lines = []
    if "session" in c:
        s = c["session"]
        lines.append(f"session store   HSET a session, PEXPIRE 1.5 s: read back {s['read']}; renewed on use (TTL "
                     f"{s['ttl_ms_after_renewal']} ms); after 1.6 s idle it is "
                     f"{'still there (unexpected)' if s['exists_after_expiry'] else 'gone'}.")
    if "leaderboard" in c:
        b = c["leaderboard"]
        lines.append(f"leaderboard     ZADD 5 players: top 3 {b['top3']}; ZINCRBY dara 1500: top 3 "
                     f"{b['top3_after_dara_scores_1500']}, dara now #{b['dara_rank']} of {b['players']}.")
    if "rate-limit" in c:
        x = c["rate-limit"]
        lines.append(f"rate limiter    INCR + EXPIRE per client and second, limit {x['limit_per_second']}: "
                     f"{x['requests']} requests, {x['allowed']} allowed, {x['refused']} refused.")
    if "messaging" in c:
        m = c["messaging"]
        lines.append(f"messaging       PUBLISH 3 orders to 2 subscribers: each reached {m['pubsub_subscribers_per_message']} "
                     f"subscribers, received {m['pubsub_received']} (not kept: a subscriber that was away misses "
                     f"them); XADD 3 to a stream: {m['stream_entries']} kept, {m['stream_read_by_group']} read by "
                     f"consumer group 'billing', {m['stream_acked']} acknowledged.")
    ui.emit("\n".join(lines))
    ui.emit("\nWhat AWS says they are for:\n" + "\n".join(f"  {k}: {v['for']} ({v['ms']:.0f} ms here)" for k, v in c.items()))
