"""The lifecycle commands' logic (up, plan, verify, down), as plain functions the CLI forwards to
(testable without Click); `status` and the summary `up` prints are told by commands/status.py.

Each takes a resolved Context and already-validated input, and returns an exit code; results go
to stdout, progress to stderr. Beside them, what the CLI asks before forwarding: the lab a stack
was built with (``stack_lab``), the record `up` keeps of a lab (``lab_record``), and whether
verify's --check prefixes name checks (``check_ids``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from awslab import ui
from awslab.commands import recovery, stacks
from awslab.commands.status import print_summary
from awslab.commands._common import (
    confirm_real_account,
    lab_cost,
    order_key,
    progress_run,
    raise_if_failed,
    snapshot_cost,
    snapshots_monthly,
    took,
)
from awslab.home import state
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.engine.executor import execute
from awslab.spec.model import KEEP, REPLACE, Found, Plan
from awslab.engine.plan import plan_delete_snapshots, plan_down, plan_up
from awslab.engine.run import Run
from awslab.errors import EXIT_FAILED, EXIT_OK, OperationError, UsageError
from awslab.spec import pricing
from awslab.spec.lab import Lab, load_lab
from awslab.spec.topology import desired


def lab_record(lab: Lab, lab_file: str | None, overrides) -> dict:
    """What `up` and `plan` record of the lab a stack is built from (its tags and this machine's cache)."""
    return {"lab": lab.name, "lab_file": os.path.abspath(lab_file) if lab_file else None, "overrides": list(overrides)}


def stack_lab(ctx: Context, lab_file: str | None = None, overrides=()) -> Lab:
    """The lab the context's stack was built with: as its own tags say (any machine), else as this
    machine recorded it, else the lab named like the stack."""
    stack = ctx.stack
    # The stack's own tags are the truth (another machine may have changed it since); this
    # machine's record is the fallback for a stack made before its tags held one.
    record = stacks.lab_record_from_tags(ctx, stack) or state.load_stack_record(stack) or {}
    if record.get("lab_file") and not os.path.exists(record["lab_file"]) and not lab_file:
        raise UsageError(f"stack {stack} was built from the lab file {record['lab_file']}, which is not on this machine",
                         "pass it with --lab-file PATH")
    if lab_file or overrides:
        return load_lab(None if lab_file else (record.get("lab") or stack), lab_file, overrides)
    if record.get("lab_file"):
        return load_lab(None, record["lab_file"], record.get("overrides") or [])
    if not record:
        from awslab.spec.lab import available_labs

        if stack not in available_labs():   # "unknown lab" would send the user after the wrong thing
            raise UsageError(f"no stack '{stack}' in {ctx.region}: nothing there carries its tag, and no lab has its "
                             "name", "`awslab stacks --all-regions` lists the stacks; --region for another region")
    return load_lab(record.get("lab") or stack, None, record.get("overrides") or [])


def check_ids(checks) -> None:
    """Refuse a --check prefix that starts no check id (nor is started by one)."""
    from awslab.verify.checks import CHECK_PREFIXES

    for prefix in checks:
        if not any(p.startswith(prefix) or prefix.startswith(p) for p in CHECK_PREFIXES):
            raise UsageError(f"no check id starts with '{prefix}'", f"check ids start with: {', '.join(CHECK_PREFIXES)}")


def plan_rows(plan: Plan) -> list[list[str]]:
    return [[s.action, s.key, s.name, s.reason] for s in sorted(plan.steps, key=lambda s: order_key(s.key))]


def print_plan(plan: Plan, output: str, lab: Lab | None, ctx: Context) -> None:
    costs = lab_cost(lab, ctx) if lab is not None else []
    hourly, complete = pricing.total_hourly(costs)
    if output == "json":
        ui.emit_json({"stack": plan.stack, "target": ctx.target, "region": ctx.region,
                      "steps": [{"action": s.action, "key": s.key, "kind": s.kind, "name": s.name,
                                 "reason": s.reason, "depends_on": list(s.deps),
                                 **({"changes": [{"setting": c.setting, "old": c.old, "new": c.new, "source": c.source,
                                                  **({"cost": c.cost} if c.cost else {})}
                                                 for c in s.changes]} if s.changes else {})} for s in plan.steps],
                      "counts": plan.counts(), "estimated_hourly_usd": round(hourly, 4) if costs else None,
                      **({"cost_complete": complete, "not_priced": pricing.not_priced(costs)} if costs else {})})
        return
    ui.emit(ui.table(["ACTION", "RESOURCE", "NAME", "WHY"], plan_rows(plan)))
    counts = ", ".join(f"{n} to {a}" for a, n in sorted(plan.counts().items()))
    ui.emit(f"\nstack {plan.stack} on {ctx.target} ({ctx.region}): {counts or 'nothing to do'}")
    if costs:
        ui.emit(f"estimated cost once up in {ctx.region}: {pricing.say(costs, ctx.region)}")


def up(ctx: Context, lab: Lab, stack: str, *, dry_run: bool, output: str, progress: ui.Progress,
       lab_record: dict | None = None, owner: str | None = None, expires: str | None = None,
       class_name: str | None = None) -> int:
    """Create what is missing, wait until it is usable, print a summary. ``expires``: the stack's
    expiry to set (RFC 3339), "" to remove it, None to leave it as it is."""
    run = progress_run(ctx, stack, lab.name, progress)
    check_availability_zones(run, lab)
    if ctx.is_local and not dry_run:
        _revive_dead_engines(ctx)
    run.found.update(discover(run))
    before = (state.load_stack_record(stack) or {}).get("overrides") or []
    now = (lab_record or {}).get("overrides") or []
    record = stacks.up_record(ctx, overrides=now, lab_file=(lab_record or {}).get("lab_file"), owner=owner,
                              expires=expires, class_name=class_name, creating="network.vpc" not in run.found)
    plan = with_sources(plan_up(stack, desired(lab, stack, ctx.region, record), run.found, run.kinds), lab, now, before)
    if ctx.is_local:   # after the plan: what AWS itself refuses (a downgrade) is said first
        check_local_versions(lab)
    if dry_run:
        print_plan(plan, output, lab, ctx)
        return EXIT_OK
    replaced = [s for s in plan.steps if s.action == REPLACE]
    if replaced:
        print_plan(plan, output, lab, ctx)
        raise OperationError(
            f"stack {stack}: {len(replaced)} resource(s) differ from the lab where AWS cannot change them in place "
            f"({'; '.join(f'{s.key}: {s.reason}' for s in replaced)}); nothing was changed",
            "`awslab down` then `awslab up` rebuilds the stack (down keeps a final DB snapshot), or change the lab "
            "to match")
    if plan.mutating:
        confirm_real_account(ctx, f"change {len(plan.mutating)} resources of stack {stack}",
                              [f"stack {stack}: {_counted(plan)}",
                               f"estimated cost once up in {ctx.region}: {pricing.say(lab_cost(lab, ctx), ctx.region)} "
                               "until `awslab down`"])
    # Remember the stack (and how it was built, for verify) before creating anything, so `status`
    # and `down` find a half-made one.
    # Merged: what other commands recorded (the regions snapshots were copied to) stays.
    # A class's student stack (made by `class up`) is not the user's own: the next command without
    # --name still acts on the stack it acted on before the class (never a student's).
    state.save_stack_record(stack, {**(state.load_stack_record(stack) or {}), **(lab_record or {"lab": lab.name})})
    if class_name is None:
        state.save_current_context({"target": ctx.target, "stack": stack, "lab": lab.name, "region": ctx.region,
                                    "profile": ctx.profile, "endpoint_url": None if ctx.is_local else ctx.endpoint_url})
    outcome = execute(plan, run)
    raise_if_failed(outcome, "up", run)
    progress.line(f"stack {stack} is up ({len(plan.mutating)} changed) in {took(ctx, outcome.elapsed_s)}")
    print_summary(ctx, stack, lab, run.found, output)
    return EXIT_OK


def _revive_dead_engines(ctx: Context) -> None:
    """On the local AWS, `up` also repairs the data plane: an engine that died since (killed, out of
    memory) is started again on its data. The Context found the server already: no second look."""
    from awslab.local import manager

    manager.reconcile_engines(ctx.endpoint_url)


def _counted(plan: Plan) -> str:
    return ", ".join(f"{n} to {a}" for a, n in sorted(plan.counts().items()) if a != KEEP) or "nothing to change"


def check_local_versions(lab: Lab) -> None:
    """The local AWS runs real servers: a version it has none for is refused before anything
    changes, as its API would refuse it (never an endpoint that says one version and runs another)."""
    from awslab.local import offering

    d = lab.database
    db_why = (offering.cluster_refusal if d.deployment == "cluster" else offering.db_refusal)(d.engine, d.engine_version)
    for key, why in (("database.engine_version", db_why),
                     ("cache.engine_version", offering.cache_refusal(lab.cache.engine, lab.cache.engine_version))):
        if why:
            raise UsageError(f"{key}: {why}; nothing was changed",
                             "--target aws runs every version RDS and ElastiCache offer")


def check_availability_zones(run: Run, lab: Lab) -> None:
    """AZs the lab names must exist in the region (asked once), before anything is made."""
    wanted = lab.network.availability_zones
    if not wanted:
        return
    zones = {z["ZoneName"] for z in run.client("ec2").describe_availability_zones(AllAvailabilityZones=True)
             ["AvailabilityZones"]}
    unknown = [z for z in wanted if z not in zones]
    if unknown:
        raise UsageError(f"{lab.source}: network.availability_zones: {', '.join(unknown)} "
                         f"{'is' if len(unknown) == 1 else 'are'} not an availability zone of {run.ctx.region}",
                         f"choose from {', '.join(sorted(zones))}, or none to use the region's first two")


def with_sources(plan: Plan, lab: Lab, overrides_now: list[str], overrides_before: list[str]) -> Plan:
    """Each planned change says where its new value comes from: this command's --set, or the lab
    file, noting a --set of the stack's last `up` that this one undoes."""
    now = {o.split("=", 1)[0].strip() for o in overrides_now}
    before = {o.split("=", 1)[0].strip(): o for o in overrides_before}

    def source(setting: str) -> str:
        if setting in now:
            return "--set"
        if setting in before:
            return f"{Path(lab.source).name}; the stack's last `up` had --set {before[setting]}"
        return Path(lab.source).name

    steps = tuple(replace(s, changes=tuple(replace(c, source=source(c.setting)) for c in s.changes))
                  if s.changes else s for s in plan.steps)
    return replace(plan, steps=steps)


def down(ctx: Context, stack: str, *, skip_final_snapshot: bool, dry_run: bool, output: str,
         progress: ui.Progress, delete_snapshots: bool = False) -> int:
    """Delete everything tagged with the stack, in reverse dependency order; keep its snapshots
    (and take a final one of the primary) unless asked not to."""

    if delete_snapshots:
        skip_final_snapshot = True  # a final snapshot would be deleted at once: don't take it
    run = progress_run(ctx, stack, "", progress, skip_final_snapshot=skip_final_snapshot)
    run.found.update(discover(run))
    plan = plan_down(stack, run.found)
    if delete_snapshots:
        snaps = plan_delete_snapshots(stack, recovery.find_snapshots(run, run.found))
        plan = Plan(stack, plan.steps + snaps.steps)
    if dry_run:
        print_plan(plan, output, None, ctx)
        return EXIT_OK
    if not plan.steps:
        progress.line(f"stack {stack}: nothing to delete")
        state.forget_current_stack(stack)
        kept = [] if delete_snapshots else [s for s in recovery.find_snapshots(run, {}) if s.get("type") != "automated"]
        _report_kept(stack, [], kept, output, ctx.region)
        return EXIT_OK
    keeps = ["a final snapshot of each database (the primary or cluster, any restored instance or cluster) until you delete it"] if (
        any(f.kind in ("db-instance", "db-cluster") for f in run.found.values()) and not skip_final_snapshot) else []
    if not delete_snapshots:
        keeps.append("the stack's manual snapshots (`awslab snapshots`; --delete-snapshots removes them)")
    confirm_real_account(ctx, f"delete {len(plan.steps)} resources of stack {stack}",
                          [f"will delete: {s.key} ({s.name})" for s in sorted(plan.steps, key=lambda s: order_key(s.key))]
                          + [f"will keep: {k}" for k in keeps])
    progress.line(_down_preview(ctx, stack, plan, run, skip_final_snapshot, delete_snapshots))
    outcome = execute(plan, run)
    raise_if_failed(outcome, "down", run)
    progress.line(f"stack {stack} is down ({len(outcome.done)} deleted) in {took(ctx, outcome.elapsed_s)}")
    state.forget_current_stack(stack)
    kept = [] if delete_snapshots else [s for s in recovery.find_snapshots(run, {}) if s.get("type") != "automated"]
    _report_kept(stack, sorted(s.key for s in plan.steps), kept, output, ctx.region)
    return EXIT_OK


def _down_preview(ctx: Context, stack: str, plan: Plan, run: Run, skip_final_snapshot: bool,
                  delete_snapshots: bool) -> str:
    """Before anything is deleted: which stack, where, and what stays (and costs) afterwards."""
    keeps = []
    # A final snapshot of each database deleted: the primary and any restored instance (a replica
    # holds no data of its own).
    dbs = sorted((f for f in run.found.values() if f.kind in ("db-instance", "db-cluster")), key=lambda f: order_key(f.key))
    if dbs and not skip_final_snapshot:
        gib = sum(f.get("storage_gib") or 0 for f in dbs)
        final = pricing.snapshot_line("final snapshot", "db", gib, ctx.region)
        keeps.append(f"a final snapshot of {', '.join(f.id for f in dbs)} ({gib} GiB, "
                     f"{pricing.say([final], ctx.region, per='month', about=True)})")
    if not delete_snapshots:
        manual = [s for s in recovery.find_snapshots(run, {}) if s.get("type") != "automated"]
        if manual:
            keeps.append(f"{len(manual)} snapshots already taken ({snapshots_monthly(manual, ctx.region)})")
    where = "the local AWS" if ctx.is_local else f"AWS ({ctx.region})"
    return (f"stack {stack} on {where}: deleting {len(plan.steps)} resources; keeping "
            + (" and ".join(keeps) if keeps else "nothing (no final snapshot)"))


def _report_kept(stack: str, deleted: list[str], kept: list[Found], output: str, region: str) -> None:

    if output == "json":
        monthly, complete = pricing.monthly(snapshot_cost(kept, region))
        ui.emit_json({"stack": stack, "deleted": deleted,
                      "kept": [{"kind": s.kind, "id": s.id, "region": s.get("region"), "size_gib": s.get("size_gib")} for s in kept],
                      "kept_monthly_usd": round(monthly, 3), "kept_cost_complete": complete})
        return
    if deleted:
        ui.emit(f"stack {stack}: deleted {len(deleted)} resources")
    if kept:
        ui.emit(f"kept {len(kept)} snapshot{'' if len(kept) == 1 else 's'}, {snapshots_monthly(kept, region)} until deleted "
                f"(`awslab down --delete-snapshots` removes them):")
        for s in kept:
            ui.emit(f"  {s.kind} {s.id} ({s.get('region')}{', final' if '-final-' in s.id else ''})")


def verified(run: Run, found: dict[str, Found], lab: Lab, checks: tuple[str, ...] = ()):
    """verify's World of the stack and its results (the live checks run when selected): what
    `verify` prints, `report` and `verify --diagram-to` draw."""
    from awslab.verify import checks as v
    from awslab.verify import live, live_local, ssm

    ctx = run.ctx
    world = v.gather(run, found)
    if any("live".startswith(p) or p.startswith("live") for p in checks or ("live",)):
        # An awslab local AWS reached by --endpoint-url (another home's, a shared one) has real
        # engines behind its endpoints too: check them as on the local target.
        on_local_aws = ctx.is_local or (ctx.endpoint_url is not None and bool(live.endpoint_map(run)))
        world.live = live_local.check_local(run, world, lab) if on_local_aws else ssm.run_live(run, world, lab)
    return world, v.run_checks(world, lab, checks)


def verify(ctx: Context, stack: str, lab: Lab, *, checks: tuple[str, ...], output: str, progress: ui.Progress,
           diagram_to: str | None = None) -> int:
    """Run the verify catalogue; exit 1 if any check FAILs. ``diagram_to``: also draw the stack
    there as an SVG from the same World (`class verify --html` puts each student's in the page)."""
    from awslab.verify import checks as v

    run = progress_run(ctx, stack, lab.name, progress)
    world, results = verified(run, discover(run), lab, checks)
    if diagram_to:
        from awslab.commands.diagram_model import build, now_text
        from awslab.commands.drawing_svg import svg

        Path(diagram_to).write_text(svg(build(world, lab, now_text())), encoding="utf-8")
    failed = [r for r in results if r.status == v.FAIL]
    if output == "json":
        ui.emit_json([r.as_dict() for r in results])
    else:
        rows = []
        for r in results:
            rows.append([r.id, r.status, r.detail + (f" [{r.control}]" if r.control else "")])
        ui.emit(ui.table(["CHECK", "STATUS", "DETAIL"], rows))
        if failed:
            ui.emit("\nto fix:")
            for r in failed:
                ui.emit(f"  {r.id}: {r.hint or 'see the detail above'}")
        counts = {s: sum(r.status == s for r in results) for s in (v.PASS, v.FAIL, v.WARN, v.SKIP)}
        ui.emit("\n" + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" (stack {stack}, lab {lab.name}, {lab.source})")
    return EXIT_FAILED if failed else EXIT_OK
