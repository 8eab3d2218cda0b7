"""RDS pending maintenance (moto has none: DescribePendingMaintenanceActions answers an HTML 500),
and the weekly maintenance window that applies it.

A DB instance keeps its pending actions as RDS lists them (``system-update``, an operating system
patch, offered by ``offer``: the local AWS's owner asks for one, `awslab maintenance --offer`, as
AWS offers one every few months; an optional update: no ``AutoAppliedAfterDate``, no
``CurrentApplyDate`` until one opts in; ``db-upgrade``, offered while a newer minor of the
instance's major runs here, e.g. 18.6 for an 18.4 instance, applied as ModifyDBInstance applies a
minor upgrade: for real, both Multi-AZ servers at once, the replicas with it). ``DescribePendingMaintenanceActions`` lists them (by
``ResourceIdentifier`` or the ``db-instance-id`` filter); ``ApplyPendingMaintenanceAction`` with
``OptInType``:

- ``immediate``: applied now, for real (backing/): a Single-AZ instance's server restarts, down
  for the OS patch's reboot (``rds.os-update`` on the latency profile); a Multi-AZ instance's
  standby is patched first, then it fails over, then the old primary is patched and comes back as
  the standby (the downtime is the failover's). The instance reads ``maintenance`` meanwhile and
  the action is gone when it is done;
- ``next-maintenance``: ``CurrentApplyDate`` is the next start of the instance's
  ``PreferredMaintenanceWindow``, and when the window arrives the action is applied as
  ``immediate`` applies it. The wait is scaled as a week is on the latency profile
  (``rds.maintenance-window``: instant, at once; realistic, by the time scale); a window changed
  by ModifyDBInstance moves the date;
- ``undo-opt-in``: back to no opt-in.

AWS's refusals: an unknown instance (``ResourceNotFoundFault``), an action not pending on it
(``InvalidParameterCombination``, "There is no pending ... action for ..."), an instance that is not
available (``InvalidDBInstanceState``: a stopped one cannot be opted in), an unknown opt-in type.
CreateDBInstance and ModifyDBInstance validate ``PreferredMaintenanceWindow`` by AWS's rules
(spec/windows.py; moto refused AWS's own example ``Sun:23:45-Mon:00:15``, a window across the week's end).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

from awslab.local import latency
from awslab.local.patches._patch import patch
from awslab.local.side import note, side
from awslab.spec import windows

log = logging.getLogger("awslab.local.maintenance")

ACTIONS = {"system-update": "New Operating System update is available",
           # AWS's wording (RDS User Guide, 'Automatically upgrading the minor engine version': the
           # describe-pending-maintenance-actions example, "Automatic minor version upgrade to <version>").
           "db-upgrade": "Automatic minor version upgrade to {version}"}
OPT_IN = ("immediate", "next-maintenance", "undo-opt-in")

# backing/ appends: called with (backend, db, action, done) when an action is applied (now, or at
# its window); ``done()`` removes it once the work is finished. ``pause_seconds`` says how long
# each step of the patch takes.
on_apply: list[Callable[..., None]] = []


def pending(db) -> list[dict[str, Any]]:
    """``db``'s own pending actions. Kept with the ARN they belong to: moto makes a read replica
    from a copy of its source's attributes, and a replica must not share (or inherit) its source's."""
    box = side(db).pending
    if isinstance(box, list):   # a state saved before the ARN was kept
        box = note(db, pending={"of": db.db_instance_arn, "actions": box}).pending
    if box is None or box.get("of") != db.db_instance_arn:
        box = note(db, pending={"of": db.db_instance_arn, "actions": []}).pending
    return box["actions"]


def offer(db, action: str = "system-update", time_scale: float | None = None) -> bool:
    """A pending ``action`` on ``db`` (False: it has one already). ``time_scale``: its steps take
    AWS's durations at that scale whatever the profile (the maintenance drill on ``instant``)."""
    entry = next((p for p in pending(db) if p["Action"] == action), None)
    fresh = entry is None
    if fresh:
        entry = {"Action": action, "Description": ACTIONS[action], "OptInStatus": "none"}
        pending(db).append(entry)
    if time_scale is not None:
        entry["_time_scale"] = float(time_scale)
    return fresh


