"""Processes by pid, as the local AWS's manager and engines see them: alive (not a zombie), when
they started, what command they run."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path


def reap_exited() -> list[tuple[int, int]]:
    """Every child of this process that has exited, reaped now without waiting: (pid, exit code as
    ``subprocess`` gives it, negative for a signal)."""
    out = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return out
        if pid == 0:
            return out
        out.append((pid, os.waitstatus_to_exitcode(status)))


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie; a child of ours that exited is reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    stat = proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc; the start time tells a reused pid from ours."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from /proc (None when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[1])


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" when it cannot be read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # no /proc (macOS)
        return subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True,
                              timeout=10).stdout
    return ""
