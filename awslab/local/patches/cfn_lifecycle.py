"""CloudFormation's stack lifecycle as AWS runs it: CREATE_COMPLETE once every resource is
stabilized, and a delete that runs in the background, replicas first, retried until what depends
on what is gone, the stack listed (DELETE_IN_PROGRESS, then DELETE_FAILED if it cannot finish)
until its last resource is.

moto's CloudFormation marks a stack CREATE_COMPLETE when its create calls return, while the DB
instances, the replication group and the EC2 instance it made are still `creating`/`pending`; a
learner's `aws cloudformation wait stack-create-complete` then returned before the database could
be reached. CloudFormation waits for each resource to stabilize (an RDS instance `available`, an
ElastiCache group `available`, an EC2 instance `running`). Here each of those reports whether it
is created (moto's own ``is_created`` hook), and the stack reads CREATE_IN_PROGRESS until all are,
then CREATE_COMPLETE (with its event), the moment a describe sees it.

moto deleted a stack inside the request, in no particular order, gave up at the first dependency
(a security group whose DB was still ``deleting``) and dropped the stack record anyway, leaving
resources nobody listed. Here DeleteStack answers at once; a worker deletes the DB read replicas
first, then the rest, pass after pass within a bound (as StackSets' deletes do).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

from awslab.local import persistence
from awslab.local.patches._patch import patch
from awslab.local.side import note, side

# A resource still on its way; anything else (available, running, or a failure) has settled.
SETTLING = {"creating", "pending", "backing-up", "modifying", "configuring-enhanced-monitoring",
            "configuring-log-exports", "rebooting"}


GAP = "cfn-create-waits"
STACK = "moto.cloudformation.models:Stack"


@patch("moto.rds.models:DBInstance", "is_created", gap=GAP, phase="services", kind="replace")
def db_instance_is_created(self) -> bool:
    return self.status not in SETTLING


@patch("awslab.local.patches.cloudformation:ReplicationGroup", "is_created", gap=GAP, phase="services",
       kind="replace")
def replication_group_is_created(self) -> bool:
    return (self.status or "available") not in SETTLING


@patch("moto.ec2.models.instances:Instance", "is_created", gap=GAP, phase="services", kind="replace")
def instance_is_created(self) -> bool:
    return self.state not in SETTLING


@patch(STACK, gap=GAP, phase="services")
def create_resources(original, self) -> None:
    original(self)
    note(self, calls_done=True)   # every create call returned: only stabilizing is left


def _status(self):
    own = side(self)
    # (A stack saved before this patch holds moto's own ``status``.)
    status = own.status if own.status is not None else self.__dict__.get("status")
    # Not while the create calls run, nor after one failed (the stack is rolled back then).
    if status == "CREATE_IN_PROGRESS" and own.calls_done:
        try:
            done = self.resource_map.creation_complete()
        except Exception:  # noqa: BLE001 - a resource that cannot say is taken as settled
            done = True
        if done:
            self.mark_creation_complete()
            status = side(self).status
    return status


def _set_status(self, value):
    note(self, status=value)


patch(STACK, "status", gap=GAP, phase="services", kind="add")(property(_status, _set_status))


@patch("moto.cloudformation.models:CloudFormationBackend", gap="cfn-delete-stack", phase="services", kind="replace")
def delete_stack(self, name_or_stack_id: str) -> None:
    import threading

    stacks = ([self.stacks[name_or_stack_id]] if name_or_stack_id in self.stacks
              else [s for s in self.stacks.values() if s.name == name_or_stack_id])
    for stack in stacks:
        if stack.status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
            continue   # already on its way
        stack.status = "DELETE_IN_PROGRESS"
        # A first pass now: what can go at once (everything, on the instant profile) is gone when
        # the call answers, the same every time; what waits on a resource still `deleting` is
        # retried in the background, the stack listed DELETE_IN_PROGRESS meanwhile.
        _replicas_first(stack)
        try:
            stack.delete()
        except Exception:  # noqa: BLE001 - left to the background passes
            threading.Thread(target=_deleting, args=(self, stack), daemon=True, name=f"cfn delete {stack.name}").start()
        else:
            _forget(self, stack)


def resume_deletes() -> str | None:
    """A stack whose delete was under way when the local AWS stopped goes on being deleted, as
    CloudFormation goes on with it: never left DELETE_IN_PROGRESS with its resources billing."""
    import threading

    from moto.cloudformation.models import cloudformation_backends

    resumed = []
    for _, _, backend in cloudformation_backends.iter_backends():
        for stack in list(backend.stacks.values()):
            if stack.status == "DELETE_IN_PROGRESS":
                resumed.append(stack.name)
                threading.Thread(target=_deleting, args=(backend, stack), daemon=True,
                                 name=f"cfn delete {stack.name}").start()
    return f"CloudFormation deletes resumed: {', '.join(resumed)}" if resumed else None


def _deleting(backend, stack) -> None:
    """Delete ``stack``'s resources (read replicas first), then forget the stack; or leave it listed
    as DELETE_FAILED with why."""
    from awslab.local.patches.stackset_targets import delete_stack_resources

    with persistence.LOCK:
        _replicas_first(stack)
    why = delete_stack_resources(stack)
    with persistence.LOCK:
        if why is None:
            _forget(backend, stack)
        else:
            stack._add_stack_event("DELETE_FAILED", resource_status_reason=why)
    persistence.changed_in_background()


def _forget(backend, stack) -> None:
    """Every resource gone: the stack is listed DELETE_COMPLETE, its exports free."""
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack
    for export in stack.exports:
        backend.exports.pop(export.name, None)


def _replicas_first(stack) -> None:
    """A DB read replica goes before its source (deleting the source first would promote it)."""
    resources = stack.resource_map
    for logical, spec in list(resources._resource_json_map.items()):
        props = spec.get("Properties") or {}
        made = resources._parsed_resources.get(logical)
        if spec.get("Type") == "AWS::RDS::DBInstance" and props.get("SourceDBInstanceIdentifier") and made is not None \
                and spec.get("DeletionPolicy") != "Retain":
            try:
                resources._delete_resource(made, spec)
                resources._parsed_resources.pop(logical, None)
            except Exception:  # noqa: BLE001 - left to the passes that follow
                pass


persistence.resumers.append(resume_deletes)
