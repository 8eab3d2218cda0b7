"""Students' commands forked from one prepared process: ``python -m awslab`` without its start-up.

A class runs one awslab command per student, each a process of its own (``classes.for_each``). A
fresh ``python -m awslab up`` spent about 0.25 s of CPU before its first request, the same for
every student: importing awslab, boto3 and botocore (and for `verify` the engines' clients), and
making the lab's client classes from their models. For a class of 30 that was 8 s of this
machine's two cores, a fifth of `class up`.

The launcher does that once. ``python -m awslab.commands.launcher --fd N --verb VERB`` imports
what a student's VERB imports and makes those classes (no client, no credentials, no connection:
sdkdata keeps the models and classes per process), says it is ready, then forks a child per
request. The child becomes ``python -m awslab ARGS`` from its first line (``runpy``, as ``-m``
runs it): its own pid and session, stdin /dev/null, stdout and stderr the caller's pipes, the
caller's environment and directory, SIGINT as the caller's child would have it, and an ordinary exit
(atexit handlers, threads joined). What it shares with its siblings is what the launcher imported
and made, which nothing changes after (copy-on-write pages, each process its own). One thing shows:
``ps`` prints a forked command with the launcher's command line (a fork keeps its parent's argv;
Python cannot rewrite it without a library of its own), so ``awslab class status`` is where to see
which students' stacks are done.

The caller's side (``Launcher``) hands back a ``Launched``, which for_each uses as it uses a
``subprocess.Popen``: ``communicate``, ``returncode``, ``send_signal``, ``kill``. A signal goes
through the launcher, which sends it only to a child it has not yet reaped (never to a reused
pid); the exit status comes back on a pipe of its own when the launcher reaps the child.

When there is no launcher (``AWSLAB_LAUNCHER=off``, not Linux, it is not ready yet, it died, or
the caller's environment is no longer the one it was started with), ``spawn`` says None and the
caller starts ``python -m awslab`` itself, as before.

One message per datagram (a ``SOCK_SEQPACKET`` socketpair), JSON: ``{"op": "spawn", "argv",
"env", "cwd"}`` with three descriptors (stdout, stderr, status) -> ``{"pid": N}`` or ``{"refused":
why}``; ``{"op": "signal", "pid", "sig"}`` -> ``{"sent": bool}``; the launcher's first message
is ``{"ready": true}``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import locale
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

ENV = "AWSLAB_LAUNCHER"   # "off": every student's command a `python -m awslab` of its own
READY_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 10.0
MAX_MESSAGE = 1 << 20
# What a student's command imports, by verb (every verb: the CLI and the lifecycle); optional
# packages that are missing are skipped. Strings: the launcher runs `awslab` as `-m` does.
PRELOAD = ("awslab.cli", "awslab.commands.lifecycle", "awslab.commands.stacks", "awslab.local.manager",
           "awslab.local.offering", "awslab.local.latency", "boto3", "botocore.auth", "botocore.credentials")
PRELOAD_BY_VERB = {"verify": ("awslab.verify.checks", "awslab.verify.live", "awslab.verify.live_local",
                              "awslab.local.tls", "pg8000", "redis")}
# The services a lab's commands make clients of: their models parsed and client classes made.
SERVICES = ("ec2", "rds", "elasticache", "secretsmanager", "iam", "sts", "ssm", "cloudformation",
            "resourcegroupstaggingapi")


def enabled() -> bool:
    """Not turned off, and on Linux (fork, descriptors passed on a SOCK_SEQPACKET socketpair)."""
    return os.environ.get(ENV, "on").lower() not in ("off", "0", "false") and sys.platform.startswith("linux")


# --- the caller's side -------------------------------------------------------------------------------

class Launched:
    """A command the launcher forked, as for_each uses a ``subprocess.Popen`` (text mode)."""

    def __init__(self, launcher: Launcher, pid: int, out: int, err: int, status: int) -> None:
        self.pid, self.returncode = pid, None
        self._launcher, self._status = launcher, status
        self._out, self._err = bytearray(), bytearray()
        self._open = {out: self._out, err: self._err}   # the pipes not yet at their end, and what they said

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self._launcher.signal(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Its stdout and stderr once it has exited (``returncode`` set); TimeoutExpired if it has not
        within ``timeout`` (what it wrote so far is kept for the next call)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for fd in self._open:
                sel.register(fd, selectors.EVENT_READ)
            while self._open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"awslab (pid {self.pid})", timeout)
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 65536)
                    if data:
                        self._open[key.fd] += data
                    else:
                        sel.unregister(key.fd)
                        os.close(key.fd)
                        del self._open[key.fd]
        if self.returncode is None:
            self.returncode = self._wait_status(deadline, timeout)
        return _text(self._out), _text(self._err)

    def _wait_status(self, deadline: float | None, timeout: float | None) -> int:
        """The exit code the launcher writes when it reaps the child. Its pipes closed, the child is
        gone or going; if the launcher is gone too, nobody can say how it ended: a failure."""
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._status, selectors.EVENT_READ)
            while not data.endswith(b"\n"):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"awslab (pid {self.pid})", timeout)
                if not sel.select(left):
                    continue
                chunk = os.read(self._status, 64)
                if not chunk:
                    break
                data += chunk
        os.close(self._status)
        try:
            return int(data)
        except ValueError:
            self._err += b"error: the launcher of this command stopped before it could say how it ended\n"
            return 1


def _text(data: bytes) -> str:
    """As ``subprocess.Popen(text=True)`` reads it: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False), "replace").replace("\r\n", "\n").replace("\r", "\n")


