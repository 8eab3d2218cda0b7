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

This module: the instances' view and the requests; how an operation runs is in ``stackset_operations``,
what it does for one account and region in ``stackset_targets``.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

from awslab.local.patches._patch import patch
from awslab.local.side import side
from awslab.local.patches.stackset_operations import (
    alive,
    begin,
    check_preferences,
    now,
    refusal,
    set_instance_status,
    start,
    stop_event,
)
from awslab.local.patches.stackset_targets import (
    create_instance_stack,
    delete_instance_stack,
    update_instance_stack,
)

ACCOUNT_ID = re.compile(r"^[0-9]{12}$")


# --- the instance's view ------------------------------------------------------------------------------

def _instance_dict(self) -> dict[str, Any]:
    from moto.cloudformation.utils import generate_stack_id

    stack = getattr(self, "stack", None)
    own = side(self)
    status = own.status or "CURRENT"
    out = {"StackSetId": self.stackset_id, "Region": self.region_name, "Account": self.account_id,
           "Status": status, "ParameterOverrides": self.parameters,
           "StackInstanceStatus": {"DetailedStatus": own.detailed or "SUCCEEDED"}}
    if stack is not None:
        out["StackId"] = stack.stack_id
    elif own.status is None:
        out["StackId"] = generate_stack_id(self.stack_name, self.region_name, self.account_id)
    reason = own.reason
    if reason:
        out["StatusReason"] = reason
    if own.operation:
        out["LastOperationId"] = own.operation
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
    set_instance_status(inst, "OUTDATED", "PENDING", "User Initiated")
    return inst


# --- the requests -------------------------------------------------------------------------------------

def _targets(self, stackset, accounts: list[str], regions: list[str], deployment: dict | None) -> list[tuple[str, str]]:
    from moto.organizations.models import organizations_backends

    if not regions:
        raise refusal("ValidationError", "Regions must not be empty")
    if stackset.permission_model == "SERVICE_MANAGED":
        ous = list((deployment or {}).get("OrganizationalUnitIds") or [])
        if not ous:
            raise refusal("ValidationError", "StackSets with SERVICE_MANAGED permission model can only have "
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
            raise refusal("ValidationError", "StackSets with SELF_MANAGED permission model can only have accounts "
                                            "as target")
        accounts = list(accounts or (deployment or {}).get("Accounts") or [])
        if not accounts:
            raise refusal("ValidationError", "Accounts must not be empty")
        for a in accounts:
            if not ACCOUNT_ID.match(str(a)):
                raise refusal("ValidationError", f"1 validation error detected: Value '[{a}]' at 'accounts' failed to "
                                                "satisfy constraint: Member must satisfy regular expression pattern: "
                                                "^[0-9]{12}$")
    return [(a, r) for r in regions for a in dict.fromkeys(accounts)]


CFN_RESPONSE = "moto.cloudformation.responses:CloudFormationResponse"
GAP = "stacksets-operations"

patch("moto.cloudformation.models:StackInstance", "to_dict", gap=GAP, phase="services", kind="replace")(_instance_dict)


@patch("moto.cloudformation.models:CloudFormationBackend", gap=GAP, phase="services")
def create_stack_set(original, self, name, *a, **kw):
    if any(s.name == name and s.status != "DELETED" for s in self.stacksets.values()):
        raise refusal("NameAlreadyExistsException", f"StackSet {name} already exists")
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
    op = begin(stackset, "CREATE", todo or targets, prefs, self._get_param("OperationId"))   # or refused
    for a, r in todo:
        inst = stackset.instances.get_instance(a, r)
        if inst is None:
            stackset.instances.stack_instances.append(_new_instance(stackset, a, r, overrides))
        else:
            set_instance_status(inst, "OUTDATED", "PENDING", "User Initiated")
    if not todo:
        for result in op["_awslab_results"].values():
            result["Status"] = "SUCCEEDED"
        op.update(Status="SUCCEEDED", EndTimestamp=now())
    else:
        start(stackset, op, functools.partial(create_instance_stack, stackset, op["OperationId"]))
    return _answer({"OperationId": op["OperationId"]})


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def delete_stack_instances(self):
    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    retain = self._get_param("RetainStacks")
    if retain is None:
        raise refusal("ValidationError", "1 validation error detected: Value null at 'retainStacks' failed to "
                                        "satisfy constraint: Member must not be null")
    retain = str(retain).lower() == "true"
    prefs = _prefs_of(self)
    targets = _targets(self, stackset, self._get_param("Accounts", []), self._get_param("Regions", []),
                       self._get_params().get("DeploymentTargets"))
    targets = [(a, r) for a, r in targets if stackset.instances.get_instance(a, r) is not None]
    op = begin(stackset, "DELETE", targets, prefs, self._get_param("OperationId"))
    start(stackset, op, functools.partial(delete_instance_stack, stackset, op["OperationId"], retain))
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
        raise refusal("ValidationError", "Either TemplateBody, TemplateURL or UsePreviousTemplate must be specified")
    accounts, regions = self._get_param("Accounts", []), self._get_param("Regions", [])
    targets = [(i.account_id, i.region_name) for i in stackset.instances.stack_instances
               if (not accounts or i.account_id in accounts) and (not regions or i.region_name in regions)]
    op = begin(stackset, "UPDATE", targets, prefs, self._get_param("OperationId"))   # or refused
    params = backend._resolve_update_parameters(instance=stackset, incoming_params=self._get_param("Parameters", []))
    stackset.template = template
    stackset.parameters = params
    if self._get_param("Description") is not None:
        stackset.description = self._get_param("Description")
    tags = {t["Key"]: t["Value"] for t in self._get_param("Tags", [])}
    if tags:
        stackset.tags = tags
    for a, r in targets:
        set_instance_status(stackset.instances.get_instance(a, r), "OUTDATED", "PENDING", "User Initiated")
    if targets:
        start(stackset, op, functools.partial(update_instance_stack, stackset, op["OperationId"]))
    else:
        op.update(Status="SUCCEEDED", EndTimestamp=now())
    return _answer({"OperationId": op["OperationId"]})


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def stop_stack_set_operation(self):
    from moto.core.responses import EmptyResult

    stackset = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
    op = stackset.get_operation(self._get_param("OperationId"))
    stop = stop_event(op["OperationId"])
    if stop is None or op["Status"] not in ("RUNNING", "STOPPING"):
        raise refusal("InvalidOperationException", f"Operation {op['OperationId']} is not running")
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
            raise refusal("OperationInProgressException", f"Another Operation on StackSet {stackset.arn} is in progress")
    return original(self)


@patch(CFN_RESPONSE, gap=GAP, phase="services", kind="replace")
def list_stack_sets(self):
    status = self._get_param("Status")   # moto lists every StackSet, deleted ones too, whatever is asked
    found = [s for s in self.cloudformation_backend.list_stack_sets() if not status or s.status == status]
    return _answer({"Summaries": found})
