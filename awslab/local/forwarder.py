"""Endpoint addresses that outlive the servers behind them (runs in the local AWS's process).

On AWS an RDS or ElastiCache endpoint is a DNS name that RDS points at whichever host holds the
role now: after a Multi-AZ failover, a reboot or a promotion the name stays and new connections
reach the new primary, while the connections that were open are dropped. Here each endpoint gets
a TCP listener on 127.0.0.1 of its own (the *local address* that ``connect``, ``status`` and
``verify`` show), and every connection to it is relayed to the engine that holds the role at the
moment it connects (``route(endpoint)``, asked per connection). ``drop(endpoint)`` closes the open
ones, as a failover does.

A listener comes back on the same port after a restart of the local AWS when that port is free
(``ports.json`` remembers them), so a learner's ``psql -p`` line keeps working.

An endpoint may speak TLS (``tls.py``): a *greeter* runs first on each accepted connection (the
PostgreSQL SSLRequest, a TLS handshake, or a refusal), and a *tunnel* listener may wrap its
upstream in TLS for a client that has none. TLS ends here; the engine gets the plain stream.

A listener may have a *gate* (``network.py``) and what the VPC allows of its source now
(``allows``). While the VPC denies that source, the listener is *plugged* (``dropper.py``): the
kernel drops every SYN to it, so a client, a bare TCP probe included, waits for its own timeout as
on AWS, never a quick refusal; a watcher reads the dropped clients back for their flow records.
``refresh()`` (after any change to security groups, routes, ACLs or the resources' own network
settings) plugs and unplugs. A connection accepted anyway (in the instant a rule is revoked) is
put to the gate, and a denied one is *held*: kept open and silent until its client gives up (or
``wire.HOLD_S``). One thread holds them all.

One thread accepts per endpoint and one thread shuttles bytes per connection (at most
``RELAYED_MAX`` at once, ~50 KB each): a lab has a handful of endpoints and connections, and plain
sockets keep the code obvious. One thread per connection,
not one per direction, because an SSL object must not be read and written by two threads at once.
This module holds the listeners; what becomes of an accepted connection's bytes (copied, delayed,
held) is ``wire.py``'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from awslab.home.state import write_json_atomic
from awslab.local import dropper, wire
from awslab.local.tls import HANDSHAKE_TIMEOUT_S, Greeter, Wrapper

log = logging.getLogger("awslab.local.forwarder")
HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 5.0

RELAYED_MAX = 4096  # connections relayed at once by one server (a thread each, ~50 KB): beyond it
                    # a listener stops accepting until one ends, and new clients wait in its backlog

WATCH_S = 0.2       # how often plugged listeners are asked whether a SYN was dropped (a client
                    # retransmits after 1 s; one gone before it was seen still gets a record)

Route = Callable[[], "tuple[str, int] | None"]
Gate = Callable[[tuple], Any]   # (client address) -> network.Decision
Allows = Callable[[], bool]     # does the VPC let the listener's source through now?


class _Listener:
    def __init__(self, endpoint: str, sock: socket.socket, route: Route, greet: Greeter | None,
                 wrap: Wrapper | None, gate: Gate | None, allows: Allows | None, delay_s: float,
                 prelude: bytes | None = None) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self.route = route
        self.greet = greet   # server side: what a new connection must say first (TLS, refusals)
        self.wrap = wrap     # client side: the upstream's TLS (a tunnel)
        self.gate = gate     # the VPC's say on each new connection
        self.allows = allows   # and on the listener's source as a whole (plugged while False)
        self.mode = threading.Condition()
        self.want_plug = False   # the VPC denies the source: the accept loop plugs at its next turn
        self.plugged = False     # SYNs are dropped now
        self.ours: dict[int, socket.socket | None] = {}   # our own connections (a poke, the plugs) by port
        self.drops = 0                         # dropped SYNs already read back
        self.rejected: set[int] = set()        # client ports already recorded, while they wait
        self.delay_s = delay_s   # a link's one-way latency, added to every chunk either way
        self.prelude = prelude   # said to the upstream first, its +OK swallowed (AUTH for a cache without one)
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False


class Forwarder:
    """Stable local addresses for endpoints, relayed to whatever ``route`` names per connection."""

    def __init__(self, ports_path: Path) -> None:
        self.ports_path = ports_path
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()
        self._held = wire.Holder()
        self._slots = threading.BoundedSemaphore(RELAYED_MAX)
        self._watching = threading.Event()   # set while any listener is plugged
        self._watcher: threading.Thread | None = None

    def remembered(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.ports_path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def listen(self, endpoint: str, route: Route, greet: Greeter | None = None, wrap: Wrapper | None = None,
               gate: Gate | None = None, allows: Allows | None = None, delay_s: float = 0.0,
               prelude: bytes | None = None) -> int:
        """The local port of ``endpoint`` (opened on first use, on its remembered port when free);
        ``greet``, ``wrap``, ``gate``, ``allows`` and ``delay_s`` apply to the connections made from
        now on (plugged at once while ``allows`` says no); ``prelude``, a Redis command said to the
        upstream before the client's first byte, whose ``+OK`` the client never sees."""
        with self._lock:
            known = self._listeners.get(endpoint)
            if known is not None:
                known.route, known.greet, known.wrap, known.gate, known.delay_s = route, greet, wrap, gate, delay_s
                known.allows, known.prelude = allows, prelude
        if known is not None:
            self._set_mode(known)
            return known.port
        with self._lock:
            remembered = self.remembered()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, remembered.get(endpoint, 0)))
            except OSError:
                sock.bind((HOST, 0))
            sock.listen(dropper.BACKLOG)
            listener = self._listeners[endpoint] = _Listener(endpoint, sock, route, greet, wrap, gate, allows, delay_s,
                                                             prelude)
            if remembered.get(endpoint) != listener.port:
                write_json_atomic(self.ports_path, {**remembered, endpoint: listener.port})
        threading.Thread(target=self._accept, args=(listener,), name=f"fwd {endpoint}", daemon=True).start()
        self._set_mode(listener)
        return listener.port

    def refresh(self) -> None:
        """Plug the listeners whose source the VPC now denies, unplug those it now allows (the
        network changed)."""
        for listener in list(self._listeners.values()):
            self._set_mode(listener)

    def plugged(self, name: str) -> bool:
        listener = self._listeners.get(name)
        return listener is not None and listener.plugged

    def _set_mode(self, listener: _Listener) -> None:
        allowed = True
        if listener.allows is not None:
            try:
                allowed = bool(listener.allows())
            except Exception as exc:  # noqa: BLE001 - never open on a lookup that failed
                log.warning("could not decide %s: %s", listener.endpoint, exc)
                allowed = False
        with listener.mode:
            if listener.closed or allowed != listener.want_plug:
                return   # already as it should be
            listener.want_plug = not allowed
            if allowed:
                if listener.plugged:
                    dropper.unplug(listener.sock)
                    listener.plugged = False
                listener.mode.notify_all()
                return
        # The accept loop plugs (it alone accepts, so it never takes a plug), woken by a
        # connection of our own.
        if not dropper.own_connection(listener.port, listener.ours):
            with listener.mode:
                listener.want_plug = False   # not plugged: the next refresh tries again

    def _plug(self, listener: _Listener) -> None:
        """In the accept loop, ``listener.mode`` held: drop its SYNs until unplugged."""
        dropper.plug(listener.sock, listener.port, listener.ours)
        listener.plugged = True
        listener.drops = dropper.drops(listener.sock)
        self._watching.set()
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="fwd dropped SYNs", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """Read back the SYNs plugged listeners dropped: a flow record for each waiting client (its
        gate decides again, so a rule added meanwhile unplugs the listener for its next SYN)."""
        while True:
            self._watching.wait()
            time.sleep(WATCH_S)
            plugged = [l for l in list(self._listeners.values()) if l.plugged]
            if not plugged:
                self._watching.clear()
                continue
            grown = []
            for listener in plugged:
                count = dropper.drops(listener.sock)
                if count > listener.drops:
                    listener.drops = count
                    grown.append(listener)
            if not grown:
                continue
            clients = dropper.waiting({l.port for l in grown})
            for listener in grown:
                now_waiting = clients.get(listener.port, set()) - set(listener.ours)
                listener.rejected &= now_waiting
                # A client that gave up before it was seen is still a REJECT, its port unknown ("-").
                for port in sorted(now_waiting - listener.rejected) or ([0] if not now_waiting else []):
                    if port:
                        listener.rejected.add(port)
                    with contextlib.suppress(Exception):
                        if listener.gate is not None and listener.gate((HOST, port)).allowed:
                            self._set_mode(listener)

    def listening(self, name: str) -> bool:
        return name in self._listeners

    def names(self, prefix: str) -> list[str]:
        """The listeners named ``prefix`` or ``prefix`` followed by ``@`` or ``#`` (its views, its tunnels)."""
        return [n for n in list(self._listeners) if n == prefix or n.startswith((prefix + "@", prefix + "#"))]

    def drop(self, endpoint: str) -> int:
        """Close every connection open through ``endpoint``, from every source (a failover's
        effect); how many."""
        # A tunnel's connections pass through its endpoint's listener: they end with those.
        dropped = sum(self._drop(listener) for name in self.names(endpoint) if "#" not in name
                      if (listener := self._listeners.get(name)) is not None)
        if dropped:
            log.info("dropped %d connections to %s", dropped, endpoint)
        return dropped

    @staticmethod
    def _drop(listener: _Listener) -> int:
        with listener.lock:
            socks, listener.open = list(listener.open), set()
        for s in socks:
            wire.shutdown(s)   # its shuttle sees the end and closes it
        return len(socks) // 2

    def close(self, endpoint: str, *, forget: bool = True) -> None:
        """Stop listening for ``endpoint`` and drop its connections (the resource is gone)."""
        with self._lock:
            listener = self._listeners.pop(endpoint, None)
        if listener is None:
            return
        with listener.mode:
            listener.closed = True
            for port in list(listener.ours):
                dropper.let_go(listener.ours, port)
            listener.mode.notify_all()
        wire.close(listener.sock)
        self._drop(listener)
        if forget:
            with self._lock:
                remembered = self.remembered()
                if remembered.pop(endpoint, None) is not None:
                    write_json_atomic(self.ports_path, remembered)

    def close_all(self) -> None:
        """Stop every listener, keeping their ports for the next server."""
        for endpoint in list(self._listeners):
            self.close(endpoint, forget=False)

    # --- relaying ---

    def _accept(self, listener: _Listener) -> None:
        while not listener.closed:
            try:
                client, peer = listener.sock.accept()
            except OSError:
                return
            if dropper.let_go(listener.ours, peer[1]):   # our own: a poke to plug, or a plug let go
                wire.close(client)
                with listener.mode:
                    if listener.want_plug and not listener.plugged and not listener.closed:
                        self._plug(listener)
                    while listener.plugged and not listener.closed:
                        listener.mode.wait()
                continue
            self._slots.acquire()   # every slot taken: this client (and the backlog behind it) waits
            threading.Thread(target=self._relay_in_slot, args=(listener, client), daemon=True,
                             name=f"fwd {listener.endpoint} conn").start()

    def _relay_in_slot(self, listener: _Listener, client: socket.socket) -> None:
        try:
            self._relay(listener, client)
        finally:
            self._slots.release()

    def _relay(self, listener: _Listener, client: socket.socket) -> None:
        gate = listener.gate
        decision = None
        if gate is not None:
            try:
                decision = gate(client.getpeername())
            except OSError:
                wire.close(client)
                return
            if not decision.allowed:
                self._held.hold(client)   # dropped, as AWS drops it: the client waits for its own timeout
                return
        counts = [0, 0, 0]
        try:
            self._serve(listener, client, counts)
        finally:
            if decision is not None:   # an accepted connection's flow record, whatever became of it
                with contextlib.suppress(Exception):
                    decision.closed(*counts)

    def _serve(self, listener: _Listener, client: socket.socket, counts: list[int]) -> None:
        greet, wrap = listener.greet, listener.wrap
        first = b""
        if greet is not None:
            client.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                greeted = greet(client)
            except OSError:
                greeted = None
            if greeted is None:
                wire.close(client)   # refused (a plain client of a TLS-only endpoint) or gone
                return
            client, first = greeted
        target = None
        with contextlib.suppress(Exception):
            target = listener.route()
        if target is None:
            wire.close(client)   # nothing holds the role now (rebooting, failing over): refused, as AWS's DNS would
            return
        try:
            upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_S)
            if wrap is not None:
                upstream = wrap(upstream)
            if listener.prelude and not wire.said(upstream, listener.prelude):
                raise OSError("the upstream refused the prelude")
            if first:
                upstream.sendall(first)
        except (OSError, ssl.SSLError):
            wire.close(client)
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with listener.lock:
            if listener.closed:
                wire.close(client), wire.close(upstream)
                return
            listener.open |= {client, upstream}
        try:
            if listener.delay_s:
                wire.shuttle_delayed(client, upstream, counts, listener.delay_s)
            else:
                wire.shuttle(client, upstream, counts)
        finally:
            with listener.lock:
                listener.open.discard(client)
                listener.open.discard(upstream)
            wire.close(client)
            wire.close(upstream)