def newer_minor(db) -> str | None:
    """The newest minor of ``db``'s major above its own that the local AWS has a server of (18.6
    for an 18.4 instance), which RDS offers as a ``db-upgrade``; None for a read replica (its
    source's upgrade takes it along, as ModifyDBInstance does here), a Multi-AZ DB cluster's member
    (its members run the minor a major starts here: no upgrade in place), another engine, or
    without engines (no server to upgrade to)."""
    from awslab.local.backing import hooks

    if (hooks.current is None or db.engine != "postgres" or getattr(db, "source_db_instance_identifier", None)
            or getattr(db, "db_cluster_identifier", None)):
        return None
    from awslab.local.engines.binaries import postgres_minors
    from awslab.spec.catalog import db_major, version_key

    current = str(db.engine_version)
    newer = [v for v in postgres_minors() if db_major(v) == db_major(current) and version_key(v) > version_key(current)]
    return max(newer, key=version_key) if newer else None


def offer_minor_upgrade(db) -> None:
    """A ``db-upgrade`` pending on ``db`` while a newer minor of its major runs here (kept up to
    date: an instance upgraded another way no longer lists it)."""
    target = newer_minor(db)
    entry = next((p for p in pending(db) if p["Action"] == "db-upgrade"), None)
    if entry is not None and not entry.get("_applying") and entry.get("_version") != target:
        pending(db).remove(entry)
        entry = None
    if entry is None and target is not None:
        pending(db).append({"Action": "db-upgrade", "Description": ACTIONS["db-upgrade"].format(version=target),
                            "OptInStatus": "none", "_version": target})


def pause(db, action: str, transition: str) -> Callable[[], None]:
    """A step of applying ``action`` on ``db``, as an engine's ``pause``: down for ``pause_seconds``."""
    return lambda: time.sleep(pause_seconds(db, action, transition))


def pause_seconds(db, action: str, transition: str) -> float:
    """How long a step of applying ``action`` on ``db`` takes (``transition``: rds.os-update,
    rds.failover): the latency profile's figure, or AWS's at the action's own time scale."""
    entry = next((p for p in pending(db) if p["Action"] == action), {})
    if "_time_scale" in entry:
        return latency.realistic_seconds(transition, entry["_time_scale"])
    return latency.current().seconds(transition)


def next_window(window: str, now: datetime | None = None) -> datetime:
    """The next start of a ``ddd:hh:mm-ddd:hh:mm`` window (UTC; now while it is open)."""
    return windows.next_start(window, now)


def _window_of(db) -> str:
    return db.preferred_maintenance_window or windows.DEFAULT_WINDOW


def _schedule(db, entry: dict) -> None:
    """Opted in for the next window: its start as RDS shows it, and when it arrives here (the wait
    on the local AWS's timeline, scaled as a week is)."""
    now = datetime.now(timezone.utc)
    at = next_window(_window_of(db), now)
    entry.update(OptInStatus="next-maintenance", CurrentApplyDate=at, _window=_window_of(db),
                 _due=latency.now() + latency.current().week_scale() * (at - now).total_seconds())


def _details(db) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in pending(db)]


def _start(backend, db, entry: dict) -> None:
    """Apply ``entry`` now, for real (immediate, or its window arrived): the same path either way."""
    entry["_applying"] = True

    def done() -> None:
        if entry in pending(db):
            pending(db).remove(entry)

    if entry["Action"] == "db-upgrade":
        # The minor upgrade ModifyDBInstance EngineVersion makes (patches/rds_versions.py: the
        # pre-upgrade snapshot, the replicas with it; backing/rds_upgrade.py: the servers restarted
        # on the new minor), the instance `upgrading` until its engines serve again.
        try:
            backend.modify_db_instance(db.db_instance_identifier, {"engine_version": entry["_version"]})
        finally:
            done()
        return
    if on_apply:
        for hook in on_apply:
            hook(backend, db, entry["Action"], done)
    else:
        done()


