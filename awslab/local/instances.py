"""EC2 instances of the local AWS as places where commands run (runs in the local AWS's process).

Each instance that has been asked for (a command sent to it through SSM, `awslab shell`, a
client asking for the endpoints as it sees them) gets a directory of its own,
``<local dir>/instances/<instance id>/``: its working directory and home, with

- ``bin/``: the lab's clients (psql, redis-cli and their namesakes, mysql / mariadb) and the usual
  connectivity probes this machine has (bash for its ``/dev/tcp``, nc, ncat, netcat, telnet, socat)
  as thin shims that resolve an RDS or ElastiCache endpoint name
  (``week6-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com``) to the address this instance sees it at
  (local/network.py: its listeners, so its security groups and subnet decide every connection),
  then run the real tool;
- ``hosts.json``: that resolution (endpoint -> 127.0.0.1:port, and the CA to check TLS by), also
  applied to a command's ``/dev/tcp/<endpoint name>/<port>`` (bash resolves those itself);
- ``.awslab-session.bashrc``: `awslab shell`'s interactive bash, which moves a typed line's
  ``/dev/tcp/<endpoint name>/<port>`` the same way when Enter is pressed;
- ``global-bundle.pem``: the local AWS's CA under the name of RDS's bundle, so the line AWS's
  guide gives (``sslrootcert=global-bundle.pem``) works as written;
- ``env``: the environment a command gets (the AWS CLI pointed at the local AWS, the region).

Commands run as the local AWS's owner (the OS user that runs it); only requests signed with the
home's own keys may send them (server.py), never an IAM user's made inside the local AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from awslab.home.state import write_json_atomic
from awslab.local.shim import MYSQL, PROBES, dev_tcp

CLIENTS = ("psql", "redis-cli", "redis6-cli", "valkey-cli")
BUNDLE = "global-bundle.pem"


def home_of(local_dir: Path, instance_id: str) -> Path:
    return local_dir / "instances" / instance_id


def prepare(local_dir: Path, instance_id: str, seen: dict[str, dict], ca: Path | None, env: dict[str, str]) -> Path:
    """The instance's directory, with its shims and its view of the endpoints brought up to date."""
    home = home_of(local_dir, instance_id)
    (home / "bin").mkdir(parents=True, exist_ok=True)
    hosts = {}
    for endpoint, info in seen.items():
        if info.get("status") == "available" and info.get("port"):
            address, _, port = endpoint.rpartition(":")
            hosts.setdefault(address, {})[port] = {"host": "127.0.0.1", "port": int(info["port"]),
                                                   "tunnel_port": info.get("tunnel_port")}
    tools = _tools(home / "bin")
    write_json_atomic(home / "hosts.json", {"hosts": hosts, "ca": str(ca) if ca else None, "clients": _clients(),
                                            "tools": tools})
    if ca is not None and ca.exists():
        shutil.copyfile(ca, home / BUNDLE)
    python, where = shlex.quote(sys.executable), shlex.quote(str(home))
    shims = {name: f"#!/bin/sh\nexec {python} -m awslab.local.shim {where} {name} \"$@\"\n"
             for name in (*CLIENTS, *(t for t in tools if t != "bash"))}
    if "bash" in tools:
        # Every bash a command starts (``timeout 5 bash -c '</dev/tcp/...'``) passes here: only one
        # whose arguments or script name /dev/tcp to an AWS name (RDS's and ElastiCache's end in
        # amazonaws.com, .cn in China) pays for the resolver; the rest is the real bash at once.
        go = f"exec {python} -m awslab.local.shim {where} bash \"$@\""
        shims["bash"] = ("#!/bin/sh\nfor a in \"$@\"; do\n"
                         f"  case $a in */dev/tcp/*amazonaws.com*) {go};; esac\n"
                         f"  if [ -f \"$a\" ] && grep -qs '/dev/tcp/.*amazonaws\\.com' \"$a\"; then {go}; fi\n"
                         f"done\nexec {shlex.quote(tools['bash'])} \"$@\"\n")
    files = {home / "bin" / name: text for name, text in shims.items()}
    files[home / SESSION_RC] = _session_rc(python, where)
    for shim, text in files.items():
        if not shim.exists() or shim.read_text() != text:
            shim.write_text(text)
            shim.chmod(0o755)
    write_json_atomic(home / "env.json", env)
    return home


