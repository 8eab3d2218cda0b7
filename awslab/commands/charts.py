"""The report's charts as small inline SVGs, drawn here from the figures `drill` and `demo caching`
keep (commands/figures.py): a write load's timeline with the failover and the outage marked, and
labelled horizontal bars.

Drawn by hand for the reason drawing_svg.py gives for the diagram: two chart shapes need no
plotting library (and none would be self-contained without inlining its script). Every figure is
written as text beside its mark, the outage is hatched and named, not only tinted, so a chart
reads in grey print and to a screen reader (a <title> and <desc> say what it shows).
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

FONT = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"
CHAR_W = 6.2          # px per character at 11 px
SERIES = ("#1a56db", "#b26a00", "#6e40c9", "#1a7f37", "#b42318")
ACKED, FAILED = "#1a56db", "#cf222e"


def _a(text) -> str:
    return escape(str(text), {'"': "&quot;"})


def _frame(cid: str, width: float, height: float, title: str, desc: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="{cid}-t {cid}-d">'
            f'<title id="{cid}-t">{_a(title)}</title><desc id="{cid}-d">{_a(desc)}</desc>'
            f'<style>#{cid} text{{font-family:{FONT};font-size:11px;fill:#1f2328}} #{cid} .h{{font-size:13px;'
            f'font-weight:bold}} #{cid} .m{{fill:#57606a}}</style><g id="{cid}">'
            f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#fff"/>'
            f'<text class="h" x="8" y="18">{_a(title)}</text>' + "".join(body) + "</g></svg>")


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(top))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= top * (1 - 1e-9))


def timeline(cid: str, tl: dict, title: str, what: str = "writes") -> str:
    """Acknowledged writes per time bin (bars above the axis), failed ones (red, below it), the
    moment the failover was asked for (a dashed line) and the outage (a hatched band, its length
    written in it). Seconds on the x axis from the failover's request."""
    width, height, left, right, top, bottom = 720.0, 240.0, 52.0, 16.0, 40.0, 52.0
    acked, errors, bin_s = tl.get("acked") or [], tl.get("errors") or [], float(tl.get("bin_s") or 0.05)
    if not acked:
        return _frame(cid, width, 60, title, "no writes were recorded", ['<text x="8" y="42">no writes were recorded</text>'])
    start = float(tl.get("start_s") or 0.0)
    end = start + bin_s * len(acked)
    lo, hi = min(start, 0.0), max(end, 0.0)
    plot_w, plot_h = width - left - right, height - top - bottom
    err_h = 24.0 if any(errors) else 0.0
    axis_y = top + plot_h - err_h
    ymax = _nice(max(acked))
    emax = max(errors + [1])
    x = lambda s: left + (s - lo) / ((hi - lo) or 1) * plot_w  # noqa: E731
    y = lambda v: axis_y - v / ymax * (plot_h - err_h)  # noqa: E731
    body = []
    down_from, down_to = tl.get("down_from_s"), tl.get("down_to_s")
    if down_from is not None and down_to is not None:
        x0, x1 = x(down_from), max(x(down_to), x(down_from) + 2)
        body.append(f'<pattern id="{cid}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
                    f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde7e9"/>'
                    f'<line x1="0" y1="0" x2="0" y2="6" stroke="{FAILED}" stroke-width="1.5"/></pattern>')
        body.append(f'<rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" height="{plot_h:.1f}" '
                    f'fill="url(#{cid}-hatch)" stroke="{FAILED}" stroke-width="1"><title>downtime</title></rect>')
        # In the top margin, after the failover's own label: never over a bar.
        label = f"downtime {down_to - down_from:.2f} s (hatched): no {what} acknowledged"
        lx = min(x(0) + 4 + len("failover asked (0 s)") * CHAR_W + 16, width - right - len(label) * CHAR_W)
        body.append(f'<text x="{lx:.1f}" y="{top - 8:.1f}" style="fill:{FAILED};font-weight:bold">{_a(label)}</text>')
    for i, n in enumerate(acked):
        if n:
            bx = x(start + i * bin_s)
            body.append(f'<rect x="{bx:.1f}" y="{y(n):.1f}" width="{max(1.0, plot_w * bin_s / ((hi - lo) or 1) - 0.6):.1f}" '
                        f'height="{axis_y - y(n):.1f}" fill="{ACKED}"/>')
    for i, n in enumerate(errors):
        if n:
            bx = x(start + i * bin_s)
            body.append(f'<rect x="{bx:.1f}" y="{axis_y:.1f}" width="{max(1.5, plot_w * bin_s / ((hi - lo) or 1) - 0.6):.1f}" '
                        f'height="{err_h * n / emax:.1f}" fill="{FAILED}"/>')
    body.append(f'<line x1="{left:.1f}" y1="{axis_y:.1f}" x2="{width - right:.1f}" y2="{axis_y:.1f}" stroke="#57606a"/>')
    body.append(f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + plot_h:.1f}" stroke="#57606a"/>')
    for v in (0, ymax / 2, ymax):
        body.append(f'<text class="m" x="{left - 4:.1f}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    step = _nice((hi - lo) / 8)
    s = (int(lo / step) - (1 if lo < 0 else 0)) * step
    while s <= hi + 1e-9:
        if s >= lo - 1e-9:
            body.append(f'<line x1="{x(s):.1f}" y1="{top + plot_h:.1f}" x2="{x(s):.1f}" y2="{top + plot_h + 4:.1f}" stroke="#57606a"/>'
                        f'<text class="m" x="{x(s):.1f}" y="{top + plot_h + 16:.1f}" text-anchor="middle">{s:+.2g} s</text>')
        s += step
    body.append(f'<line x1="{x(0):.1f}" y1="{top - 6:.1f}" x2="{x(0):.1f}" y2="{top + plot_h:.1f}" stroke="#1f2328" '
                f'stroke-width="1.5" stroke-dasharray="4 3"/>'
                f'<text x="{x(0) + 4:.1f}" y="{top - 8:.1f}">failover asked (0 s)</text>')
    body.append(f'<text class="m" x="{left:.1f}" y="{height - 10:.1f}">{_a(what)} acknowledged per {bin_s * 1000:g} ms (blue, '
                f'above the axis){"; failed attempts (red, below)" if err_h else ""}; seconds from the failover request</text>')
    total, failed = sum(acked), sum(errors)
    desc = (f"{total} {what} acknowledged from {start:+.2f} s to {end:+.2f} s around the failover request at 0 s"
            + (f"; {failed} failed attempts" if failed else "")
            + (f"; no {what} acknowledged from {down_from:+.2f} s to {down_to:+.2f} s ({down_to - down_from:.2f} s of downtime)"
               if down_from is not None and down_to is not None else "; no outage seen"))
    return _frame(cid, width, height, title, desc, body)


def bars(cid: str, title: str, rows: list[tuple[str, float, str]], unit: str, note: str = "") -> str:
    """Horizontal bars, one per (label, value, series), each value written at its bar's end; a
    series (the second word of a legend, e.g. p50 / p95) takes a colour and keeps its name in the label."""
    if not rows:
        return _frame(cid, 720, 60, title, "nothing measured", ['<text x="8" y="42">nothing measured</text>'])
    label_w = min(300.0, max(len(r[0]) for r in rows) * CHAR_W + 16)
    width, bar_h, gap, top = 720.0, 16.0, 6.0, 32.0
    value_w = 110.0
    plot_w = width - label_w - value_w - 16
    vmax = _nice(max(r[1] for r in rows))
    series = list(dict.fromkeys(r[2] for r in rows))
    body, yy = [], top
    for label, value, s in rows:
        w = max(1.0, value / vmax * plot_w) if value else 0.0
        color = SERIES[series.index(s) % len(SERIES)]
        body.append(f'<text x="{label_w - 8:.1f}" y="{yy + 12:.1f}" text-anchor="end">{_a(label)}</text>'
                    f'<rect x="{label_w:.1f}" y="{yy:.1f}" width="{w:.1f}" height="{bar_h:.1f}" fill="{color}"/>'
                    f'<text x="{label_w + w + 6:.1f}" y="{yy + 12:.1f}">{_a(_fmt(value))} {_a(unit)}</text>')
        yy += bar_h + gap
    body.append(f'<line x1="{label_w:.1f}" y1="{top - 4:.1f}" x2="{label_w:.1f}" y2="{yy:.1f}" stroke="#57606a"/>')
    if note:
        body.append(f'<text class="m" x="8" y="{yy + 14:.1f}">{_a(note)}</text>')
        yy += 14
    desc = "; ".join(f"{label}: {_fmt(value)} {unit}" for label, value, _ in rows)
    return _frame(cid, width, yy + 12, title, desc, body)


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"
