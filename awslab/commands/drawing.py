"""A Topology (awslab/commands/diagram_model.py) as text for a layout engine: Mermaid (GitHub draws
it) and Graphviz DOT (`dot -Tpng` where Graphviz is installed); and what every format says of a
node and a path (drawing_svg.py draws the SVG and the page from the same words).

A blocked path is dashed, red and labelled BLOCKED with verify's words for what is missing, so
colour is never the only sign.
"""

from __future__ import annotations

from awslab.commands.diagram_model import (
    CACHE,
    DB,
    HOST,
    INTERNET,
    STANDBY,
    Edge,
    Node,
    Topology,
    diagram_id,
)

# --- text shared by every format -----------------------------------------------------------------


def node_lines(n: Node) -> list[str]:
    lines = [n.name, n.role + (f" · {n.state}" if n.state else "")]
    if n.endpoint:
        lines.append(n.endpoint)
    lines += list(n.extra)
    if n.groups:
        lines.append("sg: " + ", ".join(n.groups))
    return lines


def edge_lines(e: Edge) -> list[str]:
    """The label: port and verdict; for a blocked path, each missing piece in verify's words; then
    the last real connection on it, when the local AWS's flow log has one."""
    head = f"{e.port}: {e.verdict}"
    return [head] + ([p for p in e.detail.split("; ") if p] if e.blocked else []) + ([e.seen] if e.seen else [])


def tier_of(n: Node) -> str:
    return "public" if n.public else ("cache" if n.kind == CACHE else "db")


def subnet_label(s) -> str:
    return f"{'public' if s.public else 'private'} {s.id} · {s.cidr}" + (f" · {s.name}" if s.name else "")


def cells_of(t: Topology) -> dict[tuple[str, str], list[Node]]:
    """(AZ, tier) -> its nodes, in the Topology's order (primary first)."""
    cols = list(t.azs) or [""]
    cells: dict[tuple[str, str], list[Node]] = {}
    for n in t.nodes:
        cells.setdefault((n.az if n.az in cols else cols[0], tier_of(n)), []).append(n)
    return cells


def bands(t: Topology, az: str, cells: dict) -> list[tuple[str, list[str], bool, list[Node]]]:
    """An AZ's subnet bands, public then private: (id, the subnets' labels, public, the nodes in it)."""
    out = []
    for public in (True, False):
        nodes = [n for tier in (("public",) if public else ("db", "cache")) for n in cells.get((az, tier), [])]
        subnets = [s for s in t.subnets if s.az == az and s.public == public]
        if subnets or nodes:
            labels = [subnet_label(s) for s in subnets] or [("public" if public else "private") + " (no subnet found)"]
            out.append((diagram_id("sn", subnets[0].id if subnets else f"{az}_{public}"), labels, public, nodes))
    return out


# --- Mermaid -------------------------------------------------------------------------------------

def _mm(text: str) -> str:
    """Text inside a Mermaid "..." label: its entity codes for what would end or confuse it."""
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("|", "#124;"))


def _mm_node(n: Node) -> str:
    label = "<br/>".join(_mm(x) for x in node_lines(n))
    shape = {DB: '[("{}")]', STANDBY: '[("{}")]', CACHE: '(["{}"])'}.get(n.kind, '["{}"]')
    return n.id + shape.format(label)


STYLE = {"PASS": ("#1a7f37", ""), "FAIL": ("#cf222e", "6 4"), "other": ("#6e7781", "2 4")}


def style_of(e: Edge) -> tuple[str, str]:
    return STYLE.get(e.status, STYLE["other"])


