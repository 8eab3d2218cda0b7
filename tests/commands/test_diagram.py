"""`awslab diagram`: a verify World drawn. Pure tests build the World by hand (the describe data a
stack returns), so the Topology, verify's verdicts on it and every format are checked with no AWS;
one test draws a real stack on the local AWS, then revokes its DB rule with boto3."""

from __future__ import annotations

import json

import re
import xml.etree.ElementTree as ET

import pytest

from awslab.commands.diagram import format_for
from awslab.commands.diagram_model import CACHE, DB, HOST, INTERNET, STANDBY, Topology, build
from awslab.commands.drawing import dot, mermaid
from awslab.commands.drawing_svg import html, svg
from awslab.errors import EXIT_USAGE, UsageError
from awslab.spec.lab import load_lab
from awslab.spec.model import Found
from awslab.verify.checks import World

A, B = "us-east-1a", "us-east-1b"
SUBNETS = {"subnet-pub": ("10.60.0.0/24", A), "subnet-a": ("10.60.10.0/24", A), "subnet-b": ("10.60.11.0/24", B)}


def _group(gid, name, ingress=(), egress=()):
    def perm(port, peer):
        return {"IpProtocol": "tcp" if port else "-1", **({"FromPort": port, "ToPort": port} if port else {}),
                "UserIdGroupPairs": [{"GroupId": peer}] if peer.startswith("sg-") else [],
                "IpRanges": [] if peer.startswith("sg-") else [{"CidrIp": peer}]}
    return {"GroupId": gid, "GroupName": name, "IpPermissions": [perm(*r) for r in ingress],
            "IpPermissionsEgress": [perm(*r) for r in egress]}


