"""`awslab maintenance [--offer] [--apply]`: the stack's pending RDS maintenance, and applying it.

Lists what ``DescribePendingMaintenanceActions`` says for the stack's DB instances. ``--apply``
applies each now (``ApplyPendingMaintenanceAction``, ``OptInType=immediate``) and measures, for
each instance, how long new connections through the stack's host failed (what the patch cost its
clients): a Single-AZ instance's restart, a Multi-AZ instance's failover (its standby is patched
first, the old primary last). ``--offer`` (local AWS) makes the local AWS offer an OS update on
each instance, as RDS does every few months, so there is something to practise on.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from awslab import ui
from awslab.commands._common import confirm_real_account, new_run, took
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import OperationError, UsageError
from awslab.verify import live
from awslab.verify.dialects import DIALECTS, dialect_of

OFFER_PATH = "/awslab/maintenance/offer"   # also in local/server.py
APPLY_TIMEOUT_S = 600.0
PROBE_EVERY_S = 0.05


def _instances(found: dict) -> dict[str, dict]:
    """The stack's DB instances (id -> describe record)."""
    return {f.id: (f.get("raw") or {}) for f in found.values() if f.kind in ("db-instance", "db-replica")}


def pending(run: Run, instances: dict[str, dict]) -> list[dict]:
    if not instances:
        return []
    arns = {raw.get("DBInstanceArn"): ident for ident, raw in instances.items() if raw.get("DBInstanceArn")}
    got = run.client("rds").describe_pending_maintenance_actions(
        Filters=[{"Name": "db-instance-id", "Values": sorted(arns)}])["PendingMaintenanceActions"]
    return [{"instance": arns.get(p["ResourceIdentifier"], p["ResourceIdentifier"]), "arn": p["ResourceIdentifier"],
             "multi_az": bool(instances.get(arns.get(p["ResourceIdentifier"], ""), {}).get("MultiAZ")), **d}
            for p in got for d in p["PendingMaintenanceActionDetails"]]


def maintenance(ctx, stack: str, *, offer: bool, apply_now: bool, output: str) -> int:
    run = new_run(ctx, stack)
    found = discover(run)
    instances = _instances(found)
    if not instances:
        raise UsageError(f"stack {stack} has no DB instance", "run `awslab up` first")
    if offer:
        if not ctx.is_local:
            raise UsageError("--offer is the local AWS's: on AWS, RDS offers maintenance itself",
                             "list what AWS offers with `awslab maintenance`")
        offer_update(run, sorted(instances))
    actions = pending(run, instances)
    applied = []
    if apply_now:
        if not actions:
            raise UsageError(f"no pending maintenance on stack {stack}'s DB instances",
                             "on the local AWS: awslab maintenance --offer" if ctx.is_local else None)
        confirm_real_account(ctx, f"apply {len(actions)} maintenance actions",
                             [f"will apply now: {a['Action']} on {a['instance']} ({WHAT.get(a['Action'], WHAT['system-update'])})"
                              for a in actions])
        for action in actions:
            applied.append(_apply(run, action, instances[action["instance"]], found))
    if output == "json":
        ui.emit_json({"stack": stack, "pending": [] if applied else _jsonable(actions), "applied": applied})
        return 0
    if not applied:
        rows = [[a["instance"], a["Action"], a.get("OptInStatus", "none"), a.get("Description", "")] for a in actions]
        ui.emit(ui.table(["INSTANCE", "ACTION", "OPT-IN", "DESCRIPTION"], rows) if rows
                else f"no pending maintenance on stack {stack}'s DB instances")
        if rows:
            ui.emit("\napply it now with `awslab maintenance --apply` ("
                    + "; ".join(f"{name}: {WHAT[name]}" for name in WHAT if any(a["Action"] == name for a in actions)) + ")")
        return 0
    for a in applied:
        cost = (f"new connections failed for {a['downtime_s']:.2f} s ({a['failed_probes']} of {a['probes']} probes)"
                if a["measured"] else "its downtime not measured (on AWS awslab cannot reach the instance; the local "
                                      "AWS probes it through the host)")
        ui.emit(f"{a['instance']}: {a['action']} applied in {a['took']} ({'Multi-AZ' if a['multi_az'] else 'Single-AZ'}); "
                f"{cost}; AWS: {AWS_DOWNTIME['db-upgrade' if a['action'] == 'db-upgrade' else 'multi_az' if a['multi_az'] else 'single_az']}")
    return 0


# What applying each action does, in the words the confirmation and the listing use.
WHAT = {"system-update": "Multi-AZ: the standby is patched first, then a failover; Single-AZ: the server restarts",
        "db-upgrade": "a minor engine upgrade: the engine restarts, both Multi-AZ servers at once, the read "
                      "replicas with it"}
