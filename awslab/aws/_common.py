"""What the AWS areas share: EC2's eventual-consistency retries, and ownership through the
Resource Groups Tagging API (one call that lists the ARNs tagged with the stack).

Discovery uses the tagging API to confirm ownership of RDS and ElastiCache resources found by name without a
ListTagsForResource call each. The index is eventually consistent (a resource made seconds ago may
be missing), so it is only ever a shortcut: a resource absent from it is checked with the
service's own ListTagsForResource before awslab decides it is not the stack's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

from botocore.exceptions import ClientError

from awslab.spec.model import Found
from awslab.engine.run import NOT_VISIBLE_GRACE_S, Run
from awslab.engine.waiting import (
    error_code,
    retry_eventual,
    sleep_or_cancel,
    status_probe,
    visible_within,
)
from awslab.errors import OperationError
from awslab.spec.tags import TAG_STACK

# Network interfaces of a deleted instance, DB or cache linger for a while on AWS.
draining = retry_eventual({"DependencyViolation"}, within_s=15 * 60)
# A just-created EC2 resource may not be visible to the next call yet.
ec2_not_visible_yet = retry_eventual({"InvalidVpcID.NotFound", "InvalidSubnetID.NotFound",
                                      "InvalidInternetGatewayID.NotFound", "InvalidRouteTableID.NotFound",
                                      "InvalidGroup.NotFound"}, within_s=60)


def stack_arns(run: Run) -> frozenset[str]:
    """Every ARN in the region tagged awslab:stack=<stack> (computed once per run)."""

    def fetch() -> frozenset[str]:
        arns: set[str] = set()
        pages = run.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
            TagFilters=[{"Key": TAG_STACK, "Values": [run.stack]}])
        for page in pages:
            arns.update(r["ResourceARN"] for r in page["ResourceTagMappingList"])
        return frozenset(arns)

    return run.memo("stack-arns", fetch)


def awslab_tagged(run: Run) -> dict[str, dict[str, str]]:
    """Every resource in the region tagged ``awslab:stack`` (any stack): its tags, by ARN."""
    out: dict[str, dict[str, str]] = {}
    pages = run.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": TAG_STACK}])
    for page in pages:
        for r in page["ResourceTagMappingList"]:
            out[r["ResourceARN"]] = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
    return out


def owned(run: Run, arn: str, tags_of: Callable[[str], dict[str, str]]) -> bool:
    """Is ``arn`` this stack's? The tagging index first, the service's own tags when it is not there."""
    if arn in stack_arns(run):
        return True
    return tags_of(arn).get(TAG_STACK) == run.stack


def stack_filter(stack: str) -> list[dict]:
    """An EC2 describe filter for the stack's tag."""
    return [{"Name": f"tag:{TAG_STACK}", "Values": [stack]}]


def tag_spec(run: Run, resource_type: str, key: str, name: str) -> list[dict]:
    """TagSpecifications for an EC2 create: the stack's tags and a Name."""
    return [{"ResourceType": resource_type, "Tags": run.tag_list(key, name)}]


def availability_zones(run: Run, spec: dict) -> list[str]:
    """The lab's AZs: as set, or the region's first available ones (asked once per run): two, or
    three where the subnet asks for a third (a Multi-AZ DB cluster's private-c)."""
    need = 3 if spec.get("az_index", 0) >= 2 else 2
    if spec.get("azs"):
        return list(spec["azs"])

    def available() -> list[str]:
        zones = run.client("ec2").describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
        )["AvailabilityZones"]
        return sorted(z["ZoneName"] for z in zones)[:3]

    zones = run.memo("azs", available)
    if len(zones) < need:
        raise OperationError(f"region {run.ctx.region} has fewer than {'three' if need == 3 else 'two'} available AZs",
                             "a Multi-AZ DB cluster needs three: choose another region, or database.deployment=instance"
                             if need == 3 else "choose another region")
    return zones[:need]


# Describe and filter by id for each kind EC2 deletes: a filter never answers "not found".
_LISTED_BY = {"VpcId": ("describe_vpcs", "Vpcs", "vpc-id"),
              "InternetGatewayId": ("describe_internet_gateways", "InternetGateways", "internet-gateway-id"),
              "SubnetId": ("describe_subnets", "Subnets", "subnet-id"),
              "RouteTableId": ("describe_route_tables", "RouteTables", "route-table-id"),
              "GroupId": ("describe_security_groups", "SecurityGroups", "group-id"),
              "InstanceId": ("describe_instances", "Reservations", "instance-id")}
GONE_CONFIRM_S = 60.0


def delete_confirmed(run: Run, call, *, still: Callable[[dict], bool] = lambda item: True, **kwargs) -> None:
    """Delete (or detach) an EC2 resource; its "not found" is believed once a filtered describe agrees.

    Right after a create, EC2 can answer "not found" for an id that exists (eventual consistency);
    taking that for "already deleted" would leave the resource billing. A rerun after a crash,
    where it really is gone, still lands here as done. ``still(item)`` says whether the listed
    resource still needs the call (for a detach: still attached).
    """
    id_param = next(k for k in kwargs if k in _LISTED_BY)
    ident = kwargs[id_param]
    method, list_key, filter_name = _LISTED_BY[id_param]
    describe = getattr(run.client("ec2"), method)
    deadline = run.clock.now() + GONE_CONFIRM_S
    while True:
        try:
            call(**kwargs)
            return
        except ClientError as exc:
            if not error_code(exc).endswith("NotFound"):
                raise
        listed = describe(Filters=[{"Name": filter_name, "Values": [ident]}])[list_key]
        if list_key == "Reservations":   # a terminated instance stays listed for a while, gone all the same
            listed = [i for r in listed for i in r["Instances"]
                      if i["State"]["Name"] not in ("shutting-down", "terminated")]
        if not [item for item in listed if still(item)]:
            return
        if run.clock.now() >= deadline:
            raise OperationError(f"EC2 says {ident} is not found, yet still lists it after {GONE_CONFIRM_S:.0f}s",
                                 "rerun `awslab down`")
        sleep_or_cancel(run.cancel, 0.2 if run.ctx.is_local else 2.0, f"{ident} to be deletable")


def snapshot_ready(run: Run, f: Found, what: str, describe: Callable[[], dict], status_key: str,
                   not_found: set[str], failed: set[str], attrs_of: Callable[[dict], dict]) -> Found:
    """Wait until the snapshot ``f`` is available (a new one may not be listed for a few seconds) and
    return it with the attributes of its last description."""
    latest: dict = {}
    probe = visible_within(status_probe(describe, status_key, not_found, latest), NOT_VISIBLE_GRACE_S, run.clock)
    state = run.wait(f.key, what, probe, done={"available"}, failed=failed, kind=f.kind)
    return replace(f, state=state, attrs={**f.attrs, **attrs_of(latest)})


def utc(t: datetime) -> datetime:
    """A time RDS gave (botocore parses some with a zone, an emulator's may lack one) in UTC."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
