"""Every stack at a glance, their owners and expiry (the sweeper for forgotten ones: sweep.py).

A stack's record lives in AWS, on its VPC (``spec/tags.py``: the lab's overrides, owner, creation
and expiry time, class), so any machine can list, verify or remove a stack; the local state
file is a cache of it. ``stacks`` reads the tagging index (one paged call per region) for every
resource and snapshot tagged ``awslab:stack``, then discovers each stack at the same time to say
what state it is in and what it costs now, priced from what exists.
"""

from __future__ import annotations

import getpass
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from awslab import ui
from awslab.aws import network
from awslab.aws._common import awslab_tagged
from awslab.commands._common import new_run, snapshot_cost
from awslab.home import state
from awslab.engine.context import Context
from awslab.errors import UsageError
from awslab.spec import pricing
from awslab.spec.tags import (
    TAG_CLASS,
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_LAB,
    TAG_LAB_FILE,
    TAG_OVERRIDES,
    TAG_OWNER,
    TAG_STACK,
    TAG_VALUE_MAX,
    decode_overrides,
    encode_overrides,
)

DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
NEVER = "none"
REGION_WORKERS = 8


# --- expiry and the record `up` writes ----------------------------------------------------------

def parse_duration(text: str, option: str) -> timedelta:
    """``4h``, ``90m``, ``1d12h``, ``30s``: a positive duration."""
    m = DURATION_RE.match(text.strip().lower()) if text else None
    if not m or not any(m.groups()):
        raise UsageError(f"{option} '{text}' is not a duration", "e.g. 4h, 90m, 2d or 1h30m")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    value = timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if value <= timedelta(0):
        raise UsageError(f"{option} '{text}' is no time at all", "e.g. 4h")
    return value


