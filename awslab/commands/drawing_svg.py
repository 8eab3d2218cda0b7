"""A Topology drawn as a self-contained SVG, and as an HTML page holding it with a legend and each
path's evidence and fix.

The SVG is laid out here, by hand and deterministically, because the lab's shape is fixed: a
column per AZ, inside it a row band per tier (the public subnet with the host, then the private
subnets with the DB instances, then the cache nodes), the security groups below the VPC, the
internet above it. A general layout engine would add a dependency (or Graphviz's binary) to
draw a grid. Paths leave the host to a lane at the left of its column, go down it to the gutter
above their target's row and across to the target, so no line crosses a node. Nothing in the SVG
or the page points outside itself (no script, font or URL): it opens offline and prints.
"""

from __future__ import annotations

import textwrap
from xml.sax.saxutils import escape

from awslab.commands.diagram_model import CACHE, INTERNET, Topology, diagram_id
from awslab.commands.drawing import (
    STYLE,
    cells_of,
    edge_lines,
    node_lines,
    style_of,
    subnet_label,
)

# --- SVG -----------------------------------------------------------------------------------------

FONT = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"
CHAR_W, BOLD_W = 6.5, 7.5      # px per character at 11 px and 12 px bold (DejaVu Sans, the widest of FONT)
LINE = 15
LANE_STEP = 6


def _w(text: str, bold: bool = False) -> float:
    return len(text) * (BOLD_W if bold else CHAR_W)


def _a(text: str) -> str:
    return escape(str(text), {'"': "&quot;"})


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def rect(self, x, y, w, h, cls: str, rx: int = 6) -> None:
        self.parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}"/>')

    def text(self, x, y, s: str, cls: str = "t") -> None:
        self.parts.append(f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}">{_a(s)}</text>')


def _box_size(lines: list[str]) -> tuple[float, float]:
    return max(200.0, max(_w(x, i == 0) for i, x in enumerate(lines)) + 20), 10.0 + LINE * len(lines)