class Launcher:
    """A launcher process for ``verb``'s commands, started at once and ready a moment later.

    ``spawn`` never waits for it: until it is ready (or if it fails) the caller starts the command
    itself. Use as a context manager; leaving it ends the launcher (children still running are
    not affected: they are in sessions of their own)."""

    def __init__(self, verb: str) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._env, self._cwd = dict(os.environ), os.getcwd()
        self._proc = None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:   # no such socket here: every command is started the ordinary way
            ours = socket.socket()
            ours.close()
        else:
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "awslab.commands.launcher", "--fd", str(theirs.fileno()), "--verb", verb],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    pass_fds=[theirs.fileno()], start_new_session=True)
            except OSError:
                pass
            finally:
                theirs.close()
        self._sock = ours
        self._usable = self._proc is not None

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._ready = False
            self._sock.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _is_ready(self) -> bool:
        """Ready once its first message has come (a look, never a wait); a launcher that exited
        before it is never asked again."""
        if not self._ready and self._usable and self._sock.fileno() >= 0:
            self._sock.setblocking(False)
            try:
                message = self._sock.recv(MAX_MESSAGE)
                self._ready = bool(message) and bool(json.loads(message).get("ready"))
                self._usable = self._ready
            except (BlockingIOError, InterruptedError):
                pass
            except (OSError, ValueError):
                self._usable = False
            finally:
                self._sock.setblocking(True)
        return self._ready

    def _ask(self, request: dict, fds: list[int] = ()) -> dict:
        self._sock.settimeout(ANSWER_TIMEOUT_S)
        try:
            if fds:
                socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
            else:
                self._sock.send(json.dumps(request).encode())
            answer = self._sock.recv(MAX_MESSAGE)
        finally:
            self._sock.settimeout(None)
        if not answer:
            raise OSError("the launcher has gone")
        return json.loads(answer)

    def spawn(self, argv: list[str]) -> Launched | None:
        """``python -m awslab *argv`` forked by the launcher, or None (the caller runs it itself)."""
        with self._lock:
            if not self._is_ready() or dict(os.environ) != self._env or os.getcwd() != self._cwd:
                return None   # not (yet) ready, or not the environment and directory it was started in
            pipes = [os.pipe() for _ in range(3)]   # stdout, stderr, exit status
            try:
                got = self._ask({"op": "spawn", "argv": argv, "env": self._env, "cwd": self._cwd},
                                [w for _, w in pipes])
            except (OSError, ValueError):
                got = {"refused": "no answer"}
                self._ready = self._usable = False
            finally:
                for _, w in pipes:
                    os.close(w)
            if not got.get("pid"):
                for r, _ in pipes:
                    os.close(r)
                return None
            (out, _), (err, _), (status, _) = pipes
            return Launched(self, int(got["pid"]), out, err, status)

    def signal(self, pid: int, sig: int) -> bool:
        """Send ``sig`` to the launcher's child ``pid`` if it has not been reaped yet (sent or not)."""
        with self._lock:
            if self._sock.fileno() < 0 or not self._ready:
                return False
            try:
                return bool(self._ask({"op": "signal", "pid": pid, "sig": int(sig)}).get("sent"))
            except (OSError, ValueError):
                return False   # the launcher has gone: its children cannot be told apart from reused pids


