"""A lab client run on an instance of the local AWS: ``python -m awslab.local.shim HOME NAME ARGS``.

The instance's ``bin/psql`` (and ``redis-cli``, ``mysql``, ...) call this: it resolves each RDS or
ElastiCache endpoint name in the arguments and the environment (``-h``/``--host``, ``host=`` in a
conninfo string, a ``postgresql://`` or ``redis://`` URI, ``PGHOST``) to the address the instance
sees that endpoint at (``HOME/hosts.json``, written by local/instances.py), moves the port with it,
points TLS at the local AWS's CA where the client was not told one, then runs the real client.
The usual connectivity probes get the same resolution: bash's ``/dev/tcp/<name>/<port>`` (bash
resolves it itself, so ``bin/bash`` moves it in a ``-c`` string or a script before running the real
bash), and ``nc`` / ``ncat`` / ``netcat`` / ``telnet`` ``<name> <port>``, ``socat ... TCP:<name>:<port>``.
What the instance may reach is decided at that address, by the VPC (local/network.py): a denied
path is dropped there, so a probe times out as on AWS. A name that is no endpoint passes untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

def _lookup(hosts: dict, host: str, port: str | None) -> dict | None:
    ports = hosts.get(host)
    if not ports:
        return None
    return ports.get(port) if port else next(iter(ports.values()))


def _conninfo(text: str, hosts: dict, env: dict) -> str | None:
    pairs = dict(p.split("=", 1) for p in text.split() if "=" in p)
    found = _lookup(hosts, pairs.get("host", ""), pairs.get("port") or env.get("PGPORT") or "5432")
    if found is None:
        return None
    pairs.update(host=found["host"], port=str(found["port"]))
    return " ".join(f"{k}={v}" for k, v in pairs.items())


def _uri(text: str, hosts: dict, default_port: str) -> str | None:
    parts = urlsplit(text)
    found = _lookup(hosts, parts.hostname or "", str(parts.port or default_port))
    if found is None:
        return None
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(f"{auth}@" if auth else "") + f"{found['host']}:{found['port']}"))


def _plain(args: list[str], hosts: dict) -> tuple[list[str], dict]:
    """A redis-cli built without TLS: its TLS flags dropped and every endpoint's tunnel used instead
    (the local AWS speaks TLS to the endpoint for it, as ``awslab connect`` does)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--cacert", "--cacertdir", "--cert", "--key", "--sni", "--tls-ciphers", "--tls-ciphersuites"):
            skip = True
            continue
        if a not in ("--tls", "--insecure"):
            out.append(a)
    return out, _tunnels(hosts)


def _tunnels(hosts: dict) -> dict:
    return {h: {p: {**e, "port": e["tunnel_port"]} if e.get("tunnel_port") else e for p, e in ports.items()}
            for h, ports in hosts.items()}


def _plain_psql(args: list[str], env: dict, hosts: dict) -> tuple[list[str], dict]:
    """A psql built without TLS: ``sslmode`` asks for TLS it cannot speak, so the endpoint's tunnel
    (the local AWS speaks verified TLS to the endpoint for it) and ``sslmode=disable`` instead."""
    import re

    out = [re.sub(r"\bsslrootcert=\S+\s?", "", re.sub(r"\bsslmode=\S+", "sslmode=disable", a)) if "sslmode=" in a
           else a for a in args]
    if env.get("PGSSLMODE"):
        env["PGSSLMODE"] = "disable"
    env.pop("PGSSLROOTCERT", None)
    return out, _tunnels(hosts)


