"""The local AWS process: ``python -m awslab.local.server --state-dir DIR [--port N]``.

One per state dir: it holds an exclusive lock on ``DIR/server.lock`` for its whole life (a second
one exits with code 3), and writes its identity (pid, port, a random token) both there and in
``server.json``, so a command can find it even when ``server.json`` is stale or corrupt, and a
dead server's files are never taken for a live one. ``GET /awslab/health`` answers with the same
pid, token and dir, so a later command can tell this server from any other process on the port.

It binds 127.0.0.1 (port 0 = any free port), applies awslab's patches over moto, loads the state
the last server of this dir saved (local/persistence.py) and gives the DB instances and cache
nodes their engines back (local/backing/), then announces itself. On SIGTERM it saves the state
and stops the engines, keeping their data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

EXIT_LOCKED = 3
LOCK_FILE = "server.lock"
HEALTH_PATH = "/awslab/health"
LATENCY_PATH = "/awslab/latency"
MAINTENANCE_PATH = "/awslab/maintenance/offer"   # POST {"region", "instances", "action", "time_scale"?}, owner only
ENDPOINTS_PATH = "/awslab/endpoints"   # ?via=<instance id>: the map as that instance sees it
FLOWS_PATH = "/awslab/flows"           # ?since=<epoch s>&action=ACCEPT|REJECT&vpc=<vpc id>
READY_PATH = "/awslab/instances/ready"  # ?id=<instance id>, owner only: the instance's directory (`awslab shell`)
REGIONS_PATH = "/awslab/regions"
RECONCILE_PATH = "/awslab/engines/reconcile"
RECONCILE_WAIT_S = 120.0   # bringing engines back: a PostgreSQL start is a second or two each

def _more_files() -> None:
    """The soft limit on open files raised to the hard one: each endpoint's listeners, their relayed
    connections (two sockets each) and a plugged listener's queued connections are files, and a
    class's worth passes 1,024 (a common soft default) long before the machine's real limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))


def prepare():
    """What every local AWS does before it looks at its state dir, the same each time (three
    quarters of a start): the SDK's shared data, moto and awslab's layer imported and applied, the
    WSGI app made and warmed. Returns the app. A process that starts many local AWSes
    (``awslab.local.forkserver``) does it once and forks from there."""
    from awslab.home import process, sdkdata

    process.collect_less_often()
    sdkdata.share_across_sessions()   # before moto is imported: it builds sessions at import time
    sdkdata.share_with_moto()
    # auth and persistence too, which the layer does not import: a forked child finds them loaded.
    from awslab.local import auth, patches, persistence  # noqa: F401

    patches.apply()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)
    _route_from_a_list()
    _warm(moto_app)
    return moto_app


