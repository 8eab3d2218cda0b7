"""pytest plugin for the conformance run (.ci/conformance): moto's own tests, with or without
awslab's layer, each test's outcome written to a JSON report.

Loaded by name (``-p conformance_plugin``, this directory on PYTHONPATH), never collected by
awslab's own suite, and not under awslab's ``tests`` package name: moto's tests are a package
called ``tests`` too.

Environment:

- ``AWSLAB_CONFORMANCE_LAYER=on``: before anything imports moto, do what the local server
  (``awslab/local/server.py: main``) does before it serves that changes behaviour: botocore's data
  shared across sessions, ``awslab.local.patches.apply()``, and the latency profile the server
  uses by default (``instant``, time scale 1). The server's engines (``local/backing/``) are left off,
  as ``--engines off`` runs them: they put real PostgreSQL/Redis behind the resources, not moto
  behaviour; its auth, persistence and warm-up do not change what moto answers.
- ``AWSLAB_CONFORMANCE_CLASSES=old=new,...``: DB instance classes and cache node types AWS has
  retired, replaced by current ones in every request a boto3 client sends (and put back in every
  answer, so the test sees what it asked for). Used only for the rerun of tests the layer failed.
- ``AWSLAB_CONFORMANCE_REPORT=PATH``: where to write ``{nodeid: {"outcome", "seconds", "message"}}``.
"""

from __future__ import annotations

import json
import os
import time

import pytest

LAYER = os.environ.get("AWSLAB_CONFORMANCE_LAYER") == "on"
CLASS_KEYS = ("DBInstanceClass", "CacheNodeType")


def _apply_layer() -> None:
    # The server's order: sdkdata before moto is imported, then the patches, then the profile.
    from awslab.home import sdkdata

    sdkdata.share_across_sessions()
    from awslab.local import latency, patches

    patches.apply()
    latency.set_current(latency.parse("instant", 1.0))


def _substitute_classes(spec: str) -> None:
    from botocore.client import BaseClient

    forward = dict(pair.split("=", 1) for pair in spec.split(",") if "=" in pair)
    back = {new: old for old, new in forward.items()}

    def swap(value, table):
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in CLASS_KEYS and isinstance(v, str):
                    if table is forward and v in forward:
                        _substituted.add(v)
                    out[k] = table.get(v, v)
                elif k == "ParameterValue" and value.get("ParameterKey") in CLASS_KEYS and isinstance(v, str):
                    if table is forward and v in forward:   # a CloudFormation stack's parameter
                        _substituted.add(v)
                    out[k] = table.get(v, v)
                elif k == "TemplateBody" and isinstance(v, str) and table is forward:
                    # CloudFormation templates name the class inside a JSON string.
                    for old, new in forward.items():
                        if f'"{old}"' in v:
                            _substituted.add(old)
                            v = v.replace(f'"{old}"', f'"{new}"')
                    out[k] = v
                else:
                    out[k] = swap(v, table)
            return out
        if isinstance(value, list):
            return [swap(v, table) for v in value]
        return value

    original = BaseClient._make_api_call

    def _make_api_call(self, operation_name, api_params):
        return swap(original(self, operation_name, swap(api_params, forward)), back)

    BaseClient._make_api_call = _make_api_call


_results: dict[str, dict] = {}
_substituted: set[str] = set()   # the retired classes the running test asked for
_started = time.monotonic()


if LAYER:
    _apply_layer()
if os.environ.get("AWSLAB_CONFORMANCE_CLASSES"):
    _substitute_classes(os.environ["AWSLAB_CONFORMANCE_CLASSES"])


def pytest_runtest_setup(item) -> None:
    _substituted.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The classes a test needed substituted ride on its teardown report (under xdist the report,
    not this process's memory, reaches the process that writes the results)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown" and _substituted:
        report.user_properties.append(("substituted", sorted(_substituted)))


def pytest_runtest_logreport(report) -> None:
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "message": ""})
    entry["seconds"] += report.duration
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["message"] = _last_line(report)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    for key, value in report.user_properties:
        if key == "substituted":
            entry["substituted"] = value


def _last_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def pytest_sessionfinish(session, exitstatus) -> None:
    path = os.environ.get("AWSLAB_CONFORMANCE_REPORT")
    if path and not os.environ.get("PYTEST_XDIST_WORKER"):   # the controller writes what its workers reported
        data = {"layer": LAYER, "seconds": time.monotonic() - _started, "tests": _results}
        with open(path, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
