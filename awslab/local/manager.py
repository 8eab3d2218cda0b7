"""Start, find, reuse, stop and reset the local AWS server process.

Its files live in ``<state dir>/local/``: ``server.lock`` (held by the running server, with its
identity), ``server.json`` (the same identity, for readers), ``server.log``, ``state.pickle`` (what
it holds, see persistence.py) and ``engines/``. A server is reused only when its health endpoint
answers with the pid, token and dir it wrote; ``stop`` signals only that pid. When ``server.json``
is stale or corrupt but the lock is held, the holder is found through the lock file; when the lock
is free no server runs, whatever ``server.json`` says, and the next one loads the saved state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from awslab.home.state import read_json, state_dir, write_json_atomic
from awslab.errors import OperationError, UsageError
from awslab.local import forkserver
from awslab.local.processes import pid_alive

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0   # the server saves its state and stops every engine first
KILL_WAIT_S = 10.0      # then a SIGKILL, and the kernel's tearing down of the process
HEALTH_PATH = "/awslab/health"  # these five are also in server.py (kept import-free for start-up speed)
LOCK_FILE = "server.lock"
EXIT_LOCKED = 3
LATENCY_PATH = "/awslab/latency"
RECONCILE_PATH = "/awslab/engines/reconcile"
UNSAVED_FILE = "state.unsaved.json"   # persistence.UNSAVED_FILE, written by the server while saves fail


@dataclass(frozen=True)
class LocalServer:
    pid: int
    host: str
    port: int
    log: Path

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def local_dir() -> Path:
    return state_dir() / "local"


def _healthy(info: dict, timeout: float = 2.0) -> bool:
    url = f"http://{info['host']}:{info['port']}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            got = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return got.get("pid") == info.get("pid") and got.get("token") == info.get("token")


def _valid(info) -> dict | None:
    if isinstance(info, dict) and all(isinstance(info.get(k), t) for k, t in
                                      (("pid", int), ("port", int), ("host", str), ("token", str))):
        return info
    return None


def _read_info() -> dict | None:
    """server.json's identity, or None when absent, corrupt or incomplete (never an error: the lock
    says whether a server runs)."""
    try:
        return _valid(read_json(local_dir() / "server.json"))
    except UsageError:
        return None


def lock_holder() -> dict | None:
    """The identity the running server wrote into server.lock, {} while it is still starting, or
    None when no server holds the lock (none runs for this home)."""
    path = local_dir() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return _valid(json.loads(os.pread(fd, 4096, 0) or b"{}")) or {}
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def find() -> LocalServer | None:
    """The running local AWS of this home, or None. A stale or corrupt server.json is repaired from
    the lock's holder (with a note on stderr), never taken for "no server"."""
    existed = (local_dir() / "server.json").exists()
    info = _read_info()
    if info and pid_alive(info["pid"]) and _healthy(info):
        return _server(info)
    holder = lock_holder()
    if holder is None:
        return None
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (holder and _healthy(holder)):   # starting (another command started it), or busy
        if time.monotonic() > deadline:
            raise OperationError(f"the local AWS holding {local_dir()} does not answer "
                                 f"({'pid ' + str(holder['pid']) if holder else 'still starting'})",
                                 f"see its log: {local_dir() / 'server.log'}")
        time.sleep(0.1)
        holder = lock_holder()
        if holder is None:
            return None
    if existed and info != holder:   # (absent: the server is about to write it itself)
        _say(f"local/server.json was {'stale' if info else 'unreadable'}; the local AWS (pid "
             f"{holder['pid']}) is running at http://{holder['host']}:{holder['port']}: rewrote it")
    write_json_atomic(local_dir() / "server.json", holder)
    return _server(holder)


