"""Local AWSes forked from one prepared process, for a harness that starts many (the test suite).

A local AWS's start is three quarters the same work every time: importing moto and awslab's layer,
applying the patches, making and warming the WSGI app (``server.prepare``: about a second of CPU).
``python -m awslab.local.forkserver --socket PATH`` does that once, then waits on a Unix socket;
for each request it forks, and the child becomes a local AWS exactly as ``python -m
awslab.local.server ARGS`` would (its own session, its log as stdout and stderr, the caller's
environment, its own lock, state and engines), from ``server.main``'s first line on. What the
child shares with its siblings is only what ``prepare`` made and never changes after it: classes
patched, models parsed, routes listed (copy-on-write pages, each process its own).

``manager.start`` asks the fork server named by ``AWSLAB_LOCAL_FORKSERVER`` when it is set and
answers, else it starts ``python -m awslab.local.server`` itself. The fork server refuses (and the
manager starts a process itself) when the caller's environment differs from its own in what
``prepare`` read: moto's settings (``MOTO_*``) and where the SDK's data is cached.

One request per connection, a JSON line each way:
``{"op": "spawn", "argv": [...], "env": {...}, "cwd": "...", "log": "..."}`` -> ``{"pid": N}`` or
``{"refused": "why"}``; ``{"op": "status", "pid": N}`` -> ``{"code": None}`` while it runs, else its
exit code.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

ENV = "AWSLAB_LOCAL_FORKSERVER"
# What prepare() reads from the environment: a caller whose values differ gets a process of its own.
PREPARED_FROM = ("XDG_CACHE_HOME", "AWSLAB_SDK_CACHE", "HOME")
PREPARED_PREFIXES = ("MOTO_",)
READY_TIMEOUT_S = 60.0


def _prepared_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in PREPARED_FROM or k.startswith(PREPARED_PREFIXES)}


# --- the client (manager.start) ----------------------------------------------------------------

def _ask(path: str, request: dict, timeout: float = 10.0) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


class Forked:
    """A forked local AWS as ``manager.start`` watches it (what it uses of ``subprocess.Popen``)."""

    def __init__(self, path: str, pid: int) -> None:
        self.path, self.pid, self.returncode = path, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = _ask(self.path, {"op": "status", "pid": self.pid}).get("code")
            except (OSError, ValueError):   # the fork server is gone: its children are ours to judge
                from awslab.local.processes import pid_alive

                self.returncode = None if pid_alive(self.pid) else -1
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> Forked | None:
    """A local AWS forked by the fork server ``AWSLAB_LOCAL_FORKSERVER`` names, or None (none named,
    it does not answer, or it refuses this environment): then the caller starts one itself."""
    path = env.get(ENV)
    if not path:
        return None
    try:
        got = _ask(path, {"op": "spawn", "argv": argv, "env": env, "cwd": os.getcwd(), "log": str(log_path)})
    except (OSError, ValueError):
        return None
    return Forked(path, int(got["pid"])) if got.get("pid") else None


# --- the fork server -----------------------------------------------------------------------------

def _child(conn: socket.socket, listener: socket.socket, request: dict, prepared) -> None:
    """In the forked child: become the local AWS ``request`` asks for; never returns."""
    code = 1
    try:
        conn.close()
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # its engines are its own children, reaped by it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request.get("cwd") or "/")
        from awslab.local import server

        sys.argv = [server.__file__, *request["argv"]]
        server.main(request["argv"], prepared=prepared)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - said in its log, as an uncaught exception would be
        traceback.print_exc()
        code = 1
    finally:   # what it printed flushed, then gone without the interpreter's teardown (the fork server's)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - leaving anyway
                pass
        os._exit(code)


def serve(path: str) -> None:
    """Prepare once, then fork a local AWS per request until SIGTERM (or the socket is removed)."""
    from awslab.local import server
    from awslab.local.processes import reap_exited

    prepared = server.prepare()
    from awslab.local import backing  # noqa: F401 - the engines' modules, for the children that run them

    # What prepare made lives as long as every child: out of the collector's reach, so a child's
    # collections neither walk it nor touch (and so copy) its pages.
    gc.collect()
    gc.freeze()

    exited: dict[int, int] = {}

    def reap(*_) -> None:
        exited.update(reap_exited())

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mine = _prepared_env(dict(os.environ))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(path).unlink(missing_ok=True)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    print(f"fork server ready on {path} (pid {os.getpid()})", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    request = json.loads(conn.makefile("rb").readline() or b"{}")
                except ValueError:
                    continue
                if request.get("op") == "status":
                    reap()
                    answer = {"code": exited.get(int(request.get("pid", 0)))}
                elif request.get("op") != "spawn":
                    answer = {"refused": "unknown op"}
                elif _prepared_env(request.get("env") or {}) != mine:
                    answer = {"refused": "its environment differs in what the prepared process read"}
                elif threading.active_count() > 1:   # a fork copies no thread but the caller's
                    answer = {"refused": "the fork server runs threads"}
                else:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(conn, listener, request, prepared)
                    answer = {"pid": pid}
                conn.sendall(json.dumps(answer).encode() + b"\n")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        listener.close()
        Path(path).unlink(missing_ok=True)


def start(path: Path, log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start a fork server on ``path`` (detached, its log ``log_path``, the environment ``env`` or
    this process's) and wait until it answers; its pid. Raises RuntimeError if it did not come up."""
    import subprocess

    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "awslab.local.forkserver", "--socket", str(path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the fork server exited at start (code {proc.returncode}): see {log_path}")
        try:
            _ask(str(path), {"op": "status", "pid": 0}, timeout=1.0)
            return proc.pid
        except (OSError, ValueError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the fork server did not answer within {READY_TIMEOUT_S:.0f}s: see {log_path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="awslab.local.forkserver")
    parser.add_argument("--socket", required=True)
    serve(parser.parse_args(argv).socket)


if __name__ == "__main__":
    main()
