"""Listeners that drop SYNs, as a security group does, without root (in the local AWS's process).

On AWS a connection the VPC does not allow never gets an answer: its SYN is dropped, the client
retransmits it (1 s, 3 s, 7 s ... on Linux) and gives up on its own timeout; even a bare TCP probe
(``nc -z``, bash's ``/dev/tcp``, telnet) sees no connection. A userland relay cannot drop a SYN
it has been handed: the kernel completes the handshake before ``accept``. So a listener whose
source the VPC denies is *plugged*: its backlog is cut to one and two connections of our own are
left in its accept queue, never accepted. Linux drops every SYN that arrives at a listener whose
accept queue is full (whatever the SYN-cookie setting), counting each in the socket's drops
(``SO_MEMINFO``); the client sits in ``SYN_SENT``. Unplugged (the backlog restored, our two
connections closed), the client's next retransmitted SYN connects, as on AWS when a rule is added
while a client retries.

What the dropped SYNs were is read back without root: a listener's drop count rises, and the
clients still waiting are this machine's own sockets in ``SYN_SENT`` towards its port
(``/proc/net/tcp``), which give the flow record its source port.
"""

from __future__ import annotations

import contextlib
import socket
import struct

HOST = "127.0.0.1"
BACKLOG = 64          # an open listener's
PLUGGED_BACKLOG = 1   # a plugged one's: two queued connections make its accept queue full
PLUG_CONNECT_S = 0.2  # a plug whose own SYN is dropped (the queue already full) is not needed
SO_MEMINFO = 55       # linux/asm-generic/socket.h; SK_MEMINFO_DROPS is its 9th field
SYN_SENT = "02"       # /proc/net/tcp's state code


def plug(listener: socket.socket, port: int, ours: dict[int, socket.socket | None]) -> None:
    """Fill the accept queue of ``listener`` (never to be accepted while plugged): from now on its
    SYNs are dropped. ``ours`` holds our connections by local port."""
    listener.listen(PLUGGED_BACKLOG)
    for _ in range(PLUGGED_BACKLOG + 1):
        own_connection(port, ours)


def own_connection(port: int, ours: dict[int, socket.socket | None]) -> bool:
    """A connection of our own to the listener on ``port``, kept in ``ours`` by its local port,
    which is known before its SYN leaves (so that SYN is never taken for a client's). False when
    the SYN was dropped."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    local = int(sock.getsockname()[1])
    ours[local] = None
    sock.settimeout(PLUG_CONNECT_S)
    try:
        sock.connect((HOST, port))
    except OSError:
        ours.pop(local, None)
        with contextlib.suppress(OSError):
            sock.close()
        return False
    ours[local] = sock
    return True


def let_go(ours: dict[int, socket.socket | None], port: int) -> bool:
    """Our connection from ``port``, now accepted, closed; False: ``port`` is a client's."""
    if port not in ours:
        return False
    sock = ours.pop(port)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
    return True


def unplug(listener: socket.socket) -> None:
    """The backlog restored: the accept loop takes our queued connections (and lets them go) and
    the clients' next SYNs."""
    with contextlib.suppress(OSError):
        listener.listen(BACKLOG)


def drops(listener: socket.socket) -> int:
    """How many segments the kernel dropped at this socket so far (SYNs, for a plugged listener)."""
    try:
        return struct.unpack("9I", listener.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[8]
    except OSError:
        return 0


def waiting(ports: set[int]) -> dict[int, set[int]]:
    """The clients of this machine whose SYN to 127.0.0.1:<port> waits for an answer, by port:
    {listener port: {client port, ...}}."""
    out: dict[int, set[int]] = {}
    try:
        with open("/proc/net/tcp") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) < 4 or fields[3] != SYN_SENT:
                    continue
                remote_ip, _, remote_port = fields[2].partition(":")
                port = int(remote_port, 16)
                if port in ports and remote_ip == "0100007F":
                    out.setdefault(port, set()).add(int(fields[1].partition(":")[2], 16))
    except OSError:
        pass
    return out