def apply_due() -> list[str]:
    """Apply every next-maintenance action whose window has arrived (the periodic work calls it,
    and a DescribePendingMaintenanceActions on a server without engines): the instances started."""
    from moto.rds.models import rds_backends

    from awslab.local import persistence

    started = []
    with persistence.LOCK:
        for _, _, backend in rds_backends.iter_backends():
            for db in list(dict.values(backend.databases)):
                for entry in list(pending(db)):
                    if entry.get("OptInStatus") != "next-maintenance" or entry.get("_applying"):
                        continue
                    if entry.get("_window") != _window_of(db):   # ModifyDBInstance moved the window
                        _schedule(db, entry)
                    if latency.now() < entry.get("_due", 0.0) or db.status != "available":
                        continue
                    log.info("maintenance window %s of %s: applying %s", _window_of(db), db.db_instance_identifier,
                             entry["Action"])
                    _start(backend, db, entry)
                    started.append(db.db_instance_identifier)
    if started:
        persistence.changed_in_background()
    return started


RDS_RESPONSE = "moto.rds.responses:RDSResponse"


def _databases(backend):
    return list(dict.values(backend.databases))


@patch(RDS_RESPONSE, gap="rds-pending-maintenance", phase="services", kind="add")
def describe_pending_maintenance_actions(self):
    from moto.core.responses import ActionResult

    from awslab.local.backing import hooks

    if hooks.current is None:   # no periodic work without engines: a window that arrived applies when asked
        apply_due()
    arn = self.params.get("ResourceIdentifier")
    wanted: set[str] | None = None
    for f in self.params.get("Filters") or []:
        if f.get("Name") == "db-instance-id":
            wanted = set(f.get("Values") or [])
    out = []
    for db in _databases(self.backend):
        offer_minor_upgrade(db)
        if not pending(db) or (arn and db.db_instance_arn != arn):
            continue
        if wanted is not None and db.db_instance_identifier not in wanted and db.db_instance_arn not in wanted:
            continue
        out.append({"ResourceIdentifier": db.db_instance_arn, "PendingMaintenanceActionDetails": _details(db)})
    return ActionResult({"PendingMaintenanceActions": out})


@patch(RDS_RESPONSE, gap="rds-pending-maintenance", phase="services", kind="add")
def apply_pending_maintenance_action(self):
    from moto.core.responses import ActionResult
    from moto.rds.exceptions import RDSClientError as rds_error

    arn, action, opt_in = (self.params.get(k) for k in ("ResourceIdentifier", "ApplyAction", "OptInType"))
    db = next((d for d in _databases(self.backend) if d.db_instance_arn == arn), None)
    if db is None:
        raise rds_error("ResourceNotFoundFault", f"The specified resource {arn} was not found.")
    if opt_in not in OPT_IN:
        raise rds_error("InvalidParameterValue", f"Invalid value for OptInType: {opt_in}. Valid values: "
                        + ", ".join(OPT_IN))
    offer_minor_upgrade(db)
    entry = next((p for p in pending(db) if p["Action"] == action), None)
    if entry is None:
        raise rds_error("InvalidParameterCombination", f"There is no pending {action} action for {arn}")
    if opt_in in ("immediate", "next-maintenance") and (db.status != "available" or entry.get("_applying")):
        # A stopped instance cannot be patched now nor opted in for its window (start it first).
        raise rds_error("InvalidDBInstanceState", f"Instance {db.db_instance_identifier} is not in available state.")
    if opt_in == "immediate":
        entry.update(OptInStatus="immediate", CurrentApplyDate=datetime.now(timezone.utc))
        _start(self.backend, db, entry)
    elif opt_in == "next-maintenance":
        _schedule(db, entry)
    else:
        entry["OptInStatus"] = "none"
        for k in ("CurrentApplyDate", "_due", "_window"):
            entry.pop(k, None)
    shown = _details(db) or [{k: v for k, v in entry.items() if not k.startswith("_")}]
    return ActionResult({"ResourcePendingMaintenanceActions": {"ResourceIdentifier": arn,
                                                              "PendingMaintenanceActionDetails": shown}})


@patch("moto.rds.models", gap="rds-maintenance-window-rules", phase="rejects", kind="replace")
def valid_preferred_maintenance_window(maintenance_window, backup_window):
    """AWS's rules for a PreferredMaintenanceWindow (spec/windows.py), for CreateDBInstance and
    ModifyDBInstance alike (moto's refused a window across the week's end, AWS's own example)."""
    return windows.error(maintenance_window, backup_window)
