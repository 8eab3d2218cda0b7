"""CloudFormation StackSets as AWS runs them: operations that take their time, one account after
another within ``OperationPreferences``, with a result per account.

moto runs a StackSet operation inside the request (every stack made before the answer, the
operation ``SUCCEEDED`` whatever happened), ignores ``OperationPreferences`` and ``RetainStacks``,
names each instance's stack ``StackSet:<name>`` (a name AWS refuses) and reports every instance
``CURRENT``/``SUCCEEDED``. Here:

- ``CreateStackInstances``, ``DeleteStackInstances`` and ``UpdateStackSet`` answer an
  ``OperationId`` at once; the operation is ``RUNNING`` while a worker thread deploys the targets
  region by region (``RegionOrder``), at most ``MaxConcurrentCount`` accounts at a time. With
  ``STRICT_FAILURE_TOLERANCE`` (the default) the concurrency is ``FailureToleranceCount + 1`` at
  most and drops with each failure; once a region's failures exceed the tolerance its remaining
  targets and every later region are ``CANCELLED`` and the operation is ``FAILED``.
- An account's result is ``SUCCEEDED`` only when its stack is created and its databases and caches
  are ``available`` (as CloudFormation waits for them), ``FAILED`` with the reason otherwise: the
  stack's error, or, for self-managed permissions, a missing administration role (in the StackSet's
  account) or execution role (in the target account), in AWS's words.
- Each instance's stack is ``StackSet-<name>-<uuid>`` in its account and region, tagged with the
  StackSet's tags; instances show ``OUTDATED``/``PENDING`` then ``RUNNING`` until their result, and
  ``ListStackSetOperationResults`` gives each target's status and reason.
- ``DeleteStackInstances`` deletes the stacks (``RetainStacks=false``) or only detaches them; a
  second operation while one runs is refused (``OperationInProgressException``), as is a reused
  ``OperationId`` and a second StackSet of a name in use; ``StopStackSetOperation`` cancels what
  has not started; ``ListStackSets`` honours its ``Status`` filter.
- An operation that was running when the local AWS stopped is reported ``FAILED`` (its worker is
  gone) rather than ``RUNNING`` for ever; rerunning it retries what is not ``CURRENT``.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from awslab.local import latency
from awslab.local.patches._patch import patch

ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
READY_BOUND_MIN_S = 60.0
# This process's running operations: id -> "stop" flag. One not here but RUNNING has lost its worker.
_workers: dict[str, threading.Event] = {}
_workers_lock = threading.Lock()


def _error(code: str, message: str):
    from moto.cloudformation.exceptions import CloudFormationError

    class Refused(CloudFormationError):
        pass

    Refused.code = code
    return Refused(message)


def _lock():
    from awslab.local import persistence

    return persistence.LOCK


def _changed() -> None:
    from awslab.local import persistence

    persistence.changed_in_background()


def _now():
    from moto.core.utils import utcnow

    return utcnow()


# --- the instance's view ------------------------------------------------------------------------------

def _instance_dict(self) -> dict[str, Any]:
    from moto.cloudformation.utils import generate_stack_id

    stack = getattr(self, "stack", None)
    status = getattr(self, "_awslab_status", "CURRENT")
    out = {"StackSetId": self.stackset_id, "Region": self.region_name, "Account": self.account_id,
           "Status": status, "ParameterOverrides": self.parameters,
           "StackInstanceStatus": {"DetailedStatus": getattr(self, "_awslab_detailed", "SUCCEEDED")}}
    if stack is not None:
        out["StackId"] = stack.stack_id
    elif not hasattr(self, "_awslab_status"):
        out["StackId"] = generate_stack_id(self.stack_name, self.region_name, self.account_id)
    reason = getattr(self, "_awslab_reason", None)
    if reason:
        out["StatusReason"] = reason
    if getattr(self, "_awslab_operation", None):
        out["LastOperationId"] = self._awslab_operation
    return out


def _new_instance(stackset, account: str, region: str, parameters: list[dict]):
    from moto.cloudformation.models import StackInstance

    inst = StackInstance.__new__(StackInstance)
    inst.account_id, inst.region_name = account, region
    inst.stackset_id, inst.name = stackset.id, stackset.name
    inst.stack_name = f"StackSet-{stackset.name}-{uuid.uuid4()}"
    inst.template, inst.parameters = stackset.template, parameters or []
    inst.permission_model = stackset.permission_model
    inst.stack = None
    _set(inst, "OUTDATED", "PENDING", "User Initiated")
    return inst


def _set(inst, status: str, detailed: str, reason: str | None = None, operation: str | None = None) -> None:
    inst._awslab_status, inst._awslab_detailed, inst._awslab_reason = status, detailed, reason
    if operation:
        inst._awslab_operation = operation


# --- operations ------------------------------------------------------------------------------------

def _begin(stackset, action: str, targets: list[tuple[str, str]], prefs: dict, op_id: str | None) -> dict:
    """A RUNNING operation over ``targets`` (account, region), or the refusal AWS gives."""
    op_id = op_id or str(uuid.uuid4())
    for op in stackset.operations:
        if op["OperationId"] == op_id:
            raise _error("OperationIdAlreadyExistsException", f"The operation ID {op_id} already exists.")
        if op["Status"] in ("RUNNING", "STOPPING", "QUEUED") and alive(op):
            raise _error("OperationInProgressException",
                         f"Another Operation on StackSet {stackset.arn} is in progress")
    op = {"OperationId": op_id, "Action": action, "Status": "RUNNING", "CreationTimestamp": _now(),
          "Instances": [{a: r} for a, r in targets], "OperationPreferences": prefs,
          "_awslab_results": {f"{a}/{r}": {"Status": "PENDING", "StatusReason": None} for a, r in targets}}
    stackset.operations.append(op)
    return op


def alive(op: dict) -> bool:
    """Is this process still working on ``op``? One saved RUNNING by a server that stopped is not."""
    with _workers_lock:
        if op["OperationId"] in _workers:
            return True
    if op["Status"] in ("RUNNING", "STOPPING", "QUEUED"):
        op["Status"] = "FAILED"
        op["EndTimestamp"] = op.get("EndTimestamp") or _now()
        for result in (op.get("_awslab_results") or {}).values():
            if result["Status"] in ("PENDING", "RUNNING"):
                result.update(Status="FAILED", StatusReason="The operation stopped with the local AWS; run it again")
    return False


def _order(targets: list[tuple[str, str]], prefs: dict) -> list[tuple[str, list[str]]]:
    regions: list[str] = []
    for r in [*(prefs.get("RegionOrder") or []), *(r for _, r in targets)]:
        if r not in regions and any(t[1] == r for t in targets):
            regions.append(r)
    return [(r, [a for a, rr in targets if rr == r]) for r in regions]


def _int(prefs: dict, key: str) -> int | None:
    value = prefs.get(key)
    return int(value) if value not in (None, "") else None


def _limits(prefs: dict, accounts: int) -> tuple[int, int, bool]:
    """(max concurrent, failure tolerance, strict) for a region of ``accounts`` targets."""
    tolerance = _int(prefs, "FailureToleranceCount")
    if tolerance is None and _int(prefs, "FailureTolerancePercentage") is not None:
        tolerance = accounts * _int(prefs, "FailureTolerancePercentage") // 100
    concurrent = _int(prefs, "MaxConcurrentCount")
    if concurrent is None and _int(prefs, "MaxConcurrentPercentage") is not None:
        concurrent = max(1, accounts * _int(prefs, "MaxConcurrentPercentage") // 100)
    strict = (prefs.get("ConcurrencyMode") or "STRICT_FAILURE_TOLERANCE") == "STRICT_FAILURE_TOLERANCE"
    return max(1, concurrent or 1), max(0, tolerance or 0), strict


def check_preferences(prefs: dict) -> None:
    for a, b in (("MaxConcurrentCount", "MaxConcurrentPercentage"),
                 ("FailureToleranceCount", "FailureTolerancePercentage")):
        if prefs.get(a) not in (None, "") and prefs.get(b) not in (None, ""):
            raise _error("ValidationError", f"You must specify either {a} or {b}, but not both.")
    for key in ("MaxConcurrentCount", "FailureToleranceCount"):
        value = _int(prefs, key)
        if value is not None and value < (1 if key.startswith("Max") else 0):
            raise _error("ValidationError", f"{key} must be at least {1 if key.startswith('Max') else 0}.")
    if prefs.get("ConcurrencyMode") not in (None, "", "STRICT_FAILURE_TOLERANCE", "SOFT_FAILURE_TOLERANCE"):
        raise _error("ValidationError", f"Invalid ConcurrencyMode: {prefs['ConcurrencyMode']}")


def _cancel(stackset, op: dict, account: str, region: str, why: str) -> None:
    with _lock():
        op["_awslab_results"][f"{account}/{region}"].update(Status="CANCELLED", StatusReason=why)
        inst = stackset.instances.get_instance(account, region)
        if inst is not None and getattr(inst, "_awslab_detailed", None) == "PENDING":
            _set(inst, getattr(inst, "_awslab_status", "OUTDATED"), "CANCELLED", why, op["OperationId"])


def _run(stackset, op: dict, work, stop: threading.Event) -> None:
    """Deploy ``op``'s targets as AWS orders them; ``work(account, region)`` returns None or why it failed."""
    results = op["_awslab_results"]
    regions = _order([(a, r) for i in op["Instances"] for a, r in i.items()], op["OperationPreferences"])
    failed_over = False
    try:
        for region, accounts in regions:
            if failed_over or stop.is_set():
                for a in accounts:
                    _cancel(stackset, op, a, region, "Cancelled since failure tolerance has exceeded" if failed_over
                            else "Operation stopped")
                continue
            concurrent, tolerance, strict = _limits(op["OperationPreferences"], len(accounts))
            pending, failures = list(accounts), 0
            with ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="stackset") as pool:
                running: dict = {}
                while pending or running:
                    limit = concurrent if not strict else max(1, min(concurrent, tolerance + 1) - failures)
                    while pending and len(running) < limit and failures <= tolerance and not stop.is_set():
                        a = pending.pop(0)
                        with _lock():
                            results[f"{a}/{region}"].update(Status="RUNNING")
                        running[pool.submit(work, a, region)] = a
                    if not running:
                        break
                    done, _ = futures_wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in done:
                        a = running.pop(fut)
                        try:
                            why = fut.result()
                        except Exception as exc:  # noqa: BLE001 - an account's failure is its result
                            why = str(exc) or type(exc).__name__
                        with _lock():
                            results[f"{a}/{region}"].update(Status="FAILED" if why else "SUCCEEDED", StatusReason=why)
                        failures += bool(why)
                        _changed()
            for a in pending:
                _cancel(stackset, op, a, region, "Operation stopped" if stop.is_set()
                        else "Cancelled since failure tolerance has exceeded")
            failed_over = failed_over or failures > tolerance
        with _lock():
            op["Status"] = "STOPPED" if stop.is_set() else "FAILED" if failed_over else "SUCCEEDED"
            op["EndTimestamp"] = _now()
    finally:
        with _workers_lock:
            _workers.pop(op["OperationId"], None)
        _changed()