def svg(t: Topology) -> str:
    """The stack as a self-contained SVG: a column per AZ, a row band per tier (see the module docstring)."""
    cols = list(t.azs) or [""]
    cells = cells_of(t)
    tiers = ("public", "db", "cache")
    size = {n.id: _box_size(node_lines(n)) for n in t.nodes}
    host_edges = [e for e in t.edges if e.source != INTERNET]
    lane = 12 + LANE_STEP * max(1, len(host_edges))
    # Each column is as wide as its widest node, subnet label or blocked-path label.
    col_w = []
    for az in cols:
        widths = [size[n.id][0] for tier in tiers for n in cells.get((az, tier), [])]
        widths += [_w(subnet_label(s)) + 16 for s in t.subnets if s.az == az] + [_w(az or "AZ unknown") + 16]
        col_w.append(lane + max(widths + [220]) + 20)
    wrap = {e: max(30, int((col_w[cols.index(t.node(e.target).az) if t.node(e.target) and t.node(e.target).az in cols
                                      else 0] - lane - 40) / CHAR_W)) for e in t.edges}
    labels = {e: [x for line in edge_lines(e) for x in textwrap.wrap(line, wrap[e])] for e in t.edges}
    # Rows: per tier as many as the fullest column has nodes; each row's gutter fits the paths into it.
    rows = [(tier, i) for tier in tiers for i in range(max([len(cells.get((az, tier), [])) for az in cols] + [0]))]
    row_of = {n.id: (tier, i) for (az, tier), ns in cells.items() for i, n in enumerate(ns)}
    col_of = {n.id: cols.index(az) for (az, tier), ns in cells.items() for n in ns}
    # Lanes from the inside out: the nearest row first, within a row the farthest column first; an
    # outer lane leaves the host higher and a farther target turns higher in its gutter, so no two
    # paths cross.
    host_edges = sorted((e for e in host_edges if e.target in row_of),
                        key=lambda e: (rows.index(row_of[e.target]) if row_of[e.target] in rows else 0, -col_of[e.target]))
    into = {r: [e for e in host_edges if row_of.get(e.target) == r] for r in rows}
    gutter = {r: 16 + (8 + 5 * len(into[r]) + LINE * max([len(labels[e]) for e in into[r]] + [0]) if into[r] else 0)
              for r in rows}
    height = {r: max([size[n.id][1] for (az, tier), ns in cells.items() for i, n in enumerate(ns) if (tier, i) == r] + [0])
              for r in rows}

    inet = [e for e in t.edges if e.source == INTERNET]
    y = 20.0
    title_y = y + 12
    inet_y = title_y + 16
    vpc_top = inet_y + 34 + 20 + LINE * max([len(labels[e]) for e in inet] + [1])
    band_top = {"public": vpc_top + 26 + 24}
    row_top: dict = {}
    cursor = band_top["public"] + 20
    for band, band_tiers in (("public", ("public",)), ("private", ("db", "cache"))):
        if band == "private":
            band_top["private"] = cursor + 12
            cursor = band_top["private"] + 20
        for r in rows:
            if r[0] in band_tiers:
                row_top[r] = cursor
                cursor += gutter[r] + height[r]
        band_top[band + "_end"] = cursor + 10
        cursor += 10
    vpc_bottom = cursor + 10 + 12

    col_x, x = [], 28.0
    for w in col_w:
        col_x.append(x)
        x += w + 14
    vpc_right = x - 14 + 12
    box: dict[str, tuple[float, float, float, float]] = {}
    for (az, tier), ns in cells.items():
        c = cols.index(az)
        for i, n in enumerate(ns):
            r = (tier, i)
            w, h = size[n.id]
            box[n.id] = (col_x[c] + lane + 8, row_top[r] + gutter[r], w, h)

    # Security groups below the VPC, wrapped to the drawing's width.
    sg_top = vpc_bottom + 34
    sg_boxes, gx, gy, row_h = [], 16.0, sg_top + 10, 0.0
    width = max(vpc_right + 16, 760.0)
    for g in t.groups:
        lines = [f"{g.name} · {g.id}", "on: " + (", ".join(g.members) or "nothing"), *g.rules]
        w, h = _box_size(lines)
        if gx + w > width - 16 and gx > 16:
            gx, gy, row_h = 16.0, gy + row_h + 12, 0.0
        sg_boxes.append((gx, gy, w, h, lines, g))
        gx += w + 12
        row_h = max(row_h, h)
        width = max(width, gx + 4)
    legend_y = (gy + row_h + 36) if t.groups else sg_top + 10
    total_h = legend_y + 28

    s = _Svg()
    pid = diagram_id("awslab", t.stack)
    for status, (color, _) in STYLE.items():
        s.parts.append(f'<marker id="{pid}-{status}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                       f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')
    defs = "<defs>" + "".join(s.parts) + "</defs>"
    s.parts = []
    s.text(16, title_y, f"awslab stack {t.stack} · {t.region}" + (f" · as discovered {t.when}" if t.when else ""), "h")
    # The internet, above the host.
    host = next((n for n in t.nodes if any(e.target == n.id for e in inet)), None)
    ix = 60.0 if host is None else max(box[host.id][0] + box[host.id][2] + 28,   # beside the host, clear of the VPC's name
                                       44 + _w(f"VPC {t.vpc} · {t.vpc_cidr}", True) if t.vpc else 0)
    s.parts.append(f'<g><title>the internet</title><ellipse class="inet" cx="{ix:.1f}" cy="{inet_y + 17:.1f}" rx="56" ry="17"/>'
                   f'<text class="b c" x="{ix:.1f}" y="{inet_y + 21:.1f}">Internet</text></g>')
    if t.vpc:
        s.rect(16, vpc_top, vpc_right - 16, vpc_bottom - vpc_top, "vpc", 10)
        s.text(28, vpc_top + 18, f"VPC {t.vpc} · {t.vpc_cidr}", "b")
    for c, az in enumerate(cols):
        s.rect(col_x[c], vpc_top + 26, col_w[c], vpc_bottom - 12 - vpc_top - 26, "az", 8)
        s.text(col_x[c] + lane + 8, vpc_top + 42, az or "AZ unknown", "b")
        for band, public in (("public", True), ("private", False)):
            subnets = [sn for sn in t.subnets if sn.az == az and sn.public == public]
            top, bottom = band_top[band], band_top[band + "_end"]
            s.rect(col_x[c] + 4, top, col_w[c] - 8, bottom - top, "pub" if public else "priv" if subnets else "none")
            label = "; ".join(subnet_label(sn) for sn in subnets) or f"no {band} subnet in {az or 'this AZ'}"
            s.text(col_x[c] + lane + 8, top + 14, label, "s")
    # Paths, under the nodes.
    for e in t.edges:
        color, dash = style_of(e)
        src, dst = t.node(e.source), t.node(e.target)
        if dst is None or dst.id not in box:
            continue
        tx, ty, tw, _ = box[dst.id]
        cls = {"PASS": "ok", "FAIL": "bad"}.get(e.status, "skip")
        words = (f"{src.name if src else 'the internet'} to {dst.name}, {e.port}: {e.verdict} ({e.check} {e.status}: "
                 f"{e.detail}){'; ' + e.seen if e.seen else ''}")
        body = [f"<title>{_a(words + (f'; fix: {e.hint}' if e.hint else ''))}</title>"]
        if e.source == INTERNET:   # down beside the host, then into its side: over no text but the subnet's
            d = f"M{ix:.1f},{inet_y + 34:.1f} V{ty + 22:.1f} H{tx + tw:.1f}"
            lx, ly = ix + 8, inet_y + 34 + 14
        elif src is not None and src.id in box:
            hx, hy, hw, hh = box[src.id]
            outer = len(host_edges) - 1 - host_edges.index(e)   # 0: the outermost lane
            r = row_of[dst.id]
            j = into[r].index(e)
            y0 = hy + hh * (outer + 1) / (len(host_edges) + 1)
            lane_x = col_x[cols.index(src.az) if src.az in cols else 0] + 10 + LANE_STEP * outer
            seg_y = row_top[r] + 8 + 5 * j
            entry = tx + 24 + 12 * [x.target for x in into[r]].index(dst.id)
            d = f"M{hx:.1f},{y0:.1f} H{lane_x:.1f} V{seg_y:.1f} H{entry:.1f} V{ty:.1f}"
            lx, ly = entry + 8, row_top[r] + 8 + 5 * len(into[r]) + 12
        else:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<path class="edge" d="{d}" stroke="{color}"{dash_attr} marker-end="url(#{pid}-{e.status if e.status in STYLE else "other"})"/>')
        for k, line in enumerate(labels[e]):
            body.append(f'<text class="t {cls}" x="{lx:.1f}" y="{ly + LINE * k:.1f}">{_a(line)}</text>')
        s.parts.append(f'<g class="path {cls}">' + "".join(body) + "</g>")
    for n in t.nodes:
        if n.id not in box:
            continue
        x0, y0, w, h = box[n.id]
        lines = node_lines(n)
        s.parts.append(f'<g><title>{_a(" | ".join(lines))}</title>')
        s.rect(x0, y0, w, h, n.kind, 12 if n.kind == CACHE else 6)
        for k, line in enumerate(lines):
            s.text(x0 + 10, y0 + 17 + LINE * k, line, "b" if k == 0 else "t")
        s.parts.append("</g>")
    if t.groups:
        s.text(16, sg_top, "Security groups", "b")
    for gx, gy, w, h, lines, g in sg_boxes:
        s.parts.append(f'<g><title>{_a(" | ".join(lines))}</title>')
        s.rect(gx, gy, w, h, "sg", 4)
        for k, line in enumerate(lines):
            s.text(gx + 10, gy + 17 + LINE * k, line, "b" if k == 0 else "t")
        s.parts.append("</g>")
    lx = 16.0
    for status, words in (("PASS", "allowed (verify PASS)"), ("FAIL", "BLOCKED (verify FAIL)"), ("other", "not checked")):
        color, dash = STYLE[status]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        s.parts.append(f'<path class="edge" d="M{lx:.1f},{legend_y:.1f} h40" stroke="{color}"{dash_attr}/>')
        s.text(lx + 48, legend_y + 4, words)
        lx += 48 + _w(words) + 24

    summary = "; ".join(f"{(t.node(e.source).name if t.node(e.source) else 'internet')} to "
                        f"{(t.node(e.target).name if t.node(e.target) else e.target)} {e.port} {e.verdict}" for e in t.edges)
    where = "; ".join(f"{n.name} ({n.role}) in {n.az}" for n in t.nodes)
    style = (f"<style>text{{font-family:{FONT};font-size:11px;fill:#1f2328}} .h{{font-size:14px;font-weight:bold}} "
             ".b{font-size:12px;font-weight:bold} .s{font-size:10.5px;fill:#444} .c{text-anchor:middle} "
             ".t,.b,.s{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round} "
             ".ok{fill:#1a7f37} .bad{fill:#cf222e;font-weight:bold} .skip{fill:#6e7781} "
             ".edge{fill:none;stroke-width:2} .vpc{fill:#fbfdfb;stroke:#2f6f2f;stroke-width:1.5} "
             ".az{fill:none;stroke:#888;stroke-dasharray:5 4} .pub{fill:#e6f4ea;stroke:#b7dcc1} "
             ".priv{fill:#eef2ff;stroke:#c7d2fe} .none{fill:none;stroke:#ccc;stroke-dasharray:2 3} "
             ".host{fill:#fff8e1;stroke:#b26a00} .db{fill:#e8f0fe;stroke:#1a56db} "
             ".standby{fill:#f3f4f6;stroke:#6b7280;stroke-dasharray:5 3} .cache{fill:#fdecec;stroke:#b42318} "
             ".sg{fill:#fff;stroke:#888} .inet{fill:#f0f0f0;stroke:#555}</style>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{total_h:.0f}" '
            f'viewBox="0 0 {width:.0f} {total_h:.0f}" role="img" aria-labelledby="{pid}-title {pid}-desc">'
            f'<title id="{pid}-title">awslab stack {_a(t.stack)} ({_a(t.region)})</title>'
            f'<desc id="{pid}-desc">{_a(where)}. Paths: {_a(summary or "none")}.</desc>'
            f'{style}{defs}<rect x="0" y="0" width="{width:.0f}" height="{total_h:.0f}" fill="#ffffff"/>'
            + "\n".join(s.parts) + "</svg>\n")