SESSION_RC = ".awslab-session.bashrc"   # `awslab shell`'s interactive bash reads it


def _session_rc(python: str, where: str) -> str:
    """A typed line is read by the interactive bash itself, no shim between: on Enter, its
    ``/dev/tcp/<endpoint name>/<port>`` is moved to the instance's view (the line shows where it went)."""
    return ("# awslab shell: /dev/tcp/<endpoint name>/<port> typed at the prompt reaches this instance's view of it\n"
            "__awslab_dev_tcp() {\n"
            "  case $READLINE_LINE in */dev/tcp/*amazonaws.com*)\n"
            f"    READLINE_LINE=$({python} -m awslab.local.shim {where} dev-tcp \"$READLINE_LINE\")\n"
            "    READLINE_POINT=${#READLINE_LINE};;\n"
            "  esac\n"
            "}\n"
            "PS1=${AWSLAB_PS1:-$PS1}   # the instance's prompt, over the system bashrc's\n"
            "if [ -t 0 ]; then\n"
            "  bind -x '\"\\C-x\\C-t\": __awslab_dev_tcp'\n"
            "  bind '\"\\C-m\": \"\\C-x\\C-t\\C-j\"'\n"
            "fi\n")


def _tools(shims: Path) -> dict[str, str]:
    """The connectivity probes and MySQL-family clients this machine has (bash, nc, ncat, netcat,
    telnet, socat, mysql, mariadb), each shimmed on the instance so an endpoint's name reaches the
    instance's view of it."""
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d) != shims)
    found = {name: shutil.which(name, path=path) for name in ("bash", *PROBES, *MYSQL)}
    return {name: where for name, where in found.items() if where}


def _clients() -> dict[str, str]:
    """The real clients the shims run: the ones built with TLS first, as awslab's own lines use."""
    from awslab.local.clients import psql_with_tls, redis_cli_with_tls, tool_path

    psql_tls, redis_tls = psql_with_tls(), redis_cli_with_tls()
    return {"psql": psql_tls or tool_path("psql"), "psql-tls": bool(psql_tls),
            "redis-cli": redis_tls or tool_path("redis-cli"), "redis-cli-tls": bool(redis_tls)}


def environment(home: Path, instance: str, region: str) -> dict[str, str]:
    """What a command on the instance runs with: the shims first on the PATH, its home, the AWS CLI
    pointed at the local AWS (as the instance's role would let it call AWS), the region."""
    try:
        extra = json.loads((home / "env.json").read_text())
    except (OSError, ValueError):
        extra = {}
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR")}
    path = [str(home / "bin"), *os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)]
    # The AWS CLI (and python3) of awslab's own environment, where this one has them, even unactivated.
    path += [] if str(Path(sys.executable).parent) in path else [str(Path(sys.executable).parent)]
    return {**keep, **extra, "PATH": os.pathsep.join(path),
            "HOME": str(home), "PWD": str(home), "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
            "AWSLAB_INSTANCE_ID": instance}


# --- SSM Run Command, for real (patches/ssm.py sends here) ---

OUTPUT_LIMIT = 24000   # GetCommandInvocation's StandardOutputContent / StandardErrorContent, as AWS
_config: dict[str, Any] = {"local_dir": None, "env": {}, "view": None}
_running: dict[tuple[str, str], subprocess.Popen] = {}   # (command id, instance) -> its process (never saved)
_cancelled: set[tuple[str, str]] = set()
_lock = threading.Lock()


def configure(local_dir: Path, env: dict[str, str], view: Callable[[str], tuple[dict, Path | None]] | None) -> None:
    """Where instances live, what their commands' AWS CLI is pointed at, and (engines on) how an
    instance sees the endpoints."""
    _config.update(local_dir=local_dir, env=env, view=view)