def parse_instant(text: str, option: str) -> datetime:
    """An RFC 3339 time (a zone is required: an expiry must not depend on the machine's clock zone)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError(f"{option} '{text}' is not an RFC 3339 time with a zone", "e.g. 2026-12-03T18:00:00Z")
    return when.astimezone(timezone.utc)


def format_instant(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_from(ttl: str | None, expires_at: str | None, now: datetime | None = None) -> str | None:
    """The ``awslab:expires`` value an `up` asks for: a time, "" (remove it: ``none``), or None (leave it)."""
    now = now or datetime.now(timezone.utc)
    if ttl and expires_at:
        raise UsageError("--ttl and --expires-at both given", "give one: --ttl 4h, or --expires-at 2026-12-03T18:00:00Z")
    if ttl is None and expires_at is None:
        return None
    if (ttl or expires_at).strip().lower() == NEVER:
        return ""
    when = now + parse_duration(ttl, "--ttl") if ttl else parse_instant(expires_at, "--expires-at")
    if when <= now:
        raise UsageError(f"--expires-at {expires_at} is in the past", "give a later time, or --ttl 4h")
    return format_instant(when)


def check_owner(owner: str | None) -> None:
    if owner is not None and not (0 < len(owner) <= TAG_VALUE_MAX and owner.isprintable()):
        raise UsageError(f"--owner '{owner[:40]}' is not a usable owner", f"1-{TAG_VALUE_MAX} printable characters, "
                         "e.g. an email address")


def up_record(ctx: Context, *, overrides: list[str], lab_file: str | None, owner: str | None,
              expires: str | None, class_name: str | None, creating: bool) -> dict[str, str]:
    """The stack-record tags `up` sets on the VPC ("" removes one; a key left out stays as it is)."""
    record = {TAG_OVERRIDES: encode_overrides(overrides), TAG_LAB_FILE: lab_file or ""}
    if owner:
        record[TAG_OWNER] = owner
    elif creating:
        record[TAG_OWNER] = caller_identity(ctx)
    if expires is not None:
        record[TAG_EXPIRES] = expires
    if class_name:
        record[TAG_CLASS] = class_name
    too_long = [k for k, v in record.items() if len(v) > TAG_VALUE_MAX]
    if too_long:
        raise UsageError(f"the stack's record does not fit AWS's tags ({', '.join(too_long)} over {TAG_VALUE_MAX} "
                         "characters)", "fewer or shorter --set overrides, or a shorter lab file path")
    return record


def caller_identity(ctx: Context) -> str:
    """Who is making the stack: the AWS identity (on AWS), the machine's user (on the local AWS,
    whose identity is the same fake one for everybody)."""
    if ctx.is_local:
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
    try:
        return ctx.client("sts").get_caller_identity()["Arn"]
    except Exception:  # noqa: BLE001 - an owner we cannot learn is no reason to stop
        return "unknown"


def time_left(expires: str | None, now: datetime | None = None) -> str:
    """'3h12m left', 'expired 5m ago', or '' without an expiry."""
    if not expires:
        return ""
    try:
        when = parse_instant(expires, "expires")
    except UsageError:
        return f"expiry unreadable ({expires})"
    delta = when - (now or datetime.now(timezone.utc))
    span = _span(abs(delta))
    return f"{span} left" if delta.total_seconds() > 0 else f"expired {span} ago"


def _span(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def expired(record: dict[str, str], now: datetime | None = None) -> bool:
    value = record.get(TAG_EXPIRES)
    if not value:
        return False
    try:
        return parse_instant(value, "expires") <= (now or datetime.now(timezone.utc))
    except UsageError:
        return False


# --- a stack's lab from its tags -----------------------------------------------------------------

def lab_record_from_tags(ctx: Context, stack: str) -> dict | None:
    """How ``stack`` was built, read from its VPC's tags (None: no such stack in the region, or no
    record on it); kept in the local state as the cache it is."""

    tags = network.stack_records(new_run(ctx, stack), stack).get(stack)
    if tags is None or not ({TAG_CREATED, TAG_OVERRIDES} & set(tags)):
        return None   # no such stack, or made before stacks kept a record
    record = {"lab": tags.get(TAG_LAB), "lab_file": tags.get(TAG_LAB_FILE) or None,
              "overrides": decode_overrides(tags.get(TAG_OVERRIDES))}
    state.save_stack_record(stack, {**(state.load_stack_record(stack) or {}), **record})
    return record


# --- every stack in a region ---------------------------------------------------------------------

@dataclass
class StackRow:
    stack: str
    region: str
    lab: str = ""
    owner: str = ""
    created: str = ""
    expires: str = ""
    klass: str = ""
    resources: int = 0
    state: str = ""
    hourly: float = 0.0              # what is priced of it, in its own region
    cost_complete: bool = True       # every resource priced (else ``not_priced`` names what is not)
    not_priced: list[str] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)

    @property
    def snapshots_monthly(self) -> float:
        return sum(s["monthly_usd"] or 0.0 for s in self.snapshots)

    @property
    def hourly_text(self) -> str:
        """Its cost per hour as a table cell: the amount, marked when part of it is not priced."""
        if self.cost_complete:
            return pricing.format_money(self.hourly)
        return f"{pricing.format_money(self.hourly)} + not priced" if self.hourly else "not priced"

    def as_json(self) -> dict:
        return {"stack": self.stack, "region": self.region, "lab": self.lab or None, "owner": self.owner or None,
                "created": self.created or None, "expires": self.expires or None,
                "time_left": time_left(self.expires) or None, "class": self.klass or None,
                "resources": self.resources, "state": self.state, "estimated_hourly_usd": round(self.hourly, 4),
                "cost_complete": self.cost_complete, "not_priced": self.not_priced,
                "snapshots": self.snapshots, "snapshots_monthly_usd": round(self.snapshots_monthly, 4)}


def regions_of(ctx: Context, all_regions: bool) -> list[str]:
    if not all_regions:
        return [ctx.region]
    import boto3

    # The account's regions in its own partition (an emulator may list every partition's).
    partition = boto3.session.Session().get_partition_for_region(ctx.region)

    regions = network.regions(new_run(ctx, "awslab"))
    names = sorted(r["RegionName"] for r in regions if r.get("OptInStatus") != "not-opted-in"
                   and boto3.session.Session().get_partition_for_region(r["RegionName"]) == partition)
    in_use = _local_regions(ctx)
    return names if in_use is None else [r for r in names if r in in_use or r == ctx.region]


def _local_regions(ctx: Context) -> set[str] | None:
    """On awslab's local AWS: the regions that hold anything (None elsewhere). An empty region
    there is made when first asked about, and stays in the saved state."""
    import urllib.error
    import urllib.request

    from awslab.local.server import REGIONS_PATH

    url = ctx.endpoint_url or ""
    if not url.startswith("http://127.0.0.1"):
        return None
    try:
        with urllib.request.urlopen(url + REGIONS_PATH, timeout=5) as resp:
            return set(json.loads(resp.read())["regions"])
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def list_stacks(ctx: Context, regions: list[str]) -> tuple[list[StackRow], list[dict]]:
    """(every stack, snapshots of stacks that no longer exist) in ``regions``."""
    rows: list[StackRow] = []
    orphans: list[dict] = []
    # Regions are asked at the same time: most hold nothing, and each costs a round trip or two.
    with ThreadPoolExecutor(max_workers=max(1, min(REGION_WORKERS, len(regions)))) as pool:
        for r, o in pool.map(lambda region: _region_stacks(in_region(ctx, region)), regions):
            rows += r
            orphans += o
    # A live stack's copy in another region is found twice: by the stack (it looks where it copied
    # to) and in that region, where no such stack lives. It is the stack's, listed and counted once.
    listed = {_snapshot_key(s) for row in rows for s in row.snapshots}
    orphans = [s for s in orphans if _snapshot_key(s) not in listed]
    return sorted(rows, key=lambda r: (r.region, r.stack)), orphans


def _snapshot_key(snap: dict) -> tuple:
    return snap["stack"], snap["service"], snap["region"], snap["id"]


def in_region(ctx: Context, region: str) -> Context:
    return ctx if region == ctx.region else ctx.for_region(region)


def _region_stacks(ctx: Context) -> tuple[list[StackRow], list[dict]]:

    tags_by_arn = awslab_tagged(new_run(ctx, "awslab"))
    arns_by_stack: dict[str, list[str]] = {}
    for arn, tags in tags_by_arn.items():
        arns_by_stack.setdefault(tags.get(TAG_STACK, ""), []).append(arn)
    records = network.stack_records(new_run(ctx, "awslab"))
    names = sorted((set(arns_by_stack) | set(records)) - {""})
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        rows = list(pool.map(lambda name: _stack_row(ctx, name, records.get(name) or {},
                                                     arns_by_stack.get(name, []), tags_by_arn), names))
    live = [r for r in rows if r.resources]
    orphans = [s for r in rows if not r.resources for s in r.snapshots]
    return live, orphans


def _only_snapshots_left(record: dict[str, str], arns: list[str]) -> bool:
    """A stack `down` removed: no record (its VPC, the first thing `up` makes and the last `down`
    removes) and nothing tagged with its name but snapshots (the final ones, copies, manual ones).
    A class leaves one per student, and discovering each (some twenty requests) made `stacks`
    slow exactly where an instructor runs it; its snapshots are still found and listed."""
    return not record and bool(arns) and all(_is_snapshot(arn) for arn in arns)


def _is_snapshot(arn: str) -> bool:
    parts = arn.split(":")
    return len(parts) > 6 and parts[2] in ("rds", "elasticache") and parts[5] in ("snapshot", "cluster-snapshot")


def _stack_row(ctx: Context, name: str, record: dict[str, str], arns: list[str],
               tags_by_arn: dict[str, dict[str, str]]) -> StackRow:
    from awslab.commands.recovery import find_snapshots
    from awslab.engine.discovery import discover

    run = new_run(ctx, name)
    found = {} if _only_snapshots_left(record, arns) else discover(run)
    lab = record.get(TAG_LAB) or next((tags_by_arn[a].get(TAG_LAB, "") for a in arns if a in tags_by_arn), "")
    row = StackRow(name, ctx.region, lab=lab, owner=record.get(TAG_OWNER, ""), created=record.get(TAG_CREATED, ""),
                   expires=record.get(TAG_EXPIRES, ""), klass=record.get(TAG_CLASS, ""), resources=len(found))
    row.state = stack_state(found, expected_keys(name, ctx.region, record, lab))
    costs = [line for lines in pricing.found_lines(found, ctx.region, run.kinds).values() for line in lines]
    row.hourly, row.cost_complete = pricing.total_hourly(costs)
    row.not_priced = pricing.not_priced(costs)
    for s in find_snapshots(run, found):
        if s.get("type") == "automated":
            continue
        monthly, priced = pricing.monthly(snapshot_cost([s], ctx.region))   # in the snapshot's own region
        row.snapshots.append({"id": s.id, "service": s.kind.split("-")[0], "region": s.get("region"),
                              "size_gib": s.get("size_gib"), "created": s.created.isoformat() if s.created else None,
                              "monthly_usd": round(monthly, 4) if priced else None, "stack": name})
    return row


def expected_keys(stack: str, region: str, record: dict[str, str], lab_name: str) -> set[str] | None:
    """The resources the stack's lab wants (its VPC's record: lab, lab file, --set list), or None
    when that lab cannot be read here (a lab file on another machine)."""
    from awslab.errors import AwslabError
    from awslab.spec.lab import load_lab
    from awslab.spec.topology import desired

    try:
        lab = load_lab(None if record.get(TAG_LAB_FILE) else (lab_name or stack), record.get(TAG_LAB_FILE) or None,
                       decode_overrides(record.get(TAG_OVERRIDES)))
    except AwslabError:
        return None
    return {d.key for d in desired(lab, stack, region)}


def stack_state(found: dict, expected: set[str] | None = None) -> str:
    """complete (every resource the lab wants there and usable), partial (some missing, as after an
    interrupted `up` or a promoted replica, or not ready yet), broken (something failed or is being
    deleted). Without the lab's list (``expected`` None), its core resources decide."""
    if not found:
        return "gone"
    bad = {"failed", "incompatible-parameters", "incompatible-network", "storage-full", "deleting",
           "inaccessible-encryption-credentials", "create-failed", "shutting-down", "terminated"}
    if any(f.state in bad for f in found.values()):
        return "broken"
    database = "db.cluster" if "db.cluster" in (found if expected is None else expected) else "db.primary"
    core = ("network.vpc", "host.instance", database, "cache.group")
    ready = {"available", "running"}
    if expected is not None and not expected <= set(found):
        return "partial"
    if "sg.db" in found and all(k in found and found[k].state in ready for k in core):
        return "complete"
    return "partial"


