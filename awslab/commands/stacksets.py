"""`awslab class ... --stackset`: a class with an AWS account per student, on CloudFormation StackSets.

`class up --stackset --accounts A,B | --ou OU` exports the lab's template (``commands/export.py``)
and creates or updates the StackSet ``awslab-<class>`` and its stack instances, one per account
and region, at most ``--max-concurrent`` accounts at a time and stopping a region after
``--failure-tolerance`` failures, as StackSets do; each account's result is printed as it comes.
In every account the awslab stack is named like the class, so a student runs `awslab verify
--name <class>` in their own account. `class verify --stackset` grades each account by entering
it through a role (the StackSet's execution role, or ``OrganizationAccountAccessRole`` for an
organization), `class down --stackset` deletes the instances (each primary DB keeps a final
snapshot: the template's ``DeletionPolicy: Snapshot``) and the StackSet.

A rerun converges: it follows an operation an interrupted run left running, updates the StackSet
when the template changed, and deploys only to the accounts not yet ``CURRENT``.
"""

from __future__ import annotations

import re

from awslab import ui
from awslab.aws import stacksets
from awslab.aws.kinds import KINDS
from awslab.commands._common import confirm_real_account
from awslab.commands.classes import (
    GradePage,
    CHILD_TIMEOUT_S,
    Student,
    for_each,
    grade,
    print_sheet,
)
from awslab.engine.context import Context
from awslab.errors import EXIT_FAILED, EXIT_OK, UsageError
from awslab.spec import pricing
from awslab.spec.lab import Lab
from awslab.spec.tags import TAG_CLASS, TAG_LAB

