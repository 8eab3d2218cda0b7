"""`awslab diagram`: the stack as it exists now, drawn; forwarded to awslab.commands.diagram."""

from __future__ import annotations

import sys

import click

from awslab.cli._common import (
    progress_for,
    setup_debug,
    stack_context,
    target_options_without_output,
)


@click.command()
@click.option("--format", "fmt", default=None, metavar="FORMAT",
              help="mermaid (default), dot (Graphviz source), svg or html (the SVG with a legend and each path's "
                   "evidence); from -o FILE's extension when not given.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE instead of stdout (.svg, .html, .mmd, .dot).")
@target_options_without_output
def diagram(fmt, out, **opts):
    """Draw the stack as it exists now (from discovery, not the lab file): the VPC, its AZs side by
    side, public and private subnets, the host, the DB primary, its Multi-AZ standby and read replicas
    in their AZs, the cache's nodes with their roles, the security groups, and each path verify checks
    (internet to host, host to DB, host to cache) with its port, drawn allowed or BLOCKED as verify
    judges it.

    \b
    awslab diagram                          Mermaid on stdout (renders on GitHub)
    awslab diagram -o lab.svg               a self-contained SVG
    awslab diagram --format html -o lab.html   the SVG, a legend, each path's evidence and fix
    awslab diagram --format dot | dot -Tpng -o lab.png   where Graphviz is installed
    """
    from awslab.commands.diagram import diagram as do_diagram
    from awslab.commands.diagram import format_for

    fmt = format_for(fmt, out)   # bad input is refused before any AWS call
    setup_debug(opts["debug"])
    ctx = stack_context(opts)
    sys.exit(do_diagram(ctx, ctx.stack, fmt, out, progress_for("text")))
