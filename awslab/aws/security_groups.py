"""Security groups and their rules: the host reaches the DB and the cache, and nothing else does.

Rules are declared as a set and converged: ``sg.rules`` authorizes what is missing and revokes
what is not declared on awslab's own groups (including the default allow-all egress of the host's
group). Rules between groups are by group reference, never by address. Teardown revokes the
group-referencing rules first, since AWS refuses to delete a group another group's rule names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from botocore.exceptions import ClientError

from awslab.aws._common import (
    delete_confirmed,
    draining,
    ec2_not_visible_yet,
    stack_filter,
    tag_spec,
)
from awslab.spec.model import Desired, Found
from awslab.engine.run import Run, create_or_adopt
from awslab.engine.waiting import error_code
from awslab.spec import catalog, cfn
from awslab.spec.tags import TAG_RESOURCE, from_tag_list

GROUP_KEYS = ("sg.app", "sg.db", "sg.cache")
ALL = "-1"


class Rule(NamedTuple):
    group: str        # the key of the group that holds the rule
    direction: str    # "ingress" / "egress"
    protocol: str     # "tcp" or "-1"
    from_port: int
    to_port: int
    peer: str         # a group key ("sg.app") or a CIDR

    @property
    def peer_is_group(self) -> bool:
        return self.peer.startswith("sg.")

    def describe(self) -> str:
        ports = "all" if self.protocol == ALL else (str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}")
        arrow = "from" if self.direction == "ingress" else "to"
        return f"{self.group} {self.direction} {self.protocol}/{ports} {arrow} {self.peer}"


def desired_rules(spec: dict) -> frozenset[Rule]:
    """The lab's rules. The DB and cache groups keep AWS's default egress (responses are stateful
    anyway); the host's egress is narrowed to the DB, the cache and HTTPS (SSM, package mirrors)."""
    db, cache = spec["db_port"], spec["cache_port"]
    rules = {
        Rule("sg.db", "ingress", "tcp", db, db, "sg.app"),
        Rule("sg.cache", "ingress", "tcp", cache, cache, "sg.app"),
        Rule("sg.app", "egress", "tcp", db, db, "sg.db"),
        Rule("sg.app", "egress", "tcp", cache, cache, "sg.cache"),
        Rule("sg.app", "egress", "tcp", catalog.HTTPS_PORT, catalog.HTTPS_PORT, "0.0.0.0/0"),
        Rule("sg.db", "egress", ALL, -1, -1, "0.0.0.0/0"),
        Rule("sg.cache", "egress", ALL, -1, -1, "0.0.0.0/0"),
    }
    if spec.get("ssh_cidr"):
        rules.add(Rule("sg.app", "ingress", "tcp", catalog.SSH_PORT, catalog.SSH_PORT, spec["ssh_cidr"]))
    return frozenset(rules)


