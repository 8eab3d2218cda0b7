"""A temporary Single-AZ instance beside the stack's Multi-AZ primary, for a drill to measure the
primary against: the lab's database settings (so its engine, class and parameter group), Single-AZ,
no backups or replicas, in the stack's subnets and DB security group, tagged as the stack's so
`down` finds it if the drill is interrupted; always deleted at the end (Ctrl-C too), without a final
snapshot: it holds only the drill's rows. `drill --maintenance` patches one beside the primary;
`drill` on the MySQL family commits on one (a MySQL session cannot skip the standby's wait as
PostgreSQL's ``synchronous_commit = local`` does)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from awslab import ui
from awslab.commands._common import progress_run, raise_if_failed
from awslab.commands.lifecycle import stack_lab
from awslab.engine.context import Context
from awslab.engine.executor import execute
from awslab.engine.plan import plan_down, plan_restore
from awslab.engine.run import Run
from awslab.errors import UsageError
from awslab.spec.model import Desired, Found

NEEDS = ("db.subnet-group", "sg.db", "db.parameter-group", "host.instance")


def require_room(run: Run, stack: str) -> None:
    """What the instance is placed in (and reached through) must be there: refused before anything is made."""
    missing = [k for k in NEEDS if k not in run.found]
    if missing:
        raise UsageError(f"stack {stack} has no {', '.join(missing)} to place the Single-AZ instance in",
                         "run `awslab up week6` first")


@contextlib.contextmanager
def single_az_beside(run: Run, progress: ui.Progress, primary: Found, name: str, command: str) -> Iterator[Found]:
    """The temporary instance ``name`` while the block runs (``run.found`` holds the stack's discovery)."""
    key = f"db.drill.{name}"
    try:
        lab = stack_lab(run.ctx)
        database = replace(lab.database, multi_az=False, backup_retention_days=0, read_replicas=0)
        ui.err(f"making {name}, a Single-AZ instance beside {primary.id} (removed at the end)")
        desired = Desired(key, "db-instance", name, (), {"database": database})
        raise_if_failed(execute(plan_restore(run.stack, desired, run.found), run), command, run)
        yield run.found[key]
    finally:
        _remove(run.ctx, run.stack, progress, key, name, command)


def _remove(ctx: Context, stack: str, progress: ui.Progress, key: str, name: str, command: str) -> None:
    """Delete it on a run of its own: an interrupted run's steps are cancelled."""
    cleanup = progress_run(ctx, stack, "", progress, skip_final_snapshot=True)
    found = {key: Found(key, "db-instance", name, "unknown")}
    raise_if_failed(execute(plan_down(stack, found), cleanup), f"{command} cleanup", cleanup)