def ready(instance_id: str) -> Path:
    """The instance's directory, its view of the endpoints opened and written (``awslab shell``,
    a command about to run)."""
    local_dir = _config["local_dir"]
    seen, ca = ({}, None) if _config["view"] is None else _config["view"](instance_id)
    return prepare(local_dir, instance_id, seen, ca, _config["env"])


def run(command, region: str, script: str, timeout_s: int, unsupported: str | None) -> None:
    """Run ``script`` on each instance of ``command`` in the background, filling its invocations."""
    for inv in command.invocations:
        threading.Thread(target=_run_one, args=(command, inv, region, script, timeout_s, unsupported),
                         name=f"ssm {command.command_id[:8]} {inv['InstanceId']}", daemon=True).start()


def cancel(command, instance_ids: list[str]) -> None:
    for iid in instance_ids:
        with _lock:
            proc = _running.get((command.command_id, iid))
        inv = next((i for i in command.invocations if i["InstanceId"] == iid), None)
        if inv is not None and inv["Status"] in ("Pending", "InProgress"):
            _cancelled.add((command.command_id, iid))
            if proc is not None:
                _stop(proc)
            else:
                _finish(command, inv, "Cancelled", -1, "", "", time.monotonic())


def _iso(when: float | None = None) -> str:
    return datetime.fromtimestamp(when or time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def _run_one(command, inv: dict, region: str, script: str, timeout_s: int, unsupported: str | None) -> None:
    started = time.monotonic()
    inv.update(Status="InProgress", StatusDetails="InProgress", ExecutionStartDateTime=_iso())
    command.status = command.status_details = "InProgress"
    if unsupported:
        _finish(command, inv, "Failed", 1, "", unsupported + "\n", started)
        return
    iid = inv["InstanceId"]
    try:
        home = ready(iid)
    except Exception as exc:  # noqa: BLE001 - the invocation fails with why, the server goes on
        _finish(command, inv, "Failed", 1, "", f"the local AWS could not prepare {iid}: {exc}\n", started)
        return
    work = home / "ssm" / command.command_id
    work.mkdir(parents=True, exist_ok=True)
    (work / "_script.sh").write_text(dev_tcp(script, home) + "\n")
    # The script's own /dev/tcp is moved above, so the real bash runs it (not the instance's bin/bash).
    proc = subprocess.Popen([shutil.which("bash") or "bash", str(work / "_script.sh")], cwd=home, env=environment(home, iid, region),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    with _lock:
        _running[command.command_id, iid] = proc
    try:
        out, err = proc.communicate(timeout=timeout_s)
        status = "Cancelled" if (command.command_id, iid) in _cancelled else ("Success" if proc.returncode == 0 else "Failed")
        code = proc.returncode if status != "Cancelled" else -1
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, err = proc.communicate()
        status, code = "TimedOut", -1
        err += f"\nfailed to run commands: the command ran longer than executionTimeout ({timeout_s} s) and was stopped\n".encode()
    finally:
        with _lock:
            _running.pop((command.command_id, iid), None)
    _finish(command, inv, status, code, out.decode(errors="replace"), err.decode(errors="replace"), started)


def _finish(command, inv: dict, status: str, code: int, out: str, err: str, started: float) -> None:
    details = {"TimedOut": "ExecutionTimedOut"}.get(status, status)
    inv.update(Status=status, StatusDetails=details, ResponseCode=code, ExecutionEndDateTime=_iso(),
               ExecutionElapsedTime=f"PT{time.monotonic() - started:.3f}S",
               StandardOutputContent=out[:OUTPUT_LIMIT], StandardErrorContent=err[:OUTPUT_LIMIT])
    _cancelled.discard((inv["CommandId"], inv["InstanceId"]))
    done = [i for i in command.invocations if i["Status"] not in ("Pending", "InProgress")]
    if len(done) < len(command.invocations):
        return
    statuses = {i["Status"] for i in command.invocations}
    command.completed_count = len(done)
    command.error_count = sum(1 for i in done if i["Status"] != "Success")
    for final in ("Cancelled", "TimedOut", "Failed"):
        if final in statuses:
            command.status = command.status_details = final
            break
    else:
        command.status = command.status_details = "Success"
