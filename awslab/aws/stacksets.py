"""CloudFormation StackSets: the calls behind `awslab class ... --stackset`.

A class on StackSets is one StackSet, ``awslab-<class>``, of the lab's exported template, with a
stack instance per student account (and region). Self-managed permissions (``--accounts``) need
AWS's two roles: ``AWSCloudFormationStackSetAdministrationRole`` in the account awslab runs from
and ``AWSCloudFormationStackSetExecutionRole`` in each student account (policies/README.md);
service-managed ones (``--ou``) need StackSets' trusted access in AWS Organizations. Every
operation is asynchronous on AWS: it is watched until it ends, one result per account as it comes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import ClientError

from awslab.errors import OperationError

PREFIX = "awslab-"
ADMIN_ROLE = "AWSCloudFormationStackSetAdministrationRole"
EXECUTION_ROLE = "AWSCloudFormationStackSetExecutionRole"
ORGANIZATION_ROLE = "OrganizationAccountAccessRole"   # how an organization's management account enters a member
RUNNING = ("RUNNING", "STOPPING", "QUEUED")
TERMINAL_TARGET = ("SUCCEEDED", "FAILED", "CANCELLED")
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]


def stackset_name(class_name: str) -> str:
    return f"{PREFIX}{class_name}"


def describe(cfn, name: str) -> dict | None:
    try:
        return cfn.describe_stack_set(StackSetName=name)["StackSet"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "StackSetNotFoundException":
            return None
        raise


def instances(cfn, name: str) -> list[dict]:
    out: list[dict] = []
    for page in cfn.get_paginator("list_stack_instances").paginate(StackSetName=name):
        out += page["Summaries"]
    return out


def preferences(max_concurrent: int, failure_tolerance: int) -> dict:
    """At most ``max_concurrent`` accounts at a time; stop a region after ``failure_tolerance``
    failures. AWS's default mode caps the concurrency at tolerance + 1: asked for more, the soft
    mode keeps it."""
    mode = "SOFT_FAILURE_TOLERANCE" if max_concurrent > failure_tolerance + 1 else "STRICT_FAILURE_TOLERANCE"
    return {"MaxConcurrentCount": max_concurrent, "FailureToleranceCount": failure_tolerance,
            "ConcurrencyMode": mode, "RegionConcurrencyType": "SEQUENTIAL"}


def create(cfn, name: str, body: str, parameters: dict[str, str], tags: dict[str, str], service_managed: bool,
           description: str) -> None:
    args = {"StackSetName": name, "TemplateBody": body, "Capabilities": CAPABILITIES, "Description": description,
            "Parameters": _params(parameters), "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            "PermissionModel": "SERVICE_MANAGED" if service_managed else "SELF_MANAGED"}
    if service_managed:   # new accounts in the OU get the lab; a removed account's stack goes with it
        args["AutoDeployment"] = {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    cfn.create_stack_set(**args)


def update(cfn, name: str, body: str, parameters: dict[str, str], tags: dict[str, str], prefs: dict) -> str:
    return cfn.update_stack_set(StackSetName=name, TemplateBody=body, Capabilities=CAPABILITIES,
                                Parameters=_params(parameters), Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                                OperationPreferences=prefs)["OperationId"]


def create_instances(cfn, name: str, accounts: list[str], ous: list[str], regions: list[str], prefs: dict) -> str:
    where = {"DeploymentTargets": {"OrganizationalUnitIds": ous}} if ous else {"Accounts": accounts}
    return cfn.create_stack_instances(StackSetName=name, Regions=regions, OperationPreferences=prefs,
                                      **where)["OperationId"]


def delete_instances(cfn, name: str, accounts: list[str], ous: list[str], regions: list[str], prefs: dict) -> str:
    where = {"DeploymentTargets": {"OrganizationalUnitIds": ous}} if ous else {"Accounts": accounts}
    return cfn.delete_stack_instances(StackSetName=name, Regions=regions, OperationPreferences=prefs,
                                      RetainStacks=False, **where)["OperationId"]


def delete(cfn, name: str) -> None:
    cfn.delete_stack_set(StackSetName=name)


def running_operation(cfn, name: str) -> str | None:
    """The StackSet's operation still running (a run that was interrupted left it), if any."""
    for page in cfn.get_paginator("list_stack_set_operations").paginate(StackSetName=name):
        for op in page["Summaries"]:
            if op["Status"] in RUNNING:
                return op["OperationId"]
    return None


@dataclass
class Watched:
    status: str
    results: dict[tuple[str, str], dict] = field(default_factory=dict)   # (account, region) -> summary
    seconds: float = 0.0


def watch(cfn, name: str, operation: str, *, on_result: Callable[[dict, float], None], first_delay_s: float,
          max_delay_s: float, bound_s: float) -> Watched:
    """Poll the operation until it ends (at most ``bound_s``): ``on_result(summary, seconds)`` once
    per target as its result comes in; the polls grow from ``first_delay_s`` to ``max_delay_s``."""
    t0 = time.monotonic()
    delay = first_delay_s
    seen: dict[tuple[str, str], dict] = {}
    while True:
        status = cfn.describe_stack_set_operation(StackSetName=name, OperationId=operation)["StackSetOperation"]["Status"]
        for page in cfn.get_paginator("list_stack_set_operation_results").paginate(StackSetName=name,
                                                                                   OperationId=operation):
            for row in page["Summaries"]:
                key = (row["Account"], row["Region"])
                if row["Status"] in TERMINAL_TARGET and key not in seen:
                    seen[key] = row
                    on_result(row, time.monotonic() - t0)
        if status not in RUNNING:
            return Watched(status, seen, time.monotonic() - t0)
        if time.monotonic() - t0 > bound_s:
            raise OperationError(f"StackSet {name}: operation {operation} still {status} after {bound_s / 60:.0f} min "
                                 f"({len(seen)} accounts done); it goes on in AWS: rerun the command to follow it")
        time.sleep(delay)   # Ctrl-C here leaves the operation running in AWS: a rerun follows it
        delay = min(max_delay_s, delay * 1.5)


def admin_role_present(iam, role_arn_or_name: str) -> bool:
    try:
        iam.get_role(RoleName=role_arn_or_name.rsplit("/", 1)[-1])
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return False
        raise


def role_documents(admin_account: str) -> tuple[str, str, str]:
    """(administration trust, administration permissions, execution trust) as AWS's own templates
    for self-managed StackSets write them."""
    admin_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                           "Principal": {"Service": "cloudformation.amazonaws.com"}}]}
    admin_perms = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                           "Resource": f"arn:*:iam::*:role/{EXECUTION_ROLE}"}]}
    exec_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{admin_account}:root"}}]}
    return json.dumps(admin_trust), json.dumps(admin_perms), json.dumps(exec_trust)


def ensure_role(iam, name: str, trust: str, inline: str | None = None, managed: str | None = None) -> bool:
    """Make the role unless it exists; True if made."""
    try:
        iam.get_role(RoleName=name)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Tags=[{"Key": "awslab:purpose", "Value": "stacksets"}])
    if inline:
        iam.put_role_policy(RoleName=name, PolicyName="AssumeRole-AWSCloudFormationStackSetExecutionRole",
                            PolicyDocument=inline)
    if managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=managed)
    return True


def _params(parameters: dict[str, str]) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
