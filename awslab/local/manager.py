"""Start, find, reuse and stop the local AWS server process.

Its files live in ``<state dir>/local/``: ``server.json`` (pid, port, token; written by the server
once it listens) and ``server.log``. A server is reused only when its pid is alive and its health
endpoint answers with the same pid and token; ``stop`` signals only that pid.
"""

from __future__ import annotations

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

from awslab.engine.state import read_json, state_dir
from awslab.errors import OperationError, UsageError
from awslab.local.processes import pid_alive

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HEALTH_PATH = "/awslab/health"  # these two are also in server.py (kept import-free for start-up speed)
LATENCY_PATH = "/awslab/latency"


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


def _read_info() -> dict | None:
    info = read_json(local_dir() / "server.json")
    if info is None:
        return None
    if not all(isinstance(info.get(k), t) for k, t in (("pid", int), ("port", int), ("host", str), ("token", str))):
        return None
    return info


def find() -> LocalServer | None:
    """The running local AWS started by awslab, or None."""
    info = _read_info()
    if info and pid_alive(info["pid"]) and _healthy(info):
        return LocalServer(info["pid"], info["host"], info["port"], local_dir() / "server.log")
    return None


def ensure_running(port: int = 0, latency: str | None = None, time_scale: float | None = None,
                   engines: bool | None = None) -> tuple[LocalServer, bool]:
    """Reuse the running local AWS or start one (``engines`` as for ``start``); returns (server, started_now)."""
    running = find()
    if running:
        if latency is not None:
            set_latency(running, latency, time_scale if time_scale is not None else 1.0)
        return running, False
    return start(port, latency, time_scale, engines), True


def set_latency(server: LocalServer, latency: str, time_scale: float = 1.0) -> dict:
    """Change the latency profile of a running local AWS (for resources made from then on)."""
    req = urllib.request.Request(f"{server.endpoint_url}{LATENCY_PATH}", method="POST",
                                 data=json.dumps({"latency": latency, "time_scale": time_scale}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise UsageError(f"latency refused: {json.loads(exc.read()).get('error')}") from None


def get_latency(server: LocalServer) -> dict:
    with urllib.request.urlopen(f"{server.endpoint_url}{LATENCY_PATH}", timeout=5) as resp:
        return json.loads(resp.read())


def start(port: int = 0, latency: str | None = None, time_scale: float | None = None,
          engines: bool | None = None) -> LocalServer:
    """Start a detached local AWS on 127.0.0.1 and wait (bounded) until it answers.

    ``engines``: real PostgreSQL and Redis behind RDS and ElastiCache; None leaves it to the
    server (``AWSLAB_LOCAL_ENGINES``, default on)."""
    ldir = local_dir()
    ldir.mkdir(parents=True, exist_ok=True)
    (ldir / "server.json").unlink(missing_ok=True)
    log_path = ldir / "server.log"
    env = dict(os.environ)
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "awslab.local.server", "--state-dir", str(ldir), "--port", str(port),
             *(["--latency", latency] if latency else []),
             *(["--time-scale", str(time_scale)] if time_scale is not None else []),
             *(["--engines", "on" if engines else "off"] if engines is not None else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OperationError(f"the local AWS exited at start (code {proc.returncode})", f"see its log: {log_path}")
        info = _read_info()
        if info and info["pid"] == proc.pid and _healthy(info, timeout=1.0):
            return LocalServer(proc.pid, info["host"], info["port"], log_path)
        time.sleep(0.05)
    proc.kill()
    raise OperationError(f"the local AWS did not answer within {START_TIMEOUT_S:.0f}s", f"see its log: {log_path}")


def stop() -> LocalServer | None:
    """Stop the local AWS that awslab started (only that pid); None if none was running."""
    running = find()
    if running is None:
        (local_dir() / "server.json").unlink(missing_ok=True)
        stop_engines()
        return None
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and pid_alive(running.pid):
        time.sleep(0.05)
    if pid_alive(running.pid):
        os.kill(running.pid, signal.SIGKILL)
    (local_dir() / "server.json").unlink(missing_ok=True)
    stop_engines()
    return running


def stop_engines() -> list[int]:
    """Stop any engine the server left (it stops its own on a clean exit; not after a SIGKILL)."""
    if not (local_dir() / "engines" / "engines.json").exists():
        return []
    from awslab.local.engines import Engines

    pids = Engines(local_dir() / "engines").stop_all()
    (local_dir() / "endpoints.json").unlink(missing_ok=True)
    return pids