ACCOUNT = re.compile(r"^[0-9]{12}$")
OU = re.compile(r"^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
TEMPLATE_BODY_MAX = 51_200   # bytes: CloudFormation's limit for a template passed in the request
TAG_OUS = "awslab:ous"


def targets_from(accounts: str | None, ou: str | None, regions: str | None, max_concurrent: int,
                 failure_tolerance: int) -> tuple[list[str], list[str], list[str]]:
    """(accounts, OUs, regions: [] for the context's), checked before anything is sent."""
    if (accounts is None) == (ou is None):
        raise UsageError("give --accounts A,B,... or --ou OU-ID (one of them) with --stackset",
                         "accounts: 12-digit AWS account ids; an OU: ou-xxxx-yyyyyyyy (service-managed StackSets)")
    split = lambda text: [p.strip() for p in (text or "").split(",") if p.strip()]  # noqa: E731
    accs, ous, regs = split(accounts), split(ou), split(regions)
    for a in accs:
        if not ACCOUNT.match(a):
            raise UsageError(f"'{a}' is not an AWS account id", "12 digits, e.g. 111122223333")
    for o in ous:
        if not OU.match(o):
            raise UsageError(f"'{o}' is not an organizational unit id", "e.g. ou-ab12-cd34ef56, or the root r-ab12")
    for r in regs:
        if not REGION.match(r):
            raise UsageError(f"'{r}' is not a region name", "e.g. us-east-1,eu-west-1")
    for name, values in (("accounts", accs), ("OUs", ous), ("regions", regs)):
        if len(set(values)) != len(values):
            raise UsageError(f"an entry of --{name.lower()} is listed twice", "list each once")
    if accounts is not None and not accs:
        raise UsageError("--accounts lists no account", "e.g. --accounts 111122223333,444455556666")
    check_preferences(max_concurrent, failure_tolerance)
    return accs, ous, regs


def check_preferences(max_concurrent: int, failure_tolerance: int) -> None:
    if not 1 <= max_concurrent <= 100:
        raise UsageError(f"--max-concurrent {max_concurrent} is out of range", "1 to 100 accounts at a time")
    if not 0 <= failure_tolerance <= 100:
        raise UsageError(f"--failure-tolerance {failure_tolerance} is out of range", "0 to 100 failed accounts per region")


def _result_line(progress: ui.Progress, verb: str, total: int):
    done: list[int] = [0]

    def on_result(row: dict, seconds: float) -> None:
        done[0] += 1
        status = row["Status"] if row["Status"] != "FAILED" else f"FAILED: {row.get('StatusReason') or 'no reason given'}"
        if row["Status"] == "CANCELLED":
            status = f"CANCELLED: {row.get('StatusReason') or 'the operation stopped'}"
        progress.line(f"{verb} account {row['Account']} {row['Region']}: {status} after {seconds:.1f}s "
                      f"[{done[0]}{f'/{total}' if total else ''}]")   # an OU's accounts are not known up front

    return on_result


def _follow(ctx: Context, name: str, operation: str, verb: str, total: int, progress: ui.Progress):
    cfn = ctx.client("cloudformation")
    poll = ctx.polling
    return stacksets.watch(cfn, name, operation, on_result=_result_line(progress, verb, total),
                           first_delay_s=poll.first_delay_s, max_delay_s=poll.max_delay_s, bound_s=CHILD_TIMEOUT_S)


def _local_roles(ctx: Context, accounts: list[str], progress: ui.Progress) -> None:
    """On the local AWS, the two roles of self-managed StackSets, as an account vending setup (or
    AWS's own sample templates) provides them on a real organisation."""
    admin_account = ctx.client("sts").get_caller_identity()["Account"]
    admin_trust, admin_perms, exec_trust = stacksets.role_documents(admin_account)
    made = int(stacksets.ensure_role(ctx.client("iam"), stacksets.ADMIN_ROLE, admin_trust, inline=admin_perms))
    for a in accounts:
        inside = ctx.as_role(f"arn:aws:iam::{a}:role/{stacksets.ORGANIZATION_ROLE}")
        made += stacksets.ensure_role(inside.client("iam"), stacksets.EXECUTION_ROLE, exec_trust,
                                      managed="arn:aws:iam::aws:policy/AdministratorAccess")
    if made:
        progress.line(f"local AWS: made {made} StackSet role(s) ({stacksets.ADMIN_ROLE} here, "
                      f"{stacksets.EXECUTION_ROLE} in each account), as a real organisation has them")


def class_up(ctx: Context, lab: Lab, class_name: str, *, accounts: list[str], ous: list[str], regions: list[str],
             overrides: list[str], lab_file: str | None, max_concurrent: int, failure_tolerance: int, output: str,
             progress: ui.Progress) -> int:
    from awslab.commands.export import render_yaml, template

    name = stacksets.stackset_name(class_name)
    body = render_yaml(template(lab, class_name, overrides, lab_file, klass=class_name))
    if len(body.encode()) > TEMPLATE_BODY_MAX:
        raise UsageError(f"the template is {len(body.encode())} bytes, over CloudFormation's {TEMPLATE_BODY_MAX}",
                         "fewer --set overrides, or deploy the exported template from S3 yourself")
    # Each region at its own prices: a stack instance in sa-east-1 does not cost what one in us-east-1 does.
    costs = {region: pricing.estimate(lab, region, KINDS, class_name) for region in regions}
    hourly = {region: pricing.total_hourly(lines)[0] for region, lines in costs.items()}
    where = f"{len(accounts)} accounts" if accounts else f"every account of {', '.join(ous)}"
    confirm_real_account(ctx, f"deploy {lab.name} to {where} with the StackSet {name}", [
        f"StackSet {name}: stack '{class_name}' in {where}, regions {', '.join(regions)}",
        "estimated cost once up, per account: " + "; ".join(f"{r} {pricing.say(lines, r)}" for r, lines in costs.items())
        + (f"; {pricing.format_money(sum(hourly.values()) * len(accounts))}/hour for the class" if accounts else ""),
        "each account needs AWSCloudFormationStackSetExecutionRole (policies/README.md)" if accounts else
        "StackSets' trusted access in AWS Organizations must be on"])
    cfn = ctx.client("cloudformation")
    existing = stacksets.describe(cfn, name)
    to_ous = existing is not None and existing.get("PermissionModel") == "SERVICE_MANAGED"
    if existing is not None and to_ous != bool(ous):
        raise UsageError(f"the StackSet {name} deploys to {'OUs' if to_ous else 'accounts'}, not "
                         f"{'OUs' if ous else 'accounts'}", "rerun with the targets it was made with, or "
                                                            "`awslab class down --stackset` first")
    if ctx.is_local and accounts:
        _local_roles(ctx, accounts, progress)
    elif accounts and not stacksets.admin_role_present(ctx.client("iam"), stacksets.ADMIN_ROLE):
        raise UsageError(f"this account has no {stacksets.ADMIN_ROLE} role, which self-managed StackSets need",
                         "create it (and AWSCloudFormationStackSetExecutionRole in each student account) as "
                         "policies/README.md shows, or use --ou with an organization")
    prefs = stacksets.preferences(max_concurrent, failure_tolerance)
    params = {"StackName": class_name}
    tags = {TAG_CLASS: class_name, TAG_LAB: lab.name, **({TAG_OUS: " ".join(ous)} if ous else {})}
    total = len(accounts) * len(regions) if accounts else 0
    if existing is None:
        stacksets.create(cfn, name, body, params, tags, bool(ous), f"awslab class {class_name}: {lab.name}")
        progress.line(f"StackSet {name} created ({'service-managed' if ous else 'self-managed'})")
    else:
        running = stacksets.running_operation(cfn, name)
        if running:
            progress.line(f"StackSet {name}: following operation {running}, which an earlier run left running")
            _follow(ctx, name, running, "earlier", total, progress)
        old = {p["ParameterKey"]: p.get("ParameterValue") for p in existing.get("Parameters") or []}
        if existing.get("TemplateBody") != body or any(old.get(k) != v for k, v in params.items()):
            have = stacksets.instances(cfn, name)
            progress.line(f"StackSet {name}: the template changed; updating its {len(have)} stack instances")
            op = stacksets.update(cfn, name, body, params, tags, prefs)
            _follow(ctx, name, op, "update", len(have), progress)
    have = {(i["Account"], i["Region"]): i for i in stacksets.instances(cfn, name)}
    if ous:
        op = stacksets.create_instances(cfn, name, [], ous, regions, prefs)
        _follow(ctx, name, op, "up", total, progress)
    else:
        # Accounts with no stack yet (new, or a creation that failed or was cancelled); a stack that
        # exists but is OUTDATED (a failed update) is the StackSet update's, not a new creation's.
        todo = [a for a in accounts if any(not (have.get((a, r)) or {}).get("StackId") for r in regions)]
        if todo:
            progress.line(f"StackSet {name}: deploying to {len(todo)} account(s) in {', '.join(regions)}, "
                          f"{max_concurrent} at a time, a region stopped after {failure_tolerance + 1} failure(s)")
            op = stacksets.create_instances(cfn, name, todo, [], regions, prefs)
            _follow(ctx, name, op, "up", len(todo) * len(regions), progress)
        else:
            progress.line(f"StackSet {name}: every account already has its stack")
    rows = _rows(ctx, name, accounts, regions)
    failed = [r for r in rows if r["status"] != "CURRENT"]
    if output == "json":
        ui.emit_json({"class": class_name, "lab": lab.name, "stackset": name, "stack": class_name, "accounts": rows,
                      "failed": len(failed)})
    else:
        _print_rows(rows)
        deployed = sum(hourly.get(r["region"], 0.0) for r in rows if r["stack_id"])
        ui.emit(f"\nclass {class_name}: {len(rows) - len(failed)} of {len(rows)} accounts CURRENT (stack "
                f"'{class_name}' in each); on real AWS about {pricing.format_money(deployed)}/hour"
                + ("" if all(pricing.total_hourly(lines)[1] for lines in costs.values()) else " (what is priced)")
                + (f"; {len(failed)} not: rerun `awslab class up --stackset` once what REASON says is fixed"
                   if failed else ""))
    return EXIT_FAILED if failed or not rows else EXIT_OK


def _rows(ctx: Context, name: str, accounts: list[str] | None = None, regions: list[str] | None = None) -> list[dict]:
    rows = []
    for i in sorted(stacksets.instances(ctx.client("cloudformation"), name), key=lambda i: (i["Account"], i["Region"])):
        if accounts and i["Account"] not in accounts or regions and i["Region"] not in regions:
            continue
        rows.append({"account": i["Account"], "region": i["Region"], "status": i.get("Status"),
                     "detail": (i.get("StackInstanceStatus") or {}).get("DetailedStatus"),
                     "reason": i.get("StatusReason"), "stack_id": i.get("StackId")})
    return rows


def _print_rows(rows: list[dict]) -> None:
    ui.emit(ui.table(["ACCOUNT", "REGION", "STATUS", "DETAIL", "REASON"],
                     [[r["account"], r["region"], r["status"] or "-", r["detail"] or "-", r["reason"] or "-"]
                      for r in rows]))


def _existing(ctx: Context, class_name: str) -> dict:
    found = stacksets.describe(ctx.client("cloudformation"), stacksets.stackset_name(class_name))
    if found is None:
        raise UsageError(f"class {class_name} has no StackSet {stacksets.stackset_name(class_name)} in {ctx.region}",
                         f"`awslab class up LAB --stackset --accounts ... --class {class_name}` first")
    return found


def class_status(ctx: Context, class_name: str, output: str) -> int:
    found = _existing(ctx, class_name)
    rows = _rows(ctx, found["StackSetName"])
    if output == "json":
        ui.emit_json({"class": class_name, "stackset": found["StackSetName"], "status": found.get("Status"),
                      "permission_model": found.get("PermissionModel"), "accounts": rows})
        return EXIT_OK
    _print_rows(rows)
    current = sum(1 for r in rows if r["status"] == "CURRENT")
    ui.emit(f"\nclass {class_name}: StackSet {found['StackSetName']} ({found.get('PermissionModel', '').lower()}), "
            f"{current} of {len(rows)} accounts CURRENT")
    return EXIT_OK


def class_verify(ctx: Context, class_name: str, *, role_name: str | None, checks: tuple[str, ...], concurrency: int,
                 csv_path: str | None, output: str, progress: ui.Progress, html_path: str | None = None) -> int:
    found = _existing(ctx, class_name)
    role = role_name or (stacksets.ORGANIZATION_ROLE if found.get("PermissionModel") == "SERVICE_MANAGED"
                         else found.get("ExecutionRoleName") or stacksets.EXECUTION_ROLE)
    rows = _rows(ctx, found["StackSetName"])
    if not rows:
        raise UsageError(f"the StackSet of class {class_name} has no stack instances", "`awslab class up --stackset` first")
    regions = {r["region"] for r in rows}
    students = [Student(r["account"] if len(regions) == 1 else f"{r['account']}/{r['region']}", class_name,
                        owner=r["account"], region=r["region"], role_arn=f"arn:aws:iam::{r['account']}:role/{role}")
                for r in rows]
    extra = [a for c in checks for a in ("--check", c)]
    with GradePage(class_name, html_path, progress) as pages:
        done = for_each(ctx, students, lambda s: ["verify", "--name", s.stack, "--output", "json", *extra, *pages.argv(s)],
                        concurrency, "verify", progress)
        sheet = grade(done)
        for row, r in zip(sheet, rows):   # an account whose stack never came up says why, not "verify did not run"
            if r["status"] != "CURRENT" and row["grade"] == "ERROR":
                row["failures"] = [f"stack instance {r['status']}: {r['reason'] or r['detail']}"]
        pages.write(done, sheet)
    return print_sheet(class_name, sheet, csv_path, output, progress)


def class_down(ctx: Context, class_name: str, *, max_concurrent: int, failure_tolerance: int, output: str,
               progress: ui.Progress) -> int:
    cfn = ctx.client("cloudformation")
    name = stacksets.stackset_name(class_name)
    found = stacksets.describe(cfn, name)
    if found is None:
        progress.line(f"class {class_name}: no StackSet {name} in {ctx.region}: nothing to remove")
        if output == "json":
            ui.emit_json({"class": class_name, "stackset": name, "accounts": []})
        return EXIT_OK
    rows = _rows(ctx, name)
    confirm_real_account(ctx, f"remove the StackSet {name} and its {len(rows)} stack instances", [
        f"accounts: {', '.join(sorted({r['account'] for r in rows})) or 'none'}",
        "each primary DB keeps a final snapshot (the template's DeletionPolicy: Snapshot)"])
    running = stacksets.running_operation(cfn, name)
    if running:
        progress.line(f"StackSet {name}: following operation {running}, which an earlier run left running")
        _follow(ctx, name, running, "earlier", len(rows), progress)
        rows = _rows(ctx, name)
    results: dict = {}
    if rows:
        ous = [t for t in (dict((t["Key"], t["Value"]) for t in found.get("Tags") or []).get(TAG_OUS) or "").split() if t]
        ous = list(found.get("OrganizationalUnitIds") or []) or ous
        accounts = sorted({r["account"] for r in rows})
        op = stacksets.delete_instances(cfn, name, [] if ous else accounts, ous, sorted({r["region"] for r in rows}),
                                        stacksets.preferences(max_concurrent, failure_tolerance))
        results = _follow(ctx, name, op, "down", len(rows), progress).results
    left = _rows(ctx, name)
    if not left:
        stacksets.delete(cfn, name)
        progress.line(f"StackSet {name} deleted")
    out = [{"account": r["account"], "region": r["region"],
            "result": "removed" if not any(x["account"] == r["account"] and x["region"] == r["region"] for x in left)
            else "failed", "reason": (results.get((r["account"], r["region"])) or {}).get("StatusReason")} for r in rows]
    failed = [r for r in out if r["result"] != "removed"]
    if output == "json":
        ui.emit_json({"class": class_name, "stackset": name, "accounts": out, "failed": len(failed),
                      "stackset_deleted": not left})
    else:
        if out:
            ui.emit(ui.table(["ACCOUNT", "REGION", "RESULT"],
                             [[r["account"], r["region"], r["result"] if not r["reason"] else f"{r['result']}: {r['reason']}"]
                              for r in out]))
        ui.emit(f"\nclass {class_name}: {len(out) - len(failed)} of {len(out)} stack instances removed"
                + ("; the StackSet is deleted" if not left else "; rerun `awslab class down --stackset` to retry")
                + "; each account keeps its primary DB's final snapshot")
    return EXIT_FAILED if failed or left else EXIT_OK