AWS_DOWNTIME = {
    "db-upgrade": "the engine restarts on the new minor; a Multi-AZ instance's primary and standby are upgraded at "
                  "the same time, no failover hides it (RDS User Guide, 'Upgrading a DB instance engine version')",
    "multi_az": "the failover, typically 60-120 s (RDS User Guide, 'Maintaining a DB instance': Multi-AZ "
                "patches the standby, fails over, then patches the old primary)",
    "single_az": "the instance is offline while the OS is patched, typically several minutes (RDS User Guide, "
                 "'Maintaining a DB instance')",
}


def _jsonable(actions: list[dict]) -> list[dict]:
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in a.items()} for a in actions]


def offer_update(run: Run, instances: list[str], time_scale: float | None = None) -> dict:
    """The local AWS offers an OS update on ``instances``; ``time_scale``: its steps then take AWS's
    durations at that scale whatever the latency profile (the maintenance drill on ``instant``)."""
    from awslab.local import manager

    body = {"region": run.ctx.region, "instances": instances, "action": "system-update"}
    if time_scale is not None:
        body["time_scale"] = time_scale
    req = manager.signed_request(f"{run.ctx.endpoint_url}{OFFER_PATH}", "POST", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise OperationError(f"the local AWS did not take the offer: {exc}") from None


def _apply(run: Run, action: dict, raw: dict, found: dict) -> dict:
    """Apply one action now; probe the instance's endpoint through the host meanwhile."""
    # The probe speaks PostgreSQL and MySQL: another engine's patch is applied, its downtime not measured.
    probe = _Probe(run, raw, found) if run.ctx.is_local and (raw.get("Engine") or "postgres") in DIALECTS else None
    started = time.monotonic()
    if probe is not None:
        probe.start()
    rds = run.client("rds")
    rds.apply_pending_maintenance_action(ResourceIdentifier=action["arn"], ApplyAction=action["Action"],
                                         OptInType="immediate")
    wait_applied(run, action["arn"], action["instance"], action["Action"], started + APPLY_TIMEOUT_S)
    elapsed = time.monotonic() - started
    downtime, failed, probes = probe.stop() if probe is not None else (0.0, 0, 0)
    return {"instance": action["instance"], "action": action["Action"], "multi_az": action["multi_az"],
            "seconds": round(elapsed, 2), "took": took(run.ctx, elapsed), "downtime_s": round(downtime, 3),
            "failed_probes": failed, "probes": probes, "measured": probe is not None}


def wait_applied(run: Run, arn: str, ident: str, what: str, deadline: float) -> None:
    """Until ``what`` is no longer pending on the instance and it is available again (monotonic ``deadline``)."""
    rds = run.client("rds")
    while True:
        left = [d for p in rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)["PendingMaintenanceActions"]
                for d in p["PendingMaintenanceActionDetails"] if d["Action"] == what]
        status = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"]
        if not left and status == "available":
            return
        if time.monotonic() > deadline:
            raise OperationError(f"timed out after {APPLY_TIMEOUT_S:.0f} s waiting for {ident}'s {what} (status {status})")
        time.sleep(0.2)


class _Probe:
    """New connections (and SELECT 1) to an instance through the stack's host, every 50 ms: the
    longest run of failures is what its clients saw of the maintenance."""

    def __init__(self, run: Run, raw: dict, found: dict) -> None:
        mapping = live.endpoint_map(run, live.host_of(found))
        # A read replica logs in as its source's master user (it has no secret of its own).
        source = raw.get("ReadReplicaSourceDBInstanceIdentifier")
        owner = next(((f.get("raw") or {}) for f in found.values() if source and f.id == source), raw)
        self.addr = live.resolve(mapping, raw["Endpoint"]["Address"], raw["Endpoint"]["Port"])
        self.dialect = dialect_of(owner, "awslab maintenance")
        self.user, self.password = live.db_credentials(run, owner)
        self.database = owner.get("DBName") or raw.get("DBName") or self.dialect.default_database
        self.halt = threading.Event()
        self.failed = self.total = 0
        self.worst = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        since = None
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                conn = self.dialect.connect(self.addr, self.user, self.password, self.database)
                conn.run("SELECT 1")
                conn.close()
                if since is not None:
                    self.worst = max(self.worst, t0 - since)
                since = None
            except Exception:  # noqa: BLE001 - a failed probe is the measurement
                self.failed += 1
                since = since if since is not None else t0
            self.total += 1
            self.halt.wait(PROBE_EVERY_S)
        if since is not None:
            self.worst = max(self.worst, time.monotonic() - since)

    def stop(self) -> tuple[float, int, int]:
        time.sleep(0.3)   # a last look once it is back
        self.halt.set()
        self.thread.join(10)
        return self.worst, self.failed, self.total