# --- HTML ----------------------------------------------------------------------------------------

def html(t: Topology) -> str:
    """A page that holds the SVG, a legend and each path with verify's evidence and fix."""
    rows = []
    for e in t.edges:
        src = t.node(e.source).name if t.node(e.source) else "Internet"
        dst = t.node(e.target).name if t.node(e.target) else e.target
        cls = {"PASS": "ok", "FAIL": "bad"}.get(e.status, "skip")
        rows.append(f'<tr class="{cls}"><td>{_a(src)} → {_a(dst)}</td><td>{_a(e.port)}</td><td><code>{_a(e.check)}</code></td>'
                    f'<td>{_a(e.verdict)}</td><td>{_a(e.detail)}</td><td>{f"<code>{_a(e.hint)}</code>" if e.hint else ""}</td>'
                    f'<td>{_a(e.seen) or "none in the flow log"}</td></tr>')

    def sample(status: str) -> str:
        color, dash = STYLE[status]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="44" height="10" aria-hidden="true">'
                f'<path d="M2,5 h40" stroke="{color}" stroke-width="2"{dash_attr}/></svg>')

    def swatch(cls: str) -> str:
        fill, stroke = {"host": ("#fff8e1", "#b26a00"), "db": ("#e8f0fe", "#1a56db"), "standby": ("#f3f4f6", "#6b7280"),
                        "cache": ("#fdecec", "#b42318"), "pub": ("#e6f4ea", "#b7dcc1"), "priv": ("#eef2ff", "#c7d2fe")}[cls]
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="22" height="14" aria-hidden="true">'
                f'<rect x="1" y="1" width="20" height="12" rx="3" fill="{fill}" stroke="{stroke}"/></svg>')

    legend = "".join(f"<li>{sample(s)} {w}</li>" for s, w in (
        ("PASS", "path allowed: verify's check passed (solid)"),
        ("FAIL", "path BLOCKED: verify's check failed; the label names what is missing (dashed, red)"),
        ("other", "path not checked: verify skipped it (dotted, grey)")))
    legend += "".join(f"<li>{swatch(c)} {w}</li>" for c, w in (
        ("host", "EC2 host"), ("db", "RDS instance: primary or read replica, with its endpoint"),
        ("standby", "Multi-AZ standby (no endpoint; in the secondary AZ RDS reports)"),
        ("cache", "ElastiCache node, with its current role"), ("pub", "public subnet"), ("priv", "private subnet")))
    title = f"awslab stack {t.stack} ({t.region})"
    return html_page(title, f"""
body {{ font-family: {FONT}; color: #1f2328; margin: 1.5rem; }}
figure {{ margin: 0; overflow-x: auto; }}
figure svg {{ max-width: 100%; height: auto; }}
ul.legend {{ list-style: none; padding: 0; columns: 2; }}
ul.legend li {{ margin: .2rem 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
tr.ok td:nth-child(4) {{ color: #1a7f37; }}
tr.bad td:nth-child(4) {{ color: #cf222e; font-weight: bold; }}
tr.skip td:nth-child(4) {{ color: #6e7781; }}
code {{ font-size: .85em; }}
@media print {{ body {{ margin: 0; }} figure {{ overflow: visible; }} }}
""", f"""<h1>{_a(title)}</h1>
<p>As discovered{_a(' ' + t.when) if t.when else ''}: VPC {_a(t.vpc or "(none)")} {_a(t.vpc_cidr)}, availability zones {_a(", ".join(t.azs) or "(none)")}.
Drawn by <code>awslab diagram</code>; each path is judged by <code>awslab verify</code>'s own check.</p>
<figure>
{svg(t).rstrip()}
<figcaption>The stack's AZs side by side, its subnets, the host, the DB instances, the cache nodes and the security groups.</figcaption>
</figure>
<h2>Legend</h2>
<ul class="legend">{legend}</ul>
<h2>Paths</h2>
<table>
<thead><tr><th>path</th><th>port</th><th>verify check</th><th>result</th><th>evidence</th><th>fix</th><th>what really happened</th></tr></thead>
<tbody>
{chr(10).join(rows) or '<tr><td colspan="6">no paths: the stack has no host</td></tr>'}
</tbody>
</table>""")


def html_page(title: str, style: str, body: str) -> str:
    """A whole self-contained HTML page (awslab's diagram, and its pages through commands/pages.py):
    ``title`` (text), ``style`` (CSS) and ``body`` (HTML)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_a(title)}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""