def world(*, failover=False, db_rule=True, multi_az=True, replicas=1, cache=True) -> World:
    """A week6 stack's describe data as verify's ``gather`` reads it. ``failover``: after RDS and
    ElastiCache failed over (primary in us-east-1b); ``db_rule=False``: the DB group's ingress revoked."""
    primary_az, other_az = (B, A) if failover else (A, B)
    found = {"network.vpc": Found("network.vpc", "vpc", "vpc-1", "available", attrs={"cidr": "10.60.0.0/16"})}
    for key, gid, name in (("sg.app", "sg-app", "week6-app"), ("sg.db", "sg-db", "week6-db"), ("sg.cache", "sg-cache", "week6-cache")):
        found[key] = Found(key, "security-group", gid, "available", attrs={"name": name})
    host = {"InstanceId": "i-host", "SubnetId": "subnet-pub", "VpcId": "vpc-1", "PrivateIpAddress": "10.60.0.4",
            "SecurityGroups": [{"GroupId": "sg-app", "GroupName": "week6-app"}]}
    found["host.instance"] = Found("host.instance", "instance", "i-host", "running",
                                   attrs={"raw": host, "private_ip": "10.60.0.4", "public_ip": "54.1.2.3", "az": A, "type": "t3.micro"})
    subnet_group = {"DBSubnetGroupName": "week6-db", "VpcId": "vpc-1",
                    "Subnets": [{"SubnetIdentifier": "subnet-a"}, {"SubnetIdentifier": "subnet-b"}]}
    found["db.subnet-group"] = Found("db.subnet-group", "db-subnet-group", "week6-db", "Complete", attrs={"raw": subnet_group})

    def db(ident, az, **more):
        return {"DBInstanceIdentifier": ident, "AvailabilityZone": az, "Engine": "postgres", "EngineVersion": "16.4",
                "DBInstanceClass": "db.t3.micro", "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-db", "Status": "active"}],
                "Endpoint": {"Address": f"{ident}.abc.us-east-1.rds.amazonaws.com", "Port": 5432}, **more}
    primary = db("week6-db", primary_az, MultiAZ=multi_az, **({"SecondaryAvailabilityZone": other_az} if multi_az else {}))
    found["db.primary"] = Found("db.primary", "db-instance", "week6-db", "available", attrs={"raw": primary})
    for i in range(1, replicas + 1):
        raw = db(f"week6-db-replica-{i}", A, ReadReplicaSourceDBInstanceIdentifier="week6-db")
        found[f"db.replica.{i}"] = Found(f"db.replica.{i}", "db-replica", raw["DBInstanceIdentifier"], "available", attrs={"raw": raw})
    members = []
    if cache:
        nodes = [("week6-cache-001", A, "replica" if failover else "primary"), ("week6-cache-002", B, "primary" if failover else "replica")]
        group = {"ReplicationGroupId": "week6-cache", "MemberClusters": [n[0] for n in nodes], "NodeGroups": [{
            "PrimaryEndpoint": {"Address": "master.week6-cache.x.use1.cache.amazonaws.com", "Port": 6379},
            "ReaderEndpoint": {"Address": "replica.week6-cache.x.use1.cache.amazonaws.com", "Port": 6379},
            "NodeGroupMembers": [{"CacheClusterId": cid, "PreferredAvailabilityZone": az, "CurrentRole": role,
                                  "ReadEndpoint": {"Address": f"{cid}.week6-cache.x.use1.cache.amazonaws.com", "Port": 6379}}
                                 for cid, az, role in nodes]}]}
        found["cache.group"] = Found("cache.group", "replication-group", "week6-cache", "available", attrs={"raw": group})
        found["cache.subnet-group"] = Found("cache.subnet-group", "cache-subnet-group", "week6-cache", "available", attrs={
            "raw": {"CacheSubnetGroupName": "week6-cache", "VpcId": "vpc-1",
                    "Subnets": [{"SubnetIdentifier": "subnet-a"}, {"SubnetIdentifier": "subnet-b"}]}})
        members = [{"CacheClusterId": cid, "PreferredAvailabilityZone": az,
                    "SecurityGroups": [{"SecurityGroupId": "sg-cache", "Status": "active"}]} for cid, az, _ in nodes]
    groups = {"sg-app": _group("sg-app", "week6-app", egress=[(443, "0.0.0.0/0"), (5432, "sg-db"), (6379, "sg-cache")]),
              "sg-db": _group("sg-db", "week6-db", ingress=[(5432, "sg-app")] if db_rule else [], egress=[(0, "0.0.0.0/0")]),
              "sg-cache": _group("sg-cache", "week6-cache", ingress=[(6379, "sg-app")], egress=[(0, "0.0.0.0/0")])}
    route_tables = [{"RouteTableId": "rtb-pub", "Associations": [{"SubnetId": "subnet-pub"}],
                     "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}]},
                    {"RouteTableId": "rtb-main", "Associations": [{"Main": True}],
                     "Routes": [{"DestinationCidrBlock": "10.60.0.0/16", "GatewayId": "local"}]}]
    subnets = {sid: {"SubnetId": sid, "CidrBlock": cidr, "AvailabilityZone": az, "VpcId": "vpc-1"}
               for sid, (cidr, az) in SUBNETS.items()}
    return World("week6", found, groups=groups, subnets=subnets, route_tables=route_tables, cache_members=members,
                 region="us-east-1")


@pytest.fixture(scope="module")
def lab():
    return load_lab("week6")


def _by_name(t: Topology):
    return {n.name: n for n in t.nodes}


def _edge(t: Topology, target_name: str):
    (edge,) = [e for e in t.edges if e.target == _by_name(t)[target_name].id]
    return edge


# --- the Topology from a World (verify's verdicts) ----------------------------------------------

def test_build__a_fresh_stack__every_node_in_its_az_with_its_role_and_every_path_allowed(lab):
    t = build(world(), lab, "2026-12-06 10:00 UTC")
    nodes = _by_name(t)
    assert t.azs == (A, B) and t.vpc == "vpc-1" and t.vpc_cidr == "10.60.0.0/16"
    assert [(s.id, s.az, s.public) for s in t.subnets] == [("subnet-pub", A, True), ("subnet-a", A, False), ("subnet-b", B, False)]
    assert (nodes["i-host"].kind, nodes["i-host"].az, nodes["i-host"].public) == (HOST, A, True)
    assert (nodes["week6-db"].kind, nodes["week6-db"].az, nodes["week6-db"].role) == (DB, A, "DB primary (Multi-AZ)")
    assert nodes["week6-db"].endpoint == "week6-db.abc.us-east-1.rds.amazonaws.com:5432"
    assert (nodes["week6-db standby"].kind, nodes["week6-db standby"].az) == (STANDBY, B)
    assert nodes["week6-db-replica-1"].role == "read replica of week6-db (async)"
    assert (nodes["week6-cache-001"].kind, nodes["week6-cache-001"].az, nodes["week6-cache-001"].role) == (CACHE, A, "cache primary (week6-cache)")
    assert (nodes["week6-cache-002"].az, nodes["week6-cache-002"].role) == (B, "cache replica (week6-cache)")
    assert nodes["week6-cache-001"].extra == ("via master.week6-cache.x.use1.cache.amazonaws.com:6379",)
    assert {g.name: g.members for g in t.groups}["week6-db"] == ("week6-db", "week6-db standby", "week6-db-replica-1")
    assert [(e.source, t.node(e.target).name, e.port.split()[0], e.check, e.status) for e in t.edges] == [
        (INTERNET, "i-host", "tcp/443", "network.host-internet-route", "PASS"),
        (nodes["i-host"].id, "week6-db", "tcp/5432", "path.app-to-db", "PASS"),
        (nodes["i-host"].id, "week6-db-replica-1", "tcp/5432", "path.app-to-db", "PASS"),
        (nodes["i-host"].id, "week6-cache-001", "tcp/6379", "path.app-to-cache", "PASS")]
    assert "via igw-1" in t.edges[0].port


def test_build__after_a_failover__the_primaries_are_drawn_in_the_az_they_are_in_now(lab):
    t = build(world(failover=True), lab)
    nodes = _by_name(t)
    assert nodes["week6-db"].az == B and nodes["week6-db standby"].az == A
    assert nodes["week6-cache-002"].role.startswith("cache primary") and nodes["week6-cache-002"].az == B
    assert _edge(t, "week6-cache-002").check == "path.app-to-cache"   # the cache path goes to the primary now


def test_build__the_db_rule_revoked__host_to_db_blocked_with_verifys_missing_rule_and_fix(lab):
    t = build(world(db_rule=False), lab)
    for name in ("week6-db", "week6-db-replica-1"):
        edge = _edge(t, name)
        assert edge.blocked and edge.verdict == "BLOCKED"
        assert "no inbound rule on sg-db (week6-db) admits tcp/5432 from the host" in edge.detail
        assert "aws ec2 authorize-security-group-ingress --group-id sg-db" in edge.hint
    assert _edge(t, "week6-cache-001").allowed


def test_build__single_az_without_replica_or_cache__no_standby_and_one_db_path(lab):
    t = build(world(multi_az=False, replicas=0, cache=False), lab)
    assert sorted(n.name for n in t.nodes) == ["i-host", "week6-db"]
    assert _by_name(t)["week6-db"].role == "DB primary (Single-AZ)"
    assert [e.check for e in t.edges] == ["network.host-internet-route", "path.app-to-db"]


def test_format_for__flag_then_extension_then_mermaid__anything_else_exit_2():
    assert format_for(None, None) == "mermaid"
    assert format_for(None, "lab.SVG") == "svg" and format_for(None, "x.htm") == "html" and format_for(None, "x.gv") == "dot"
    assert format_for("dot", "lab.svg") == "dot"
    for fmt, out, words in (("png", None, "unknown diagram format 'png'"), (None, "lab.png", "from its extension")):
        with pytest.raises(UsageError, match=words) as err:
            format_for(fmt, out)
        assert err.value.exit_code == EXIT_USAGE


# --- the formats ---------------------------------------------------------------------------------

MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
MERMAID_LINE = re.compile("|".join([
    r"%%.*", r"flowchart TB", r"direction (LR|TB)", r"end",
    rf'subgraph ({MERMAID_ID.pattern})\["[^"]*"\]',
    rf'({MERMAID_ID.pattern})(\(\("[^"]*"\)\)|\["[^"]*"\]|\[\("[^"]*"\)\]|\(\["[^"]*"\]\))',
    rf'({MERMAID_ID.pattern}) (==>|-\.->|-->)\|"[^"]*"\| ({MERMAID_ID.pattern})',
    r"linkStyle \d+ [a-z-]+:[^,\s]+(,[a-z-]+:[^,]+)*",
    rf"classDef ({MERMAID_ID.pattern}) [a-z-]+:[^,\s]+(,[a-z-]+:[^,\s]+)*",
    rf"class ({MERMAID_ID.pattern})(,{MERMAID_ID.pattern})* ({MERMAID_ID.pattern})"]))


def test_mermaid__a_valid_flowchart_with_the_blocked_path_dashed_red_and_labelled(lab):
    t = build(world(failover=True, db_rule=False), lab)
    text = mermaid(t)
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    assert lines[1] == "flowchart TB"
    bad = [x for x in lines if not MERMAID_LINE.fullmatch(x)]
    assert bad == []
    opened = sum(x.startswith("subgraph ") for x in lines)
    assert opened == lines.count("end") and opened >= 6   # VPC, 2 AZs, 3 subnets, security groups
    declared = {m.group(1) for x in lines if (m := re.match(r"([A-Za-z][A-Za-z0-9_]*)[\[(]", x))}
    assert {n.id for n in t.nodes} | {INTERNET} <= declared
    assert not declared & {"end", "graph", "subgraph", "flowchart", "style", "class"}
    assert all(not re.match(r"[ox]", i) for i in declared if i != INTERNET) # no id a link could swallow (--o, --x)
    links = [x for x in lines if "|\"" in x and not x.startswith(("subgraph", "linkStyle"))]
    assert len(links) == len(t.edges) == len([x for x in lines if x.startswith("linkStyle")])
    for i, e in enumerate(t.edges):
        assert links[i].startswith(f"{e.source} ") and links[i].endswith(f" {e.target}")
        if e.blocked:
            assert "-.->" in links[i] and "BLOCKED<br/>no inbound rule on sg-db (week6-db)" in links[i]
            assert f"linkStyle {i} stroke:#cf222e" in text and "stroke-dasharray" in lines[lines.index(links[-1]) + 1 + i]
    # the primary sits in us-east-1b's subgraph after the failover
    az_b = text.split('subgraph az_us_east_1b["us-east-1b"]')[1].split("subgraph az_")[0]
    assert "n_week6_db[(" in az_b and "n_week6_cache_002([" in az_b


def _dot_statements(text: str) -> list[str]:
    """DOT's statements, quoted strings folded, braces checked as they go."""
    body = re.sub(r'"(\\.|[^"\\])*"', '"S"', text)
    depth, out = 0, []
    for line in body.splitlines():
        line = line.strip()
        depth += line.count("{") - line.count("}")
        assert depth >= 0
        out.append(line)
    assert depth == 0
    return [x for x in out if x]


def test_dot__graphviz_source_with_clusters_per_az_and_the_blocked_path_dashed(lab):
    t = build(world(db_rule=False), lab)
    text = dot(t)
    stmt = re.compile(r'(digraph awslab \{|subgraph cluster_\w+ \{|\}|(graph|node|edge) \[.*\];|'
                      r'(label|style|color|fillcolor)="?[^;]*"?;( \w+="?[^;]*"?;)*|'
                      r'\w+ \[.*\];|\w+ -> \w+ \[.*\];)')
    assert [x for x in _dot_statements(text) if not stmt.fullmatch(x)] == []
    assert "subgraph cluster_az_us_east_1a {" in text and "subgraph cluster_az_us_east_1b {" in text
    (db_edge,) = [x for x in text.splitlines() if " -> n_week6_db " in x]
    assert "style=dashed" in db_edge and '"#cf222e"' in db_edge and "BLOCKED\\nno inbound rule" in db_edge


def _external_refs(text: str) -> list[str]:
    refs = re.findall(r'(?:href|src)\s*=\s*"[^"#][^"]*"', text) + re.findall(r"url\((?!#)[^)]*\)", text)
    refs += re.findall(r"@import|<script|<link", text)
    return refs + [u for u in re.findall(r"https?://[^\s\"'<>]+", text) if u != "http://www.w3.org/2000/svg"]


SVG = "{http://www.w3.org/2000/svg}"


def _boxes(root) -> dict[str, tuple[float, float]]:
    """Each drawn node's first text line -> its box's (x, y)."""
    out = {}
    for g in root.iter(f"{SVG}g"):
        rect, texts = g.find(f"{SVG}rect"), g.findall(f"{SVG}text")
        if rect is not None and texts:
            out[texts[0].text] = (float(rect.get("x")), float(rect.get("y")))
    return out


def test_svg__self_contained_xml_with_the_primary_in_its_new_az_and_the_blocked_path_dashed(lab):
    t = build(world(failover=True, db_rule=False), lab, "2026-12-06 10:00 UTC")
    text = svg(t)
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert _external_refs(text) == []
    words = " ".join(x.text or "" for x in root.iter(f"{SVG}text"))
    for n in t.nodes:
        assert n.name in words and (n.endpoint in words if n.endpoint else True)
    for g in t.groups:
        assert g.id in words
    # AZ columns: the primary's box lies in us-east-1b's column, right of the host's (us-east-1a)
    labels = {x.text: float(x.get("x")) for x in root.iter(f"{SVG}text")}
    boxes = _boxes(root)
    assert labels[A] < labels[B]
    assert boxes["week6-db"][0] >= labels[B] - 1 and boxes["i-host"][0] < labels[B]
    assert boxes["week6-db standby"][0] < labels[B] and boxes["week6-cache-002"][0] >= labels[B] - 1
    # the blocked paths: dashed, red, labelled in words; the allowed one solid
    paths = {p.findtext(f"{SVG}title"): p for p in root.iter(f"{SVG}g") if (p.get("class") or "").startswith("path")}
    blocked = [g for title, g in paths.items() if "BLOCKED (path.app-to-db FAIL: no inbound rule on sg-db" in title]
    assert len(blocked) == 2
    for g in blocked:
        line = g.find(f"{SVG}path")
        assert line.get("stroke-dasharray") and line.get("stroke") == "#cf222e"
        assert [x.text for x in g.findall(f"{SVG}text")][0] == "tcp/5432: BLOCKED"
    (cache,) = [g for title, g in paths.items() if title.startswith("i-host to week6-cache-002, tcp/6379: allowed")]
    assert cache.find(f"{SVG}path").get("stroke-dasharray") is None


def test_svg__the_same_topology_draws_the_same_bytes(lab):
    assert svg(build(world(), lab)) == svg(build(world(), lab))


def test_html__the_svg_a_legend_and_each_path_with_its_evidence_and_fix__nothing_external(lab):
    t = build(world(db_rule=False), lab)
    page = html(t)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Legend" in page
    assert _external_refs(page) == []
    svg_part = page[page.index("<svg xmlns"):page.index("</svg>\n<figcaption>") + len("</svg>")]
    ET.fromstring(svg_part)
    assert page.count('<tr class="bad">') == 2 and page.count('<tr class="ok">') == 2
    assert "aws ec2 authorize-security-group-ingress --group-id sg-db" in page


# --- on the local AWS ------------------------------------------------------------------------------

@pytest.mark.lifecycle
def test_diagram__a_real_stack__its_subnets_and_azs__then_a_revoked_db_rule_drawn_blocked(awslab, aws, stack, tmp_path):
    assert awslab("up", "week6", "--name", stack).code == 0
    ec2 = aws("ec2")
    flt = [{"Name": "tag:awslab:stack", "Values": [stack]}]
    subnets = ec2.describe_subnets(Filters=flt)["Subnets"]
    (db_sg,) = [g for g in ec2.describe_security_groups(Filters=flt)["SecurityGroups"] if g["GroupName"] == f"{stack}-db"]
    primary = aws("rds").describe_db_instances(DBInstanceIdentifier=f"{stack}-db")["DBInstances"][0]

    drawn = awslab("diagram", "--name", stack)
    assert drawn.code == 0, drawn.err
    for s in subnets:
        assert f"{s['SubnetId']} · {s['CidrBlock']}" in drawn.out
        assert f'subgraph az_{s["AvailabilityZone"].replace("-", "_")}["{s["AvailabilityZone"]}"]' in drawn.out
    az = drawn.out.split(f'subgraph az_{primary["AvailabilityZone"].replace("-", "_")}[')[1].split("subgraph az_")[0]
    assert f"n_{stack}_db[(" in az and primary["Endpoint"]["Address"] in az
    assert f'|"tcp/5432: allowed"| n_{stack}_db' in drawn.out

    ec2.revoke_security_group_ingress(GroupId=db_sg["GroupId"], IpPermissions=db_sg["IpPermissions"])
    out = tmp_path / "lab.svg"
    again = awslab("diagram", "--name", stack, "-o", str(out))
    assert again.code == 0, again.err
    root = ET.fromstring(out.read_text())
    (blocked,) = [g for g in root.iter(f"{SVG}g") if (g.findtext(f"{SVG}title") or "").split(" to ", 1)[-1].startswith(
        f"{stack}-db, tcp/5432: BLOCKED (path.app-to-db FAIL: no inbound rule on {db_sg['GroupId']}")]
    assert blocked.find(f"{SVG}path").get("stroke-dasharray")


def test_build__the_flow_log__each_path_says_its_last_real_connection_beside_verifys_verdict(lab):
    """What really happened, from the local AWS's flow records: the host's last connection to each
    endpoint (ACCEPT or REJECT, and when), on the label of every format and in the page's table;
    connections from elsewhere, or to another endpoint, are not the path's."""
    db_ep = "week6-db.abc.us-east-1.rds.amazonaws.com:5432"
    flows = [
        {"source": "i-host", "endpoint": db_ep, "action": "ACCEPT", "start": 1_700_000_000, "end": 1_700_000_005},
        {"source": "i-host", "endpoint": db_ep, "action": "REJECT", "start": 1_700_000_100, "end": 1_700_000_100},
        {"source": "outside", "endpoint": db_ep, "action": "ACCEPT", "start": 1_700_000_200, "end": 1_700_000_200},
    ]
    t = build(world(db_rule=False), lab, "2026-12-06 16:00 UTC", flows)
    by_target = {t.node(e.target).name: e for e in t.edges if t.node(e.target)}
    assert by_target["week6-db"].blocked
    assert by_target["week6-db"].seen == "last connection 22:15:00 UTC: REJECT, the VPC dropped it (flow log)"
    assert by_target["week6-db-replica-1"].seen == ""          # no connection to it was made
    for text in (mermaid(t), dot(t), svg(t), html(t)):
        assert "22:15:00 UTC: REJECT" in text
    assert "none in the flow log" in html(t)
    # Without flow records (real AWS, or none yet) the labels are verify's alone.
    assert all(e.seen == "" for e in build(world(db_rule=False), lab).edges)


def test_diagram_and_report__a_cluster_stack__each_member_in_its_az_as_writer_or_reader(awslab, aws, stack, tmp_path):
    """A Multi-AZ DB cluster's three members, each in its own AZ with its role and a path from the
    host (diagram and report failed with a KeyError on a member's key)."""
    assert awslab("up", "week6", "--name", stack, "--set", "database.deployment=cluster").code == 0
    members = aws("rds").describe_db_clusters(DBClusterIdentifier=f"{stack}-db")["DBClusters"][0]["DBClusterMembers"]
    writer = next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])
    drawn = awslab("diagram", "--name", stack)
    assert drawn.code == 0, drawn.err
    assert drawn.out.count(f"of Multi-AZ DB cluster {stack}-db") == 3
    assert f"{writer}<br/>writer of Multi-AZ DB cluster {stack}-db" in drawn.out
    assert drawn.out.count("reader of Multi-AZ DB cluster") == 2 and drawn.out.count('|"tcp/5432: allowed"|') == 3
    assert len({line.split("subgraph az_")[1].split("[")[0] for line in drawn.out.splitlines() if "subgraph az_" in line}) == 3
    listed = json.loads(awslab("stacks", "--output", "json").out)["stacks"]
    assert [r["state"] for r in listed if r["stack"] == stack] == ["complete"]   # was "partial": no db.primary
    page = tmp_path / "report.html"
    assert awslab("report", "--name", stack, "-o", str(page)).code == 0 and f"writer of Multi-AZ DB cluster {stack}-db" in page.read_text()
