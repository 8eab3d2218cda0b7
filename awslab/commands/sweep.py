"""`awslab sweep`: the sweeper for forgotten stacks. Every expired stack (`up --ttl`/`--expires-at`,
its record on its VPC: spec/tags.py) is removed as `down` removes it, final snapshot kept, and, when
asked, the snapshots older than a duration. Safe from cron on several machines at once: a stack is
claimed (a tag on its VPC) before it is removed, and the last claim wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from awslab import ui
from awslab.aws import network
from awslab.aws._common import awslab_tagged
from awslab.commands._common import new_run
from awslab.commands.stacks import (
    REGION_WORKERS,
    expired,
    format_instant,
    in_region,
    parse_duration,
    parse_instant,
    time_left,
)
from awslab.engine.context import Context
from awslab.errors import UsageError
from awslab.spec.tags import TAG_EXPIRES, TAG_OWNER, TAG_STACK

TAG_SWEEPING = "awslab:sweeping"   # a sweeper's claim on a stack: "<host>/<pid> <time>"
CLAIM_STALE = timedelta(hours=1)   # a claim older than this is a sweeper that died
CLAIM_SETTLE_S = 1.0               # wait after claiming, then read back: the last claim wins
DOWN_TIMEOUT_S = 3 * 3600


def sweep(ctx: Context, regions: list[str], *, dry_run: bool, snapshots_older_than: str | None, output: str,
          progress: ui.Progress) -> int:
    """Remove every expired stack (as `down` does, final snapshot included) and, when asked, the
    snapshots older than a duration. Safe from cron on several machines: a stack is claimed by a
    tag before its `down`, and `down` itself is idempotent."""
    from awslab.commands._common import confirm_real_account
    from awslab.errors import EXIT_FAILED, EXIT_OK

    age = parse_duration(snapshots_older_than, "--snapshots-older-than") if snapshots_older_than else None
    now = datetime.now(timezone.utc)

    def scan(region: str) -> tuple[list, list]:
        rctx = in_region(ctx, region)
        due = [(rctx, name, record) for name, record in sorted(network.stack_records(new_run(rctx, "awslab")).items())
               if expired(record, now)]
        return due, (_old_snapshots(rctx, now - age) if age is not None else [])

    due: list[tuple[Context, str, dict[str, str]]] = []
    old_snaps: list[tuple[Context, str, object]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(REGION_WORKERS, len(regions)))) as pool:
        for d, o in pool.map(scan, regions):
            due += d
            old_snaps += o
    results: list[dict] = []
    if not dry_run and (due or old_snaps):
        confirm_real_account(ctx, f"remove {len(due)} expired stacks and {len(old_snaps)} snapshots",
                             [f"stack {n} ({c.region}) expired {r.get(TAG_EXPIRES)}" for c, n, r in due]
                             + [f"snapshot {f.id} ({c.region})" for c, _, f in old_snaps])
    for rctx, name, record in due:
        row = {"stack": name, "region": rctx.region, "owner": record.get(TAG_OWNER), "expires": record.get(TAG_EXPIRES),
               "kind": "stack"}
        if dry_run:
            results.append({**row, "action": "would remove"})
            continue
        claimed = _claim(rctx, name, record)
        if claimed is not None:
            progress.line(f"sweep: stack {name} ({rctx.region}): {claimed}; skipped")
            results.append({**row, "action": f"skipped: {claimed}"})
            continue
        progress.line(f"sweep: stack {name} ({rctx.region}), {time_left(record.get(TAG_EXPIRES))}: removing")
        results.append({**row, **_down(rctx, name)})
    for rctx, stack, snap in old_snaps:
        row = {"stack": stack, "region": rctx.region, "snapshot": snap.id, "kind": "snapshot",
               "created": snap.created.isoformat() if snap.created else None}
        results.append({**row, **({"action": "would delete"} if dry_run else _delete_snapshot(rctx, stack, snap))})
    _print_sweep(results, output, dry_run)
    return EXIT_FAILED if any(r["action"].startswith("failed") for r in results) else EXIT_OK


def _claim(ctx: Context, stack: str, record: dict[str, str]) -> str | None:
    """Claim the stack for this sweeper (None), or say who holds it."""
    import os
    import socket
    import time


    held = record.get(TAG_SWEEPING, "")
    if held and _claim_fresh(held):
        return f"being removed by {held.split(' ')[0]}"
    mine = f"{socket.gethostname()}/{os.getpid()} {format_instant(datetime.now(timezone.utc))}"
    network.tag_vpc(new_run(ctx, stack), record["vpc_id"], {TAG_SWEEPING: mine})
    time.sleep(CLAIM_SETTLE_S if not ctx.is_local else 0.2)
    now_held = network.stack_records(new_run(ctx, stack), stack).get(stack, {}).get(TAG_SWEEPING, "")
    return None if now_held == mine else f"being removed by {now_held.split(' ')[0] or 'another sweeper'}"


def _claim_fresh(value: str) -> bool:
    try:
        when = parse_instant(value.split(" ", 1)[1], "claim")
    except (IndexError, UsageError):
        return False
    return datetime.now(timezone.utc) - when < CLAIM_STALE


def _down(ctx: Context, stack: str) -> dict:
    import subprocess

    from awslab.commands._common import child_command

    done = subprocess.run(child_command(ctx, "down", "--name", stack, "--yes", "--output", "json"),
                          capture_output=True, text=True, timeout=DOWN_TIMEOUT_S)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"action": f"failed: {why}"}
    return {"action": "removed"}


def _old_snapshots(ctx: Context, before: datetime) -> list[tuple[Context, str, object]]:
    """Manual and final snapshots tagged with an awslab stack, made before ``before``."""
    from awslab.commands.recovery import find_snapshots

    names = {tags[TAG_STACK] for tags in awslab_tagged(new_run(ctx, "awslab")).values() if tags.get(TAG_STACK)}
    out = []
    for name in sorted(names):
        for snap in find_snapshots(new_run(ctx, name), {}):
            if snap.get("type") != "automated" and snap.created and snap.created < before:
                out.append((ctx, name, snap))
    return out


def _delete_snapshot(ctx: Context, stack: str, snap) -> dict:
    from awslab.commands._common import describe_error, new_run
    from awslab.engine.executor import execute
    from awslab.engine.plan import plan_delete_snapshots

    outcome = execute(plan_delete_snapshots(stack, [snap]), new_run(ctx, stack))
    if outcome.failed:
        return {"action": f"failed: {describe_error(next(iter(outcome.failed.values())))}"}
    return {"action": "deleted"}


def _print_sweep(results: list[dict], output: str, dry_run: bool) -> None:
    if output == "json":
        ui.emit_json({"dry_run": dry_run, "results": results})
        return
    if not results:
        ui.emit("sweep: nothing expired")
        return
    ui.emit(ui.table(["KIND", "STACK", "REGION", "WHAT", "ACTION"],
                     [[r["kind"], r["stack"], r["region"],
                       r.get("snapshot") or f"expired {r.get('expires')} (owner {r.get('owner') or 'unknown'})",
                       r["action"]] for r in results]))