# --- the launcher ------------------------------------------------------------------------------------

def prepare(verb: str) -> None:
    """Import what ``verb``'s command imports and make the lab's client classes."""
    for name in PRELOAD + PRELOAD_BY_VERB.get(verb, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import boto3

    from awslab.home import sdkdata
    from awslab.local import offering

    offering.learn()   # what `up` checks the lab against, before it changes anything

    sdkdata.share_across_sessions()
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="launcher", aws_secret_access_key="launcher")
    for service in SERVICES:
        session.client(service, endpoint_url="http://127.0.0.1:9")   # never used: the class is what is kept
    del session
    # What was made lives as long as every child: out of the collector's reach, so a child's
    # collections neither walk it nor touch (and so copy) its pages.
    gc.collect()
    gc.freeze()


def serve(sock: socket.socket) -> list[str] | None:
    """Answer requests until the caller closes its end (None); in a forked child, the argv to run."""
    from awslab.local.processes import reap_exited

    live: dict[int, int] = {}   # child pid -> the write end of its status pipe

    def reap(*_) -> None:
        for pid, code in reap_exited():
            fd = live.pop(pid, None)
            if fd is not None:
                try:
                    os.write(fd, f"{code}\n".encode())
                except OSError:
                    pass
                os.close(fd)

    signal.signal(signal.SIGCHLD, reap)
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
        except ConnectionResetError:
            return None
        if not message:
            return None
        try:
            request = json.loads(message)
        except ValueError:
            request = {}
        if request.get("op") == "signal":
            pid = int(request.get("pid", 0))
            sent = pid in live
            if sent:
                try:
                    os.kill(pid, int(request["sig"]))
                except ProcessLookupError:
                    sent = False
            sock.send(json.dumps({"sent": sent}).encode())
            continue
        if request.get("op") != "spawn" or len(fds) != 3:
            why = "unknown request"
        elif threading.active_count() > 1:   # a fork copies no thread but the caller's
            why = "the launcher runs threads"
        else:
            why = None
        if why:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"refused": why}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        # A child reaped before it is in ``live`` would lose its exit status: SIGCHLD waits till then.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                return _become_child(sock, fds, list(live.values()), request)
            live[pid] = fds[2]
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.close(fds[0])
        os.close(fds[1])
        sock.send(json.dumps({"pid": pid}).encode())


def _become_child(sock: socket.socket, fds: list[int], others: list[int], request: dict) -> list[str]:
    """In the forked child: the process ``python -m awslab`` would have started (its argv returned)."""
    out, err, status = fds
    os.close(sock.detach())
    for fd in [status, *others]:
        os.close(fd)
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (null, out, err):
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # SIGINT as the launcher has it: as the caller's child would
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request.get("cwd") or "/")
    return list(request["argv"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="awslab.commands.launcher")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--verb", default="up")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    prepare(args.verb)
    child_argv = serve(sock)
    if child_argv is None:
        return
    import runpy

    sys.argv = ["awslab", *child_argv]   # runpy puts the module's path first, as -m does
    runpy.run_module("awslab", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
