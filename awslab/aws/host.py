"""The EC2 host: its IAM role and instance profile (for SSM), and the instance itself.

The instance is reached through SSM Session Manager, not SSH: its profile carries the AWS-managed
SSM core policy, IMDSv2 is required, and its user data installs the database and Redis clients.
``RunInstances`` carries a deterministic ``ClientToken`` so a retried create never makes a second
host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace

from botocore.exceptions import ClientError

from awslab.aws._common import delete_confirmed, stack_filter, tag_spec
from awslab.spec.model import Desired, Found
from awslab.engine.run import Run, create_or_adopt
from awslab.engine.waiting import error_code, ignoring, retry_eventual, unless_missing
from awslab.errors import WaitTimeout
from awslab.spec import catalog, cfn, pricing
from awslab.spec.tags import TAG_RESOURCE, from_tag_list, owned_by
from awslab.spec.topology import names

EC2_TRUST_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})
LIVE_STATES = ("pending", "running", "stopping", "stopped")
SECRETS_POLICY_NAME = "awslab-read-lab-secrets"


def secrets_policy(stack: str) -> str:
    """The host may read the lab's two secrets, so `verify` can log in from the host without the
    secret ever leaving it (nor passing through SSM's command history). The RDS-managed secret's
    name is random; RDS tags it with its instance's ARN, which derives from the stack."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DatabaseMasterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": "arn:aws:secretsmanager:*:*:secret:rds!db-*",
             "Condition": {"StringLike": {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": f"arn:aws:rds:*:*:db:{stack}-db"}}},
            {"Sid": "CacheAuthToken", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": f"arn:aws:secretsmanager:*:*:secret:awslab/{stack}/cache-auth-token-*"},
        ],
    })

# A new instance profile takes seconds to be usable by EC2 ("Invalid IAM Instance Profile name").
_profile_propagating = retry_eventual({"InvalidParameterValue"}, within_s=120, message_contains="nstance profile")
_iam_not_visible_yet = retry_eventual({"NoSuchEntity"}, within_s=60)
# The subnet and group were made moments ago; EC2 may not know them everywhere yet.
_network_not_visible_yet = retry_eventual({"InvalidSubnetID.NotFound", "InvalidGroup.NotFound"}, within_s=60)


def _cfn_secrets_policy() -> dict:
    """The host's inline policy (``secrets_policy``), the stack name the template's parameter."""

    def substituted(value):
        if isinstance(value, dict):
            return {k: substituted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [substituted(v) for v in value]
        return cfn.sub(value) if isinstance(value, str) and cfn.STACK in value else value

    return substituted(json.loads(secrets_policy(cfn.STACK)))


def user_data(db_engine: str) -> str:
    client = catalog.DB_ENGINES[db_engine]["client"]
    return (
        "#!/bin/bash\n"
        "# awslab: the database and Redis clients for the lab's exercises\n"
        f"dnf install -y {client} redis6 nmap-ncat || dnf install -y {client} nmap-ncat\n"
    )


def discover(run: Run) -> list[Found]:
    out: list[Found] = []
    name = names(run.stack, run.ctx.region)["host.profile"]
    iam = run.client("iam")
    try:
        prof = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
    else:
        tags = from_tag_list(prof.get("Tags"))
        roles = [r["RoleName"] for r in prof.get("Roles", [])]
        if not tags and name in roles:
            # CloudFormation cannot tag an instance profile (`awslab export cloudformation`): its
            # role, same name, carries the stack's tags instead.
            tags = from_tag_list(next(r for r in prof["Roles"] if r["RoleName"] == name).get("Tags")) or \
                from_tag_list(iam.get_role(RoleName=name)["Role"].get("Tags"))
        if not owned_by(tags, run.stack):
            return out + _discover_instances(run)  # not ours: never listed, so never deleted
        attached: list[str] = []
        inline: list[str] = []
        if name in roles:
            attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
            inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        out.append(Found("host.profile", "instance-profile", name, "available", created=prof.get("CreateDate"),
                         attrs={"arn": prof["Arn"], "roles": roles, "policies": attached, "inline": inline, "tags": tags}))
    return out + _discover_instances(run)


def _discover_instances(run: Run) -> list[Found]:
    out: list[Found] = []
    resp = run.client("ec2").describe_instances(Filters=stack_filter(run.stack))
    terminated = 0
    for res in resp["Reservations"]:
        for inst in res["Instances"]:
            state = inst["State"]["Name"]
            if state not in LIVE_STATES:
                terminated += 1
                continue
            tags = from_tag_list(inst.get("Tags"))
            out.append(Found(tags.get(TAG_RESOURCE) or "host.instance", "instance", inst["InstanceId"], state,
                             created=inst.get("LaunchTime"), attrs=_instance_attrs(inst)))
    run.memo("terminated-hosts", lambda: terminated)
    return out


def _instance_attrs(inst: dict) -> dict:
    return {
        "raw": inst,
        "private_ip": inst.get("PrivateIpAddress"), "public_ip": inst.get("PublicIpAddress"),
        "az": inst.get("Placement", {}).get("AvailabilityZone"), "type": inst.get("InstanceType"),
        "imds_tokens": inst.get("MetadataOptions", {}).get("HttpTokens"),
    }


class InstanceProfile:
    kind = "instance-profile"
    capabilities = frozenset({"export", "update"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The host's role (SSM's managed policies, the inline policy reading the lab's secrets) and its profile."""
        return cfn.Export({
            "HostRole": {"Type": "AWS::IAM::Role", "Properties": {
                "RoleName": x.name("host.profile"), "Description": cfn.sub(f"awslab {cfn.STACK}: the lab's EC2 host (SSM)"),
                "AssumeRolePolicyDocument": json.loads(EC2_TRUST_POLICY),
                "ManagedPolicyArns": list(x.lab.host.managed_policy_arns),
                "Policies": [{"PolicyName": SECRETS_POLICY_NAME, "PolicyDocument": _cfn_secrets_policy()}],
                "Tags": cfn.tags("host.profile", x.lab)}},
            "HostInstanceProfile": {"Type": "AWS::IAM::InstanceProfile", "Properties": {
                "InstanceProfileName": x.name("host.profile"), "Roles": [cfn.ref("HostRole")]}}})

    def create(self, run: Run, d: Desired) -> Found:
        iam = run.client("iam")
        tags = run.tag_list(d.key, d.name)
        create_or_adopt(run, f"IAM role {d.name}",
                        lambda: iam.create_role(RoleName=d.name, AssumeRolePolicyDocument=EC2_TRUST_POLICY, Tags=tags,
                                                Description=f"awslab {run.stack}: the lab's EC2 host (SSM)"),
                        "EntityAlreadyExists", lambda: iam.get_role(RoleName=d.name)["Role"],
                        lambda role: from_tag_list(role.get("Tags")))
        prof = create_or_adopt(run, f"IAM instance profile {d.name}",
                               lambda: iam.create_instance_profile(InstanceProfileName=d.name, Tags=tags)["InstanceProfile"],
                               "EntityAlreadyExists",
                               lambda: iam.get_instance_profile(InstanceProfileName=d.name)["InstanceProfile"],
                               lambda prof: from_tag_list(prof.get("Tags")))
        found = Found(d.key, self.kind, d.name, "available", attrs={
            "arn": prof["Arn"], "roles": [r["RoleName"] for r in prof.get("Roles", [])], "policies": []})
        return self.complete(run, d, found)

    def incomplete(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        if d.name not in f.get("roles", []):
            return "role not in the instance profile"
        missing = set(d.spec["managed_policy_arns"]) - set(f.get("policies", []))
        if missing:
            return f"policies not attached: {', '.join(sorted(missing))}"
        return None if SECRETS_POLICY_NAME in f.get("inline", []) else f"no {SECRETS_POLICY_NAME} policy"

    def complete(self, run: Run, d: Desired, f: Found) -> Found:
        iam = run.client("iam")
        for arn in d.spec["managed_policy_arns"]:
            if arn not in f.get("policies", []):
                _iam_not_visible_yet(iam.attach_role_policy)(RoleName=d.name, PolicyArn=arn)
        if d.name not in f.get("roles", []):
            try:
                _iam_not_visible_yet(iam.add_role_to_instance_profile)(InstanceProfileName=d.name, RoleName=d.name)
            except ClientError as exc:
                if error_code(exc) != "LimitExceeded":  # the profile already holds its one role
                    raise
        if SECRETS_POLICY_NAME not in f.get("inline", []):
            _iam_not_visible_yet(iam.put_role_policy)(RoleName=d.name, PolicyName=SECRETS_POLICY_NAME,
                                                      PolicyDocument=secrets_policy(run.stack))
        return replace(f, attrs={**f.attrs, "roles": [d.name], "policies": list(d.spec["managed_policy_arns"]),
                                 "inline": [SECRETS_POLICY_NAME]})

    def delete(self, run: Run, f: Found) -> None:
        iam = run.client("iam")
        name = f.id
        for role in f.get("roles", []):
            _ignore_no_such(iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=role)
        _ignore_no_such(iam.delete_instance_profile, InstanceProfileName=name)
        try:
            policies = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            return
        for p in policies:
            _ignore_no_such(iam.detach_role_policy, RoleName=name, PolicyArn=p["PolicyArn"])
        for inline in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            _ignore_no_such(iam.delete_role_policy, RoleName=name, PolicyName=inline)
        _ignore_no_such(iam.delete_role, RoleName=name)


def _ignore_no_such(call, **kwargs) -> None:
    with ignoring("NoSuchEntity"):
        call(**kwargs)


class Instance:
    kind = "instance"
    capabilities = frozenset({"cost", "export", "ready"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return pricing.host_lines(d.spec["instance_type"], region)

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return pricing.host_lines((f.get("raw") or {}).get("InstanceType", "?"), region, public_ip=bool(f.get("public_ip")))

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The host in the public subnet, IMDSv2 required through a launch template; its id an output
        (after the endpoints)."""
        return cfn.Export({
            "HostLaunchTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2}}}},
            "Host": {"Type": "AWS::EC2::Instance", "Properties": {
                "ImageId": cfn.ref("LatestAmiId"), "InstanceType": cfn.ref("HostInstanceType"),
                "IamInstanceProfile": cfn.ref("HostInstanceProfile"),
                "LaunchTemplate": {"LaunchTemplateId": cfn.ref("HostLaunchTemplate"),
                                   "Version": {"Fn::GetAtt": ["HostLaunchTemplate", "LatestVersionNumber"]}},
                "NetworkInterfaces": [{"DeviceIndex": "0", "SubnetId": cfn.ref("PublicSubnet"),
                                       "AssociatePublicIpAddress": True, "GroupSet": [cfn.group_id("AppSecurityGroup")]}],
                "UserData": {"Fn::Base64": user_data(x.lab.database.engine)},
                "Tags": cfn.tags("host.instance", x.lab, x.names["host.instance"])}}},
            {"HostInstanceId": {"Value": cfn.ref("Host")}}, outputs_last=True)

    def client_token(self, run: Run, subnet_id: str) -> str:
        # Same token for every retry of this create (EC2 then returns the same instance), a new one
        # for each new network and after each host terminated by hand (a terminated instance keeps
        # its token for a while, and EC2 would answer with it).
        generation = run.memo("terminated-hosts", lambda: 0)
        seed = f"{run.stack}/{run.ctx.region}/{subnet_id}/{generation}"
        return "awslab-" + hashlib.sha256(seed.encode()).hexdigest()[:32]

    def create(self, run: Run, d: Desired) -> Found:
        ec2 = run.client("ec2")
        ami = run.client("ssm").get_parameter(Name=d.spec["ami_parameter"])["Parameter"]["Value"]
        subnet_id = run.ref("network.subnet.public").id
        launch = _network_not_visible_yet(_profile_propagating(ec2.run_instances))
        resp = launch(
            ImageId=ami, InstanceType=d.spec["instance_type"], MinCount=1, MaxCount=1,
            ClientToken=self.client_token(run, subnet_id),
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [run.ref("sg.app").id],
                                "AssociatePublicIpAddress": True}],
            IamInstanceProfile={"Name": run.ref("host.profile").id},
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
            UserData=user_data(d.spec["db_engine"]),
            TagSpecifications=tag_spec(run, "instance", d.key, d.name) + tag_spec(run, "volume", d.key, d.name),
        )
        inst = resp["Instances"][0]
        found = Found(d.key, self.kind, inst["InstanceId"], inst["State"]["Name"], created=inst.get("LaunchTime"),
                      attrs=_instance_attrs(inst))
        return self.ready(run, d, found)

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        ec2 = run.client("ec2")
        latest: dict = {}

        def probe() -> str:
            resp = _not_found_ok(ec2.describe_instances, InstanceIds=[f.id])
            insts = [i for r in resp.get("Reservations", []) for i in r["Instances"]]
            if not insts:
                return "pending"  # not visible yet
            latest.update(insts[0])
            return insts[0]["State"]["Name"]

        state = run.wait(f.key, f"EC2 instance {f.id}", probe, done={"running"},
                         failed={"shutting-down", "terminated", "stopping", "stopped"}, kind="instance")
        return replace(f, state=state, attrs={**f.attrs, **_instance_attrs(latest)})

    def delete(self, run: Run, f: Found) -> None:
        ec2 = run.client("ec2")
        gone = []

        def terminate(InstanceId: str) -> None:
            ec2.terminate_instances(InstanceIds=[InstanceId])
            gone.append(False)

        delete_confirmed(run, terminate, InstanceId=f.id)
        if not gone:   # EC2 agrees it no longer exists
            return

        def probe() -> str:
            resp = _not_found_ok(ec2.describe_instances, InstanceIds=[f.id])
            insts = [i for r in resp.get("Reservations", []) for i in r["Instances"]]
            return insts[0]["State"]["Name"] if insts else "terminated"

        run.wait(f.key, f"EC2 instance {f.id} to terminate", probe, done={"terminated"}, kind="instance")


def _not_found_ok(call, **kwargs) -> dict:
    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "InvalidInstanceID.NotFound":
            return {}
        raise


# GetCommandInvocation's statuses other than Pending, InProgress and Delayed: the command is over.
COMMAND_OVER = {"Success", "Cancelled", "TimedOut", "Failed", "Cancelling"}


class HostCommand:
    """A shell script run on the host through SSM Run Command (verify's connections from inside the
    VPC). Found: the command id, its final status and its standard output. A command still running
    at the bound is returned with its last status, not waited for longer."""

    kind = "host-command"
    capabilities = frozenset()

    def create(self, run: Run, d: Desired) -> Found:
        ssm = run.client("ssm")
        instance = d.spec["instance"]
        cmd = ssm.send_command(InstanceIds=[instance], DocumentName="AWS-RunShellScript",
                               Parameters={"commands": [d.spec["script"]]}, TimeoutSeconds=60,
                               Comment=d.name)["Command"]["CommandId"]
        seen = {"status": "Pending", "output": ""}

        def probe() -> str:
            # Right after SendCommand the invocation may not exist yet.
            inv = unless_missing(lambda: ssm.get_command_invocation(CommandId=cmd, InstanceId=instance),
                                 "InvocationDoesNotExist")
            if inv is not None:
                seen.update(status=inv["Status"], output=inv.get("StandardOutputContent", ""))
            return seen["status"]

        with contextlib.suppress(WaitTimeout):
            run.wait(d.key, f"SSM command {cmd} on {instance}", probe, COMMAND_OVER, kind=self.kind, max_delay_s=5.0)
        return Found(d.key, self.kind, cmd, seen["status"], attrs={"instance": instance, "output": seen["output"]})

    def delete(self, run: Run, f: Found) -> None:
        """A command is history, not a resource: nothing to delete."""
