"""The local AWS process: ``python -m awslab.local.server --state-dir DIR [--port N]``.

Binds 127.0.0.1 (port 0 = any free port), applies awslab's patches over moto, then writes
``server.json`` (pid, port, token) atomically so the starter knows it is ready. ``GET
/awslab/health`` answers with the same pid and token, so a later command can tell this server from
any other process that happens to hold the port.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
from pathlib import Path

HEALTH_PATH = "/awslab/health"
LATENCY_PATH = "/awslab/latency"
ENDPOINTS_PATH = "/awslab/endpoints"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="awslab.local.server")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", default=os.environ.get("AWSLAB_LOCAL_LATENCY", "instant"))
    parser.add_argument("--time-scale", type=float, default=float(os.environ.get("AWSLAB_LOCAL_TIME_SCALE", "1")))
    parser.add_argument("--engines", choices=("on", "off"), default=os.environ.get("AWSLAB_LOCAL_ENGINES", "on"),
                        help="real PostgreSQL/Redis behind RDS and ElastiCache (default on)")
    args = parser.parse_args(argv)

    from awslab.engine import sdkdata

    sdkdata.share_across_sessions()   # before moto is imported: it builds sessions at import time
    from awslab.local import latency, patches

    latency.set_current(latency.parse(args.latency, args.time_scale))
    patches.apply()
    backing = None
    if args.engines == "on":
        import logging

        from awslab.local import backing

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        backing.enable(Path(args.state_dir))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    token = secrets.token_hex(8)
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        path = environ.get("PATH_INFO")
        if path == HEALTH_PATH:
            return _json(start_response, "200 OK", {"pid": os.getpid(), "token": token, "latency": latency.current().as_dict()})
        if path == LATENCY_PATH:
            return _latency(environ, start_response)
        if path == ENDPOINTS_PATH:
            endpoints = backing.read_endpoints(Path(args.state_dir)) if backing is not None else {}
            return _json(start_response, "200 OK", {"engines": args.engines, "endpoints": endpoints})
        return moto_app(environ, start_response)

    _warm(moto_app)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs (e.g. presigned) from it

    from awslab.engine.state import write_json_atomic

    write_json_atomic(Path(args.state_dir) / "server.json",
                      {"pid": os.getpid(), "host": args.host, "port": port, "token": token, "engines": args.engines})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"awslab local AWS listening on http://{args.host}:{port} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        if backing is not None:
            backing.stop_all()   # the engines go with the server, their data with them


WARM_REGION = "us-east-1"   # = awslab.engine.context.DEFAULT_LOCAL_REGION (server.py stays import-free)
_WARM_QUERY = {"ec2": "Action=DescribeVpcs&Version=2016-11-15", "iam": "Action=ListRoles&Version=2010-05-08",
               "rds": "Action=DescribeDBInstances&Version=2014-10-31",
               "elasticache": "Action=DescribeReplicationGroups&Version=2015-02-02",
               "sts": "Action=GetCallerIdentity&Version=2011-06-15"}
_WARM_JSON = {"secretsmanager": "secretsmanager.ListSecrets", "ssm": "AmazonSSM.DescribeParameters",
              "tagging": "ResourceGroupsTaggingAPI_20170126.GetResources"}


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


def _json(start_response, status: str, data: dict):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


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
