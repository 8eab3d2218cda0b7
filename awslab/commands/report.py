"""`awslab report`: one self-contained page for the stack as it is now.

One discovery feeds everything: verify's World and results (lifecycle.verified, the live checks
included), the diagram drawn from that World (diagram_model.build), the cost now priced per
resource in the stack's region (pricing.found_lines: each kind's handler), the snapshots (recovery.find_snapshots); then the figures
`drill --report` and `demo caching --report` kept (commands/figures.py). report_page.py lays it
out; only this module reads AWS.
"""

from __future__ import annotations

from awslab import ui
from awslab.commands import figures
from awslab.commands._common import discovered, snapshot_cost
from awslab.commands.diagram_model import build, now_text
from awslab.commands.flows import observed
from awslab.commands.pages import check_out_path, write_page
from awslab.commands.lifecycle import stack_lab, verified
from awslab.commands.recovery import find_snapshots
from awslab.commands.report_page import Report, page
from awslab.engine.context import Context
from awslab.errors import EXIT_OK
from awslab.spec import pricing

MAX_BYTES = 1 << 20     # the page's budget: it is mailed, and attached to a learning platform


def cost_lines(found: dict, region: str, kinds) -> list[tuple]:
    """Each resource's hourly cost now in ``region`` (None: nothing of it priced there; what is not
    priced named after), by the one price function `stacks` uses (pricing.found_lines), so the
    lines add up to the stack's total."""
    out = []
    for key, lines in sorted(pricing.found_lines(found, region, kinds).items()):
        hourly, complete = pricing.total_hourly(lines)
        if hourly or not complete:
            missing = ", ".join(pricing.not_priced(lines))
            out.append((f"{found[key].kind} ({key})", found[key].id,
                        None if all(l.hourly is None for l in lines) else hourly, missing))
    return out


def snapshot_rows(snaps, region: str) -> list[dict]:
    rows = []
    for s in sorted(snaps, key=lambda s: (s.get("region") or "", s.kind, s.id)):
        monthly, priced = pricing.monthly(snapshot_cost([s], region))
        rows.append({"service": s.kind.split("-")[0], "id": s.id, "type": "final" if "-final-" in s.id else (s.get("type") or "manual"),
                     "region": s.get("region") or "", "size_gib": s.get("size_gib"), "status": s.state,
                     "monthly": monthly if priced else None})
    return rows


def gather_report(ctx: Context, stack: str, progress: ui.Progress) -> Report:
    run, found = discovered(ctx, stack, progress, "report")
    lab = stack_lab(ctx)
    world, results = verified(run, found, lab)
    when = now_text()
    kept, stale = figures.load(stack, found)
    return Report(stack, ctx.region, ctx.target, lab.name, when, build(world, lab, when, observed(ctx, found)), [r.as_dict() for r in results],
                  cost_lines(found, ctx.region, run.kinds), snapshot_rows(find_snapshots(run, found), ctx.region), kept,
                  tuple(stale))


def report(ctx: Context, stack: str, out: str, progress: ui.Progress) -> int:
    """Write the stack's report page to ``out``."""
    path = check_out_path(out)
    text = page(gather_report(ctx, stack, progress))
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:   # never seen: a bound kept by the figures' own (bins, samples as percentiles)
        progress.line(f"warning: the page is {size / 1024:.0f} KiB, over its 1 MiB budget")
    write_page(path, text)
    progress.line(f"wrote the report of stack {stack} to {out} ({size / 1024:.0f} KiB): open it in a browser")
    return EXIT_OK