def main(argv: list[str] | None = None, prepared=None) -> None:
    """Serve the local AWS of ``--state-dir`` until SIGTERM; ``prepared``, what ``prepare()``
    returned in this process already (a forked one), else it is done here."""
    parser = argparse.ArgumentParser(prog="awslab.local.server")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", default=os.environ.get("AWSLAB_LOCAL_LATENCY"),
                        help="default: the saved state's, else instant")
    parser.add_argument("--time-scale", type=float, default=float(os.environ.get("AWSLAB_LOCAL_TIME_SCALE", "1")))
    parser.add_argument("--engines", choices=("on", "off"), default=os.environ.get("AWSLAB_LOCAL_ENGINES", "on"),
                        help="real PostgreSQL/Redis behind RDS and ElastiCache (default on)")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    _more_files()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = _lock(state_dir)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Not a line per request: that was 5 % of the server's CPU under the suite's load and a log
    # that grew without end on a server kept for a week; what went wrong is still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_app = prepared if prepared is not None else prepare()
    from awslab.local import auth, latency, persistence
    from awslab.local.network import PATH_CHANGES

    store = persistence.Store(state_dir)
    print(store.load(), flush=True)
    if args.latency is not None or not store.loaded:
        latency.set_current(latency.parse(args.latency or "instant", args.time_scale))
    backing = None
    if args.engines == "on":
        from awslab.local import backing

        backing.enable(state_dir)
        print(f"engines: {backing.resume(store.loaded)}", flush=True)
    for line in persistence.resume_background():
        print(line, flush=True)
    from werkzeug.serving import make_server

    token = secrets.token_hex(8)
    owner = auth.ensure_credentials(state_dir)
    auth.ensure_profile_file(state_dir, owner)

    def app(environ, start_response):
        path = environ.get("PATH_INFO")
        get = environ.get("REQUEST_METHOD") == "GET"
        if path == HEALTH_PATH:
            return _json(start_response, "200 OK", {"pid": os.getpid(), "token": token, "dir": str(state_dir.resolve()),
                                                    "latency": latency.current().as_dict()})
        if path == ENDPOINTS_PATH and get:   # where the engines listen: no secret (each still asks its password)
            via = _query(environ).get("via")
            endpoints = backing.describe_endpoints(Path(args.state_dir), via) if backing is not None else {}
            return _json(start_response, "200 OK", {"engines": args.engines, "endpoints": endpoints})
        if path == FLOWS_PATH and get:   # the VPC's flow records: addresses and ports, no secret
            q = _query(environ)
            flows = backing.flow_records(float(q.get("since") or 0), q.get("action"), q.get("vpc")) \
                if backing is not None else []
            return _json(start_response, "200 OK", {"flows": flows})
        if path == REGIONS_PATH and get:   # the regions that hold anything (no secret)
            return _json(start_response, "200 OK", {"regions": _regions_in_use()})
        import io

        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ[DRAINED] = True
        try:   # everything else, moto's own /moto-api/ included, only for the home's owner (local/auth.py)
            caller = auth.check(environ, body, owner)
            if path in (READY_PATH, MAINTENANCE_PATH) and caller != owner["aws_access_key_id"]:
                raise auth.Refused("denied", auth.RUN_COMMANDS_REFUSED)
            if auth.owner_only(environ) and not auth.may_run_commands(caller, owner):
                raise auth.Refused("denied", auth.RUN_COMMANDS_REFUSED)
        except auth.Refused as refused:
            status, headers, payload = auth.error_response(environ, refused)
            start_response(status, [*headers, ("Content-Length", str(len(payload)))])
            return [payload]
        if path == LATENCY_PATH:
            return _latency(environ, start_response)
        if path == MAINTENANCE_PATH:
            with persistence.LOCK:
                _refuse_if_closing()
                done = _offer_maintenance(body)
            store.changed()
            return _json(start_response, "200 OK", done)
        if path == READY_PATH:
            from awslab.local import instances

            return _json(start_response, "200 OK", {"home": str(instances.ready(_query(environ).get("id", "")))})
        if path == RECONCILE_PATH:   # dead engines brought back (`up` asks before it changes a stack)
            with persistence.LOCK:
                done = backing.reconcile() if backing is not None else {"engines": "off"}
            if backing is not None and done.get("dead"):   # outside the lock: engine work needs none
                done["settled"] = backing.settle(RECONCILE_WAIT_S)
            return _json(start_response, "200 OK", done)
        response = persisted(environ, start_response, body)
        auth.delegate(persistence.operation_of(environ, body), caller, owner, response)
        return response

    def persisted(environ, start_response, body: bytes):
        """moto, one request at a time with the state saver; a change is saved right after."""
        with persistence.LOCK:
            _refuse_if_closing()
            response = list(moto_app(environ, start_response))
        operation = persistence.operation_of(environ, body)
        if persistence.is_change(operation):
            store.changed()
            if backing is not None and operation in PATH_CHANGES:
                backing.paths_changed()
        return response

    server = make_server(args.host, args.port, app, threaded=True, request_handler=_handler_class())
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs (e.g. presigned) from it
    from awslab.local import instances

    instances.configure(state_dir, {"AWS_ENDPOINT_URL": f"http://{args.host}:{port}",
                                    "AWS_SHARED_CREDENTIALS_FILE": str(state_dir / auth.PROFILE_FILE),
                                    "AWS_PROFILE": auth.PROFILE, "AWS_CONFIG_FILE": os.devnull},
                        backing.instance_view if backing is not None else None)

    from awslab.home.state import write_json_atomic

    identity = {"pid": os.getpid(), "host": args.host, "port": port, "token": token, "engines": args.engines}
    os.ftruncate(lock, 0)
    os.pwrite(lock, json.dumps(identity).encode(), 0)
    write_json_atomic(state_dir / "server.json", identity)
    store.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"awslab local AWS listening on http://{args.host}:{port} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        with persistence.LOCK:   # a kept-alive connection's next request is refused from here on, so
            _closing.set()       # the last save below holds every change this server answered
        store.close()            # the last state, saved before the engines stop
        if backing is not None:
            backing.halt_all()   # the engines stop; their data stays for the next server
    # Stopped as asked, all saved: the interpreter's teardown of moto's objects (1.5 s with a few
    # stacks) would only delay `local stop` and every restart.
    logging.shutdown()
    os._exit(0)


