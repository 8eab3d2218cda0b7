"""RDS pending maintenance (moto has none: DescribePendingMaintenanceActions answers an HTML 500).

A DB instance keeps its pending actions as RDS lists them (``system-update``, an operating system
patch, offered by ``offer``: the local AWS's owner asks for one, `awslab maintenance --offer`, as
AWS offers one every few months). ``DescribePendingMaintenanceActions`` lists them (by
``ResourceIdentifier`` or the ``db-instance-id`` filter); ``ApplyPendingMaintenanceAction`` with
``OptInType``:

- ``immediate``: applied now, for real (backing/): a Single-AZ instance's server restarts (its
  downtime); a Multi-AZ instance's standby is patched first, then it fails over, then the old
  primary is patched and comes back as the standby (the downtime is the failover's). The instance
  reads ``maintenance`` meanwhile and the action is gone when it is done;
- ``next-maintenance``: kept for the instance's ``PreferredMaintenanceWindow`` (its next start as
  ``CurrentApplyDate``); ``undo-opt-in``: back to no opt-in.

AWS's refusals: an unknown instance, an action not pending on it, an instance not available, an
unknown opt-in type.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from awslab.local.patches._patch import patch

ACTIONS = {"system-update": "New Operating System update is available"}
OPT_IN = ("immediate", "next-maintenance", "undo-opt-in")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# backing/ appends: called with (backend, db, action, done) when an action is applied now;
# ``done()`` removes it once the work is finished.
on_apply: list[Callable[..., None]] = []


def pending(db) -> list[dict[str, Any]]:
    return db.__dict__.setdefault("_awslab_pending", [])


def offer(db, action: str = "system-update") -> bool:
    """A pending ``action`` on ``db`` (False: it has one already)."""
    if any(p["Action"] == action for p in pending(db)):
        return False
    pending(db).append({"Action": action, "Description": ACTIONS[action], "OptInStatus": "none"})
    return True


def next_window(window: str, now: datetime | None = None) -> datetime:
    """The next start of a ``ddd:hh:mm-ddd:hh:mm`` window (UTC)."""
    now = now or datetime.now(timezone.utc)
    start = window.split("-")[0]
    day, hh, mm = start.split(":")
    days_ahead = (DAYS.index(day.lower()) - now.weekday()) % 7
    at = (now + timedelta(days=days_ahead)).replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
    return at if at > now else at + timedelta(days=7)


def _details(db) -> list[dict[str, Any]]:
    return [dict(p) for p in pending(db)]


RDS_RESPONSE = "moto.rds.responses:RDSResponse"


def _databases(backend):
    return list(dict.values(backend.databases))


@patch(RDS_RESPONSE, gap="rds-pending-maintenance", phase="services", kind="add")
def describe_pending_maintenance_actions(self):
    from moto.core.responses import ActionResult

    arn = self.params.get("ResourceIdentifier")
    wanted: set[str] | None = None
    for f in self.params.get("Filters") or []:
        if f.get("Name") == "db-instance-id":
            wanted = set(f.get("Values") or [])
    out = []
    for db in _databases(self.backend):
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
    entry = next((p for p in pending(db) if p["Action"] == action), None)
    if entry is None:
        raise rds_error("InvalidParameterValue", f"The pending maintenance action {action} is not pending on "
                        f"resource {arn}.")
    if opt_in == "immediate":
        if db.status != "available":
            raise rds_error("InvalidDBInstanceState", f"Instance {db.db_instance_identifier} is not available.")
        entry.update(OptInStatus="immediate", CurrentApplyDate=datetime.now(timezone.utc))
        backend = self.backend

        def done() -> None:
            if entry in pending(db):
                pending(db).remove(entry)

        if on_apply:
            for hook in on_apply:
                hook(backend, db, action, done)
        else:
            done()
    elif opt_in == "next-maintenance":
        entry.update(OptInStatus="next-maintenance",
                     CurrentApplyDate=next_window(db.preferred_maintenance_window or "wed:06:38-wed:07:08"))
    else:
        entry["OptInStatus"] = "none"
        entry.pop("CurrentApplyDate", None)
    return ActionResult({"ResourcePendingMaintenanceActions": {
        "ResourceIdentifier": arn, "PendingMaintenanceActionDetails": _details(db) or [dict(entry)]}})
