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

One thread accepts per endpoint and one thread shuttles bytes per connection: a lab has a handful
of endpoints and connections, and plain sockets keep the code obvious. One thread per connection,
not one per direction, because an SSL object must not be read and written by two threads at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from awslab.engine.state import write_json_atomic
from awslab.local.tls import HANDSHAKE_TIMEOUT_S, Greeter, Wrapper

log = logging.getLogger("awslab.local.forwarder")
HOST = "127.0.0.1"
CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0

Route = Callable[[], "tuple[str, int] | None"]


class _Listener:
    def __init__(self, endpoint: str, sock: socket.socket, route: Route, greet: Greeter | None,
                 wrap: Wrapper | None) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self.route = route
        self.greet = greet   # server side: what a new connection must say first (TLS, refusals)
        self.wrap = wrap     # client side: the upstream's TLS (a tunnel)
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False


class Forwarder:
    """Stable local addresses for endpoints, relayed to whatever ``route`` names per connection."""

    def __init__(self, ports_path: Path) -> None:
        self.ports_path = ports_path
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()

    def _remembered(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.ports_path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def listen(self, endpoint: str, route: Route, greet: Greeter | None = None, wrap: Wrapper | None = None) -> int:
        """The local port of ``endpoint`` (opened on first use, on its remembered port when free);
        ``greet`` and ``wrap`` apply to the connections made from now on."""
        with self._lock:
            known = self._listeners.get(endpoint)
            if known is not None:
                known.route, known.greet, known.wrap = route, greet, wrap
                return known.port
            remembered = self._remembered()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, remembered.get(endpoint, 0)))
            except OSError:
                sock.bind((HOST, 0))
            sock.listen(64)
            listener = self._listeners[endpoint] = _Listener(endpoint, sock, route, greet, wrap)
            if remembered.get(endpoint) != listener.port:
                write_json_atomic(self.ports_path, {**remembered, endpoint: listener.port})
        threading.Thread(target=self._accept, args=(listener,), name=f"fwd {endpoint}", daemon=True).start()
        return listener.port

    def drop(self, endpoint: str) -> int:
        """Close every connection open through ``endpoint`` (a failover's effect); how many."""
        listener = self._listeners.get(endpoint)
        if listener is None:
            return 0
        with listener.lock:
            socks, listener.open = list(listener.open), set()
        for s in socks:
            _shutdown(s)   # its shuttle sees the end and closes it
        if socks:
            log.info("dropped %d connections to %s", len(socks) // 2, endpoint)
        return len(socks) // 2

    def close(self, endpoint: str, *, forget: bool = True) -> None:
        """Stop listening for ``endpoint`` and drop its connections (the resource is gone)."""
        with self._lock:
            listener = self._listeners.pop(endpoint, None)
        if listener is None:
            return
        listener.closed = True
        _close(listener.sock)
        self.drop(endpoint)
        if forget:
            with self._lock:
                remembered = self._remembered()
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
                client, _ = listener.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(listener, client), daemon=True,
                             name=f"fwd {listener.endpoint} conn").start()

    def _relay(self, listener: _Listener, client: socket.socket) -> None:
        greet, wrap = listener.greet, listener.wrap
        first = b""
        if greet is not None:
            client.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                greeted = greet(client)
            except OSError:
                greeted = None
            if greeted is None:
                _close(client)   # refused (a plain client of a TLS-only endpoint) or gone
                return
            client, first = greeted
        target = None
        with contextlib.suppress(Exception):
            target = listener.route()
        if target is None:
            _close(client)   # nothing holds the role now (rebooting, failing over): refused, as AWS's DNS would
            return
        try:
            upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_S)
            if wrap is not None:
                upstream = wrap(upstream)
            if first:
                upstream.sendall(first)
        except (OSError, ssl.SSLError):
            _close(client)
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with listener.lock:
            if listener.closed:
                _close(client), _close(upstream)
                return
            listener.open |= {client, upstream}
        try:
            _shuttle(client, upstream)
        finally:
            with listener.lock:
                listener.open.discard(client)
                listener.open.discard(upstream)
            _close(client)
            _close(upstream)


def _shuttle(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side ends. Reads never block (a TLS record may carry no data
    for the other side); writes do, which is the back-pressure."""
    for s in (a, b):
        s.settimeout(0.0)
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            # Bytes a TLS socket already decrypted are not visible to select().
            ready = [(s, peer) for s, peer in ((a, b), (b, a)) if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready = [(key.fileobj, key.data) for key, _ in sel.select()]
            for src, dst in ready:
                try:
                    data = src.recv(CHUNK)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    continue
                if not data:
                    return
                dst.settimeout(None)
                dst.sendall(data)
                dst.settimeout(0.0)
    except (OSError, ValueError):
        return
    finally:
        sel.close()


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown: an SSLSocket's would drop its SSL state under its shuttle.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _close(sock: socket.socket) -> None:
    _shutdown(sock)
    with contextlib.suppress(OSError):
        sock.close()
