"""The CLI's contract: bad input exits 2 with one line and nothing sent that changes anything."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

import pytest
from conftest import mutating, repo_root, stack_tagged

# No keys and no profile (conftest points the AWS config files at nothing), and none of the other
# places the credential chain looks: a container or web identity, or the EC2 instance the tests may run on.
NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
                  "AWS_SECURITY_TOKEN": None, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI": None, "AWS_WEB_IDENTITY_TOKEN_FILE": None, "AWS_ROLE_ARN": None,
                  "AWS_EC2_METADATA_DISABLED": "true"}


@dataclass(frozen=True)
class Case:
    """One bad input. ``{stack}``, ``{lab_file}``, ``{home}`` and ``{port}`` in args, fragment, env
    and state are filled in per test: a fresh stack name, the written lab file, AWSLAB_HOME, and
    a port a test socket holds."""

    id: str
    args: tuple[str, ...]
    fragment: str                  # the one error line contains this
    code: int = 2                  # 1 only where AWS itself refused
    env: dict = field(default_factory=dict)      # name -> value, or None to unset
    lab: str | None = None         # text of the lab file {lab_file}
    state: dict = field(default_factory=dict)    # path under AWSLAB_HOME -> text
    port: bool = False             # {port} accepts connections and never answers
    local: bool = False            # gets as far as the local AWS (the session's server)
    shell: bool = False            # the stack has its VPC, subnet groups and security groups

    def __str__(self) -> str:
        return self.id


def _c(id: str, *args: str, fragment: str, **kw) -> Case:
    return Case(id, args, fragment, **kw)


RECORD = {"stacks/{stack}.json": json.dumps({"lab": "week6"})}   # a stack `up` remembered

CATALOGUE = [
    # --- which lab ---------------------------------------------------------------------------
    _c("lab-unknown", "up", "week99", fragment="unknown lab 'week99'"),
    _c("lab-none", "up", fragment="no lab given"),
    _c("lab-unknown-for-policy", "policy", "week99", fragment="unknown lab 'week99'"),
    _c("lab-file-missing", "plan", "--lab-file", "/nonexistent/lab.toml", fragment="lab file not found: /nonexistent/lab.toml"),
    # A path is a lab file, never the shipped lab its name ends with.
    _c("lab-path-not-a-lab-name", "up", "../nonexistent/week6", fragment="lab file not found: ../nonexistent/week6"),
    _c("lab-path-and-lab-file", "plan", "./a.toml", "--lab-file", "b.toml", fragment="both a lab file as LAB (./a.toml)"),
    # --- lab files ---------------------------------------------------------------------------
    _c("lab-file-toml-syntax", "up", "--lab-file", "{lab_file}", fragment="{lab_file}: not valid TOML",
       lab="[network\nvpc_cidr = '10.60.0.0/16'\n"),
    _c("lab-file-bool-wrong-type", "up", "--lab-file", "{lab_file}", fragment="{lab_file}: database.multi_az: must be true or false",
       lab="[database]\nmulti_az = 'sometimes'\n"),
    _c("lab-file-int-wrong-type", "plan", "--lab-file", "{lab_file}", fragment="{lab_file}: database.read_replicas: must be a whole number",
       lab="[database]\nread_replicas = '2'\n"),
    _c("lab-file-list-wrong-type", "up", "--lab-file", "{lab_file}",
       fragment="{lab_file}: network.private_subnet_cidrs: must be a list of strings",
       lab="[network]\nprivate_subnet_cidrs = '10.60.10.0/24'\n"),
    _c("lab-file-unknown-section", "up", "--lab-file", "{lab_file}", fragment="{lab_file}: databse: unknown section",
       lab="[databse]\nmulti_az = false\n"),
    _c("lab-file-unknown-key", "up", "--lab-file", "{lab_file}", fragment="{lab_file}: cache.nodes: unknown setting",
       lab="[cache]\nnodes = 3\n"),
    _c("lab-file-vpc-cidr-host-bits", "up", "--lab-file", "{lab_file}",
       fragment="network.vpc_cidr: '10.60.0.1/16' is not a valid CIDR block", lab="[network]\nvpc_cidr = '10.60.0.1/16'\n"),
    _c("lab-file-ssh-open-ipv6", "up", "--lab-file", "{lab_file}", fragment="host.ssh_cidr: ::/0 opens SSH to the whole internet",
       lab="[host]\nssh_cidr = '::/0'\n"),
    _c("lab-file-name-not-a-stack-name", "up", "--lab-file", "{lab_file}", fragment="invalid stack name 'Week_6'",
       lab="[lab]\nname = 'Week_6'\n"),
    # --- --set -------------------------------------------------------------------------------
    _c("set-unknown-key", "up", "week6", "--set", "database.nope=1", fragment="--set: database.nope: unknown setting"),
    _c("set-unknown-section", "up", "week6", "--set", "storage.size=1", fragment="--set: storage.size: unknown section"),
    _c("set-without-equals", "up", "week6", "--set", "database.multi_az", fragment="--set: database.multi_az: expected KEY=VALUE"),
    _c("set-bool-wrong-type", "up", "week6", "--set", "database.multi_az=maybe", fragment="--set: database.multi_az: must be true or false"),
    _c("set-int-wrong-type", "up", "week6", "--set", "database.read_replicas=two",
       fragment="--set: database.read_replicas: must be a whole number, not 'two'"),
    _c("set-int-out-of-range", "up", "week6", "--set", "cache.replicas=9", fragment="--set: cache.replicas: must be 0 to 5, not 9"),
    _c("set-vpc-cidr-not-a-cidr", "up", "week6", "--set", "network.vpc_cidr=10.60.0.0/33",
       fragment="--set: network.vpc_cidr: '10.60.0.0/33' is not a valid CIDR block"),
    _c("set-vpc-cidr-host-bits", "plan", "week6", "--set", "network.vpc_cidr=10.60.0.1/16",
       fragment="--set: network.vpc_cidr: '10.60.0.1/16' is not a valid CIDR block (10.60.0.1/16 has host bits set)"),
    _c("set-vpc-cidr-too-big", "up", "week6", "--set", "network.vpc_cidr=10.0.0.0/8", fragment="--set: network.vpc_cidr: a VPC's block must be /16 to /28, not /8"),
    _c("set-subnet-cidr-host-bits", "up", "week6", "--set", "network.public_subnet_cidr=10.60.0.5/24",
       fragment="--set: network.public_subnet_cidr: '10.60.0.5/24' is not a valid CIDR block"),
    _c("set-subnet-outside-vpc", "up", "week6", "--set", "network.public_subnet_cidr=10.61.0.0/24",
       fragment="--set: network.public_subnet_cidr: 10.61.0.0/24 is not inside the VPC's 10.60.0.0/16"),
    _c("set-subnets-overlap", "up", "week6", "--set", "network.public_subnet_cidr=10.60.10.0/24",
       fragment="week6.toml with --set network.public_subnet_cidr=10.60.10.0/24: network.private_subnet_cidrs[0]: "
                "10.60.10.0/24 overlaps network.public_subnet_cidr"),
    _c("set-one-private-subnet", "up", "week6", "--set", "network.private_subnet_cidrs=10.60.10.0/24",
       fragment="--set: network.private_subnet_cidrs: needs exactly 2 CIDRs"),
    _c("set-db-engine-unknown", "up", "week6", "--set", "database.engine=oracle", fragment="--set: database.engine: unknown engine 'oracle'"),
    _c("set-db-engine-version-not-offered", "up", "week6", "--set", "database.engine_version=9.6",
       fragment="--set: database.engine_version: postgres 9.6 is not offered"),
    _c("set-db-engine-with-a-version-it-lacks", "up", "week6", "--set", "database.engine=mysql",
       "--set", "database.engine_version=16", fragment="--set: database.engine_version: mysql 16 is not offered"),
    _c("set-db-instance-class-unknown", "up", "week6", "--set", "database.instance_class=db.bogus.huge",
       fragment="--set: database.instance_class: 'db.bogus.huge' is not an RDS instance class"),
    _c("set-cache-engine-unknown", "up", "week6", "--set", "cache.engine=memcached", fragment="--set: cache.engine: unknown engine 'memcached'"),
    _c("set-cache-engine-version-not-offered", "up", "week6", "--set", "cache.engine_version=5.0",
       fragment="--set: cache.engine_version: redis 5.0 is not offered"),
    _c("set-cache-node-type-unknown", "up", "week6", "--set", "cache.node_type=cache.bogus.huge",
       fragment="--set: cache.node_type: 'cache.bogus.huge' is not an ElastiCache node type"),
    _c("set-ssh-open-ipv4", "up", "week6", "--set", "host.ssh_cidr=0.0.0.0/0", fragment="--set: host.ssh_cidr: 0.0.0.0/0 opens SSH to the whole internet"),
    _c("set-ssh-open-ipv6", "up", "week6", "--set", "host.ssh_cidr=::/0", fragment="--set: host.ssh_cidr: ::/0 opens SSH to the whole internet"),
    _c("set-db-unencrypted", "up", "week6", "--set", "database.storage_encrypted=false",
       fragment="--set: database.storage_encrypted: awslab keeps database storage encrypted"),
    _c("set-master-username-reserved", "up", "week6", "--set", "database.master_username=admin",
       fragment="--set: database.master_username: 'admin' is not allowed"),
    _c("set-database-name-digit-first", "up", "week6", "--set", "database.database_name=1lab",
       fragment="--set: database.database_name: '1lab' is not a valid database name"),
    # --- identifiers AWS would refuse ----------------------------------------------------------
    _c("stack-name-uppercase", "up", "week6", "--name", "Week6", fragment="invalid stack name 'Week6'"),
    _c("stack-name-underscore", "up", "week6", "--name", "bad_name", fragment="invalid stack name 'bad_name'"),
    _c("stack-name-double-hyphen", "up", "week6", "--name", "a--b", fragment="invalid stack name 'a--b'"),
    _c("stack-name-trailing-hyphen", "down", "--name", "lab-", fragment="invalid stack name 'lab-'"),
    _c("stack-name-too-long", "status", "--name", "a" * 31, fragment=f"invalid stack name '{'a' * 31}'"),
    _c("stack-name-digit-first", "up", "week6", "--name", "6week", fragment="invalid stack name '6week'"),
    _c("stack-name-from-env", "status", fragment="invalid stack name 'Bad_Name'", env={"AWSLAB_STACK": "Bad_Name"}),
    _c("restore-as-invalid-identifier", "restore", "--name", "{stack}", "{stack}-20260101-000000", "--as", "Bad_Name",
       fragment="--as 'Bad_Name' is not a valid identifier", state=RECORD, local=True),
    _c("restore-as-too-long", "restore", "--name", "{stack}", "--to-time", "latest", "--as", "r" * 41,
       fragment="is not a valid identifier", state=RECORD, local=True),
    _c("restore-to-time-not-a-time", "restore", "--name", "{stack}", "--to-time", "yesterday",
       fragment="--to-time 'yesterday' is not an ISO-8601 time", state=RECORD, local=True),
    _c("restore-neither-snapshot-nor-time", "restore", "--name", "{stack}",
       fragment="give a SNAPSHOT_ID or --to-time", state=RECORD, local=True),
    _c("restore-snapshot-that-does-not-exist", "restore", "--name", "{stack}", "{stack}-20260101-000000",
       fragment="unknown snapshot '{stack}-20260101-000000' in us-east-1", state=RECORD, local=True, shell=True),
    _c("snapshot-copy-to-region-not-a-region", "snapshot", "--name", "{stack}", "--copy-to-region", "mars-1",
       fragment="--copy-to-region mars-1: no such AWS region (hint: use one of: af-south-1", state=RECORD, local=True),
    _c("snapshot-copy-to-region-well-formed-but-unknown", "snapshot", "--name", "{stack}", "--copy-to-region", "us-east-9",
       fragment="--copy-to-region us-east-9: no such AWS region", state=RECORD, local=True),
    _c("snapshot-copy-to-own-region", "snapshot", "--name", "{stack}", "--copy-to-region", "us-east-1",
       fragment="--copy-to-region us-east-1 is the stack's own region", state=RECORD, local=True),
    _c("verify-check-unknown", "verify", "--name", "{stack}", "--check", "bogus",
       fragment="no check id starts with 'bogus'", state=RECORD, local=True),
    # A name no stack has (nothing tagged with it, no record here) and no lab has: said as such.
    _c("verify-stack-unknown", "verify", "--name", "{stack}", fragment="no stack '{stack}' in us-east-1", local=True),
    _c("diagram-format-unknown", "diagram", "--name", "{stack}", "--format", "png", fragment="unknown diagram format 'png'"),
    _c("diagram-file-extension-unknown", "diagram", "--name", "{stack}", "-o", "lab.png",
       fragment="cannot tell the diagram format of 'lab.png' from its extension"),
    _c("diagram-stack-without-resources", "diagram", "--name", "{stack}",
       fragment="stack {stack} has no resources on local (us-east-1): nothing to draw", local=True),
    _c("report-out-folder-missing", "report", "--name", "{stack}", "-o", "/nonexistent/r.html",
       fragment="cannot write /nonexistent/r.html: the folder /nonexistent does not exist"),
    _c("report-stack-without-resources", "report", "--name", "{stack}", "-o", "{home}/r.html",
       fragment="stack {stack} has no resources on local (us-east-1): nothing to report", local=True),
    _c("class-verify-html-folder-missing", "class", "verify", "--class", "week6", "--html", "/nonexistent/g.html",
       fragment="cannot write /nonexistent/g.html: the folder /nonexistent does not exist"),
    # --- flags -------------------------------------------------------------------------------
    _c("option-unknown", "up", "week6", "--bogus", fragment="--bogus"),
    _c("command-unknown", "upp", "week6", fragment="No such command 'upp'"),
    _c("target-unknown", "up", "week6", "--target", "gcp", fragment="Invalid value for '--target'"),
    _c("target-unknown-from-env", "up", "week6", fragment="unknown target 'gcp'", env={"AWSLAB_TARGET": "gcp"}),
    _c("output-unknown", "status", "--output", "xml", fragment="Invalid value for '--output'"),
    _c("output-unknown-from-env", "up", "week6", fragment="unknown output format 'xml'", env={"AWSLAB_OUTPUT": "xml"}),
    _c("profile-with-local-target", "up", "week6", "--profile", "me", fragment="--profile applies to --target aws"),
    _c("region-unknown", "up", "week6", "--region", "mars-1", fragment="region mars-1: no such AWS region (hint: use one of: "),
    _c("region-well-formed-but-unknown", "status", "--name", "{stack}", "--region", "us-east-9",
       fragment="region us-east-9: no such AWS region"),
    _c("region-unknown-from-env", "up", "week6", fragment="region sa-mars-1: no such AWS region",
       env={"AWS_REGION": "sa-mars-1"}),
    _c("region-unknown-target-aws", "up", "week6", "--target", "aws", "--region", "us-east-9",
       fragment="region us-east-9: no such AWS region"),
    _c("status-no-stack-remembered", "status", fragment="no stack given and none remembered"),
    _c("down-no-stack-remembered", "down", fragment="no stack given and none remembered"),
    # --- --target aws: region, credentials, profile ---------------------------------------------
    _c("aws-no-region", "up", "week6", "--name", "{stack}", "--target", "aws", fragment="no AWS region set for --target aws",
       env={"AWS_DEFAULT_REGION": None}),
    _c("aws-no-credentials", "up", "week6", "--name", "{stack}", "--target", "aws", "--region", "us-east-1",
       fragment="no AWS credentials found for --target aws (hint: run `aws configure`", env=NO_CREDENTIALS),
    _c("aws-profile-not-found", "up", "week6", "--name", "{stack}", "--target", "aws", "--profile", "nosuch",
       fragment="AWS profile 'nosuch' not found"),
    _c("aws-profile-not-found-no-region", "status", "--name", "{stack}", "--target", "aws", "--profile", "nosuch",
       fragment="AWS profile 'nosuch' not found", env={"AWS_DEFAULT_REGION": None}),
    # --- --endpoint-url ------------------------------------------------------------------------
    _c("endpoint-not-a-url", "up", "week6", "--endpoint-url", "localhost:5000", fragment="--endpoint-url 'localhost:5000' is not a URL"),
    _c("endpoint-no-host", "up", "week6", "--endpoint-url", "http://", fragment="--endpoint-url 'http://' is not a URL"),
    _c("endpoint-port-out-of-range", "status", "--name", "{stack}", "--endpoint-url", "http://127.0.0.1:99999",
       fragment="--endpoint-url 'http://127.0.0.1:99999' is not a URL"),
    _c("endpoint-nothing-listens", "up", "week6", "--name", "{stack}", "--endpoint-url", "http://127.0.0.1:9",
       fragment="cannot reach the AWS endpoint http://127.0.0.1:9 (Connection refused)"),
    _c("endpoint-nothing-listens-target-aws", "down", "--name", "{stack}", "--target", "aws", "--region", "us-east-1",
       "--endpoint-url", "http://127.0.0.1:9", fragment="cannot reach the AWS endpoint http://127.0.0.1:9"),
    _c("endpoint-never-answers", "status", "--name", "{stack}", "--endpoint-url", "http://127.0.0.1:{port}",
       fragment="the AWS endpoint http://127.0.0.1:{port} did not answer within", port=True),
    _c("endpoint-unknown-host-from-env", "status", "--name", "{stack}",
       fragment="cannot reach the AWS endpoint http://no-such-host.invalid:4566", env={"AWSLAB_ENDPOINT_URL": "http://no-such-host.invalid:4566"}),
    _c("endpoint-remembered-is-gone", "status", fragment="cannot reach the AWS endpoint http://127.0.0.1:9 (Connection refused) "
       "(hint: check the endpoint remembered from the last `awslab up`",
       state={"context.json": json.dumps({"target": "aws", "stack": "{stack}", "region": "us-east-1",
                                          "endpoint_url": "http://127.0.0.1:9"})}),
    # --- the local AWS -------------------------------------------------------------------------
    _c("local-port-taken", "local", "start", "--port", "{port}", fragment="port {port} on 127.0.0.1 is already in use", port=True),
    _c("local-port-out-of-range", "local", "start", "--port", "70000", fragment="Invalid value for '--port'"),
    _c("local-latency-unknown", "local", "start", "--latency", "sluggish", fragment="unknown latency 'sluggish'"),
    _c("local-latency-not-seconds", "local", "start", "--latency", "rds.create=abc",
       fragment="latency rds.create: 'abc' is not a number of seconds"),
    _c("local-latency-negative", "local", "start", "--latency", "rds.create=-5",
       fragment="latency rds.create: '-5' is not a number of seconds (0 or more)"),
    _c("local-latency-nan", "local", "start", "--latency", "ec2.run=nan",
       fragment="latency ec2.run: 'nan' is not a number of seconds (0 or more)"),
    _c("local-time-scale-zero", "local", "start", "--time-scale", "0", fragment="Invalid value for '--time-scale'"),
    # --- awslab's own files --------------------------------------------------------------------
    _c("context-file-not-json", "status", fragment="awslab's state file {home}/context.json is corrupted",
       state={"context.json": "{not json"}),
    _c("context-file-not-an-object", "down", fragment="{home}/context.json is corrupted", state={"context.json": "[1, 2]"}),
    # (a corrupt local/server.json is not bad input: the local AWS is found through its lock, tests/local/test_state.py)
    _c("stack-record-not-json", "verify", "--name", "{stack}", fragment="{home}/stacks/{stack}.json is corrupted",
       state={"stacks/{stack}.json": "{not json"}, local=True),
    # --- AWSLAB_FAULTS ---------------------------------------------------------------------------
    _c("faults-malformed", "up", "week6", "--name", "{stack}", fragment="AWSLAB_FAULTS='rate=abc' is not understood",
       env={"AWSLAB_FAULTS": "rate=abc"}),
    _c("faults-unknown-kind", "status", "--name", "{stack}", fragment="AWSLAB_FAULTS='rate=0.5,kinds=meteor' is not understood",
       env={"AWSLAB_FAULTS": "rate=0.5,kinds=meteor"}),
    _c("faults-with-target-aws", "up", "week6", "--name", "{stack}", "--target", "aws",
       fragment="AWSLAB_FAULTS is set but injects faults only into a local AWS", env={"AWSLAB_FAULTS": "rate=0.1"}),
]


@pytest.fixture
def held_port():
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def _make_shell(aws, stack: str) -> list:
    """What `restore` needs of a stack (VPC, subnets, subnet groups, security groups), tagged as its;
    returns the undo calls."""
    from awslab.spec.tags import as_tag_list, stack_tags

    ec2, rds, ec = aws("ec2"), aws("rds"), aws("elasticache")

    def tags(key):
        return as_tag_list(stack_tags(stack, "week6", key))

    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": tags("network.vpc")}])["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az,
                                 TagSpecifications=[{"ResourceType": "subnet", "Tags": tags(key)}])["Subnet"]["SubnetId"]
               for key, cidr, az in (("network.subnet.private-a", "10.60.10.0/24", "us-east-1a"),
                                     ("network.subnet.private-b", "10.60.11.0/24", "us-east-1b"))]
    groups = [ec2.create_security_group(GroupName=f"{stack}-{k}", Description="awslab test", VpcId=vpc,
                                        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(f"sg.{k}")}])["GroupId"]
              for k in ("db", "cache")]
    rds.create_db_subnet_group(DBSubnetGroupName=f"{stack}-db", DBSubnetGroupDescription="awslab test", SubnetIds=subnets,
                               Tags=tags("db.subnet-group"))
    ec.create_cache_subnet_group(CacheSubnetGroupName=f"{stack}-cache", CacheSubnetGroupDescription="awslab test",
                                 SubnetIds=subnets, Tags=tags("cache.subnet-group"))
    return [lambda: ec.delete_cache_subnet_group(CacheSubnetGroupName=f"{stack}-cache"),
            lambda: rds.delete_db_subnet_group(DBSubnetGroupName=f"{stack}-db"),
            *[lambda g=g: ec2.delete_security_group(GroupId=g) for g in groups],
            *[lambda s=s: ec2.delete_subnet(SubnetId=s) for s in subnets],
            lambda: ec2.delete_vpc(VpcId=vpc)]


def _files(home) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()} if home.exists() else {}


# A hang (botocore retrying an unusable endpoint for minutes) fails the case, not the suite.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CATALOGUE, ids=str)
def test_bad_input_catalogue(case: Case, request, awslab, api_calls, aws_sandbox, tmp_path, stack, monkeypatch):
    from awslab.local import manager

    values = {"stack": stack, "home": str(aws_sandbox), "lab_file": str(tmp_path / "lab.toml")}
    if case.port:
        values["port"] = str(request.getfixturevalue("held_port"))

    def fill(text: str) -> str:
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    if case.lab is not None:
        (tmp_path / "lab.toml").write_text(case.lab)
    for rel, text in case.state.items():
        path = aws_sandbox / fill(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fill(text))
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, fill(value))
    aws = request.getfixturevalue("aws") if case.local else None   # the session's server, already running
    undo = _make_shell(aws, stack) if case.shell else []
    tagged_before = stack_tagged(aws, stack) if case.local else []
    api_calls.clear()
    # No case needs a local AWS of its own: bad input is refused before one would start.
    monkeypatch.setattr(manager, "start", lambda *a, **k: pytest.fail("a local AWS was started for bad input"))

    files_before = _files(aws_sandbox)

    result = awslab(*[fill(a) for a in case.args])

    try:
        assert result.code == case.code, result
        lines = result.err.splitlines()
        assert len(lines) == 1, result.err
        assert lines[0].startswith("error: "), result.err
        assert fill(case.fragment) in lines[0], result.err
        assert result.out == ""
        assert _files(aws_sandbox) == files_before   # awslab's own state is untouched too
        assert mutating(api_calls) == []
        if not case.local:
            assert api_calls == []   # refused before any request at all
        else:
            assert stack_tagged(aws, stack) == tagged_before
    finally:
        for step in undo:
            step()


def test_bad_input_catalogue_is_broad():
    assert len(CATALOGUE) >= 30
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)


def test_real_account__without_yes_and_without_a_terminal__refuses_before_creating(awslab, local, aws, stack, api_calls):
    result = awslab("up", "week6", "--name", stack, "--target", "aws", "--region", "us-east-1",
                    "--endpoint-url", local.endpoint_url)
    assert result.code == 2, result
    assert "needs --yes" in result.err and "123456789012" in result.err and "/hour" in result.err
    assert mutating(api_calls) == []
    assert stack_tagged(aws, stack) == []


def test_a_lab_path_as_LAB_is_that_file_and_down_forgets_the_remembered_stack(awslab, local, aws, stack, tmp_path,
                                                                             monkeypatch):
    """`up labs/custom` (a path, .toml optional) builds that file's lab, never a shipped lab its name
    ends with; after `down`, a command without --name no longer acts on the removed stack."""
    lab = (repo_root() / "labs" / "week6.toml").read_text().replace('"10.60.0.0/16"', '"10.77.0.0/16"')
    assert "10.77.0.0/16" in lab
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "week6.toml").write_text(lab.replace("10.60.", "10.77."))
    monkeypatch.chdir(tmp_path)
    up = awslab("up", "labs/week6", "--name", stack, "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    vpc = aws("ec2").describe_vpcs(Filters=[{"Name": "tag:awslab:stack", "Values": [stack]}])["Vpcs"][0]
    tags = {t["Key"]: t["Value"] for t in vpc["Tags"]}
    assert vpc["CidrBlock"] == "10.77.0.0/16" and tags["awslab:lab-file"] == str(tmp_path / "labs" / "week6.toml")
    assert awslab("status").code == 0   # the stack just made is remembered
    assert awslab("down", "--yes", "--skip-final-snapshot").code == 0
    after = awslab("status")
    assert after.code == 2 and f"the last stack used, {stack}, was removed by `awslab down`" in after.err
    assert "`awslab stacks`" in after.err and "connect" not in after.err
    assert awslab("connect", "db").code == 2
    again = awslab("down", "--yes")   # a second `down` of it is still a quiet success
    assert again.code == 0 and "nothing to delete" in again.err


def test_endpoint_url_on_the_local_target__takes_the_keys_given_not_this_homes(awslab, local, aws, stack,
                                                                               aws_sandbox):
    """Another home's local AWS (or another emulator) in --endpoint-url, its keys in the
    environment: the command uses those keys, whatever this home holds (it may hold no local AWS
    at all), and never suggests restarting a server."""
    assert awslab("up", "week6", "--name", stack, "--set", "database.read_replicas=0").code == 0
    for name in ("credentials.json", "aws-credentials", "server.json"):   # a home that never ran one
        (aws_sandbox / "local" / name).unlink()
    status = awslab("status", "--name", stack, "--endpoint-url", local.endpoint_url, "--output", "json")
    assert status.code == 0, status.err
    assert "db.primary" in {r["key"] for r in json.loads(status.out)["resources"]}
    assert "local stop" not in status.err
    assert awslab("down", "--name", stack, "--endpoint-url", local.endpoint_url, "--yes",
                  "--skip-final-snapshot").code == 0
    assert stack_tagged(aws, stack) == []


def test_real_account__with_yes__shows_account_region_and_cost_then_builds(awslab, local, aws, stack):
    up = awslab("up", "week6", "--name", stack, "--target", "aws", "--region", "us-east-1",
                "--endpoint-url", local.endpoint_url, "--yes", "--set", "database.read_replicas=0")
    assert up.code == 0, up.err
    assert "AWS account 123456789012" in up.err and "region us-east-1" in up.err
    # The remembered context carries target and endpoint, so a bare `down` acts on the same stack.
    plan = awslab("down", "--dry-run", "--output", "json")
    assert {s["key"] for s in json.loads(plan.out)["steps"]} >= {"db.primary", "cache.group"}
    assert not any(s["key"].startswith("db.replica") for s in json.loads(plan.out)["steps"])
    down = awslab("down", "--yes", "--skip-final-snapshot")
    assert down.code == 0, down.err
    assert "will delete: db.primary" in down.err, down.err
    assert stack_tagged(aws, stack) == []


def test_version_and_help(awslab):
    assert awslab("--version").out.startswith("awslab, version ")
    help_text = awslab("--help").out
    for cmd in ("up", "plan", "status", "down", "local"):
        assert f"  {cmd}" in help_text
    assert "--skip-final-snapshot" in awslab("down", "--help").out


def test_awslab_alone__prints_the_help_and_exits_0(awslab):
    result = awslab()
    assert result.code == 0 and "Commands:" in result.out and "error" not in result.err


def test_exit__the_interpreters_last_collection_skips_what_the_command_made(tmp_path):
    """A command's objects (botocore's models and clients: tens of thousands) are frozen at
    exit, after the exit handlers registered before ``main`` (here the probe's, which sees it), so
    the last collection does not walk them, and young collections are rarer while it runs;
    ``main`` run again registers nothing more (awslab/home/process.py)."""
    import subprocess
    import sys

    probe = tmp_path / "frozen"
    script = (
        "import atexit, gc, sys\n"
        f"atexit.register(lambda: open({str(probe)!r}, 'w').write(str(gc.get_freeze_count())))\n"
        "import boto3\n"
        "from awslab import cli\n"
        "boto3.Session(region_name='us-east-1').client('ec2', endpoint_url='http://127.0.0.1:9')\n"
        "before = atexit._ncallbacks()\n"
        "for argv in (['--version'], ['--version']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert atexit._ncallbacks() == before + 1, (before, atexit._ncallbacks())\n"
        "assert gc.get_threshold()[0] == 10_000, gc.get_threshold()   # young collections rarer: Python's 700\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(probe.read_text()) > 50_000   # without the freeze: 0
