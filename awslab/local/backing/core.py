"""The ``Backing``: one server's engine work, queued per resource on a small pool of threads (so a
request never waits for an ``initdb``; a replica's start waits for its primary's), and its
endpoint map: what is behind each emulated endpoint, the listeners that relay to it (one per
source that sees it, TLS where AWS has it, a link per replication stream), published to
``endpoints.json``."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any, Callable

from awslab.home.state import write_json_atomic
from awslab.local import latency, tls
from awslab.local.backing.keys import az_pair
from awslab.local.engines import EngineError, Engines, EngineUnavailable
from awslab.local.forwarder import HOST, Forwarder
from awslab.local.network import OUTSIDE, Network, Owner

log = logging.getLogger("awslab.local.backing")
ENDPOINTS_FILE = "endpoints.json"
PORTS_FILE = "endpoint-ports.json"
TUNNEL = "#tunnel"   # suffix of a TLS-only endpoint's tunnel listener (for clients without TLS)
LINK = "link:"       # prefix of a replication stream's link (a follower to its primary, across AZs)


PATHS_SETTLE_S = 0.05   # after a network change, how long more changes may join the same pass


class Backing:
    def __init__(self, local_dir: Path) -> None:
        self.engines = Engines(local_dir / "engines")
        self.endpoints_path = local_dir / ENDPOINTS_FILE
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engine")
        self._jobs: dict[str, Future] = {}
        self._labels: dict[str, str] = {}
        self._lock = threading.Lock()
        self._map_lock = threading.Lock()
        self.reconciling = False   # set while ``reconcile`` walks a running server's resources
        self.forwarder = Forwarder(local_dir / PORTS_FILE)
        self.roles: dict[str, str] = {}   # endpoint -> the engine key that holds its role now
        # endpoint -> the engine keys it spreads its connections over (a Multi-AZ DB cluster's reader
        # endpoint: each new connection goes to the next of them that is available)
        self.spread: dict[str, list[str]] = {}
        self._turns = itertools.count()
        self.authority = tls.Authority(local_dir / "tls")
        self.tls: dict[str, tuple[str, str]] = {}   # endpoint -> (protocol, tls.REQUIRED | tls.OPTIONAL)
        self.closing = threading.Event()
        self.owners: dict[str, Owner] = {}   # endpoint -> the resource it belongs to (the VPC's say on it)
        self.preludes: dict[str, bytes] = {}   # endpoint -> what the relay says to its engine first
        self.network = Network(local_dir, self.owners)
        self.engines.link, self.engines.unlink = self._link, lambda key: self.forwarder.close(LINK + key)
        self.sources: set[str] = set()   # instances that asked to see the endpoints (``view``)
        self._paths = threading.Event()   # set by a change that may open or close a path
        self._paths_thread: threading.Thread | None = None

    # --- work queues ---

    def submit(self, key: str, work: Callable[[], Any], after: str | list[str] | None = None, alias: str | None = None,
               label: str = "creating") -> Future:
        """Run ``work`` once the previous job of ``key`` (and the latest job of ``after``, or of each
        key it lists) is done;
        ``alias`` names the job too (a snapshot, so that a restore from it can wait for it);
        ``label`` is the state the resource shows while it runs."""
        with self._lock:
            self._labels[key] = label
            afters = [after] if isinstance(after, str) else list(after or [])
            waits = [f for f in (self._jobs.get(key), *(self._jobs.get(a) for a in afters)) if f is not None]

            def job():
                for f in waits:
                    try:
                        f.result()
                    except Exception:  # noqa: BLE001 - the earlier job's failure is reported by that job
                        pass
                try:
                    return work()
                except (EngineError, EngineUnavailable, ValueError, OSError) as exc:
                    log.warning("engine work for %s failed: %s", key, exc)
                    raise
                except Exception:   # a driver's error, a bug: the log says where, as it would unqueued
                    log.exception("engine work for %s failed", key)
                    raise

            fut = self._jobs[key] = self._pool.submit(job)
            if alias:
                self._jobs[alias] = fut
            return fut

    def settle(self, timeout_s: float) -> bool:
        """Wait (bounded) until no engine work is queued or running, jobs that queue more included;
        False if some was still running at the bound."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = [f for f in self._jobs.values() if not f.done()]
            if not pending:
                return True
            futures_wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        return False

    def label(self, key: str) -> str:
        with self._lock:
            return self._labels.get(key, "creating")

    def busy(self, key: str) -> bool:
        """Engine work for ``key`` is queued or running; for a Multi-AZ standby, its primary's
        work counts too (the standby is made inside the primary's creation, which a `reconcile`
        from another stack's `up` must not take for a dead engine and restart)."""
        owner = self.engines.owner_of_standby(key)
        with self._lock:
            futs = [self._jobs.get(k) for k in (key, owner) if k]
        return any(f is not None and not f.done() for f in futs)

    # --- the endpoint map ---

    def secure(self, protocol: str, mode: str | None, *endpoints: str, owner: Owner | None = None,
               open_auth: str | None = None) -> None:
        """How the endpoints take connections: TLS ``required`` or ``optional`` (``protocol``:
        'postgres' or 'redis', whose handshakes differ), or plain (None); ``owner``, the resource
        whose security groups and subnets decide who reaches them; ``open_auth``, for a cache made
        without AUTH, the password its engine has anyway (the relay says it, so clients need none
        while the engine's own port, on this machine, still asks for one)."""
        for e in endpoints:
            if owner is not None:
                self.owners[e] = owner
            if open_auth:
                self.preludes[e] = _redis_command("AUTH", open_auth)
            else:
                self.preludes.pop(e, None)
            if mode is None:
                self.tls.pop(e, None)
            else:
                self.tls[e] = (protocol, mode)

    def publish(self, endpoint: str, **info: Any) -> None:
        """Say in the map what is behind ``endpoint``; an available engine's ``port`` is the
        endpoint's own local address (``forwarder.py``), relayed to that engine (``engine_port``),
        behind TLS where AWS has it (``tls``, with the CA to check it by and, for a TLS-only
        endpoint, a ``tunnel_port`` that clients without TLS can use).

        Under the map's lock, as ``view``'s first ask is: an instance asking while the endpoint
        becomes available gets its listener from one or the other, never from neither."""
        with self._map_lock:
            if info.get("status") == "available" and info.get("port"):
                self.roles[endpoint] = info["key"]
                info = {**info, "engine_port": info["port"], "views": {}}
                nearby = {s for s in self.sources | self._remembered_sources(endpoint) if self.network.sees(s, endpoint)}
                for source in (OUTSIDE, *sorted(nearby)):
                    info["views"][source] = self._open_view(endpoint, source)
                info.update(info["views"][OUTSIDE])
                protocol, mode = self.tls.get(endpoint, (None, None))
                if mode is not None:
                    info.update(tls=mode, ca=str(self.authority.ca_path))
            data = self.read_map()
            data[endpoint] = info
            write_json_atomic(self.endpoints_path, data)

    def _open_view(self, endpoint: str, source: str) -> dict[str, int]:
        """The listener (and, for a TLS-only endpoint, the tunnel) through which ``source`` sees
        ``endpoint``; every connection to it is put to the VPC first."""
        name = endpoint if source == OUTSIDE else f"{endpoint}@{source}"
        tunnel = endpoint + TUNNEL + ("" if source == OUTSIDE else f"@{source}")
        protocol, mode = self.tls.get(endpoint, (None, None))
        greet = None
        if mode is not None:
            greet = (tls.postgres_greeter if protocol == "postgres" else tls.tls_greeter)(self.authority.server_context(), mode)
        gate = functools.partial(self.network.decide, source, endpoint)
        allows = functools.partial(self.network.allows, source, endpoint)
        local = self.forwarder.listen(name, functools.partial(self._route, endpoint), greet, gate=gate, allows=allows,
                                      prelude=self.preludes.get(endpoint))
        view = {"port": local}
        if mode == tls.REQUIRED:
            client = tls.client_context(self.authority.ca_path)
            wrap = (tls.postgres_wrapper if protocol == "postgres" else tls.tls_wrapper)(client, HOST)
            view["tunnel_port"] = self.forwarder.listen(tunnel, lambda: (HOST, local), wrap=wrap)
        else:
            self.forwarder.close(tunnel)
        return view

    def _remembered_sources(self, endpoint: str) -> set[str]:
        """Instances that saw ``endpoint`` before a restart (their listeners come back on their ports)."""
        return {n.split("@", 1)[1] for n in self.forwarder.remembered() if n.startswith(endpoint + "@")}

    def paths_changed(self) -> None:
        """A rule, a route, an ACL or a resource's network settings changed: every listener is
        plugged or unplugged to match, in its own thread, at once (the change's request is not kept
        waiting; a burst of changes is one pass)."""
        self._paths.set()
        if self._paths_thread is None:
            self._paths_thread = threading.Thread(target=self._follow_paths, name="paths", daemon=True)
            self._paths_thread.start()

    def _follow_paths(self) -> None:
        while not self.closing.is_set():
            self._paths.wait()
            time.sleep(PATHS_SETTLE_S)   # a burst of changes (a stack's rules) is one pass
            self._paths.clear()
            started = time.monotonic()
            try:
                with self.network.one_pass():
                    self.forwarder.refresh()
            except Exception:  # noqa: BLE001 - the next change tries again; a denied path stays held
                log.exception("could not follow a network change")
            spent = time.monotonic() - started
            if spent > 0.1:
                log.info("a network change re-decided every listener in %.0f ms", spent * 1000)

    def view(self, source: str) -> dict[str, dict]:
        """The endpoint map as instance ``source`` sees it (its own listeners opened on first ask):
        each entry's ``port`` and ``tunnel_port`` are that instance's."""
        if source != OUTSIDE and (source not in self.sources or self._unopened(source, self.read_map())):
            # Listeners for the endpoints of its own VPC only: nothing else is routed to it. Asked
            # again, it gets the ones it could not see before (an endpoint published before the
            # local AWS knew whose it was: the host's script then reached it from outside, and
            # timed out, while its own view was never opened).
            with self._map_lock:
                self.sources.add(source)
                data = self.read_map()
                unopened = self._unopened(source, data)
                for endpoint in unopened:
                    data[endpoint].setdefault("views", {})[source] = self._open_view(endpoint, source)
                if unopened:
                    write_json_atomic(self.endpoints_path, data)
        out = {}
        for endpoint, info in self.read_map().items():
            mine = (info.get("views") or {}).get(source)
            if mine:
                info = {k: v for k, v in info.items() if k != "tunnel_port"} | mine
            out[endpoint] = {**info, "source": source}
        return out

    def _unopened(self, source: str, data: dict[str, dict]) -> list[str]:
        """The available endpoints instance ``source`` sees but has no listener of its own for yet."""
        return [endpoint for endpoint, info in data.items()
                if info.get("status") == "available" and endpoint in self.roles
                and source not in (info.get("views") or {}) and self.network.sees(source, endpoint)]

    def publish_engine(self, endpoint: str, key: str, role: str) -> None:
        """``endpoint`` now reaches the engine ``key`` (after a failover, a reboot or a promotion)."""
        entry = self.engines.get(key) or {}
        self.publish(endpoint, key=key, role=role, status="available", engine=entry.get("engine"),
                     host=entry.get("host"), port=entry.get("port"), pid=entry.get("pid"))

    def _route(self, endpoint: str) -> tuple[str, int] | None:
        keys = self.spread.get(endpoint) or [self.roles.get(endpoint, "")]
        turn = next(self._turns)
        for i in range(len(keys)):   # round robin, past an engine that is down (a standby being rebuilt)
            entry = self.engines.get(keys[(turn + i) % len(keys)])
            if entry and entry.get("status") == "available" and entry.get("port"):
                return entry["host"], int(entry["port"])
        return None

    def _link(self, follower: str, primary: str) -> int | None:
        """The port of the link through which ``follower`` streams from ``primary``, carrying the
        latency of their AZ pair (half the round trip each way); None when the profile has none
        and no link exists yet (the follower then connects to its primary directly)."""
        rtt = latency.current().round_trip(az_pair(follower, primary))
        if rtt <= 0 and not self.forwarder.listening(LINK + follower):
            return None

        def route() -> tuple[str, int] | None:
            entry = self.engines.get(primary)
            return (entry["host"], int(entry["port"])) if entry and entry.get("port") else None

        return self.forwarder.listen(LINK + follower, route, delay_s=rtt / 2)

    def endpoints_of(self, key: str) -> list[str]:
        return [e for e, k in list(self.roles.items()) if k == key]

    def unpublish(self, *endpoints: str) -> None:
        for e in endpoints:
            self.roles.pop(e, None)
            self.spread.pop(e, None)
            self.tls.pop(e, None)
            self.owners.pop(e, None)
            for name in self.forwarder.names(e):
                self.forwarder.close(name)
        with self._map_lock:
            data = self.read_map()
            for e in endpoints:
                data.pop(e, None)
            write_json_atomic(self.endpoints_path, data)

    def read_map(self) -> dict[str, dict]:
        try:
            return json.loads(self.endpoints_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def start_engine(self, endpoint: str | None, key: str, start: Callable[[], dict], after: str | None = None,
                     role: str = "primary", aliases: list[str] = ()) -> Future:
        """Start an engine in the background and publish where it listens, under ``endpoint`` and
        its ``aliases`` (other endpoints AWS gives the same node)."""
        names = [e for e in (endpoint, *aliases) if e]
        for name in names:
            self.publish(name, key=key, role=role, status="starting")

        def work() -> dict:
            try:
                entry = start()
            except EngineUnavailable as exc:
                for name in names:
                    self.publish(name, key=key, role=role, status="unavailable", reason=str(exc))
                raise
            except (EngineError, ValueError, OSError) as exc:
                for name in names:
                    self.publish(name, key=key, role=role, status="failed", reason=str(exc))
                raise
            for name in names:
                self.publish(name, key=key, role=role, status="available", engine=entry["engine"],
                             host=entry["host"], port=entry["port"], pid=entry["pid"])
            return entry

        return self.submit(key, work, after=after)

    def repoint(self, key: str) -> None:
        """A running replica follows its primary's new port; where it listens now is published."""
        self.engines.repoint(key)
        for endpoint, info in self.read_map().items():
            if info.get("key") == key:
                self.publish_engine(endpoint, key, info.get("role", "replica"))

    def stop_engine(self, key: str, *endpoints: str) -> Future:
        """The engine of a deleted resource stopped (the resource reads `deleting` until it is)."""
        self.unpublish(*endpoints)
        return self.submit(key, lambda: self.engines.stop(key), label="deleting")

    def stop_all(self) -> list[int]:
        self.closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.forwarder.close_all()
        pids = self.engines.stop_all()
        write_json_atomic(self.endpoints_path, {})
        return pids

    def halt_all(self) -> list[str]:
        """Stop every engine, keeping its data for the next server of this home (``resume``). Work
        already asked for runs first: a deleted instance's final snapshot must not be lost to a stop."""
        self.closing.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self.forwarder.close_all()
        keys = self.engines.halt_all()
        write_json_atomic(self.endpoints_path, {})
        return keys

    def revive(self, key: str, endpoints: list[str], fresh: Callable[[], Future | None], role: str = "primary",
               after: str | None = None) -> None:
        """The engine of a resource the saved state brought back: adopted or resumed on its data, or,
        when it has none (the server died before it was made), made again as when the resource was."""
        if self.reconciling and (self.busy(key) or self.engines.alive(key)):
            return   # on a running server: only dead engines are brought back
        if self.engines.resumable(key) or (self.engines.get(key) or {}).get("status") == "available":
            before = (self.engines.get(key) or {}).get("last_port") or (self.engines.get(key) or {}).get("port")

            def resume() -> dict:
                entry = self.engines.resume(key)
                if entry.get("port") != before:   # replicas still running follow it to its new port
                    for follower in self.engines.followers(key):
                        self.submit(follower, functools.partial(self.repoint, follower), after=key)
                return entry

            self.start_engine(endpoints[0] if endpoints else None, key, resume,
                              after=after, role=role, aliases=endpoints[1:])
        else:
            self.engines.stop(key)
            fresh()


def _redis_command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
