"""The bytes of a connection the forwarder relays (``forwarder.py``): copied both ways until either
side ends (``shuttle``), or with a link's one-way latency added to every chunk
(``shuttle_delayed``); a Redis command said to the upstream first (``said``); a denied connection
held open and unanswered until its client gives up (``Holder``), as AWS drops it; and a socket
ended whatever state it is in (``shutdown``, ``close``)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time

CHUNK = 65536
HOLD_S = 130.0      # a denied connection is held this long at most: Linux's SYN retries (tcp_syn_retries=6)
HOLD_MAX = 1024     # and this many at once (the oldest let go first)


class Holder:
    """Denied connections, kept open and unanswered until their clients give up (or ``HOLD_S``)."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._since: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()   # set when there is something to hold

    def hold(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with self._lock:
            if len(self._since) >= HOLD_MAX:
                oldest = min(self._since, key=self._since.get)
                self._release(oldest)
            self._since[sock] = time.monotonic()
            self._sel.register(sock, selectors.EVENT_READ)
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fwd held", daemon=True)
                self._thread.start()

    def _release(self, sock: socket.socket) -> None:
        self._since.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(sock)
        close(sock)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._since:
                    self._wake.clear()
            self._wake.wait()   # nothing held: sleep until something is
            for key, _ in self._sel.select(timeout=1.0):
                sock = key.fileobj
                try:
                    data = sock.recv(CHUNK)   # what the client says is read and never answered
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    with self._lock:
                        self._release(sock)
            now = time.monotonic()
            with self._lock:
                for sock in [s for s, t in self._since.items() if now - t > HOLD_S]:
                    self._release(sock)


def shuttle_delayed(a: socket.socket, b: socket.socket, counts: list[int], delay_s: float) -> None:
    """A link's copy (plain sockets): each chunk goes on ``delay_s`` after it arrived, as on a wire
    with that one-way latency: chunks in flight overlap (a stream's acknowledgements do not wait
    for each other), a request and its answer take twice ``delay_s``."""
    from collections import deque

    queued: dict[socket.socket, deque] = {a: deque(), b: deque()}   # by destination
    peer = {a: b, b: a}
    sel = selectors.DefaultSelector()
    for s in (a, b):
        s.setblocking(True)
        sel.register(s, selectors.EVENT_READ)
    ended = False
    try:
        while True:
            now = time.monotonic()
            for dst, q in queued.items():
                while q and q[0][0] <= now:
                    dst.sendall(q.popleft()[1])
            due = [q[0][0] for q in queued.values() if q]
            if ended and not due:
                return
            wait = max(0.0, min(due) - now) if due else None
            if ended:
                time.sleep(wait or 0)
                continue
            for key, _ in sel.select(timeout=wait):
                src = key.fileobj
                data = src.recv(CHUNK)
                if not data:
                    ended = True   # what is on the wire still arrives
                    break
                counts[0 if src is a else 1] += len(data)
                counts[2] += 1
                queued[peer[src]].append((time.monotonic() + delay_s, data))
    except (OSError, ValueError):
        return
    finally:
        sel.close()


def shuttle(a: socket.socket, b: socket.socket, counts: list[int] | None = None) -> None:
    """Copy both ways until either side ends. Reads never block (a TLS record may carry no data
    for the other side); writes do, which is the back-pressure. ``counts`` gets the bytes from
    ``a``, the bytes from ``b`` and the reads (the packets, roughly)."""
    counts = counts if counts is not None else [0, 0, 0]
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
                counts[0 if src is a else 1] += len(data)
                counts[2] += 1
                dst.settimeout(None)
                dst.sendall(data)
                dst.settimeout(0.0)
    except (OSError, ValueError):
        return
    finally:
        sel.close()


def said(upstream: socket.socket, command: bytes) -> bool:
    """``command`` sent and its one-line answer read: True when it was ``+OK``."""
    upstream.sendall(command)
    answer = b""
    while not answer.endswith(b"\r\n") and len(answer) < 512:
        chunk = upstream.recv(1)
        if not chunk:
            return False
        answer += chunk
    return answer == b"+OK\r\n"


def shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown: an SSLSocket's would drop its SSL state under its shuttle.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def close(sock: socket.socket) -> None:
    shutdown(sock)
    with contextlib.suppress(OSError):
        sock.close()