DRAINED = "awslab.drained"   # set in a request's environ once its whole body has been read
KEEP_ALIVE_IDLE_S = 60.0     # an idle kept-alive connection is closed after this (AWS's load balancers: 60 s)
_closing = threading.Event()   # set (under persistence.LOCK) once the server has begun to stop


class Closing(Exception):
    """A request that reached the server after it began to stop: not served, its connection closed
    without an answer (the client retries elsewhere, as when the port no longer answers)."""


def _refuse_if_closing() -> None:
    """Called under persistence.LOCK before anything changes moto's state."""
    if _closing.is_set():
        raise Closing()


def _handler_class():
    """moto's request handler, answering with HTTP/1.1 keep-alive. Werkzeug closes every connection
    after one answer (``Connection: close``), as http.server cannot skip a body the app left unread
    before it reads the next request line: each request of each client was a new TCP connection
    and a new server thread. Here the app reads every body whole (``DRAINED``), so the answer goes
    out with its length and the connection stays open for the client's next request, as AWS's
    endpoints keep theirs. A request werkzeug handles better (a chunked body, ``Expect``, ``HEAD``)
    is left to it, and its connection closes as before."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveHandler(MotoRequestHandler):
        timeout = KEEP_ALIVE_IDLE_S   # http.server: the socket's timeout, an idle connection's end

        def setup(self) -> None:
            super().setup()
            # Headers and body are two writes: with Nagle's algorithm on a kept-alive connection
            # the body would wait for the client's delayed ACK (40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            if self.headers.get("Transfer-Encoding") or self.headers.get("Expect") or self.command == "HEAD":
                return super().run_wsgi()
            self.environ = environ = self.make_environ()
            answer: list = []
            written: list[bytes] = []

            def start_response(status, headers, exc_info=None):
                answer[:] = [status, list(headers)]   # nothing is sent before the app returns
                return written.append

            try:
                result = self.server.app(environ, start_response)
                try:
                    body = b"".join([*written, *result])
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Closing:
                self.close_connection = True
                return
            except Exception as exc:  # noqa: BLE001 - werkzeug's own answer: the traceback logged, a 500
                from werkzeug.debug.tbtools import DebugTraceback
                from werkzeug.exceptions import InternalServerError

                self.server.log("error", f"Error on request:\n{DebugTraceback(exc).render_traceback_text()}")
                written.clear()
                body = b"".join(InternalServerError()(environ, start_response))
                self.close_connection = True
            status, headers = answer
            code, _, message = status.partition(" ")
            code = int(code)
            self.send_response(code, message)
            for key, value in headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            if not (code < 200 or code in (204, 304)):
                self.send_header("Content-Length", str(len(body)))
            if not (environ.get(DRAINED) or not int(environ.get("CONTENT_LENGTH") or 0)):
                self.send_header("Connection", "close")   # a body left unread: this connection ends here
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def log_error(self, format: str, *args) -> None:
            if not format.startswith("Request timed out"):   # an idle connection closed: not an error
                super().log_error(format, *args)

    return KeepAliveHandler


def _lock(state_dir: Path) -> int:
    """Hold DIR/server.lock for the life of this process, or exit EXIT_LOCKED: one server per dir."""
    import fcntl

    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace")
        print(f"another local AWS already serves {state_dir}: {holder or '(starting)'}", flush=True)
        sys.exit(EXIT_LOCKED)
    return fd


WARM_REGION = "us-east-1"   # = awslab.engine.context.DEFAULT_LOCAL_REGION (server.py stays import-free)
_WARM_QUERY = {"ec2": "Action=DescribeVpcs&Version=2016-11-15", "iam": "Action=ListRoles&Version=2010-05-08",
               "rds": "Action=DescribeDBInstances&Version=2014-10-31",
               "elasticache": "Action=DescribeReplicationGroups&Version=2015-02-02",
               "sts": "Action=GetCallerIdentity&Version=2011-06-15"}
_WARM_JSON = {"secretsmanager": "secretsmanager.ListSecrets", "ssm": "AmazonSSM.DescribeParameters",
              "tagging": "ResourceGroupsTaggingAPI_20170126.GetResources"}


def _route_from_a_list() -> None:
    """moto routes every request by listing its own package's directory (a listdir, then an isdir per
    entry: a tenth of the server's CPU under the tests' load); the list cannot change while it runs."""
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def _warm(app, region: str = WARM_REGION) -> None:
    """One read per service awslab uses, through the WSGI app before the server is announced: moto
    builds each service's backend and routes on its first request (EC2's catalogues, IAM's managed
    policies), about 1.3 s that the first `up` would otherwise spend in discovery. Best effort."""
    from werkzeug.test import Client

    client = Client(app)

    def auth(svc: str) -> dict:
        return {"Authorization": f"AWS4-HMAC-SHA256 Credential=awslab-local/20240101/{region}/{svc}/aws4_request, "
                                 "SignedHeaders=host, Signature=0"}

    try:
        for svc, body in _WARM_QUERY.items():
            client.post("/", data=body, headers={**auth(svc), "Content-Type": "application/x-www-form-urlencoded"})
        for svc, target in _WARM_JSON.items():
            client.post("/", data="{}", headers={**auth(svc), "Content-Type": "application/x-amz-json-1.1",
                                                 "X-Amz-Target": target})
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation only
        print(f"warm-up skipped: {exc}", flush=True)


def _regions_in_use() -> list[str]:
    """Regions where EC2, RDS or ElastiCache hold state: where an awslab stack can be. Asking every
    region the emulated DescribeRegions lists would make the server build (and save on every
    change from then on) the backends of thirty empty regions."""
    from moto.ec2.models import ec2_backends
    from moto.elasticache.models import elasticache_backends
    from moto.rds.models import rds_backends

    used: set[str] = set()
    for backends in (ec2_backends, rds_backends, elasticache_backends):
        for _, per_region in backends.items():
            used |= {r for r in dict.keys(per_region) if r != "global"}
    return sorted(used)


def _query(environ) -> dict[str, str]:
    from urllib.parse import parse_qs
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response, status: str, data: dict):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _offer_maintenance(body: bytes) -> dict:
    """A pending maintenance action on the named DB instances of the home's account (as RDS offers
    an OS update every few months): {"offered": [ids], "had": [ids], "unknown": [ids]}."""
    from moto.rds.models import rds_backends

    from awslab.local.backing import HOME_ACCOUNT
    from awslab.local.patches import maintenance

    data = json.loads(body or b"{}")
    databases = rds_backends[HOME_ACCOUNT][data.get("region") or "us-east-1"].databases
    out: dict[str, list[str]] = {"offered": [], "had": [], "unknown": []}
    for ident in data.get("instances") or []:
        db = databases.get(ident)
        if db is None:
            out["unknown"].append(ident)
        else:
            fresh = maintenance.offer(db, data.get("action") or "system-update", time_scale=data.get("time_scale"))
            out["offered" if fresh else "had"].append(ident)
    return out


def _latency(environ, start_response):
    """GET: the latency profile in force. POST {"latency": ..., "time_scale": ...}: change it
    for resources made from now on."""
    from awslab.local import latency

    if environ.get("REQUEST_METHOD") == "POST":
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            data = json.loads(environ["wsgi.input"].read(size) or b"{}")
            latency.set_current(latency.parse(str(data.get("latency", "instant")), float(data.get("time_scale", 1.0))))
        except (ValueError, TypeError) as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
    return _json(start_response, "200 OK", latency.current().as_dict())


if __name__ == "__main__":
    main()

