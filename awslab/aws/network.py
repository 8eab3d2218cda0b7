"""VPC, internet gateway, subnets and the public route table: find, create, complete, delete.

Every EC2 create carries its tags in ``TagSpecifications`` so a resource is never untagged, even
if awslab dies right after the call. Multi-call resources (a gateway and its attachment, a route
table and its route and association) are completed by ``complete`` when found half-made.
"""

from __future__ import annotations

from dataclasses import replace

from botocore.exceptions import ClientError

from awslab.aws._common import (
    availability_zones,
    delete_confirmed,
    draining,
    ec2_not_visible_yet,
    stack_filter,
    tag_spec,
)
from awslab.spec import cfn
from awslab.spec.model import Desired, Found
from awslab.engine.run import Run, create_once
from awslab.engine.waiting import error_code, ignoring
from awslab.spec.tags import (
    TAG_CLASS,
    TAG_CREATED,
    TAG_LAB_FILE,
    TAG_OVERRIDES,
    TAG_RESOURCE,
    TAG_STACK,
    as_tag_list,
    encode_overrides,
    from_tag_list,
    utc_now_text,
)

TAG_VPC_DNS = "awslab:vpc-dns"


def _key_of(tags: dict[str, str]) -> str | None:
    return tags.get(TAG_RESOURCE)


def discover(run: Run) -> list[Found]:
    """Every network resource tagged with the stack (reads only)."""
    ec2 = run.client("ec2")
    flt = stack_filter(run.stack)
    out: list[Found] = []
    for vpc in ec2.describe_vpcs(Filters=flt)["Vpcs"]:
        tags = from_tag_list(vpc.get("Tags"))
        out.append(Found(_key_of(tags) or "network.vpc", "vpc", vpc["VpcId"], vpc["State"],
                         attrs={"cidr": vpc["CidrBlock"], "tags": tags, "raw": vpc}))
    for igw in ec2.describe_internet_gateways(Filters=flt)["InternetGateways"]:
        tags = from_tag_list(igw.get("Tags"))
        attached = [a["VpcId"] for a in igw.get("Attachments", []) if a.get("State") in ("available", "attached")]
        out.append(Found(_key_of(tags) or "network.igw", "internet-gateway", igw["InternetGatewayId"],
                         "attached" if attached else "detached", attrs={"vpcs": attached, "tags": tags}))
    for sn in ec2.describe_subnets(Filters=flt)["Subnets"]:
        tags = from_tag_list(sn.get("Tags"))
        out.append(Found(_key_of(tags) or f"network.subnet.{sn['SubnetId']}", "subnet", sn["SubnetId"], sn["State"],
                         attrs={"cidr": sn["CidrBlock"], "az": sn["AvailabilityZone"], "vpc": sn["VpcId"], "tags": tags,
                                "raw": sn}))
    for rt in ec2.describe_route_tables(Filters=flt)["RouteTables"]:
        tags = from_tag_list(rt.get("Tags"))
        routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in rt.get("Routes", [])}
        assocs = {a["SubnetId"]: a["RouteTableAssociationId"] for a in rt.get("Associations", []) if a.get("SubnetId")}
        out.append(Found(_key_of(tags) or "network.routes.public", "route-table", rt["RouteTableId"], "available",
                         attrs={"routes": routes, "associations": assocs, "tags": tags}))
    return out


