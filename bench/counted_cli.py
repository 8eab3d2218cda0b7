"""The real awslab CLI, counting the AWS requests it sends: ``python bench/counted_cli.py up week6``.

Runs ``awslab.cli.main`` exactly as the ``awslab`` console script does, with three hooks:

- every API call (``BaseClient._make_api_call``) is recorded as service, operation and, when it
  was made by the probe of a wait (``awslab.engine.run.poll_until``), the probe's number in that wait:
  1 is the wait's first look, 2+ are polls (the describe repeated because it was not ready yet),
  and when it was sent (``time.time()``);
- every HTTP request sent (``botocore.endpoint.Endpoint._send``) is counted, so botocore's own
  retries show up as the difference;
- at exit the records go, as JSON, to the file named by ``BENCH_CALLS_FILE``.

Used by ``bench/lifecycle.py``; nothing in awslab is changed.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

_local = threading.local()
_lock = threading.Lock()
calls: list[tuple[str, str, int, float]] = []   # (service, operation, probe number in its wait or 0, time.time())
http_sent = [0]


def install() -> None:
    from botocore.client import BaseClient
    from botocore.endpoint import Endpoint

    import awslab.engine.run

    original_call = BaseClient._make_api_call

    def make_api_call(self, operation_name, api_params):
        with _lock:
            calls.append((self.meta.service_model.service_name, operation_name, getattr(_local, "probe", 0), time.time()))
        return original_call(self, operation_name, api_params)

    BaseClient._make_api_call = make_api_call

    original_send = Endpoint._send

    def send(self, request):
        with _lock:
            http_sent[0] += 1
        return original_send(self, request)

    Endpoint._send = send

    original_poll = awslab.engine.run.poll_until

    def poll_until(what, probe, done, **kwargs):
        n = [0]

        def counted_probe():
            n[0] += 1
            outer = getattr(_local, "probe", 0)
            _local.probe = n[0]
            try:
                return probe()
            finally:
                _local.probe = outer

        return original_poll(what, counted_probe, done, **kwargs)

    awslab.engine.run.poll_until = poll_until


def _dump() -> None:
    path = os.environ.get("BENCH_CALLS_FILE")
    if path:
        with _lock, open(path, "w", encoding="utf-8") as fh:
            json.dump({"calls": calls, "http_sent": http_sent[0]}, fh)


if __name__ == "__main__":
    install()
    atexit.register(_dump)
    from awslab.cli import main

    sys.argv[0] = "awslab"
    sys.exit(main(sys.argv[1:]))
