"""The engine processes this package starts: reaping them, telling ours from a reused pid,
stopping them (a clean shutdown, then SIGKILL to the session), and running their tools."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from awslab.local import processes
from awslab.local.engines.accounts import RunAs
from awslab.local.engines.base import HOST, STOP_TIMEOUT_S, TOOL_TIMEOUT_S, EngineError
from awslab.local.processes import cmdline, proc_stat

log = logging.getLogger("awslab.local.engines")

# Engines started in this process, by pid, so that they can be reaped (else they stay zombies, which
# look alive to kill(pid, 0)) by whichever Engines instance stops them.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
CHILDREN_LOCK = threading.Lock()


def adopt(proc: subprocess.Popen[bytes]) -> None:
    """Remember an engine just started here, so that whoever stops it can reap it."""
    with CHILDREN_LOCK:
        CHILDREN[proc.pid] = proc


def reap(pid: int) -> None:
    """Collect an engine this process started (Popen's own bookkeeping) once it has exited."""
    with CHILDREN_LOCK:
        proc = CHILDREN.get(pid)
        if proc is not None and proc.poll() is not None:
            del CHILDREN[pid]


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    reap(pid)
    return processes.pid_alive(pid)


def is_ours(entry: dict[str, Any]) -> bool:
    """The entry's pid is still the engine we started: alive, same start time, a postgres/redis command."""
    pid = entry.get("pid")
    if not pid or not pid_alive(pid):
        return False
    stat = proc_stat(pid)
    if stat and entry.get("started") is not None and stat[1] != entry["started"]:
        return False
    return entry.get("engine", "?") in cmdline(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(entry: dict[str, Any]) -> bool:
    """Stop the engine: a clean shutdown, then SIGKILL to its whole session after STOP_TIMEOUT_S."""
    if not is_ours(entry):
        return False
    pid = entry["pid"]
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to disconnect).
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT if entry["engine"] == "postgres" else signal.SIGTERM)
    if wait_gone(pid, STOP_TIMEOUT_S):
        return True
    log.warning("%s pid %d did not stop within %.0f s; killing it", entry["engine"], pid, STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # its own session (start_new_session): take its children too
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5.0)
    return True


def free_port(prefer: int | None = None) -> int:
    """``prefer`` when nothing listens there (an engine coming back where it was), else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, prefer or 0))
        except OSError:
            sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without PG*/REDIS* settings that could redirect a tool, in the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
    env.update(LC_ALL="C", LANG="C")
    env.update(extra or {})
    return env


def tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def run_tool(argv: list[str], *, who: RunAs | None, log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None, stdin_text: str | None = None) -> None:
    """Run an engine tool to completion (``stdin_text`` its input, else none), its output appended to
    log_path; a failure names that log."""
    started = time.monotonic()
    command, as_who = who.command(argv) if who else (argv, {})
    with open(log_path, "ab") as out:
        try:
            stdin = {"stdin": subprocess.DEVNULL} if stdin_text is None else {"input": stdin_text.encode()}
            done = subprocess.run(command, **stdin, stdout=out, stderr=subprocess.STDOUT,
                                  env=child_env(env), cwd=cwd, timeout=TOOL_TIMEOUT_S, umask=0o077, **as_who)
        except subprocess.TimeoutExpired:
            raise EngineError(f"{Path(argv[0]).name} took over {TOOL_TIMEOUT_S:.0f} s; see {log_path}") from None
    if done.returncode != 0:
        raise EngineError(f"{Path(argv[0]).name} failed (exit {done.returncode}); see {log_path}: {tail(log_path)}")
    log.debug("%s took %.2f s", Path(argv[0]).name, time.monotonic() - started)