def _start(stackset, op: dict, work) -> None:
    stop = threading.Event()
    with _workers_lock:
        _workers[op["OperationId"]] = stop
    threading.Thread(target=_run, args=(stackset, op, work, stop), daemon=True,
                     name=f"stackset-{op['OperationId'][:8]}").start()


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
    longest = max(lat.seconds(t) for t in ("rds.create.multi_az", "rds.replica", "elasticache.create", "ec2.run"))
    return max(READY_BOUND_MIN_S, 2 * longest)


def _not_ready(stack) -> list[str]:
    """The stack's databases and caches not yet ``available``."""
    waiting = []
    for resource in list(stack.resource_map.values()) if hasattr(stack, "resource_map") else []:
        kind = type(resource).__name__
        status = getattr(resource, "status", None)
        if kind == "DBInstance" or kind.endswith("ReplicationGroup"):
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


def _create(stackset, op_id: str, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with _lock():
        inst = stackset.instances.get_instance(account, region)
        _set(inst, "OUTDATED", "RUNNING", None, op_id)
        why = _role_missing(stackset, account)
        if why:
            _set(inst, "OUTDATED", "FAILED", why, op_id)
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
            _set(inst, "OUTDATED", "FAILED", why, op_id)
            return why
    bound = _ready_bound_s()
    deadline = time.monotonic() + bound
    while True:
        with _lock():
            waiting = _not_ready(inst.stack)
        if not waiting:
            break
        if time.monotonic() > deadline:
            why = f"not available after {bound:.0f}s: {', '.join(waiting)}"
            with _lock():   # rolled back, as CloudFormation rolls back a creation that failed
                _rollback(inst.stack)
                inst.stack = None
                _set(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        time.sleep(0.5)
    with _lock():
        _set(inst, "CURRENT", "SUCCEEDED", None, op_id)
    return None


def _delete(stackset, op_id: str, retain: bool, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with _lock():
        inst = stackset.instances.get_instance(account, region)
        if inst is None:
            return None
        _set(inst, getattr(inst, "_awslab_status", "CURRENT"), "RUNNING", None, op_id)
        if not retain and inst.stack is not None:
            why = None if stackset.permission_model != "SELF_MANAGED" else _role_missing(stackset, account)
            if why:
                _set(inst, "INOPERABLE", "FAILED", why, op_id)
                return why
            inst.stack.status = "DELETE_IN_PROGRESS"
    if not retain and inst.stack is not None:
        why = delete_stack_resources(inst.stack)
        if why:
            with _lock():
                _set(inst, "INOPERABLE", "FAILED", why, op_id)
            return why
        with _lock():
            backend = cloudformation_backends[account][region]
            if backend.stacks.pop(inst.stack.stack_id, None) is not None:   # a self-managed one is listed
                backend.deleted_stacks[inst.stack.stack_id] = inst.stack
    with _lock():
        stackset.instances.stack_instances.remove(inst)
    return None


def delete_stack_resources(stack) -> str | None:
    """Delete the stack's resources as CloudFormation does: a resource another still depends on
    (a group whose network interfaces drain, a subnet group whose DB is ``deleting``) is tried
    again until they are gone, within the bound; None when done, else why not."""
    bound = _ready_bound_s()
    deadline = time.monotonic() + bound
    while True:
        with _lock():
            try:
                stack.delete()
                return None
            except Exception as exc:  # noqa: BLE001 - retried, then the account's result
                why = str(getattr(exc, "message", None) or exc)
        if time.monotonic() > deadline:
            stack.status = "DELETE_FAILED"
            return f"{why} (still, after {bound:.0f}s)"
        time.sleep(0.5)


def _update(stackset, op_id: str, account: str, region: str) -> str | None:
    from moto.cloudformation.models import cloudformation_backends

    with _lock():
        inst = stackset.instances.get_instance(account, region)
        if inst is None:
            return None
        never_made = inst.stack is None
    if never_made:   # its creation failed earlier: made now, with the new template
        return _create(stackset, op_id, account, region)
    with _lock():
        _set(inst, "OUTDATED", "RUNNING", None, op_id)
        why = _role_missing(stackset, account)
        if why:
            _set(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        params = [{"ParameterKey": k, "ParameterValue": v} for k, v in (stackset.parameters or {}).items()]
        params = inst.parameters or params
        try:
            cloudformation_backends[account][region].update_stack(inst.stack.stack_id, stackset.template, None,
                                                                   params, dict(stackset.tags or {}))
        except Exception as exc:  # noqa: BLE001 - the account's result
            why = str(getattr(exc, "message", None) or exc)
            _set(inst, "OUTDATED", "FAILED", why, op_id)
            return why
        _set(inst, "CURRENT", "SUCCEEDED", None, op_id)
    return None


# --- the requests -------------------------------------------------------------------------------------

def _targets(self, stackset, accounts: list[str], regions: list[str], deployment: dict | None) -> list[tuple[str, str]]:
    from moto.organizations.models import organizations_backends

    if not regions:
        raise _error("ValidationError", "Regions must not be empty")
    if stackset.permission_model == "SERVICE_MANAGED":
        ous = list((deployment or {}).get("OrganizationalUnitIds") or [])
        if not ous:
            raise _error("ValidationError", "StackSets with SERVICE_MANAGED permission model can only have "
                                            "OrganizationalUnit as target")
        org = organizations_backends[self.current_account][self.partition]
        wanted, grew = set(ous), True
        while grew:   # the OUs and every OU under them
            more = {ou.id for ou in org.ou if ou.parent_id in wanted}
            grew = not more <= wanted
            wanted |= more
        accounts = [a.id for a in org.accounts if a.parent_id in wanted]
    else:
        if deployment and deployment.get("OrganizationalUnitIds"):
            raise _error("ValidationError", "StackSets with SELF_MANAGED permission model can only have accounts "
                                            "as target")
        accounts = list(accounts or (deployment or {}).get("Accounts") or [])
        if not accounts:
            raise _error("ValidationError", "Accounts must not be empty")
        for a in accounts:
            if not ACCOUNT_ID.match(str(a)):
                raise _error("ValidationError", f"1 validation error detected: Value '[{a}]' at 'accounts' failed to "
                                                "satisfy constraint: Member must satisfy regular expression pattern: "
                                                "^[0-9]{12}$")
    return [(a, r) for r in regions for a in dict.fromkeys(accounts)]


CFN_RESPONSE = "moto.cloudformation.responses:CloudFormationResponse"
GAP = "stacksets-operations"

patch("moto.cloudformation.models:StackInstance", "to_dict", gap=GAP, phase="services", kind="replace")(_instance_dict)


@patch("moto.cloudformation.models:CloudFormationBackend", gap=GAP, phase="services")
def create_stack_set(original, self, name, *a, **kw):
    if any(s.name == name and s.status != "DELETED" for s in self.stacksets.values()):
        raise _error("NameAlreadyExistsException", f"StackSet {name} already exists")
    return original(self, name, *a, **kw)


def _prefs_of(self) -> dict:
    prefs = dict(self._get_params().get("OperationPreferences") or {})
    check_preferences(prefs)
    return prefs


def _answer(value: dict):
    from moto.core.responses import ActionResult

    return ActionResult(value)


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def create_stack_instances(self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    prefs = _prefs_of(self)
    targets = _targets(self, stackset, self._get_param("Accounts", []), self._get_param("Regions", []),
                       self._get_params().get("DeploymentTargets"))
    overrides = self._get_param("ParameterOverrides", [])
    # An instance that has its stack is left alone (AWS: a no-op; UpdateStackSet changes stacks);
    # one whose creation failed, was cancelled or never ran is tried again.
    todo = [(a, r) for a, r in targets if (inst := stackset.instances.get_instance(a, r)) is None
            or inst.stack is None]
    op = _begin(stackset, "CREATE", todo or targets, prefs, self._get_param("OperationId"))   # or refused
    for a, r in todo:
        inst = stackset.instances.get_instance(a, r)
        if inst is None:
            stackset.instances.stack_instances.append(_new_instance(stackset, a, r, overrides))
        else:
            _set(inst, "OUTDATED", "PENDING", "User Initiated")
    if not todo:
        for result in op["_awslab_results"].values():
            result["Status"] = "SUCCEEDED"
        op.update(Status="SUCCEEDED", EndTimestamp=_now())
    else:
        _start(stackset, op, functools.partial(_create, stackset, op["OperationId"]))
    return _answer({"OperationId": op["OperationId"]})


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def delete_stack_instances(self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    retain = self._get_param("RetainStacks")
    if retain is None:
        raise _error("ValidationError", "1 validation error detected: Value null at 'retainStacks' failed to "
                                        "satisfy constraint: Member must not be null")
    retain = str(retain).lower() == "true"
    prefs = _prefs_of(self)
    targets = _targets(self, stackset, self._get_param("Accounts", []), self._get_param("Regions", []),
                       self._get_params().get("DeploymentTargets"))
    targets = [(a, r) for a, r in targets if stackset.instances.get_instance(a, r) is not None]
    op = _begin(stackset, "DELETE", targets, prefs, self._get_param("OperationId"))
    _start(stackset, op, functools.partial(_delete, stackset, op["OperationId"], retain))
    return _answer({"OperationId": op["OperationId"]})


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def update_stack_set(self):
    backend = self.cloudformation_backend
    stackset = backend.describe_stack_set(self._get_param("StackSetName"))
    prefs = _prefs_of(self)
    template = self._get_param("TemplateBody")
    if self._get_param("TemplateURL"):
        template = self._get_stack_from_s3_url(self._get_param("TemplateURL"))
    if self._get_param("UsePreviousTemplate") in (True, "true"):
        template = stackset.template
    if not template:
        raise _error("ValidationError", "Either TemplateBody, TemplateURL or UsePreviousTemplate must be specified")
    accounts, regions = self._get_param("Accounts", []), self._get_param("Regions", [])
    targets = [(i.account_id, i.region_name) for i in stackset.instances.stack_instances
               if (not accounts or i.account_id in accounts) and (not regions or i.region_name in regions)]
    op = _begin(stackset, "UPDATE", targets, prefs, self._get_param("OperationId"))   # or refused
    params = backend._resolve_update_parameters(instance=stackset, incoming_params=self._get_param("Parameters", []))
    stackset.template = template
    stackset.parameters = params
    if self._get_param("Description") is not None:
        stackset.description = self._get_param("Description")
    tags = {t["Key"]: t["Value"] for t in self._get_param("Tags", [])}
    if tags:
        stackset.tags = tags
    for a, r in targets:
        _set(stackset.instances.get_instance(a, r), "OUTDATED", "PENDING", "User Initiated")
    if targets:
        _start(stackset, op, functools.partial(_update, stackset, op["OperationId"]))
    else:
        op.update(Status="SUCCEEDED", EndTimestamp=_now())
    return _answer({"OperationId": op["OperationId"]})


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def stop_stack_set_operation(self):
    from moto.core.responses import EmptyResult

    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    op = stackset.get_operation(self._get_param("OperationId"))
    with _workers_lock:
        stop = _workers.get(op["OperationId"])
    if stop is None or op["Status"] not in ("RUNNING", "STOPPING"):
        raise _error("InvalidOperationException", f"Operation {op['OperationId']} is not running")
    stop.set()
    op["Status"] = "STOPPING"
    return EmptyResult()


@patch(CFN_RESPONSE, gap=GAP, phase="services")
def describe_stack_set_operation(original, self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    alive(stackset.get_operation(self._get_param("OperationId")))
    return original(self)


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def list_stack_set_operation_results(self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    op = stackset.get_operation(self._get_param("OperationId"))
    alive(op)
    summaries = []
    for instance in op["Instances"]:
        for account, region in instance.items():
            result = (op.get("_awslab_results") or {}).get(f"{account}/{region}") or {"Status": op["Status"]}
            row = {"Account": account, "Region": region, "Status": result["Status"],
                   "AccountGateResult": {"Status": "SKIPPED", "StatusReason": "No account gate configured"}}
            if result.get("StatusReason"):
                row["StatusReason"] = result["StatusReason"]
            summaries.append(row)
    return _answer({"Summaries": summaries})


@patch(CFN_RESPONSE, gap=GAP, phase="services")
def delete_stack_set(original, self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    for op in stackset.operations:
        if op["Status"] in ("RUNNING", "STOPPING") and alive(op):
            raise _error("OperationInProgressException", f"Another Operation on StackSet {stackset.arn} is in progress")
    return original(self)


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def list_stack_sets(self):
    status = self._get_param("Status")   # moto lists every StackSet, deleted ones too, whatever is asked
    found = [s for s in self.cloudformation_backend.list_stack_sets() if not status or s.status == status]
    return _answer({"Summaries": found})