def unsaved() -> dict | None:
    """What the local AWS of this home could not save: {since, cause, saved_at} (epoch seconds;
    saved_at None when nothing was ever saved), or None while its saves succeed."""
    try:
        got = json.loads((local_dir() / UNSAVED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def unsaved_line(failure: dict) -> str:
    """One line on a failing save: since when, why, and what a stop or crash would lose."""
    clock = lambda t: time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "?"  # noqa: E731
    kept = (f"the state saved at {clock(failure.get('saved_at'))}" if failure.get("saved_at")
            else "nothing (no state was ever saved)")
    return (f"the local AWS has not been able to save its state since {clock(failure.get('since'))} "
            f"({failure.get('cause', 'unknown cause')}); a stop or a crash keeps only {kept}")


def _warn_if_unsaved() -> None:
    failure = unsaved()
    if failure is not None:
        _say(f"warning: {unsaved_line(failure)}; see its log: {local_dir() / 'server.log'}")


def _server(info: dict) -> LocalServer:
    return LocalServer(info["pid"], info["host"], info["port"], local_dir() / "server.log")


def _say(line: str) -> None:
    print(f"awslab: {line}", file=sys.stderr, flush=True)


def ensure_running(port: int = 0, latency: str | None = None, time_scale: float | None = None,
                   engines: bool | None = None) -> tuple[LocalServer, bool]:
    """Reuse the running local AWS or start one (``engines`` as for ``start``); returns (server, started_now)."""
    running = find()
    if running:
        _warn_if_unsaved()   # every command that uses it says so while its saves fail
        if latency is not None:
            set_latency(running, latency, time_scale if time_scale is not None else 1.0)
        return running, False
    last = _read_info()
    if last is not None or (local_dir() / "server.json").exists():
        who = f"the local AWS (pid {last['pid']})" if last else "the local AWS (local/server.json unreadable)"
        _say(f"{who} is not running (stopped, crashed or the machine restarted): starting it again with its saved state")
    return start(port, latency, time_scale, engines), True


def credentials() -> dict[str, str]:
    """The keys the local AWS of this home accepts (made by its first start; owner-only)."""
    from awslab.local.auth import read_credentials

    creds = read_credentials(local_dir())
    if creds is None:
        raise OperationError(f"the local AWS's credentials are missing from {local_dir()}",
                             "an older awslab started the running local AWS: `awslab local stop && awslab local "
                             "start` (a server that old saves nothing: its stacks go with it)")
    return creds


class ThisHome:
    """This home's local AWS as the client's context takes it (engine/context.py's ``LocalAws``)."""

    def start(self) -> str:
        return ensure_running()[0].endpoint_url

    def credentials(self) -> dict[str, str]:
        return credentials()

    def saved_credentials(self) -> dict[str, str] | None:
        from awslab.local.auth import read_credentials

        return read_credentials(local_dir())


THIS_HOME = ThisHome()


def signed_request(url: str, method: str = "GET", data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A request to the local AWS's own endpoints, signed with this home's keys."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = credentials()
    req = AWSRequest(method=method, url=url, data=data, headers=headers or {})
    SigV4Auth(Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"]), "awslab", "us-east-1").add_auth(req)
    return urllib.request.Request(url, data=data, method=method, headers=dict(req.headers.items()))


def set_latency(server: LocalServer, latency: str, time_scale: float = 1.0) -> dict:
    """Change the latency profile of a running local AWS (for resources made from then on)."""
    req = signed_request(f"{server.endpoint_url}{LATENCY_PATH}", "POST",
                         json.dumps({"latency": latency, "time_scale": time_scale}).encode(),
                         {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise UsageError(f"latency refused: {json.loads(exc.read()).get('error')}") from None


def reconcile_engines(endpoint_url: str) -> dict:
    """Ask the local AWS at ``endpoint_url`` to bring back any engine that died (a killed postgres,
    a crash while it was starting); those running are left alone."""
    req = signed_request(f"{endpoint_url}{RECONCILE_PATH}", "POST", b"{}", {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=150) as resp:   # the server waits up to 120 s for the engines
        return json.loads(resp.read())


def get_latency(server: LocalServer) -> dict:
    with urllib.request.urlopen(signed_request(f"{server.endpoint_url}{LATENCY_PATH}"), timeout=5) as resp:
        return json.loads(resp.read())


def start(port: int = 0, latency: str | None = None, time_scale: float | None = None,
          engines: bool | None = None) -> LocalServer:
    """Start a detached local AWS on 127.0.0.1 and wait (bounded) until it answers.

    ``engines``: real PostgreSQL and Redis behind RDS and ElastiCache; None leaves it to the
    server (``AWSLAB_LOCAL_ENGINES``, default on)."""
    ldir = local_dir()
    ldir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(ldir, 0o700)   # it holds the saved state, secrets included
    log_path = ldir / "server.log"
    env = dict(os.environ)
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

    def spawn() -> subprocess.Popen | forkserver.Forked:
        args = ["--state-dir", str(ldir), "--port", str(port),
                *(["--latency", latency] if latency else []),
                *(["--time-scale", str(time_scale)] if time_scale is not None else []),
                *(["--engines", "on" if engines else "off"] if engines is not None else [])]
        forked = forkserver.spawn(args, env, log_path)   # a harness's prepared process, if it has one
        if forked is not None:
            return forked
        with open(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "awslab.local.server", *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=env,
            )

    proc, retried = spawn(), False
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if proc.returncode == EXIT_LOCKED:   # another command started one at the same moment: use it
                running = find()
                if running is not None:
                    return running
                if lock_holder() is None and not retried:
                    # The holder was a server still dying (a stop's SIGKILL): the home is free now.
                    retried = True
                    proc = spawn()
                    continue
            raise OperationError(f"the local AWS exited at start (code {proc.returncode})", f"see its log: {log_path}")
        info = _read_info()
        if info and info["pid"] == proc.pid and _healthy(info, timeout=1.0):
            return LocalServer(proc.pid, info["host"], info["port"], log_path)
        time.sleep(0.05)
    proc.kill()
    raise OperationError(f"the local AWS did not answer within {START_TIMEOUT_S:.0f}s", f"see its log: {log_path}")


def stop() -> LocalServer | None:
    """Stop the local AWS of this home (only that pid); its state and engines' data are kept for the
    next start. None if none was running (then engines a crashed server left running are stopped,
    their data kept too)."""
    running = find()
    if running is not None:
        os.kill(running.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and pid_alive(running.pid):
            time.sleep(0.05)
        if pid_alive(running.pid):
            log_line = f"the local AWS (pid {running.pid}) did not stop within {STOP_TIMEOUT_S:.0f}s: killed"
            with contextlib.suppress(ProcessLookupError):   # it went at the last moment
                os.kill(running.pid, signal.SIGKILL)
            # Gone only once the kernel has torn it down (its lock with it): a start right after
            # would otherwise find the home still locked by the dying server.
            deadline = time.monotonic() + KILL_WAIT_S
            while time.monotonic() < deadline and pid_alive(running.pid):
                time.sleep(0.02)
            _say(log_line)
    (local_dir() / "server.json").unlink(missing_ok=True)
    if lock_holder() is None:   # never another server's engines
        halt_engines()
    return running


def halt_engines() -> list[str]:
    """Stop the engines a server left running (it stops its own on a clean exit; not after a
    SIGKILL), keeping their data, and any engine process of this home in no entry (one the server
    was starting when it died)."""
    if not (local_dir() / "engines" / "engines.json").exists():
        return []
    from awslab.local.engines import Engines

    engines = Engines(local_dir() / "engines")
    keys = engines.halt_all()
    engines.reap_strays()
    (local_dir() / "endpoints.json").unlink(missing_ok=True)
    return keys


def reset() -> LocalServer | None:
    """Stop the local AWS and throw away everything it held: every stack, snapshot and engine's data."""
    stopped = stop()
    if (local_dir() / "engines").exists():
        from awslab.local.engines import Engines

        Engines(local_dir() / "engines").stop_all()
    for name in ("state.pickle", "endpoints.json", "server.json"):
        (local_dir() / name).unlink(missing_ok=True)
    for aside in local_dir().glob("state.pickle.*"):
        aside.unlink(missing_ok=True)
    return stopped