def print_stacks(rows: list[StackRow], orphans: list[dict], output: str, regions: list[str]) -> None:
    if output == "json":
        ui.emit_json({"regions": regions, "stacks": [r.as_json() for r in rows], "orphaned_snapshots": orphans,
                      "estimated_hourly_usd": round(sum(r.hourly for r in rows), 4),
                      "cost_complete": all(r.cost_complete for r in rows),
                      "snapshots_monthly_usd": round(sum(r.snapshots_monthly for r in rows)
                                                     + sum(s["monthly_usd"] or 0.0 for s in orphans), 4)})
        return
    if not rows and not orphans:
        ui.emit(f"no awslab stacks in {', '.join(regions)}")
        return
    if rows:
        ui.emit(ui.table(["STACK", "REGION", "LAB", "OWNER", "CREATED", "EXPIRES", "RESOURCES", "STATE", "$/HOUR",
                          "SNAPSHOTS"],
                         [[r.stack, r.region, r.lab, r.owner or "-", _short(r.created), time_left(r.expires) or "never",
                           str(r.resources), r.state, r.hourly_text,
                           f"{len(r.snapshots)} ({pricing.format_money(r.snapshots_monthly)}/month)" if r.snapshots else "-"]
                          for r in rows]))
    if orphans:
        ui.emit("\nsnapshots of stacks that no longer exist (kept until deleted):")
        ui.emit(ui.table(["STACK", "SNAPSHOT", "SERVICE", "REGION", "SIZE", "$/MONTH"],
                         [[s["stack"], s["id"], s["service"], s["region"] or "-",
                           f"{s['size_gib']:g} GiB" if s.get("size_gib") else "-",
                           pricing.format_money(s["monthly_usd"]) if s["monthly_usd"] is not None else "not priced"]
                          for s in orphans]))
    hourly = sum(r.hourly for r in rows)
    monthly = sum(r.snapshots_monthly for r in rows) + sum(s["monthly_usd"] or 0.0 for s in orphans)
    partial = [f"{r.stack} ({r.region}): {', '.join(r.not_priced)}" for r in rows if not r.cost_complete]
    unpriced = sum(1 for r in rows for s in r.snapshots if s["monthly_usd"] is None) + sum(
        1 for s in orphans if s["monthly_usd"] is None)
    ui.emit(f"\n{len(rows)} stack{'' if len(rows) == 1 else 's'}: about {pricing.format_money(hourly)}/hour on AWS now (priced from what exists, "
            f"each in its own region); snapshots about {pricing.format_money(monthly)}/month"
            + (f" ({unpriced} not priced in their region)" if unpriced else ""))
    if partial:
        ui.emit("not priced (no source of awslab's price table gives it in that region): " + "; ".join(partial))


def _short(created: str) -> str:
    return created.replace("T", " ").removesuffix("Z")[:16] if created else "-"
