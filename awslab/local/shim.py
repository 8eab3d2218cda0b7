"""A lab client run on an instance of the local AWS: ``python -m awslab.local.shim HOME NAME ARGS``.

The instance's ``bin/psql`` (and ``redis-cli``, ...) call this: it resolves each RDS or
ElastiCache endpoint name in the arguments and the environment (``-h``/``--host``, ``host=`` in a
conninfo string, a ``postgresql://`` or ``redis://`` URI, ``PGHOST``) to the address the instance
sees that endpoint at (``HOME/hosts.json``, written by local/instances.py), moves the port with it,
points TLS at the local AWS's CA where the client was not told one, then runs the real client.
What the instance may reach is decided at that address, by the VPC (local/network.py).
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


def dev_tcp(text: str, home: Path) -> str:
    """A script with bash's ``/dev/tcp/<endpoint name>/<port>`` moved to the instance's view of that
    endpoint, as the instance's resolver would answer the name on AWS (bash resolves it itself, so
    no client shim sees it). Unknown names are left as written."""
    try:
        hosts = json.loads((home / "hosts.json").read_text()).get("hosts") or {}
    except (OSError, ValueError):
        return text

    def moved(m: re.Match) -> str:
        found = _lookup(hosts, m.group(1), m.group(2))
        return f"/dev/tcp/{found['host']}/{found['port']}" if found else m.group(0)

    return DEV_TCP.sub(moved, text)


def main(argv: list[str]) -> int:
    home, name, args = Path(argv[0]), argv[1], argv[2:]
    try:
        data = json.loads((home / "hosts.json").read_text())
    except (OSError, ValueError):
        data = {}
    env = dict(os.environ)
    clients = data.get("clients") or {}
    tls = clients.get("psql-tls" if name == "psql" else "redis-cli-tls", True)
    args = rewrite(name, args, env, data.get("hosts") or {}, data.get("ca"), tls=tls)
    known = clients.get("psql" if name == "psql" else "redis-cli")
    real = known if known and Path(known).is_file() else real_client(name, home / "bin")
    if real is None:
        print(f"{name}: command not found (install it on the host: pip install 'awslab[engines]')", file=sys.stderr)
        return 127
    os.execve(real, [name, *args], env)
    return 0   # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