def rewrite(name: str, args: list[str], env: dict, hosts: dict, ca: str | None, tls: bool = True) -> list[str]:
    """``args`` (and ``env``, in place) with every known endpoint moved to the instance's view;
    ``tls`` False: the client has none, so TLS is left to the endpoint's tunnel."""
    psql = name == "psql"
    if not psql and not tls and "--tls" in args:
        args, hosts = _plain(args, hosts)
    if psql and not tls:
        args, hosts = _plain_psql(args, env, hosts)
        ca = None
    default_port = "5432" if psql else "6379"
    out, host_at, port_at, host = list(args), None, None, None
    i = 0
    while i < len(out):
        a = out[i]
        if a in ("-h", "--host") and i + 1 < len(out):
            host_at, host = i + 1, out[i + 1]
            i += 2
            continue
        if a in ("-p", "--port") and i + 1 < len(out):
            port_at = i + 1
            i += 2
            continue
        if a.startswith("--host="):
            out[i:i + 1] = ["--host", a.split("=", 1)[1]]
            continue
        if a.startswith("--port="):
            out[i:i + 1] = ["--port", a.split("=", 1)[1]]
            continue
        if psql and a.startswith("-h") and len(a) > 2:
            out[i:i + 1] = ["-h", a[2:]]
            continue
        if "://" in a:
            out[i] = _uri(a, hosts, default_port) or a
        elif psql and "host=" in a:
            out[i] = _conninfo(a, hosts, env) or a
        i += 1
    if host is not None:
        found = _lookup(hosts, host, out[port_at] if port_at is not None else (env.get("PGPORT") if psql else None) or default_port)
        if found is not None:
            out[host_at] = found["host"]
            if port_at is not None:
                out[port_at] = str(found["port"])
            elif psql:
                env["PGPORT"] = str(found["port"])
            else:   # redis-cli reads its options before the command only: right after the host
                out[host_at + 1:host_at + 1] = ["-p", str(found["port"])]
    if psql and env.get("PGHOST") in hosts:
        found = _lookup(hosts, env["PGHOST"], env.get("PGPORT") or "5432")
        if found is not None:
            env["PGHOST"], env["PGPORT"] = found["host"], str(found["port"])
    if psql and ca and "PGSSLROOTCERT" not in env:
        env["PGSSLROOTCERT"] = ca
    if not psql and ca and "--tls" in out and "--cacert" not in out:
        out[out.index("--tls") + 1:out.index("--tls") + 1] = ["--cacert", ca]
    return out


def real_client(name: str, shims: Path) -> str | None:
    """The real ``name``: the engine wheels' first (as awslab's own lines use), then the PATH's."""
    from awslab.local.clients import wheel_tool

    wheel = wheel_tool("psql" if name == "psql" else "redis-cli")
    if wheel:
        return wheel
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d) != shims)
    for n in ((name,) if name == "psql" else (name, "redis-cli", "redis6-cli", "valkey-cli")):
        found = shutil.which(n, path=path)
        if found:
            return found
    return None


DEV_TCP = re.compile(r"/dev/tcp/([A-Za-z0-9][A-Za-z0-9.-]*)/(\d+)")
SOCAT_TCP = re.compile(r"(?i)\b(tcp[46]?(?:-connect)?:)([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)")
PROBES = ("nc", "ncat", "netcat", "telnet", "socat")   # run only where this machine has them
MYSQL = ("mysql", "mariadb")


def hosts_of(home: Path) -> dict:
    """The instance's view of the endpoints (``HOME/hosts.json``): {name: {port: {host, port}}}."""
    try:
        return json.loads((home / "hosts.json").read_text()).get("hosts") or {}
    except (OSError, ValueError):
        return {}


def moved_dev_tcp(text: str, hosts: dict) -> str:
    """``text`` with each ``/dev/tcp/<endpoint name>/<port>`` moved to the instance's view."""
    def moved(m: re.Match) -> str:
        found = _lookup(hosts, m.group(1), m.group(2))
        return f"/dev/tcp/{found['host']}/{found['port']}" if found else m.group(0)

    return DEV_TCP.sub(moved, text)


def dev_tcp(text: str, home: Path) -> str:
    """A script with bash's ``/dev/tcp/<endpoint name>/<port>`` moved to the instance's view of that
    endpoint, as the instance's resolver would answer the name on AWS (bash resolves it itself, so
    no client shim sees it). Unknown names are left as written."""
    return moved_dev_tcp(text, hosts_of(home))


BASH_VALUED = ("-o", "+o", "-O", "+O", "--rcfile", "--init-file")


def bash_args(args: list[str], hosts: dict) -> list[str]:
    """bash's arguments with ``/dev/tcp`` moved in them (a ``-c`` string) or, run as ``bash SCRIPT
    ARGS``, in the script: it then runs as ``-c TEXT SCRIPT ARGS`` (``$0`` and the arguments as
    given; the file is not changed)."""
    out = [moved_dev_tcp(a, hosts) for a in args]
    i = 0
    while i < len(out):
        a = out[i]
        if a in BASH_VALUED:
            i += 2
            continue
        if a == "--":
            i += 1
            break
        if a.startswith("-") and not a.startswith("--") and "c" in a[1:]:
            return out   # a command string: already moved
        if not a.startswith(("-", "+")):
            break
        i += 1
    if i < len(out):
        try:
            text = Path(out[i]).read_text()
        except (OSError, UnicodeDecodeError):
            return out
        moved = moved_dev_tcp(text, hosts)
        if moved != text:
            return [*out[:i], "-c", moved, *out[i:]]
    return out