class Vpc:
    kind = "vpc"
    capabilities = frozenset({"export", "update"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The VPC, carrying the stack's record (spec/tags.py): awslab rebuilds the same lab from its tags alone."""
        return cfn.Export({"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {
            "CidrBlock": cfn.ref("VpcCidr"), "EnableDnsSupport": True, "EnableDnsHostnames": True,
            "Tags": cfn.tags("network.vpc", x.lab, x.names["network.vpc"]) + [
                {"Key": TAG_VPC_DNS, "Value": "enabled"},
                {"Key": TAG_OVERRIDES, "Value": encode_overrides(list(x.overrides)) or "[]"}]
            + ([{"Key": TAG_LAB_FILE, "Value": x.lab_file}] if x.lab_file else [])
            + ([{"Key": TAG_CLASS, "Value": x.klass}] if x.klass else [])}}})

    def create(self, run: Run, d: Desired) -> Found:
        ec2 = run.client("ec2")
        # The stack's record rides on its VPC from the first call (`stacks`, `sweep`, any machine).
        record = {k: v for k, v in (d.spec.get("record") or {}).items() if v}
        spec = tag_spec(run, "vpc", d.key, d.name)
        spec[0]["Tags"] += as_tag_list({TAG_CREATED: utc_now_text(), **record})
        vpc = create_once(run, f"VPC {d.name}",
                          lambda once: once.create_vpc(CidrBlock=d.spec["cidr"], TagSpecifications=spec)["Vpc"],
                          lambda: _tagged_one(run, ec2.describe_vpcs, "Vpcs", d.key))
        found = Found(d.key, self.kind, vpc["VpcId"], vpc.get("State", "pending"),
                      attrs={"cidr": d.spec["cidr"], "tags": from_tag_list(vpc.get("Tags"))})
        run.wait(d.key, f"VPC {found.id}", lambda: _describe_one(ec2.describe_vpcs, "Vpcs", VpcIds=[found.id]).get("State", "pending"),
                 done={"available"})
        return self.complete(run, d, replace(found, state="available"))

    def incomplete(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        # A process killed between CreateVpc and the attribute calls leaves a VPC without DNS
        # hostnames; the tag written after them says they were made (and costs discovery nothing).
        why = [] if f.get("tags", {}).get(TAG_VPC_DNS) == "enabled" else ["DNS support and hostnames not confirmed"]
        changed = _record_changes(d, f)
        if changed:
            why.append("stack record: " + ", ".join(f"{k.split(':')[1]} {v or '(none)'}" for k, v in changed.items()))
        return "; ".join(why) or None

    def complete(self, run: Run, d: Desired, f: Found) -> Found:
        ec2 = run.client("ec2")
        tags = f.attrs.setdefault("tags", {})
        if tags.get(TAG_VPC_DNS) != "enabled":
            # One attribute per call is all ModifyVpcAttribute takes. DNS hostnames let SSM and the DB
            # endpoints resolve inside the VPC.
            ec2_not_visible_yet(ec2.modify_vpc_attribute)(VpcId=f.id, EnableDnsSupport={"Value": True})
            ec2_not_visible_yet(ec2.modify_vpc_attribute)(VpcId=f.id, EnableDnsHostnames={"Value": True})
            ec2_not_visible_yet(ec2.create_tags)(Resources=[f.id], Tags=[{"Key": TAG_VPC_DNS, "Value": "enabled"}])
            tags[TAG_VPC_DNS] = "enabled"
        changed = _record_changes(d, f)
        kept = {k: v for k, v in changed.items() if v}
        if kept:
            ec2_not_visible_yet(ec2.create_tags)(Resources=[f.id], Tags=as_tag_list(kept))
        cleared = [k for k, v in changed.items() if not v]
        if cleared:
            ec2.delete_tags(Resources=[f.id], Tags=[{"Key": k} for k in cleared])
        tags.update(kept)
        for k in cleared:
            tags.pop(k, None)
        return f

    def delete(self, run: Run, f: Found) -> None:
        delete_confirmed(run, draining(run.client("ec2").delete_vpc), VpcId=f.id)


class InternetGateway:
    kind = "internet-gateway"
    capabilities = frozenset({"export", "update"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        return cfn.Export({
            "InternetGateway": {"Type": "AWS::EC2::InternetGateway",
                                "Properties": {"Tags": cfn.tags("network.igw", x.lab, x.names["network.igw"])}},
            "GatewayAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
                "VpcId": cfn.ref("Vpc"), "InternetGatewayId": cfn.ref("InternetGateway")}}})

    def create(self, run: Run, d: Desired) -> Found:
        igw = create_once(run, f"internet gateway {d.name}",
                          lambda once: once.create_internet_gateway(
                              TagSpecifications=tag_spec(run, "internet-gateway", d.key, d.name))["InternetGateway"],
                          lambda: _tagged_one(run, run.client("ec2").describe_internet_gateways, "InternetGateways", d.key))
        return self.complete(run, d, Found(d.key, self.kind, igw["InternetGatewayId"], "detached", attrs={"vpcs": []}))

    def incomplete(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        vpc = found.get("network.vpc")
        return None if vpc is not None and vpc.id in f.get("vpcs", []) else "not attached to the VPC"

    def complete(self, run: Run, d: Desired, f: Found) -> Found:
        vpc_id = run.ref("network.vpc").id
        if vpc_id not in f.get("vpcs", []):
            with ignoring("Resource.AlreadyAssociated"):
                ec2_not_visible_yet(run.client("ec2").attach_internet_gateway)(InternetGatewayId=f.id, VpcId=vpc_id)
        return replace(f, state="attached", attrs={**f.attrs, "vpcs": [vpc_id]})

    def delete(self, run: Run, f: Found) -> None:
        ec2 = run.client("ec2")
        for vpc_id in f.get("vpcs", []):
            with ignoring("Gateway.NotAttached"):
                delete_confirmed(run, draining(ec2.detach_internet_gateway), InternetGatewayId=f.id, VpcId=vpc_id,
                                 still=lambda igw, v=vpc_id: any(a.get("VpcId") == v for a in igw.get("Attachments", [])))
        delete_confirmed(run, ec2.delete_internet_gateway, InternetGatewayId=f.id)


class Subnet:
    kind = "subnet"
    capabilities = frozenset({"export", "replace"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The public subnet (in the first AZ) and the private ones (an AZ each), each CIDR a parameter."""
        public = "network.subnet.public"
        keys = (public, *x.private_subnets)
        return cfn.Export({cfn.LOGICAL[key]: {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": cfn.ref("Vpc"), "CidrBlock": cfn.ref(f"{cfn.LOGICAL[key]}Cidr"), "AvailabilityZone": zone,
            "MapPublicIpOnLaunch": key == public, "Tags": cfn.tags(key, x.lab, x.names[key])}}
            for key, zone in zip(keys, [x.azs[0], *x.azs])})

    def create(self, run: Run, d: Desired) -> Found:
        ec2 = run.client("ec2")
        az = availability_zones(run, d.spec)[d.spec["az_index"]]
        sn = create_once(run, f"subnet {d.name}",
                         lambda once: ec2_not_visible_yet(once.create_subnet)(
                             VpcId=run.ref("network.vpc").id, CidrBlock=d.spec["cidr"], AvailabilityZone=az,
                             TagSpecifications=tag_spec(run, "subnet", d.key, d.name))["Subnet"],
                         lambda: _tagged_one(run, ec2.describe_subnets, "Subnets", d.key))
        return Found(d.key, self.kind, sn["SubnetId"], sn.get("State", "available"),
                     attrs={"cidr": d.spec["cidr"], "az": az, "vpc": sn["VpcId"]})

    def drift(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        """A subnet cannot change its block or move to another AZ: one made otherwise (by hand, or
        by a run with other settings) is to be replaced, never adopted as if it were the lab's."""
        if f.get("cidr") and f.get("cidr") != d.spec["cidr"]:
            return f"CIDR {f.get('cidr')}, the lab wants {d.spec['cidr']} (AWS cannot change a subnet's block)"
        azs = d.spec.get("azs") or ()
        if azs and f.get("az") and f.get("az") != azs[d.spec["az_index"]]:
            return f"in {f.get('az')}, the lab wants {azs[d.spec['az_index']]} (AWS cannot move a subnet)"
        other = found.get("network.subnet.private-a") if d.key == "network.subnet.private-b" else None
        if other is not None and other.get("az") and other.get("az") == f.get("az"):
            return f"in {f.get('az')} like network.subnet.private-a: the private subnets must span two AZs"
        vpc = found.get("network.vpc")
        if vpc is not None and f.get("vpc") and f.get("vpc") != vpc.id:
            return f"in {f.get('vpc')}, not the stack's VPC {vpc.id}"
        return None

    def delete(self, run: Run, f: Found) -> None:
        delete_confirmed(run, draining(run.client("ec2").delete_subnet), SubnetId=f.id)


class RouteTable:
    """The public subnet's route table: 0.0.0.0/0 to the internet gateway (SSM needs it)."""

    kind = "route-table"
    capabilities = frozenset({"export", "update"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        return cfn.Export({
            "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {
                "VpcId": cfn.ref("Vpc"), "Tags": cfn.tags("network.routes.public", x.lab, x.names["network.routes.public"])}},
            "PublicRoute": {"Type": "AWS::EC2::Route", "DependsOn": "GatewayAttachment", "Properties": {
                "RouteTableId": cfn.ref("PublicRouteTable"), "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": cfn.ref("InternetGateway")}},
            "PublicSubnetRoutes": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
                "SubnetId": cfn.ref("PublicSubnet"), "RouteTableId": cfn.ref("PublicRouteTable")}}})

    def create(self, run: Run, d: Desired) -> Found:
        rt = ec2_not_visible_yet(run.client("ec2").create_route_table)(
            VpcId=run.ref("network.vpc").id, TagSpecifications=tag_spec(run, "route-table", d.key, d.name))["RouteTable"]
        return self.complete(run, d, Found(d.key, self.kind, rt["RouteTableId"], "available",
                                           attrs={"routes": {}, "associations": {}}))

    def incomplete(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        igw = found.get("network.igw")
        subnet = found.get("network.subnet.public")
        if igw is None or f.get("routes", {}).get("0.0.0.0/0") != igw.id:
            return "no default route to the internet gateway"
        if subnet is None or subnet.id not in f.get("associations", {}):
            return "not associated with the public subnet"
        return None

    def complete(self, run: Run, d: Desired, f: Found) -> Found:
        ec2 = run.client("ec2")
        igw_id = run.ref("network.igw").id
        subnet_id = run.ref("network.subnet.public").id
        routes = f.attrs.setdefault("routes", {})
        if routes.get("0.0.0.0/0") != igw_id:
            try:
                if "0.0.0.0/0" in routes:
                    ec2.replace_route(RouteTableId=f.id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
                else:
                    ec2_not_visible_yet(ec2.create_route)(RouteTableId=f.id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
            except ClientError as exc:
                # A retried CreateRoute whose first attempt AWS carried out: point it where it belongs.
                if error_code(exc) != "RouteAlreadyExists":
                    raise
                ec2.replace_route(RouteTableId=f.id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
            routes["0.0.0.0/0"] = igw_id
        assocs = f.attrs.setdefault("associations", {})
        if subnet_id not in assocs:
            try:
                assocs[subnet_id] = ec2_not_visible_yet(ec2.associate_route_table)(
                    RouteTableId=f.id, SubnetId=subnet_id)["AssociationId"]
            except ClientError as exc:
                # A retried association whose first attempt AWS carried out.
                if error_code(exc) != "Resource.AlreadyAssociated":
                    raise
                table = ec2.describe_route_tables(RouteTableIds=[f.id])["RouteTables"][0]
                mine = [a["RouteTableAssociationId"] for a in table.get("Associations", []) if a.get("SubnetId") == subnet_id]
                if not mine:
                    raise
                assocs[subnet_id] = mine[0]
        return f

    def delete(self, run: Run, f: Found) -> None:
        ec2 = run.client("ec2")
        for assoc_id in f.get("associations", {}).values():
            _ignore_missing(ec2.disassociate_route_table, AssociationId=assoc_id)
        delete_confirmed(run, draining(ec2.delete_route_table), RouteTableId=f.id)


def _record_changes(d: Desired, f: Found) -> dict[str, str]:
    """The stack-record tags this `up` sets that the VPC does not have as asked ("": to remove)."""
    tags = f.get("tags") or {}
    return {k: v for k, v in (d.spec.get("record") or {}).items() if (tags.get(k) or "") != v}


def stack_records(run: Run, stack: str | None = None) -> dict[str, dict[str, str]]:
    """Every awslab stack's record in the region (or one stack's): its VPC's tags, by stack name."""
    flt = stack_filter(stack) if stack else [{"Name": "tag-key", "Values": [TAG_STACK]}]
    out: dict[str, dict[str, str]] = {}
    for page in run.client("ec2").get_paginator("describe_vpcs").paginate(Filters=flt):
        for vpc in page["Vpcs"]:
            tags = from_tag_list(vpc.get("Tags"))
            if tags.get(TAG_RESOURCE) == "network.vpc" and tags.get(TAG_STACK):
                out[tags[TAG_STACK]] = {**tags, "vpc_id": vpc["VpcId"]}
    return out


def tag_vpc(run: Run, vpc_id: str, tags: dict[str, str]) -> None:
    """Set tags on a stack's VPC (its record; a sweeper's claim)."""
    run.client("ec2").create_tags(Resources=[vpc_id], Tags=as_tag_list(tags))


def regions(run: Run) -> list[dict]:
    """The account's regions (DescribeRegions): name and opt-in status."""
    return run.client("ec2").describe_regions()["Regions"]


def vpc_routing(run: Run, vpc_id: str) -> dict[str, list[dict]]:
    """Every subnet, route table (the main one included) and network ACL of the VPC, for verify."""
    ec2 = run.client("ec2")
    flt = [{"Name": "vpc-id", "Values": [vpc_id]}]
    return {
        "subnets": ec2.describe_subnets(Filters=flt)["Subnets"],
        "route_tables": ec2.describe_route_tables(Filters=flt)["RouteTables"],
        "nacls": ec2.describe_network_acls(Filters=flt)["NetworkAcls"],
    }


def _tagged_one(run: Run, describe, list_key: str, key: str) -> dict | None:
    """The stack's resource tagged as ``key``, if AWS lists one (what a lost create may have made)."""
    flt = stack_filter(run.stack) + [{"Name": f"tag:{TAG_RESOURCE}", "Values": [key]}]
    items = describe(Filters=flt)[list_key]
    return items[0] if items else None


def _describe_one(call, list_key: str, **kwargs) -> dict:
    try:
        items = call(**kwargs)[list_key]
    except ClientError as exc:
        if error_code(exc).endswith(".NotFound"):
            return {}
        raise
    return items[0] if items else {}


def _ignore_missing(call, **kwargs) -> None:
    """Deleting what is already gone is done (a rerun after a crash lands here)."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if not error_code(exc).endswith("NotFound"):
            raise