def mermaid(t: Topology) -> str:
    out = [f"%% awslab diagram: stack {t.stack} ({t.region}) as discovered{' ' + t.when if t.when else ''}",
           "flowchart TB", f'  {INTERNET}(("Internet"))']
    cells = cells_of(t)
    ind = "  "
    if t.vpc:
        out.append(f'  subgraph {diagram_id("vpc", t.vpc)}["{_mm(f"VPC {t.vpc} · {t.vpc_cidr}")}"]')
        out.append("    direction LR")
        ind = "    "
    for az in (t.azs or ("",)):
        out.append(f'{ind}subgraph {diagram_id("az", az or "none")}["{_mm(az or "AZ unknown")}"]')
        out.append(f"{ind}  direction TB")
        for sid, labels, public, nodes in bands(t, az, cells):
            out.append(f'{ind}  subgraph {sid}["{_mm("; ".join(labels))}"]')
            out += [f"{ind}    {_mm_node(n)}" for n in nodes]
            out.append(f"{ind}  end")
        out.append(f"{ind}end")
    if t.vpc:
        out.append("  end")
    if t.groups:
        out.append('  subgraph security_groups["Security groups"]')
        for g in t.groups:
            lines = [f"{g.name} · {g.id}", "on: " + (", ".join(g.members) or "nothing"), *g.rules]
            out.append(f'    {diagram_id("sg", g.id)}["{"<br/>".join(_mm(x) for x in lines)}"]')
        out.append("  end")
    for e in t.edges:
        arrow = {"PASS": "==>", "FAIL": "-.->"}.get(e.status, "-.->")
        out.append(f'  {e.source} {arrow}|"{"<br/>".join(_mm(x) for x in edge_lines(e))}"| {e.target}')
    for i, e in enumerate(t.edges):
        color, dash = style_of(e)
        out.append(f"  linkStyle {i} stroke:{color},stroke-width:2px,color:{color}" + (f",stroke-dasharray:{dash}" if dash else ""))
    for kind, fill, stroke in ((HOST, "#fff8e1", "#b26a00"), (DB, "#e8f0fe", "#1a56db"), (STANDBY, "#f3f4f6", "#6b7280"),
                               (CACHE, "#fdecec", "#b42318")):
        members = [n.id for n in t.nodes if n.kind == kind]
        if members:
            out.append(f"  classDef {kind} fill:{fill},stroke:{stroke},color:#111")
            out.append(f"  class {','.join(members)} {kind}")
    return "\n".join(out) + "\n"


# --- Graphviz DOT --------------------------------------------------------------------------------

def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(t: Topology) -> str:
    out = ["digraph awslab {",
           f"  graph [label={_dq(f'awslab stack {t.stack} ({t.region}) as discovered {t.when}'.strip())}, labelloc=t, "
           'fontname="Helvetica", fontsize=12, compound=true, newrank=true];',
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];',
           f'  {INTERNET} [label="Internet", shape=ellipse, fillcolor="#f0f0f0"];']
    fill = {HOST: "#fff8e1", DB: "#e8f0fe", STANDBY: "#f3f4f6", CACHE: "#fdecec"}
    shape = {DB: "cylinder", STANDBY: "cylinder", CACHE: "box3d"}
    cells = cells_of(t)
    ind = "  "
    if t.vpc:
        out += [f"  subgraph cluster_{diagram_id('vpc', t.vpc)} {{", f"    label={_dq(f'VPC {t.vpc} · {t.vpc_cidr}')};",
                '    style="rounded"; color="#2f6f2f";']
        ind = "    "
    for az in (t.azs or ("",)):
        out += [f"{ind}subgraph cluster_{diagram_id('az', az or 'none')} {{", f"{ind}  label={_dq(az or 'AZ unknown')};",
                f'{ind}  style="dashed"; color="#888888";']
        for sid, labels, public, nodes in bands(t, az, cells):
            out += [f"{ind}  subgraph cluster_{sid} {{", f"{ind}    label={_dq(chr(10).join(labels))};",
                    f'{ind}    style="filled"; fillcolor="{"#e6f4ea" if public else "#eef2ff"}"; color="#bbbbbb";']
            for n in nodes:
                style = ', style="rounded,filled,dashed"' if n.kind == STANDBY else ""
                out.append(f"{ind}    {n.id} [label={_dq(chr(10).join(node_lines(n)))}, shape={shape.get(n.kind, 'box')}, "
                           f'fillcolor="{fill[n.kind]}"{style}];')
            if not nodes:   # Graphviz drops an empty cluster: keep the subnet visible
                out.append(f'{ind}    {sid}_empty [label="(empty)", shape=plaintext, style=""];')
            out.append(f"{ind}  }}")
        out.append(f"{ind}}}")
    if t.vpc:
        out.append("  }")
    if t.groups:
        out += ["  subgraph cluster_security_groups {", '    label="Security groups"; style="rounded"; color="#888888";']
        for g in t.groups:
            lines = [f"{g.name} · {g.id}", "on: " + (", ".join(g.members) or "nothing"), *g.rules]
            out.append(f"    {diagram_id('sg', g.id)} [label={_dq(chr(10).join(lines))}, shape=note];")
        out.append("  }")
    for e in t.edges:
        color, dash = style_of(e)
        style = "dashed" if e.blocked else ("bold" if e.allowed else "dotted")
        out.append(f"  {e.source} -> {e.target} [label={_dq(chr(10).join(edge_lines(e)))}, color={_dq(color)}, "
                   f"fontcolor={_dq(color)}, style={style}, penwidth=2];")
    out.append("}")
    return "\n".join(out) + "\n"
