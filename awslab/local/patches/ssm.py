"""SSM: Run Command that really runs, and the managed instances listed.

moto answers ``SendCommand`` with ``Success`` and empty output whatever the command, has no
``ListCommandInvocations`` and answers ``DescribeInstanceInformation`` with an HTTP 500. Here:

- ``SendCommand`` with ``AWS-RunShellScript`` checks its targets as AWS does (each a running
  instance the SSM agent manages, i.e. one whose instance profile's role lets it talk to SSM; else
  ``InvalidInstanceId``), answers ``Pending`` at once, then runs the commands for real on each
  instance (local/instances.py: its own directory, the lab's clients, the endpoints as it sees
  them), within the document's ``executionTimeout``. ``GetCommandInvocation`` and
  ``ListCommandInvocations`` give the real output (AWS's 24,000 and 2,500 characters at most),
  the exit code as ``ResponseCode`` and SSM's statuses: ``InProgress``, ``Success``, ``Failed``,
  ``TimedOut`` (the process stopped), ``Cancelled`` (``CancelCommand``).
- another document SSM has but awslab does not run locally fails its invocations with a line
  saying so; an unknown one is AWS's ``InvalidDocument``.
- ``DescribeInstanceInformation`` lists the managed instances (``Online``, Linux).

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

from datetime import datetime, timezone

from awslab.local import instances
from awslab.local.patches._patch import patch
from awslab.local.side import note, side

SHELL = "AWS-RunShellScript"
SSM_POLICY_MARKERS = ("AmazonSSMManagedInstanceCore", "AmazonEC2RoleforSSM", "AmazonSSMFullAccess")


def _role_talks_to_ssm(role) -> bool:
    arns = " ".join(getattr(role, "managed_policies", {}) or {})
    if any(m in arns for m in SSM_POLICY_MARKERS):
        return True
    inline = " ".join(str(p) for p in (getattr(role, "policies", {}) or {}).values())
    return "ssm:UpdateInstanceInformation" in inline or "ssmmessages:" in inline or '"ssm:*"' in inline


def managed(ec2, iam, inst) -> bool:
    """Would the SSM agent on ``inst`` be registered: running, with a role that may talk to SSM?"""
    if inst._state.name != "running":
        return False
    profile = None
    assoc = getattr(ec2, "iam_instance_profile_associations", {}).get(inst.id)
    if assoc is not None:
        profile = assoc.iam_instance_profile
    elif isinstance(inst.iam_instance_profile, dict):
        ref = inst.iam_instance_profile.get("Name") or (inst.iam_instance_profile.get("Arn") or "").rsplit("/", 1)[-1]
        try:
            profile = iam.get_instance_profile(ref) if ref else None
        except Exception:  # noqa: BLE001 - moto's NoSuchEntity: no profile, not managed
            profile = None
    return profile is not None and any(_role_talks_to_ssm(r) for r in getattr(profile, "roles", []))


def _backends(account: str, region: str):
    from moto.ec2.models import ec2_backends
    from moto.iam.models import iam_backends
    return ec2_backends[account][region], iam_backends[account]["global"]


SSM_BACKEND = "moto.ssm.models:SimpleSystemManagerBackend"
SSM_RESPONSE = "moto.ssm.responses:SimpleSystemManagerResponse"
GAP = "ssm-run-command"


@patch(SSM_BACKEND, gap=GAP, phase="services")
def send_command(original, self, **kw):
    from moto.ssm.exceptions import InvalidDocument
    from moto.ssm.exceptions import SSMException as RESTError

    name = kw.get("document_name") or ""
    if name != SHELL and not name.startswith("arn:"):
        try:
            self.get_document(name, None, None, "JSON")
        except Exception:  # noqa: BLE001 - moto's InvalidDocument for an unknown name
            raise InvalidDocument("Document with name %s does not exist." % name) from None
    ec2, iam = _backends(self.account_id, self.region_name)
    targets = list(kw.get("instance_ids") or [])
    bad = []
    for iid in targets:
        try:
            inst = ec2.get_instance(iid)
        except Exception:  # noqa: BLE001 - moto's InvalidInstanceID.NotFound
            inst = None
        if inst is None or not managed(ec2, iam, inst):
            bad.append(iid)
    if bad:
        raise RESTError("InvalidInstanceId", f"Instances [[{', '.join(bad)}]] not in a valid state for account "
                                             f"{self.account_id}")
    command = original(self, **kw)
    command.status, command.status_details = "Pending", "Pending"
    command.completed_count, command.error_count = 0, 0
    command.requested_date_time = datetime.now(timezone.utc)
    for inv in command.invocations:
        inv.update(Status="Pending", StatusDetails="Pending", ResponseCode=-1, ExecutionStartDateTime="",
                   ExecutionEndDateTime="", ExecutionElapsedTime="PT0S", StandardOutputContent="",
                   StandardErrorContent="", PluginName="aws:runShellScript")
    params = kw.get("parameters") or {}
    script = "\n".join(params.get("commands") or [])
    timeout = int((params.get("executionTimeout") or ["3600"])[0])
    unsupported = None if name == SHELL else f"the local AWS runs {SHELL} only, not {name}"
    # Run once the answer (Pending, as AWS answers) is written: see send_command_request.
    note(self, to_run=(command, self.region_name, script, timeout, unsupported))
    return command


@patch("moto.ssm.models:Command", gap="ssm-command-every-instance", phase="objects")
def _get_instance_ids_from_targets(original, self):
    """A command names its instances by ``InstanceIds`` or by ``Targets``, and runs on those
    alone. moto turns no ``Targets`` into an EC2 filter of nothing, which every instance of the
    region matches: each command ran on every host there, other stacks' and other students' too."""
    return original(self) if self.targets else []


@patch(SSM_RESPONSE, "send_command", gap=GAP, phase="services")
def send_command_request(original, self):
    result = original(self)
    pending = side(self.ssm_backend).to_run
    if pending is not None:
        note(self.ssm_backend, to_run=None)
        instances.run(*pending)
    return result


@patch(SSM_BACKEND, gap=GAP, phase="services", kind="add")
def cancel_command(self, command_id: str, instance_ids: list[str]) -> None:
    command = self.get_command_by_id(command_id)
    instances.cancel(command, instance_ids or command.instance_ids)


@patch(SSM_RESPONSE, "cancel_command", gap=GAP, phase="services", kind="add")
def cancel_command_request(self):
    from moto.core.responses import ActionResult

    self.ssm_backend.cancel_command(self._get_param("CommandId"), self._get_param("InstanceIds", []))
    return ActionResult({})


@patch(SSM_RESPONSE, gap=GAP, phase="services", kind="add")
def list_command_invocations(self):
    from moto.core.responses import ActionResult

    command_id, instance_id = self._get_param("CommandId"), self._get_param("InstanceId")
    details = bool(self._get_param("Details", False))
    found = []
    for command in self.ssm_backend.list_commands(command_id, instance_id):
        for inv in command.invocations:
            if instance_id and inv["InstanceId"] != instance_id:
                continue
            entry = {"CommandId": inv["CommandId"], "InstanceId": inv["InstanceId"],
                     "Comment": inv.get("Comment", ""), "DocumentName": inv["DocumentName"],
                     "RequestedDateTime": command.requested_date_time, "Status": inv["Status"],
                     "StatusDetails": inv["StatusDetails"], "StandardOutputUrl": "", "StandardErrorUrl": "",
                     "ServiceRole": "", "NotificationConfig": command.notification_config}
            if details:
                entry["CommandPlugins"] = [{
                    "Name": inv["PluginName"], "Status": inv["Status"], "StatusDetails": inv["StatusDetails"],
                    "ResponseCode": inv["ResponseCode"], "Output": inv["StandardOutputContent"][:2500],
                    "ResponseStartDateTime": inv["ExecutionStartDateTime"] or None,
                    "ResponseFinishDateTime": inv["ExecutionEndDateTime"] or None}]
            found.append(entry)
    return ActionResult({"CommandInvocations": found})


@patch(SSM_RESPONSE, gap=GAP, phase="services", kind="add")
def describe_instance_information(self):
    from moto.core.responses import ActionResult

    ec2, iam = _backends(self.current_account, self.region)
    listed = []
    for reservation in list(ec2.reservations.values()):
        for inst in reservation.instances:
            if not managed(ec2, iam, inst):
                continue
            address = inst.private_ip or ""
            listed.append({"InstanceId": inst.id, "PingStatus": "Online",
                           "LastPingDateTime": datetime.now(timezone.utc), "AgentVersion": "3.3.1142.0",
                           "IsLatestVersion": True, "PlatformType": "Linux", "PlatformName": "Amazon Linux",
                           "PlatformVersion": "2023", "ResourceType": "EC2Instance", "IPAddress": address,
                           "ComputerName": f"ip-{address.replace('.', '-')}.ec2.internal" if address else inst.id,
                           "SourceId": inst.id, "SourceType": "AWS::EC2::Instance"})
    ids = self._get_param("InstanceInformationFilterList") or []
    wanted = {v for f in ids if f.get("key") == "InstanceIds" for v in f.get("valueSet", [])}
    wanted |= {v for f in self._get_param("Filters") or [] if f.get("Key") == "InstanceIds" for v in f.get("Values", [])}
    if wanted:
        listed = [i for i in listed if i["InstanceId"] in wanted]
    return ActionResult({"InstanceInformationList": listed})