def _rules_of(group: dict, key_by_id: dict[str, str]) -> set[Rule]:
    out: set[Rule] = set()
    for direction, field in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
        for perm in group.get(field, []):
            proto = perm.get("IpProtocol", ALL)
            lo, hi = perm.get("FromPort", -1), perm.get("ToPort", -1)
            if proto == ALL:
                lo = hi = -1
            peers = [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
            peers = [key_by_id.get(g, g) for g in peers]
            peers += [r["CidrIp"] for r in perm.get("IpRanges", [])]
            peers += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
            peers += [r["PrefixListId"] for r in perm.get("PrefixListIds", [])]
            out.update(Rule(key_by_id[group["GroupId"]], direction, proto, lo, hi, p) for p in peers)
    return out


def discover(run: Run) -> list[Found]:
    groups = run.client("ec2").describe_security_groups(Filters=stack_filter(run.stack))["SecurityGroups"]
    key_by_id: dict[str, str] = {}
    out: list[Found] = []
    for g in groups:
        tags = from_tag_list(g.get("Tags"))
        key = tags.get(TAG_RESOURCE) or f"sg.{g['GroupId']}"
        key_by_id[g["GroupId"]] = key
        out.append(Found(key, "security-group", g["GroupId"], "available",
                         attrs={"name": g["GroupName"], "vpc": g.get("VpcId"), "tags": tags}))
    if groups:
        rules = set().union(*(_rules_of(g, key_by_id) for g in groups))
        out.append(Found("sg.rules", "security-group-rules", f"{len(rules)} rules", "available",
                         attrs={"rules": frozenset(rules)}))
    return out


def vpc_groups(run: Run, vpc_id: str) -> dict[str, dict]:
    """Every security group of the VPC (awslab's and any other), by id, for verify."""
    groups = run.client("ec2").describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    return {g["GroupId"]: g for g in groups}


def _permission(rule: Rule, ids: dict[str, str]) -> dict:
    perm: dict = {"IpProtocol": rule.protocol}
    if rule.protocol != ALL:
        perm.update(FromPort=rule.from_port, ToPort=rule.to_port)
    if rule.peer_is_group:
        perm["UserIdGroupPairs"] = [{"GroupId": ids[rule.peer], "Description": f"awslab: {rule.describe()}"}]
    elif ":" in rule.peer:
        perm["Ipv6Ranges"] = [{"CidrIpv6": rule.peer}]
    elif rule.peer.startswith("pl-"):
        perm["PrefixListIds"] = [{"PrefixListId": rule.peer}]
    else:
        perm["IpRanges"] = [{"CidrIp": rule.peer}]
    return perm


def _apply(run: Run, rule: Rule, ids: dict[str, str], grant: bool) -> None:
    ec2 = run.client("ec2")
    if grant:
        call = ec2.authorize_security_group_ingress if rule.direction == "ingress" else ec2.authorize_security_group_egress
    else:
        call = ec2.revoke_security_group_ingress if rule.direction == "ingress" else ec2.revoke_security_group_egress
    try:
        ec2_not_visible_yet(call)(GroupId=ids[rule.group], IpPermissions=[_permission(rule, ids)])
    except ClientError as exc:
        code = error_code(exc)
        if grant and code == "InvalidPermission.Duplicate":
            return
        if not grant and code in ("InvalidPermission.NotFound", "InvalidGroup.NotFound"):
            return
        raise


class SecurityGroup:
    kind = "security-group"
    capabilities = frozenset({"export"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """The three groups, each with its egress to addresses (the rules between groups are
        SecurityGroupRules'); AWS's default allow-all egress is replaced by them."""
        rules = _lab_rules(x)
        out = {}
        for key, what in EXPORT_DESCRIPTIONS.items():
            props: dict = {"GroupName": x.name(key), "GroupDescription": cfn.sub(f"awslab {cfn.STACK}: {what}"),
                           "VpcId": cfn.ref("Vpc"), "Tags": cfn.tags(key, x.lab, x.names[key])}
            egress = [r for r in rules if r.group == key and r.direction == "egress" and not r.peer_is_group]
            props["SecurityGroupEgress"] = [_cfn_permission(r) for r in egress]
            out[cfn.LOGICAL[key]] = {"Type": "AWS::EC2::SecurityGroup", "Properties": props}
        return cfn.Export(out)

    def create(self, run: Run, d: Desired) -> Found:
        ec2 = run.client("ec2")
        vpc_id = run.ref("network.vpc").id
        group = create_or_adopt(
            run, f"security group {d.name}",
            lambda: ec2_not_visible_yet(ec2.create_security_group)(
                GroupName=d.name, Description=d.spec["description"], VpcId=vpc_id,
                TagSpecifications=tag_spec(run, "security-group", d.key, d.name)),
            "InvalidGroup.Duplicate",
            lambda: ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [d.name]},
                                                          {"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"][0],
            lambda g: from_tag_list(g.get("Tags")))
        gid = group["GroupId"]
        return Found(d.key, self.kind, gid, "available", attrs={"name": d.name, "vpc": vpc_id})

    def delete(self, run: Run, f: Found) -> None:
        delete_confirmed(run, draining(run.client("ec2").delete_security_group), GroupId=f.id)


class SecurityGroupRules:
    kind = "security-group-rules"
    capabilities = frozenset({"export", "update"})

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """Every ingress rule, and every egress rule to another group, as a resource of its own."""
        out = {}
        for rule in (r for r in _lab_rules(x) if r.peer_is_group or r.direction == "ingress"):
            kind = "AWS::EC2::SecurityGroupIngress" if rule.direction == "ingress" else "AWS::EC2::SecurityGroupEgress"
            props = {"GroupId": cfn.group_id(cfn.LOGICAL[rule.group]), **_cfn_permission(rule, group_refs=True),
                     "Description": f"awslab: {rule.describe()}"}
            out[_rule_name(rule)] = {"Type": kind, "Properties": props}
        return cfn.Export(out)

    def _ids(self, run: Run) -> dict[str, str]:
        return {k: run.ref(k).id for k in GROUP_KEYS if k in run.found}

    def create(self, run: Run, d: Desired) -> Found:
        return self.complete(run, d, Found(d.key, self.kind, "rules", "available", attrs={"rules": frozenset()}))

    def incomplete(self, d: Desired, f: Found, found: dict[str, Found]) -> str | None:
        want = desired_rules(d.spec)
        have = {r for r in f.get("rules", frozenset()) if r.group in GROUP_KEYS}
        missing, extra = want - have, have - want
        parts = []
        if missing:
            parts.append("missing " + "; ".join(sorted(r.describe() for r in missing)))
        if extra:
            parts.append("not declared " + "; ".join(sorted(r.describe() for r in extra)))
        return ", ".join(parts) or None

    def complete(self, run: Run, d: Desired, f: Found) -> Found:
        ids = self._ids(run)
        want = desired_rules(d.spec)
        # Read the groups' rules now rather than trust discovery: a group made in this run comes
        # with AWS's allow-all egress rule, which the host's group must lose.
        have = self._current(run, ids)
        for rule in sorted(want - have):
            _apply(run, rule, ids, grant=True)
        for rule in sorted(have - want):
            _apply(run, rule, ids, grant=False)
        return replace(f, id=f"{len(want)} rules", attrs={**f.attrs, "rules": want})

    def _current(self, run: Run, ids: dict[str, str]) -> set[Rule]:
        groups = ec2_not_visible_yet(run.client("ec2").describe_security_groups)(GroupIds=list(ids.values()))["SecurityGroups"]
        key_by_id = {v: k for k, v in ids.items()}
        return set().union(*(_rules_of(g, key_by_id) for g in groups))

    def delete(self, run: Run, f: Found) -> None:
        ids = self._ids(run)
        for rule in sorted(f.get("rules", frozenset())):
            if rule.peer_is_group and rule.group in ids and rule.peer in ids:
                _apply(run, rule, ids, grant=False)


# --- the CloudFormation form (the export capability) ---------------------------------------------

EXPORT_DESCRIPTIONS = {"sg.app": "the EC2 host", "sg.db": "RDS, reachable from the host only",
                       "sg.cache": "ElastiCache, reachable from the host only"}


def _lab_rules(x: cfn.ExportFor) -> list[Rule]:
    h, d, c = x.lab.host, x.lab.database, x.lab.cache
    return sorted(desired_rules({"db_port": d.port, "cache_port": c.port, "ssh_cidr": h.ssh_cidr}))


def _rule_name(rule: Rule) -> str:
    """A rule's logical id from what it is (``DbIngressFromApp``, ``AppEgressToCache``,
    ``AppIngressSsh``), not its place in a list: adding a rule (``host.ssh_cidr``) leaves the others'
    ids alone, so an update adds one rule instead of replacing the rest."""
    short = lambda key: cfn.LOGICAL[key].removesuffix("SecurityGroup")  # noqa: E731
    if rule.peer_is_group:
        peer = ("From" if rule.direction == "ingress" else "To") + short(rule.peer)
    else:
        peer = "Ssh" if rule.from_port == catalog.SSH_PORT else f"Port{rule.from_port}"
    return f"{short(rule.group)}{rule.direction.capitalize()}{peer}"


def _cfn_permission(rule: Rule, group_refs: bool = False) -> dict:
    perm: dict = {"IpProtocol": rule.protocol}
    if rule.protocol != ALL:
        perm.update(FromPort=rule.from_port, ToPort=rule.to_port)
    if rule.peer_is_group:
        field = "SourceSecurityGroupId" if rule.direction == "ingress" else "DestinationSecurityGroupId"
        perm[field] = cfn.group_id(cfn.LOGICAL[rule.peer])
    else:
        perm["CidrIp"] = rule.peer
    if not group_refs:
        perm["Description"] = f"awslab: {rule.describe()}"
    return perm
