"""Loading, overriding and validating labs: no AWS involved."""

from __future__ import annotations

import pytest

from awslab.errors import LabError, UsageError
from awslab.spec.lab import available_labs, load_lab


def test_week6__loads_with_the_labs_defaults():
    lab = load_lab("week6")
    assert lab.name == "week6"
    assert lab.network.vpc_cidr == "10.60.0.0/16"
    assert lab.database.engine == "postgres" and lab.database.engine_version == "16" and lab.database.port == 5432
    assert lab.database.multi_az and lab.database.storage_encrypted and lab.database.backup_retention_days == 7
    assert lab.database.read_replicas == 1 and not lab.database.deletion_protection
    assert lab.cache.node_type == "cache.t3.micro" and lab.cache.replicas == 1 and lab.cache.port == 6379
    assert lab.host.ssh_cidr == "" and lab.host.instance_type == "t3.micro"
    assert "week6" in available_labs()


@pytest.mark.parametrize("override, path, expected", [
    ("database.multi_az=false", ("database", "multi_az"), False),
    ("rds.multi_az=no", ("database", "multi_az"), False),
    ("database.read_replicas=2", ("database", "read_replicas"), 2),
    ("database.engine=mysql", ("database", "engine"), "mysql"),
    ("host.ssh_cidr=203.0.113.10/32", ("host", "ssh_cidr"), "203.0.113.10/32"),
    ("network.availability_zones=us-east-1c,us-east-1d", ("network", "availability_zones"), ("us-east-1c", "us-east-1d")),
])
def test_set__is_typed_like_the_setting(override, path, expected):
    overrides = [override, "database.engine_version=8.0"] if "mysql" in override else [override]
    lab = load_lab("week6", overrides=overrides)
    assert getattr(getattr(lab, path[0]), path[1]) == expected
    if "mysql" in override:
        assert lab.database.port == 3306


@pytest.mark.parametrize("override, fragment", [
    ("database.nope=1", "database.nope: unknown setting"),
    ("database.mutli_az=false", "did you mean 'database.multi_az'"),
    ("nosuch.key=1", "nosuch.key: unknown section"),
    ("database.multi_az=maybe", "must be true or false"),
    ("database.read_replicas=two", "must be a whole number"),
    ("host.ssh_cidr=0.0.0.0/0", "opens SSH to the whole internet"),
    ("host.ssh_cidr=::/0", "opens SSH to the whole internet"),
    ("host.ssh_cidr=203.0.113.300/32", "not a valid CIDR"),
    ("network.public_subnet_cidr=10.60.10.0/24", "overlaps"),
    ("network.public_subnet_cidr=10.99.0.0/24", "is not inside the VPC"),
    ("network.vpc_cidr=10.0.0.0/8", "/16 to /28"),
    ("database.engine=oracle", "unknown engine 'oracle'"),
    ("database.engine_version=99.9", "postgres 99.9 is not offered"),
    ("database.instance_class=db.bogus.huge", "is not an RDS instance class"),
    ("cache.node_type=cache.bogus", "is not an ElastiCache node type"),
    ("database.backup_retention_days=0", "read replicas need automated backups"),
    ("database.master_username=admin", "is not allowed"),
    ("database.storage_encrypted=false", "keeps database storage encrypted"),
    ("cache.transit_encryption=false", "keeps cache traffic encrypted"),
    ("cache.replicas=0", "automatic failover needs at least one replica"),
    ("database.allocated_storage_gib=5", "takes 20 to 65536 GiB"),
    ("novalue", "expected KEY=VALUE"),
])
def test_set__bad_values_are_refused_with_the_key_named(override, fragment):
    with pytest.raises(LabError) as info:
        load_lab("week6", overrides=[override])
    assert fragment in f"{info.value.message} {info.value.hint}"


def test_unknown_lab__names_the_available_ones():
    with pytest.raises(UsageError) as info:
        load_lab("week99")
    assert "unknown lab 'week99'" in info.value.message and "week6" in info.value.hint


@pytest.mark.parametrize("text, fragment", [
    ("[database\nengine = 1", "not valid TOML"),
    ("[database]\nmulti_az = \"yes\"", "database.multi_az: must be true or false"),
    ("[database]\nread_replicas = true", "database.read_replicas: must be a whole number"),
    ("[network]\nprivate_subnet_cidrs = \"10.60.10.0/24\"", "must be a list of strings"),
    ("[databse]\nengine = \"postgres\"", "did you mean 'database'"),
    ("[cache]\nnode = \"cache.t3.micro\"", "cache.node: unknown setting"),
    ("lab = 3", "lab: must be a table"),
])
def test_lab_file__malformed_files_name_the_file_and_key(tmp_path, text, fragment):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(LabError) as info:
        load_lab(lab_file=path)
    assert info.value.message.startswith(str(path))
    assert fragment in f"{info.value.message} {info.value.hint}"


def test_lab_file__a_custom_lab_takes_defaults_for_what_it_leaves_out(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('[lab]\nname = "small"\n[database]\nmulti_az = false\nread_replicas = 0\n')
    lab = load_lab(lab_file=path, overrides=["cache.replicas=2"])
    assert lab.name == "small" and not lab.database.multi_az and lab.database.read_replicas == 0
    assert lab.cache.replicas == 2 and lab.network.vpc_cidr == "10.60.0.0/16"


def test_lab_file__missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="lab file not found"):
        load_lab(lab_file=tmp_path / "absent.toml")


def test_master_username__admin_is_mysqls_console_default_and_postgres_refuses_it():
    from awslab.errors import LabError

    mysql = load_lab("week6", overrides=["database.engine=mysql", "database.engine_version=8.0",
                                         "database.master_username=admin"])
    assert mysql.database.master_username == "admin"
    with pytest.raises(LabError, match="'admin' is not allowed for postgres"):
        load_lab("week6", overrides=["database.master_username=admin"])
