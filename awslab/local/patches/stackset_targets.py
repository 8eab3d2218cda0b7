"""One target of a StackSet operation, an account and region: its stack made (as CloudFormation
makes it, with the StackSet's tags, ``SUCCEEDED`` only once its databases and caches are
``available``, rolled back otherwise), updated or deleted (the stack's resources retried while
another still depends on them), each ``FAILED`` with AWS's reason when a self-managed role is
missing. Run by the operation's worker (``stackset_operations``).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import time

from awslab.local import latency
from awslab.local.side import side
from awslab.local.patches.stackset_operations import set_instance_status, state_lock

READY_BOUND_MIN_S = 60.0


# --- one target -------------------------------------------------------------------------------------

def _role_missing(stackset, account: str) -> str | None:
    """AWS's reason when self-managed permissions lack a role, else None."""
    from moto.iam.models import iam_backends

    if stackset.permission_model != "SELF_MANAGED":
        return None
    admin = stackset.administration_role_arn
    admin_account, admin_name = admin.split(":")[4], admin.rsplit("/", 1)[-1]
    if not _has_role(iam_backends, admin_account, admin_name):
        return (f"Account {admin_account} should have '{admin_name}' role with trust relationship to CloudFormation "
                "service.")
    if not _has_role(iam_backends, account, stackset.execution_role_name):
        return (f"Account {account} should have '{stackset.execution_role_name}' role with trust relationship to "
                f"Role '{admin_name}'.")
    return None


def _has_role(iam_backends, account: str, name: str) -> bool:
    for backend in dict.values(iam_backends[account]):
        if name in {role.name for role in backend.roles.values()}:
            return True
    return False


def _ready_bound_s() -> float:
    lat = latency.current()
    longest = max(lat.seconds(t) for t in ("rds.create.multi_az", "rds.replica", "rds.cluster.create", "elasticache.create",
                                           "ec2.run"))
    return max(READY_BOUND_MIN_S, 2 * longest)


def _not_ready(stack) -> list[str]:
    """The stack's databases (a Multi-AZ DB cluster's: ``cfn_db_cluster.py``) and caches not yet ``available``."""
    waiting = []
    for resource in list(stack.resource_map.values()) if hasattr(stack, "resource_map") else []:
        kind = type(resource).__name__
        status = getattr(resource, "status", None)
        if kind in ("DBInstance", "DbCluster") or kind.endswith("ReplicationGroup"):
            if status != "available":
                waiting.append(f"{getattr(resource, 'physical_resource_id', kind)} ({status})")
    return waiting


def _rollback(stack) -> None:
    """What a failed creation made is deleted; the stack stays, ``ROLLBACK_COMPLETE``."""
    try:
        stack.delete()
    except Exception:  # noqa: BLE001 - what could not go stays, as a failed rollback leaves it
        pass
    stack.status = "ROLLBACK_COMPLETE"


def create_instance_stack(stackset, op_id: str, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with state_lock():
        inst = stackset.instances.get_instance(account, region)
        set_instance_status(inst, "OUTDATED", "RUNNING", None, op_id)
        why = _role_missing(stackset, account)
        if why:
            set_instance_status(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        backend = cloudformation_backends[account][region]
        params = {p["ParameterKey"]: p["ParameterValue"] for p in (inst.parameters or [])} or dict(stackset.parameters or {})
        for old in [s for s in backend.stacks.values() if s.name == inst.stack_name and s.status == "ROLLBACK_COMPLETE"]:
            backend.stacks.pop(old.stack_id)   # a failed try, rolled back: made again
            backend.deleted_stacks[old.stack_id] = old
        try:
            inst.stack = backend.create_stack(name=inst.stack_name, template=stackset.template, parameters=params,
                                              tags=dict(stackset.tags or {}))
        except Exception as exc:  # noqa: BLE001 - the account's result, as CloudFormation reports it
            why = str(getattr(exc, "message", None) or exc)
            stack = next((s for s in backend.stacks.values() if s.name == inst.stack_name
                          and s.status == "CREATE_IN_PROGRESS"), None)
            if stack is not None:
                _rollback(stack)
            set_instance_status(inst, "OUTDATED", "FAILED", why, op_id)
            return why
    bound = _ready_bound_s()
    deadline = time.monotonic() + bound
    while True:
        with state_lock():
            waiting = _not_ready(inst.stack)
        if not waiting:
            break
        if time.monotonic() > deadline:
            why = f"not available after {bound:.0f}s: {', '.join(waiting)}"
            with state_lock():   # rolled back, as CloudFormation rolls back a creation that failed
                _rollback(inst.stack)
                inst.stack = None
                set_instance_status(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        time.sleep(0.5)
    with state_lock():
        set_instance_status(inst, "CURRENT", "SUCCEEDED", None, op_id)
    return None


def delete_instance_stack(stackset, op_id: str, retain: bool, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with state_lock():
        inst = stackset.instances.get_instance(account, region)
        if inst is None:
            return None
        set_instance_status(inst, side(inst).status or "CURRENT", "RUNNING", None, op_id)
        if not retain and inst.stack is not None:
            why = None if stackset.permission_model != "SELF_MANAGED" else _role_missing(stackset, account)
            if why:
                set_instance_status(inst, "INOPERABLE", "FAILED", why, op_id)
                return why
            inst.stack.status = "DELETE_IN_PROGRESS"
    if not retain and inst.stack is not None:
        why = delete_stack_resources(inst.stack)
        if why:
            with state_lock():
                set_instance_status(inst, "INOPERABLE", "FAILED", why, op_id)
            return why
        with state_lock():
            backend = cloudformation_backends[account][region]
            if backend.stacks.pop(inst.stack.stack_id, None) is not None:   # a self-managed one is listed
                backend.deleted_stacks[inst.stack.stack_id] = inst.stack
    with state_lock():
        stackset.instances.stack_instances.remove(inst)
    return None


def delete_stack_resources(stack) -> str | None:
    """Delete the stack's resources as CloudFormation does: a resource another still depends on
    (a group whose network interfaces drain, a subnet group whose DB is ``deleting``) is tried
    again until they are gone, within the bound; None when done, else why not."""
    bound = _ready_bound_s()
    deadline = time.monotonic() + bound
    while True:
        with state_lock():
            try:
                stack.delete()
                return None
            except Exception as exc:  # noqa: BLE001 - retried, then the account's result
                why = str(getattr(exc, "message", None) or exc)
        if time.monotonic() > deadline:
            stack.status = "DELETE_FAILED"
            return f"{why} (still, after {bound:.0f}s)"
        time.sleep(0.5)


def update_instance_stack(stackset, op_id: str, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with state_lock():
        inst = stackset.instances.get_instance(account, region)
        if inst is None:
            return None
        never_made = inst.stack is None
    if never_made:   # its creation failed earlier: made now, with the new template
        return create_instance_stack(stackset, op_id, account, region)
    with state_lock():
        set_instance_status(inst, "OUTDATED", "RUNNING", None, op_id)
        why = _role_missing(stackset, account)
        if why:
            set_instance_status(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        params = [{"ParameterKey": k, "ParameterValue": v} for k, v in (stackset.parameters or {}).items()]
        params = inst.parameters or params
        try:
            cloudformation_backends[account][region].update_stack(inst.stack.stack_id, stackset.template, None,
                                                                   params, dict(stackset.tags or {}))
        except Exception as exc:  # noqa: BLE001 - the account's result
            why = str(getattr(exc, "message", None) or exc)
            set_instance_status(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        set_instance_status(inst, "CURRENT", "SUCCEEDED", None, op_id)
    return None