def probe_args(args: list[str], hosts: dict) -> list[str]:
    """``nc [options] <name> <port>`` (ncat, netcat, telnet alike) and socat's ``TCP:<name>:<port>``
    with the endpoint moved to the instance's view; a port range or an unknown name untouched."""
    out = list(args)
    for i in range(len(out) - 1):
        found = _lookup(hosts, out[i], out[i + 1]) if out[i + 1].isdigit() else None
        if found is not None:
            out[i:i + 2] = [found["host"], str(found["port"])]

    def moved(m: re.Match) -> str:
        found = _lookup(hosts, m.group(2), m.group(3))
        return f"{m.group(1)}{found['host']}:{found['port']}" if found else m.group(0)

    return [SOCAT_TCP.sub(moved, a) for a in out]


def mysql_args(args: list[str], env: dict, hosts: dict, ca: str | None) -> list[str]:
    """mysql / mariadb: ``-h``/``--host`` (or ``MYSQL_HOST``) and ``-P``/``--port`` moved; the CA to
    check TLS by added where ``--ssl*`` asks for TLS and names none (``-p`` is a password here)."""
    out: list[str] = []
    for a in args:   # one form: "-h X", "-P N"
        if a.startswith("--host=") or a.startswith("--port="):
            out += ["-h" if a.startswith("--host=") else "-P", a.split("=", 1)[1]]
        elif a[:2] in ("-h", "-P") and len(a) > 2:
            out += [a[:2], a[2:]]
        elif a in ("--host", "--port"):
            out.append("-h" if a == "--host" else "-P")
        else:
            out.append(a)
    at = {flag: i + 1 for i, flag in enumerate(out[:-1]) if flag in ("-h", "-P")}
    host = out[at["-h"]] if "-h" in at else env.get("MYSQL_HOST")
    port = out[at["-P"]] if "-P" in at else env.get("MYSQL_TCP_PORT") or "3306"
    found = _lookup(hosts, host or "", port)
    if found is not None:
        if "-h" in at:
            out[at["-h"]] = found["host"]
        else:
            env["MYSQL_HOST"] = found["host"]
        if "-P" in at:
            out[at["-P"]] = str(found["port"])
        else:
            out[0:0] = ["-P", str(found["port"])]
        if ca and any(a.startswith("--ssl") for a in out) and not any(a.startswith("--ssl-ca") for a in out):
            out.insert(0, f"--ssl-ca={ca}")
    return out


def _real(name: str, data: dict, home: Path) -> str | None:
    """The real ``name`` this shim stands for: the one recorded when the instance was prepared."""
    clients = data.get("clients") or {}
    if name in ("psql", "redis-cli", "redis6-cli", "valkey-cli"):
        known = clients.get("psql" if name == "psql" else "redis-cli")
        return known if known and Path(known).is_file() else real_client(name, home / "bin")
    known = (data.get("tools") or {}).get(name)
    return known if known and Path(known).is_file() else None


def main(argv: list[str]) -> int:
    home, name, args = Path(argv[0]), argv[1], argv[2:]
    try:
        data = json.loads((home / "hosts.json").read_text())
    except (OSError, ValueError):
        data = {}
    env = dict(os.environ)
    hosts = data.get("hosts") or {}
    if name == "dev-tcp":   # a line typed at `awslab shell`'s prompt (instances.SESSION_RC)
        print(moved_dev_tcp(" ".join(args), hosts), end="")
        return 0
    if name == "bash":
        args = bash_args(args, hosts)
    elif name in PROBES:
        args = probe_args(args, hosts)
    elif name in MYSQL:
        args = mysql_args(args, env, hosts, data.get("ca"))
    else:
        clients = data.get("clients") or {}
        tls = clients.get("psql-tls" if name == "psql" else "redis-cli-tls", True)
        args = rewrite(name, args, env, hosts, data.get("ca"), tls=tls)
    real = _real(name, data, home)
    if real is None:
        hint = "pip install 'awslab[engines]'" if name in ("psql", "redis-cli") else "apt-get install " + name
        print(f"{name}: command not found (install it on the host: {hint})", file=sys.stderr)
        return 127
    os.execve(real, [name, *args], env)
    return 0   # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
