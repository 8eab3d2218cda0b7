"""`awslab report`'s page, from a plain ``Report`` value (commands/report.py gathers it): the
diagram (drawing_svg.svg), verify's results by check group with their evidence and fix, what the
stack costs now, its snapshots and their monthly cost, and the figures `drill --report` and `demo
caching --report` kept, as charts (commands/charts.py). Pure: tested on hand-made Reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from awslab.commands import charts
from awslab.commands.diagram_model import Topology
from awslab.commands.drawing_svg import svg
from awslab.commands.pages import esc, results_table, shell, status
from awslab.spec.pricing import HOURS_PER_MONTH, format_money
from awslab.verify.checks import CHECK_PREFIXES


@dataclass(frozen=True)
class Report:
    stack: str
    region: str
    target: str
    lab: str
    when: str
    topology: Topology | None
    results: list[dict]                         # verify's Result.as_dict()s
    cost: list[tuple]                           # (what, its id, USD per hour now in the region (None: not priced)[, what is not])
    snapshots: list[dict]                       # service, id, type, region, size_gib, status, monthly (None: not priced)
    figures: dict[str, dict] = field(default_factory=dict)   # commands/figures.py's records by name
    stale: tuple[str, ...] = ()                 # figures left out: measured on an earlier stack of this name


def _counts(results: list[dict]) -> dict[str, int]:
    return {s: sum(1 for r in results if r["status"] == s) for s in ("PASS", "FAIL", "WARN", "SKIP")}


def _card(label: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><b class="{cls}">{esc(value)}</b>{esc(label)}</div>'


def _verify(results: list[dict]) -> str:
    out = []
    for prefix in CHECK_PREFIXES:
        mine = [r for r in results if r["id"].startswith(prefix)]
        if not mine:
            continue
        c = _counts(mine)
        words = ", ".join(f"{n} {s}" for s, n in c.items() if n)
        out.append(f'<h3 id="verify-{prefix[:-1]}">{esc(prefix[:-1])} <span class="note">({esc(words)})</span>'
                   f'{" " + status("FAIL") if c["FAIL"] else ""}</h3>' + results_table(mine))
    return "".join(out) or "<p>verify ran no checks.</p>"


def _money(amount: float | None, factor: float = 1) -> str:
    return "not priced" if amount is None else format_money(amount * factor)


def _partial(cost: list[tuple]) -> bool:
    return any(c[2] is None or (len(c) > 3 and c[3]) for c in cost)


def _cost(cost: list[tuple], region: str) -> str:
    total = sum(c[2] or 0.0 for c in cost)
    partial = _partial(cost)
    rows = "".join(f'<tr><td>{esc(what)}{esc(f" (not priced: {missing[0]})" if missing and missing[0] else "")}</td>'
                   f'<td><code>{esc(rid)}</code></td><td class="num">{_money(h)}</td>'
                   f'<td class="num">{_money(h, HOURS_PER_MONTH)}</td></tr>' for what, rid, h, *missing in cost if h != 0)
    return (f"<table><thead><tr><th>resource</th><th>id</th><th class=num>per hour</th><th class=num>per month (730 h)</th>"
            f"</tr></thead><tbody>{rows}<tr><th colspan=2>the stack now{' (what is priced)' if partial else ''}</th>"
            f"<th class=num>{format_money(total)}</th><th class=num>{format_money(total * HOURS_PER_MONTH)}</th></tr></tbody>"
            f'</table><p class="note">Priced from what exists now, at {esc(region)} on-demand list prices (awslab/spec/'
            "prices.json: each figure with its source and date; a size that no source gives for the region is not "
            "priced): an estimate, not a bill; data transfer and backup storage beyond the DB's size are not in it. On "
            "the local AWS it is what the same stack would cost on AWS.</p>")


def _size(gib) -> str:
    return f"{gib:g} GiB" if gib else "-"


def _snapshots(snaps: list[dict]) -> str:
    if not snaps:
        return "<p>No snapshots: <code>awslab snapshot</code> takes one of the DB and the cache.</p>"
    rows = "".join(f'<tr><td>{esc(s["service"])}</td><td><code>{esc(s["id"])}</code></td><td>{esc(s["type"])}</td>'
                   f'<td>{esc(s["region"])}</td><td class="num">{_size(s.get("size_gib"))}</td>'
                   f'<td>{esc(s["status"])}</td><td class="num">'
                   f'{"free (automated)" if s["type"] == "automated" else _money(s["monthly"])}</td></tr>' for s in snaps)
    paid = sum(s["monthly"] or 0.0 for s in snaps if s["type"] != "automated")
    unpriced = sum(1 for s in snaps if s["type"] != "automated" and s["monthly"] is None)
    return (f"<table><thead><tr><th>service</th><th>snapshot</th><th>type</th><th>region</th><th class=num>size</th>"
            f"<th>status</th><th class=num>per month</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p>{len(snaps)} snapshots; the manual and final ones cost about <b>{format_money(paid)}/month</b>"
            + (f" ({unpriced} not priced in their region)" if unpriced else "")
            + " until deleted (automated backups up to the DB's size are free).</p>")


def _drill(d: dict) -> str:
    r = d["result"]
    m, rep, c, k = r.get("multi_az") or {}, r.get("read_replica") or {}, r.get("cache_replica") or {}, r.get("commit") or {}
    cards = "".join([
        _card("Multi-AZ failover downtime", f"{m.get('downtime_s', 0):.2f} s"),
        _card("acknowledged DB writes lost", f"{m.get('acknowledged_writes_lost', 0)} of {m.get('writes_acknowledged', 0)}",
              "pass" if not m.get("acknowledged_writes_lost") else "fail"),
        _card("replica lag p50 / p95", f"{rep.get('lag_ms_p50', 0):.1f} / {rep.get('lag_ms_p95', 0):.1f} ms"),
        _card("cache failover downtime", f"{c.get('downtime_s', 0):.2f} s"),
        _card("acknowledged cache writes lost", f"{c.get('acknowledged_writes_lost', 0)} of {c.get('writes_acknowledged', 0)}")])
    parts = [f'<p class="note">Measured by <code>awslab drill --report</code> at {esc(d.get("measured_at", "?"))}'
             f'{esc(" on " + r["profile"]["words"]) if isinstance(r.get("profile"), dict) and r["profile"].get("words") else ""}.</p>',
             f'<div class="cards">{cards}</div>']
    if m.get("timeline"):
        parts.append("<figure>" + charts.timeline("chart-db-failover", m["timeline"],
                                                  "DB writes through the primary endpoint during the Multi-AZ failover")
                     + "</figure>")
    if c.get("timeline"):
        parts.append("<figure>" + charts.timeline("chart-cache-failover", c["timeline"],
                                                  "Cache writes through the primary endpoint during the cache failover")
                     + "</figure>")
    lag = [(f"replay lag {p}", rep[f"lag_ms_{p}"], "replay lag") for p in ("p50", "p95", "max") if f"lag_ms_{p}" in rep]
    lag += [(f"a committed batch visible, {p}", rep[f"visible_after_ms_{p}"], "visible after")
            for p in ("p50", "max") if f"visible_after_ms_{p}" in rep]
    if lag:
        parts.append("<figure>" + charts.bars(
            "chart-replica-lag", "Read replica: lag under the write load", lag, "ms",
            f"a read right after a write missed it {rep.get('read_your_write_misses', 0)} times in "
            f"{rep.get('read_your_write_tries', 0)}; {rep.get('samples', 0)} lag samples") + "</figure>")
    commit = [(f"{label} {p}", k[f"{key}_ms_{p}"], label) for key, label in (("multi_az", "Multi-AZ commit"),
                                                                          ("single_az", "Single-AZ alike"))
              for p in ("p50", "p95") if f"{key}_ms_{p}" in k]
    if commit:
        parts.append("<figure>" + charts.bars("chart-commit", "What a Multi-AZ commit costs", commit, "ms",
                                              "the difference is the synchronous round trip to the standby's AZ")
                     + "</figure>")
    return "".join(parts)


def _caching(d: dict) -> str:
    r = d["result"]
    strategies = r.get("strategies") or []
    parts = [f'<p class="note">Measured by <code>awslab demo caching --report</code> at {esc(d.get("measured_at", "?"))}.</p>']
    latency = [(f"{s['strategy']} {p}", s[f"{p}_ms"], p) for s in strategies for p in ("p50", "p95", "p99")]
    parts.append("<figure>" + charts.bars("chart-cache-latency", "Read latency by caching strategy", latency, "ms") + "</figure>")
    cached = [s for s in strategies if s["strategy"] != "database-only"]
    parts.append("<figure>" + charts.bars("chart-cache-hits", "Hit ratio", [(s["strategy"], round(100 * s["hit_ratio"], 1), "hits")
                                                                          for s in cached], "%") + "</figure>")
    parts.append("<figure>" + charts.bars(
        "chart-cache-db", "Database reads per second", [(s["strategy"], s["db_reads_per_s"], "db") for s in strategies],
        "/s", "stale reads: " + ", ".join(f"{s['strategy']} {s['stale_reads']}" for s in strategies)) + "</figure>")
    st = r.get("stampede") or {}
    if st:
        parts.append("<figure>" + charts.bars(
            "chart-stampede", f"A hot key's stampede under {st.get('unprotected', {}).get('readers', '?')} readers",
            [("unprotected", st["unprotected"]["db_queries"], "a"), ("single-flight", st["single_flight"]["db_queries"], "b")],
            "database queries") + "</figure>")
    return "".join(parts)


def page(rep: Report) -> str:
    """The report as one self-contained HTML page (pages.py: no script, font or URL)."""
    c = _counts(rep.results)
    hourly = sum(c[2] or 0.0 for c in rep.cost)
    paid = sum(s["monthly"] or 0.0 for s in rep.snapshots if s["type"] != "automated")
    cards = "".join([
        _card("verify", f"{c['PASS']} PASS · {c['FAIL']} FAIL", "fail" if c["FAIL"] else "pass"),
        _card("cost now (on AWS)", f"{format_money(hourly)}/hour" + (" + not priced" if _partial(rep.cost) else "")),
        _card("snapshots", f"{len(rep.snapshots)} · {format_money(paid)}/month")])
    drill, caching = rep.figures.get("drill"), rep.figures.get("caching")
    if drill:
        cards += _card("Multi-AZ failover downtime", f"{drill['result'].get('multi_az', {}).get('downtime_s', 0):.2f} s")
    sections = [("diagram", "The stack drawn"), ("verify", "Verify"), ("cost", "Cost now"), ("snapshots", "Snapshots"),
                ("drill", "Failover drill"), ("caching", "Caching demo")]
    nav = "<nav>" + "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name in sections) + "</nav>"
    diagram = (f'<figure>{svg(rep.topology).rstrip()}<figcaption class="note">Each path is drawn as verify judges it: '
               "allowed (solid, green) or BLOCKED (dashed, red, labelled with what is missing).</figcaption></figure>"
               if rep.topology is not None else "<p>Nothing to draw.</p>")
    stale = (f'<p class="note">Left out: the {esc(", ".join(rep.stale))} figures of an earlier stack of this name '
             "(another VPC).</p>" if rep.stale else "")
    body = f"""<h1>awslab report: stack {esc(rep.stack)}</h1>
