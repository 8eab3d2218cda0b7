"""`awslab diagram`: the stack as it exists now, drawn.

Discovery and verify's ``gather`` read the stack as `status` and `verify` do; diagram_model.build
makes a Topology of it with verify's own verdict on each path; drawing.py renders it as Mermaid or
Graphviz DOT, drawing_svg.py as a self-contained SVG or HTML page. Only this module reads AWS, so
the drawing is tested on hand-built Topologies.
"""

from __future__ import annotations

from pathlib import Path

from awslab import ui
from awslab.commands import drawing, drawing_svg
from awslab.commands._common import discovered
from awslab.commands.diagram_model import Topology, build, now_text
from awslab.commands.flows import observed
from awslab.commands.lifecycle import stack_lab
from awslab.commands.pages import check_out_path, write_page
from awslab.engine.context import Context
from awslab.errors import EXIT_OK, UsageError
from awslab.verify import checks

RENDERERS = {"mermaid": drawing.mermaid, "dot": drawing.dot, "svg": drawing_svg.svg, "html": drawing_svg.html}
FORMATS = tuple(RENDERERS)
EXTENSIONS = {".mmd": "mermaid", ".mermaid": "mermaid", ".md": "mermaid", ".dot": "dot", ".gv": "dot",
              ".svg": "svg", ".html": "html", ".htm": "html"}


def render(t: Topology, fmt: str) -> str:
    return RENDERERS[fmt](t)


def format_for(fmt: str | None, out: str | None) -> str:
    """--format, else the -o file's extension, else mermaid; anything else is bad input (exit 2), and
    so is an -o file that cannot be written."""
    if out is not None:
        check_out_path(out)
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise UsageError(f"unknown diagram format '{fmt}'", f"use one of: {', '.join(FORMATS)}")
        return fmt.lower()
    if out is None:
        return "mermaid"
    ext = Path(out).suffix.lower()
    if ext not in EXTENSIONS:
        raise UsageError(f"cannot tell the diagram format of '{out}' from its extension",
                         f"name it .svg, .html, .mmd or .dot, or pass --format ({', '.join(FORMATS)})")
    return EXTENSIONS[ext]


def diagram(ctx: Context, stack: str, fmt: str, out: str | None, progress: ui.Progress) -> int:
    """Discover the stack, judge its paths as verify does, and draw it (stdout, or the file ``out``)."""
    run, found = discovered(ctx, stack, progress, "draw")
    lab = stack_lab(ctx)
    text = render(build(checks.gather(run, found), lab, now_text(), observed(ctx, found)), fmt)
    if out is None:
        ui.emit(text.rstrip("\n"))
    else:
        write_page(Path(out), text)
        progress.line(f"wrote the {fmt} diagram of stack {stack} to {out}")
    return EXIT_OK
