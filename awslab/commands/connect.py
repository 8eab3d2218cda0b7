"""`awslab connect`: a ready-to-run psql / redis-cli line (or the environment variables) for the
stack's DB, replica, cache or a restored instance. How to reach each is verify/live.py's
``connect`` (the same path as the live checks, through the stack's host); this prints it.
"""

from __future__ import annotations

import click

from awslab.commands._common import new_run
from awslab.engine.context import Context
from awslab.verify import live, live_mysql


def connect(ctx: Context, stack: str, what: str, as_env: bool, output: str) -> None:
    """Print how to connect to ``what`` (db, replica, cache or a name): its lines on stdout, a note
    on stderr; or all of it as JSON."""
    how = live.connect(new_run(ctx, stack), what, as_env, live_mysql)
    if output == "json":
        from awslab.ui import emit_json

        emit_json({"stack": stack, "what": what, **how})
        return
    if how.get("note"):
        click.echo(f"note: {how['note']}", err=True)
    for line in how["lines"]:
        click.echo(line)