<p class="note">Lab {esc(rep.lab)} · {esc(rep.target)} · {esc(rep.region)} · as discovered {esc(rep.when)}.
Made by <code>awslab report</code> from what exists now; it needs no network to open.</p>
<div class="cards">{cards}</div>
{nav}
<h2 id="diagram">The stack drawn</h2>
{diagram}
<h2 id="verify">Verify</h2>
<p>{", ".join(f"{n} {status(s)}" for s, n in c.items())}: <code>awslab verify</code>'s checks, each with its evidence and,
for a FAIL, the command that fixes it.</p>
{_verify(rep.results)}
<h2 id="cost">Cost now</h2>
{_cost(rep.cost, rep.region)}
<h2 id="snapshots">Snapshots</h2>
{_snapshots(rep.snapshots)}
<h2 id="drill">Failover drill</h2>
{_drill(drill) if drill else '<p>Not run yet: <code>awslab drill --report</code> measures a Multi-AZ failover, the replica '
                                "lag and a cache failover, and keeps the figures for this page.</p>"}
<h2 id="caching">Caching demo</h2>
{_caching(caching) if caching else '<p>Not run yet: <code>awslab demo caching --report</code> measures the caching strategies '
                                   "and keeps the figures for this page.</p>"}
{stale}"""
    return shell(f"awslab report: {rep.stack} ({rep.region})", body)
